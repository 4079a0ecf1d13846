//! `type: postgres`: rows of a PostgreSQL table or query, streamed with `COPY (...) TO STDOUT (FORMAT binary)` and
//! decoded straight into Arrow builders: no row objects, no text parsing, memory bounded by one batch.
//!
//! ```yaml
//! source:
//!   type: postgres
//!   connection: shop              # a `connections:` entry of weir.yaml (url, or host/port/user/password/dbname)
//!   table: public.fact_orders     # or query: "SELECT ... WHERE created_at >= '{{ ds }}'"
//!   partition_on: {column: order_id, partitions: 4}   # optional: ranges read on 4 connections at once
//! ```
//!
//! With `incremental`, only rows past the committed cursor are read; without `partition_on` that read is ordered by
//! the cursor and checkpointed chunk by chunk (`crate::chunk_spool`), so a killed run resumes where it stopped.
//!
//! Types map exactly: smallint/integer/bigint, real/double, numeric(p,s) as decimal(p,s) (unconstrained numeric as
//! its exact text), text/varchar/char/name, boolean, date, time, timestamp, timestamptz (UTC), uuid and json/jsonb as
//! text, bytea as binary, and one-dimensional arrays of those as lists. Anything else is an error naming the column
//! and its type.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, ListArray, RecordBatch, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::{Buf, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use tokio_postgres::types::{Kind, Type};
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::chunk_spool::ChunkSpool;
use crate::connector::{BatchSource, Incremental, SourceKind, SourceRun, SourceStream};
use futures::future::BoxFuture;

/// A text as an SQL string literal.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// A `connections:` entry of weir.yaml.
    #[serde(default)]
    pub connection: Option<String>,
    /// Or a connection URL (`postgres://user:${env:PGPASSWORD}@host:5432/db`).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// Read ranges of this column on several connections at once.
    #[serde(default)]
    pub partition_on: Option<PartitionOn>,
    /// Read only rows whose `cursor_field` is past the value committed by the last run.
    #[serde(default)]
    pub incremental: Option<PgIncremental>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgIncremental {
    /// A growing column (`updated_at`, `id`).
    pub cursor_field: String,
    /// The value of the first run (all rows when absent).
    #[serde(default)]
    pub initial: Option<String>,
    /// Re-read this much before the committed value (a duration such as `10m` for timestamps and dates, a number
    /// of units for numbers), for rows whose transaction committed after a read with an older cursor value. The
    /// rows read again fold into their keys, so it needs a sink with `mode: merge`.
    #[serde(default, deserialize_with = "weir_config::duration::deserialize_lookback")]
    pub lookback: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionOn {
    /// A numeric, date or timestamp column.
    pub column: String,
    /// How many ranges (and connections).
    #[serde(default = "default_partitions")]
    pub partitions: usize,
}

fn default_partitions() -> usize {
    4
}

/// `type: postgres` as a source.
pub const SOURCE: SourceKind = SourceKind {
    name: "postgres",
    parse: |n| PostgresSourceConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSource>),
};

impl BatchSource for PostgresSourceConfig {
    fn kind(&self) -> &str {
        "postgres"
    }

    fn reads(&self) -> String {
        self.table.clone().or_else(|| self.query.clone()).unwrap_or_default()
    }

    fn incremental(&self) -> Option<Incremental> {
        self.incremental.as_ref().map(|i| Incremental { lookback: i.lookback.is_some() })
    }

    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>> {
        Box::pin(async move {
            let url = run.connector.database_url(
                self.url.as_ref(),
                self.connection.as_ref(),
                "postgres",
                "a postgres source",
            )?;
            // Chunks are checkpointed only where the cursor commits with the data (a lake sink).
            let spool_dir = run.cursor_commits_with_data.then_some(run.spool_dir.as_path());
            self.read(&url, run.connector.batch_rows, run.window.clone(), spool_dir).await
        })
    }
}

