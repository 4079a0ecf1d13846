//! A task's SQL run on a Spark Connect engine (Apache Spark 3.4+, Databricks, Sail) instead of the local DataFusion
//! session, for models that read more than one machine should scan. The query goes out as a Spark Connect plan (a
//! `SQL` relation) over gRPC; its rows come back as Arrow IPC batches and flow into the task's steps, checks and sink
//! as a local query's would, so the commit, the checks and the lineage are weir's own. When nothing is done to the
//! rows here, the engine writes them itself instead ([`write_parquet`]: Parquet files in a folder of the write,
//! which weir then commits to the Delta table).
//!
//! Lake tables named in the SQL (`silver.orders`) are rewritten to Delta paths (``delta.`s3://bucket/lake/silver/orders/` ``)
//! so that the engine reads the same files, with its own storage credentials, without touching its catalog (a
//! Databricks workspace may well have a `silver.orders` of its own).
//!
//! The client is the few messages weir needs, declared here with prost (no maintained Rust client is on weir's
//! Arrow version): `ExecutePlanRequest` with a `Plan { root: Relation { sql } }` on
//! `/spark.connect.SparkConnectService/ExecutePlan`, and the `arrow_batch` answers of its response stream.

use std::io::Cursor;
use std::str::FromStr;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use datafusion::sql::sqlparser::ast::{visit_relations_mut, Ident, ObjectName, ObjectNamePart};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use futures::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use weir_config::engine::SparkEngine;
use weir_connect::connector::SourceStream;
use weir_core::{Error, Result};

