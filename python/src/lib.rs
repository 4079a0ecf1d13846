//! `weir._native`: the engine of the `weir` binary as a Python extension module. The Python package (`weir/`) wraps
//! these functions in its `Project` API; each one releases the GIL while the engine works, on one Tokio runtime per
//! process, and turns weir's errors into the package's exceptions (`ConfigError`, `DataError`, `ExternalError`).

mod read;
mod report;
mod write;

use std::path::PathBuf;
use std::sync::OnceLock;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatchReader;

create_exception!(weir._native, WeirError, PyException, "Base class of every error weir raises.");
create_exception!(
    weir._native,
    ConfigError,
    WeirError,
    "Invalid configuration or usage: weir.yaml, a pipeline, a table name, an argument (the CLI's exit code 2)."
);
create_exception!(
    weir._native,
    DataError,
    WeirError,
    "Data that cannot be read, converted or committed as declared, a failed check, or SQL that does not run."
);
create_exception!(
    weir._native,
    ExternalError,
    WeirError,
    "A system outside weir failed: a database, object storage, an HTTP service, a shell command, a timeout."
);

/// The runtime every call runs on (the engine's CPU work and its IO).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        weir::init_logging(0, "text");
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("weir-cpu")
            .enable_all()
            .build()
            .expect("cannot start weir's runtime")
    })
}

/// Runs `future` to its end on the runtime with the GIL released.
fn block_on<F: std::future::Future + Send>(py: Python<'_>, future: F) -> F::Output
where
    F::Output: Send,
{
    py.detach(|| runtime().block_on(future))
}

/// The Python exception for a failed command: its class from the error's kind (or exit code 2), its message the
/// whole chain (`task `x` of pipeline `y` failed: ...`), and for configuration problems every diagnostic, one per line.
fn exit_error(e: weir::Exit) -> PyErr {
    exit_error_as(e, &|message| message)
}

/// [`exit_error`] with its message edited by `edit`.
fn exit_error_as(e: weir::Exit, edit: &dyn Fn(String) -> String) -> PyErr {
    let mut message = format!("{:#}", e.error);
    if let Some(diags) = e.error.downcast_ref::<weir::output::Diagnostics>() {
        let lines: Vec<String> = diags.0.iter().map(ToString::to_string).collect();
        message = format!("{message}:\n{}", lines.join("\n"));
    }
    let message = edit(message);
    let kind = e.error.chain().find_map(|c| c.downcast_ref::<weir_core::Error>());
    match (e.code, kind) {
        (2, _) | (_, Some(weir_core::Error::Config { .. })) => ConfigError::new_err(message),
        (_, Some(weir_core::Error::Data { .. } | weir_core::Error::Sql { .. })) => DataError::new_err(message),
        (_, Some(weir_core::Error::External { .. } | weir_core::Error::Io { .. })) => ExternalError::new_err(message),
        _ => WeirError::new_err(message),
    }
}

fn core_error(e: weir_core::Error) -> PyErr {
    exit_error(weir::Exit::from(e))
}

/// `weir ARGS...`: the command line in this process (the `weir` console script); returns its exit code.
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<String>) -> u8 {
    // The command line builds its own runtimes (and handles Ctrl-C itself).
    py.detach(|| weir::cli_run(argv))
}

/// Checks the project; returns what is valid, or raises ConfigError listing every problem with file and line.
#[pyfunction]
fn validate(py: Python<'_>, project: PathBuf) -> PyResult<String> {
    match block_on(py, weir::validate::check(&project)).map_err(exit_error)? {
        Ok(summary) => Ok(summary),
        Err(diags) => Err(exit_error(weir::output::report_diagnostics(&diags))),
    }
}

