//! File sources: CSV, JSON (NDJSON or one top-level array) and Parquet, from a local path or glob.
//!
//! ```yaml
//! source:
//!   type: csv                      # json | ndjson | parquet
//!   path: "landing/orders/{{ ds }}/*.csv"
//!   delimiter: ";"
//!   schema: {amount: "decimal(12,2)"}   # the other columns are inferred
//! ```
//!
//! Files stream: each is decoded on a blocking thread into record batches of `batch_rows` rows, and the next files are
//! decoded ahead in parallel while the current one is consumed, so batches still come out in file order. A file is
//! never held in memory whole. Errors name the file and, for CSV, the line, the column and the value.
//!
//! With `on_error: quarantine` (CSV and NDJSON), records that cannot be read are set aside for the task's quarantine
//! instead of failing the run (see `tolerant`).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use weir_config::{from_node, Diagnostic, Node};
use weir_core::error::Location;
use weir_core::position::{SOURCE_FILE_COLUMN, SOURCE_LINE_COLUMN};
use weir_core::{Error, Result};

use crate::connector::{BatchSource, SourceKind, SourceRun, SourceStream};
use crate::tolerant::SourceRejects;
use crate::types::parse_type;
use futures::future::BoxFuture;

/// What a file source does with a record it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceOnError {
    /// Stop the task, naming the file, line, column and value (default).
    #[default]
    Fail,
    /// Set the record aside in the task's quarantine with its line and reason, and go on.
    Quarantine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileFormat {
    #[default]
    Csv,
    Json,
    Parquet,
}

fn yes() -> bool {
    true
}

fn default_infer_rows() -> usize {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// File path or glob (`*`, `**`, `?`), relative to the project folder. Files are read in sorted order.
    pub path: String,
    /// CSV: the first line holds column names.
    #[serde(default = "yes")]
    pub has_header: bool,
    /// CSV: field separator (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// CSV: quote character (default `"`).
    #[serde(default)]
    pub quote: Option<char>,
    /// CSV: escape character inside quoted fields (default: doubled quotes).
    #[serde(default)]
    pub escape: Option<char>,
    /// CSV: lines starting with this character are skipped.
    #[serde(default)]
    pub comment: Option<char>,
    /// Column types that override inference, as `column: type` (`bigint`, `double`, `decimal(12,2)`, `date`...).
    #[serde(default)]
    pub schema: Option<BTreeMap<String, String>>,
    /// Infer column types from the data (default). `false` reads every column as text, the safe choice for a raw zone.
    #[serde(default = "yes")]
    pub infer_types: bool,
    /// Rows sampled to infer types.
    #[serde(default = "default_infer_rows")]
    pub infer_rows: usize,
    /// Text values read as null (CSV; default: empty fields).
    #[serde(default)]
    pub null_values: Option<Vec<String>>,
    /// `fail` (default) or `quarantine` (CSV and NDJSON): what a record that cannot be read does.
    #[serde(default)]
    pub on_error: SourceOnError,
    #[serde(skip)]
    pub format: FileFormat,
    /// The `type:` it was read from (`ndjson` and `json` are one format).
    #[serde(skip)]
    pub kind: &'static str,
}

const CSV_ONLY: &[&str] = &["has_header", "delimiter", "quote", "escape", "comment", "null_values"];

fn ascii(c: Option<char>, what: &str, node: &Node, diags: &mut Vec<Diagnostic>) {
    if let Some(c) = c {
        if !c.is_ascii() {
            diags.push(Diagnostic::at(node.get(what).unwrap_or(node), format!("`{what}` must be one ASCII character")));
        }
    }
}

/// `type: csv`, `json`, `ndjson` and `parquet`.
pub const CSV: SourceKind = SourceKind { name: "csv", parse: |n| boxed(n, FileFormat::Csv, "csv") };
pub const JSON: SourceKind = SourceKind { name: "json", parse: |n| boxed(n, FileFormat::Json, "json") };
pub const NDJSON: SourceKind = SourceKind { name: "ndjson", parse: |n| boxed(n, FileFormat::Json, "ndjson") };
pub const PARQUET: SourceKind = SourceKind { name: "parquet", parse: |n| boxed(n, FileFormat::Parquet, "parquet") };

