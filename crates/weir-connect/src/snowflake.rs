//! `type: snowflake` sink: loads a task's output into a Snowflake table the way Snowflake recommends for bulk data:
//! the rows are written as Parquet files, `PUT` to a temporary stage of the session as they stream, copied into a
//! staging table (`COPY INTO ... MATCH_BY_COLUMN_NAME`), then moved into the target in one transaction.
//!
//! ```yaml
//! sink:
//!   type: snowflake
//!   connection: snow
//!   table: marts.daily_revenue   # [database.]schema.table, or table (the connection's schema)
//!   mode: merge                  # replace | append | merge
//!   keys: [order_date, country]
//!   variant: [attributes]        # text columns holding JSON, stored as VARIANT
//! ```
//!
//! with the connection in weir.yaml (secrets from `${env:..}` or `${file:..}`, read at run time only):
//!
//! ```yaml
//! connections:
//!   snow:
//!     type: snowflake
//!     account: myorg-myaccount
//!     user: LOADER
//!     private_key: ${file:keys/loader.p8}   # an unencrypted PKCS#8 key; or password: ${env:SNOWFLAKE_PASSWORD}
//!     warehouse: LOAD_WH
//!     database: ANALYTICS
//!     schema: MARTS
//!     role: LOADER
//!     # url: https://proxy.example.com   # instead of https://ACCOUNT.snowflakecomputing.com
//! ```
//!
//! * Names are Snowflake's: a plain name (`order_date`) becomes the unquoted-style `ORDER_DATE`, so BI tools query it
//!   without quotes; any other name (`Order Date`) is kept exactly, quoted.
//! * `append` inserts the rows; `replace` deletes the table's rows and inserts the new ones; `merge` updates the rows
//!   whose keys match and inserts the others (keys duplicated or NULL within one load fail it, naming them). Each
//!   runs in one transaction with the task's rejects, which land in `<table>__rejected` beside the target (replaced
//!   with `replace`, added otherwise). Readers see the old rows until the commit, never an empty table.
//! * The table is created when missing and gains the output's new columns (DDL, which Snowflake commits on its own,
//!   before the transaction); it is never dropped, so its grants and the views on it stay.
//! * A failed check, a failed statement or a killed process leaves the target as it was: the staging tables are
//!   transient tables named `<table>__WEIR_LOAD_<id>`, dropped after the load (a killed process leaves its own
//!   behind, for `DROP TABLE`).
//! * A process killed inside the transaction leaves it *detached*: Snowflake keeps it open, with its locks, for up to
//!   four hours, and the next load of the table would wait on them. So a load records its session in
//!   `.weir/snowflake/` just before `BEGIN` (removed after the commit or the rollback), and the next load of the same
//!   table from this project ends that session first when the process that wrote it is gone, which rolls the
//!   transaction back. From another machine, `SHOW TRANSACTIONS` and `SYSTEM$ABORT_TRANSACTION` do the same.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::connection::{
    key_examples, merge_key_error, merge_key_problems, merge_statement_list, quote_ident, quoted_all, RejectRows,
};
use crate::connector::{BatchSink, ConnectorRun, LoadMode, SinkKind, SinkLoad};
use crate::parquet_chunks::ParquetChunks;
use crate::snowflake_client::{Session, Settings};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeSinkConfig {
    /// A weir.yaml connection of `type: snowflake`.
    pub connection: String,
    /// `[database.]schema.table` or `table`.
    pub table: String,
    #[serde(default)]
    pub mode: LoadMode,
    #[serde(default)]
    pub keys: Vec<String>,
    /// Megabytes of Parquet per staged file (64 unless set).
    #[serde(default = "crate::parquet_chunks::default_file_mb")]
    pub file_mb: usize,
    /// Text columns that hold JSON, stored as VARIANT (`PARSE_JSON`; a value that is not JSON fails the load).
    #[serde(default)]
    pub variant: Vec<String>,
}

