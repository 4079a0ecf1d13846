//! `type: sqlite`: a SQLite database file as a source (a table or a query, streamed in batches) and as a sink for
//! small setups (a table loaded in one transaction).
//!
//! ```yaml
//! source: {type: sqlite, path: shop.db, query: "SELECT * FROM orders WHERE day = '{{ ds }}'"}
//! sink:   {type: sqlite, path: marts.db, table: daily_revenue, mode: replace}   # append | merge (keys: [...])
//! ```
//!
//! SQLite columns have declared types but hold any value. Columns map by declared type (INTEGER → bigint, REAL /
//! FLOAT / DOUBLE → double, TEXT / CHAR / CLOB → text, BLOB → binary, BOOLEAN → boolean; dates stay text, as SQLite
//! stores them, for a `parse_dates` step); a column without a declared type (an expression) takes the type of its
//! first non-null value. A value that does not fit its column is an error naming the row, column and value.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use rusqlite::types::ValueRef;
use serde::Deserialize;
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::connection::{
    merge_key_error, merge_key_problems, merge_statements, quote_ident as quote, quoted_all, RejectRows,
};
use crate::connector::{
    BatchSink, BatchSource, ConnectorRun, LoadMode, SinkKind, SinkLoad, SourceKind, SourceRun, SourceStream,
};
use futures::future::BoxFuture;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// The database file, relative to the project.
    pub path: PathBuf,
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
}

/// `type: sqlite` as a source.
pub const SOURCE: SourceKind =
    SourceKind { name: "sqlite", parse: |n| SqliteSourceConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSource>) };

impl BatchSource for SqliteSourceConfig {
    fn kind(&self) -> &str {
        "sqlite"
    }

    fn reads(&self) -> String {
        let what = self.table.clone().or_else(|| self.query.clone()).unwrap_or_default();
        format!("{}:{what}", self.path.display())
    }

    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>> {
        let opened = self.read(run.connector.project_dir, run.connector.batch_rows);
        Box::pin(async move { opened })
    }
}

