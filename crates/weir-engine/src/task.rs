//! Runs one task of a pipeline: opens its input (a file source, a lake table or a SQL model), pushes every batch
//! through its compiled steps and into its sink, and commits the sink only when everything succeeded.
//!
//! Three things run at once on a machine with two cores: files decode on blocking threads (next files ahead), the
//! steps run on the task, and Parquet encoding runs on its own blocking thread behind a small channel. Memory is a
//! few batches per stage, whatever the input size.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use weir_config::steps::{FillStrategy, Keep, Step, StepKind};
use weir_config::{Project, Task, TaskInput};
use weir_connect::{parse_source, SourceConfig, SourceStream};
use weir_core::{Error, Result, RunContext};
use weir_lake::{LakeSinkConfig, LakeSourceConfig, ParquetTableWriter, TableName, WriterOptions};

use crate::ops::{compile, quote_ident, ColumnStats, CompiledStep, StepReport, StepSite};
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
    pub files: Vec<std::path::PathBuf>,
    pub partitions: Vec<String>,
    pub steps: Vec<StepReport>,
    pub elapsed: Duration,
}

pub struct TaskRunner<'a> {
    pub project: &'a Project,
    pub pipeline_file: &'a std::path::Path,
    pub run: &'a RunContext,
    pub engine: &'a Engine,
}

type Shared = Arc<Mutex<CompiledStep>>;

struct Built {
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch>>,
    steps: Vec<Shared>,
    source: SourceStats,
}

#[derive(Clone)]
struct SourceStats {
    rows: Arc<std::sync::atomic::AtomicU64>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
    total_bytes: Option<u64>,
}

/// Whether a step must be planned on DataFusion over the whole input (it needs all rows of a key).
fn is_ordered_dedupe(step: &Step) -> bool {
    matches!(&step.kind, StepKind::Dedupe(d) if d.order_by.is_some())
}