/// `type: snowflake` as a sink.
pub const SINK: SinkKind =
    SinkKind { name: "snowflake", parse: |n| SnowflakeSinkConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSink>) };

impl SnowflakeSinkConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: SnowflakeSinkConfig = from_node(node, &["type"])?;
        let mut diags = Vec::new();
        diags.extend(cfg.mode.keys_problem(node, &cfg.keys));
        let parts = cfg.table.split('.').count();
        if cfg.table.split('.').any(str::is_empty) || parts > 3 {
            diags.push(Diagnostic::at(
                node.get("table").unwrap_or(node),
                format!("`{}` is not `[database.]schema.table`", cfg.table),
            ));
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }
}

impl BatchSink for SnowflakeSinkConfig {
    fn kind(&self) -> &str {
        "snowflake"
    }

    fn table(&self) -> &str {
        &self.table
    }

    fn mode(&self) -> LoadMode {
        self.mode
    }

    fn begin<'a>(&'a self, run: ConnectorRun<'a>, schema: &'a Schema) -> BoxFuture<'a, Result<Box<dyn SinkLoad>>> {
        Box::pin(async move {
            let connection = run.connection(&self.connection, "snowflake", "a snowflake sink")?;
            let settings = Settings::from_connection(connection)?;
            Ok(Box::new(SnowflakeLoad::begin(&settings, self, schema, run.project_dir).await?) as Box<dyn SinkLoad>)
        })
    }
}

/// A name as Snowflake resolves it: a plain name upper-cased (as if written unquoted), any other kept exactly.
fn identifier(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    }
}

fn qualified(table: &str) -> String {
    table.split('.').map(|p| quote_ident(&identifier(p))).collect::<Vec<_>>().join(".")
}

/// The Snowflake column type of an Arrow type, and the type to write to Parquet when it differs.
fn snowflake_type(t: &DataType) -> std::result::Result<(String, Option<DataType>), String> {
    let precision = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    };
    Ok(match t {
        DataType::Boolean => ("BOOLEAN".into(), None),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => ("NUMBER(38,0)".into(), None),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => ("NUMBER(38,0)".into(), Some(DataType::Int64)),
        DataType::UInt64 => ("NUMBER(20,0)".into(), Some(DataType::Decimal128(20, 0))),
        DataType::Float16 => ("FLOAT".into(), Some(DataType::Float64)),
        DataType::Float32 | DataType::Float64 => ("FLOAT".into(), None),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("VARCHAR".into(), None),
        // A column that is null in every row (its type unknown) becomes text.
        DataType::Null => ("VARCHAR".into(), Some(DataType::Utf8)),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ("BINARY".into(), None),
        DataType::Date32 => ("DATE".into(), None),
        DataType::Date64 => ("DATE".into(), Some(DataType::Date32)),
        DataType::Timestamp(unit, None) => (format!("TIMESTAMP_NTZ({})", precision(unit)), None),
        DataType::Timestamp(unit, Some(_)) => (format!("TIMESTAMP_TZ({})", precision(unit)), None),
        DataType::Time32(unit) | DataType::Time64(unit) => (format!("TIME({})", precision(unit)), None),
        DataType::Decimal128(p, s) if *p <= 38 && *s >= 0 => (format!("NUMBER({p},{s})"), None),
        other => return Err(format!("Arrow type {other} has no Snowflake column type here; cast it first")),
    })
}

/// How one load's rows are laid out: the columns as Snowflake names them, their types, and the Parquet schema.
#[derive(Debug, Clone)]
struct Layout {
    /// Snowflake names, in the output's order.
    columns: Vec<String>,
    /// `"NAME" TYPE` of the target table.
    target_defs: Vec<String>,
    /// `"NAME" TYPE` of the staging table (VARIANT columns staged as text).
    staging_defs: Vec<String>,
    /// Columns stored as VARIANT.
    variant: Vec<String>,
    parquet: SchemaRef,
    casts: Vec<Option<DataType>>,
}