/// The protocol's messages, as far as weir uses them (field numbers as in Spark's `spark/connect/*.proto`).
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExecutePlanRequest {
        #[prost(string, tag = "1")]
        pub session_id: String,
        #[prost(message, optional, tag = "2")]
        pub user_context: Option<UserContext>,
        #[prost(message, optional, tag = "3")]
        pub plan: Option<Plan>,
        #[prost(string, optional, tag = "4")]
        pub client_type: Option<String>,
        #[prost(string, optional, tag = "6")]
        pub operation_id: Option<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct UserContext {
        #[prost(string, tag = "1")]
        pub user_id: String,
        #[prost(string, tag = "2")]
        pub user_name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Plan {
        /// `root` of the `op_type` oneof.
        #[prost(message, optional, tag = "1")]
        pub root: Option<Relation>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Relation {
        /// `sql` of the `rel_type` oneof.
        #[prost(message, optional, tag = "10")]
        pub sql: Option<Sql>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sql {
        #[prost(string, tag = "1")]
        pub query: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExecutePlanResponse {
        #[prost(string, tag = "1")]
        pub session_id: String,
        #[prost(message, optional, tag = "2")]
        pub arrow_batch: Option<ArrowBatch>,
        #[prost(message, optional, tag = "14")]
        pub result_complete: Option<ResultComplete>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ArrowBatch {
        #[prost(int64, tag = "1")]
        pub row_count: i64,
        /// An Arrow IPC stream: the schema and the batch.
        #[prost(bytes = "vec", tag = "2")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResultComplete {}
}

const EXECUTE_PLAN: &str = "/spark.connect.SparkConnectService/ExecutePlan";

/// Where a Spark Connect server listens, from `sc://host:port/;token=...;use_ssl=true;user_id=...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    pub host: String,
    pub port: u16,
    pub use_ssl: bool,
    pub token: Option<String>,
    pub user_id: String,
}

impl Remote {
    /// Parses a Spark Connect URL; `token` (weir.yaml's, `${env:...}` resolved) wins over one in the URL.
    pub fn parse(url: &str, token: Option<String>) -> std::result::Result<Remote, String> {
        let rest =
            url.strip_prefix("sc://").ok_or_else(|| format!("`{url}` is not a Spark Connect URL (sc://host:port)"))?;
        let (address, params) = rest.split_once(';').map_or((rest, ""), |(a, p)| (a, p));
        let address = address.trim_end_matches('/');
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| format!("`{url}`: port `{p}` is not a number"))?),
            None => (address, 15002),
        };
        if host.is_empty() {
            return Err(format!("`{url}` names no host"));
        }
        let mut remote = Remote { host: host.to_string(), port, use_ssl: false, token: None, user_id: "weir".into() };
        for param in params.split(';').filter(|p| !p.is_empty()) {
            match param.split_once('=') {
                Some(("token", v)) => remote.token = Some(v.to_string()),
                Some(("use_ssl", v)) => remote.use_ssl = v.eq_ignore_ascii_case("true"),
                Some(("user_id", v)) => remote.user_id = v.to_string(),
                _ => {} // session_id, user_agent and others Spark's clients accept: not needed here
            }
        }
        if token.is_some() {
            remote.token = token;
        }
        // A bearer token travels only over TLS, as Spark's own clients insist.
        if remote.token.is_some() {
            remote.use_ssl = true;
        }
        Ok(remote)
    }

    /// `sc://host:port` without secrets, for logs and reports.
    pub fn display(&self) -> String {
        format!("sc://{}:{}", self.host, self.port)
    }
}

/// Rewrites the lake tables `sql` names into Delta paths the engine reads directly: `tables` maps `zone.table`
/// (lower case) to its URL. Names that are no lake table (a CTE, a view of the engine) are left as they are.
pub fn with_lake_paths(sql: &str, tables: &[(String, String)]) -> Result<String> {
    let dialect = GenericDialect {};
    let mut statements = Parser::parse_sql(&dialect, sql).map_err(|e| Error::sql("remote sql", e.to_string()))?;
    for statement in &mut statements {
        let _ = visit_relations_mut(statement, |name: &mut ObjectName| {
            let written: Vec<String> =
                name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).collect();
            if let Some((_, url)) = tables.iter().find(|(t, _)| written.len() == 2 && *t == written.join(".")) {
                *name = ObjectName(vec![
                    ObjectNamePart::Identifier(Ident::new("delta")),
                    ObjectNamePart::Identifier(Ident::with_quote('`', url.clone())),
                ]);
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    Ok(statements.iter().map(ToString::to_string).collect::<Vec<_>>().join(";\n"))
}

/// Runs `sql` (already rewritten with [`with_lake_paths`]) on the engine and streams its rows; `what` names the
/// task in errors.
pub async fn sql_stream(engine: &SparkEngine, sql: &str, what: &str) -> Result<SourceStream> {
    let session = uuid::Uuid::new_v4().to_string();
    let started = std::time::Instant::now();
    let (remote, answers) = execute(engine, &session, sql, what).await?;
    decoded(remote, answers, started, what).await
}

/// The columns `sql` returns, without running it: the engine plans it under `LIMIT 0` and answers with an empty
/// batch; its rows are read when the stream is first polled (not at all if it is dropped first).
pub async fn lazy_sql_stream(engine: &SparkEngine, sql: &str, what: &str) -> Result<SourceStream> {
    let probe = sql_stream(engine, &format!("SELECT * FROM ({sql}) AS weir_columns LIMIT 0"), what).await?;
    let (engine, sql, named) = (engine.clone(), sql.to_string(), what.to_string());
    let batches = futures::stream::once(async move {
        match sql_stream(&engine, &sql, &named).await {
            Ok(rows) => rows.batches,
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed();
    Ok(SourceStream::new(probe.schema, batches))
}

/// Runs `sql` in `session` of the engine (a `SET` applies to the later statements of the session) and returns
/// its answer.
async fn run_in(engine: &SparkEngine, session: &str, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    let (remote, mut answers) = execute(engine, session, sql, what).await?;
    let mut batches = Vec::new();
    while let Some(answer) =
        answers.message().await.map_err(|status| Error::sql(what, format!("{remote}: {}", status.message())))?
    {
        if let Some(batch) = answer.arrow_batch {
            let (_, decoded) = decode(&batch.data).map_err(|e| Error::external(format!("{what} on {remote}"), e))?;
            batches.extend(decoded);
        }
        if answer.result_complete.is_some() {
            break;
        }
    }
    Ok(batches)
}

/// Has the engine write `sql`'s rows as Parquet files into `folder` (a URL new for this write, under the target
/// table) with `INSERT OVERWRITE DIRECTORY`, each column of `schema` cast to its type (a column the query does not
/// return, by `returned`, written as nulls) and timestamps as microseconds (Apache Spark writes INT96 unless told).
/// Returns false, having sent nothing, when a column's type has no Spark SQL name here: the rows then come back.
pub async fn write_parquet(
    engine: &SparkEngine,
    sql: &str,
    what: &str,
    returned: &arrow::datatypes::Schema,
    schema: &arrow::datatypes::Schema,
    folder: &str,
) -> Result<bool> {
    let mut columns = Vec::new();
    for field in schema.fields() {
        let Some(ty) = spark_type(field.data_type()) else { return Ok(false) };
        let name = format!("`{}`", field.name().replace('`', "``"));
        let value = if returned.index_of(field.name()).is_ok() { name.clone() } else { "NULL".to_string() };
        columns.push(format!("CAST({value} AS {ty}) AS {name}"));
    }
    let folder = folder.replace('\\', "\\\\").replace('\'', "\\'");
    let insert = format!(
        "INSERT OVERWRITE DIRECTORY '{folder}' USING parquet SELECT {} FROM ({sql}) AS weir_output",
        columns.join(", ")
    );
    let session = uuid::Uuid::new_v4().to_string();
    // Sail writes microseconds already and refuses Spark's unquoted `SET` value: a refused setting is no failure.
    let micros = "SET spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS";
    if let Err(e) = run_in(engine, &session, micros, what).await {
        tracing::debug!("{what}: the engine did not take `{micros}`: {e}");
    }
    run_in(engine, &session, &insert, what).await?;
    Ok(true)
}

/// The Spark SQL name of a type weir's Delta tables hold, or None.
fn spark_type(t: &arrow::datatypes::DataType) -> Option<String> {
    use arrow::datatypes::{DataType, TimeUnit};
    Some(match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "TIMESTAMP".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "TIMESTAMP_NTZ".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        _ => return None,
    })
}

/// Sends `sql` in `session` and returns the engine's address (for messages) and its stream of answers.
async fn execute(
    engine: &SparkEngine,
    session: &str,
    sql: &str,
    what: &str,
) -> Result<(String, tonic::Streaming<proto::ExecutePlanResponse>)> {
    let remote = Remote::parse(&engine.url, engine.token.clone())
        .map_err(|e| Error::config(Default::default(), format!("{what}: engine spark: {e}")))?;
    let failed = |doing: &str, e: &dyn std::fmt::Display| {
        Error::external(format!("{what} on {}", remote.display()), format!("{doing}: {e}"))
    };
    let scheme = if remote.use_ssl { "https" } else { "http" };
    let mut endpoint = Endpoint::from_str(&format!("{scheme}://{}:{}", remote.host, remote.port))
        .map_err(|e| failed("address", &e))?
        .connect_timeout(Duration::from_secs(20))
        .tcp_keepalive(Some(Duration::from_secs(30)));
    if remote.use_ssl {
        let tls = ClientTlsConfig::new().with_webpki_roots().domain_name(remote.host.clone());
        endpoint = endpoint.tls_config(tls).map_err(|e| failed("TLS", &e))?;
    }
    let channel: Channel = endpoint.connect().await.map_err(|e| failed("connect", &e))?;
    let request = proto::ExecutePlanRequest {
        session_id: session.to_string(),
        user_context: Some(proto::UserContext { user_id: remote.user_id.clone(), user_name: remote.user_id.clone() }),
        plan: Some(proto::Plan { root: Some(proto::Relation { sql: Some(proto::Sql { query: sql.to_string() }) }) }),
        client_type: Some(format!("weir/{}", env!("CARGO_PKG_VERSION"))),
        operation_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    tracing::debug!(engine = %remote.display(), sql, "{what}: sending SQL");
    let mut request = tonic::Request::new(request);
    if let Some(token) = &remote.token {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Error::config(Default::default(), format!("{what}: the engine's token is not valid text")))?;
        request.metadata_mut().insert("authorization", value);
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| failed("connect", &e))?;
    let codec = tonic_prost::ProstCodec::<proto::ExecutePlanRequest, proto::ExecutePlanResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXECUTE_PLAN);
    let answers = grpc
        .server_streaming(request, path, codec)
        .await
        .map_err(|status| Error::sql(what, format!("{} refused the query: {}", remote.display(), status.message())))?
        .into_inner();
    Ok((remote.display(), answers))
}

/// The rows of an answer stream, its first Arrow batch giving the schema.
async fn decoded(
    address: String,
    answers: tonic::Streaming<proto::ExecutePlanResponse>,
    started: std::time::Instant,
    what: &str,
) -> Result<SourceStream> {
    let failed = |doing: &str, e: &dyn std::fmt::Display| {
        Error::external(format!("{what} on {address}"), format!("{doing}: {e}"))
    };
    // One stream of decoded answers; the first Arrow batch brings the schema.
    let named = what.to_string();
    let shown = address.clone();
    let mut decoded = futures::stream::unfold(Some(answers), move |answers| {
        let (display, what) = (shown.clone(), named.clone());
        async move {
            let mut answers = answers?;
            loop {
                match answers.message().await {
                    Ok(Some(answer)) => {
                        let done = answer.result_complete.is_some();
                        if let Some(batch) = answer.arrow_batch {
                            let decoded =
                                decode(&batch.data).map_err(|e| Error::external(format!("{what} on {display}"), e));
                            return Some((decoded, (!done).then_some(answers)));
                        }
                        if done {
                            return None;
                        }
                    }
                    Ok(None) => return None,
                    Err(status) => {
                        return Some((Err(Error::sql(&what, format!("{display}: {}", status.message()))), None))
                    }
                }
            }
        }
    })
    .boxed()
    .peekable();
    let schema = match std::pin::Pin::new(&mut decoded).peek().await {
        Some(Ok((schema, _))) => schema.clone(),
        Some(Err(_)) => return Err(decoded.next().await.and_then(|r| r.err()).expect("peeked an error")),
        None => return Err(failed("read the result", &"the engine sent no rows and no schema")),
    };
    tracing::info!(
        engine = %address,
        first_rows_after_ms = started.elapsed().as_millis() as u64,
        "{what}: SQL sent to the Spark Connect engine"
    );
    let batches = decoded
        .flat_map(|answer| {
            futures::stream::iter(match answer {
                Ok((_, batches)) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
        .boxed();
    Ok(SourceStream::new(schema, batches))
}

/// One answer's Arrow IPC stream: its schema and batches.
fn decode(data: &[u8]) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), String> {
    let reader = StreamReader::try_new(Cursor::new(data), None).map_err(|e| e.to_string())?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_as_spark_clients_read_them() {
        let r = Remote::parse("sc://spark.internal:15002", None).unwrap();
        assert_eq!((r.host.as_str(), r.port, r.use_ssl, r.token), ("spark.internal", 15002, false, None));
        let r = Remote::parse("sc://dbc.example.com:443/;token=abc;user_id=etl", None).unwrap();
        assert_eq!((r.port, r.use_ssl, r.token.as_deref(), r.user_id.as_str()), (443, true, Some("abc"), "etl"));
        assert_eq!(Remote::parse("sc://h", Some("t".into())).unwrap().port, 15002);
        assert!(Remote::parse("http://h:1", None).unwrap_err().contains("sc://"));
        assert!(Remote::parse("sc://h:x", None).unwrap_err().contains("port"));
    }

    #[test]
    fn lake_tables_become_delta_paths_and_other_names_stay() {
        let tables = vec![("silver.orders".to_string(), "s3://b/lake/silver/orders/".to_string())];
        let sql = "WITH fx(currency, rate) AS (VALUES ('USD', 1.0)) SELECT o.country FROM silver.orders o \
                   LEFT JOIN fx ON o.currency = fx.currency WHERE o.date = '2026-03-25'";
        let out = with_lake_paths(sql, &tables).unwrap();
        assert!(out.contains("FROM delta.`s3://b/lake/silver/orders/` o LEFT JOIN"), "{out}");
        assert!(out.contains("LEFT JOIN fx ON"), "{out}");
        assert!(!out.contains("silver.orders"), "{out}");
    }
}
