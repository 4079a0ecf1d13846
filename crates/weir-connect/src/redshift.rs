//! `type: redshift` sink: loads a task's output into an Amazon Redshift table. Redshift speaks PostgreSQL's protocol
//! but has no `COPY FROM STDIN`, so it loads as dlt and Airbyte do: the rows are written as Parquet files to S3 while
//! the task streams, then, in one transaction, `COPY ... FROM 's3://...' IAM_ROLE ... FORMAT AS PARQUET` fills a
//! temporary staging table and the write mode moves the rows into the target.
//!
//! ```yaml
//! sink:
//!   type: redshift
//!   connection: redshift
//!   table: marts.daily_revenue   # schema.table
//!   mode: merge                  # replace | append | merge
//!   keys: [order_date, country]
//! ```
//!
//! with the connection in weir.yaml:
//!
//! ```yaml
//! connections:
//!   redshift:
//!     type: redshift
//!     host: analytics.abc123.eu-west-1.redshift.amazonaws.com
//!     user: loader
//!     password: ${env:REDSHIFT_PASSWORD}
//!     dbname: analytics
//!     sslmode: require
//!     staging: s3://my-bucket/weir-staging   # where the Parquet files go (deleted after each load)
//!     iam_role: arn:aws:iam::123456789012:role/RedshiftCopy
//!     storage: {region: eu-west-1}           # how weir writes to the bucket, as `lake.storage` (keys, endpoint)
//! ```
//!
//! * `append` inserts; `replace` deletes the table's rows and inserts the new ones; `merge` deletes the rows whose
//!   keys match (`DELETE ... USING`) and inserts the staged rows (keys duplicated or NULL within one load fail it,
//!   naming them). The task's rejects land in `<table>__rejected` in the same transaction. Readers see the old rows
//!   until the commit.
//! * The table is created when missing and gains the output's new columns, inside the transaction (Redshift's DDL is
//!   transactional).
//! * A failed check, statement or upload, or a killed process, leaves the target as it was; the staged files are
//!   deleted after the load (a killed process leaves its own under `staging/<load id>/`).
//!
//! Not tested against Redshift itself (no emulator exists): the S3 half runs against moto in the tests, and the SQL
//! is checked statement by statement against the text below.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::future::BoxFuture;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Deserialize;
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::connection::{
    key_examples, merge_key_error, merge_key_problems, quote_ident as quote, quoted_all, RejectRows,
};
use crate::connector::{BatchSink, ConnectorRun, LoadMode, SinkKind, SinkLoad};
use crate::parquet_chunks::ParquetChunks;
use crate::postgres::pg_error;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedshiftSinkConfig {
    /// A weir.yaml connection of `type: redshift`.
    pub connection: String,
    /// `schema.table` or `table`.
    pub table: String,
    #[serde(default)]
    pub mode: LoadMode,
    #[serde(default)]
    pub keys: Vec<String>,
    /// Megabytes of Parquet per staged file (64 unless set).
    #[serde(default = "crate::parquet_chunks::default_file_mb")]
    pub file_mb: usize,
}

/// `type: redshift` as a sink.
pub const SINK: SinkKind =
    SinkKind { name: "redshift", parse: |n| RedshiftSinkConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSink>) };

impl RedshiftSinkConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: RedshiftSinkConfig = from_node(node, &["type"])?;
        let mut diags = Vec::new();
        diags.extend(cfg.mode.keys_problem(node, &cfg.keys));
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !cfg.table.split('.').all(valid) || cfg.table.split('.').count() > 2 {
            diags.push(Diagnostic::at(
                node.get("table").unwrap_or(node),
                format!("`{}` is not `schema.table`", cfg.table),
            ));
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }
}

impl BatchSink for RedshiftSinkConfig {
    fn kind(&self) -> &str {
        "redshift"
    }

    fn table(&self) -> &str {
        &self.table
    }

    fn mode(&self) -> LoadMode {
        self.mode
    }

