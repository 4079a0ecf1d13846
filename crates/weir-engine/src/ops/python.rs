//! `python:` steps: a Python function applied to each batch. The function runs in a worker process
//! (`python_worker.py`, started with `WEIR_PYTHON`, else the active virtualenv's interpreter, else `python3`), so the
//! binary never links Python and a crash of the function cannot take the task's process with it. Batches go to the
//! worker and back as Arrow IPC streams over its stdin and stdout, one batch out for each batch in; the step's
//! output schema is the function's answer on an empty batch, known before the first row.
//!
//! The function sees the user's columns only. weir's hidden source positions (file and line, carried when the task
//! can quarantine rows) stay here and are put back on the answer when it has as many rows as the batch sent (a
//! function that keeps rows in place: adds or changes columns); an answer with another number of rows, and every
//! answer in `mode: table`, has no positions (a later reject names no line rather than a wrong one).

use std::io::{BufReader, BufWriter, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use weir_config::steps::{PythonMode, PythonStep};
use weir_core::{Error, Result};

use super::BatchOp;

const WORKER: &str = include_str!("python_worker.py");

/// What the worker wrote on stderr: each line is logged as it comes (the function's prints), the last 16 KiB are
/// kept for the error when it fails (its traceback).
#[derive(Default)]
struct Stderr {
    kept: Arc<Mutex<Vec<u8>>>,
    /// The thread reading it, joined once the worker has exited so that no line of the traceback is missed.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Stderr {
    const KEEP: usize = 16 * 1024;

    fn drain_from(function: &str, from: impl Read + Send + 'static) -> Stderr {
        let kept: Arc<Mutex<Vec<u8>>> = Default::default();
        let into = kept.clone();
        let function = function.to_string();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(from).split(b'\n') {
                let Ok(line) = line else { break };
                tracing::info!(function = %function, "{}", String::from_utf8_lossy(&line));
                if let Ok(mut k) = into.lock() {
                    k.extend_from_slice(&line);
                    k.push(b'\n');
                    let excess = k.len().saturating_sub(Self::KEEP);
                    k.drain(..excess);
                }
            }
        });
        Stderr { kept, reader: Some(reader) }
    }

    /// The last lines, for an error message (after the worker exited).
    fn tail(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let text = self.kept.lock().map(|k| String::from_utf8_lossy(&k).into_owned()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

/// The interpreter a worker runs on.
pub fn python_interpreter() -> std::ffi::OsString {
    if let Some(p) = std::env::var_os("WEIR_PYTHON") {
        return p;
    }
    match std::env::var_os("VIRTUAL_ENV") {
        Some(venv) => Path::new(&venv).join("bin/python3").into_os_string(),
        None => "python3".into(),
    }
}

pub struct PythonOp {
    function: String,
    /// Called once on the whole input (answers come after the input ended).
    whole_input: bool,
    child: Child,
    /// Batches to the worker (None once closed).
    input: Option<StreamWriter<BufWriter<ChildStdin>>>,
    /// Its answers (None only while starting).
    output: Option<StreamReader<BufReader<ChildStdout>>>,
    /// The function's answers with the hidden position columns after them.
    schema: SchemaRef,
    /// The input's hidden position columns (kept here) and its visible ones (sent).
    hidden: Vec<usize>,
    visible: Vec<usize>,
    stderr: Stderr,
    /// The step, for errors: `pipelines/x.yaml:12: task `t`, step `python``.
    context: String,
}

impl PythonOp {
    /// Starts the worker in `project_dir` for batches of `input` and learns the output schema; `context` names the
    /// step in errors.
    pub fn start(step: &PythonStep, input: &SchemaRef, project_dir: &Path, context: &str) -> Result<PythonOp> {
        let python = python_interpreter();
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(WORKER)
            .env("WEIR_FUNCTION", &step.function)
            .env("WEIR_STEP_INPUT", step.input.as_str())
            .env("WEIR_STEP_MODE", if step.mode == PythonMode::Table { "table" } else { "batch" })
            .current_dir(project_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let hint = "set WEIR_PYTHON to an interpreter with pyarrow, or activate a virtualenv";
                Error::config(Default::default(), format!("{context}: cannot start {}: {e} ({hint})", python.display()))
            })?;
        let stderr = match child.stderr.take() {
            Some(err) => Stderr::drain_from(&step.function, err),
            None => Stderr::default(),
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::engine(context, "the worker's pipes are missing"));
        };
        let (hidden, visible) = (super::hidden_columns(input), super::visible_columns(input));
        let sent = Arc::new(input.project(&visible).map_err(|e| Error::engine(context, e.to_string()))?);
        let writer = StreamWriter::try_new(BufWriter::new(stdin), &sent)
            .and_then(|mut w| w.flush().map(|_| w))
            .map_err(|e| Error::engine(context, format!("send the schema to the worker: {e}")))?;
        let mut op = PythonOp {
            function: step.function.clone(),
            whole_input: step.mode == PythonMode::Table,
            child,
            input: Some(writer),
            output: None,
            schema: sent,
            hidden,
            visible,
            stderr,
            context: context.to_string(),
        };
        let output = StreamReader::try_new(BufReader::new(stdout), None).map_err(|e| op.failure("start", e))?;
        let answers = output.schema();
        let positions = op.hidden.iter().map(|&i| Arc::new(input.field(i).clone().with_nullable(true)));
        let fields: Vec<Arc<Field>> = answers.fields().iter().cloned().chain(positions).collect();
        op.schema = Arc::new(Schema::new_with_metadata(fields, answers.metadata().clone()));
        op.output = Some(output);
        Ok(op)
    }

    /// The error for a worker that stopped answering: what it wrote on stderr (its traceback), or how it ended.
    fn failure(&mut self, doing: &str, e: impl std::fmt::Display) -> Error {
        self.input = None; // the worker sees the end of its input
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
        let tail = self.stderr.tail();
        let why = if tail.is_empty() { format!("{e} ({status})") } else { tail };
        Error::data(
            Default::default(),
            format!("{}: python function `{}` failed to {doing}: {why}", self.context, self.function),
        )
    }
}

