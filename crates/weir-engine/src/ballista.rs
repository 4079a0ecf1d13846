//! Ballista: SQL models and `sql:` tasks computed by a Ballista cluster (a scheduler and its executors), for a lake
//! too big for one machine. Ballista is DataFusion distributed, so a model's SQL means there what it means here.
//!
//! Ballista's executors cannot open a Delta table (deltalake's table provider has no codec to travel in a plan), so
//! weir reads each named table's log here and hands the engine the files of its current version: one Parquet
//! listing per partition, its partition values as typed literals, the columns cast to the types weir's own engine
//! reads, so the engine sees exactly the table this process would. The rows come back as Arrow batches into the
//! task's checks and weir's Delta commit, as for a local run.
//!
//! The lake's `lake.storage` options for S3 (endpoint, region, keys, `allow_http`) travel with each query as the
//! session settings Ballista's scheduler and executors read (`s3.*`); without them the executors use their own
//! environment (`AWS_*`). Their object stores are S3 and local folders: a lake on Azure or GCS is refused.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::execution_plans::DistributedQueryExec;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{cast, col, lit, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::{execute_stream, ExecutionPlan, SendableRecordBatchStream};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion_proto::protobuf::LogicalPlanNode;
use futures::StreamExt;
use weir_config::engine::EngineKind;
use weir_connect::SourceStream;
use weir_core::{Error, Result};
use weir_lake::delta::DeltaFiles;
use weir_lake::{Lake, TableFormat};

use crate::session::sql_error;

/// Runs `sql` on the Ballista scheduler at `url` (`df://host:port`) over the lake tables it names and streams the
/// rows back; `what` names the task in errors.
pub async fn sql_stream(url: &str, lake: &Lake, sql: &str, what: &str) -> Result<SourceStream> {
    let (ctx, df) = remote_query(url, lake, sql, what).await?;
    let optimized = ctx.state().optimize(df.logical_plan()).map_err(|e| sql_error(what, e))?;
    tracing::debug!(engine = %url, plan = %optimized.display_indent(), "{what}: plan sent to Ballista");
    if let LogicalPlan::EmptyRelation(empty) = &optimized {
        if !empty.produce_one_row {
            // A plan proved empty (a filter no partition passes) is answered by Ballista with no columns at all;
            // the answer, no rows, is given here with the query's columns.
            let schema = Arc::new(empty.schema.as_arrow().clone());
            return Ok(SourceStream::new(schema, futures::stream::empty().boxed()));
        }
    }
    submit(df, url, what).await
}

/// Runs `sql` on the Ballista scheduler at `url` and has its executors write the rows as Parquet files into the
/// folder `folder` (a URL new for this write, under the target table), each column cast to `schema`'s type (a
/// column the query does not return is written as nulls), compressed with `compression` (`zstd(3)`, `snappy`,
/// `uncompressed`). Returns the rows the executors reported written. The files are not part of any table yet.
pub async fn write_parquet(
    url: &str,
    lake: &Lake,
    sql: &str,
    what: &str,
    schema: &arrow::datatypes::Schema,
    folder: &str,
    compression: &str,
) -> Result<u64> {
    use datafusion::datasource::file_format::format_as_file_type;
    use datafusion::datasource::file_format::parquet::ParquetFormatFactory;
    let (_, df) = remote_query(url, lake, sql, what).await?;
    let returned = df.schema().clone();
    let columns: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            let value = match returned.index_of_column_by_name(None, f.name()) {
                Some(_) => col(datafusion::common::Column::from_name(f.name())),
                None => lit(ScalarValue::Null),
            };
            cast(value, f.data_type().clone()).alias(f.name())
        })
        .collect();
    let df = df.select(columns).map_err(|e| sql_error(what, e))?;
    let (mut state, plan) = df.into_parts();
    let copy = LogicalPlanBuilder::copy_to(
        plan,
        folder.to_string(),
        format_as_file_type(Arc::new(ParquetFormatFactory::new())),
        Default::default(),
        Vec::new(),
    )
    .and_then(|b| b.build())
    .map_err(|e| sql_error(what, e))?;
    // The executors' Parquet writer takes its settings from the session's, which travel with the query.
    state.config_mut().options_mut().execution.parquet.compression = Some(compression.to_string());
    let df = datafusion::dataframe::DataFrame::new(state, copy);
    let mut stream = submit(df, url, what).await?;
    let mut rows = 0;
    while let Some(batch) = stream.batches.next().await {
        let batch = batch?;
        let counts = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::UInt64Array>()
            .ok_or_else(|| Error::engine(format!("{what} on {url}"), "the write answered without a row count"))?;
        rows += counts.iter().flatten().sum::<u64>();
    }
    Ok(rows)
}

