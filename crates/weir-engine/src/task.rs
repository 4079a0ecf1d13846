//! Runs one task of a pipeline: opens its input (a file source, a lake table or a SQL model), pushes every batch
//! through its compiled steps and into its sink, and commits the sink only when everything succeeded.
//!
//! Three things run at once on a machine with two cores: files decode on blocking threads (next files ahead), the
//! steps run on the task, and Parquet encoding runs on its own blocking thread behind a small channel. Memory is a
//! few batches per stage, whatever the input size.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use weir_config::engine::RemoteEngine;
use weir_config::steps::{FillStrategy, Keep, Step, StepKind};
use weir_config::{Project, Task};
use weir_connect::{BatchSink, ConnectorRun, SourceCheckpoint, SourceRun, SourceStream};
use weir_core::cursor::CursorWindow;
use weir_core::position::is_hidden;
use weir_core::{Error, Result, RunContext};
use weir_lake::delta::{DeltaTableWriter, DeltaWriteOptions};
use weir_lake::{LakeSinkConfig, ParquetTableWriter, TableFormat, TableName, WriteMode, WriterOptions};

use crate::ops::{
    compile, quote_ident, visible_columns, ColumnStats, CompiledStep, CountedStream, StepReport, StepSite,
};
use crate::plan::{InputPlan, SinkPlan, TaskPlan};
use crate::quality::checks::Dialect;
use crate::quality::contract::{self, columns_of, SchemaHistory};
use crate::quality::results as quality_results;
use crate::quality::{CheckResult, CheckSet, CheckSql, CheckStatus, RejectAction, RejectTarget, Rejects};
use crate::spark_connect::SparkQuery;
use crate::Engine;

/// Progress of a running task, reported after each batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub rows_read: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub total_bytes: Option<u64>,
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

#[derive(Debug, Clone, Default)]
pub struct TaskReport {
    pub task: String,
    pub table: String,
    pub rows_read: u64,
    pub rows_written: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Data files the write added.
    pub files: usize,
    pub partitions: Vec<String>,
    pub steps: Vec<StepReport>,
    pub elapsed: Duration,
    pub checks: Vec<CheckResult>,
    /// Rejected rows (or values) per rule and what happened to them.
    pub rejected: BTreeMap<(String, RejectAction), u64>,
    /// The quarantine table's folder, when rejects were committed.
    pub rejects_table: Option<String>,
    /// Schema drift against the table's recorded schema.
    pub schema_changes: Vec<String>,
    /// The new schema version recorded by this run.
    pub schema_version: Option<u32>,
    /// The Delta table version this run committed.
    pub delta_version: Option<u64>,
    /// `merge`: rows inserted, updated and deleted.
    pub merged: Option<(usize, usize, usize)>,
    /// Nothing was written: this date's append was already committed (Delta application transaction).
    pub skipped: bool,
    /// What a `shell` task printed (the tail).
    pub output: Option<String>,
}

/// Where a task's output goes while it runs.
enum Target {
    Parquet(ParquetTableWriter),
    Delta(Box<DeltaTableWriter>),
}

/// The columns of the staged Delta files: the output without its partition columns (stored in folder names).
fn visible_schema_of(schema: &SchemaRef, partition_columns: &[String]) -> SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema.fields().iter().filter(|f| !partition_columns.contains(f.name())).cloned().collect::<Vec<_>>(),
    ))
}

/// Fails the task when a check with severity `error` failed, naming each with what it saw.
fn fail_on_checks(file: &std::path::Path, task: &str, results: &[CheckResult]) -> Result<()> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.status == CheckStatus::Failed)
        .map(|r| {
            let example = r.sample.first().map(|s| format!("; e.g. {s}")).unwrap_or_default();
            format!("check `{}` (line {}) failed: {}{example}", r.name, r.line, r.observed)
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let line = results.iter().find(|r| r.status == CheckStatus::Failed).map(|r| r.line);
    Err(Error::data(
        weir_core::error::Location { file: Some(file.to_path_buf()), line, column: None },
        format!("task `{task}`: {}; nothing was committed, the target keeps its previous state", failed.join("; ")),
    ))
}

pub struct TaskRunner<'a> {
    pub project: &'a Project,
    pub pipeline_file: &'a std::path::Path,
    pub run: &'a RunContext,
    pub engine: &'a Engine,
    /// Ignore incremental cursors committed by earlier runs.
    pub full_refresh: bool,
}

type Shared = Arc<Mutex<CompiledStep>>;

struct Built {
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch>>,
    steps: Vec<Shared>,
    source: SourceStats,
    /// A resumable source's cursor and checkpoint.
    checkpoint: Option<SourceCheckpoint>,
}

#[derive(Clone)]
struct SourceStats {
    rows: Arc<std::sync::atomic::AtomicU64>,
    /// Records the source itself set aside (`on_error: quarantine`): read, but never in a batch.
    set_aside: Arc<std::sync::atomic::AtomicU64>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
    total_bytes: Option<u64>,
}

impl SourceStats {
    /// Every record the source read, so that read = written + removed by steps + rejected.
    fn rows_read(&self) -> u64 {
        self.rows.load(Ordering::Relaxed) + self.set_aside.load(Ordering::Relaxed)
    }
}

/// Whether something in `task` can reject a row (then source positions are carried, at a little cost per batch).
fn can_reject(task: &Task, discarding_contract: bool) -> bool {
    discarding_contract
        || task.steps.iter().any(|s| match &s.kind {
            StepKind::Cast(c) => c.on_error != weir_config::steps::OnError::Fail,
            StepKind::ParseDates(p) => p.on_error != weir_config::steps::OnError::Fail,
            _ => false,
        })
        || task.checks.iter().any(|c| c.on_fail == weir_config::OnFail::Quarantine)
}

/// Moves the records a source set aside into the quarantine as batches arrive, and the last ones when the source
/// ends (its decoders are done by then).
fn drain_source_rejects(
    batches: BoxStream<'static, Result<RecordBatch>>,
    set_aside: weir_connect::SourceRejects,
    rejects: Rejects,
    rule: String,
    counted: Arc<std::sync::atomic::AtomicU64>,
) -> BoxStream<'static, Result<RecordBatch>> {
    let (last_set, last_rejects, last_rule, last_counted) =
        (set_aside.clone(), rejects.clone(), rule.clone(), counted.clone());
    let record = |rejects: &Rejects, rule: &str, drained: Vec<weir_connect::SourceReject>, counted: &AtomicU64| {
        counted.fetch_add(drained.len() as u64, Ordering::Relaxed);
        rejects.record_source(rule, drained)
    };
    let tail = futures::stream::once(async move { record(&last_rejects, &last_rule, last_set.drain(), &last_counted) })
        .filter_map(|r| async move { r.err().map(Err) });
    batches
        .map(move |b| {
            record(&rejects, &rule, set_aside.drain(), &counted)?;
            b
        })
        .chain(tail)
        .boxed()
}

