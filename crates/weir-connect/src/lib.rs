//! weir-connect holds the sources (and, later, sinks) that talk to the outside world: files now; HTTP APIs, SQL
//! databases and Kafka in their own files as they come. One connector is one file: its config, validation, runtime
//! and tests together.

pub mod chunk_spool;
pub mod connection;
pub mod file;
pub mod http_api;
pub mod http_client;
pub mod json_records;
pub mod mysql;
pub mod postgres;
pub mod postgres_sink;
pub mod source;
mod spool_files;
pub mod sqlite;
pub mod tolerant;
pub mod types;

pub use source::{parse_source, SourceConfig, SourceStream};
pub use tolerant::{SourceReject, SourceRejects};
