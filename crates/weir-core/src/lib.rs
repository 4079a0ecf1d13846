//! weir-core holds the vocabulary every other crate shares and nothing that does IO: the error type with its domain
//! and retry hint, and the run context (logical date, data interval) that templates and sinks read.
//!
//! It never depends on a connector, an engine or a storage crate, so it compiles in seconds and everything can use it.

pub mod cursor;
pub mod error;
pub mod failpoint;
pub mod position;
pub mod run;

pub use error::{Domain, Error, Result, RetryHint};
pub use run::RunContext;

/// 1234567 -> "1,234,567": counts in messages, summaries and pages.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
