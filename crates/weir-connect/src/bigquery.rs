//! `type: bigquery` sink: loads a task's output into a BigQuery table with load jobs, as BigQuery recommends for
//! bulk data: the rows are written as Parquet files and uploaded as they stream into a staging table beside the
//! target, then one script moves them (and the task's rejects) into the target in a transaction.
//!
//! ```yaml
//! sink:
//!   type: bigquery
//!   connection: bq
//!   table: marts.daily_revenue   # dataset.table
//!   mode: merge                  # replace | append | merge
//!   keys: [order_date, country]
//!   json: [attributes]           # text columns holding JSON, stored as JSON
//! ```
//!
//! with the connection in weir.yaml (the key read at run time only):
//!
//! ```yaml
//! connections:
//!   bq:
//!     type: bigquery
//!     project: my-project
//!     location: EU                          # where jobs run; BigQuery's default when unset
//!     credentials: ${file:keys/loader.json} # a service account's JSON key
//!     # url: http://127.0.0.1:9050          # instead of https://bigquery.googleapis.com (then credentials may go)
//! ```
//!
//! * `append` inserts the rows; `replace` deletes the table's rows and inserts the new ones; `merge` runs `MERGE` on
//!   the keys (keys duplicated or NULL within one load fail it, naming them). Each runs in one multi-statement
//!   transaction with the task's rejects, which land in `<table>__rejected` beside the target (replaced with
//!   `replace`, added otherwise). Readers see the old rows until the commit.
//! * The table is created when missing and gains the output's new columns (DDL, before the transaction).
//! * A failed check, a failed job or a killed process leaves the target as it was. The staging tables
//!   (`<table>__weir_load_<id>`) are deleted after the load, and expire on their own after a day if a killed process
//!   could not delete them. The transaction is one job that runs on BigQuery's side: a process killed after it was
//!   sent cannot leave it half done.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::bigquery_client::{Client, Settings};
use crate::connection::{key_examples, merge_key_error, merge_key_problems, RejectRows};
use crate::connector::{BatchSink, ConnectorRun, LoadMode, SinkKind, SinkLoad};
use crate::parquet_chunks::ParquetChunks;

/// How long a staging table outlives a process that could not delete it.
const STAGING_EXPIRES: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySinkConfig {
    /// A weir.yaml connection of `type: bigquery`.
    pub connection: String,
    /// `dataset.table`.
    pub table: String,
    #[serde(default)]
    pub mode: LoadMode,
    #[serde(default)]
    pub keys: Vec<String>,
    /// Megabytes of Parquet per staged file (64 unless set).
    #[serde(default = "crate::parquet_chunks::default_file_mb")]
    pub file_mb: usize,
    /// Text columns that hold JSON, stored as JSON (`PARSE_JSON`; a value that is not JSON fails the load).
    #[serde(default)]
    pub json: Vec<String>,
}

/// `type: bigquery` as a sink.
pub const SINK: SinkKind =
    SinkKind { name: "bigquery", parse: |n| BigQuerySinkConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSink>) };

impl BigQuerySinkConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: BigQuerySinkConfig = from_node(node, &["type"])?;
        let mut diags = Vec::new();
        diags.extend(cfg.mode.keys_problem(node, &cfg.keys));
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if cfg.table.split('.').count() != 2 || !cfg.table.split('.').all(valid) {
            diags.push(Diagnostic::at(
                node.get("table").unwrap_or(node),
                format!("`{}` is not `dataset.table`", cfg.table),
            ));
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }

    fn dataset_and_table(&self) -> (&str, &str) {
        self.table.split_once('.').unwrap_or(("", &self.table))
    }
}

impl BatchSink for BigQuerySinkConfig {
    fn kind(&self) -> &str {
        "bigquery"
    }

    fn table(&self) -> &str {
        &self.table
    }

    fn mode(&self) -> LoadMode {
        self.mode
    }