impl PostgresSourceConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: PostgresSourceConfig = from_node(node, &["type"])?;
        crate::connection::check_source_choices(
            node,
            cfg.connection.is_some(),
            cfg.url.is_some(),
            cfg.table.is_some(),
            cfg.query.is_some(),
        )?;
        Ok(cfg)
    }

    /// The query whose rows are read.
    pub fn sql(&self) -> String {
        match (&self.query, &self.table) {
            (Some(q), _) => q.trim().trim_end_matches(';').to_string(),
            (None, Some(t)) => format!("SELECT * FROM {t}"),
            (None, None) => String::new(),
        }
    }

    /// Connects (`url` is the resolved connection URL) and streams the rows in batches of `batch_rows`; with
    /// `partition_on`, the ranges are read on that many connections at once. An incremental read (without
    /// `partition_on`) given a `spool_dir` is ordered by its cursor and checkpointed there chunk by chunk
    /// (`crate::chunk_spool`), so a killed run resumes where it stopped.
    pub async fn read(
        &self,
        url: &str,
        batch_rows: usize,
        window: weir_core::cursor::CursorWindow,
        spool_dir: Option<&Path>,
    ) -> Result<SourceStream> {
        let client = connect(url).await?;
        let mut sql = self.sql();
        let mut cursor_column = None;
        let cursor = window.after.clone();
        if let Some(inc) = &self.incremental {
            let col = crate::connection::quote_ident(&inc.cursor_field);
            let mut bounds = Vec::new();
            let from = match (&cursor, inc.lookback) {
                (Some(c), Some(back)) => Some(weir_core::cursor::minus(c, back)),
                (Some(c), None) => Some(c.clone()),
                (None, _) => inc.initial.clone(),
            };
            if let Some(from) = from {
                bounds.push(format!("{col} > {}", literal(&from)));
            }
            // An earlier interval read again: only up to where it ended, later rows belong to later intervals.
            if let Some(up_to) = &window.up_to {
                bounds.push(format!("{col} <= {}", literal(up_to)));
            }
            if !bounds.is_empty() {
                sql = format!("SELECT * FROM ({sql}) AS weir_inc WHERE {}", bounds.join(" AND "));
            }
            cursor_column = Some(inc.cursor_field.clone());
        }
        let statement = client.prepare(&format!("SELECT * FROM ({sql}) AS weir_source")).await.map_err(|e| {
            Error::data(Default::default(), format!("postgres query `{}`: {}", short(&sql), pg_error(&e)))
        })?;
        let columns: Vec<(String, Type, i32)> =
            statement.columns().iter().map(|c| (c.name().to_string(), c.type_().clone(), c.type_modifier())).collect();
        let decoders = || {
            columns
                .iter()
                .map(|(name, t, m)| {
                    Decoder::for_type(t, *m)
                        .map_err(|e| Error::data(Default::default(), format!("column `{name}`: {e}")))
                })
                .collect::<Result<Vec<_>>>()
        };
        let first = decoders()?;
        let schema: SchemaRef = Arc::new(Schema::new(
            columns.iter().zip(&first).map(|((n, _, _), d)| Field::new(n, d.data_type(), true)).collect::<Vec<_>>(),
        ));
        let mut spool = None;
        if let (Some(col), None, Some(dir)) = (&cursor_column, &self.partition_on, spool_dir) {
            let s = ChunkSpool::open(dir, crate::chunk_spool::fingerprint(&sql, &schema))?;
            let quoted = crate::connection::quote_ident(col);
            if let Some(w) = s.watermark() {
                let w = literal(w);
                sql = format!("SELECT * FROM ({sql}) AS weir_resume WHERE {quoted} > {w} OR {quoted} IS NULL");
            }
            sql = format!("{sql} ORDER BY {quoted}");
            spool = Some(s);
        }
        let queries = match &self.partition_on {
            Some(p) => partition_queries(&client, &sql, &columns, p).await?,
            None => vec![sql.clone()],
        };
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2 * queries.len());
        let mut client = Some(client);
        let mut first = Some(first);
        for q in queries {
            let client = match client.take() {
                Some(c) => c,
                None => connect(url).await?,
            };
            let decoders = match first.take() {
                Some(d) => d,
                None => decoders()?,
            };
            let copy = client
                .copy_out(&format!("COPY ({q}) TO STDOUT (FORMAT binary)"))
                .await
                .map_err(|e| Error::data(Default::default(), format!("postgres COPY: {}", pg_error(&e))))?;
            let (tx, counter, schema) = (tx.clone(), bytes_read.clone(), schema.clone());
            tokio::spawn(async move {
                let _client = client; // the connection lives as long as the copy
                let mut reader = CopyReader::new(decoders, schema, batch_rows.max(1));
                let mut copy = Box::pin(copy);
                let result: Result<()> = async {
                    while let Some(chunk) = copy.next().await {
                        let chunk = chunk
                            .map_err(|e| Error::data(Default::default(), format!("postgres COPY: {}", pg_error(&e))))?;
                        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        for batch in reader.push(&chunk)? {
                            if tx.send(Ok(batch)).await.is_err() {
                                return Ok(());
                            }
                        }
                    }
                    if let Some(batch) = reader.finish()? {
                        let _ = tx.send(Ok(batch)).await;
                    }
                    Ok(())
                }
                .await;
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            });
        }
        drop(tx); // the stream ends when every range's reader is done
        let mut batches = crate::connector::batches_from(rx);
        let mut checkpoint = None;
        if let Some(col) = cursor_column {
            let index = schema.index_of(&col).map_err(|_| {
                Error::config(Default::default(), format!("incremental: the query has no column `{col}`"))
            })?;
            if let Some(spool) = spool {
                batches = spool.replay_then_spool(schema.clone(), batches, index);
            }
            let max = Arc::new(std::sync::Mutex::new(cursor));
            let tracked = max.clone();
            batches = batches
                .map(move |b| {
                    let b = b?;
                    if let Some(v) = crate::chunk_spool::column_max(b.column(index).as_ref())? {
                        let mut m = tracked.lock().map_err(|_| Error::engine("cursor", "poisoned"))?;
                        if m.as_deref().is_none_or(|cur| weir_core::cursor::greater(&v, cur)) {
                            *m = Some(v);
                        }
                    }
                    Ok(b)
                })
                .boxed();
            checkpoint = Some(crate::connector::SourceCheckpoint {
                cursor: max,
                after: window.after.clone(),
                spool_dir: spool_dir.map(Path::to_path_buf),
            });
        }
        Ok(SourceStream { schema, batches, total_bytes: None, bytes_read, rejects: None, checkpoint })
    }
}