/// Whether a step must be planned on DataFusion over the whole input (it needs all rows of a key).
fn is_ordered_dedupe(step: &Step) -> bool {
    matches!(&step.kind, StepKind::Dedupe(d) if d.order_by.is_some())
}

impl<'a> TaskRunner<'a> {
    /// Runs `task` as `plan` (its plan from [`crate::plan::plan`]) says.
    pub async fn run(&self, task: &Task, plan: &TaskPlan, progress: ProgressFn) -> Result<TaskReport> {
        let started = Instant::now();
        if matches!(plan.input, InputPlan::NoRows) {
            return Err(Error::engine(
                format!("task `{}`", task.name),
                "a shell, http or sensor task runs through weir-orchestrate's executor, not the data task runner",
            ));
        }
        let sink = match &plan.sink {
            None => return self.run_checks_only(task, plan, started).await,
            Some(SinkPlan::Connector(sink)) => return self.run_to_database(task, plan, sink.as_ref(), started).await,
            Some(SinkPlan::Lake(sink)) => sink,
        };
        let table = TableName::parse(&sink.table).map_err(|e| Error::config(Default::default(), e))?;
        let lake = self.engine.lake();
        let location = lake.table(&table);
        let rejects_location = lake.location(&table.zone, &format!("{}__rejected", table.name));
        // On object storage the quarantine is staged locally and published as Delta after the commit.
        let rejects_staging = match &rejects_location.local {
            Some(_) => None,
            None => Some(tempfile::tempdir().map_err(|e| Error::io("create a staging folder for rejects", e))?),
        };
        let reject_target = RejectTarget {
            table_dir: match (&rejects_location.local, &rejects_staging) {
                (Some(dir), _) => dir.clone(),
                (None, Some(staging)) => staging.path().join("rejected"),
                (None, None) => unreachable!("a remote quarantine has a staging folder"),
            },
            partition: sink.partition.clone().unwrap_or_else(|| format!("date={}", self.run.ds())),
            append: sink.mode == WriteMode::Append,
        };
        let rejects = Rejects::new(&self.run.run_id, &task.name, Some(reject_target.clone()));
        let discarding =
            matches!(sink.contract, weir_lake::SchemaContract::DiscardRow | weir_lake::SchemaContract::DiscardValue);
        let built = self.build(task, plan, task.steps.len(), Some(&rejects), can_reject(task, discarding)).await?;
        let context = format!("{}: task `{}`", self.pipeline_file.display(), task.name);

        // The contract is checked before any data moves: a frozen table with a new column fails here.
        let partition_by = sink.partition_by.clone().unwrap_or_default();
        let static_partition = match &sink.partition {
            Some(p) => weir_lake::partition::parse_static(p).map_err(|e| Error::config(Default::default(), e))?,
            None => Vec::new(),
        };
        let file_columns: Vec<_> =
            columns_of(&built.schema).into_iter().filter(|c| !partition_by.contains(&c.name)).collect();
        let mut history = SchemaHistory::load(&location).await?;
        let (schema_diff, next_version) =
            contract::enforce(&sink.table, sink.contract, &history, &file_columns, &self.run.run_id).map_err(|e| {
                let at = weir_core::error::Location {
                    file: Some(self.pipeline_file.to_path_buf()),
                    line: Some(task.line),
                    column: None,
                };
                Error::data(at, format!("task `{}`: {e}", task.name))
            })?;
        // Batches are fitted to the contract's schema before checks and sink (types converted, missing columns null;
        // under `discard_row` / `discard_value` what does not fit is set aside).
        let target_version = next_version.as_ref().or(history.latest());
        let mut conform = contract::Conform::plan(
            sink.contract,
            target_version,
            &built.schema,
            &partition_by,
            Some(rejects.clone()),
        )?;
        let staged_schema = conform.as_ref().map(|c| c.schema()).unwrap_or_else(|| built.schema.clone());
        let mut schema_changes = schema_diff.lines();
        if discarding && !schema_changes.is_empty() {
            schema_changes.push(format!("the table keeps its schema (contract `{}`)", sink.contract.as_str()));
        }
        let mut checks =
            self.compile_checks(task, &staged_schema, &sink.table, Some(rejects.clone()), &context).await?;

        // The schema the table gets: hidden position columns are dropped here.
        let visible = visible_columns(&staged_schema);
        let out_schema = Arc::new(staged_schema.project(&visible).map_err(|e| Error::engine("output schema", e))?);

        let defaults = &self.project.defaults;
        let compression = sink.compression.unwrap_or(defaults.compression);
        let target = match sink.format {
            TableFormat::Parquet => {
                let options = WriterOptions {
                    mode: sink.mode,
                    compression,
                    row_group_rows: sink.row_group_rows.unwrap_or(defaults.row_group_rows),
                    max_file_rows: sink.max_file_rows.unwrap_or(usize::MAX),
                    max_file_bytes: sink.max_file_bytes.unwrap_or(1 << 30),
                    static_partition: sink.partition.clone(),
                    partition_by: partition_by.clone(),
                    wait_for_lock: None,
                };
                let dir = location.local_dir(&format!("Parquet table {table}"))?;
                // Another run writing the table (an orchestrated run of another date) holds its lock for the length
                // of its write: wait for it here, without blocking a runtime thread, for up to an hour.
                let waiting_since = Instant::now();
                let writer = loop {
                    match ParquetTableWriter::open(dir, out_schema.clone(), options.clone(), &self.run.run_id) {
                        Err(Error::Io { source, .. })
                            if source.kind() == std::io::ErrorKind::WouldBlock
                                && waiting_since.elapsed() < Duration::from_secs(3600) =>
                        {
                            tokio::time::sleep(Duration::from_millis(25)).await;
                        }
                        other => break other?,
                    }
                };
                Target::Parquet(writer)
            }
            TableFormat::Delta => {
                let options = DeltaWriteOptions {
                    mode: sink.mode,
                    partition_by: partition_by.clone(),
                    static_partition: static_partition.clone(),
                    compression: weir_lake::writer::parquet_compression(compression)?,
                    row_group_rows: sink.row_group_rows.unwrap_or(defaults.row_group_rows),
                    target_file_size: sink.max_file_bytes.unwrap_or(128 << 20) as u64,
                    app_id: self.interval_id(task),
                    replace_interval: true,
                    keys: sink.keys.clone().unwrap_or_default(),
                    delete_when: sink.delete_when.clone(),
                    scd2_as_of: (sink.history == weir_lake::sink::MergeHistory::Scd2).then(|| self.run.ds()),
                    commit_info: Vec::new(),
                };
                let mut writer = DeltaTableWriter::open(&location, &out_schema, options).await?;
                let legacy_id = format!("weir/{}/{}/{}", self.pipeline_name(), task.name, self.run.ds());
                if sink.mode == WriteMode::Append
                    && self.run.is_one_day()
                    && writer.committed_without_files(&legacy_id).await?
                {
                    // A day appended by an older weir, which did not record its files: left as it is, not doubled.
                    tracing::info!(task = %task.name, table = %sink.table, "append already committed for this date; skipped");
                    return Ok(TaskReport {
                        task: task.name.clone(),
                        table: table.to_string(),
                        elapsed: started.elapsed(),
                        skipped: true,
                        ..Default::default()
                    });
                }
                Target::Delta(Box::new(writer))
            }
        };

        let has_hidden = visible.len() < staged_schema.fields().len();
        let unconverted = conform.is_none() && !has_hidden && built.checkpoint.is_none();
        let mut target = target;
        let written_by_cluster =
            self.write_on_cluster(task, plan, &mut target, unconverted, &checks, &built.schema, compression).await?;
        // The checks of output an engine wrote run there, as SQL over its files.
        let mut checked_on_cluster = None;
        let mut target = match &written_by_cluster {
            Some((rows, checks_on)) => {
                let rows = *rows;
                progress(Progress { rows_read: rows, rows_written: rows, bytes_read: 0, total_bytes: None });
                if let (Target::Delta(writer), false, Some(on)) = (&mut target, checks.is_empty(), checks_on) {
                    let files = writer.stage().await?;
                    let staged = match on {
                        Remote::Ballista(url) => StagedElsewhere::Ballista(
                            crate::ballista::StagedOnCluster::open(url, lake, &files, &writer.file_schema()).await?,
                        ),
                        Remote::Spark(spark) => {
                            let mut tables = weir_lake::list_tables(lake).await?;
                            tables.retain(|t| t.format == TableFormat::Delta);
                            let schema = visible_schema_of(&out_schema, writer.partition_columns());
                            StagedElsewhere::Spark(crate::spark_connect::StagedOnSpark::open(
                                spark, tables, &files, schema,
                            )?)
                        }
                    };
                    checks.measure_with_sql(&staged.check_sql(), rows).await?;
                    checked_on_cluster = Some(staged);
                }
                target
            }
            None => {
                // Encoding on its own thread (Parquet) or task (Delta), fed through a small channel.
                let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
                let encoder: tokio::task::JoinHandle<Result<Target>> = match target {
                    Target::Parquet(mut writer) => tokio::task::spawn_blocking(move || {
                        while let Some(b) = rx.blocking_recv() {
                            writer.write(&b)?;
                        }
                        Ok(Target::Parquet(writer))
                    }),
                    Target::Delta(mut writer) => tokio::spawn(async move {
                        while let Some(b) = rx.recv().await {
                            writer.write(&b).await?;
                        }
                        Ok(Target::Delta(writer))
                    }),
                };
                let mut batches = built.batches;
                let mut rows_written = 0u64;
                let mut failure = None;
                while let Some(b) = batches.next().await {
                    let b = b
                        .and_then(|b| match conform.as_mut() {
                            Some(c) => c.apply(b),
                            None => Ok(b),
                        })
                        .and_then(|b| if checks.is_empty() { Ok(b) } else { checks.apply(b) })
                        .and_then(|b| {
                            if has_hidden {
                                b.project(&visible).map_err(|e| Error::engine("output", e))
                            } else {
                                Ok(b)
                            }
                        });
                    match b {
                        Ok(b) => {
                            rows_written += b.num_rows() as u64;
                            if b.num_rows() > 0 && tx.send(b).await.is_err() {
                                break; // the encoder failed; its error is collected below
                            }
                            progress(Progress {
                                rows_read: built.source.rows.load(Ordering::Relaxed),
                                rows_written,
                                bytes_read: built.source.bytes.load(Ordering::Relaxed),
                                total_bytes: built.source.total_bytes,
                            });
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                drop(tx);
                drop(batches);
                let target = encoder.await.map_err(|e| Error::engine("encoder", e))?;
                if let Some(e) = failure {
                    return Err(e); // the writer is dropped un-committed: the table keeps its previous state
                }
                target?
            }
        };

        // Checks are judged on the staged output, before anything is visible.
        if checks.needs_sql() && checked_on_cluster.is_none() {
            match &mut target {
                Target::Parquet(writer) => {
                    let staged = writer.stage()?.to_path_buf();
                    let partition_cols: Vec<String> = if static_partition.is_empty() {
                        partition_by.clone()
                    } else {
                        static_partition.iter().map(|(k, _)| k.clone()).collect()
                    };
                    self.engine.register_this_dir(&staged, &partition_cols).await?;
                }
                Target::Delta(writer) => {
                    let files = writer.stage().await?;
                    self.engine
                        .register_this_files(&files, &visible_schema_of(&out_schema, writer.partition_columns()))
                        .await?;
                }
            }
        }
        let check_sql = match &checked_on_cluster {
            Some(staged) => staged.check_sql(),
            None => CheckSql::Here(self.engine),
        };
        let check_results = checks.finish(check_sql).await?;
        let pipeline_name = self.pipeline_name();
        quality_results::store(lake, self.run, &pipeline_name, &task.name, &sink.table, &check_results).await?;
        fail_on_checks(self.pipeline_file, &task.name, &check_results)?;

        if let Some(v) = &next_version {
            history.versions.push(v.clone());
        }
        let mut merged = None;
        // An incremental source's cursor commits with the data (see weir_lake::cursor).
        let cursor = built.checkpoint.as_ref().and_then(|c| {
            Some(weir_lake::cursor::CursorRecord {
                to: c.cursor()?,
                after: c.after.clone(),
                partition: self.replaced_unit(task, sink),
            })
        });
        let cursor_key = weir_core::cursor::key(&pipeline_name, &task.name);
        let (summary, delta_version, files) = match target {
            Target::Parquet(mut writer) => {
                if next_version.is_some() {
                    writer.add_table_file(contract::SCHEMA_FILE, history.to_json());
                }
                if let Some(c) = &cursor {
                    writer.add_partition_file(
                        weir_lake::cursor::CURSOR_FILE,
                        weir_lake::cursor::file_contents(&cursor_key, c),
                    );
                }
                let s = tokio::task::spawn_blocking(move || writer.commit())
                    .await
                    .map_err(|e| Error::engine("commit", e))??;
                let files = s.files.len();
                (s, None, files)
            }
            Target::Delta(mut writer) => {
                if let Some(c) = &cursor {
                    writer.add_commit_info(
                        weir_lake::cursor::CURSOR_METADATA,
                        weir_lake::cursor::metadata_value(&cursor_key, c),
                    );
                }
                let s = writer.commit().await?;
                // The schema history beside the log (the log itself holds the current schema): written after the
                // commit, so a crash in between only delays the drift record by one run.
                if next_version.is_some() {
                    location.write_file(contract::SCHEMA_FILE, &history.to_json()).await?;
                }
                merged = s.merged;
                let summary = weir_lake::CommitSummary {
                    table_dir: location.local.clone().unwrap_or_else(|| location.url.to_string().into()),
                    rows: s.rows,
                    bytes: s.bytes,
                    files: Vec::new(),
                    partitions: s.partitions,
                };
                (summary, Some(s.version), s.files)
            }
        };
        if let Some(checkpoint) = &built.checkpoint {
            checkpoint.clear(); // the pages are in the table now
        }
        // A crash here leaves the target committed without this run's rejects: its retry writes both again (a
        // replaced partition, a Delta append that replaces its interval's files).
        weir_core::failpoint::hit("task_after_target_commit");
        let mut rejects_table = rejects.commit()?;
        if rejects_staging.is_some() {
            let app_id = format!("{}/rejects", self.interval_id(task));
            rejects_table =
                crate::quality::rejects::publish(rejects_table, &reject_target, &rejects_location, app_id).await?;
        }
        let steps = built.steps.iter().map(|s| s.lock().map(|s| s.report()).unwrap_or_default()).collect();
        Ok(TaskReport {
            task: task.name.clone(),
            table: table.to_string(),
            rows_read: written_by_cluster.as_ref().map_or_else(|| built.source.rows_read(), |(rows, _)| *rows),
            rows_written: summary.rows,
            bytes_read: built.source.bytes.load(Ordering::Relaxed),
            bytes_written: summary.bytes,
            files,
            partitions: summary.partitions,
            steps,
            elapsed: started.elapsed(),
            checks: check_results,
            rejected: rejects.counts(),
            rejects_table,
            schema_changes,
            schema_version: next_version.map(|v| v.version),
            delta_version,
            merged,
            skipped: false,
            output: None,
        })
    }

    fn pipeline_name(&self) -> String {
        self.pipeline_file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    }

    async fn compile_checks(
        &self,
        task: &Task,
        schema: &SchemaRef,
        table: &str,
        rejects: Option<Rejects>,
        context: &str,
    ) -> Result<CheckSet> {
        let mut previous_rows = None;
        for c in &task.checks {
            if matches!(c.kind, weir_config::CheckKind::RowCount { max_change_pct: Some(_), .. }) {
                previous_rows =
                    quality_results::previous_row_count(self.engine, table, &c.name, &self.run.run_id).await?;
            }
        }
        Ok(CheckSet::compile(self.engine, &task.checks, schema, rejects, previous_rows, context)
            .await?
            .with_data_interval_end(self.run.data_interval_end))
    }

    /// A task without a sink: its checks run on its input (usually a lake table); nothing is written but the
    /// results.
    async fn run_checks_only(&self, task: &Task, plan: &TaskPlan, started: Instant) -> Result<TaskReport> {
        let context = format!("{}: task `{}`", self.pipeline_file.display(), task.name);
        let table = match &plan.input {
            InputPlan::Lake(cfg) => cfg.table.clone(),
            InputPlan::Model { name, .. } => format!("model {name}"),
            _ => format!("task {}", task.name),
        };
        let built = self.build(task, plan, task.steps.len(), None, false).await?;
        let mut checks = self.compile_checks(task, &built.schema, &table, None, &context).await?;
        if checks.needs_sql() {
            let sql = match &plan.input {
                InputPlan::Lake(cfg) => cfg.sql(),
                InputPlan::Model { sql, .. } | InputPlan::Sql(sql) => sql.clone(),
                InputPlan::Source(_) | InputPlan::NoRows => {
                    return Err(Error::config(
                        Default::default(),
                        format!("{context}: `sql` checks on a task without a sink need a lake, model or sql input"),
                    ))
                }
            };
            self.engine.register_this_sql(&sql).await?;
        }
        let mut batches = built.batches;
        let mut rows = 0u64;
        while let Some(b) = batches.next().await {
            rows += checks.apply(b?)?.num_rows() as u64;
        }
        let check_results = checks.finish(CheckSql::Here(self.engine)).await?;
        quality_results::store(self.engine.lake(), self.run, &self.pipeline_name(), &task.name, &table, &check_results)
            .await?;
        fail_on_checks(self.pipeline_file, &task.name, &check_results)?;
        Ok(TaskReport {
            task: task.name.clone(),
            table,
            rows_read: rows,
            steps: built.steps.iter().map(|s| s.lock().map(|s| s.report()).unwrap_or_default()).collect(),
            elapsed: started.elapsed(),
            checks: check_results,
            ..Default::default()
        })
    }

    /// A task whose sink is a database table (PostgreSQL, SQLite): steps and checks as usual, rows loaded in one
    /// transaction, committed only when every error check passed.
    async fn run_to_database(
        &self,
        task: &Task,
        plan: &TaskPlan,
        sink: &dyn BatchSink,
        started: Instant,
    ) -> Result<TaskReport> {
        let context = format!("{}: task `{}`", self.pipeline_file.display(), task.name);
        let table = sink.target();
        // What steps, checks and the source set aside is staged in a local folder and loaded into the database's
        // `<table>__rejected` in the load's own transaction.
        let staging = tempfile::tempdir().map_err(|e| Error::io("create a staging folder for rejects", e))?;
        let reject_target = RejectTarget {
            table_dir: staging.path().join("rejected"),
            partition: format!("date={}", self.run.ds()),
            append: true,
        };
        let rejects = Rejects::new(&self.run.run_id, &task.name, Some(reject_target.clone()));
        let built = self.build(task, plan, task.steps.len(), Some(&rejects), can_reject(task, false)).await?;
        let mut checks = self.compile_checks(task, &built.schema, &table, Some(rejects.clone()), &context).await?;
        if checks.needs_sql() {
            return Err(Error::config(
                Default::default(),
                format!("{context}: `sql` checks need a lake sink (they read the staged output); use column checks"),
            ));
        }
        let visible = visible_columns(&built.schema);
        let schema = built.schema.project(&visible).map_err(|e| Error::engine("output schema", e))?;
        let mut load = sink.begin(self.connector_run(), &schema).await?;
        let mut batches = built.batches;
        while let Some(b) = batches.next().await {
            let b = checks.apply(b?)?;
            let b = b.project(&visible).map_err(|e| Error::engine("output", e))?;
            load.write(&b).await?;
        }
        let check_results = checks.finish(CheckSql::Here(self.engine)).await?;
        quality_results::store(self.engine.lake(), self.run, &self.pipeline_name(), &task.name, &table, &check_results)
            .await?;
        // A failed error check drops the load: the transaction rolls back and the table keeps its rows.
        fail_on_checks(self.pipeline_file, &task.name, &check_results)?;
        let staged = rejects.commit()?.is_some();
        let reject_rows = || -> Result<weir_connect::connection::RejectRows> {
            let files = if staged { crate::quality::rejects::staged_files(&reject_target)? } else { Vec::new() };
            Ok(weir_connect::connection::RejectRows {
                schema: crate::quality::rejects::rejects_schema(),
                batches: Box::new(crate::quality::rejects::read_staged(files)),
            })
        };
        let rows_written = load.commit(Some(reject_rows()?)).await?;
        weir_core::failpoint::hit("task_after_target_commit");
        let rejects_table = staged.then(|| sink.rejects_target());
        Ok(TaskReport {
            task: task.name.clone(),
            table,
            rows_read: built.source.rows_read(),
            rows_written,
            rejected: rejects.counts(),
            rejects_table,
            steps: built.steps.iter().map(|s| s.lock().map(|s| s.report()).unwrap_or_default()).collect(),
            elapsed: started.elapsed(),
            checks: check_results,
            ..Default::default()
        })
    }

    /// The cursor window an incremental source of `task` reads: past the newest cursor committed into its sink's
    /// table, or, when this run replaces a partition that an earlier run committed (a re-run of its interval), that
    /// run's window again (see `weir_lake::cursor`). `--full-refresh` reads from the source's `initial`.
    async fn cursor_window(&self, task: &Task, plan: &TaskPlan) -> Result<CursorWindow> {
        let Some(sink) = plan.lake_sink().filter(|_| !self.full_refresh) else {
            return Ok(CursorWindow::default());
        };
        let table = TableName::parse(&sink.table).map_err(|e| Error::config(Default::default(), e))?;
        let key = weir_core::cursor::key(&self.pipeline_name(), &task.name);
        let unit = self.replaced_unit(task, sink);
        let committed = weir_lake::cursor::read(&self.engine.lake().table(&table), &key, unit.as_deref()).await?;
        Ok(match unit {
            Some(_) => committed.window(),
            // A merge (or a Parquet append) adds what is new; a retry of it finds nothing new to add.
            None => CursorWindow::after(committed.newest),
        })
    }

    /// What a run of `task` replaces when it runs again: its fixed partition (`replace_partitions`), or its data
    /// interval's append (a Delta `append`); None when a re-run only adds.
    fn replaced_unit(&self, task: &Task, sink: &LakeSinkConfig) -> Option<String> {
        match (sink.mode, sink.format) {
            (WriteMode::ReplacePartitions, _) => sink.partition.clone(),
            (WriteMode::Append, TableFormat::Delta) => Some(self.interval_id(task)),
            _ => None,
        }
    }

    /// The Delta application transaction of `task`'s write for this run's data interval (see `DeltaWriteOptions`).
    fn interval_id(&self, task: &Task) -> String {
        // In UTC: at an autumn clock change two hourly intervals share a local start.
        let utc = |t: chrono::DateTime<chrono::FixedOffset>| t.naive_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let (start, end) = (utc(self.run.start_with_offset()), utc(self.run.end_with_offset()));
        format!("weir/{}/{}/{start}/{end}", self.pipeline_name(), task.name)
    }

    /// Where a resumable source checkpoints this task's run: `.weir/spool/<pipeline>/<task>/<date>/`.
    fn spool_dir(&self, task: &Task) -> std::path::PathBuf {
        let spool = self.project.dir.join(".weir").join("spool");
        spool.join(self.pipeline_name()).join(&task.name).join(self.run.ds())
    }

    /// What a connector needs from this run: the project's folder and connections, and the batch size.
    fn connector_run(&self) -> ConnectorRun<'_> {
        ConnectorRun {
            project_dir: &self.project.dir,
            connections: &self.project.connections,
            batch_rows: self.project.defaults.batch_rows,
        }
    }

    /// The rows of a model or `sql:` task: from this process's DataFusion over the lake, or from the remote engine
    /// weir.yaml names for it, reading the same Delta tables by path (Spark) or by their current files (Ballista).
    /// With `lazy`, a Spark query only gives its columns until its rows are read: the engine may yet write them
    /// itself ([`TaskRunner::write_on_cluster`]).
    async fn sql_input(&self, task: &Task, sql: &str, what: &str, lazy: bool) -> Result<SourceStream> {
        match self.remote_engine(task, what)? {
            None => {
                self.engine.register_lake().await?;
                self.engine.sql_stream(sql, what).await
            }
            Some(Remote::Spark(spark)) if lazy => {
                crate::spark_connect::lazy_sql_stream(&spark, &self.spark_sql(&spark, sql, what).await?, what).await
            }
            Some(Remote::Spark(spark)) => {
                crate::spark_connect::sql_stream(&spark, &self.spark_sql(&spark, sql, what).await?, what).await
            }
            // Ballista's rows are only computed once they are read.
            Some(Remote::Ballista(url)) => crate::ballista::sql_stream(&url, self.engine.lake(), sql, what).await,
        }
    }

    /// `sql` with the lake's Delta tables it names as the Spark Connect engine reads them (by path, or as views
    /// of their files).
    async fn spark_sql(&self, spark: &weir_config::engine::SparkEngine, sql: &str, what: &str) -> Result<SparkQuery> {
        let mut tables = weir_lake::list_tables(self.engine.lake()).await?;
        tables.retain(|t| t.format == weir_lake::TableFormat::Delta);
        crate::spark_connect::with_lake_tables(sql, &tables, spark.delta, what).await
    }

    /// Whether the remote engine may write the task's output itself, as far as the pipeline file tells (the rest is
    /// decided with the output's columns and checks, [`TaskRunner::write_on_cluster`]): a model or `sql:` task
    /// without steps, into one partition of a Delta table, appended or replaced.
    fn engine_may_write(&self, task: &Task, plan: &TaskPlan) -> bool {
        let Some(SinkPlan::Lake(sink)) = &plan.sink else { return false };
        matches!(plan.input, InputPlan::Model { .. } | InputPlan::Sql(_))
            && task.steps.is_empty()
            && sink.format == TableFormat::Delta
            && sink.partition_by.as_ref().is_none_or(|p| p.is_empty())
            && sink.mode != WriteMode::Merge
            && sink.history != weir_lake::sink::MergeHistory::Scd2
    }

    /// Has the remote engine write a model's or `sql:` task's rows as the Delta table's files when nothing is done
    /// to them here (`unconverted`: no contract conversion, no hidden columns, no incremental cursor; no check that
    /// quarantines rows or needs them here, or that the engine's SQL would judge differently,
    /// [`CheckSet::can_run_as_sql`]) and they all go to one partition (a static `partition:` or none) of an append
    /// or a replace ([`TaskRunner::engine_may_write`]). A Ballista cluster's executors `COPY` them, Spark `INSERT
    /// OVERWRITE DIRECTORY`, into a folder of this write under the partition; weir takes the files into its commit
    /// (their rows counted from their footers): the rows do not pass through this process. Returns the rows written
    /// and the engine the checks then run on; None when the rows come here to be written. `returned`: the query's
    /// columns.
    #[allow(clippy::too_many_arguments)]
    async fn write_on_cluster(
        &self,
        task: &Task,
        plan: &TaskPlan,
        target: &mut Target,
        unconverted: bool,
        checks: &CheckSet,
        returned: &arrow::datatypes::Schema,
        compression: weir_config::Compression,
    ) -> Result<Option<(u64, Option<Remote>)>> {
        let (Target::Delta(writer), true) = (target, unconverted) else { return Ok(None) };
        let sql = match &plan.input {
            InputPlan::Model { sql, .. } | InputPlan::Sql(sql) if self.engine_may_write(task, plan) => sql,
            _ => return Ok(None),
        };
        let what = format!("task `{}`", task.name);
        let Some(remote) = self.remote_engine(task, &what)? else { return Ok(None) };
        let dialect = match remote {
            Remote::Spark(_) => Dialect::Spark,
            Remote::Ballista(_) => Dialect::DataFusion,
        };
        if !checks.can_run_as_sql(dialect) {
            return Ok(None);
        }
        let (folder, folder_url) = writer.folder_for_other_writers()?;
        let schema = writer.file_schema();
        let (found, checks_on) = match remote {
            Remote::Ballista(url) => {
                let compression = match compression {
                    weir_config::Compression::Snappy => "snappy",
                    weir_config::Compression::Zstd => "zstd(3)",
                    weir_config::Compression::None => "uncompressed",
                };
                let lake = self.engine.lake();
                let reported =
                    crate::ballista::write_parquet(&url, lake, sql, &what, &schema, folder_url.as_str(), compression)
                        .await?;
                let found = writer.add_files_written_in(&folder).await?;
                if found != reported {
                    // A task the scheduler ran again after losing its executor may have left a second copy.
                    return Err(Error::external(
                        format!("{what} on {url}"),
                        format!(
                            "its executors reported {reported} rows written but the files in {folder} hold {found}: nothing was committed; run the task again"
                        ),
                    ));
                }
                (found, Some(Remote::Ballista(url)))
            }
            Remote::Spark(spark) => {
                let remote_sql = self.spark_sql(&spark, sql, &what).await?;
                let url = folder_url.as_str();
                if !crate::spark_connect::write_parquet(&spark, &remote_sql, &what, returned, &schema, url).await? {
                    return Ok(None);
                }
                // Spark's commit protocol publishes each task's file once, whatever it retried.
                (writer.add_files_written_in(&folder).await?, Some(Remote::Spark(spark)))
            }
        };
        tracing::info!(task = %task.name, rows = found, folder = %folder, "{what}: the engine wrote the table's files");
        Ok(Some((found, checks_on)))
    }

    /// The remote engine that computes `task`'s rows (its URL and token resolved), or None when they are computed
    /// here.
    fn remote_engine(&self, task: &Task, what: &str) -> Result<Option<Remote>> {
        let Some(engine) = task.remote_engine(self.project) else { return Ok(None) };
        let name = engine.kind().name();
        let resolve = |v: &str| {
            weir_config::project::resolve_env(v)
                .map_err(|e| Error::config(Default::default(), format!("{what}: engine {name}: {e}")))
        };
        let url = resolve(engine.url())?;
        let lake = self.engine.lake();
        if lake.is_local() && weir_config::engine::on_this_machine(&url) != Some(true) {
            return Err(Error::config(
                Default::default(),
                format!(
                    "{what}: an engine on another machine cannot read the lake in the local folder {lake}: put it on object storage"
                ),
            ));
        }
        Ok(Some(match engine {
            RemoteEngine::Spark(spark) => Remote::Spark(weir_config::engine::SparkEngine {
                url,
                token: spark.token.as_deref().map(resolve).transpose()?,
                delta: spark.delta,
            }),
            RemoteEngine::Ballista(_) => Remote::Ballista(url),
        }))
    }

    /// A lake source and all its steps computed by the Spark Connect engine (`remote_steps`): first the counts (and
    /// whether any row may differ from a local run's, which fails the task), then each converting step's rejects into
    /// the quarantine, then the rows. Every query reads the table at the same Delta version.
    async fn build_remote(
        &self,
        task: &Task,
        cfg: &weir_lake::LakeSourceConfig,
        spark: &weir_config::engine::SparkEngine,
        rejects: Option<&Rejects>,
    ) -> Result<Built> {
        let what = format!("task `{}`: lake source {} on spark", task.name, cfg.table);
        let name = TableName::parse(&cfg.table).map_err(|e| Error::config(Default::default(), e))?;
        let table = weir_lake::list_tables(self.engine.lake())
            .await?
            .into_iter()
            .find(|t| t.name.to_string().eq_ignore_ascii_case(&name.to_string()))
            .ok_or_else(|| Error::data(Default::default(), format!("{what}: no table {} in the lake", cfg.table)))?;
        if table.format != TableFormat::Delta {
            return Err(Error::config(
                Default::default(),
                format!("{what}: {} is a Parquet table; a remote engine reads Delta tables (format: delta)", cfg.table),
            ));
        }
        let version = weir_lake::delta::open(&table.location, None).await?.version().unwrap_or(0);
        self.engine.register_lake().await?;
        let schema = self.engine.sql_schema(&cfg.sql(), &what).await?;
        let table_version = crate::spark_connect::table_version(&table.location, version, spark.delta, &what).await?;
        let mut source = table_version.sql.clone();
        if let Some(condition) = &cfg.condition {
            source.push_str(&format!(" WHERE {condition}"));
        }
        let plan = crate::remote_steps::compile(&source, &schema, &task.steps, &what)?;
        let query = |sql: &str| table_version.with_sql(sql.to_string());

        let counts = collect(crate::spark_connect::sql_stream(spark, &query(&plan.counts_sql), &what).await?).await?;
        let count = |name: &str| -> Result<u64> {
            let batch = counts.first().ok_or_else(|| Error::engine(&what, "the engine returned no counts"))?;
            let column = batch.column_by_name(name).ok_or_else(|| Error::engine(&what, format!("no `{name}`")))?;
            let column = arrow::compute::cast(column, &arrow::datatypes::DataType::UInt64)
                .map_err(|e| Error::engine(&what, e))?;
            Ok(column.as_primitive::<arrow::datatypes::UInt64Type>().value(0))
        };
        let unsure = count("unsure")?;
        if unsure > 0 {
            let example = counts
                .first()
                .and_then(|b| b.column_by_name("unsure_example").cloned())
                .and_then(|c| arrow::compute::cast(&c, &arrow::datatypes::DataType::Utf8).ok())
                .map(|c| c.as_string::<i32>().value(0).to_string())
                .unwrap_or_default();
            return Err(Error::data(
                Default::default(),
                format!(
                    "{what}: {unsure} rows could come out differently on the engine than here ({example}); \
                     run the task with `engine: local`, or make the step exact (`order_by` for dedupe, clean the value)"
                ),
            ));
        }

        // Rejected values, as their steps received them: recorded as a local run records them.
        let mut failed: BTreeMap<usize, Vec<(String, u64, Vec<String>)>> = BTreeMap::new();
        for r in &plan.rejects {
            if count(&r.counter)? == 0 {
                continue; // nothing to read back
            }
            let step = &task.steps[r.step];
            let on_error = match &step.kind {
                StepKind::Cast(c) => c.on_error,
                StepKind::ParseDates(p) => p.on_error,
                _ => weir_config::steps::OnError::Null,
            };
            // Streamed a batch at a time: a day of garbage may reject millions of values.
            let mut rows = crate::spark_connect::sql_stream(spark, &query(&r.sql), &what).await?.batches;
            let mut n = 0u64;
            let mut samples: Vec<String> = Vec::new();
            while let Some(batch) = rows.next().await {
                let batch = batch?;
                let values = batch
                    .column_by_name(&r.column)
                    .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8))
                    .transpose()
                    .map_err(|e| Error::engine(&what, e))?;
                if let Some(values) = &values {
                    for v in values.as_string::<i32>().iter().flatten() {
                        if samples.len() < 5 && !samples.iter().any(|s| s == v) {
                            samples.push(v.to_string());
                        }
                    }
                }
                n += batch.num_rows() as u64;
                if on_error == weir_config::steps::OnError::Fail && batch.num_rows() > 0 {
                    let value = samples.first().cloned().unwrap_or_default();
                    let message = match &step.kind {
                        StepKind::Cast(_) => format!("cast: column `{}` value '{value}' is {}", r.column, r.reason),
                        _ => format!("parse_dates: column `{}` value '{value}' {}", r.column, r.reason),
                    };
                    return Err(Error::data(Default::default(), message));
                }
                if let Some(rejects) = rejects {
                    let all: arrow::array::BooleanArray = (0..batch.num_rows()).map(|_| Some(true)).collect();
                    rejects.record(&batch, &all, &r.rule, &r.reason, Some(&r.column), r.action)?;
                }
            }
            failed.entry(r.step).or_default().push((r.column.clone(), n, samples));
        }

        let total = count("rows")?;
        let mut rows_in = total;
        let mut steps = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            let removed = count(&format!("out_{}", i + 1))?;
            let rows_out = rows_in - removed;
            let notes = match &step.kind {
                crate::remote_steps::StepNotes::Plain => Vec::new(),
                crate::remote_steps::StepNotes::Dedupe => vec![format!("{rows_out} distinct keys")],
                crate::remote_steps::StepNotes::Converts { what, on_error } => failed
                    .get(&i)
                    .into_iter()
                    .flatten()
                    .filter(|(_, n, _)| *n > 0)
                    .map(|(column, n, samples)| crate::ops::conversion_note(column, *n, what, *on_error, samples))
                    .collect(),
            };
            let reported = CompiledStep::reported(step.name, step.line, rows_in, rows_out, notes);
            steps.push(Arc::new(Mutex::new(reported)) as Shared);
            rows_in = rows_out;
        }
        tracing::info!(engine = %spark.url.split(';').next().unwrap_or_default(), version, "{what}: read and steps sent as SQL");
        let out = crate::spark_connect::sql_stream(spark, &query(&plan.rows_sql), &what).await?;
        let source = SourceStats {
            rows: Arc::new(AtomicU64::new(total)),
            set_aside: Default::default(),
            bytes: out.bytes_read.clone(),
            total_bytes: None,
        };
        Ok(Built { schema: out.schema, batches: out.batches, steps, source, checkpoint: None })
    }

    async fn open_input(&self, task: &Task, plan: &TaskPlan, positions: bool) -> Result<SourceStream> {
        match &plan.input {
            InputPlan::Lake(cfg) => {
                self.engine.register_lake().await?;
                self.engine.scan_in_order(&cfg.sql(), &format!("task `{}`: lake source {}", task.name, cfg.table)).await
            }
            InputPlan::Source(source) => {
                let window = match source.incremental() {
                    Some(_) => self.cursor_window(task, plan).await?,
                    None => CursorWindow::default(),
                };
                let run = SourceRun {
                    connector: self.connector_run(),
                    positions,
                    window,
                    spool_dir: self.spool_dir(task),
                    cursor_commits_with_data: plan.lake_sink().is_some(),
                };
                source.open(run).await
            }
            InputPlan::Model { name, sql } => {
                let file = self.project.models_dir().join(format!("{name}.sql"));
                let what = format!("model `{name}` ({})", file.display());
                self.sql_input(task, sql, &what, self.engine_may_write(task, plan)).await
            }
            InputPlan::Sql(sql) => {
                let what = format!("task `{}` sql", task.name);
                self.sql_input(task, sql, &what, self.engine_may_write(task, plan)).await
            }
            InputPlan::NoRows => Err(Error::config(
                Default::default(),
                format!("task `{}` has no rows to read (a shell, http or sensor task)", task.name),
            )),
        }
    }

    /// The input stream with the first `upto` steps applied. With `rejects`, steps and the source record what they
    /// reject there; `positions` asks a file source for the hidden file and line columns.
    fn build<'s>(
        &'s self,
        task: &'s Task,
        plan: &'s TaskPlan,
        upto: usize,
        rejects: Option<&'s Rejects>,
        positions: bool,
    ) -> BoxFuture<'s, Result<Built>> {
        async move {
            if let InputPlan::Lake(cfg) = &plan.input {
                let what = format!("task `{}`", task.name);
                if let (Some(Remote::Spark(spark)), true) = (self.remote_engine(task, &what)?, upto == task.steps.len())
                {
                    return self.build_remote(task, cfg, &spark, rejects).await;
                }
            }
            let mut src = self.open_input(task, plan, positions).await?;
            let source = SourceStats {
                rows: Default::default(),
                set_aside: Default::default(),
                bytes: src.bytes_read.clone(),
                total_bytes: src.total_bytes,
            };
            if let (Some(rejects), Some(set_aside)) = (rejects, src.rejects.clone()) {
                let rule = match &plan.input {
                    InputPlan::Source(s) => format!("source {} (on_error: quarantine)", s.kind()),
                    _ => "source".to_string(),
                };
                let counted = source.set_aside.clone();
                src.batches = drain_source_rejects(src.batches, set_aside, rejects.clone(), rule, counted);
            }
            let checkpoint = src.checkpoint.clone();
            let rows = source.rows.clone();
            let mut batches: BoxStream<'static, Result<RecordBatch>> = src
                .batches
                .map(move |b| {
                    if let Ok(b) = &b {
                        rows.fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    }
                    b
                })
                .boxed();
            let mut schema = src.schema;
            let mut steps = Vec::new();
            let site = StepSite { file: self.pipeline_file, project_dir: &self.project.dir, task: &task.name, rejects };
            for (i, step) in task.steps.iter().take(upto).enumerate() {
                if is_ordered_dedupe(step) {
                    let (s, b, counter) = self.ordered_dedupe(step, schema, batches, steps.len()).await?;
                    schema = s;
                    batches = b;
                    steps.push(counter);
                    continue;
                }
                let stats = match fill_strategy_columns(step) {
                    Some(cols) => Some(self.statistics(task, plan, i, &cols).await?),
                    None => None,
                };
                let compiled = compile(self.engine.context(), step, &schema, stats.as_ref(), &site)?;
                schema = compiled.schema();
                let shared: Shared = Arc::new(Mutex::new(compiled));
                let (op, last) = (shared.clone(), shared.clone());
                let poisoned = || Error::engine("step", "poisoned");
                // After the last batch, what the step still holds (a step over the whole input emits it all then).
                let tail = futures::stream::once(async move { last.lock().map_err(|_| poisoned())?.finish() })
                    .flat_map(|r: Result<Vec<RecordBatch>>| match r {
                        Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok).collect::<Vec<_>>()),
                        Err(e) => futures::stream::iter(vec![Err(e)]),
                    });
                batches = batches
                    .map(move |b| b.and_then(|b| op.lock().map_err(|_| poisoned())?.apply(b)))
                    .chain(tail)
                    .boxed();
                steps.push(shared);
            }
            Ok(Built { schema, batches, steps, source, checkpoint })
        }
        .boxed()
    }

    /// First pass for `fill_null` with mean/median/mode: reads the input through the steps before `index`.
    async fn statistics(
        &self,
        task: &Task,
        plan: &TaskPlan,
        index: usize,
        cols: &[(String, FillStrategy)],
    ) -> Result<ColumnStats> {
        let mut built = self.build(task, plan, index, None, false).await?;
        let mut stats = ColumnStats::new(cols);
        while let Some(b) = built.batches.next().await {
            stats.update(&b?)?;
        }
        Ok(stats)
    }

    /// `dedupe` with `order_by` keeps, per key, the first or last row in that order; it needs every row of a key, so
    /// it is planned on DataFusion (a window with spilling) over the stream so far.
    async fn ordered_dedupe(
        &self,
        step: &Step,
        schema: SchemaRef,
        batches: BoxStream<'static, Result<RecordBatch>>,
        n: usize,
    ) -> Result<(SchemaRef, BoxStream<'static, Result<RecordBatch>>, Shared)> {
        let StepKind::Dedupe(d) = &step.kind else { unreachable!("checked by is_ordered_dedupe") };
        let order_by = d.order_by.clone().unwrap_or_default();
        let context = format!("{}:{}: step `dedupe`", self.pipeline_file.display(), step.line);
        let name = format!("__weir_dedupe_input_{n}");
        let counted = CountedStream::new();
        let rows_in = counted.clone();
        let input = batches
            .map(move |b| {
                if let Ok(b) = &b {
                    rows_in.add_in(b.num_rows());
                }
                b.map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
            })
            .boxed();
        let partition = Arc::new(OneShot { schema: schema.clone(), stream: Mutex::new(Some(input)) });
        let table = StreamingTable::try_new(schema.clone(), vec![partition]).map_err(|e| Error::engine(&context, e))?;
        let ctx = self.engine.context();
        let _ = ctx.deregister_table(name.as_str());
        ctx.register_table(name.as_str(), Arc::new(table)).map_err(|e| Error::engine(&context, e))?;
        let keys: Vec<String> = match &d.columns {
            Some(c) => c.iter().map(|c| quote_ident(c)).collect(),
            None => schema
                .fields()
                .iter()
                .filter(|f| f.name() != &order_by && !is_hidden(f.name()))
                .map(|f| quote_ident(f.name()))
                .collect(),
        };
        // A row whose `order_by` is NULL has no place in the order: it is kept only when its key has no other row.
        let dir = if d.keep == Keep::First { "ASC" } else { "DESC" };
        let all: Vec<String> = schema.fields().iter().map(|f| quote_ident(f.name())).collect();
        let sql = format!(
            "SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {o} {dir} NULLS LAST) AS __weir_rn FROM {name}) WHERE __weir_rn = 1",
            cols = all.join(", "),
            keys = keys.join(", "),
            o = quote_ident(&order_by),
        );
        let out = self.engine.sql_stream(&sql, &context).await?;
        let rows_out = counted.clone();
        let batches = out
            .batches
            .map(move |b| {
                if let Ok(b) = &b {
                    rows_out.add_out(b.num_rows());
                }
                b
            })
            .boxed();
        let step_report = CompiledStep::counter("dedupe", step.line, counted);
        Ok((out.schema, batches, Arc::new(Mutex::new(step_report))))
    }
}