/// The output a cluster's executors wrote for a task (its staged files, not committed yet), as the table `this` of a
/// session on the same cluster: the task's checks run there as SQL, beside the lake tables they name.
pub struct StagedOnCluster {
    ctx: SessionContext,
    url: String,
    lake: Lake,
}

impl StagedOnCluster {
    /// `files` (URLs, or paths of a local lake) hold the output with `schema`.
    pub async fn open(url: &str, lake: &Lake, files: &[String], schema: &arrow::datatypes::Schema) -> Result<Self> {
        let ctx = remote_context(url, lake).await.map_err(|e| {
            Error::external(format!("checks on {url}"), format!("connect to the scheduler: {}", e.strip_backtrace()))
        })?;
        let staged = || -> datafusion::error::Result<()> {
            let urls = files.iter().map(ListingTableUrl::parse).collect::<datafusion::error::Result<Vec<_>>>()?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(Arc::new(schema.clone()));
            if files.is_empty() {
                // No files (no rows): an empty table with the output's columns.
                let empty = datafusion::datasource::empty::EmptyTable::new(Arc::new(schema.clone()));
                ctx.register_table("this", Arc::new(empty))?;
            } else {
                ctx.register_table("this", Arc::new(ListingTable::try_new(config)?))?;
            }
            Ok(())
        };
        staged().map_err(|e| Error::engine(format!("checks on {url}: the staged output"), e.strip_backtrace()))?;
        Ok(StagedOnCluster { ctx, url: url.to_string(), lake: lake.clone() })
    }

    /// The rows of `sql` (over `this` and the lake tables it names), computed on the cluster.
    pub async fn collect(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        register_named_tables(&self.ctx, &self.lake, sql, what).await?;
        let df = self.ctx.sql(sql).await.map_err(|e| sql_error(what, e))?;
        let mut stream = submit(df, &self.url, what).await?;
        let mut batches = Vec::new();
        while let Some(b) = stream.batches.next().await {
            batches.push(b?);
        }
        Ok(batches)
    }
}

/// A session connected to the scheduler at `url`, with the lake tables `sql` names registered, and `sql` planned in
/// it (not run yet).
async fn remote_query(
    url: &str,
    lake: &Lake,
    sql: &str,
    what: &str,
) -> Result<(SessionContext, datafusion::dataframe::DataFrame)> {
    if let Some(why) = EngineKind::Ballista.cannot_read_lake(lake.url().as_str()) {
        return Err(Error::config(
            Default::default(),
            format!("{what}: Ballista cannot read the lake `{}`: {why}", lake.url()),
        ));
    }
    let ctx = remote_context(url, lake).await.map_err(|e| {
        Error::external(format!("{what} on {url}"), format!("connect to the scheduler: {}", e.strip_backtrace()))
    })?;
    register_named_tables(&ctx, lake, sql, what).await?;
    let df = ctx.sql(sql).await.map_err(|e| sql_error(what, e))?;
    Ok((ctx, df))
}

/// Sends `df`'s plan to the cluster as a job and streams its answer back; the job is cancelled if the answer is
/// dropped before its end ([`JobRows`]).
async fn submit(df: datafusion::dataframe::DataFrame, url: &str, what: &str) -> Result<SourceStream> {
    let started = std::time::Instant::now();
    let shown = url.to_string();
    let task_ctx = df.task_ctx();
    let plan = df.create_physical_plan().await.map_err(|e| refused(what, &shown, e))?;
    let answer = execute_stream(plan.clone(), Arc::new(task_ctx)).map_err(|e| refused(what, &shown, e))?;
    tracing::info!(
        engine = %shown,
        started_after_ms = started.elapsed().as_millis() as u64,
        "{what}: plan sent to the Ballista scheduler"
    );
    let schema = answer.schema();
    let (sender, rows) = tokio::sync::mpsc::channel(2);
    let (start, started) = tokio::sync::oneshot::channel();
    let job = JobOnCluster { what: what.to_string(), url: shown, plan };
    let reader = tokio::spawn(job.read_into(started, answer, sender));
    Ok(SourceStream::new(schema, JobRows { rows, start: Some(start), reader: Some(reader) }.boxed()))
}

/// The job a query became on the cluster.
struct JobOnCluster {
    what: String,
    url: String,
    /// The plan whose execution submits the job; it knows the job's id once the scheduler accepted it.
    plan: Arc<dyn ExecutionPlan>,
}