impl Layout {
    fn of(schema: &Schema, variant: &[String]) -> Result<Layout> {
        let mut layout = Layout {
            columns: Vec::new(),
            target_defs: Vec::new(),
            staging_defs: Vec::new(),
            variant: Vec::new(),
            parquet: Arc::new(Schema::empty()),
            casts: Vec::new(),
        };
        let mut fields = Vec::new();
        for f in schema.fields() {
            let (sql, cast) = snowflake_type(f.data_type())
                .map_err(|e| Error::data(Default::default(), format!("column `{}`: {e}", f.name())))?;
            let name = identifier(f.name());
            if layout.columns.iter().any(|c| c.eq_ignore_ascii_case(&name)) {
                return Err(Error::data(
                    Default::default(),
                    format!(
                        "column `{}`: Snowflake loads Parquet by name, ignoring case, and another column has this name",
                        f.name()
                    ),
                ));
            }
            let is_variant = variant.contains(f.name());
            if is_variant && !matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
                return Err(Error::data(
                    Default::default(),
                    format!("column `{}` is listed in `variant` but is {}, not text", f.name(), f.data_type()),
                ));
            }
            layout.target_defs.push(format!("{} {}", quote_ident(&name), if is_variant { "VARIANT" } else { &sql }));
            layout.staging_defs.push(format!("{} {sql}", quote_ident(&name)));
            if is_variant {
                layout.variant.push(name.clone());
            }
            fields.push(Field::new(&name, cast.clone().unwrap_or_else(|| f.data_type().clone()), true));
            layout.casts.push(cast);
            layout.columns.push(name);
        }
        if let Some(missing) = variant.iter().find(|v| schema.field_with_name(v).is_err()) {
            return Err(Error::config(
                Default::default(),
                format!("`variant` names `{missing}`, which the output lacks"),
            ));
        }
        layout.parquet = Arc::new(Schema::new(fields));
        Ok(layout)
    }

    /// The batch as it is written to Parquet: the Snowflake names, and types Snowflake reads.
    fn parquet_batch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        crate::parquet_chunks::staged_batch(batch, &self.parquet, &self.casts)
    }

    /// The value inserted into the target for column `name` of the staging table aliased `s`.
    fn value(&self, name: &str) -> String {
        if self.variant.iter().any(|v| v == name) {
            format!("PARSE_JSON(s.{})", quote_ident(name))
        } else {
            format!("s.{}", quote_ident(name))
        }
    }
}

/// Parquet files of one kind of rows, uploaded to the stage as each fills.
struct StagedFiles {
    prefix: String,
    chunks: ParquetChunks,
}

impl StagedFiles {
    fn new(prefix: String, schema: SchemaRef, file_mb: usize) -> StagedFiles {
        StagedFiles { prefix, chunks: ParquetChunks::new(schema, file_mb) }
    }

    async fn write(&mut self, session: &Session, stage: &str, batch: &RecordBatch) -> Result<()> {
        match self.chunks.write(batch)? {
            Some(file) => self.upload(session, stage, file).await,
            None => Ok(()),
        }
    }

    /// Closes the open file and uploads it.
    async fn flush(&mut self, session: &Session, stage: &str) -> Result<()> {
        match self.chunks.finish()? {
            Some(file) => self.upload(session, stage, file).await,
            None => Ok(()),
        }
    }

    /// Uploads a finished file (named by its number, so `&self` is not held while it goes: the writer is not Sync).
    fn upload<'s>(
        &self,
        session: &'s Session,
        stage: &str,
        file: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 's {
        let name = format!("part-{:05}.parquet", self.chunks.files);
        let path = format!("{stage}/{}", self.prefix);
        async move { session.put(&path, &name, file).await }
    }
}