    fn begin<'a>(&'a self, run: ConnectorRun<'a>, schema: &'a Schema) -> BoxFuture<'a, Result<Box<dyn SinkLoad>>> {
        Box::pin(async move {
            let connection = run.connection(&self.connection, "bigquery", "a bigquery sink")?;
            let settings = Settings::from_connection(connection)?;
            Ok(Box::new(BigQueryLoad::begin(&settings, self, schema).await?) as Box<dyn SinkLoad>)
        })
    }
}

/// A name in backticks, as BigQuery quotes identifiers.
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// The BigQuery column type of an Arrow type, and the type to write to Parquet when it differs.
fn bigquery_type(t: &DataType) -> std::result::Result<(&'static str, Option<(u8, i8)>, Option<DataType>), String> {
    let micros = |tz: &Option<Arc<str>>| DataType::Timestamp(TimeUnit::Microsecond, tz.clone());
    Ok(match t {
        DataType::Boolean => ("BOOL", None, None),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => ("INT64", None, None),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => ("INT64", None, Some(DataType::Int64)),
        DataType::UInt64 => ("NUMERIC", Some((20, 0)), Some(DataType::Decimal128(20, 0))),
        DataType::Float16 | DataType::Float32 => ("FLOAT64", None, Some(DataType::Float64)),
        DataType::Float64 => ("FLOAT64", None, None),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("STRING", None, None),
        DataType::Null => ("STRING", None, Some(DataType::Utf8)),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ("BYTES", None, None),
        DataType::Date32 => ("DATE", None, None),
        DataType::Date64 => ("DATE", None, Some(DataType::Date32)),
        // BigQuery keeps microseconds.
        DataType::Timestamp(unit, tz) => {
            let cast = (*unit != TimeUnit::Microsecond).then(|| micros(tz));
            (if tz.is_some() { "TIMESTAMP" } else { "DATETIME" }, None, cast)
        }
        DataType::Time64(TimeUnit::Microsecond) => ("TIME", None, None),
        DataType::Time32(_) | DataType::Time64(_) => ("TIME", None, Some(DataType::Time64(TimeUnit::Microsecond))),
        // NUMERIC holds 29 digits before the point and 9 after; BIGNUMERIC 38 after.
        DataType::Decimal128(p, s) if *s >= 0 && *s <= 9 && (*p as i16 - *s as i16) <= 29 => {
            ("NUMERIC", Some((*p, *s)), None)
        }
        DataType::Decimal128(p, s) if *s >= 0 => ("BIGNUMERIC", Some((*p, *s)), None),
        other => return Err(format!("Arrow type {other} has no BigQuery column type here; cast it first")),
    })
}

/// How one load's rows are laid out: names, types (for the table's DDL and the staging table's schema), casts.
#[derive(Debug, Clone)]
struct Layout {
    columns: Vec<String>,
    /// `` `name` TYPE `` of the target table.
    target_defs: Vec<String>,
    /// BigQuery schema fields of the staging table (JSON columns staged as text).
    staging_fields: Vec<Value>,
    json: Vec<String>,
    parquet: SchemaRef,
    casts: Vec<Option<DataType>>,
}

