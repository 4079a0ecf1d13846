//! A task's SQL run on a Spark Connect engine (Apache Spark 3.4+, Databricks, Sail) instead of the local DataFusion
//! session, for models that read more than one machine should scan. The query goes out as a Spark Connect plan (a
//! `SQL` relation) over gRPC; its rows come back as Arrow IPC batches and flow into the task's steps, checks and sink
//! as a local query's would, so the commit, the checks and the lineage are weir's own. When nothing is done to the
//! rows here, the engine writes them itself instead ([`write_parquet`]: Parquet files in a folder of the write,
//! which weir then commits to the Delta table).
//!
//! Lake tables named in the SQL (`silver.orders`) are rewritten to Delta paths (``delta.`s3://bucket/lake/silver/orders/` ``)
//! so that the engine reads the same files, with its own storage credentials, without touching its catalog (a
//! Databricks workspace may well have a `silver.orders` of its own). An engine without a Delta reader (weir.yaml's
//! `delta: files`) is handed views of the tables' current Parquet files instead, defined in the same plan.
//!
//! The client is the few messages weir needs, declared here with prost (no maintained Rust client is on weir's
//! Arrow version): `ExecutePlanRequest` with a `Plan { root: Relation { sql } }` (or a `WithRelations` of the SQL
//! and the views it names, each a `SubqueryAlias` of `Read`s) on `/spark.connect.SparkConnectService/ExecutePlan`,
//! the `arrow_batch` answers of its response stream, and `Interrupt` for a query whose answer weir stopped reading.

use std::collections::BTreeMap;
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
use weir_config::engine::{DeltaReads, SparkEngine};
use weir_connect::connector::SourceStream;
use weir_core::{Error, Result};
use weir_lake::delta::DeltaFiles;
use weir_lake::{LakeTable, TableLocation};

