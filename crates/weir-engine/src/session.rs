//! The DataFusion session weir runs SQL on. Lake tables are registered by name (`raw.orders`) as listing tables over
//! their Parquet files, with their Hive partition columns, so `WHERE date = '2026-03-25'` reads one folder only.
//! Delta tables are registered through their transaction log (only the files of the version read), at their latest
//! version or, for time travel, at a version or a point in time.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
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
use weir_lake::{list_tables, Lake, LakeTable};

pub struct Engine {
    ctx: SessionContext,
    lake: Lake,
    /// Time travel: the Delta version or timestamp tables are read at (None: latest).
    as_of: std::sync::Mutex<Option<AsOf>>,
}

/// A point in a Delta table's history.
#[derive(Debug, Clone, PartialEq)]
pub enum AsOf {
    Version(u64),
    /// RFC 3339 (`2026-03-25T10:00:00Z`) or a date (`2026-03-25`, midnight UTC).
    Timestamp(String),
}

impl AsOf {
    pub fn parse(s: &str) -> AsOf {
        match s.trim_start_matches('v').parse::<u64>() {
            Ok(v) => AsOf::Version(v),
            Err(_) if s.len() == 10 => AsOf::Timestamp(format!("{s}T00:00:00Z")),
            Err(_) => AsOf::Timestamp(s.to_string()),
        }
    }
}

impl Engine {
    pub fn new(lake: &Lake) -> Result<Engine> {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_batch_size(64 * 1024)
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        if !lake.is_local() {
            // Files named by URL (a Delta write's staged files, for checks) are read through the bucket's store.
            let (bucket, store) = lake.bucket_store()?;
            ctx.register_object_store(&bucket, store);
        }
        Ok(Engine { ctx, lake: lake.clone(), as_of: std::sync::Mutex::new(None) })
    }