    fn begin<'a>(&'a self, run: ConnectorRun<'a>, schema: &'a Schema) -> BoxFuture<'a, Result<Box<dyn SinkLoad>>> {
        Box::pin(async move {
            let connection = run.connection(&self.connection, "redshift", "a redshift sink")?;
            let staging = Staging::of(connection)?;
            let url = crate::connection::connection_url(connection)?;
            Ok(Box::new(RedshiftLoad::begin(&url, staging, self, schema).await?) as Box<dyn SinkLoad>)
        })
    }
}

/// Where a connection stages files: the S3 prefix, the role Redshift reads it with, and the store weir writes with.
struct Staging {
    url: url::Url,
    iam_role: String,
    store: Arc<dyn ObjectStore>,
}

impl Staging {
    fn of(connection: &weir_config::project::Connection) -> Result<Staging> {
        let at = |msg: String| Error::config(Default::default(), format!("connection `{}`: {msg}", connection.name));
        let get = |k: &str| crate::connection::setting(connection, k);
        let staging =
            get("staging")?.ok_or_else(|| at("a redshift connection needs `staging: s3://bucket/prefix`".into()))?;
        let iam_role = get("iam_role")?
            .ok_or_else(|| at("a redshift connection needs `iam_role` (the role COPY reads S3 with)".into()))?;
        let url = url::Url::parse(&format!("{}/", staging.trim_end_matches('/')))
            .ok()
            .filter(|u| u.scheme() == "s3")
            .ok_or_else(|| at(format!("`staging: {staging}` is not an s3:// URL")))?;
        let mut options = HashMap::new();
        if let Some(storage) = connection.node.get("storage").and_then(|s| s.as_map()) {
            for (k, v) in storage {
                if let (Some(k), Some(v)) = (k.as_str(), v.as_str()) {
                    let v = weir_config::project::resolve_env(v).map_err(|e| at(format!("`storage.{k}`: {e}")))?;
                    options.insert(k.to_string(), v);
                }
            }
        }
        let (store, _) =
            object_store::parse_url_opts(&url, options).map_err(|e| at(format!("`staging: {staging}`: {e}")))?;
        Ok(Staging { url, iam_role, store: Arc::from(store) })
    }
}

/// The Redshift column type of an Arrow type, and the type to write to Parquet when it differs.
fn redshift_type(t: &DataType) -> std::result::Result<(String, Option<DataType>), String> {
    Ok(match t {
        DataType::Boolean => ("BOOLEAN".into(), None),
        DataType::Int8 | DataType::Int16 => ("SMALLINT".into(), Some(DataType::Int16)),
        DataType::UInt8 => ("SMALLINT".into(), Some(DataType::Int16)),
        DataType::Int32 => ("INTEGER".into(), None),
        DataType::UInt16 => ("INTEGER".into(), Some(DataType::Int32)),
        DataType::Int64 => ("BIGINT".into(), None),
        DataType::UInt32 => ("BIGINT".into(), Some(DataType::Int64)),
        DataType::UInt64 => ("DECIMAL(20,0)".into(), Some(DataType::Decimal128(20, 0))),
        DataType::Float16 | DataType::Float32 => ("REAL".into(), Some(DataType::Float32)),
        DataType::Float64 => ("DOUBLE PRECISION".into(), None),
        // VARCHAR(MAX) in Redshift's words (65535 bytes, its longest).
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("VARCHAR(65535)".into(), None),
        DataType::Null => ("VARCHAR(65535)".into(), Some(DataType::Utf8)),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ("VARBYTE(1024000)".into(), None),
        DataType::Date32 => ("DATE".into(), None),
        DataType::Date64 => ("DATE".into(), Some(DataType::Date32)),
        // Redshift keeps microseconds.
        DataType::Timestamp(unit, tz) => {
            let cast = (*unit != TimeUnit::Microsecond).then(|| DataType::Timestamp(TimeUnit::Microsecond, tz.clone()));
            (if tz.is_some() { "TIMESTAMPTZ" } else { "TIMESTAMP" }.into(), cast)
        }
        DataType::Time64(TimeUnit::Microsecond) => ("TIME".into(), None),
        DataType::Time32(_) | DataType::Time64(_) => ("TIME".into(), Some(DataType::Time64(TimeUnit::Microsecond))),
        DataType::Decimal128(p, s) if *s >= 0 => (format!("DECIMAL({p},{s})"), None),
        other => return Err(format!("Arrow type {other} has no Redshift column type here; cast it first")),
    })
}