use crate::remote_steps::{q, sql_text};

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

    /// One of `rel_type`'s fields is set.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Relation {
        #[prost(message, optional, tag = "1")]
        pub common: Option<RelationCommon>,
        #[prost(message, optional, tag = "2")]
        pub read: Option<Read>,
        #[prost(message, optional, tag = "10")]
        pub sql: Option<Sql>,
        #[prost(message, optional, boxed, tag = "16")]
        pub subquery_alias: Option<Box<SubqueryAlias>>,
        /// SQL naming other relations (`references`, each a `SubqueryAlias`) by their aliases.
        #[prost(message, optional, boxed, tag = "41")]
        pub with_relations: Option<Box<WithRelations>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RelationCommon {
        /// Unique in a plan: Sail resolves the references of a `WithRelations` by it.
        #[prost(int64, optional, tag = "2")]
        pub plan_id: Option<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Read {
        /// `data_source` of the `read_type` oneof.
        #[prost(message, optional, tag = "2")]
        pub data_source: Option<DataSource>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DataSource {
        #[prost(string, optional, tag = "1")]
        pub format: Option<String>,
        /// The columns, as a DDL string (`a BIGINT, b STRING`).
        #[prost(string, optional, tag = "2")]
        pub schema: Option<String>,
        #[prost(string, repeated, tag = "4")]
        pub paths: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubqueryAlias {
        #[prost(message, optional, boxed, tag = "1")]
        pub input: Option<Box<Relation>>,
        #[prost(string, tag = "2")]
        pub alias: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WithRelations {
        #[prost(message, optional, boxed, tag = "1")]
        pub root: Option<Box<Relation>>,
        #[prost(message, repeated, tag = "2")]
        pub references: Vec<Relation>,
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

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InterruptRequest {
        #[prost(string, tag = "1")]
        pub session_id: String,
        #[prost(message, optional, tag = "2")]
        pub user_context: Option<UserContext>,
        #[prost(string, optional, tag = "3")]
        pub client_type: Option<String>,
        /// `INTERRUPT_TYPE_ALL` (1): every operation of the session.
        #[prost(int32, tag = "4")]
        pub interrupt_type: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InterruptResponse {
        #[prost(string, tag = "1")]
        pub session_id: String,
        #[prost(string, repeated, tag = "2")]
        pub interrupted_ids: Vec<String>,
    }
}

const EXECUTE_PLAN: &str = "/spark.connect.SparkConnectService/ExecutePlan";
const INTERRUPT: &str = "/spark.connect.SparkConnectService/Interrupt";

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

/// A query for the engine: its SQL and the views it names that weir defines (lake tables handed over as their
/// Parquet files), sent together as one plan, so the engine's catalog and session are left as they were.
#[derive(Debug, Clone, Default)]
pub struct SparkQuery {
    pub sql: String,
    views: Vec<proto::Relation>,
}

impl SparkQuery {
    pub fn new(sql: impl Into<String>) -> SparkQuery {
        SparkQuery { sql: sql.into(), views: Vec::new() }
    }

    /// Other SQL over the same views: a statement around this query, or another query of the same tables.
    pub fn with_sql(&self, sql: String) -> SparkQuery {
        SparkQuery { sql, views: self.views.clone() }
    }

    fn relation(&self) -> proto::Relation {
        sql_relation(&self.sql, self.views.clone())
    }
}

/// A plan id no other relation of this process has.
fn plan_id() -> Option<proto::RelationCommon> {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);
    Some(proto::RelationCommon { plan_id: Some(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) })
}

fn sql_relation(sql: &str, references: Vec<proto::Relation>) -> proto::Relation {
    let sql =
        proto::Relation { sql: Some(proto::Sql { query: sql.to_string() }), common: plan_id(), ..Default::default() };
    if references.is_empty() {
        return sql;
    }
    let with = proto::WithRelations { root: Some(Box::new(sql)), references };
    proto::Relation { with_relations: Some(Box::new(with)), common: plan_id(), ..Default::default() }
}

fn alias(input: proto::Relation, alias: String) -> proto::Relation {
    let alias = proto::SubqueryAlias { input: Some(Box::new(input)), alias };
    proto::Relation { subquery_alias: Some(Box::new(alias)), common: plan_id(), ..Default::default() }
}

/// Rewrites the lake tables `sql` names (`silver.orders`, matched against the lake's Delta `tables`) into what the
/// engine reads: their paths (``delta.`s3://bucket/lake/silver/orders/` ``) when it reads Delta itself, else views
/// of their current files ([`DeltaReads::Files`]). Names that are no lake table (a CTE, a view of the engine) are
/// left as they are.
pub async fn with_lake_tables(sql: &str, tables: &[LakeTable], reads: DeltaReads, what: &str) -> Result<SparkQuery> {
    let mut named: Vec<usize> = Vec::new();
    let sql = rename_tables(sql, |written| {
        let i = tables.iter().position(|t| t.name.to_string().eq_ignore_ascii_case(written))?;
        Some(match reads {
            DeltaReads::Engine => ObjectName(vec![
                ObjectNamePart::Identifier(Ident::new("delta")),
                ObjectNamePart::Identifier(Ident::with_quote('`', tables[i].location.url.to_string())),
            ]),
            DeltaReads::Files => {
                if !named.contains(&i) {
                    named.push(i);
                }
                ObjectName(vec![ObjectNamePart::Identifier(Ident::new(format!("weir_lake_{i}")))])
            }
        })
    })?;
    let mut views = Vec::new();
    for i in named {
        let files = weir_lake::delta::files_at(&tables[i].location, None).await?;
        views.push(files_view(&format!("weir_lake_{i}"), &files, &format!("{what}: {}", tables[i].name))?);
    }
    Ok(SparkQuery { sql, views })
}

/// A Delta table's `version` as the source of a query: ``delta.`url` VERSION AS OF n``, or a view of that
/// version's files ([`DeltaReads::Files`]).
pub async fn table_version(
    location: &TableLocation,
    version: u64,
    reads: DeltaReads,
    what: &str,
) -> Result<SparkQuery> {
    match reads {
        DeltaReads::Engine => Ok(SparkQuery::new(format!("delta.`{}` VERSION AS OF {version}", location.url))),
        DeltaReads::Files => {
            let files = weir_lake::delta::files_at(location, Some(version)).await?;
            Ok(SparkQuery { sql: "weir_lake_0".into(), views: vec![files_view("weir_lake_0", &files, what)?] })
        }
    }
}

/// The output the engine wrote for a task (its staged files, not committed yet), as the table `this` of the queries
/// of the task's checks, run on the same engine beside the lake tables they name.
pub struct StagedOnSpark {
    engine: SparkEngine,
    this: proto::Relation,
    tables: Vec<LakeTable>,
}

impl StagedOnSpark {
    /// `files` hold the output, whose columns are `schema`'s (the task's rows: a fixed partition's column is the
    /// sink's, not theirs, as in a local run).
    pub fn open(
        engine: &SparkEngine,
        tables: Vec<LakeTable>,
        files: &[String],
        schema: arrow::datatypes::SchemaRef,
    ) -> Result<StagedOnSpark> {
        let staged = DeltaFiles {
            version: 0,
            schema,
            partition_columns: Vec::new(),
            files: files.iter().map(|f| (f.clone(), Vec::new())).collect(),
        };
        let this = files_view("this", &staged, "checks on the engine's output")?;
        Ok(StagedOnSpark { engine: engine.clone(), this, tables })
    }

    /// The rows of `sql` (over `this` and the lake tables it names), computed on the engine.
    pub async fn collect(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        let mut query = with_lake_tables(sql, &self.tables, self.engine.delta, what).await?;
        query.views.push(self.this.clone());
        let mut rows = sql_stream(&self.engine, &query, what).await?.batches;
        let mut batches = Vec::new();
        while let Some(batch) = rows.next().await {
            batches.push(batch?);
        }
        Ok(batches)
    }
}

/// Replaces each two-part table name in `sql` for which `replace` (given `zone.table` as written) has a name.
fn rename_tables(sql: &str, mut replace: impl FnMut(&str) -> Option<ObjectName>) -> Result<String> {
    let dialect = GenericDialect {};
    let mut statements = Parser::parse_sql(&dialect, sql).map_err(|e| Error::sql("remote sql", e.to_string()))?;
    for statement in &mut statements {
        let _ = visit_relations_mut(statement, |name: &mut ObjectName| {
            let written: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.clone()).collect();
            if let Some(replaced) = (written.len() == 2).then(|| replace(&written.join("."))).flatten() {
                *name = replaced;
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    Ok(statements.iter().map(ToString::to_string).collect::<Vec<_>>().join(";\n"))
}

/// A view named `name` of a Delta version's rows from its Parquet files: one read per partition (its files, the
/// table's data columns as the engine's schema) with the partition's values as typed literals, all unioned; the
/// columns in the table's order and types.
fn files_view(name: &str, files: &DeltaFiles, what: &str) -> Result<proto::Relation> {
    let typed = |f: &arrow::datatypes::Field| {
        spark_type(f.data_type()).ok_or_else(|| {
            Error::config(
                Default::default(),
                format!(
                    "{what}: column `{}` is of type {}, which weir does not hand to Spark as files",
                    f.name(),
                    f.data_type()
                ),
            )
        })
    };
    let mut ddl = Vec::new();
    for f in files.schema.fields().iter().filter(|f| !files.partition_columns.contains(f.name())) {
        ddl.push(format!("{} {}", q(f.name()), typed(f)?));
    }
    let ddl = ddl.join(", ");
    let select = |values: Option<&[Option<String>]>| -> Result<String> {
        let mut columns = Vec::new();
        for f in files.schema.fields() {
            columns.push(match files.partition_columns.iter().position(|c| c == f.name()) {
                Some(i) => {
                    let value = match values.and_then(|v| v[i].as_deref()) {
                        Some(v) => format!("'{}'", sql_text(v)),
                        None => "NULL".into(),
                    };
                    format!("CAST({value} AS {}) AS {}", typed(f)?, q(f.name()))
                }
                None if values.is_none() => format!("CAST(NULL AS {}) AS {}", typed(f)?, q(f.name())),
                None => q(f.name()),
            });
        }
        Ok(columns.join(", "))
    };
    let mut partitions: BTreeMap<&[Option<String>], Vec<String>> = BTreeMap::new();
    for (url, values) in &files.files {
        partitions.entry(values.as_slice()).or_default().push(weir_lake::delta::hadoop_path(url));
    }
    let (mut selects, mut reads) = (Vec::new(), Vec::new());
    for (k, (values, paths)) in partitions.into_iter().enumerate() {
        let part = format!("{name}_files_{k}");
        selects.push(format!("SELECT {} FROM {part}", select(Some(values))?));
        let source = proto::DataSource { format: Some("parquet".into()), schema: Some(ddl.clone()), paths };
        let read = proto::Relation {
            read: Some(proto::Read { data_source: Some(source) }),
            common: plan_id(),
            ..Default::default()
        };
        reads.push(alias(read, part));
    }
    if selects.is_empty() {
        // A table without files: no rows, with the table's columns.
        selects.push(format!("SELECT {} WHERE 1 = 0", select(None)?));
    }
    Ok(alias(sql_relation(&selects.join(" UNION ALL "), reads), name.to_string()))
}

/// Runs `query` (its lake tables rewritten with [`with_lake_tables`]) on the engine and streams its rows; `what`
/// names the task in errors.
pub async fn sql_stream(engine: &SparkEngine, query: &SparkQuery, what: &str) -> Result<SourceStream> {
    let session = uuid::Uuid::new_v4().to_string();
    let started = std::time::Instant::now();
    let mut guard = InterruptedIfDropped::new(engine, &session, what);
    let (remote, answers) = match execute(engine, &session, query, what).await {
        Ok(sent) => sent,
        Err(e) => {
            guard.done = true; // refused, or never sent
            return Err(e);
        }
    };
    decoded(remote, answers, guard, started, what).await
}

/// The columns `query` returns, without running it: the engine plans it under `LIMIT 0` and answers with an empty
/// batch; its rows are read when the stream is first polled (not at all if it is dropped first).
pub async fn lazy_sql_stream(engine: &SparkEngine, query: &SparkQuery, what: &str) -> Result<SourceStream> {
    let probe = query.with_sql(format!("SELECT * FROM ({}) AS weir_columns LIMIT 0", query.sql));
    let mut probe = sql_stream(engine, &probe, what).await?;
    // Read to its end (no rows), so that the engine's operation ends rather than being interrupted.
    while let Some(batch) = probe.batches.next().await {
        batch?;
    }
    let (engine, query, named) = (engine.clone(), query.clone(), what.to_string());
    let batches = futures::stream::once(async move {
        match sql_stream(&engine, &query, &named).await {
            Ok(rows) => rows.batches,
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    })
    .flatten()
    .boxed();
    Ok(SourceStream::new(probe.schema, batches))
}

/// Runs `query` in `session` of the engine (a `SET` applies to the later statements of the session) and returns
/// its answer.
async fn run_in(engine: &SparkEngine, session: &str, query: &SparkQuery, what: &str) -> Result<Vec<RecordBatch>> {
    // Interrupts the statement if this future is dropped before it ends (a task's timeout).
    let mut guard = InterruptedIfDropped::new(engine, session, what);
    let answer = async {
        let (remote, mut answers) = execute(engine, session, query, what).await?;
        let mut batches = Vec::new();
        while let Some(answer) = answers
            .message()
            .await
            .map_err(|status| Error::sql(what, format!("{remote}: {}", explained(status.message()))))?
        {
            if let Some(batch) = answer.arrow_batch {
                let (_, decoded) =
                    decode(&batch.data).map_err(|e| Error::external(format!("{what} on {remote}"), e))?;
                batches.extend(decoded);
            }
            if answer.result_complete.is_some() {
                break;
            }
        }
        Ok(batches)
    }
    .await;
    guard.done = true;
    answer
}

/// Has the engine write `query`'s rows as Parquet files into `folder` (a URL new for this write, under the target
/// table) with `INSERT OVERWRITE DIRECTORY`, each column of `schema` cast to its type (a column the query does not
/// return, by `returned`, written as nulls) and timestamps as microseconds (Apache Spark writes INT96 unless told).
/// Returns false, having sent nothing, when a column's type has no Spark SQL name here: the rows then come back.
pub async fn write_parquet(
    engine: &SparkEngine,
    query: &SparkQuery,
    what: &str,
    returned: &arrow::datatypes::Schema,
    schema: &arrow::datatypes::Schema,
    folder: &str,
) -> Result<bool> {
    let mut columns = Vec::new();
    for field in schema.fields() {
        let Some(ty) = spark_type(field.data_type()) else { return Ok(false) };
        let name = q(field.name());
        let value = if returned.index_of(field.name()).is_ok() { name.clone() } else { "NULL".to_string() };
        columns.push(format!("CAST({value} AS {ty}) AS {name}"));
    }
    let insert = query.with_sql(format!(
        "INSERT OVERWRITE DIRECTORY '{}' USING parquet SELECT {} FROM ({}) AS weir_output",
        sql_text(folder),
        columns.join(", "),
        query.sql
    ));
    let session = uuid::Uuid::new_v4().to_string();
    // Sail writes microseconds already and refuses Spark's unquoted `SET` value: a refused setting is no failure.
    let micros = "SET spark.sql.parquet.outputTimestampType=TIMESTAMP_MICROS";
    if let Err(e) = run_in(engine, &session, &SparkQuery::new(micros), what).await {
        tracing::debug!("{what}: the engine did not take `{micros}`: {e}");
    }
    run_in(engine, &session, &insert, what).await?;
    Ok(true)
}

/// The Spark SQL name of a type weir's Delta tables hold, or None. A dictionary is its values' type (partition
/// columns come dictionary-encoded from weir's reader of a table).
fn spark_type(t: &arrow::datatypes::DataType) -> Option<String> {
    use arrow::datatypes::{DataType, TimeUnit};
    Some(match t {
        DataType::Dictionary(_, values) => return spark_type(values),
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

/// A connection to the engine: its address without secrets (for messages), the gRPC client, and what each request
/// carries (the token, the user).
struct Connection {
    remote: Remote,
    grpc: tonic::client::Grpc<Channel>,
}

impl Connection {
    async fn open(engine: &SparkEngine, what: &str) -> Result<Connection> {
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
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| failed("connect", &e))?;
        Ok(Connection { remote, grpc })
    }

    fn user(&self) -> Option<proto::UserContext> {
        Some(proto::UserContext { user_id: self.remote.user_id.clone(), user_name: self.remote.user_id.clone() })
    }

    /// `message` with the engine's token, if any.
    fn request<T>(&self, message: T, what: &str) -> Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.remote.token {
            let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| {
                Error::config(Default::default(), format!("{what}: the engine's token is not valid text"))
            })?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// Sends `query` in `session` and returns the engine's address (for messages) and its stream of answers.
async fn execute(
    engine: &SparkEngine,
    session: &str,
    query: &SparkQuery,
    what: &str,
) -> Result<(String, tonic::Streaming<proto::ExecutePlanResponse>)> {
    let mut connection = Connection::open(engine, what).await?;
    let message = proto::ExecutePlanRequest {
        session_id: session.to_string(),
        user_context: connection.user(),
        plan: Some(proto::Plan { root: Some(query.relation()) }),
        client_type: Some(format!("weir/{}", env!("CARGO_PKG_VERSION"))),
        operation_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    let remote = connection.remote.display();
    tracing::debug!(engine = %remote, sql = query.sql, views = query.views.len(), "{what}: sending SQL");
    let request = connection.request(message, what)?;
    let codec = tonic_prost::ProstCodec::<proto::ExecutePlanRequest, proto::ExecutePlanResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(EXECUTE_PLAN);
    let answers = connection
        .grpc
        .server_streaming(request, path, codec)
        .await
        .map_err(|status| Error::sql(what, format!("{remote} refused the query: {}", explained(status.message()))))?
        .into_inner();
    Ok((remote, answers))
}

/// Asks the engine to interrupt every operation of `session`; returns the ids of those it interrupted.
async fn interrupt(engine: &SparkEngine, session: &str, what: &str) -> Result<Vec<String>> {
    let mut connection = Connection::open(engine, what).await?;
    let message = proto::InterruptRequest {
        session_id: session.to_string(),
        user_context: connection.user(),
        client_type: Some(format!("weir/{}", env!("CARGO_PKG_VERSION"))),
        interrupt_type: 1,
    };
    let request = connection.request(message, what)?;
    let codec = tonic_prost::ProstCodec::<proto::InterruptRequest, proto::InterruptResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(INTERRUPT);
    let remote = connection.remote.display();
    let answer = connection
        .grpc
        .unary(request, path, codec)
        .await
        .map_err(|status| Error::external(format!("{what} on {remote}"), status.message().to_string()))?;
    Ok(answer.into_inner().interrupted_ids)
}

/// A session's operations on the engine, interrupted there if what waits for them is dropped before they end (the
/// task timed out, or failed for another reason): a query nobody reads would keep the engine busy until it ends.
struct InterruptedIfDropped {
    engine: SparkEngine,
    session: String,
    what: String,
    /// The operations ended (their last answer, or their failure, arrived): nothing to interrupt.
    done: bool,
}

impl InterruptedIfDropped {
    fn new(engine: &SparkEngine, session: &str, what: &str) -> InterruptedIfDropped {
        InterruptedIfDropped {
            engine: engine.clone(),
            session: session.to_string(),
            what: what.to_string(),
            done: false,
        }
    }
}

impl Drop for InterruptedIfDropped {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (engine, session, what) = (self.engine.clone(), self.session.clone(), self.what.clone());
        let stop = async move {
            let outcome = match tokio::time::timeout(Duration::from_secs(10), interrupt(&engine, &session, &what)).await
            {
                Ok(Ok(ids)) if ids.is_empty() => "the engine had no operation of it running".to_string(),
                Ok(Ok(ids)) => format!("interrupted its operation {} on the engine", ids.join(", ")),
                Ok(Err(e)) => format!("its operations on the engine could not be interrupted: {e}"),
                Err(_) => "the engine did not answer within 10 s when asked to interrupt its operations".to_string(),
            };
            let shown = engine.url.split(';').next().unwrap_or_default().to_string();
            tracing::warn!(engine = %shown, "{what}: its answer was not read to the end: {outcome}");
        };
        // Sent before this returns (a process about to exit would drop a task spawned for it), except on a
        // single-threaded runtime, which cannot block: there it is sent in the background.
        match runtime.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => drop(runtime.spawn(stop)),
            _ => tokio::task::block_in_place(|| runtime.block_on(stop)),
        }
    }
}

/// The rows of an answer stream, its first Arrow batch giving the schema.
async fn decoded(
    address: String,
    answers: tonic::Streaming<proto::ExecutePlanResponse>,
    guard: InterruptedIfDropped,
    started: std::time::Instant,
    what: &str,
) -> Result<SourceStream> {
    let failed = |doing: &str, e: &dyn std::fmt::Display| {
        Error::external(format!("{what} on {address}"), format!("{doing}: {e}"))
    };
    // One stream of decoded answers; the first Arrow batch brings the schema.
    let named = what.to_string();
    let shown = address.clone();
    // The guard goes with the answers: dropped before their end, it interrupts the query on the engine.
    let mut decoded = futures::stream::unfold(Some((answers, guard)), move |state| {
        let (display, what) = (shown.clone(), named.clone());
        async move {
            let (mut answers, mut guard) = state?;
            loop {
                match answers.message().await {
                    Ok(Some(answer)) => {
                        let done = answer.result_complete.is_some();
                        guard.done = done;
                        if let Some(batch) = answer.arrow_batch {
                            let decoded =
                                decode(&batch.data).map_err(|e| Error::external(format!("{what} on {display}"), e));
                            return Some((decoded, (!done).then_some((answers, guard))));
                        }
                        if done {
                            return None;
                        }
                    }
                    Ok(None) => {
                        guard.done = true;
                        return None;
                    }
                    Err(status) => {
                        guard.done = true;
                        return Some((
                            Err(Error::sql(&what, format!("{display}: {}", explained(status.message())))),
                            None,
                        ));
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

/// The engine's error message, with what to do about it when weir knows: an engine without a Delta Lake reader
/// does not know the `delta` data source the lake's tables are named with.
fn explained(message: &str) -> String {
    if message.contains("TABLE_OR_VIEW_NOT_FOUND") && message.contains("`delta`.`") {
        let hint = "the engine cannot read Delta tables: start it with Delta Lake, or set `delta: files` under \
                    `engine: {spark: ...}` in weir.yaml to have weir hand it each table's Parquet files";
        return format!("{hint}. The engine said: {message}");
    }
    message.to_string()
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
    fn lake_tables_are_renamed_and_other_names_stay() {
        let sql = "WITH fx(currency, rate) AS (VALUES ('USD', 1.0)) SELECT o.country FROM silver.orders o \
                   LEFT JOIN fx ON o.currency = fx.currency WHERE o.date = '2026-03-25'";
        let out = rename_tables(sql, |written| {
            (written == "silver.orders").then(|| {
                ObjectName(vec![
                    ObjectNamePart::Identifier(Ident::new("delta")),
                    ObjectNamePart::Identifier(Ident::with_quote('`', "s3://b/lake/silver/orders/")),
                ])
            })
        })
        .unwrap();
        assert!(out.contains("FROM delta.`s3://b/lake/silver/orders/` o LEFT JOIN"), "{out}");
        assert!(out.contains("LEFT JOIN fx ON"), "{out}");
        assert!(!out.contains("silver.orders"), "{out}");
    }

    #[test]
    fn a_delta_version_handed_over_as_files_reads_each_partition_with_its_typed_values() {
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Schema::new(vec![
            Field::new("amount", DataType::Float64, true),
            Field::new("date", DataType::Date32, true),
            Field::new("shop", DataType::Utf8, true),
        ]);
        let files = DeltaFiles {
            version: 3,
            schema: std::sync::Arc::new(schema),
            partition_columns: vec!["date".into(), "shop".into()],
            files: vec![
                (
                    "s3://b/t/date=2026-03-25/shop=O%27Hara/a.parquet".into(),
                    vec![Some("2026-03-25".into()), Some("O'Hara".into())],
                ),
                (
                    "s3://b/t/date=2026-03-25/shop=O%27Hara/b.parquet".into(),
                    vec![Some("2026-03-25".into()), Some("O'Hara".into())],
                ),
                ("s3://b/t/date=__HIVE_DEFAULT_PARTITION__/c.parquet".into(), vec![None, None]),
            ],
        };
        let view = files_view("weir_lake_0", &files, "test").unwrap();
        let alias = view.subquery_alias.unwrap();
        assert_eq!(alias.alias, "weir_lake_0");
        let with = alias.input.unwrap().with_relations.unwrap();
        let sql = with.root.unwrap().sql.unwrap().query;
        assert_eq!(
            sql,
            "SELECT `amount`, CAST(NULL AS DATE) AS `date`, CAST(NULL AS STRING) AS `shop` FROM weir_lake_0_files_0 \
             UNION ALL SELECT `amount`, CAST('2026-03-25' AS DATE) AS `date`, CAST('O\\'Hara' AS STRING) AS `shop` \
             FROM weir_lake_0_files_1"
        );
        let reads: Vec<(String, Vec<String>, Option<String>)> = with
            .references
            .into_iter()
            .map(|r| {
                let a = r.subquery_alias.unwrap();
                let source = a.input.unwrap().read.unwrap().data_source.unwrap();
                (a.alias, source.paths, source.schema)
            })
            .collect();
        assert_eq!(reads[1].0, "weir_lake_0_files_1");
        assert_eq!(
            reads[1].1,
            vec!["s3://b/t/date=2026-03-25/shop=O'Hara/a.parquet", "s3://b/t/date=2026-03-25/shop=O'Hara/b.parquet"]
        );
        assert_eq!(reads[0].2.as_deref(), Some("`amount` DOUBLE"));

        let empty = DeltaFiles { files: Vec::new(), ..files };
        let view = files_view("weir_lake_1", &empty, "test").unwrap();
        let root = view.subquery_alias.unwrap().input.unwrap();
        assert_eq!(
            root.sql.unwrap().query,
            "SELECT CAST(NULL AS DOUBLE) AS `amount`, CAST(NULL AS DATE) AS `date`, CAST(NULL AS STRING) AS `shop` WHERE 1 = 0"
        );
    }
}
