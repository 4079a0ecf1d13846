//! `type: mysql`: rows of a MySQL or MariaDB table or query, streamed over the binary protocol (a prepared
//! statement, so values arrive typed, not as text) into Arrow builders, a batch at a time.
//!
//! ```yaml
//! source: {type: mysql, connection: shop, table: orders}   # or query: "SELECT ... WHERE day = '{{ ds }}'"
//! ```
//!
//! Types: TINYINT/SMALLINT/MEDIUMINT/INT → int (BIGINT → bigint; unsigned widened), FLOAT/DOUBLE → real/double,
//! DECIMAL(p,s) → decimal(p,s), CHAR/VARCHAR/TEXT/ENUM/SET/JSON → text, BINARY/VARBINARY/BLOB → binary, DATE → date,
//! DATETIME → timestamp, TIMESTAMP → timestamptz (the session runs in UTC), TIME → time, YEAR → int. Anything else is
//! an error naming the column and its type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use serde::Deserialize;
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::connector::{BatchSource, SourceKind, SourceRun, SourceStream};
use futures::future::BoxFuture;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    #[serde(default)]
    pub connection: Option<String>,
    /// Or `mysql://user:${env:PW}@host:3306/db`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
}

/// `type: mysql`.
pub const SOURCE: SourceKind =
    SourceKind { name: "mysql", parse: |n| MysqlSourceConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSource>) };

impl BatchSource for MysqlSourceConfig {
    fn kind(&self) -> &str {
        "mysql"
    }

    fn reads(&self) -> String {
        self.table.clone().or_else(|| self.query.clone()).unwrap_or_default()
    }

    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>> {
        Box::pin(async move {
            let url =
                run.connector.database_url(self.url.as_ref(), self.connection.as_ref(), "mysql", "a mysql source")?;
            self.read(&url, run.connector.batch_rows).await
        })
    }
}