/// A table's columns, their Redshift types and the Parquet schema the staged files have.
#[derive(Debug, Clone)]
struct Layout {
    columns: Vec<String>,
    /// `"name" TYPE`.
    defs: Vec<String>,
    parquet: SchemaRef,
    casts: Vec<Option<DataType>>,
}

impl Layout {
    fn of(schema: &Schema) -> Result<Layout> {
        let (mut columns, mut defs, mut fields, mut casts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for f in schema.fields() {
            let (sql, cast) = redshift_type(f.data_type())
                .map_err(|e| Error::data(Default::default(), format!("column `{}`: {e}", f.name())))?;
            defs.push(format!("{} {sql}", quote(f.name())));
            fields.push(Field::new(f.name(), cast.clone().unwrap_or_else(|| f.data_type().clone()), true));
            casts.push(cast);
            columns.push(f.name().clone());
        }
        Ok(Layout { columns, defs, parquet: Arc::new(Schema::new(fields)), casts })
    }

    fn parquet_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        crate::parquet_chunks::staged_batch(batch, &self.parquet, &self.casts)
    }
}

/// The statements of one load, in order, as Redshift receives them (between `BEGIN` and `COMMIT`).
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// Before the staged rows are checked: the tables and the COPY (none when no file was staged: Redshift fails a
    /// COPY from an empty prefix).
    load: Vec<String>,
    /// After: the write mode and the rejects.
    apply: Vec<String>,
}

/// What one load writes where: the target, its layout and the S3 prefixes of its staged files.
struct LoadSql<'a> {
    config: &'a RedshiftSinkConfig,
    layout: &'a Layout,
    /// Columns the target already has (None: it does not exist).
    existing: Option<&'a [String]>,
    rows_prefix: String,
    iam_role: &'a str,
    /// The rejects' layout and prefix (empty: no file, only a quarantine to empty), when the load has rejects.
    rejects: Option<(&'a Layout, String)>,
}