    /// The engine over a project's lake (`lake.root` and `lake.storage` of `weir.yaml`).
    pub fn for_project(project: &weir_config::Project) -> Result<Engine> {
        Engine::new(&Lake::for_project(project)?)
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Reads Delta tables at this version or time from now on (`weir sql --as-of`).
    pub fn set_as_of(&self, as_of: Option<AsOf>) {
        if let Ok(mut a) = self.as_of.lock() {
            *a = as_of;
        }
    }

    /// Makes sure the zone (`silver`) exists as a schema of the default catalog.
    fn register_zone(&self, zone: &str) -> Result<()> {
        let catalog = self.ctx.catalog("datafusion").ok_or_else(|| Error::engine("lake", "default catalog missing"))?;
        if catalog.schema(zone).is_none() {
            catalog
                .register_schema(zone, Arc::new(MemorySchemaProvider::new()))
                .map_err(|e| Error::engine("register zone", e))?;
        }
        Ok(())
    }

    /// Registers a Delta table as `reference`, at its latest version or at `as_of`.
    async fn register_delta(&self, t: &LakeTable, reference: TableReference, as_of: Option<&AsOf>) -> Result<()> {
        let what = format!("open delta table {}", t.name);
        let mut table = weir_lake::delta::open(&t.location, None).await?;
        match as_of {
            None => {}
            Some(AsOf::Version(v)) => table
                .load_version(*v)
                .await
                .map_err(|e| Error::data(Default::default(), format!("{}: version {v}: {e}", t.name)))?,
            Some(AsOf::Timestamp(ts)) => {
                let at = chrono::DateTime::parse_from_rfc3339(ts)
                    .map_err(|e| Error::config(Default::default(), format!("--as-of `{ts}`: {e}")))?;
                table
                    .load_with_datetime(at.with_timezone(&chrono::Utc))
                    .await
                    .map_err(|e| Error::data(Default::default(), format!("{} as of {ts}: {e}", t.name)))?
            }
        }
        table.update_datafusion_session(&self.ctx.state()).map_err(|e| Error::engine(what.clone(), e))?;
        let provider = table.table_provider().await.map_err(|e| Error::engine(what.clone(), e))?;
        self.ctx.register_table(reference, provider).map_err(|e| Error::engine(what, e))?;
        Ok(())
    }

    /// (Re)registers every table of the lake. Call after a write so queries see new tables and partitions.
    pub async fn register_lake(&self) -> Result<Vec<LakeTable>> {
        let tables = list_tables(&self.lake).await?;
        let as_of = self.as_of.lock().map(|a| a.clone()).unwrap_or_default();
        for t in &tables {
            self.register_zone(&t.name.zone)?;
            let reference = TableReference::partial(t.name.zone.as_str(), t.name.name.as_str());
            let _ = self.ctx.deregister_table(reference.clone());
            if t.format == weir_lake::TableFormat::Delta {
                self.register_delta(t, reference, as_of.as_ref()).await?;
                continue;
            }
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(t.partition_columns.iter().map(|c| (c.clone(), DataType::Utf8)).collect());
            let dir = t.location.local_dir("a Parquet table")?;
            let url = format!("{}/", dir.display());
            // The recorded schema (see `quality::contract`) makes files written before a column was added or
            // widened read with it; without one, DataFusion infers the schema from the files.
            let schema = crate::quality::SchemaHistory::load(&t.location)
                .await
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

    /// Registers staged files (a Delta write before its commit: local paths or URLs) as the table `this`, for
    /// custom SQL checks.
    pub async fn register_this_files(&self, files: &[String], schema: &arrow::datatypes::SchemaRef) -> Result<()> {
        use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
        let _ = self.ctx.deregister_table("this");
        let urls = files
            .iter()
            .map(ListingTableUrl::parse)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::engine("register staged output", e))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config =
            ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
        let table = ListingTable::try_new(config).map_err(|e| Error::engine("register staged output", e))?;
        self.ctx.register_table("this", Arc::new(table)).map(|_| ()).map_err(|e| Error::engine("register this", e))
    }

    /// Registers a query as the view `this`, for custom SQL checks on a task without a sink.
    pub async fn register_this_sql(&self, sql: &str) -> Result<()> {
        let _ = self.ctx.deregister_table("this");
        let view = self.ctx.sql(sql).await.map_err(|e| sql_error("checked input", e))?.into_view();
        self.ctx.register_table("this", view).map(|_| ()).map_err(|e| Error::engine("register this", e))
    }

    /// Time travel in SQL: `silver.orders@v3` reads that Delta table at version 3. Each such reference is registered
    /// as the table `silver."orders@v3"` and the query rewritten to name it.
    async fn resolve_versions(&self, sql: &str) -> Result<String> {
        static VERSIONED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let re = VERSIONED
            .get_or_init(|| regex::Regex::new(r"\b([a-z0-9_]+)\.([a-z0-9_]+)@v([0-9]+)\b").expect("valid pattern"));
        if !re.is_match(sql) {
            return Ok(sql.to_string());
        }
        let tables = list_tables(&self.lake).await?;
        for cap in re.captures_iter(sql) {
            let (zone, name, version) = (&cap[1], &cap[2], &cap[3]);
            let Some(t) = tables.iter().find(|t| t.name.zone == zone && t.name.name == name) else {
                return Err(Error::sql("time travel", format!("no lake table `{zone}.{name}`")));
            };
            if t.format != weir_lake::TableFormat::Delta {
                return Err(Error::sql(
                    "time travel",
                    format!("`{zone}.{name}@v{version}`: only Delta tables keep versions; this one is Parquet"),
                ));
            }
            let version: u64 = version.parse().map_err(|e| Error::sql("time travel", format!("{e}")))?;
            self.register_zone(zone)?;
            let reference = TableReference::partial(zone, format!("{name}@v{version}"));
            let _ = self.ctx.deregister_table(reference.clone());
            self.register_delta(t, reference, Some(&AsOf::Version(version))).await?;
        }
        Ok(re.replace_all(sql, "$1.\"$2@v$3\"").into_owned())
    }

    /// Plans and starts `sql`; `what` names it in errors (`model daily_revenue`).
    pub async fn sql_stream(&self, sql: &str, what: &str) -> Result<SourceStream> {
        let sql = self.resolve_versions(sql).await?;
        let df = self.ctx.sql(&sql).await.map_err(|e| sql_error(what, e))?;
        let stream = df.execute_stream().await.map_err(|e| sql_error(what, e))?;
        let schema = stream.schema();
        let what = what.to_string();
        let batches = stream.map(move |b| b.map_err(|e| sql_error(&what, e))).boxed();
        Ok(SourceStream::new(schema, batches))
    }

    /// The rows of a table scan (`SELECT ... FROM zone.table WHERE ...`) in the table's order: the scan's partitions
    /// (groups of files, or byte ranges of one file, in the order the table lists them) are read in parallel but
    /// handed on one after another, never interleaved as they happen to arrive, so that "the first row" (`dedupe`,
    /// forward fill) is the same on every run. Partitions are not split round-robin for the same reason.
    pub async fn scan_in_order(&self, sql: &str, what: &str) -> Result<SourceStream> {
        let sql = self.resolve_versions(sql).await?;
        let df = self.ctx.sql(&sql).await.map_err(|e| sql_error(what, e))?;
        let mut state = self.ctx.state();
        state.config_mut().options_mut().optimizer.enable_round_robin_repartition = false;
        let plan = state.create_physical_plan(df.logical_plan()).await.map_err(|e| sql_error(what, e))?;
        let schema = plan.schema();
        let task = Arc::new(datafusion::execution::TaskContext::from(&state));
        let mut partitions = Vec::new();
        for p in 0..plan.properties().output_partitioning().partition_count() {
            let mut stream = plan.execute(p, task.clone()).map_err(|e| sql_error(what, e))?;
            // Each partition reads ahead a little on its own task; its batches wait until the ones before are taken.
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(async move {
                while let Some(batch) = stream.next().await {
                    if tx.send(batch).await.is_err() {
                        break;
                    }
                }
            });
            partitions.push(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) }));
        }
        let what = what.to_string();
        let batches =
            futures::stream::iter(partitions).flatten().map(move |b| b.map_err(|e| sql_error(&what, e))).boxed();
        Ok(SourceStream::new(schema, batches))
    }

    /// The columns `sql` would return, planned without reading any rows.
    pub async fn sql_schema(&self, sql: &str, what: &str) -> Result<Schema> {
        let sql = self.resolve_versions(sql).await?;
        let df = self.ctx.sql(&sql).await.map_err(|e| sql_error(what, e))?;
        Ok(df.schema().as_arrow().clone())
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
