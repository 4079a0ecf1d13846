//! `type: postgres` sink: loads a task's output into a PostgreSQL table (the warehouse that serves curated tables),
//! with `COPY ... FROM STDIN (FORMAT binary)` inside one transaction, so a failed load leaves the table as it was.
//!
//! ```yaml
//! sink:
//!   type: postgres
//!   connection: warehouse
//!   table: analytics.daily_revenue
//!   mode: replace            # append | merge (with keys: [order_date, country])
//! ```
//!
//! * `append` copies into the table (created from the Arrow schema when missing).
//! * `replace` copies into a temporary table, then empties the table and fills it from there in the same
//!   transaction: readers see the old rows until the commit, then the new ones, never an empty table; the table keeps
//!   its identity (grants, indexes, row-level security, dependent views).
//! * `merge` copies into a temporary table, updates the rows whose keys match and inserts the others: running the same
//!   load twice leaves the same table. Keys duplicated or NULL within one load fail it, naming them; merges into one
//!   table run one at a time (`LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE`).
//! * A task's rejects land in `<table>__rejected` in the same transaction.

use std::pin::Pin;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use bytes::BufMut;
use serde::Deserialize;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::connection::{
    key_examples, merge_key_error, merge_key_problems, merge_statements, quote_ident as quote, quoted_all, RejectRows,
};
use crate::connector::{BatchSink, ConnectorRun, LoadMode, SinkKind, SinkLoad};
use crate::postgres::{connect, pg_error};
use futures::future::BoxFuture;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSinkConfig {
    #[serde(default)]
    pub connection: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// `schema.table` or `table`.
    pub table: String,
    #[serde(default)]
    pub mode: LoadMode,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// `type: postgres` as a sink.
pub const SINK: SinkKind =
    SinkKind { name: "postgres", parse: |n| PostgresSinkConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSink>) };

impl BatchSink for PostgresSinkConfig {
    fn kind(&self) -> &str {
        "postgres"
    }

    fn table(&self) -> &str {
        &self.table
    }

    fn mode(&self) -> LoadMode {
        self.mode
    }

    fn begin<'a>(&'a self, run: ConnectorRun<'a>, schema: &'a Schema) -> BoxFuture<'a, Result<Box<dyn SinkLoad>>> {
        Box::pin(async move {
            let url = run.database_url(self.url.as_ref(), self.connection.as_ref(), "postgres", "a postgres sink")?;
            Ok(Box::new(PostgresLoad::begin(&url, self, schema).await?) as Box<dyn SinkLoad>)
        })
    }
}

impl SinkLoad for PostgresLoad {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.write_rows(batch))
    }

    fn commit(self: Box<Self>, rejects: Option<RejectRows>) -> BoxFuture<'static, Result<u64>> {
        Box::pin(self.finish(rejects))
    }
}

impl PostgresSinkConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: PostgresSinkConfig = from_node(node, &["type"])?;
        let mut diags = Vec::new();
        if cfg.connection.is_some() == cfg.url.is_some() {
            diags.push(Diagnostic::at(node, "give either `connection` (a weir.yaml connection) or `url`"));
        }
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

fn qualified(table: &str) -> String {
    table.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// The PostgreSQL column type of an Arrow type.
fn pg_type(t: &DataType) -> std::result::Result<(Type, String), String> {
    Ok(match t {
        DataType::Boolean => (Type::BOOL, "boolean".into()),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => (Type::INT2, "smallint".into()),
        DataType::Int32 | DataType::UInt16 => (Type::INT4, "integer".into()),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => (Type::INT8, "bigint".into()),
        DataType::Float16 | DataType::Float32 => (Type::FLOAT4, "real".into()),
        DataType::Float64 => (Type::FLOAT8, "double precision".into()),
        // A column that is null in every row (its type unknown) becomes text.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => (Type::TEXT, "text".into()),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => (Type::BYTEA, "bytea".into()),
        DataType::Date32 => (Type::DATE, "date".into()),
        DataType::Timestamp(_, None) => (Type::TIMESTAMP, "timestamp".into()),
        DataType::Timestamp(_, Some(_)) => (Type::TIMESTAMPTZ, "timestamptz".into()),
        DataType::Time64(_) => (Type::TIME, "time".into()),
        DataType::Decimal128(p, s) => (Type::NUMERIC, format!("numeric({p},{s})")),
        other => return Err(format!("Arrow type {other} has no PostgreSQL column type here; cast it first")),
    })
}

/// One load, committed at the end or rolled back.
pub struct PostgresLoad {
    client: tokio_postgres::Client,
    writer: Pin<Box<BinaryCopyInWriter>>,
    config: PostgresSinkConfig,
    columns: Vec<String>,
    staging: String,
    rows: u64,
}

impl std::fmt::Debug for PostgresLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLoad").field("table", &self.config.table).field("rows", &self.rows).finish()
    }
}