impl SqliteSourceConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: SqliteSourceConfig = from_node(node, &["type"])?;
        if cfg.table.is_some() == cfg.query.is_some() {
            return Err(vec![Diagnostic::at(node, "give either `table` or `query`")]);
        }
        Ok(cfg)
    }

    fn sql(&self) -> String {
        match (&self.query, &self.table) {
            (Some(q), _) => q.trim().trim_end_matches(';').to_string(),
            (None, Some(t)) => format!("SELECT * FROM {}", quote(t)),
            (None, None) => String::new(),
        }
    }

    /// Streams the rows in batches of `batch_rows` from a blocking thread.
    pub fn read(&self, project_dir: &Path, batch_rows: usize) -> Result<SourceStream> {
        let path = project_dir.join(&self.path);
        if !path.is_file() {
            return Err(Error::config(
                Default::default(),
                format!("sqlite database {} does not exist", path.display()),
            ));
        }
        let sql = self.sql();
        let conn = open_read_only(&path)?;
        let what = |e: rusqlite::Error| Error::data(Default::default(), format!("sqlite {}: {e}", path.display()));
        // The schema: declared types, else the first non-null value of each column.
        let (names, declared): (Vec<String>, Vec<Option<String>>) = {
            let stmt = conn.prepare(&sql).map_err(what)?;
            stmt.columns().map(|c| (c.name().to_string(), c.decl_type().map(str::to_string))).unzip()
        };
        let mut types: Vec<Option<DataType>> = declared.iter().map(|d| d.as_deref().map(declared_type)).collect();
        if types.iter().any(Option::is_none) {
            let mut stmt = conn.prepare(&sql).map_err(what)?;
            let mut rows = stmt.query([]).map_err(what)?;
            while types.iter().any(Option::is_none) {
                let Some(row) = rows.next().map_err(what)? else { break };
                for (i, t) in types.iter_mut().enumerate() {
                    if t.is_none() {
                        *t = match row.get_ref(i).map_err(what)? {
                            ValueRef::Null => None,
                            ValueRef::Integer(_) => Some(DataType::Int64),
                            ValueRef::Real(_) => Some(DataType::Float64),
                            ValueRef::Text(_) => Some(DataType::Utf8),
                            ValueRef::Blob(_) => Some(DataType::Binary),
                        };
                    }
                }
            }
        }
        let schema: SchemaRef = Arc::new(Schema::new(
            names
                .iter()
                .zip(&types)
                .map(|(n, t)| Field::new(n, t.clone().unwrap_or(DataType::Utf8), true))
                .collect::<Vec<_>>(),
        ));
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        let (out_schema, counter) = (schema.clone(), bytes_read.clone());
        tokio::task::spawn_blocking(move || {
            let result = (|| -> Result<()> {
                let what =
                    |e: rusqlite::Error| Error::data(Default::default(), format!("sqlite {}: {e}", path.display()));
                let mut stmt = conn.prepare(&sql).map_err(what)?;
                let mut rows = stmt.query([]).map_err(what)?;
                let mut columns: Vec<Column> = out_schema.fields().iter().map(|f| Column::new(f.data_type())).collect();
                let mut n = 0usize;
                let mut row_number = 0u64;
                while let Some(row) = rows.next().map_err(what)? {
                    row_number += 1;
                    for (i, c) in columns.iter_mut().enumerate() {
                        let v = row.get_ref(i).map_err(what)?;
                        c.push(v).map_err(|e| {
                            Error::data(
                                Default::default(),
                                format!(
                                    "sqlite {}: row {row_number}, column `{}`: {e}",
                                    path.display(),
                                    out_schema.field(i).name()
                                ),
                            )
                        })?;
                    }
                    n += 1;
                    if n >= batch_rows.max(1) {
                        let batch = finish(&out_schema, &mut columns)?;
                        counter.fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
                        if tx.blocking_send(Ok(batch)).is_err() {
                            return Ok(());
                        }
                        n = 0;
                    }
                }
                if n > 0 {
                    let _ = tx.blocking_send(finish(&out_schema, &mut columns));
                }
                Ok(())
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        let batches = crate::connector::batches_from(rx);
        Ok(SourceStream { schema, batches, total_bytes: None, bytes_read, rejects: None, checkpoint: None })
    }
}

fn open_read_only(path: &Path) -> Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| Error::config(Default::default(), format!("open sqlite database {}: {e}", path.display())))
}

/// SQLite's type affinity rules, as Arrow types.
fn declared_type(decl: &str) -> DataType {
    let d = decl.to_ascii_uppercase();
    if d.contains("BOOL") {
        DataType::Boolean
    } else if d.contains("INT") {
        DataType::Int64
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") || d.contains("DATE") || d.contains("TIME")
    {
        DataType::Utf8
    } else if d.contains("BLOB") || d.is_empty() {
        DataType::Binary
    } else {
        DataType::Float64 // REAL, FLOAT, DOUBLE, NUMERIC, DECIMAL
    }
}

enum Column {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Text(StringBuilder),
    Blob(BinaryBuilder),
}

impl Column {
    fn new(t: &DataType) -> Column {
        match t {
            DataType::Boolean => Column::Bool(BooleanBuilder::new()),
            DataType::Int64 => Column::Int(Int64Builder::new()),
            DataType::Float64 => Column::Float(Float64Builder::new()),
            DataType::Binary => Column::Blob(BinaryBuilder::new()),
            _ => Column::Text(StringBuilder::new()),
        }
    }

    fn push(&mut self, v: ValueRef<'_>) -> std::result::Result<(), String> {
        let shown = |v: ValueRef<'_>| match v {
            ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
            ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(r) => r.to_string(),
            ValueRef::Null => "null".into(),
        };
        match (self, v) {
            (Column::Bool(b), ValueRef::Null) => b.append_null(),
            (Column::Int(b), ValueRef::Null) => b.append_null(),
            (Column::Float(b), ValueRef::Null) => b.append_null(),
            (Column::Text(b), ValueRef::Null) => b.append_null(),
            (Column::Blob(b), ValueRef::Null) => b.append_null(),
            (Column::Bool(b), ValueRef::Integer(i)) if i == 0 || i == 1 => b.append_value(i == 1),
            (Column::Int(b), ValueRef::Integer(i)) => b.append_value(i),
            (Column::Float(b), ValueRef::Real(r)) => b.append_value(r),
            (Column::Float(b), ValueRef::Integer(i)) => b.append_value(i as f64),
            (Column::Text(b), ValueRef::Text(t)) => b.append_value(std::str::from_utf8(t).map_err(|e| e.to_string())?),
            (Column::Text(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Column::Text(b), ValueRef::Real(r)) => b.append_value(r.to_string()),
            (Column::Blob(b), ValueRef::Blob(x)) => b.append_value(x),
            (Column::Blob(b), ValueRef::Text(x)) => b.append_value(x),
            (c, v) => {
                let kind = match c {
                    Column::Bool(_) => "boolean",
                    Column::Int(_) => "integer",
                    Column::Float(_) => "real",
                    Column::Text(_) => "text",
                    Column::Blob(_) => "blob",
                };
                return Err(format!("{} does not fit the column's {kind} type; CAST it in the query", shown(v)));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Int(b) => Arc::new(b.finish()),
            Column::Float(b) => Arc::new(b.finish()),
            Column::Text(b) => Arc::new(b.finish()),
            Column::Blob(b) => Arc::new(b.finish()),
        }
    }
}

fn finish(schema: &SchemaRef, columns: &mut [Column]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns.iter_mut().map(Column::finish).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::engine("sqlite batch", e))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSinkConfig {
    /// The database file, relative to the project (created when missing).
    pub path: PathBuf,
    pub table: String,
    #[serde(default)]
    pub mode: LoadMode,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `type: sqlite` as a sink.
pub const SINK: SinkKind =
    SinkKind { name: "sqlite", parse: |n| SqliteSinkConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSink>) };

impl BatchSink for SqliteSinkConfig {
    fn kind(&self) -> &str {
        "sqlite"
    }

    fn target(&self) -> String {
        format!("sqlite:{}:{}", self.path.display(), self.table)
    }

    fn rejects_target(&self) -> String {
        format!("sqlite:{}:{}", self.path.display(), RejectRows::table_of(&self.table))
    }

    fn table(&self) -> &str {
        &self.table
    }

    fn mode(&self) -> LoadMode {
        self.mode
    }

    fn begin<'a>(&'a self, run: ConnectorRun<'a>, schema: &'a Schema) -> BoxFuture<'a, Result<Box<dyn SinkLoad>>> {
        let load = SqliteLoad::begin(run.project_dir, self, schema);
        Box::pin(async move { Ok(Box::new(load?) as Box<dyn SinkLoad>) })
    }
}

impl SinkLoad for SqliteLoad {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        let written = self.write_rows(batch);
        Box::pin(async move { written })
    }

    fn commit(self: Box<Self>, rejects: Option<RejectRows>) -> BoxFuture<'static, Result<u64>> {
        let committed = self.finish(rejects);
        Box::pin(async move { committed })
    }
}