impl<'a> TaskRunner<'a> {
    pub async fn run(&self, task: &Task, progress: ProgressFn) -> Result<TaskReport> {
        let started = Instant::now();
        let sink_component = task
            .sink
            .as_ref()
            .ok_or_else(|| Error::config(Default::default(), format!("task `{}` has no sink", task.name)))?;
        if sink_component.kind != "lake" {
            return Err(Error::config(
                Default::default(),
                format!("unknown sink type `{}`; expected `lake`", sink_component.kind),
            ));
        }
        let sink = LakeSinkConfig::parse(&sink_component.node)
            .map_err(|d| d[0].clone().in_file(self.pipeline_file).to_error())?;
        let table = TableName::parse(&sink.table).map_err(|e| Error::config(Default::default(), e))?;
        let built = self.build(task, task.steps.len()).await?;
        let defaults = &self.project.defaults;
        let options = WriterOptions {
            mode: sink.mode,
            compression: sink.compression.unwrap_or(defaults.compression),
            row_group_rows: sink.row_group_rows.unwrap_or(defaults.row_group_rows),
            max_file_rows: sink.max_file_rows.unwrap_or(usize::MAX),
            max_file_bytes: sink.max_file_bytes.unwrap_or(1 << 30),
            static_partition: sink.partition.clone(),
            partition_by: sink.partition_by.clone().unwrap_or_default(),
        };
        let table_dir = table.dir(&self.project.lake_root());
        let writer = ParquetTableWriter::open(&table_dir, built.schema.clone(), options, &self.run.run_id)?;

        // Parquet encoding on its own thread, fed through a small channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let encoder = tokio::task::spawn_blocking(move || -> Result<ParquetTableWriter> {
            let mut writer = writer;
            while let Some(b) = rx.blocking_recv() {
                writer.write(&b)?;
            }
            Ok(writer)
        });
        let mut batches = built.batches;
        let mut rows_written = 0u64;
        let mut failure = None;
        while let Some(b) = batches.next().await {
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
        let writer = encoder.await.map_err(|e| Error::engine("parquet encoder", e))?;
        if let Some(e) = failure {
            return Err(e); // the writer is dropped un-committed: the table keeps its previous state
        }
        let writer = writer?;
        let summary =
            tokio::task::spawn_blocking(move || writer.commit()).await.map_err(|e| Error::engine("commit", e))??;
        let steps = built.steps.iter().map(|s| s.lock().map(|s| s.report()).unwrap_or_default()).collect();
        Ok(TaskReport {
            task: task.name.clone(),
            table: table.to_string(),
            rows_read: built.source.rows.load(Ordering::Relaxed),
            rows_written: summary.rows,
            bytes_read: built.source.bytes.load(Ordering::Relaxed),
            bytes_written: summary.bytes,
            files: summary.files,
            partitions: summary.partitions,
            steps,
            elapsed: started.elapsed(),
        })
    }

    async fn open_input(&self, task: &Task) -> Result<SourceStream> {
        let batch_rows = self.project.defaults.batch_rows;
        let located = |d: Vec<weir_config::Diagnostic>| d[0].clone().in_file(self.pipeline_file).to_error();
        match &task.input {
            TaskInput::Source(c) if c.kind == "lake" => {
                let cfg = LakeSourceConfig::parse(&c.node).map_err(located)?;
                self.engine.register_lake().await?;
                self.engine.sql_stream(&cfg.sql(), &format!("task `{}`: lake source {}", task.name, cfg.table)).await
            }
            TaskInput::Source(c) => match parse_source(c).map_err(located)? {
                SourceConfig::File(f) => f.open(&self.project.dir, batch_rows),
            },
            TaskInput::Model { name, sql } => {
                self.engine.register_lake().await?;
                let file = self.project.models_dir().join(format!("{name}.sql"));
                self.engine.sql_stream(sql, &format!("model `{name}` ({})", file.display())).await
            }
            TaskInput::Sql(sql) => {
                self.engine.register_lake().await?;
                self.engine.sql_stream(sql, &format!("task `{}` sql", task.name)).await
            }
        }
    }

    /// The input stream with the first `upto` steps applied.
    fn build<'s>(&'s self, task: &'s Task, upto: usize) -> BoxFuture<'s, Result<Built>> {
        async move {
            let src = self.open_input(task).await?;
            let source =
                SourceStats { rows: Default::default(), bytes: src.bytes_read.clone(), total_bytes: src.total_bytes };
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
            let site = StepSite { file: self.pipeline_file, task: &task.name };
            for (i, step) in task.steps.iter().take(upto).enumerate() {
                if is_ordered_dedupe(step) {
                    let (s, b, counter) = self.ordered_dedupe(step, schema, batches, steps.len()).await?;
                    schema = s;
                    batches = b;
                    steps.push(counter);
                    continue;
                }
                let stats = match fill_strategy_columns(step) {
                    Some(cols) => Some(self.statistics(task, i, &cols).await?),
                    None => None,
                };
                let compiled = compile(self.engine.context(), step, &schema, stats.as_ref(), &site)?;
                schema = compiled.schema();
                let shared: Shared = Arc::new(Mutex::new(compiled));
                let op = shared.clone();
                batches = batches
                    .map(move |b| b.and_then(|b| op.lock().map_err(|_| Error::engine("step", "poisoned"))?.apply(b)))
                    .boxed();
                steps.push(shared);
            }
            Ok(Built { schema, batches, steps, source })
        }
        .boxed()
    }

    /// First pass for `fill_null` with mean/median/mode: reads the input through the steps before `index`.
    async fn statistics(&self, task: &Task, index: usize, cols: &[(String, FillStrategy)]) -> Result<ColumnStats> {
        let mut built = self.build(task, index).await?;
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
            None => schema.fields().iter().filter(|f| f.name() != &order_by).map(|f| quote_ident(f.name())).collect(),
        };
        let dir = if d.keep == Keep::First { "ASC" } else { "DESC" };
        let all: Vec<String> = schema.fields().iter().map(|f| quote_ident(f.name())).collect();
        let sql = format!(
            "SELECT {cols} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {o} {dir}) AS __weir_rn FROM {name}) WHERE __weir_rn = 1",
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

/// Row counts of a step that runs outside the batch operators.
#[derive(Clone, Default)]
pub struct CountedStream {
    pub rows_in: Arc<std::sync::atomic::AtomicU64>,
    pub rows_out: Arc<std::sync::atomic::AtomicU64>,
}

impl CountedStream {
    fn new() -> Self {
        Self::default()
    }
    fn add_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    fn add_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, Ordering::Relaxed);
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