impl BatchOp for PythonOp {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let answers = self.answers()?;
        answers.into_iter().map(|answer| self.with_positions(answer, None)).collect()
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let visible = batch.project(&self.visible).map_err(|e| Error::engine(self.context.clone(), e.to_string()))?;
        let sent = match self.input.as_mut() {
            Some(w) => w.write(&visible).and_then(|_| w.flush()),
            None => return Err(Error::engine(self.context.clone(), "the worker's input is closed")),
        };
        if let Err(e) = sent {
            return Err(self.failure("read a batch", e));
        }
        if self.whole_input {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        let answer = self.output.as_mut().and_then(|r| r.next());
        match answer {
            Some(Ok(out)) => self.with_positions(out, Some(&batch)),
            Some(Err(e)) => Err(self.failure("answer", e)),
            None => Err(self.failure("answer", "it ended without answering")),
        }
    }
}

impl PythonOp {
    /// The answer with the hidden position columns appended: the input batch's when the answer kept its rows in
    /// place (as many rows), nulls otherwise.
    fn with_positions(&self, answer: RecordBatch, input: Option<&RecordBatch>) -> Result<RecordBatch> {
        if self.hidden.is_empty() {
            return Ok(answer);
        }
        let rows = answer.num_rows();
        let kept = input.filter(|b| b.num_rows() == rows);
        let mut columns = answer.columns().to_vec();
        for (n, &i) in self.hidden.iter().enumerate() {
            let field = self.schema.field(answer.num_columns() + n);
            columns.push(match kept {
                Some(b) => b.column(i).clone(),
                None => new_null_array(field.data_type(), rows) as ArrayRef,
            });
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::engine(self.context.clone(), e.to_string()))
    }

    /// With `mode: table`: ends the input, then reads every batch of the answer.
    fn answers(&mut self) -> Result<Vec<RecordBatch>> {
        if !self.whole_input {
            return Ok(Vec::new());
        }
        let ended = match self.input.take() {
            Some(mut w) => w.finish().and_then(|_| w.into_inner().map(drop)),
            None => Ok(()),
        };
        if let Err(e) = ended {
            return Err(self.failure("read its input", e));
        }
        let mut out = Vec::new();
        loop {
            let next = self.output.as_mut().and_then(|r| r.next());
            match next {
                Some(Ok(b)) => out.push(b),
                Some(Err(e)) => return Err(self.failure("answer", e)),
                None if self.output.as_ref().is_some_and(|r| r.is_finished()) => return Ok(out),
                None => return Err(self.failure("answer", "it ended without answering")),
            }
        }
    }
}

impl Drop for PythonOp {
    fn drop(&mut self) {
        // End of input: the worker finishes its stream and exits; one that hangs is killed.
        if let Some(mut w) = self.input.take() {
            let _ = w.finish();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