impl SqliteSinkConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: SqliteSinkConfig = from_node(node, &["type"])?;
        if let Some(problem) = cfg.mode.keys_problem(node, &cfg.keys) {
            return Err(vec![problem]);
        }
        Ok(cfg)
    }
}

/// One load into a SQLite table, in one transaction: replace loads a temporary table and then empties the table and
/// fills it from there (the table, its indexes and triggers stay), merge updates matching keys and inserts the rest
/// (keys duplicated or NULL within the load fail it), append inserts; rejects land in `<table>__rejected`. Nothing
/// is visible until the commit; a failure rolls back.
pub struct SqliteLoad {
    conn: rusqlite::Connection,
    config: SqliteSinkConfig,
    columns: Vec<String>,
    into: String,
    rows: u64,
}

impl std::fmt::Debug for SqliteLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLoad").field("table", &self.config.table).finish()
    }
}

impl SqliteLoad {
    pub fn begin(project_dir: &Path, config: &SqliteSinkConfig, schema: &Schema) -> Result<SqliteLoad> {
        let path = project_dir.join(&config.path);
        let failed = |e: rusqlite::Error| Error::data(Default::default(), format!("sqlite {}: {e}", path.display()));
        let conn = rusqlite::Connection::open(&path).map_err(failed)?;
        let defs: Vec<String> =
            schema.fields().iter().map(|f| format!("{} {}", quote(f.name()), column_type(f.data_type()))).collect();
        let target = quote(&config.table);
        let into = match config.mode {
            LoadMode::Append => target.clone(),
            LoadMode::Replace | LoadMode::Merge => format!("temp.{}", quote(&format!("{}__weir_load", config.table))),
        };
        // The table is created when missing and gains the output's new columns; it is never dropped, so its indexes
        // and triggers stay.
        // Loads into one file run one at a time: a second waits for the first's commit (BEGIN IMMEDIATE takes the
        // write lock at once, so two loads never deadlock upgrading their locks).
        conn.busy_timeout(std::time::Duration::from_secs(600)).map_err(failed)?;
        conn.execute_batch(&format!("BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS {target} ({});", defs.join(", ")))
            .map_err(failed)?;
        let existing: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info({})", sql_text(&config.table)))
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(failed)?;
        let mut setup = String::new();
        for (f, d) in schema.fields().iter().zip(&defs) {
            if !existing.iter().any(|c| c == f.name()) {
                setup.push_str(&format!("ALTER TABLE {target} ADD COLUMN {d};"));
            }
        }
        if config.mode != LoadMode::Append {
            setup.push_str(&format!(
                "DROP TABLE IF EXISTS {into}; CREATE TEMP TABLE {} ({});",
                &into[5..],
                defs.join(", ")
            ));
        }
        conn.execute_batch(&setup).map_err(failed)?;
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        Ok(SqliteLoad { conn, config: config.clone(), columns, into, rows: 0 })
    }