/// TLS as `sslmode` says (libpq's names, as for PostgreSQL): `disable` and `prefer` (the default: mysql_async
/// cannot fall back) connect in plain text; `require` encrypts and trusts the server; `verify-full` checks the
/// chain (against `sslrootcert`, or the built-in roots) and the host name. `verify-ca` (the chain without the name)
/// is refused: the MySQL driver's way to skip the name check does not work with this rustls, and weir will not
/// pretend to check what it does not.
fn ssl_opts(tls: &crate::postgres_tls::TlsSettings) -> Result<Option<mysql_async::SslOpts>> {
    use crate::postgres_tls::SslMode;
    crate::postgres_tls::install_crypto_provider();
    Ok(match tls.mode {
        SslMode::Disable | SslMode::Prefer => None,
        SslMode::Require if tls.root_cert.is_none() => Some(
            mysql_async::SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        SslMode::Require | SslMode::VerifyCa => {
            return Err(Error::config(
                Default::default(),
                "mysql: sslmode verify-ca (or require with sslrootcert) is not supported; use verify-full (the \
                 certificate's chain and host name), or require without sslrootcert",
            ))
        }
        SslMode::VerifyFull => Some(match &tls.root_cert {
            Some(file) => mysql_async::SslOpts::default().with_root_certs(vec![file.clone().into()]),
            None => mysql_async::SslOpts::default(),
        }),
    })
}

impl MysqlSourceConfig {
    pub fn parse(node: &Node) -> std::result::Result<Self, Vec<Diagnostic>> {
        let cfg: MysqlSourceConfig = from_node(node, &["type"])?;
        crate::connection::check_source_choices(
            node,
            cfg.connection.is_some(),
            cfg.url.is_some(),
            cfg.table.is_some(),
            cfg.query.is_some(),
        )?;
        Ok(cfg)
    }

    fn sql(&self) -> String {
        match (&self.query, &self.table) {
            (Some(q), _) => q.trim().trim_end_matches(';').to_string(),
            (None, Some(t)) => format!(
                "SELECT * FROM {}",
                t.split('.').map(|p| format!("`{}`", p.replace('`', "``"))).collect::<Vec<_>>().join(".")
            ),
            (None, None) => String::new(),
        }
    }

    pub async fn read(&self, url: &str, batch_rows: usize) -> Result<SourceStream> {
        // Errors never show the password.
        let password =
            url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_string)).filter(|p| !p.is_empty());
        let failed = move |what: &str, e: mysql_async::Error| {
            let text = e.to_string();
            let text = match &password {
                Some(p) => text.replace(p.as_str(), "***"),
                None => text,
            };
            Error::data(Default::default(), format!("mysql {what}: {text}"))
        };
        let (plain_url, tls) = crate::postgres_tls::take_tls_params(url)?;
        let opts = mysql_async::Opts::from_url(&plain_url).map_err(|e| {
            Error::config(Default::default(), format!("mysql url: {}", e.to_string().replace(&plain_url, "<url>")))
        })?;
        let opts: mysql_async::Opts = mysql_async::OptsBuilder::from_opts(opts).ssl_opts(ssl_opts(&tls)?).into();
        let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| failed("connect", e))?;
        // TIMESTAMP values are read in UTC, whatever the server's zone.
        conn.query_drop("SET time_zone = '+00:00'").await.map_err(|e| failed("session", e))?;
        let sql = self.sql();
        let statement = conn.prep(&sql).await.map_err(|e| failed("query", e))?;
        let mut columns = Vec::new();
        for c in statement.columns().iter() {
            let column = Column::for_column(c)
                .map_err(|e| Error::data(Default::default(), format!("column `{}`: {e}", c.name_str())))?;
            columns.push((c.name_str().to_string(), column));
        }
        let schema: SchemaRef =
            Arc::new(Schema::new(columns.iter().map(|(n, c)| Field::new(n, c.data_type(), true)).collect::<Vec<_>>()));
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        let (out, counter) = (schema.clone(), bytes_read.clone());
        tokio::spawn(async move {
            let mut builders: Vec<Column> = columns.into_iter().map(|(_, c)| c).collect();
            let result: Result<()> = async {
                let mut rows = conn.exec_iter(&statement, ()).await.map_err(|e| failed("query", e))?;
                let mut n = 0usize;
                let mut row_number = 0u64;
                while let Some(row) = rows.next().await.map_err(|e| failed("read", e))? {
                    row_number += 1;
                    let values = row.unwrap();
                    for (i, (b, v)) in builders.iter_mut().zip(values).enumerate() {
                        b.push(v).map_err(|e| {
                            Error::data(
                                Default::default(),
                                format!("row {row_number}, column `{}`: {e}", out.field(i).name()),
                            )
                        })?;
                    }
                    n += 1;
                    if n >= batch_rows.max(1) {
                        let batch = finish(&out, &mut builders)?;
                        counter.fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
                        if tx.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                        n = 0;
                    }
                }
                if n > 0 {
                    let _ = tx.send(finish(&out, &mut builders)).await;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
            let _ = conn.disconnect().await;
        });
        let batches = crate::connector::batches_from(rx);
        Ok(SourceStream { schema, batches, total_bytes: None, bytes_read, rejects: None, checkpoint: None })
    }
}

/// Connects and says which server answered (`weir check connections`).
pub async fn ping(url: &str) -> std::result::Result<String, String> {
    let opts = mysql_async::Opts::from_url(url).map_err(|_| "not a mysql:// URL".to_string())?;
    let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| e.to_string())?;
    let version: Option<String> = conn.query_first("SELECT version()").await.map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(format!("MySQL/MariaDB {}", version.unwrap_or_default()))
}

fn finish(schema: &SchemaRef, builders: &mut [Column]) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = builders.iter_mut().map(Column::finish).collect();
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::engine("mysql batch", e))
}

const BINARY_CHARSET: u16 = 63;