/// Splits `sql` into `partitions` queries over equal ranges of a numeric, date or timestamp column (ConnectorX's
/// `partition_on`): the bounds come from one `min`/`max` query; rows with a null in the column go to the first range.
async fn partition_queries(
    client: &tokio_postgres::Client,
    sql: &str,
    columns: &[(String, Type, i32)],
    p: &PartitionOn,
) -> Result<Vec<String>> {
    let bad = |m: String| Error::config(Default::default(), format!("partition_on `{}`: {m}", p.column));
    let (_, t, _) = columns.iter().find(|(n, _, _)| *n == p.column).ok_or_else(|| bad("no such column".into()))?;
    let col = format!("\"{}\"", p.column.replace('"', "\"\""));
    let expr = match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC | Type::FLOAT4 | Type::FLOAT8 => format!("{col}::float8"),
        Type::DATE | Type::TIMESTAMP | Type::TIMESTAMPTZ => format!("extract(epoch from {col})::float8"),
        _ => return Err(bad(format!("type {t} cannot be split into ranges; use a number, date or timestamp"))),
    };
    let row = client
        .query_one(&format!("SELECT min({expr}), max({expr}) FROM ({sql}) AS s"), &[])
        .await
        .map_err(|e| bad(pg_error(&e)))?;
    let (Some(lo), Some(hi)) = (row.get::<_, Option<f64>>(0), row.get::<_, Option<f64>>(1)) else {
        return Ok(vec![sql.to_string()]); // no rows (or only nulls): one query
    };
    let n = p.partitions.max(1);
    let step = (hi - lo) / n as f64;
    Ok((0..n)
        .map(|i| {
            let from = lo + step * i as f64;
            let to = lo + step * (i + 1) as f64;
            let mut cond = if i + 1 == n {
                format!("{expr} >= {from:?}")
            } else {
                format!("{expr} >= {from:?} AND {expr} < {to:?}")
            };
            if i == 0 {
                cond = format!("({cond} OR {col} IS NULL)");
            }
            format!("SELECT * FROM ({sql}) AS s WHERE {cond}")
        })
        .collect())
}