/// One load: the rows go to the stage as they come; [`SinkLoad::commit`] moves them into the target.
pub struct SnowflakeLoad {
    target: LoadTarget,
    rows: StagedFiles,
}

/// Where one load goes: its session, its stage and its tables.
struct LoadTarget {
    session: Option<Session>,
    config: SnowflakeSinkConfig,
    layout: Layout,
    stage: String,
    id: String,
    /// Where the session is recorded while its transaction is open.
    detached: PathBuf,
}

impl std::fmt::Debug for SnowflakeLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnowflakeLoad")
            .field("table", &self.target.config.table)
            .field("rows", &self.rows.chunks.rows)
            .finish()
    }
}

impl SnowflakeLoad {
    async fn begin(
        settings: &Settings,
        config: &SnowflakeSinkConfig,
        schema: &Schema,
        project_dir: &Path,
    ) -> Result<SnowflakeLoad> {
        let layout = Layout::of(schema, &config.variant)?;
        let session = Session::login(settings).await?;
        let detached = DetachedTransaction::path(project_dir, &settings.endpoint, &config.table);
        DetachedTransaction::end(&detached, &settings.endpoint).await;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_ascii_uppercase();
        let stage = format!("WEIR_LOAD_{id}");
        session.execute(&format!("CREATE TEMPORARY STAGE {stage}")).await?;
        let rows = StagedFiles::new("rows".into(), layout.parquet.clone(), config.file_mb);
        let target = LoadTarget { session: Some(session), config: config.clone(), layout, stage, id, detached };
        Ok(SnowflakeLoad { target, rows })
    }

    async fn finish(mut self, rejects: Option<RejectRows>) -> Result<u64> {
        let flushed = self.rows.flush(self.target.session(), &self.target.stage).await;
        let (files, rows) = (self.rows.chunks.files, self.rows.chunks.rows);
        tracing::info!(table = %self.target.config.table, files, rows, "staged for snowflake");
        let result = match flushed {
            Ok(()) => self.target.load(files, rows, rejects).await,
            Err(e) => Err(e),
        };
        let session = self.target.session.take().expect("a load has its session until it ends");
        if result.is_err() {
            let _ = session.execute("ROLLBACK").await;
        }
        let _ = std::fs::remove_file(&self.target.detached);
        for what in ["LOAD", "REJECTS"] {
            let _ = session.execute(&format!("DROP TABLE IF EXISTS {}", self.target.staging_table(what))).await;
        }
        session.close().await;
        result
    }
}

impl LoadTarget {
    fn session(&self) -> &Session {
        self.session.as_ref().expect("a load has its session until it ends")
    }

    /// A transient table beside the target for this load (`<table>__WEIR_LOAD_<id>`, or `..._REJECTS_<id>`).
    fn staging_table(&self, what: &str) -> String {
        let mut parts: Vec<String> = self.config.table.split('.').map(identifier).collect();
        if let Some(last) = parts.last_mut() {
            *last = format!("{last}__WEIR_{what}_{}", self.id);
        }
        parts.iter().map(|p| quote_ident(p)).collect::<Vec<_>>().join(".")
    }

