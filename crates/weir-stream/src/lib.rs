//! Streams: events read continuously (Kafka, NDJSON, the payment generator), decided by rules over event-time
//! windows, lookups and a score, and written to sinks with at-least-once or exactly-once delivery.
//!
//! The flow is `sources` → `decode` → `processor` (lookups, `window`, features, score, rules) → `sinks`, driven by
//! `runtime`, with `checkpoint` saving window state and offsets together. `report` joins analyst labels with past
//! alerts into precision and recall per rule.

pub mod checkpoint;
pub mod config;
pub mod decode;
pub mod env;
pub mod fenced;
pub mod generator;
pub mod lookup;
pub mod metrics;
pub mod model;
pub mod processor;
pub mod report;
pub mod runtime;
pub mod sinks;
pub mod sources;
pub mod supervise;
pub mod window;

pub use config::StreamConfig;
pub use env::StreamEnv;
pub use metrics::StreamMetrics;
pub use runtime::{run_stream, RunOptions, Stream};