/// Opens a connection, with TLS as the URL's `sslmode` says (see `crate::postgres_tls`; `prefer` by default). Every
/// PostgreSQL client of weir connects here: the batch source and sink, the stream sinks and lookups, and the
/// metadata store. A server that cannot be reached may be back on a retry; refused credentials, a refused
/// certificate or a missing database will not.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (driver_url, tls) = crate::postgres_tls::split_url(url)?;
    let config: tokio_postgres::Config = driver_url
        .parse()
        .map_err(|e: tokio_postgres::Error| Error::config(Default::default(), redact_url(url, &e.to_string())))?;
    let failed = |e: tokio_postgres::Error| {
        let message = redact_url(url, &pg_error(&e));
        // The TLS handshake refused the server (its certificate or name): the same answer on every retry.
        let refused_certificate = weir_core::error::caused_by::<rustls::Error>(&e);
        if e.as_db_error().is_some() || refused_certificate {
            Error::external_final("postgres connect", message)
        } else {
            Error::external("postgres connect", message)
        }
    };
    let client = if tls.mode == crate::postgres_tls::SslMode::Disable {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection closed");
            }
        });
        client
    } else {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(crate::postgres_tls::client_config(&tls)?);
        let (client, connection) = config.connect(tls).await.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres connection closed");
            }
        });
        client
    };
    Ok(client)
}

/// The server's message (with detail and hint), not just "db error".
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        // The cause underneath ("error performing TLS handshake: invalid peer certificate: ...").
        None => weir_core::error::with_causes(e),
    }
}

fn redact_url(url: &str, text: &str) -> String {
    match url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_string)) {
        Some(p) if !p.is_empty() => text.replace(&p, "***"),
        _ => text.to_string(),
    }
}

fn short(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.len() > 120 {
        format!("{}...", &one[..one.char_indices().nth(117).map(|(i, _)| i).unwrap_or(one.len())])
    } else {
        one
    }
}

/// Microseconds and days between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// How one column's binary values become Arrow values.
enum Decoder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    JsonB(StringBuilder),
    Uuid(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Decimal(Decimal128Builder, u8, i8),
    NumericText(StringBuilder),
    List { inner: Box<Decoder>, offsets: Vec<i32>, valid: Vec<bool>, element: Type },
}