/// Runs a pipeline for one interval; returns the task reports as JSON.
#[pyfunction(name = "run")]
#[pyo3(signature = (project, pipeline, date=None, tasks=Vec::new(), full_refresh=false, no_retries=false))]
fn run_pipeline(
    py: Python<'_>,
    project: PathBuf,
    pipeline: String,
    date: Option<String>,
    tasks: Vec<String>,
    full_refresh: bool,
    no_retries: bool,
) -> PyResult<String> {
    let options = weir::run::RunOptions { only: tasks, full_refresh, no_retries };
    let reports = block_on(py, weir::run::run(&project, &pipeline, date.as_deref(), &options)).map_err(exit_error)?;
    Ok(report::tasks_json(&reports))
}

/// Queues a run in the metadata store (`weir trigger`); with `wait`, runs it here until it ends.
#[pyfunction]
#[pyo3(signature = (project, pipeline, date=None, wait=false))]
fn trigger(py: Python<'_>, project: PathBuf, pipeline: String, date: Option<String>, wait: bool) -> PyResult<()> {
    block_on(py, weir::orchestrate::trigger(&project, &pipeline, date.as_deref(), wait, None)).map_err(exit_error)
}

/// Runs a pipeline for every date of a range here (`weir backfill`).
#[pyfunction]
#[pyo3(signature = (project, pipeline, start, end, reprocess="none".to_string(), max_active=2, dry_run=false))]
#[allow(clippy::too_many_arguments)]
fn backfill(
    py: Python<'_>,
    project: PathBuf,
    pipeline: String,
    start: String,
    end: String,
    reprocess: String,
    max_active: usize,
    dry_run: bool,
) -> PyResult<()> {
    let options = weir::orchestrate::BackfillOptions { from: start, to: end, reprocess, max_active, dry_run };
    block_on(py, weir::orchestrate::backfill(&project, &pipeline, options)).map_err(exit_error)
}

/// Runs a stream file (`weir stream`) until its source ends, `max_events`, `until_idle` or Ctrl-C; returns its
/// figures as JSON.
#[pyfunction]
#[pyo3(signature = (project, file, until_idle=None, max_events=None, instance=None))]
fn stream(
    py: Python<'_>,
    project: PathBuf,
    file: PathBuf,
    until_idle: Option<String>,
    max_events: Option<u64>,
    instance: Option<String>,
) -> PyResult<String> {
    let file = if file.is_relative() { project.join(file) } else { file };
    let options = weir::stream::StreamOptions { until_idle, max_events, instance, ..Default::default() };
    let outcome = block_on(py, weir::stream::run(&project, &file, &options)).map_err(exit_error)?;
    Ok(report::stream_json(&outcome))
}

/// Plans `sql` over the lake and returns its rows as an Arrow stream, read batch by batch as the consumer asks.
#[pyfunction]
#[pyo3(signature = (project, sql, as_of=None))]
fn query(py: Python<'_>, project: PathBuf, sql: String, as_of: Option<String>) -> PyResult<PyRecordBatchReader> {
    let reader = block_on(py, read::LakeQuery::start(&project, &sql, as_of.as_deref()))?;
    Ok(PyRecordBatchReader::new(Box::new(reader)))
}

/// Writes an Arrow stream to a lake table as a pipeline's lake sink would (`sink` and `checks` are the task's YAML
/// blocks, as JSON); returns the task report as JSON.
#[pyfunction(name = "write")]
fn write_table(
    py: Python<'_>,
    project: PathBuf,
    data: PyRecordBatchReader,
    sink: String,
    checks: String,
) -> PyResult<String> {
    let reader = data.into_reader()?;
    let report = block_on(py, write::write(&project, reader, &sink, &checks))?;
    Ok(report::tasks_json(std::slice::from_ref(&report)))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("WeirError", py.get_type::<WeirError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("DataError", py.get_type::<DataError>())?;
    m.add("ExternalError", py.get_type::<ExternalError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(run_pipeline, m)?)?;
    m.add_function(wrap_pyfunction!(trigger, m)?)?;
    m.add_function(wrap_pyfunction!(backfill, m)?)?;
    m.add_function(wrap_pyfunction!(query, m)?)?;
    m.add_function(wrap_pyfunction!(stream, m)?)?;
    m.add_function(wrap_pyfunction!(write_table, m)?)?;
    Ok(())
}