/// A task's remote engine with its URL (and token) resolved.
#[derive(Clone)]
enum Remote {
    Spark(weir_config::engine::SparkEngine),
    /// The scheduler's `df://host:port`.
    Ballista(String),
}

/// Output an engine wrote, staged there for the task's checks.
enum StagedElsewhere {
    Ballista(crate::ballista::StagedOnCluster),
    Spark(crate::spark_connect::StagedOnSpark),
}

impl StagedElsewhere {
    fn check_sql(&self) -> CheckSql<'_> {
        match self {
            StagedElsewhere::Ballista(staged) => CheckSql::Ballista(staged),
            StagedElsewhere::Spark(staged) => CheckSql::Spark(staged),
        }
    }
}

/// Every batch of a small answer (the counts).
async fn collect(stream: SourceStream) -> Result<Vec<RecordBatch>> {
    stream.batches.collect::<Vec<_>>().await.into_iter().collect()
}

fn fill_strategy_columns(step: &Step) -> Option<Vec<(String, FillStrategy)>> {
    match &step.kind {
        StepKind::FillNull(f) => match f.strategy {
            Some(s @ (FillStrategy::Mean | FillStrategy::Median | FillStrategy::Mode)) => {
                Some(f.columns.iter().flatten().map(|c| (c.clone(), s)).collect())
            }
            _ => None,
        },
        _ => None,
    }
}

/// A stream handed to DataFusion as a table that can be scanned once.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<BoxStream<'static, datafusion::error::Result<RecordBatch>>>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        let stream = taken.unwrap_or_else(|| {
            futures::stream::once(async {
                Err(datafusion::error::DataFusionError::Execution("a step input can be read only once".into()))
            })
            .boxed()
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