    pub fn write_rows(&mut self, batch: &RecordBatch) -> Result<()> {
        insert(&self.conn, &self.into, &self.columns, &self.config.table, batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Commits the load with the task's rejects (see [`RejectRows`]): with `replace` the quarantine table holds this
    /// run's rejects only, else each run's are added.
    pub fn finish(self, rejects: Option<RejectRows>) -> Result<u64> {
        if self.config.mode == LoadMode::Merge {
            self.check_merge_keys()?;
        }
        if let Some(rejects) = rejects {
            self.load_rejects(rejects)?;
        }
        let target = quote(&self.config.table);
        let cols = self.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let finish = match self.config.mode {
            LoadMode::Append => "COMMIT;".to_string(),
            LoadMode::Replace => format!(
                "DELETE FROM {target}; INSERT INTO {target} ({cols}) SELECT {cols} FROM {}; DROP TABLE {}; COMMIT;",
                self.into, self.into
            ),
            LoadMode::Merge => format!(
                "{}DROP TABLE {}; COMMIT;",
                merge_statements(&target, &self.into, &self.columns, &self.config.keys),
                self.into
            ),
        };
        self.conn
            .execute_batch(&finish)
            .map_err(|e| Error::data(Default::default(), format!("sqlite commit to {}: {e}", self.config.table)))?;
        Ok(self.rows)
    }

    /// Fails the merge when its keys are duplicated or NULL in this load, naming a few.
    fn check_merge_keys(&self) -> Result<()> {
        let failed = |e: rusqlite::Error| {
            Error::data(Default::default(), format!("sqlite merge into {}: {e}", self.config.table))
        };
        for (sql, what) in
            merge_key_problems(&self.into, &quoted_all(&self.config.keys), &|k| format!("CAST({k} AS TEXT)"))
        {
            let mut stmt = self.conn.prepare(&sql).map_err(failed)?;
            let n = self.config.keys.len();
            let examples: Vec<String> = stmt
                .query_map([], |r| {
                    let values: Vec<String> = (0..n)
                        .map(|i| r.get::<_, Option<String>>(i).map(|v| v.unwrap_or_else(|| "NULL".into())))
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(format!("({})", values.join(", ")))
                })
                .map_err(failed)?
                .collect::<rusqlite::Result<_>>()
                .map_err(failed)?;
            if !examples.is_empty() {
                return Err(merge_key_error(&self.config.table, &self.config.keys, &what, &examples));
            }
        }
        Ok(())
    }

    fn load_rejects(&self, mut rejects: RejectRows) -> Result<()> {
        let name = RejectRows::table_of(&self.config.table);
        let table = quote(&name);
        let failed = |e: rusqlite::Error| Error::data(Default::default(), format!("sqlite {name}: {e}"));
        let exists: bool = self
            .conn
            .query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1", [&name], |r| {
                r.get(0)
            })
            .map_err(failed)?;
        if exists && self.config.mode == LoadMode::Replace {
            self.conn.execute_batch(&format!("DELETE FROM {table};")).map_err(failed)?;
        }
        let Some(first) = rejects.first()? else { return Ok(()) };
        let columns: Vec<String> = rejects.schema.fields().iter().map(|f| f.name().clone()).collect();
        if !exists {
            let defs: Vec<String> = rejects
                .schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", quote(f.name()), column_type(f.data_type())))
                .collect();
            self.conn.execute_batch(&format!("CREATE TABLE {table} ({});", defs.join(", "))).map_err(failed)?;
        }
        insert(&self.conn, &table, &columns, &name, &first)?;
        for batch in rejects.batches {
            insert(&self.conn, &table, &columns, &name, &batch?)?;
        }
        Ok(())
    }
}

