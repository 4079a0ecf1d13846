//! weir-connect holds the batch connectors that talk to the outside world: files (CSV, JSON, Parquet), REST APIs,
//! PostgreSQL, MySQL and SQLite as sources, PostgreSQL and SQLite as sinks. Each implements the traits of
//! [`connector`] and is one file: its config, validation, runtime and tests together, registered in
//! [`registry::Registry::builtin`].

pub mod bigquery;
pub mod bigquery_client;
pub mod chunk_spool;
pub mod connection;
pub mod connector;
pub mod file;
pub mod http_api;
pub mod http_client;
pub mod json_records;
pub mod jwt;
pub mod mysql;
pub mod parquet_chunks;
pub mod postgres;
pub mod postgres_sink;
pub mod postgres_tls;
pub mod redshift;
pub mod registry;
pub mod snowflake;
pub mod snowflake_client;
mod spool_files;
pub mod sqlite;
pub mod tolerant;
pub mod types;

pub use connector::{
    BatchSink, BatchSource, ConnectorRun, Guarantee, Incremental, LoadMode, Rerun, SinkKind, SinkLoad,
    SourceCheckpoint, SourceKind, SourceRun, SourceStream,
};
pub use registry::Registry;
pub use tolerant::{SourceReject, SourceRejects};