impl JobOnCluster {
    /// Reads the job's `answer` into `rows` until it ends, or until nobody reads `rows` any more (the task timed
    /// out, failed, or weir was interrupted): then the job is cancelled on the cluster, where nobody would read it
    /// but the executors would keep working. The answer is read here, not by whoever reads `rows`, so that giving
    /// up never drops the query half-way to the scheduler, unknown to weir and running there all the same: its id
    /// is awaited first. Nothing is sent to the cluster before the rows are first asked for (`started`): rows
    /// dropped unread, their schema all that was wanted, submit no job.
    async fn read_into(
        self,
        started: tokio::sync::oneshot::Receiver<()>,
        mut answer: SendableRecordBatchStream,
        rows: RowSender,
    ) {
        if started.await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = rows.closed() => break,
                next = answer.next() => match next {
                    None => return,
                    Some(batch) => {
                        let failed = batch.is_err();
                        if rows.send(batch.map_err(|e| refused(&self.what, &self.url, e))).await.is_err() {
                            break;
                        }
                        if failed {
                            return;
                        }
                    }
                },
            }
        }
        let waited = tokio::time::Instant::now() + Duration::from_secs(10);
        let job = loop {
            if let Some(job) =
                self.plan.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>().and_then(|p| p.job_id())
            {
                break job.to_string();
            }
            tokio::select! {
                next = answer.next() => {
                    if matches!(next, None | Some(Err(_))) {
                        return; // the query ended or was refused: there is nothing to cancel
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = tokio::time::sleep_until(waited) => {
                    tracing::warn!(
                        engine = %self.url,
                        "{}: its rows were not read to the end, and the scheduler gave no job id within 10 s to cancel",
                        self.what
                    );
                    return;
                }
            }
        };
        drop(answer);
        let outcome = match tokio::time::timeout(Duration::from_secs(10), cancel_job(&self.url, &job)).await {
            Ok(Ok(())) => format!("cancelled its job {job} on the cluster"),
            Ok(Err(e)) => format!("its job {job} on the cluster could not be cancelled: {e}"),
            Err(_) => format!("the scheduler did not answer within 10 s when asked to cancel its job {job}"),
        };
        tracing::warn!(engine = %self.url, "{}: its rows were not read to the end: {outcome}", self.what);
    }
}

type RowSender = tokio::sync::mpsc::Sender<Result<RecordBatch>>;

/// Asks the scheduler at `url` (`df://host:port`) to cancel `job`.
async fn cancel_job(url: &str, job: &str) -> std::result::Result<(), String> {
    use ballista_core::serde::protobuf::{scheduler_grpc_client::SchedulerGrpcClient, CancelJobParams};
    let address = url.replacen("df://", "http://", 1);
    let endpoint = ballista_core::utils::create_grpc_client_endpoint(address, None).map_err(|e| e.to_string())?;
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let answer = SchedulerGrpcClient::new(channel)
        .cancel_job(CancelJobParams { job_id: job.to_string() })
        .await
        .map_err(|e| e.message().to_string())?;
    if answer.into_inner().cancelled {
        Ok(())
    } else {
        Err("the scheduler did not cancel it (it had ended)".into())
    }
}

/// The rows of a query on the cluster, as [`JobOnCluster::read_into`] reads them. Dropping them before their end
/// has the job cancelled, and waits for that (at most 25 s) before returning: a process about to exit would drop the
/// cancellation otherwise.
struct JobRows {
    rows: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
    /// Tells the reader that the rows are wanted (sent on the first poll).
    start: Option<tokio::sync::oneshot::Sender<()>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl futures::Stream for JobRows {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(start) = self.start.take() {
            let _ = start.send(());
        }
        self.rows.poll_recv(cx)
    }
}

impl Drop for JobRows {
    fn drop(&mut self) {
        self.start.take(); // never polled: the reader returns without submitting the query
        self.rows.close();
        let Some(reader) = self.reader.take() else { return };
        if reader.is_finished() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        // A single-threaded runtime cannot block here: there the reader finishes in the background.
        if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
            tokio::task::block_in_place(|| {
                let _ = runtime.block_on(tokio::time::timeout(Duration::from_secs(25), reader));
            });
        }
    }
}

/// A failure on the cluster (a job that failed, an executor lost beyond Ballista's retries, a scheduler gone).
fn refused(what: &str, url: &str, e: datafusion::error::DataFusionError) -> Error {
    Error::external(format!("{what} on {url}"), e.strip_backtrace())
}