    /// Copies the staged rows (`files` files of `rows` rows) aside, then moves them and the rejects into the
    /// target in one transaction.
    async fn load(&self, files: usize, rows: u64, rejects: Option<RejectRows>) -> Result<u64> {
        let session = self.session();
        let target = qualified(&self.config.table);
        let staging = self.staging_table("LOAD");
        // DDL first: Snowflake commits each DDL statement on its own, so none may run inside the transaction.
        session
            .execute(&format!("CREATE TABLE IF NOT EXISTS {target} ({})", self.layout.target_defs.join(", ")))
            .await?;
        for def in &self.layout.target_defs {
            session.execute(&format!("ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {def}")).await?;
        }
        self.copy_into(&staging, &self.layout.staging_defs, "rows", files, rows).await?;
        if self.config.mode == LoadMode::Merge {
            self.check_merge_keys(&staging).await?;
        }
        let rejects = self.stage_rejects(rejects).await?;

        let cols = self.layout.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let values = self.layout.columns.iter().map(|c| self.layout.value(c)).collect::<Vec<_>>().join(", ");
        let insert = format!("INSERT INTO {target} ({cols}) SELECT {values} FROM {staging} AS s");
        let mut statements = vec!["BEGIN".to_string()];
        match self.config.mode {
            LoadMode::Append => statements.push(insert),
            LoadMode::Replace => statements.extend([format!("DELETE FROM {target}"), insert]),
            LoadMode::Merge => {
                let keys: Vec<String> = self.config.keys.iter().map(|k| identifier(k)).collect();
                let value = |c: &str| self.layout.value(c);
                statements.extend(merge_statement_list(&target, &staging, &self.layout.columns, &keys, &value));
            }
        }
        if let Some((table, staged, columns)) = &rejects {
            if self.config.mode == LoadMode::Replace {
                statements.push(format!("DELETE FROM {table}"));
            }
            statements.push(format!("INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}"));
        }
        DetachedTransaction::record(&self.detached, session)?;
        for sql in &statements {
            session.execute(sql).await?;
        }
        weir_core::failpoint::hit("warehouse_before_commit");
        session.execute("COMMIT").await?;
        Ok(rows)
    }

    /// Creates a staging table and copies the staged files of `prefix` into it; checks every row arrived.
    async fn copy_into(&self, table: &str, defs: &[String], prefix: &str, files: usize, rows: u64) -> Result<()> {
        let session = self.session();
        session.execute(&format!("CREATE TRANSIENT TABLE {table} ({})", defs.join(", "))).await?;
        if files == 0 {
            return Ok(());
        }
        let copied = session
            .execute(&format!(
                "COPY INTO {table} FROM @{}/{prefix}/ FILE_FORMAT = (TYPE = PARQUET) \
                 MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = ABORT_STATEMENT",
                self.stage
            ))
            .await?;
        let loaded: u64 = copied
            .column("rows_loaded")
            .unwrap_or_default()
            .iter()
            .map(|v| v.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum();
        if loaded != rows {
            return Err(Error::external_final(
                "snowflake",
                format!("COPY INTO {table} loaded {loaded} of the {rows} rows staged; nothing was committed"),
            ));
        }
        Ok(())
    }

    /// Fails the merge when its keys are duplicated or NULL in this load, naming a few.
    async fn check_merge_keys(&self, staging: &str) -> Result<()> {
        let keys: Vec<String> = self.config.keys.iter().map(|k| identifier(k)).collect();
        for (sql, what) in merge_key_problems(staging, &quoted_all(&keys), &|k| format!("TO_VARCHAR({k})")) {
            let found = self.session().execute(&sql).await?;
            if !found.rows.is_empty() {
                let examples = key_examples(&found.rows);
                return Err(merge_key_error(&self.config.table, &self.config.keys, &what, &examples));
            }
        }
        Ok(())
    }

    /// Stages the task's rejects (when there are any) for the transaction: returns the quarantine table, the staging
    /// table holding them and its columns. With `replace` an empty quarantine is still emptied.
    async fn stage_rejects(&self, rejects: Option<RejectRows>) -> Result<Option<(String, String, String)>> {
        let Some(mut rejects) = rejects else { return Ok(None) };
        let table = qualified(&RejectRows::table_of(&self.config.table));
        let first = rejects.first()?;
        if first.is_none() && self.config.mode != LoadMode::Replace {
            return Ok(None);
        }
        let layout = Layout::of(&rejects.schema, &[])?;
        let session = self.session();
        session.execute(&format!("CREATE TABLE IF NOT EXISTS {table} ({})", layout.target_defs.join(", "))).await?;
        let mut files = StagedFiles::new("rejects".into(), layout.parquet.clone(), self.config.file_mb);
        for batch in first.into_iter().map(Ok).chain(rejects.batches) {
            files.write(session, &self.stage, &layout.parquet_batch(&batch?)?).await?;
        }
        files.flush(session, &self.stage).await?;
        let staged = self.staging_table("REJECTS");
        self.copy_into(&staged, &layout.staging_defs, "rejects", files.chunks.files, files.chunks.rows).await?;
        let columns = layout.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        Ok(Some((table, staged, columns)))
    }
}

/// The record of a load's open transaction (see the module docs): the session's endpoint and token, and the process.
struct DetachedTransaction;

impl DetachedTransaction {
    fn path(project_dir: &Path, endpoint: &str, table: &str) -> PathBuf {
        let name: String = format!("{endpoint}-{}", qualified(table))
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
            .collect();
        project_dir.join(".weir").join("snowflake").join(format!("{name}.session"))
    }