impl Layout {
    fn of(schema: &Schema, json_columns: &[String]) -> Result<Layout> {
        let mut layout = Layout {
            columns: Vec::new(),
            target_defs: Vec::new(),
            staging_fields: Vec::new(),
            json: Vec::new(),
            parquet: Arc::new(Schema::empty()),
            casts: Vec::new(),
        };
        let mut fields = Vec::new();
        for f in schema.fields() {
            let (kind, params, cast) = bigquery_type(f.data_type())
                .map_err(|e| Error::data(Default::default(), format!("column `{}`: {e}", f.name())))?;
            let is_json = json_columns.contains(f.name());
            if is_json && kind != "STRING" {
                return Err(Error::data(
                    Default::default(),
                    format!("column `{}` is listed in `json` but is {}, not text", f.name(), f.data_type()),
                ));
            }
            let sql = match params {
                Some((p, s)) => format!("{kind}({p}, {s})"),
                None => kind.to_string(),
            };
            layout.target_defs.push(format!("{} {}", quote(f.name()), if is_json { "JSON" } else { &sql }));
            let mut field = json!({"name": f.name(), "type": kind, "mode": "NULLABLE"});
            if let Some((p, s)) = params {
                field["precision"] = json!(p.to_string());
                field["scale"] = json!(s.to_string());
            }
            layout.staging_fields.push(field);
            if is_json {
                layout.json.push(f.name().clone());
            }
            fields.push(Field::new(f.name(), cast.clone().unwrap_or_else(|| f.data_type().clone()), true));
            layout.casts.push(cast);
            layout.columns.push(f.name().clone());
        }
        if let Some(missing) = json_columns.iter().find(|v| schema.field_with_name(v).is_err()) {
            return Err(Error::config(Default::default(), format!("`json` names `{missing}`, which the output lacks")));
        }
        layout.parquet = Arc::new(Schema::new(fields));
        Ok(layout)
    }

    fn parquet_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        crate::parquet_chunks::staged_batch(batch, &self.parquet, &self.casts)
    }

    /// The value inserted for column `name` of the staging table aliased `s`.
    fn value(&self, name: &str) -> String {
        if self.json.iter().any(|j| j == name) {
            format!("PARSE_JSON(s.{})", quote(name))
        } else {
            format!("s.{}", quote(name))
        }
    }
}

/// One load: the rows go to the staging table as each file fills; [`SinkLoad::commit`] moves them into the target.
pub struct BigQueryLoad {
    target: LoadTarget,
    chunks: ParquetChunks,
    /// Whether the load ended through its commit (which deletes the staging tables).
    finished: bool,
}

/// Where one load goes: the client, the target and this load's staging tables.
struct LoadTarget {
    client: Client,
    config: BigQuerySinkConfig,
    layout: Layout,
    id: String,
}

impl std::fmt::Debug for BigQueryLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BigQueryLoad")
            .field("table", &self.target.config.table)
            .field("rows", &self.chunks.rows)
            .finish()
    }
}

impl BigQueryLoad {
    async fn begin(settings: &Settings, config: &BigQuerySinkConfig, schema: &Schema) -> Result<BigQueryLoad> {
        let layout = Layout::of(schema, &config.json)?;
        let client = Client::connect(settings).await?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let chunks = ParquetChunks::new(layout.parquet.clone(), config.file_mb);
        let target = LoadTarget { client, config: config.clone(), layout, id };
        let (dataset, _) = config.dataset_and_table();
        target
            .client
            .create_table(dataset, &target.staging("load"), &target.layout.staging_fields, STAGING_EXPIRES)
            .await?;
        Ok(BigQueryLoad { target, chunks, finished: false })
    }

    async fn upload(&mut self, file: Option<Vec<u8>>) -> Result<()> {
        if let Some(file) = file {
            let (dataset, _) = self.target.config.dataset_and_table();
            self.target.client.load_parquet(dataset, &self.target.staging("load"), file).await?;
        }
        Ok(())
    }