impl PostgresLoad {
    /// Opens the transaction, prepares the table the rows are copied into, and starts the COPY.
    pub async fn begin(url: &str, config: &PostgresSinkConfig, schema: &Schema) -> Result<PostgresLoad> {
        let client = connect(url).await?;
        let failed = |what: &str, e: tokio_postgres::Error| {
            Error::data(Default::default(), format!("postgres {what} {}: {}", config.table, pg_error(&e)))
        };
        let mut types = Vec::new();
        let mut defs = Vec::new();
        for f in schema.fields() {
            let (t, sql) = pg_type(f.data_type())
                .map_err(|e| Error::data(Default::default(), format!("column `{}`: {e}", f.name())))?;
            defs.push(format!("{} {sql}", quote(f.name())));
            types.push(t);
        }
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let target = qualified(&config.table);
        let last = config.table.rsplit('.').next().unwrap_or(&config.table);
        let staging = match config.mode {
            LoadMode::Append => target.clone(),
            LoadMode::Replace | LoadMode::Merge => quote(&format!("{last}__weir_load")),
        };
        // The table is created when missing, and gains the output's new columns; it is never dropped, so its grants,
        // indexes, row-level security and the views on it stay.
        let mut setup = format!("BEGIN; CREATE TABLE IF NOT EXISTS {target} ({});", defs.join(", "));
        for d in &defs {
            setup.push_str(&format!("ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {d};"));
        }
        if config.mode != LoadMode::Append {
            setup.push_str(&format!("CREATE TEMP TABLE {staging} ({}) ON COMMIT DROP;", defs.join(", ")));
        }
        client.batch_execute(&setup).await.map_err(|e| failed("prepare", e))?;
        let cols = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let sink = client
            .copy_in(&format!("COPY {staging} ({cols}) FROM STDIN (FORMAT binary)"))
            .await
            .map_err(|e| failed("copy into", e))?;
        let writer = Box::pin(BinaryCopyInWriter::new(sink, &types));
        Ok(PostgresLoad { client, writer, config: config.clone(), columns, staging, rows: 0 })
    }

    pub async fn write_rows(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        for row in 0..n {
            let values: Vec<Value> =
                batch.columns().iter().map(|c| Value::of(c.as_ref(), row)).collect::<Result<_>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            self.writer.as_mut().write(&refs).await.map_err(|e| {
                Error::data(Default::default(), format!("postgres copy into {}: {}", self.config.table, pg_error(&e)))
            })?;
        }
        self.rows += n as u64;
        Ok(())
    }

    /// Ends the COPY, loads the task's rejects (see [`RejectRows`]: with `replace` the quarantine table holds this
    /// run's rejects only, else each run's are added) and commits (after the swap or merge). Returns the rows loaded.
    pub async fn finish(mut self, rejects: Option<RejectRows>) -> Result<u64> {
        let table = self.config.table.clone();
        let failed = |what: &str, e: tokio_postgres::Error| {
            Error::data(Default::default(), format!("postgres {what} {table}: {}", pg_error(&e)))
        };
        self.writer.as_mut().finish().await.map_err(|e| failed("copy into", e))?;
        if let Some(rejects) = rejects {
            self.load_rejects(rejects).await?;
        }
        let target = qualified(&self.config.table);
        let cols = self.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
        let finish = match self.config.mode {
            LoadMode::Append => String::new(),
            // Loaded aside, then swapped in within the transaction: readers see the old rows until the commit (they
            // wait for the short swap), never an empty table.
            LoadMode::Replace => {
                format!("TRUNCATE {target}; INSERT INTO {target} ({cols}) SELECT {cols} FROM {};", self.staging)
            }
            LoadMode::Merge => {
                self.check_merge_keys().await?;
                // Merges into one table run one at a time (readers go on): two at once would both see a key
                // missing and insert it twice.
                format!(
                    "LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE; {}",
                    merge_statements(&target, &self.staging, &self.columns, &self.config.keys)
                )
            }
        };
        self.client.batch_execute(&finish).await.map_err(|e| failed("load into", e))?;
        weir_core::failpoint::hit("warehouse_before_commit");
        self.client.batch_execute("COMMIT").await.map_err(|e| failed("commit to", e))?;
        Ok(self.rows)
    }
}

