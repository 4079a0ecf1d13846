//! The DataFusion session weir runs SQL on. Lake tables are registered by name (`raw.orders`) as listing tables over
//! their Parquet files, with their Hive partition columns, so `WHERE date = '2026-03-25'` reads one folder only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::execution::config::SessionConfig;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use weir_connect::SourceStream;
use weir_core::{Error, Result};
use weir_lake::{list_tables, LakeTable};

pub struct Engine {
    ctx: SessionContext,
    lake_root: PathBuf,
}

impl Engine {
    pub fn new(lake_root: &Path) -> Engine {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_batch_size(64 * 1024)
            .with_information_schema(true);
        Engine { ctx: SessionContext::new_with_config(config), lake_root: lake_root.to_path_buf() }
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn lake_root(&self) -> &Path {
        &self.lake_root
    }

    /// (Re)registers every table of the lake. Call after a write so queries see new tables and partitions.
    pub async fn register_lake(&self) -> Result<Vec<LakeTable>> {
        let tables = list_tables(&self.lake_root);
        let catalog = self.ctx.catalog("datafusion").ok_or_else(|| Error::engine("lake", "default catalog missing"))?;
        for t in &tables {
            if catalog.schema(&t.name.zone).is_none() {
                catalog
                    .register_schema(&t.name.zone, Arc::new(MemorySchemaProvider::new()))
                    .map_err(|e| Error::engine("register zone", e))?;
            }
            let reference = TableReference::partial(t.name.zone.as_str(), t.name.name.as_str());
            let _ = self.ctx.deregister_table(reference.clone());
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(t.partition_columns.iter().map(|c| (c.clone(), DataType::Utf8)).collect());
            let dir =
                std::fs::canonicalize(&t.dir).map_err(|e| Error::io(format!("open table {}", t.dir.display()), e))?;
            let url = format!("{}/", dir.display());
            // The recorded schema (see `quality::contract`) makes files written before a column was added or
            // widened read with it; without one, DataFusion infers the schema from the files.
            let schema = crate::quality::SchemaHistory::load(&t.dir)
                .ok()
                .and_then(|h| h.latest().and_then(crate::quality::contract::arrow_schema));
            self.ctx
                .register_listing_table(reference, url, options, schema, None)
                .await
                .map_err(|e| Error::engine(format!("register table {}", t.name), e.strip_backtrace()))?;
        }
        Ok(tables)
    }

    /// Registers a task's staged output folder as the table `this`, for custom SQL checks.
    pub async fn register_this_dir(&self, dir: &Path, partition_columns: &[String]) -> Result<()> {
        let _ = self.ctx.deregister_table("this");
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_columns.iter().map(|c| (c.clone(), DataType::Utf8)).collect());
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
        self.ctx
            .register_listing_table("this", format!("{}/", dir.display()), options, None, None)
            .await
            .map_err(|e| Error::engine("register staged output", e.strip_backtrace()))
    }

    /// Registers a query as the view `this`, for custom SQL checks on a task without a sink.
    pub async fn register_this_sql(&self, sql: &str) -> Result<()> {
        let _ = self.ctx.deregister_table("this");
        let view = self.ctx.sql(sql).await.map_err(|e| sql_error("checked input", e))?.into_view();
        self.ctx.register_table("this", view).map(|_| ()).map_err(|e| Error::engine("register this", e))
    }

    /// Plans and starts `sql`; `what` names it in errors (`model daily_revenue`).
    pub async fn sql_stream(&self, sql: &str, what: &str) -> Result<SourceStream> {
        let df = self.ctx.sql(sql).await.map_err(|e| sql_error(what, e))?;
        let stream = df.execute_stream().await.map_err(|e| sql_error(what, e))?;
        let schema = stream.schema();
        let what = what.to_string();
        let batches = stream.map(move |b| b.map_err(|e| sql_error(&what, e))).boxed();
        Ok(SourceStream { schema, batches, total_bytes: None, bytes_read: Default::default(), rejects: None })
    }

    pub async fn sql_collect(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        let mut s = self.sql_stream(sql, what).await?;
        let mut out = Vec::new();
        while let Some(b) = s.batches.next().await {
            out.push(b?);
        }
        Ok(out)
    }
}

pub fn sql_error(what: &str, e: datafusion::error::DataFusionError) -> Error {
    // A failure reading or decoding data is not a SQL mistake; keep the rest as the user's SQL problem.
    let e = e.strip_backtrace();
    Error::sql(what, e.to_string())
}
