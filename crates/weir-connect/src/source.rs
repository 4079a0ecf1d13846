//! The source side of a task: a connector turns its settings into a stream of Arrow record batches.
//!
//! Sources are bounded here (files); they are opened once per run and may be opened again (a `fill_null: mean` step
//! reads its input twice). `type: lake` sources are read through DataFusion in weir-engine.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::stream::BoxStream;
use weir_config::{Component, Diagnostic};

use crate::file::{FileFormat, FileSourceConfig};

/// A stream of batches that all have `schema`.
pub struct SourceStream {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, weir_core::Result<RecordBatch>>,
    /// Bytes the source will read, when known (for progress).
    pub total_bytes: Option<u64>,
    /// Bytes read so far, updated as the source reads.
    pub bytes_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Records the source set aside (`on_error: quarantine`), to drain as batches arrive.
    pub rejects: Option<crate::tolerant::SourceRejects>,
    /// A resumable source's progress: the cursor to commit with the data, and the checkpoint to clear after.
    pub checkpoint: Option<crate::http_api::SourceCheckpoint>,
}

/// The batches a producer task sends through `rx`, as a source's stream (it ends when every sender is gone).
pub fn batches_from(
    mut rx: tokio::sync::mpsc::Receiver<weir_core::Result<RecordBatch>>,
) -> BoxStream<'static, weir_core::Result<RecordBatch>> {
    use futures::StreamExt;
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// The source kinds this crate provides.
pub const SOURCE_KINDS: &[&str] = &["csv", "json", "ndjson", "parquet", "http_api", "postgres", "mysql", "sqlite"];

#[derive(Debug, Clone)]
pub enum SourceConfig {
    File(FileSourceConfig),
    HttpApi(Box<crate::http_api::HttpApiConfig>),
    Postgres(crate::postgres::PostgresSourceConfig),
    Sqlite(crate::sqlite::SqliteSourceConfig),
    Mysql(crate::mysql::MysqlSourceConfig),
}

/// Reads a `source:` block. Pure: no file is touched.
pub fn parse_source(component: &Component) -> Result<SourceConfig, Vec<Diagnostic>> {
    let format = match component.kind.as_str() {
        "csv" => FileFormat::Csv,
        "json" | "ndjson" => FileFormat::Json,
        "parquet" => FileFormat::Parquet,
        "mysql" => return crate::mysql::MysqlSourceConfig::parse(&component.node).map(SourceConfig::Mysql),
        "sqlite" => return crate::sqlite::SqliteSourceConfig::parse(&component.node).map(SourceConfig::Sqlite),
        "postgres" => return crate::postgres::PostgresSourceConfig::parse(&component.node).map(SourceConfig::Postgres),
        "http_api" => {
            return crate::http_api::HttpApiConfig::parse(&component.node).map(|c| SourceConfig::HttpApi(Box::new(c)))
        }
        other => {
            let node = component.node.get("type").unwrap_or(&component.node);
            let mut kinds = SOURCE_KINDS.to_vec();
            kinds.push("lake");
            return Err(vec![Diagnostic::at(node, format!("unknown source type `{other}`"))
                .with_hint(Some(weir_config::diag::suggest(other, &kinds)))]);
        }
    };
    FileSourceConfig::parse(&component.node, format).map(SourceConfig::File)
}