/// `s` as a SQL string literal.
fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The SQLite column type of an Arrow type.
fn column_type(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "BOOLEAN",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "INTEGER",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "INTEGER",
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => "REAL",
        DataType::Binary | DataType::LargeBinary => "BLOB",
        _ => "TEXT",
    }
}

/// Inserts `batch` into `into` (named `table` in errors), one prepared statement for every row.
fn insert(conn: &rusqlite::Connection, into: &str, columns: &[String], table: &str, batch: &RecordBatch) -> Result<()> {
    use arrow::datatypes::*;
    let cols = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let marks = vec!["?"; columns.len()].join(", ");
    let failed = |e: rusqlite::Error| Error::data(Default::default(), format!("sqlite insert into {table}: {e}"));
    let mut stmt = conn.prepare_cached(&format!("INSERT INTO {into} ({cols}) VALUES ({marks})")).map_err(failed)?;
    let value = |a: &dyn Array, i: usize| -> rusqlite::types::Value {
        use rusqlite::types::Value as V;
        if a.is_null(i) {
            return V::Null;
        }
        match a.data_type() {
            DataType::Boolean => V::Integer(a.as_boolean().value(i) as i64),
            DataType::Int8 => V::Integer(a.as_primitive::<Int8Type>().value(i) as i64),
            DataType::Int16 => V::Integer(a.as_primitive::<Int16Type>().value(i) as i64),
            DataType::Int32 => V::Integer(a.as_primitive::<Int32Type>().value(i) as i64),
            DataType::Int64 => V::Integer(a.as_primitive::<Int64Type>().value(i)),
            DataType::UInt8 => V::Integer(a.as_primitive::<UInt8Type>().value(i) as i64),
            DataType::UInt16 => V::Integer(a.as_primitive::<UInt16Type>().value(i) as i64),
            DataType::UInt32 => V::Integer(a.as_primitive::<UInt32Type>().value(i) as i64),
            DataType::Float32 => V::Real(a.as_primitive::<Float32Type>().value(i) as f64),
            DataType::Float64 => V::Real(a.as_primitive::<Float64Type>().value(i)),
            DataType::Binary => V::Blob(a.as_binary::<i32>().value(i).to_vec()),
            _ => V::Text(arrow::util::display::array_value_to_string(a, i).unwrap_or_default()),
        }
    };
    for row in 0..batch.num_rows() {
        let values: Vec<rusqlite::types::Value> = batch.columns().iter().map(|c| value(c.as_ref(), row)).collect();
        stmt.execute(rusqlite::params_from_iter(values)).map_err(failed)?;
    }
    Ok(())
}
