//! weir-lake stores tables in the lake: Parquet files under Hive-style partitions (`date=2026-03-25/`), written so that
//! a reader never sees a half-written file or a half-replaced partition, and found again by name (`raw.orders`).
//!
//! Delta Lake tables (`format: delta`: ACID commits, time travel) live in `delta`; `storage` says where the lake
//! is (a folder, or S3 and S3-compatible object storage).

pub mod atomic;
pub mod catalog;
pub mod cursor;
pub mod delta;
mod file_stats;
pub mod partition;
pub mod sink;
pub mod source;
pub mod storage;
pub mod table_name;
pub mod writer;

pub use catalog::{list_tables, shape, LakeTable, TableName, TableShape};
pub use sink::{LakeSinkConfig, SchemaContract, TableFormat, WriteMode};
pub use source::LakeSourceConfig;
pub use storage::{Lake, TableLocation};
pub use writer::{CommitSummary, ParquetTableWriter, WriterOptions};