fn qualified(table: &str) -> String {
    table.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// The temporary table a load stages `what` in (`<table>__weir_load`, `<table>__weir_rejects`), quoted.
fn staging_table(table: &str, what: &str) -> String {
    quote(&format!("{}__weir_{what}", table.rsplit('.').next().unwrap_or(table)))
}

/// A string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl LoadSql<'_> {
    fn staging(&self) -> String {
        staging_table(&self.config.table, "load")
    }

    fn copy(&self, table: &str, layout: &Layout, prefix: &str) -> String {
        let cols = layout.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        format!("COPY {table} ({cols}) FROM {} IAM_ROLE {} FORMAT AS PARQUET", literal(prefix), literal(self.iam_role))
    }

    fn plan(&self) -> Plan {
        let target = qualified(&self.config.table);
        let staging = self.staging();
        let mut load = Vec::new();
        match self.existing {
            None => load.push(format!("CREATE TABLE IF NOT EXISTS {target} ({})", self.layout.defs.join(", "))),
            Some(existing) => {
                for (c, def) in self.layout.columns.iter().zip(&self.layout.defs) {
                    if !existing.iter().any(|e| e.eq_ignore_ascii_case(c)) {
                        load.push(format!("ALTER TABLE {target} ADD COLUMN {def}"));
                    }
                }
            }
        }
        load.push(format!("CREATE TEMP TABLE {staging} ({})", self.layout.defs.join(", ")));
        if !self.rows_prefix.is_empty() {
            load.push(self.copy(&staging, self.layout, &self.rows_prefix));
        }

        let cols = self.layout.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let insert = format!("INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging}");
        let mut apply = Vec::new();
        match self.config.mode {
            LoadMode::Append => apply.push(insert),
            LoadMode::Replace => apply.extend([format!("DELETE FROM {target}"), insert]),
            LoadMode::Merge => {
                let on = self
                    .config
                    .keys
                    .iter()
                    .map(|k| format!("{target}.{0} = {staging}.{0}", quote(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                apply.extend([format!("DELETE FROM {target} USING {staging} WHERE {on}"), insert]);
            }
        }
        if let Some((layout, prefix)) = &self.rejects {
            let quarantine = qualified(&RejectRows::table_of(&self.config.table));
            let staged = staging_table(&self.config.table, "rejects");
            load.push(format!("CREATE TABLE IF NOT EXISTS {quarantine} ({})", layout.defs.join(", ")));
            load.push(format!("CREATE TEMP TABLE {staged} ({})", layout.defs.join(", ")));
            if !prefix.is_empty() {
                load.push(self.copy(&staged, layout, prefix));
            }
            if self.config.mode == LoadMode::Replace {
                apply.push(format!("DELETE FROM {quarantine}"));
            }
            let cols = layout.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            apply.push(format!("INSERT INTO {quarantine} ({cols}) SELECT {cols} FROM {staged}"));
        }
        Plan { load, apply }
    }
}

/// One load: the rows go to S3 as each file fills; [`SinkLoad::commit`] copies them in and applies the mode.
pub struct RedshiftLoad {
    target: Target,
    chunks: ParquetChunks,
}

/// Where one load goes: the connection, the S3 prefix of its files and the table.
struct Target {
    client: tokio_postgres::Client,
    staging: Staging,
    config: RedshiftSinkConfig,
    layout: Layout,
    /// `<staging>/weir-<load id>/`.
    prefix: object_store::path::Path,
}

impl std::fmt::Debug for RedshiftLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedshiftLoad")
            .field("table", &self.target.config.table)
            .field("rows", &self.chunks.rows)
            .finish()
    }
}

impl RedshiftLoad {
    async fn begin(url: &str, staging: Staging, config: &RedshiftSinkConfig, schema: &Schema) -> Result<RedshiftLoad> {
        let layout = Layout::of(schema)?;
        let client = crate::postgres::connect(url).await?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let base = object_store::path::Path::from(staging.url.path().trim_matches('/'));
        let prefix = base.clone().join(format!("weir-{id}"));
        let chunks = ParquetChunks::new(layout.parquet.clone(), config.file_mb);
        Ok(RedshiftLoad { target: Target { client, staging, config: config.clone(), layout, prefix }, chunks })
    }

    async fn finish(mut self, rejects: Option<RejectRows>) -> Result<u64> {
        let staged = match self.chunks.finish() {
            Ok(Some(file)) => self.target.upload("rows", self.chunks.files, file).await,
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        let result = match staged {
            Ok(()) => self.target.load(self.chunks.rows, self.chunks.files, rejects).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            let _ = self.target.client.batch_execute("ROLLBACK").await;
        }
        self.target.delete_staged().await;
        result
    }
}

impl Target {
    /// `s3://bucket/<prefix>/<what>/`, as COPY reads it.
    fn s3_url(&self, what: &str) -> String {
        format!("s3://{}/{}/{what}/", self.staging.url.host_str().unwrap_or_default(), self.prefix)
    }

    async fn upload(&self, what: &str, number: usize, file: Vec<u8>) -> Result<()> {
        let path = self.prefix.clone().join(what).join(format!("part-{number:05}.parquet"));
        self.staging
            .store
            .put(&path, file.into())
            .await
            .map_err(|e| Error::external("redshift staging", format!("{}: {e}", self.s3_url(what))))?;
        Ok(())
    }

    /// Deletes the load's files: they were read, or they never will be.
    async fn delete_staged(&self) {
        use futures::StreamExt;
        let listed: Vec<_> = self.staging.store.list(Some(&self.prefix)).collect().await;
        for meta in listed.into_iter().flatten() {
            let _ = self.staging.store.delete(&meta.location).await;
        }
    }

    /// Copies the `files` staged (holding `rows`) and the rejects in, and applies the mode, in one transaction.
    async fn load(&self, rows: u64, files: usize, rejects: Option<RejectRows>) -> Result<u64> {
        tracing::info!(table = %self.config.table, files, rows, "staged for redshift");
        let rejects = self.stage_rejects(rejects).await?;
        weir_core::failpoint::hit("redshift_after_staging");
        let failed = |sql: &str, e: tokio_postgres::Error| {
            let head = crate::connection::statement_head(sql);
            Error::data(Default::default(), format!("redshift `{head}` failed: {}", pg_error(&e)))
        };
        self.client.batch_execute("BEGIN").await.map_err(|e| failed("BEGIN", e))?;
        let existing = self.columns().await?;
        let plan = LoadSql {
            config: &self.config,
            layout: &self.layout,
            existing: existing.as_deref(),
            rows_prefix: if files == 0 { String::new() } else { self.s3_url("rows") },
            iam_role: &self.staging.iam_role,
            rejects: rejects
                .as_ref()
                .map(|(layout, files)| (layout, if *files == 0 { String::new() } else { self.s3_url("rejects") })),
        }
        .plan();
        for sql in &plan.load {
            self.client.batch_execute(sql).await.map_err(|e| failed(sql, e))?;
        }
        if self.config.mode == LoadMode::Merge {
            self.check_merge_keys().await?;
        }
        for sql in &plan.apply {
            self.client.batch_execute(sql).await.map_err(|e| failed(sql, e))?;
        }
        weir_core::failpoint::hit("warehouse_before_commit");
        self.client.batch_execute("COMMIT").await.map_err(|e| failed("COMMIT", e))?;
        Ok(rows)
    }

    /// The target's columns, or None when it does not exist (Redshift has no `ADD COLUMN IF NOT EXISTS`).
    async fn columns(&self) -> Result<Option<Vec<String>>> {
        let (schema, table) = self.config.table.split_once('.').unwrap_or(("public", &self.config.table));
        let rows = self
            .client
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
                &[&schema, &table],
            )
            .await
            .map_err(|e| {
                Error::data(Default::default(), format!("redshift columns of {}: {}", self.config.table, pg_error(&e)))
            })?;
        Ok((!rows.is_empty()).then(|| rows.iter().map(|r| r.get::<_, String>(0)).collect()))
    }

    async fn check_merge_keys(&self) -> Result<()> {
        let staging = staging_table(&self.config.table, "load");
        for (sql, what) in merge_key_problems(&staging, &quoted_all(&self.config.keys), &|k| format!("{k}::text")) {
            let rows = self.client.query(&sql, &[]).await.map_err(|e| {
                Error::data(Default::default(), format!("redshift merge into {}: {}", self.config.table, pg_error(&e)))
            })?;
            if !rows.is_empty() {
                let rows: Vec<Vec<Option<String>>> = rows
                    .iter()
                    .map(|r| (0..self.config.keys.len()).map(|i| r.get::<_, Option<String>>(i)).collect())
                    .collect();
                let examples = key_examples(&rows);
                return Err(merge_key_error(&self.config.table, &self.config.keys, &what, &examples));
            }
        }
        Ok(())
    }

    /// Uploads the task's rejects; returns their layout and how many files hold them (None: nothing to do).
    async fn stage_rejects(&self, rejects: Option<RejectRows>) -> Result<Option<(Layout, usize)>> {
        let Some(mut rejects) = rejects else { return Ok(None) };
        let first = rejects.first()?;
        if first.is_none() && self.config.mode != LoadMode::Replace {
            return Ok(None);
        }
        let layout = Layout::of(&rejects.schema)?;
        let mut chunks = ParquetChunks::new(layout.parquet.clone(), self.config.file_mb);
        for batch in first.into_iter().map(Ok).chain(rejects.batches) {
            if let Some(file) = chunks.write(&layout.parquet_batch(&batch?)?)? {
                self.upload("rejects", chunks.files, file).await?;
            }
        }
        if let Some(file) = chunks.finish()? {
            self.upload("rejects", chunks.files, file).await?;
        }
        Ok(Some((layout, chunks.files)))
    }
}

impl SinkLoad for RedshiftLoad {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let batch = self.target.layout.parquet_batch(batch)?;
            match self.chunks.write(&batch)? {
                Some(file) => self.target.upload("rows", self.chunks.files, file).await,
                None => Ok(()),
            }
        })
    }

    fn commit(self: Box<Self>, rejects: Option<RejectRows>) -> BoxFuture<'static, Result<u64>> {
        Box::pin((*self).finish(rejects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: LoadMode, keys: &[&str]) -> RedshiftSinkConfig {
        RedshiftSinkConfig {
            connection: "rs".into(),
            table: "marts.revenue".into(),
            mode,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            file_mb: 64,
        }
    }

    fn layout() -> Layout {
        Layout::of(&Schema::new(vec![
            Field::new("day", DataType::Date32, true),
            Field::new("country", DataType::Utf8, true),
            Field::new("revenue", DataType::Decimal128(12, 2), true),
        ]))
        .unwrap()
    }

    /// The statements each mode sends, word for word: the recording Redshift would receive.
    #[test]
    fn each_mode_sends_these_statements() {
        let layout = layout();
        let rejects = Layout::of(&Schema::new(vec![Field::new("value", DataType::Utf8, true)])).unwrap();
        let existing = vec!["day".to_string(), "country".to_string()];
        let sql = |mode, keys: &[&str], existing: Option<&[String]>, with_rejects: bool| {
            let config = config(mode, keys);
            LoadSql {
                config: &config,
                layout: &layout,
                existing,
                rows_prefix: "s3://bucket/staging/weir-1/rows/".into(),
                iam_role: "arn:aws:iam::123:role/Copy",
                rejects: with_rejects.then(|| (&rejects, "s3://bucket/staging/weir-1/rejects/".to_string())),
            }
            .plan()
        };
        let copy = "COPY \"revenue__weir_load\" (\"day\", \"country\", \"revenue\") FROM 's3://bucket/staging/weir-1/rows/' IAM_ROLE 'arn:aws:iam::123:role/Copy' FORMAT AS PARQUET";
        let stage = "CREATE TEMP TABLE \"revenue__weir_load\" (\"day\" DATE, \"country\" VARCHAR(65535), \"revenue\" DECIMAL(12,2))";
        let insert = "INSERT INTO \"marts\".\"revenue\" (\"day\", \"country\", \"revenue\") SELECT \"day\", \"country\", \"revenue\" FROM \"revenue__weir_load\"";
        assert_eq!(
            sql(LoadMode::Append, &[], None, false),
            Plan {
                load: vec![
                    "CREATE TABLE IF NOT EXISTS \"marts\".\"revenue\" (\"day\" DATE, \"country\" VARCHAR(65535), \"revenue\" DECIMAL(12,2))".into(),
                    stage.into(),
                    copy.into(),
                ],
                apply: vec![insert.into()],
            }
        );
        assert_eq!(
            sql(LoadMode::Merge, &["day", "country"], Some(&existing), false),
            Plan {
                load: vec![
                    "ALTER TABLE \"marts\".\"revenue\" ADD COLUMN \"revenue\" DECIMAL(12,2)".into(),
                    stage.into(),
                    copy.into(),
                ],
                apply: vec![
                    "DELETE FROM \"marts\".\"revenue\" USING \"revenue__weir_load\" WHERE \"marts\".\"revenue\".\"day\" = \"revenue__weir_load\".\"day\" AND \"marts\".\"revenue\".\"country\" = \"revenue__weir_load\".\"country\"".into(),
                    insert.into(),
                ],
            }
        );
        let all = ["day".to_string(), "country".to_string(), "revenue".to_string()];
        assert_eq!(
            sql(LoadMode::Replace, &[], Some(&all), true),
            Plan {
                load: vec![
                    stage.into(),
                    copy.into(),
                    "CREATE TABLE IF NOT EXISTS \"marts\".\"revenue__rejected\" (\"value\" VARCHAR(65535))".into(),
                    "CREATE TEMP TABLE \"revenue__weir_rejects\" (\"value\" VARCHAR(65535))".into(),
                    "COPY \"revenue__weir_rejects\" (\"value\") FROM 's3://bucket/staging/weir-1/rejects/' IAM_ROLE 'arn:aws:iam::123:role/Copy' FORMAT AS PARQUET".into(),
                ],
                apply: vec![
                    "DELETE FROM \"marts\".\"revenue\"".into(),
                    insert.into(),
                    "DELETE FROM \"marts\".\"revenue__rejected\"".into(),
                    "INSERT INTO \"marts\".\"revenue__rejected\" (\"value\") SELECT \"value\" FROM \"revenue__weir_rejects\"".into(),
                ],
            }
        );
    }

    #[test]
    fn quotes_in_a_role_cannot_end_the_literal() {
        assert_eq!(literal("a'b"), "'a''b'");
    }
}
