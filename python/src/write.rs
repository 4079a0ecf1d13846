//! Writing an Arrow stream from Python (a Polars or pandas frame, a pyarrow table or reader, anything with
//! `__arrow_c_stream__`) to a lake table with the contract, checks and quarantine of a pipeline's lake sink: the
//! write is a one-task pipeline whose source is the stream (`type: python_stream`, one file: this one), planned and
//! run by the same `TaskRunner` as `weir run`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use futures::future::BoxFuture;
use pyo3::PyResult;
use serde::Deserialize;
use weir_config::{from_node, Pipeline};
use weir_connect::connector::{SourceKind, SourceStream};
use weir_connect::{BatchSource, Registry, SourceRun};
use weir_core::{Error, Result, RunContext};
use weir_engine::{Engine, TaskReport, TaskRunner};

type Reader = Box<dyn RecordBatchReader + Send>;

/// Streams handed over by `write` until the task opens its source, by id.
fn pending() -> &'static Mutex<HashMap<u64, Reader>> {
    static PENDING: std::sync::OnceLock<Mutex<HashMap<u64, Reader>>> = std::sync::OnceLock::new();
    PENDING.get_or_init(Default::default)
}

/// `type: python_stream`: the stream `write` was given, read once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PythonStream {
    stream: u64,
}

const PYTHON_STREAM: SourceKind = SourceKind {
    name: "python_stream",
    parse: |node| from_node::<PythonStream>(node, &["type"]).map(|s| Box::new(s) as Box<dyn BatchSource>),
};

impl BatchSource for PythonStream {
    fn kind(&self) -> &str {
        "python_stream"
    }

    fn reads(&self) -> String {
        "a Python Arrow stream".to_string()
    }

    fn open<'a>(&'a self, _run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>> {
        Box::pin(async move {
            let reader = pending().lock().ok().and_then(|mut p| p.remove(&self.stream)).ok_or_else(|| {
                Error::config(Default::default(), "the Python stream was read already (it can be read once)")
            })?;
            let given = reader.schema();
            let schema = plain_schema(&given);
            let cast_to = (schema != given).then(|| schema.clone());
            // The producer may be Python code (a generator behind pyarrow): it runs on a thread of its own, outside
            // the runtime, and takes the GIL when it needs it.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
            std::thread::Builder::new()
                .name("weir-python-read".into())
                .spawn(move || {
                    for (i, batch) in reader.enumerate() {
                        let batch = batch.and_then(|b| match &cast_to {
                            Some(schema) => cast_batch(&b, schema),
                            None => Ok(b),
                        });
                        let batch = batch.map_err(|e| {
                            Error::data(Default::default(), format!("the data given to write: batch {}: {e}", i + 1))
                        });
                        let stop = batch.is_err();
                        if tx.blocking_send(batch).is_err() || stop {
                            return;
                        }
                    }
                })
                .map_err(|e| Error::io("start a thread to read the Python stream", e))?;
            Ok(SourceStream::new(schema, weir_connect::connector::batches_from(rx)))
        })
    }
}

/// The schema a lake table gets for `given`: text and binary as weir's sources produce them (`Utf8`, `Binary`),
/// whatever encoding the producer chose (Polars sends string views, pandas large strings, categoricals are
/// dictionaries), so that a table written from Polars and appended to from pandas keeps one schema.
fn plain_schema(given: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> =
        given.fields().iter().map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type()))).collect();
    Arc::new(Schema::new_with_metadata(fields, given.metadata().clone()))
}

fn plain_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, values) => plain_type(values),
        other => other.clone(),
    }
}

fn cast_batch(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// Takes the stream back when the write ends before its source was opened (a planning error).
struct Handover(u64);

impl Drop for Handover {
    fn drop(&mut self) {
        if let Ok(mut p) = pending().lock() {
            p.remove(&self.0);
        }
    }
}

/// Writes `reader` to the lake of the project in `project_dir`; `sink_json` is a lake sink block and `checks_json`
/// a task's checks, both as JSON (YAML's subset), as the Python wrapper built them from its arguments.
pub async fn write(project_dir: &Path, reader: Reader, sink_json: &str, checks_json: &str) -> PyResult<TaskReport> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let project = weir::run::load_project(project_dir).map_err(crate::exit_error)?;
    let sink: serde_json::Value = serde_json::from_str(sink_json).map_err(|e| crate::core_error(bad_argument(e)))?;
    let checks: serde_json::Value =
        serde_json::from_str(checks_json).map_err(|e| crate::core_error(bad_argument(e)))?;
    let document = serde_json::json!({
        "version": 1,
        "tasks": [{
            "name": "write",
            "source": {"type": "python_stream", "stream": id},
            "checks": checks,
            "sink": sink,
        }],
    });
    // Each write is an interval of its own (the moment it starts) of a pipeline of its own (`write-<run id>`): an
    // append adds its rows every time, where a pipeline's append of the same interval would replace its earlier rows.
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let file = Path::new(&format!("write-{run_id}")).to_path_buf();
    let now = chrono::Utc::now().naive_utc();
    let run = RunContext::for_interval(now, now, run_id);
    // Errors name the call (`write("raw.orders")`), not the one-task pipeline it became, nor places in its JSON.
    let call = format!("write({:?})", sink.get("table").and_then(|t| t.as_str()).unwrap_or_default());
    let report = |d: Vec<weir_config::Diagnostic>| {
        let problems: Vec<String> = d
            .iter()
            .map(|d| match &d.hint {
                Some(hint) => format!("{}\n    hint: {hint}", d.message),
                None => d.message.clone(),
            })
            .collect();
        match problems.as_slice() {
            [one] => crate::ConfigError::new_err(format!("{call}: {one}")),
            many => crate::ConfigError::new_err(format!("{call}: {} problems:\n{}", many.len(), many.join("\n"))),
        }
    };
    let pipeline = Pipeline::parse(&file, &document.to_string(), &project.models_dir(), &run).map_err(report)?;
    let registry = Registry::builtin().with_source(PYTHON_STREAM);
    let plan = weir_engine::plan::plan(&pipeline, &registry).map_err(report)?;
    let _handover = Handover(id);
    pending().lock().map_err(|_| crate::WeirError::new_err("the stream registry is poisoned"))?.insert(id, reader);
    let engine = Engine::for_project(&project).map_err(crate::core_error)?;
    let runner =
        TaskRunner { project: &project, pipeline_file: &file, run: &run, engine: &engine, full_refresh: false };
    let synthetic = file.display().to_string();
    runner.run(&pipeline.tasks[0], plan.task(0), Arc::new(|_| {})).await.map_err(|e| {
        crate::exit_error_as(weir::Exit::from(e), &|message| match message.strip_prefix(&format!("{synthetic}: ")) {
            Some(rest) => format!("{call}: {rest}"),
            None => message.replace(&synthetic, &call),
        })
    })
}

fn bad_argument(e: serde_json::Error) -> Error {
    Error::config(Default::default(), format!("write: {e}"))
}