enum Column {
    Int(Int32Builder),
    Big(Int64Builder),
    Unsigned(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Decimal(Decimal128Builder, u8, i8),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    DateTime(TimestampMicrosecondBuilder, bool),
    Time(Time64MicrosecondBuilder),
}

impl Column {
    fn for_column(c: &mysql_async::Column) -> std::result::Result<Column, String> {
        use ColumnType::*;
        let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
        let binary = c.character_set() == BINARY_CHARSET;
        Ok(match c.column_type() {
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_INT24 | MYSQL_TYPE_YEAR => Column::Int(Int32Builder::new()),
            MYSQL_TYPE_LONG if !unsigned => Column::Int(Int32Builder::new()),
            MYSQL_TYPE_LONG => Column::Big(Int64Builder::new()),
            MYSQL_TYPE_LONGLONG if unsigned => Column::Unsigned(UInt64Builder::new()),
            MYSQL_TYPE_LONGLONG => Column::Big(Int64Builder::new()),
            MYSQL_TYPE_FLOAT => Column::F32(Float32Builder::new()),
            MYSQL_TYPE_DOUBLE => Column::F64(Float64Builder::new()),
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => {
                let scale = c.decimals();
                // The display length counts the sign and the point.
                let precision = c.column_length() as i64 - i64::from(scale > 0) - i64::from(!unsigned);
                let precision = precision.clamp(1, 38) as u8;
                Column::Decimal(
                    Decimal128Builder::new()
                        .with_precision_and_scale(precision, scale as i8)
                        .map_err(|e| e.to_string())?,
                    precision,
                    scale as i8,
                )
            }
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
                if binary =>
            {
                Column::Bytes(BinaryBuilder::new())
            }
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET
            | MYSQL_TYPE_JSON
            | MYSQL_TYPE_NULL => Column::Text(StringBuilder::new()),
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Column::Date(Date32Builder::new()),
            MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Column::DateTime(TimestampMicrosecondBuilder::new(), false),
            MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
                Column::DateTime(TimestampMicrosecondBuilder::new().with_timezone("UTC"), true)
            }
            MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Column::Time(Time64MicrosecondBuilder::new()),
            other => return Err(format!("type {other:?} is not supported; CAST it in the query")),
        })
    }