    async fn finish(mut self, rejects: Option<RejectRows>) -> Result<u64> {
        self.finished = true;
        let result = match self.chunks.finish() {
            Ok(last) => match self.upload(last).await {
                Ok(()) => self.target.load(self.chunks.rows, self.chunks.files, rejects).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (dataset, _) = self.target.config.dataset_and_table();
        for what in ["load", "rejects"] {
            let _ = self.target.client.delete_table(dataset, &self.target.staging(what)).await;
        }
        result
    }
}

impl LoadTarget {
    /// A staging table's name beside the target (`<table>__weir_load_<id>`, `<table>__weir_rejects_<id>`).
    fn staging(&self, what: &str) -> String {
        format!("{}__weir_{what}_{}", self.config.dataset_and_table().1, self.id)
    }

    fn qualified(&self, table: &str) -> String {
        let (dataset, _) = self.config.dataset_and_table();
        format!("{}.{}.{}", quote(self.client.project()), quote(dataset), quote(table))
    }

    /// Moves the `rows` staged (in `files` files) and the rejects into the target.
    async fn load(&self, rows: u64, files: usize, rejects: Option<RejectRows>) -> Result<u64> {
        tracing::info!(table = %self.config.table, files, rows, "staged for bigquery");
        self.check_staged(&self.staging("load"), rows).await?;
        let (_, table) = self.config.dataset_and_table();
        let target = self.qualified(table);
        let staging = self.qualified(&self.staging("load"));
        // DDL first, each its own job: the transaction holds only DML.
        let (dataset, _) = self.config.dataset_and_table();
        match self.client.table_columns(dataset, table).await? {
            None => {
                let defs = self.layout.target_defs.join(", ");
                self.client.run(&format!("CREATE TABLE IF NOT EXISTS {target} ({defs})")).await?;
            }
            Some(existing) => {
                let new = self.layout.columns.iter().zip(&self.layout.target_defs);
                for (_, def) in new.filter(|(c, _)| !existing.iter().any(|e| e.eq_ignore_ascii_case(c))) {
                    self.client.run(&format!("ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {def}")).await?;
                }
            }
        }
        if self.config.mode == LoadMode::Merge {
            self.check_merge_keys(&staging).await?;
        }
        let rejects = self.stage_rejects(rejects).await?;

        let cols = self.layout.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let values = self.layout.columns.iter().map(|c| self.layout.value(c)).collect::<Vec<_>>().join(", ");
        let insert = format!("INSERT INTO {target} ({cols}) SELECT {values} FROM {staging} AS s");
        let mut script = vec!["BEGIN TRANSACTION".to_string()];
        match self.config.mode {
            LoadMode::Append => script.push(insert),
            LoadMode::Replace => script.extend([format!("DELETE FROM {target} WHERE TRUE"), insert]),
            LoadMode::Merge => script.push(self.merge(&target, &staging)),
        }
        if let Some((table, staged, columns)) = &rejects {
            if self.config.mode == LoadMode::Replace {
                script.push(format!("DELETE FROM {table} WHERE TRUE"));
            }
            script.push(format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}"));
        }
        script.push("COMMIT TRANSACTION".into());
        weir_core::failpoint::hit("warehouse_before_commit");
        self.client.run(&(script.join(";\n") + ";")).await?;
        Ok(rows)
    }

    /// Fails unless the staging table holds the `rows` sent: counted, not summed from the load jobs' statistics
    /// (which bqemulator reports as the table's total after each job).
    async fn check_staged(&self, staging: &str, rows: u64) -> Result<()> {
        let counted = self.client.query(&format!("SELECT count(*) FROM {}", self.qualified(staging))).await?;
        let counted: u64 =
            counted.first().and_then(|r| r.first().cloned().flatten()).and_then(|n| n.parse().ok()).unwrap_or(0);
        if counted != rows {
            return Err(Error::external_final(
                "bigquery",
                format!("the staging table holds {counted} of the {rows} rows sent; nothing was committed"),
            ));
        }
        Ok(())
    }

    fn merge(&self, target: &str, staging: &str) -> String {
        let on = self.config.keys.iter().map(|k| format!("t.{0} = s.{0}", quote(k))).collect::<Vec<_>>().join(" AND ");
        let set: Vec<String> = self
            .layout
            .columns
            .iter()
            .filter(|c| !self.config.keys.contains(c))
            .map(|c| format!("{} = {}", quote(c), self.layout.value(c)))
            .collect();
        let cols = self.layout.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let values = self.layout.columns.iter().map(|c| self.layout.value(c)).collect::<Vec<_>>().join(", ");
        let matched =
            if set.is_empty() { String::new() } else { format!(" WHEN MATCHED THEN UPDATE SET {}", set.join(", ")) };
        format!("MERGE {target} AS t USING {staging} AS s ON {on}{matched} WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})")
    }

    /// Fails the merge when its keys are duplicated or NULL in this load, naming a few.
    async fn check_merge_keys(&self, staging: &str) -> Result<()> {
        let keys: Vec<String> = self.config.keys.iter().map(|k| quote(k)).collect();
        for (sql, what) in merge_key_problems(staging, &keys, &|k| format!("CAST({k} AS STRING)")) {
            let found = self.client.query(&sql).await?;
            if !found.is_empty() {
                let examples = key_examples(&found);
                return Err(merge_key_error(&self.config.table, &self.config.keys, &what, &examples));
            }
        }
        Ok(())
    }

    /// Loads the task's rejects (when there are any) into their own staging table: returns the quarantine table,
    /// that staging table and its columns. With `replace` an empty quarantine is still emptied.
    async fn stage_rejects(&self, rejects: Option<RejectRows>) -> Result<Option<(String, String, String)>> {
        let Some(mut rejects) = rejects else { return Ok(None) };
        let first = rejects.first()?;
        if first.is_none() && self.config.mode != LoadMode::Replace {
            return Ok(None);
        }
        let layout = Layout::of(&rejects.schema, &[])?;
        let (dataset, table) = self.config.dataset_and_table();
        let quarantine = self.qualified(&RejectRows::table_of(table));
        self.client
            .run(&format!("CREATE TABLE IF NOT EXISTS {quarantine} ({})", layout.target_defs.join(", ")))
            .await?;
        let staged = self.staging("rejects");
        self.client.create_table(dataset, &staged, &layout.staging_fields, STAGING_EXPIRES).await?;
        let mut chunks = ParquetChunks::new(layout.parquet.clone(), self.config.file_mb);
        for batch in first.into_iter().map(Ok).chain(rejects.batches) {
            if let Some(file) = chunks.write(&layout.parquet_batch(&batch?)?)? {
                self.client.load_parquet(dataset, &staged, file).await?;
            }
        }
        if let Some(file) = chunks.finish()? {
            self.client.load_parquet(dataset, &staged, file).await?;
        }
        self.check_staged(&staged, chunks.rows).await?;
        let columns = layout.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        Ok(Some((quarantine, self.qualified(&staged), columns)))
    }
}

impl Drop for BigQueryLoad {
    /// A load dropped without a commit (a failed check) deletes its staging table at once rather than let it expire.
    fn drop(&mut self) {
        if let (false, Ok(runtime)) = (self.finished, tokio::runtime::Handle::try_current()) {
            let client = self.target.client.clone();
            let (dataset, _) = self.target.config.dataset_and_table();
            let (dataset, table) = (dataset.to_string(), self.target.staging("load"));
            runtime.spawn(async move { client.delete_table(&dataset, &table).await });
        }
    }
}

impl SinkLoad for BigQueryLoad {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let batch = self.target.layout.parquet_batch(batch)?;
            let file = self.chunks.write(&batch)?;
            self.upload(file).await
        })
    }

    fn commit(self: Box<Self>, rejects: Option<RejectRows>) -> BoxFuture<'static, Result<u64>> {
        Box::pin((*self).finish(rejects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_exactly() {
        let t = |d: DataType| bigquery_type(&d).unwrap();
        assert_eq!(t(DataType::Decimal128(12, 2)).0, "NUMERIC");
        assert_eq!(t(DataType::Decimal128(38, 10)).0, "BIGNUMERIC");
        assert_eq!(t(DataType::Decimal128(38, 0)).0, "BIGNUMERIC");
        assert_eq!(t(DataType::Timestamp(TimeUnit::Microsecond, None)).0, "DATETIME");
        assert_eq!(t(DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))).0, "TIMESTAMP");
        assert_eq!(quote("a`b"), "`a\\`b`");
    }
}