/// A session whose queries the Ballista scheduler plans and runs, carrying the lake's S3 options.
async fn remote_context(url: &str, lake: &Lake) -> datafusion::error::Result<SessionContext> {
    let mut config = SessionConfig::new_with_ballista()
        .with_option_extension(ballista_core::object_store::S3Options::default())
        .with_information_schema(false);
    // The client asks the scheduler for the job's state (every 50 ms) instead of waiting for it to be pushed: the
    // job's id is known as soon as it is accepted, so that a task that gives up can cancel it, and an update the
    // scheduler drops (its push channel holds 16) cannot leave the client waiting for an end it was never told.
    config.options_mut().set("ballista.client.pull", "true")?;
    for (key, value) in lake.options() {
        let setting = match key.strip_prefix("aws_").unwrap_or(key) {
            "endpoint" | "endpoint_url" => "endpoint",
            "region" => "region",
            "access_key_id" => "access_key_id",
            "secret_access_key" => "secret_access_key",
            "session_token" | "token" => "session_token",
            "allow_http" => "allow_http",
            _ => continue,
        };
        config.options_mut().set(&format!("s3.{setting}"), value)?;
    }
    let state = SessionStateBuilder::new().with_config(config).with_default_features().build();
    SessionContext::remote_with_state(url, state).await
}

/// Registers each lake table `sql` names (`silver.orders`) as the files of its current Delta version.
async fn register_named_tables(ctx: &SessionContext, lake: &Lake, sql: &str, what: &str) -> Result<()> {
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect.clone();
    let statement = state.sql_to_statement(sql, &dialect).map_err(|e| sql_error(what, e))?;
    let named = state.resolve_table_references(&statement).map_err(|e| sql_error(what, e))?;
    let tables = weir_lake::list_tables(lake).await?;
    for reference in named {
        let TableReference::Partial { schema, table } = &reference else { continue };
        if ctx.table_exist(reference.clone()).unwrap_or(false) {
            continue; // registered for an earlier query of this session
        }
        let Some(t) =
            tables.iter().find(|t| t.name.zone.eq_ignore_ascii_case(schema) && t.name.name.eq_ignore_ascii_case(table))
        else {
            continue;
        };
        if t.format != TableFormat::Delta {
            return Err(Error::config(
                Default::default(),
                format!("{what}: {} is a Parquet table; a remote engine reads Delta tables (format: delta)", t.name),
            ));
        }
        let files = weir_lake::delta::current_files(&t.location).await?;
        tracing::debug!(table = %t.name, version = files.version, files = files.files.len(), "{what}: table sent as its files");
        let plan = table_plan(&files).map_err(|e| Error::engine(format!("{what}: {}", t.name), e.strip_backtrace()))?;
        if let Some(catalog) = ctx.catalog("datafusion").filter(|c| c.schema(schema).is_none()) {
            catalog
                .register_schema(schema, Arc::new(datafusion::catalog::MemorySchemaProvider::new()))
                .map_err(|e| Error::engine(format!("{what}: register zone {schema}"), e))?;
        }
        ctx.register_table(reference.clone(), Arc::new(datafusion::catalog::view::ViewTable::new(plan, None)))
            .map_err(|e| Error::engine(format!("{what}: register {}", t.name), e))?;
    }
    Ok(())
}

/// The rows of a Delta table's version as a plan of Parquet listings: one per partition, whose values are typed
/// literals, columns cast to the types weir's engine reads the table with.
fn table_plan(files: &DeltaFiles) -> datafusion::error::Result<LogicalPlan> {
    let data_schema = Arc::new(arrow::datatypes::Schema::new(
        files
            .schema
            .fields()
            .iter()
            .filter(|f| !files.partition_columns.contains(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let mut partitions: BTreeMap<&[Option<String>], Vec<&str>> = BTreeMap::new();
    for (url, values) in &files.files {
        partitions.entry(values.as_slice()).or_default().push(url);
    }
    let columns = |values: Option<&[Option<String>]>| -> Vec<Expr> {
        files
            .schema
            .fields()
            .iter()
            .map(|f| {
                let value = match files.partition_columns.iter().position(|c| c == f.name()) {
                    Some(i) => lit(ScalarValue::Utf8(values.and_then(|v| v[i].clone()))),
                    None if values.is_none() => lit(ScalarValue::Null),
                    None => col(datafusion::common::Column::from_name(f.name())),
                };
                cast(value, f.data_type().clone()).alias(f.name())
            })
            .collect()
    };
    let mut union: Option<LogicalPlanBuilder> = None;
    for (values, urls) in partitions {
        let urls = urls.into_iter().map(ListingTableUrl::parse).collect::<datafusion::error::Result<Vec<_>>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(data_schema.clone());
        let listing = provider_as_source(Arc::new(ListingTable::try_new(config)?));
        let scan = LogicalPlanBuilder::scan("delta_files", listing, None)?.project(columns(Some(values)))?.build()?;
        union = Some(match union {
            None => LogicalPlanBuilder::from(scan),
            Some(u) => u.union(scan)?,
        });
    }
    match union {
        Some(u) => u.build(),
        // A table without files: no rows, with the table's columns.
        None => LogicalPlanBuilder::empty(false).project(columns(None))?.build(),
    }
}