impl Decoder {
    fn for_type(t: &Type, typmod: i32) -> std::result::Result<Decoder, String> {
        Ok(match *t {
            Type::BOOL => Decoder::Bool(BooleanBuilder::new()),
            Type::INT2 => Decoder::I16(Int16Builder::new()),
            Type::INT4 => Decoder::I32(Int32Builder::new()),
            Type::INT8 => Decoder::I64(Int64Builder::new()),
            Type::FLOAT4 => Decoder::F32(Float32Builder::new()),
            Type::FLOAT8 => Decoder::F64(Float64Builder::new()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::XML => {
                Decoder::Text(StringBuilder::new())
            }
            Type::JSONB => Decoder::JsonB(StringBuilder::new()),
            Type::UUID => Decoder::Uuid(StringBuilder::new()),
            Type::BYTEA => Decoder::Bytes(BinaryBuilder::new()),
            Type::DATE => Decoder::Date(Date32Builder::new()),
            Type::TIME => Decoder::Time(Time64MicrosecondBuilder::new()),
            Type::TIMESTAMP => Decoder::Timestamp(TimestampMicrosecondBuilder::new(), None),
            Type::TIMESTAMPTZ => {
                Decoder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"), Some(Arc::from("UTC")))
            }
            Type::NUMERIC if typmod >= 4 => {
                let precision = (((typmod - 4) >> 16) & 0xffff) as u8;
                let scale = ((typmod - 4) & 0xffff) as i8;
                if precision > 38 {
                    return Err(format!("numeric({precision},{scale}) is wider than Arrow's 38-digit decimal; cast it to text or a narrower numeric in the query"));
                }
                Decoder::Decimal(
                    Decimal128Builder::new().with_precision_and_scale(precision, scale).map_err(|e| e.to_string())?,
                    precision,
                    scale,
                )
            }
            // Unconstrained numeric has no fixed scale: its exact text is kept.
            Type::NUMERIC => Decoder::NumericText(StringBuilder::new()),
            _ => match t.kind() {
                Kind::Array(element) => {
                    let inner = Decoder::for_type(element, -1)?;
                    if matches!(inner, Decoder::List { .. }) {
                        return Err(format!("type {t} is not supported"));
                    }
                    Decoder::List {
                        inner: Box::new(inner),
                        offsets: vec![0],
                        valid: Vec::new(),
                        element: element.clone(),
                    }
                }
                Kind::Domain(base) => Decoder::for_type(base, typmod)?,
                Kind::Enum(_) => Decoder::Text(StringBuilder::new()),
                _ => {
                    return Err(format!(
                        "type {} is not supported; cast it in the query (for example to `::text`)",
                        t.name()
                    ))
                }
            },
        })
    }

    fn data_type(&self) -> DataType {
        match self {
            Decoder::Bool(_) => DataType::Boolean,
            Decoder::I16(_) => DataType::Int16,
            Decoder::I32(_) => DataType::Int32,
            Decoder::I64(_) => DataType::Int64,
            Decoder::F32(_) => DataType::Float32,
            Decoder::F64(_) => DataType::Float64,
            Decoder::Text(_) | Decoder::JsonB(_) | Decoder::Uuid(_) | Decoder::NumericText(_) => DataType::Utf8,
            Decoder::Bytes(_) => DataType::Binary,
            Decoder::Date(_) => DataType::Date32,
            Decoder::Time(_) => DataType::Time64(TimeUnit::Microsecond),
            Decoder::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            Decoder::Decimal(_, p, s) => DataType::Decimal128(*p, *s),
            Decoder::List { inner, .. } => DataType::List(Arc::new(Field::new("item", inner.data_type(), true))),
        }
    }

    fn append_null(&mut self) {
        match self {
            Decoder::Bool(b) => b.append_null(),
            Decoder::I16(b) => b.append_null(),
            Decoder::I32(b) => b.append_null(),
            Decoder::I64(b) => b.append_null(),
            Decoder::F32(b) => b.append_null(),
            Decoder::F64(b) => b.append_null(),
            Decoder::Text(b) | Decoder::JsonB(b) | Decoder::Uuid(b) | Decoder::NumericText(b) => b.append_null(),
            Decoder::Bytes(b) => b.append_null(),
            Decoder::Date(b) => b.append_null(),
            Decoder::Time(b) => b.append_null(),
            Decoder::Timestamp(b, _) => b.append_null(),
            Decoder::Decimal(b, _, _) => b.append_null(),
            Decoder::List { offsets, valid, .. } => {
                offsets.push(*offsets.last().unwrap_or(&0));
                valid.push(false);
            }
        }
    }

    /// Appends one value in PostgreSQL's binary format.
    fn append(&mut self, v: &[u8]) -> std::result::Result<(), String> {
        let be = |n: usize| -> std::result::Result<&[u8], String> {
            if v.len() == n {
                Ok(v)
            } else {
                Err(format!("expected {n} bytes, got {}", v.len()))
            }
        };
        match self {
            Decoder::Bool(b) => b.append_value(be(1)?[0] != 0),
            Decoder::I16(b) => b.append_value(i16::from_be_bytes(be(2)?.try_into().unwrap_or_default())),
            Decoder::I32(b) => b.append_value(i32::from_be_bytes(be(4)?.try_into().unwrap_or_default())),
            Decoder::I64(b) => b.append_value(i64::from_be_bytes(be(8)?.try_into().unwrap_or_default())),
            Decoder::F32(b) => b.append_value(f32::from_be_bytes(be(4)?.try_into().unwrap_or_default())),
            Decoder::F64(b) => b.append_value(f64::from_be_bytes(be(8)?.try_into().unwrap_or_default())),
            Decoder::Text(b) => b.append_value(std::str::from_utf8(v).map_err(|e| e.to_string())?),
            Decoder::JsonB(b) => match v.split_first() {
                Some((1, rest)) => b.append_value(std::str::from_utf8(rest).map_err(|e| e.to_string())?),
                _ => return Err("unknown jsonb version".into()),
            },
            Decoder::Uuid(b) => {
                let bytes: [u8; 16] = be(16)?.try_into().unwrap_or_default();
                b.append_value(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
            }
            Decoder::Bytes(b) => b.append_value(v),
            Decoder::Date(b) => {
                let d = i32::from_be_bytes(be(4)?.try_into().unwrap_or_default());
                b.append_value(d.checked_add(PG_EPOCH_DAYS).ok_or("date out of range (infinity?)")?)
            }
            Decoder::Time(b) => b.append_value(i64::from_be_bytes(be(8)?.try_into().unwrap_or_default())),
            Decoder::Timestamp(b, _) => {
                let us = i64::from_be_bytes(be(8)?.try_into().unwrap_or_default());
                if us == i64::MAX || us == i64::MIN {
                    return Err("timestamp is infinity, which Arrow cannot hold".into());
                }
                b.append_value(us.checked_add(PG_EPOCH_US).ok_or("timestamp out of Arrow's range")?)
            }
            Decoder::Decimal(b, _, scale) => b.append_value(numeric_to_i128(v, *scale)?),
            Decoder::NumericText(b) => b.append_value(numeric_to_text(v)?),
            Decoder::List { inner, offsets, valid, element } => {
                let mut r = v;
                let ndim = read_i32(&mut r)?;
                let _has_null = read_i32(&mut r)?;
                let _oid = read_i32(&mut r)?;
                let mut n = 0;
                if ndim > 1 {
                    return Err(format!(
                        "{ndim}-dimensional {element} arrays are not supported; unnest them in the query"
                    ));
                }
                if ndim == 1 {
                    n = read_i32(&mut r)?;
                    let _lower = read_i32(&mut r)?;
                }
                for _ in 0..n {
                    let len = read_i32(&mut r)?;
                    if len < 0 {
                        inner.append_null();
                    } else {
                        let len = len as usize;
                        if r.len() < len {
                            return Err("truncated array".into());
                        }
                        inner.append(&r[..len])?;
                        r = &r[len..];
                    }
                }
                offsets.push(offsets.last().unwrap_or(&0) + n);
                valid.push(true);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Decoder::Bool(b) => Arc::new(b.finish()),
            Decoder::I16(b) => Arc::new(b.finish()),
            Decoder::I32(b) => Arc::new(b.finish()),
            Decoder::I64(b) => Arc::new(b.finish()),
            Decoder::F32(b) => Arc::new(b.finish()),
            Decoder::F64(b) => Arc::new(b.finish()),
            Decoder::Text(b) | Decoder::JsonB(b) | Decoder::Uuid(b) | Decoder::NumericText(b) => Arc::new(b.finish()),
            Decoder::Bytes(b) => Arc::new(b.finish()),
            Decoder::Date(b) => Arc::new(b.finish()),
            Decoder::Time(b) => Arc::new(b.finish()),
            Decoder::Timestamp(b, _) => Arc::new(b.finish()),
            Decoder::Decimal(b, _, _) => Arc::new(b.finish()),
            Decoder::List { inner, offsets, valid, .. } => {
                let values = inner.finish();
                let field = Arc::new(Field::new("item", values.data_type().clone(), true));
                let offs = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(valid));
                Arc::new(ListArray::new(field, offs, values, Some(nulls)))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Decoder::Bool(b) => b.len(),
            Decoder::I16(b) => b.len(),
            Decoder::I32(b) => b.len(),
            Decoder::I64(b) => b.len(),
            Decoder::F32(b) => b.len(),
            Decoder::F64(b) => b.len(),
            Decoder::Text(b) | Decoder::JsonB(b) | Decoder::Uuid(b) | Decoder::NumericText(b) => b.len(),
            Decoder::Bytes(b) => b.len(),
            Decoder::Date(b) => b.len(),
            Decoder::Time(b) => b.len(),
            Decoder::Timestamp(b, _) => b.len(),
            Decoder::Decimal(b, _, _) => b.len(),
            Decoder::List { valid, .. } => valid.len(),
        }
    }
}

fn read_i32(r: &mut &[u8]) -> std::result::Result<i32, String> {
    if r.len() < 4 {
        return Err("truncated value".into());
    }
    let v = i32::from_be_bytes([r[0], r[1], r[2], r[3]]);
    *r = &r[4..];
    Ok(v)
}

/// The parts of a binary numeric: sign, weight and base-10000 digits, or a special value.
fn numeric_parts(v: &[u8]) -> std::result::Result<(bool, i16, u16, Vec<u16>), String> {
    if v.len() < 8 {
        return Err("truncated numeric".into());
    }
    let ndigits = u16::from_be_bytes([v[0], v[1]]) as usize;
    let weight = i16::from_be_bytes([v[2], v[3]]);
    let sign = u16::from_be_bytes([v[4], v[5]]);
    let dscale = u16::from_be_bytes([v[6], v[7]]);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric NaN has no decimal value".into()),
        0xD000 | 0xF000 => return Err("numeric infinity has no decimal value".into()),
        other => return Err(format!("not a binary numeric (sign {other:#06x})")),
    }
    // PostgreSQL's display scale has 14 bits, and each digit is base 10000.
    if dscale > 0x3FFF {
        return Err(format!("not a binary numeric (display scale {dscale})"));
    }
    if v.len() < 8 + 2 * ndigits {
        return Err("truncated numeric".into());
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| u16::from_be_bytes([v[8 + 2 * i], v[9 + 2 * i]])).collect();
    if let Some(d) = digits.iter().find(|d| **d >= 10_000) {
        return Err(format!("not a binary numeric (digit {d})"));
    }
    Ok((sign == 0x4000, weight, dscale, digits))
}

/// A binary numeric as an integer scaled by 10^scale (exact, or an error when it does not fit).
pub(crate) fn numeric_to_i128(v: &[u8], scale: i8) -> std::result::Result<i128, String> {
    let (negative, weight, _, digits) = numeric_parts(v)?;
    let overflow = || "numeric value does not fit its declared precision".to_string();
    let mut acc: i128 = 0;
    for d in &digits {
        acc = acc.checked_mul(10_000).and_then(|a| a.checked_add(*d as i128)).ok_or_else(overflow)?;
    }
    // acc * 10000^(weight - ndigits + 1) * 10^scale
    let exp10 = 4 * (weight as i32 - digits.len() as i32 + 1) + scale as i32;
    let scaled = if exp10 >= 0 {
        acc.checked_mul(10i128.checked_pow(exp10 as u32).ok_or_else(overflow)?).ok_or_else(overflow)?
    } else {
        let div = 10i128.checked_pow((-exp10) as u32).unwrap_or(i128::MAX);
        acc / div // digits below the declared scale are zeros (PostgreSQL rounded on insert)
    };
    Ok(if negative { -scaled } else { scaled })
}

/// A binary numeric as its exact decimal text (`-12.340`).
fn numeric_to_text(v: &[u8]) -> std::result::Result<String, String> {
    let (negative, weight, dscale, digits) = match numeric_parts(v) {
        Ok(p) => p,
        Err(e) if e.contains("NaN") => return Ok("NaN".into()),
        Err(e) if e.contains("infinity") => {
            return Ok(if v.get(4) == Some(&0xF0) { "-Infinity" } else { "Infinity" }.into())
        }
        Err(e) => return Err(e),
    };
    let mut int_part = String::new();
    for i in 0..=weight.max(-1) {
        let d = digits.get(i as usize).copied().unwrap_or(0);
        if int_part.is_empty() {
            int_part = d.to_string();
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part = "0".into();
    }
    let mut frac = String::new();
    let mut i = weight as i32 + 1;
    while frac.len() < dscale as usize {
        let d = if i >= 0 { digits.get(i as usize).copied().unwrap_or(0) } else { 0 };
        frac.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac.truncate(dscale as usize);
    let sign = if negative { "-" } else { "" };
    Ok(if frac.is_empty() { format!("{sign}{int_part}") } else { format!("{sign}{int_part}.{frac}") })
}

/// The binary COPY decoder on bytes that did not come from a server, for the fuzz tests (`tests/fuzz.rs`): it must
/// answer any input with batches or an error, never a panic or a hang.
#[doc(hidden)]
pub fn decode_copy_stream(type_oids: &[u32], bytes: &[u8], chunk: usize) -> Result<Vec<RecordBatch>> {
    let mut decoders = Vec::new();
    let mut fields = Vec::new();
    for (i, oid) in type_oids.iter().enumerate() {
        let t = Type::from_oid(*oid).ok_or_else(|| Error::data(Default::default(), format!("no type {oid}")))?;
        let d = Decoder::for_type(&t, -1).map_err(|e| Error::data(Default::default(), e))?;
        fields.push(Field::new(format!("c{i}"), d.data_type(), true));
        decoders.push(d);
    }
    let mut reader = CopyReader::new(decoders, Arc::new(Schema::new(fields)), 64);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        out.extend(reader.push(piece)?);
    }
    out.extend(reader.finish()?);
    Ok(out)
}

/// Parses the binary COPY stream into batches.
struct CopyReader {
    decoders: Vec<Decoder>,
    schema: SchemaRef,
    batch_rows: usize,
    buf: BytesMut,
    header_done: bool,
    /// The trailer was read: the stream is complete.
    ended: bool,
    row: u64,
}

impl CopyReader {
    fn new(decoders: Vec<Decoder>, schema: SchemaRef, batch_rows: usize) -> CopyReader {
        CopyReader { decoders, schema, batch_rows, buf: BytesMut::new(), header_done: false, ended: false, row: 0 }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        if !self.header_done {
            // PGCOPY\n\377\r\n\0, flags (4), extension length (4) and extension.
            if self.buf.len() < 19 {
                return Ok(out);
            }
            let ext = u32::from_be_bytes([self.buf[15], self.buf[16], self.buf[17], self.buf[18]]) as usize;
            if self.buf.len() < 19 + ext {
                return Ok(out);
            }
            if &self.buf[..11] != b"PGCOPY\n\xff\r\n\0" {
                return Err(Error::data(Default::default(), "postgres COPY: not a binary COPY stream"));
            }
            self.buf.advance(19 + ext);
            self.header_done = true;
        }
        // A whole tuple must be buffered before it is decoded.
        while let Some(len) = self.tuple_len() {
            if len == 0 {
                self.ended = true;
                break; // the trailer
            }
            let tuple = self.buf.split_to(len);
            let broken =
                |row: u64, what: String| Error::data(Default::default(), format!("postgres COPY: row {row}: {what}"));
            let fields = i16::from_be_bytes([tuple[0], tuple[1]]);
            if usize::try_from(fields).ok() != Some(self.decoders.len()) {
                return Err(broken(self.row + 1, format!("{fields} fields, the query has {}", self.decoders.len())));
            }
            let mut r = &tuple[2..];
            for (i, d) in self.decoders.iter_mut().enumerate() {
                let (len, rest) = r.split_first_chunk::<4>().ok_or_else(|| broken(self.row + 1, "cut short".into()))?;
                let n = i32::from_be_bytes(*len);
                r = rest;
                if n == -1 {
                    d.append_null();
                } else if n < 0 || n as usize > r.len() {
                    return Err(broken(self.row + 1, format!("field {} has the length {n}", i + 1)));
                } else {
                    let (value, rest) = r.split_at(n as usize);
                    d.append(value).map_err(|e| {
                        Error::data(
                            Default::default(),
                            format!("row {}, column `{}`: {e}", self.row + 1, self.schema.field(i).name()),
                        )
                    })?;
                    r = rest;
                }
            }
            self.row += 1;
            if self.decoders.first().map(|d| d.len()).unwrap_or(0) >= self.batch_rows {
                out.push(self.flush()?);
            }
        }
        Ok(out)
    }

    /// The byte length of the buffered tuple, 0 for the trailer, None when it is not all here yet.
    fn tuple_len(&self) -> Option<usize> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let fields = i16::from_be_bytes([b[0], b[1]]);
        if fields == -1 {
            return Some(0);
        }
        let mut pos = 2;
        for _ in 0..fields {
            if b.len() < pos + 4 {
                return None;
            }
            let n = i32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
            pos += 4 + n.max(0) as usize;
        }
        (b.len() >= pos).then_some(pos)
    }

    fn flush(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = self.decoders.iter_mut().map(|d| d.finish()).collect();
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| Error::engine("postgres batch", e))
    }

    /// The last batch. A stream that ends before its trailer lost rows on the way: an error, never a short table.
    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if !self.ended {
            return Err(Error::external(
                "postgres COPY",
                format!("the stream ended after row {} without its trailer: rows are missing", self.row),
            ));
        }
        if self.decoders.first().map(|d| d.len()).unwrap_or(0) == 0 {
            return Ok(None);
        }
        self.flush().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: &[u16], weight: i16, negative: bool, dscale: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((ndigits.len() as u16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend((if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in ndigits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_exactly() {
        // 12345.67 = [1, 2345, 6700] weight 1
        let v = numeric(&[1, 2345, 6700], 1, false, 2);
        assert_eq!(numeric_to_i128(&v, 2).unwrap(), 1_234_567);
        assert_eq!(numeric_to_i128(&v, 4).unwrap(), 123_456_700);
        assert_eq!(numeric_to_text(&v).unwrap(), "12345.67");
        // -0.0001 = [1] weight -1
        let v = numeric(&[1], -1, true, 4);
        assert_eq!(numeric_to_i128(&v, 4).unwrap(), -1);
        assert_eq!(numeric_to_text(&v).unwrap(), "-0.0001");
        // 10000 = [1] weight 1, dscale 0
        let v = numeric(&[1], 1, false, 0);
        assert_eq!(numeric_to_text(&v).unwrap(), "10000");
        assert_eq!(numeric_to_i128(&v, 2).unwrap(), 1_000_000);
        assert_eq!(numeric_to_text(&numeric(&[], 0, false, 0)).unwrap(), "0");
    }
}
