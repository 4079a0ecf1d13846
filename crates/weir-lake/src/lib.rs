//! weir-lake stores tables in the lake: Parquet files under Hive-style partitions (`date=2026-03-25/`), written so that
//! a reader never sees a half-written file or a half-replaced partition, and found again by name (`raw.orders`).
//!
//! Delta Lake tables (ACID commits, time travel, merge) build on the same layout in a later module.

pub mod atomic;
pub mod catalog;
pub mod partition;
pub mod sink;
pub mod source;
pub mod writer;

pub use catalog::{list_tables, LakeTable, TableName};
pub use sink::{LakeSinkConfig, SchemaContract, WriteMode};
pub use source::LakeSourceConfig;
pub use writer::{CommitSummary, ParquetTableWriter, WriterOptions};