    fn data_type(&self) -> DataType {
        match self {
            Column::Int(_) => DataType::Int32,
            Column::Big(_) => DataType::Int64,
            Column::Unsigned(_) => DataType::UInt64,
            Column::F32(_) => DataType::Float32,
            Column::F64(_) => DataType::Float64,
            Column::Decimal(_, p, s) => DataType::Decimal128(*p, *s),
            Column::Text(_) => DataType::Utf8,
            Column::Bytes(_) => DataType::Binary,
            Column::Date(_) => DataType::Date32,
            Column::DateTime(_, utc) => DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| "UTC".into())),
            Column::Time(_) => DataType::Time64(TimeUnit::Microsecond),
        }
    }

    fn push(&mut self, v: Value) -> std::result::Result<(), String> {
        let int = |v: &Value| -> std::result::Result<i64, String> {
            match v {
                Value::Int(i) => Ok(*i),
                Value::UInt(u) => i64::try_from(*u).map_err(|_| format!("{u} does not fit a signed 64-bit integer")),
                Value::Bytes(b) => String::from_utf8_lossy(b).trim().parse().map_err(|e| format!("{e}")),
                other => Err(format!("unexpected {other:?}")),
            }
        };
        let text = |v: Value| -> std::result::Result<String, String> {
            match v {
                Value::Bytes(b) => String::from_utf8(b).map_err(|e| e.to_string()),
                other => Ok(other.as_sql(true).trim_matches('\'').to_string()),
            }
        };
        if v == Value::NULL {
            match self {
                Column::Int(b) => b.append_null(),
                Column::Big(b) => b.append_null(),
                Column::Unsigned(b) => b.append_null(),
                Column::F32(b) => b.append_null(),
                Column::F64(b) => b.append_null(),
                Column::Decimal(b, _, _) => b.append_null(),
                Column::Text(b) => b.append_null(),
                Column::Bytes(b) => b.append_null(),
                Column::Date(b) => b.append_null(),
                Column::DateTime(b, _) => b.append_null(),
                Column::Time(b) => b.append_null(),
            }
            return Ok(());
        }
        match self {
            Column::Int(b) => b.append_value(i32::try_from(int(&v)?).map_err(|e| e.to_string())?),
            Column::Big(b) => b.append_value(int(&v)?),
            Column::Unsigned(b) => match v {
                Value::UInt(u) => b.append_value(u),
                Value::Int(i) => b.append_value(u64::try_from(i).map_err(|e| e.to_string())?),
                other => return Err(format!("unexpected {other:?}")),
            },
            Column::F32(b) => match v {
                Value::Float(f) => b.append_value(f),
                Value::Double(d) => b.append_value(d as f32),
                other => return Err(format!("unexpected {other:?}")),
            },
            Column::F64(b) => match v {
                Value::Double(d) => b.append_value(d),
                Value::Float(f) => b.append_value(f as f64),
                other => return Err(format!("unexpected {other:?}")),
            },
            Column::Decimal(b, _, scale) => {
                let s = text(v)?;
                b.append_value(decimal_text(&s, *scale).ok_or_else(|| format!("`{s}` is not a decimal"))?)
            }
            Column::Text(b) => b.append_value(text(v)?),
            Column::Bytes(b) => match v {
                Value::Bytes(x) => b.append_value(x),
                other => return Err(format!("unexpected {other:?}")),
            },
            Column::Date(b) => match v {
                Value::Date(y, m, d, ..) => {
                    let date = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
                        .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} is not a date (zero dates are not)"))?;
                    b.append_value((date - chrono::NaiveDate::default()).num_days() as i32)
                }
                other => return Err(format!("unexpected {other:?}")),
            },
            Column::DateTime(b, _) => match v {
                Value::Date(y, m, d, h, mi, s, us) => {
                    let t = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
                        .and_then(|d| d.and_hms_micro_opt(h as u32, mi as u32, s as u32, us))
                        .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} is not a time"))?;
                    b.append_value(t.and_utc().timestamp_micros())
                }
                other => return Err(format!("unexpected {other:?}")),
            },
            Column::Time(b) => match v {
                Value::Time(false, 0, h, m, s, us) => {
                    b.append_value(((h as i64 * 60 + m as i64) * 60 + s as i64) * 1_000_000 + us as i64)
                }
                Value::Time(neg, days, h, ..) => {
                    return Err(format!(
                        "{}{} days {h} hours is a duration, not a time of day; CAST it in the query",
                        if neg { "-" } else { "" },
                        days
                    ))
                }
                other => return Err(format!("unexpected {other:?}")),
            },
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Int(b) => Arc::new(b.finish()),
            Column::Big(b) => Arc::new(b.finish()),
            Column::Unsigned(b) => Arc::new(b.finish()),
            Column::F32(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Decimal(b, _, _) => Arc::new(b.finish()),
            Column::Text(b) => Arc::new(b.finish()),
            Column::Bytes(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::DateTime(b, _) => Arc::new(b.finish()),
            Column::Time(b) => Arc::new(b.finish()),
        }
    }
}

/// `-12.5` at scale 2 is -1250 (exact; None when it is not a number or has more digits than the scale).
fn decimal_text(s: &str, scale: i8) -> Option<i128> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if frac.len() > scale.max(0) as usize || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{int}{frac:0<width$}", width = scale.max(0) as usize);
    let v: i128 = if padded.is_empty() { 0 } else { padded.parse().ok()? };
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(decimal_text("-12.5", 2), Some(-1250));
        assert_eq!(decimal_text("0.01", 2), Some(1));
        assert_eq!(decimal_text("100", 3), Some(100_000));
        assert_eq!(decimal_text("1.234", 2), None);
        assert_eq!(decimal_text("abc", 2), None);
    }
}