impl PostgresLoad {
    /// Fails the merge when its keys are duplicated or NULL in this load, naming a few.
    async fn check_merge_keys(&self) -> Result<()> {
        let problems = merge_key_problems(&self.staging, &quoted_all(&self.config.keys), &|k| format!("{k}::text"));
        for (sql, what) in problems {
            let rows = self.client.query(&sql, &[]).await.map_err(|e| {
                Error::data(Default::default(), format!("postgres merge into {}: {}", self.config.table, pg_error(&e)))
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

    async fn load_rejects(&self, mut rejects: RejectRows) -> Result<()> {
        let name = RejectRows::table_of(&self.config.table);
        let table = qualified(&name);
        let failed =
            |e: tokio_postgres::Error| Error::data(Default::default(), format!("postgres {name}: {}", pg_error(&e)));
        let exists: bool =
            self.client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.map_err(failed)?.get(0);
        if exists && self.config.mode == LoadMode::Replace {
            self.client.batch_execute(&format!("DELETE FROM {table};")).await.map_err(failed)?;
        }
        let Some(first) = rejects.first()? else { return Ok(()) };
        let mut types = Vec::new();
        let mut defs = Vec::new();
        for f in rejects.schema.fields() {
            let (t, sql) =
                pg_type(f.data_type()).map_err(|e| Error::engine("quarantine", format!("{}: {e}", f.name())))?;
            defs.push(format!("{} {sql}", quote(f.name())));
            types.push(t);
        }
        if !exists {
            self.client
                .batch_execute(&format!("CREATE TABLE IF NOT EXISTS {table} ({});", defs.join(", ")))
                .await
                .map_err(failed)?;
        }
        let cols = rejects.schema.fields().iter().map(|f| quote(f.name())).collect::<Vec<_>>().join(", ");
        let sink =
            self.client.copy_in(&format!("COPY {table} ({cols}) FROM STDIN (FORMAT binary)")).await.map_err(failed)?;
        let mut writer = Box::pin(BinaryCopyInWriter::new(sink, &types));
        for batch in std::iter::once(Ok(first)).chain(rejects.batches) {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                let values: Vec<Value> =
                    batch.columns().iter().map(|c| Value::of(c.as_ref(), row)).collect::<Result<_>>()?;
                let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                writer.as_mut().write(&refs).await.map_err(failed)?;
            }
        }
        writer.as_mut().finish().await.map_err(failed)?;
        Ok(())
    }
}

/// One Arrow value as a PostgreSQL binary value.
#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(chrono::NaiveDate),
    Timestamp(chrono::NaiveDateTime),
    TimestampTz(chrono::DateTime<chrono::Utc>),
    Time(chrono::NaiveTime),
    Numeric(i128, i8),
}

impl Value {
    fn of(a: &dyn Array, i: usize) -> Result<Value> {
        use arrow::datatypes::*;
        if a.is_null(i) || a.data_type() == &DataType::Null {
            return Ok(Value::Null);
        }
        let bad =
            || Error::data(Default::default(), format!("value {i} of type {} does not fit PostgreSQL", a.data_type()));
        Ok(match a.data_type() {
            DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
            DataType::Int8 => Value::I16(a.as_primitive::<Int8Type>().value(i) as i16),
            DataType::UInt8 => Value::I16(a.as_primitive::<UInt8Type>().value(i) as i16),
            DataType::Int16 => Value::I16(a.as_primitive::<Int16Type>().value(i)),
            DataType::UInt16 => Value::I32(a.as_primitive::<UInt16Type>().value(i) as i32),
            DataType::Int32 => Value::I32(a.as_primitive::<Int32Type>().value(i)),
            DataType::UInt32 => Value::I64(a.as_primitive::<UInt32Type>().value(i) as i64),
            DataType::Int64 => Value::I64(a.as_primitive::<Int64Type>().value(i)),
            DataType::UInt64 => Value::I64(i64::try_from(a.as_primitive::<UInt64Type>().value(i)).map_err(|_| bad())?),
            DataType::Float16 => Value::F32(a.as_primitive::<Float16Type>().value(i).to_f32()),
            DataType::Float32 => Value::F32(a.as_primitive::<Float32Type>().value(i)),
            DataType::Float64 => Value::F64(a.as_primitive::<Float64Type>().value(i)),
            DataType::Utf8 => Value::Text(a.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => Value::Text(a.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => Value::Text(a.as_string_view().value(i).to_string()),
            DataType::Binary => Value::Bytes(a.as_binary::<i32>().value(i).to_vec()),
            DataType::LargeBinary => Value::Bytes(a.as_binary::<i64>().value(i).to_vec()),
            DataType::BinaryView => Value::Bytes(a.as_binary_view().value(i).to_vec()),
            DataType::Date32 => Value::Date(a.as_primitive::<Date32Type>().value_as_date(i).ok_or_else(bad)?),
            DataType::Timestamp(unit, tz) => {
                let dt = match unit {
                    TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value_as_datetime(i),
                    TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value_as_datetime(i),
                    TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value_as_datetime(i),
                    TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value_as_datetime(i),
                }
                .ok_or_else(bad)?;
                match tz {
                    None => Value::Timestamp(dt),
                    Some(_) => Value::TimestampTz(dt.and_utc()),
                }
            }
            DataType::Time64(TimeUnit::Microsecond) => {
                Value::Time(a.as_primitive::<Time64MicrosecondType>().value_as_time(i).ok_or_else(bad)?)
            }
            DataType::Time64(TimeUnit::Nanosecond) => {
                Value::Time(a.as_primitive::<Time64NanosecondType>().value_as_time(i).ok_or_else(bad)?)
            }
            DataType::Decimal128(_, s) => Value::Numeric(a.as_primitive::<Decimal128Type>().value(i), *s),
            _ => return Err(bad()),
        })
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Bool(v) => v.to_sql(ty, out),
            Value::I16(v) => v.to_sql(ty, out),
            Value::I32(v) => v.to_sql(ty, out),
            Value::I64(v) => v.to_sql(ty, out),
            Value::F32(v) => v.to_sql(ty, out),
            Value::F64(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::Bytes(v) => v.to_sql(ty, out),
            Value::Date(v) => v.to_sql(ty, out),
            Value::Timestamp(v) => v.to_sql(ty, out),
            Value::TimestampTz(v) => v.to_sql(ty, out),
            Value::Time(v) => v.to_sql(ty, out),
            Value::Numeric(v, scale) => {
                encode_numeric(*v, *scale, out);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A scaled integer in PostgreSQL's binary numeric format: base-10000 digits aligned on the decimal point.
fn encode_numeric(value: i128, scale: i8, out: &mut bytes::BytesMut) {
    let negative = value < 0;
    let mut magnitude = value.unsigned_abs();
    let scale = scale.max(0) as u32;
    // Pad the fraction to a multiple of 4 digits so base-10000 groups line up with the point.
    let pad = (4 - scale % 4) % 4;
    magnitude *= 10u128.pow(pad);
    let frac_groups = ((scale + pad) / 4) as i16;
    let mut groups = Vec::new();
    while magnitude > 0 {
        groups.push((magnitude % 10_000) as u16);
        magnitude /= 10_000;
    }
    groups.reverse();
    let weight = groups.len() as i16 - frac_groups - 1;
    // Trailing zero groups carry no information.
    while groups.last() == Some(&0) {
        groups.pop();
    }
    out.put_u16(groups.len() as u16);
    out.put_i16(if groups.is_empty() { 0 } else { weight });
    out.put_u16(if negative { 0x4000 } else { 0 });
    out.put_u16(scale as u16);
    for g in groups {
        out.put_u16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_encode_and_decode_back_exactly() {
        for (v, s) in
            [(0i128, 2i8), (10050, 2), (-1, 4), (1_000_000, 0), (123_456_789_012_345_678, 6), (-725, 2), (5, 5)]
        {
            let mut out = bytes::BytesMut::new();
            encode_numeric(v, s, &mut out);
            assert_eq!(crate::postgres::numeric_to_i128(&out, s).unwrap(), v, "{v} scale {s}");
        }
    }
}