fn boxed(node: &Node, format: FileFormat, kind: &'static str) -> Result<Box<dyn BatchSource>, Vec<Diagnostic>> {
    let cfg = FileSourceConfig::parse(node, format)?;
    Ok(Box::new(FileSourceConfig { kind, ..cfg }))
}

impl BatchSource for FileSourceConfig {
    fn kind(&self) -> &str {
        self.kind
    }

    fn reads(&self) -> String {
        self.path.clone()
    }

    fn known_columns(&self, project_dir: &Path) -> Option<Vec<String>> {
        let files = self.files(project_dir).ok()?;
        Some(self.infer_schema(&files).ok()?.fields().iter().map(|f| f.name().clone()).collect())
    }

    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>> {
        let opened = self.open_with_positions(run.connector.project_dir, run.connector.batch_rows, run.positions);
        Box::pin(async move { opened })
    }
}

impl FileSourceConfig {
    pub fn parse(node: &Node, format: FileFormat) -> Result<Self, Vec<Diagnostic>> {
        let mut cfg: FileSourceConfig = from_node(node, &["type"])?;
        cfg.format = format;
        let mut diags = Vec::new();
        if format != FileFormat::Csv {
            for key in CSV_ONLY {
                if let Some(n) = node.get(key) {
                    diags.push(Diagnostic::at(n, format!("`{key}` only applies to csv sources")));
                }
            }
        }
        if format == FileFormat::Parquet && cfg.on_error == SourceOnError::Quarantine {
            let at = node.get("on_error").unwrap_or(node);
            diags.push(Diagnostic::at(
                at,
                "`on_error: quarantine` applies to csv and ndjson sources; parquet files are typed",
            ));
        }
        if format == FileFormat::Parquet && node.get("schema").is_some() {
            diags.push(Diagnostic::at(node, "parquet files carry their own schema; use a `cast` step to change types"));
        }
        for (k, c) in
            [("delimiter", cfg.delimiter), ("quote", cfg.quote), ("escape", cfg.escape), ("comment", cfg.comment)]
        {
            ascii(c, k, node, &mut diags);
        }
        for (col, ty) in cfg.schema.iter().flatten() {
            if let Err(e) = parse_type(ty) {
                let at = node.get("schema").and_then(|s| s.get(col)).unwrap_or(node);
                diags.push(Diagnostic::at(at, format!("column `{col}`: {e}")));
            }
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }

    /// The files the path matches, sorted. None is an error: the data a run expects is not there.
    pub fn files(&self, base: &Path) -> Result<Vec<PathBuf>> {
        let pattern =
            if Path::new(&self.path).is_absolute() { PathBuf::from(&self.path) } else { base.join(&self.path) };
        let pattern_str = pattern.to_string_lossy().into_owned();
        let loc = Location { file: Some(pattern.clone()), ..Default::default() };
        let paths =
            glob::glob(&pattern_str).map_err(|e| Error::config(loc.clone(), format!("bad glob pattern: {e}")))?;
        let mut files: Vec<PathBuf> = paths.filter_map(|p| p.ok()).filter(|p| p.is_file()).collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::data(loc, "no file matches this path"));
        }
        Ok(files)
    }

    fn csv_format(&self) -> Result<Format> {
        let mut f = Format::default().with_header(self.has_header);
        if let Some(d) = self.delimiter {
            f = f.with_delimiter(d as u8);
        }
        if let Some(q) = self.quote {
            f = f.with_quote(q as u8);
        }
        if let Some(e) = self.escape {
            f = f.with_escape(e as u8);
        }
        if let Some(c) = self.comment {
            f = f.with_comment(c as u8);
        }
        if let Some(re) = self.null_regex()? {
            f = f.with_null_regex(re);
        }
        Ok(f)
    }

    fn null_regex(&self) -> Result<Option<regex::Regex>> {
        let Some(nulls) = &self.null_values else { return Ok(None) };
        let alternatives: Vec<String> = nulls.iter().map(|s| regex::escape(s)).collect();
        regex::Regex::new(&format!("^(?:{})$", alternatives.join("|")))
            .map(Some)
            .map_err(|e| Error::engine("null_values", e))
    }

    fn csv_settings(&self) -> crate::tolerant::CsvSettings {
        crate::tolerant::CsvSettings {
            has_header: self.has_header,
            delimiter: self.delimiter.map(|c| c as u8).unwrap_or(b','),
            quote: self.quote.map(|c| c as u8).unwrap_or(b'"'),
            escape: self.escape.map(|c| c as u8),
            comment: self.comment.map(|c| c as u8),
            null_values: self.null_values.clone(),
        }
    }

    /// The schema of the data: inferred from the first file, with `schema:` overrides applied.
    pub fn infer_schema(&self, files: &[PathBuf]) -> Result<SchemaRef> {
        let first = &files[0];
        let open = || File::open(first).map_err(|e| Error::io(format!("open {}", first.display()), e));
        let tolerant = self.on_error == SourceOnError::Quarantine;
        let hint = if tolerant || self.format == FileFormat::Parquet {
            ""
        } else {
            " (`on_error: quarantine` on the source sets such records aside and loads the rest)"
        };
        let file_err = |e: ArrowError| {
            Error::data(Location { file: Some(first.clone()), ..Default::default() }, format!("{e}{hint}"))
        };
        let inferred = match self.format {
            // With `on_error: quarantine`, types are inferred from the records that read, not stopped by the others.
            FileFormat::Csv if tolerant => {
                let rows = if self.infer_types { self.infer_rows } else { 0 };
                let sample = crate::tolerant::csv_sample(open()?, &self.csv_settings(), rows)?;
                let mut format = Format::default().with_header(self.has_header);
                if let Some(re) = self.null_regex()? {
                    format = format.with_null_regex(re);
                }
                format.infer_schema(sample.as_slice(), Some(rows)).map_err(file_err)?.0
            }
            FileFormat::Json if tolerant => {
                let reader = json_reader(open()?).map_err(|e| Error::io(format!("read {}", first.display()), e))?;
                let sample = crate::tolerant::ndjson_sample(reader, self.infer_rows)?;
                arrow::json::reader::infer_json_schema(sample.as_slice(), Some(self.infer_rows)).map_err(file_err)?.0
            }
            FileFormat::Csv => {
                let rows = if self.infer_types { Some(self.infer_rows) } else { Some(0) };
                self.csv_format()?.infer_schema(open()?, rows).map_err(file_err)?.0
            }
            FileFormat::Json => {
                let reader = json_reader(open()?).map_err(|e| Error::io(format!("read {}", first.display()), e))?;
                arrow::json::reader::infer_json_schema(reader, Some(self.infer_rows)).map_err(file_err)?.0
            }
            FileFormat::Parquet => {
                let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open()?)
                    .map_err(|e| file_err(ArrowError::ExternalError(Box::new(e))))?;
                b.schema().as_ref().clone()
            }
        };
        if inferred.fields().is_empty() {
            return Err(Error::data(
                Location { file: Some(first.clone()), ..Default::default() },
                "the file has no columns (is it empty?)",
            ));
        }
        let overrides = self.schema.clone().unwrap_or_default();
        for col in overrides.keys() {
            if inferred.index_of(col).is_err() {
                return Err(Error::config(
                    Location { file: Some(first.clone()), ..Default::default() },
                    format!(
                        "`schema` names column `{col}`, which the file does not have; columns are: {}",
                        inferred.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let fields: Vec<Field> = inferred
            .fields()
            .iter()
            .map(|f| {
                let t = match overrides.get(f.name()) {
                    Some(t) => parse_type(t).map_err(|e| Error::config(Location::default(), e))?,
                    None if !self.infer_types && self.format != FileFormat::Parquet => DataType::Utf8,
                    None => f.data_type().clone(),
                };
                Ok(Field::new(f.name(), t, true))
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }

    /// Opens the files as one stream of batches in file order. Must be called inside a Tokio runtime.
    pub fn open(&self, base: &Path, batch_rows: usize) -> Result<SourceStream> {
        self.open_with_positions(base, batch_rows, false)
    }

    /// Like [`FileSourceConfig::open`]; with `positions`, every batch also carries the hidden source file and line
    /// columns (see `weir_core::position`), for the quarantine to say where a rejected row came from.
    pub fn open_with_positions(&self, base: &Path, batch_rows: usize, positions: bool) -> Result<SourceStream> {
        let files = self.files(base)?;
        let data_schema = self.infer_schema(&files)?;
        let schema = if positions {
            let mut fields: Vec<Field> = data_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(
                SOURCE_FILE_COLUMN,
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ));
            fields.push(Field::new(SOURCE_LINE_COLUMN, DataType::UInt64, true));
            Arc::new(Schema::new(fields))
        } else {
            data_schema.clone()
        };
        let total_bytes = files.iter().map(|f| f.metadata().map(|m| m.len()).unwrap_or(0)).sum();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let rejects = (self.on_error == SourceOnError::Quarantine).then(SourceRejects::default);
        let job = DecodeJob {
            cfg: Arc::new(self.clone()),
            schema: data_schema,
            positions: positions.then(|| schema.clone()),
            batch_rows,
            bytes_read: bytes_read.clone(),
            rejects: rejects.clone(),
        };
        let lookahead = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
        let batches = ordered_prefetch(files, lookahead, move |path| job.clone().spawn(path));
        Ok(SourceStream { schema, batches, total_bytes: Some(total_bytes), bytes_read, rejects, checkpoint: None })
    }
}

/// Consumes per-file channels in file order while up to `lookahead` files decode at once.
fn ordered_prefetch<F>(
    files: Vec<PathBuf>,
    lookahead: usize,
    spawn: F,
) -> futures::stream::BoxStream<'static, Result<RecordBatch>>
where
    F: Fn(PathBuf) -> mpsc::Receiver<Result<RecordBatch>> + Send + 'static,
{
    let state = (files.into_iter(), VecDeque::new(), spawn);
    futures::stream::unfold(state, move |(mut pending, mut running, spawn)| async move {
        loop {
            while running.len() < lookahead {
                match pending.next() {
                    Some(path) => running.push_back(spawn(path)),
                    None => break,
                }
            }
            let rx: &mut mpsc::Receiver<Result<RecordBatch>> = running.front_mut()?;
            match rx.recv().await {
                Some(item) => return Some((item, (pending, running, spawn))),
                None => {
                    running.pop_front();
                }
            }
        }
    })
    .boxed()
}

#[derive(Clone)]
struct DecodeJob {
    cfg: Arc<FileSourceConfig>,
    schema: SchemaRef,
    /// The output schema with position columns, when they are asked for.
    positions: Option<SchemaRef>,
    batch_rows: usize,
    bytes_read: Arc<AtomicU64>,
    /// Set when `on_error: quarantine`: records that cannot be read go here.
    rejects: Option<SourceRejects>,
}

impl DecodeJob {
    fn spawn(self, path: PathBuf) -> mpsc::Receiver<Result<RecordBatch>> {
        let (tx, rx) = mpsc::channel(2);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = self.decode(&path, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }

    fn decode(&self, path: &Path, tx: &mpsc::Sender<Result<RecordBatch>>) -> Result<()> {
        let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let counted = CountingReader { inner: file, count: self.bytes_read.clone() };
        // The first record's line: after the header for CSV; records count from 1 otherwise.
        let mut next_line: u64 = if self.cfg.format == FileFormat::Csv && self.cfg.has_header { 2 } else { 1 };
        let file_name = path.display().to_string();
        // `lines`: the line of each record when the reader knows it; else records are counted from the first line.
        let mut send = |b: RecordBatch, lines: Option<arrow::array::UInt64Array>| {
            let b = match &self.positions {
                None => b,
                Some(schema) => {
                    let n = b.num_rows();
                    let keys = arrow::array::Int32Array::from(vec![0; n]);
                    let values: arrow::array::ArrayRef =
                        Arc::new(arrow::array::StringArray::from(vec![file_name.as_str()]));
                    let files =
                        arrow::array::DictionaryArray::try_new(keys, values).map_err(|e| file_data_error(path, e));
                    let lines = lines.unwrap_or_else(|| {
                        arrow::array::UInt64Array::from_iter_values(next_line..next_line + n as u64)
                    });
                    next_line += n as u64;
                    let mut cols = b.columns().to_vec();
                    let with = files.and_then(|f| {
                        cols.push(Arc::new(f));
                        cols.push(Arc::new(lines));
                        RecordBatch::try_new(schema.clone(), cols).map_err(|e| file_data_error(path, e))
                    });
                    match with {
                        Ok(b) => b,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return false;
                        }
                    }
                }
            };
            tx.blocking_send(Ok(b)).is_ok()
        };
        if let Some(rejects) = &self.rejects {
            let mut emit = |t: crate::tolerant::TolerantBatch| send(t.batch, Some(t.lines));
            return match self.cfg.format {
                FileFormat::Csv => {
                    self.check_csv_header(path)?;
                    let settings = self.cfg.csv_settings();
                    let input = BufReader::with_capacity(1 << 20, counted);
                    let (schema, n) = (&self.schema, self.batch_rows);
                    crate::tolerant::read_csv(input, &file_name, schema, &settings, n, rejects, &mut emit)
                }
                FileFormat::Json => {
                    let input = json_reader(counted).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
                    crate::tolerant::read_ndjson(input, &file_name, &self.schema, self.batch_rows, rejects, &mut emit)
                }
                FileFormat::Parquet => Err(file_data_error(path, "on_error: quarantine does not apply to parquet")),
            };
        }
        match self.cfg.format {
            FileFormat::Csv => {
                self.check_csv_header(path)?;
                let reader = arrow::csv::ReaderBuilder::new(self.schema.clone())
                    .with_format(self.cfg.csv_format()?)
                    .with_batch_size(self.batch_rows)
                    .build_buffered(BufReader::with_capacity(1 << 20, counted))
                    .map_err(|e| csv_error(path, &self.schema, e))?;
                for b in reader {
                    if !send(b.map_err(|e| csv_error(path, &self.schema, e))?, None) {
                        break;
                    }
                }
            }
            FileFormat::Json => {
                let buffered = json_reader(counted).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
                let reader = arrow::json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(self.batch_rows)
                    .build(buffered)
                    .map_err(|e| file_data_error(path, e))?;
                for b in reader {
                    if !send(b.map_err(|e| file_data_error(path, e))?, None) {
                        break;
                    }
                }
            }
            FileFormat::Parquet => {
                let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(counted.inner)
                    .map_err(|e| file_data_error(path, e))?;
                if builder.schema().fields() != self.schema.fields() {
                    return Err(file_data_error(
                        path,
                        format!(
                            "schema differs from the first file's: {:?} vs {:?}",
                            builder
                                .schema()
                                .fields()
                                .iter()
                                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                                .collect::<Vec<_>>(),
                            self.schema
                                .fields()
                                .iter()
                                .map(|f| format!("{}: {}", f.name(), f.data_type()))
                                .collect::<Vec<_>>()
                        ),
                    ));
                }
                let reader = builder.with_batch_size(self.batch_rows).build().map_err(|e| file_data_error(path, e))?;
                for b in reader {
                    let b = b.map_err(|e| file_data_error(path, e))?;
                    self.bytes_read.fetch_add(b.get_array_memory_size() as u64, Ordering::Relaxed);
                    if !send(b, None) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every file of a glob must have the columns of the first one, in the same order.
    fn check_csv_header(&self, path: &Path) -> Result<()> {
        if !self.cfg.has_header {
            return Ok(());
        }
        let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let (found, _) = self.cfg.csv_format()?.infer_schema(file, Some(0)).map_err(|e| file_data_error(path, e))?;
        let found: Vec<&str> = found.fields().iter().map(|f| f.name().as_str()).collect();
        let expected: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
        if found != expected {
            return Err(Error::data(
                Location { file: Some(path.to_path_buf()), line: Some(1), column: None },
                format!("header has columns [{}], but the first file has [{}]", found.join(", "), expected.join(", ")),
            ));
        }
        Ok(())
    }
}

fn file_data_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::data(Location { file: Some(path.to_path_buf()), ..Default::default() }, e.to_string())
}

/// Turns arrow-csv's "Error while parsing value 'x' as type 'Int64' for column 2 at line 7" into an error that names
/// the file, the 1-based line, the column by name and the value.
fn csv_error(path: &Path, schema: &Schema, e: ArrowError) -> Error {
    let msg = e.to_string();
    let number_after = |key: &str| -> Option<usize> {
        let rest = &msg[msg.find(key)? + key.len()..];
        rest.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().ok()
    };
    if let (Some(col), Some(line)) = (number_after("for column "), number_after(" at line ")) {
        let value = msg.split("parsing value '").nth(1).and_then(|r| r.split("' as type").next()).unwrap_or("?");
        if let Some(field) = schema.fields().get(col) {
            return Error::data(
                Location { file: Some(path.to_path_buf()), line: Some(line + 1), column: None },
                format!(
                    "column `{}`: value '{value}' is not a valid {} (declare the column's type in `schema:`, e.g. `{}: string`, or fix the row)",
                    field.name(),
                    field.data_type(),
                    field.name()
                ),
            );
        }
    }
    if let Some(line) = number_after("line ") {
        return Error::data(Location { file: Some(path.to_path_buf()), line: Some(line + 1), column: None }, msg);
    }
    file_data_error(path, msg)
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A buffered reader of JSON records: NDJSON as is, and a file holding one top-level array (`[{...}, {...}]`)
/// rewritten on the fly into whitespace-separated records, so neither form is loaded whole.
fn json_reader<R: Read + Send + 'static>(inner: R) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut buffered = BufReader::with_capacity(1 << 20, inner);
    let first = loop {
        let buf = buffered.fill_buf()?;
        if buf.is_empty() {
            break None;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None => {
                let n = buf.len();
                buffered.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            ArrayToRecords { inner: buffered, depth: 0, in_string: false, escaped: false },
        )))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Blanks out the outer `[`, `]` and the commas between top-level elements, keeping every other byte in place.
struct ArrayToRecords<R> {
    inner: R,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl<R: Read> Read for ArrayToRecords<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for b in &mut buf[..n] {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if *b == b'\\' {
                    self.escaped = true;
                } else if *b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match *b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth == 1 {
                        *b = b' ';
                    }
                }
                b']' | b'}' => {
                    if self.depth == 1 {
                        *b = b' ';
                    }
                    self.depth = self.depth.saturating_sub(1);
                }
                b',' if self.depth == 1 => *b = b'\n',
                _ => {}
            }
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for ArrayToRecords<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use weir_config::yaml::parse;

    fn cfg(yaml: &str, format: FileFormat) -> FileSourceConfig {
        FileSourceConfig::parse(&parse(yaml).unwrap(), format).unwrap()
    }

    async fn read_all(c: &FileSourceConfig, base: &Path) -> Result<Vec<RecordBatch>> {
        let s = c.open(base, 2)?;
        let mut out = Vec::new();
        let mut b = s.batches;
        while let Some(x) = b.next().await {
            out.push(x?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn csv_glob_reads_files_in_order_with_inferred_types() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.csv"), "id,name\n3,c\n4,d\n5,e\n").unwrap();
        std::fs::write(dir.path().join("a.csv"), "id,name\n1,a\n2,\"b, quoted\"\n").unwrap();
        let c = cfg("type: csv\npath: '*.csv'\n", FileFormat::Csv);
        let batches = read_all(&c, dir.path()).await.unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(batches[0].column(1).as_string::<i32>().value(1), "b, quoted");
    }

    #[tokio::test]
    async fn a_bad_csv_value_names_file_line_column_and_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("o.csv"), "id,amount\n1,2.5\n2,3.0\n3,abc\n").unwrap();
        let c = cfg("path: o.csv\nschema: {amount: double}\n", FileFormat::Csv);
        let err = read_all(&c, dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("o.csv:4:"), "{err}");
        assert!(err.contains("column `amount`") && err.contains("'abc'"), "{err}");
    }

    #[tokio::test]
    async fn missing_files_and_mismatched_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg("path: 'nothing_*.csv'\n", FileFormat::Csv);
        let err = read_all(&c, dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("no file matches"), "{err}");

        std::fs::write(dir.path().join("a.csv"), "id,name\n1,a\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "id,nom\n2,b\n").unwrap();
        let c = cfg("path: '*.csv'\n", FileFormat::Csv);
        let err = read_all(&c, dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("b.csv:1") && err.contains("[id, nom]"), "{err}");
    }

    #[tokio::test]
    async fn json_arrays_and_ndjson_both_stream() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            "[\n {\"id\": 1, \"tags\": \"x,y\"},\n {\"id\": 2, \"tags\": \"[z]\"}\n]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.json"), "{\"id\": 3, \"tags\": null}\n{\"id\": 4, \"tags\": \"w\"}\n")
            .unwrap();
        let c = cfg("path: '*.json'\n", FileFormat::Json);
        let batches = read_all(&c, dir.path()).await.unwrap();
        let ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
            })
            .collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let tags = batches[0].column_by_name("tags").unwrap().as_string::<i32>();
        assert_eq!(tags.value(0), "x,y");
        assert_eq!(tags.value(1), "[z]");
    }

    #[test]
    fn csv_options_on_other_formats_are_rejected() {
        let node = parse("path: a.json\ndelimiter: ';'\n").unwrap();
        let errs = FileSourceConfig::parse(&node, FileFormat::Json).unwrap_err();
        assert!(errs[0].message.contains("only applies to csv"));
    }
}