    /// Writes the record, readable by its owner only (the token is a credential for the session's life).
    fn record(path: &Path, session: &Session) -> Result<()> {
        let failed = |e: std::io::Error| Error::engine("snowflake", format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(failed)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(failed)?;
        let record = serde_json::json!({"pid": std::process::id(), "token": session.token()});
        std::io::Write::write_all(&mut file, record.to_string().as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)
    }

    /// Ends the session of a load whose process died inside its transaction, so the transaction rolls back.
    async fn end(path: &Path, endpoint: &str) {
        let Ok(text) = std::fs::read_to_string(path) else { return };
        let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let pid = record["pid"].as_u64().unwrap_or(0);
        if pid != u64::from(std::process::id()) && Path::new(&format!("/proc/{pid}")).exists() {
            return; // a live load of the same table: its own commit or rollback removes the record.
        }
        if let Some(token) = record["token"].as_str() {
            let http = reqwest::Client::new();
            match crate::snowflake_client::end_session(&http, endpoint, token).await {
                Ok(()) => tracing::warn!(
                    record = %path.display(),
                    "ended the session of a load killed inside its transaction; the transaction rolled back"
                ),
                Err(e) => tracing::info!(error = %e, "the session of an earlier killed load had already ended"),
            }
        }
        let _ = std::fs::remove_file(path);
    }
}

impl SinkLoad for SnowflakeLoad {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let batch = self.target.layout.parquet_batch(batch)?;
            self.rows.write(self.target.session(), &self.target.stage, &batch).await
        })
    }

    fn commit(self: Box<Self>, rejects: Option<RejectRows>) -> BoxFuture<'static, Result<u64>> {
        Box::pin((*self).finish(rejects))
    }
}

impl Drop for SnowflakeLoad {
    /// A load dropped without a commit (a failed check) ends its session, so its stage goes at once.
    fn drop(&mut self) {
        if let (Some(session), Ok(runtime)) = (self.target.session.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move { session.close().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_take_snowflake_case_and_others_stay_exact() {
        assert_eq!(qualified("marts.daily_revenue"), "\"MARTS\".\"DAILY_REVENUE\"");
        assert_eq!(identifier("Order Date"), "Order Date");
        assert_eq!(identifier("a\"b"), "a\"b");
        assert_eq!(quote_ident(&identifier("a\"b")), "\"a\"\"b\"");
    }

    #[test]
    fn types_map_exactly() {
        let t = |d: DataType| snowflake_type(&d).unwrap().0;
        assert_eq!(t(DataType::Decimal128(12, 2)), "NUMBER(12,2)");
        assert_eq!(t(DataType::Timestamp(TimeUnit::Microsecond, None)), "TIMESTAMP_NTZ(6)");
        assert_eq!(t(DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))), "TIMESTAMP_TZ(9)");
        assert_eq!(t(DataType::UInt64), "NUMBER(20,0)");
        assert!(snowflake_type(&DataType::Decimal256(50, 2)).is_err());
    }
}
