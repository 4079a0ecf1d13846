//! weir-core holds the vocabulary every other crate shares and nothing that does IO: the error type with its domain
//! and retry hint, and the run context (logical date, data interval) that templates and sinks read.
//!
//! It never depends on a connector, an engine or a storage crate, so it compiles in seconds and everything can use it.

pub mod cursor;
pub mod error;
pub mod position;
pub mod run;

pub use error::{Domain, Error, Result, RetryHint};
pub use run::RunContext;
