//! The quarantine: rows and values that a task rejected go to the lake table `<table>__rejected` next to its target,
//! never silently away. Each rejected row keeps its original values as JSON text, the rule that rejected it, the
//! reason, the run and where it came from (file and line, when the source knows).
//!
//! Rejects are buffered a few thousand at a time and streamed into a staged Parquet write, which commits right after
//! the target's own commit (and not at all when the task fails). The quarantine partition of a date is replaced on
//! re-run, like the target's, so re-running a day never duplicates its rejects.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringBuilder, UInt64Builder};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_core::position::{SOURCE_FILE_COLUMN, SOURCE_LINE_COLUMN};
use weir_core::{Error, Result};
use weir_lake::{ParquetTableWriter, WriteMode, WriterOptions};

/// What happened to a rejected row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectAction {
    /// The row left the output.
    RowQuarantined,
    /// The row stayed, with this value replaced by null.
    ValueNulled,
    /// The row stayed without this value, whose column is not part of the table.
    ValueDiscarded,
}

impl RejectAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectAction::RowQuarantined => "row_quarantined",
            RejectAction::ValueNulled => "value_nulled",
            RejectAction::ValueDiscarded => "value_discarded",
        }
    }
}

pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
        Field::new("source_file", DataType::Utf8, true),
        Field::new("source_line", DataType::UInt64, true),
        Field::new("record", DataType::Utf8, false),
    ]))
}

/// Where the rejects of one task go.
#[derive(Debug, Clone)]
pub struct RejectTarget {
    /// `<lake>/<zone>/<table>__rejected`.
    pub table_dir: std::path::PathBuf,
    /// The run's partition (`date=2026-03-25`).
    pub partition: String,
    /// Append when the target appends (each run adds data, so each run's rejects are kept); else replace.
    pub append: bool,
}

struct Buffer {
    run_id: String,
    task: String,
    target: Option<RejectTarget>,
    columns: Builders,
    buffered: usize,
    writer: Option<ParquetTableWriter>,
    by_rule: BTreeMap<(String, RejectAction), u64>,
}

struct Builders {
    rule: StringBuilder,
    reason: StringBuilder,
    action: StringBuilder,
    column: StringBuilder,
    value: StringBuilder,
    file: StringBuilder,
    line: UInt64Builder,
    record: StringBuilder,
}

impl Builders {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        rule: &str,
        reason: &str,
        action: RejectAction,
        column: Option<&str>,
        value: Option<&str>,
        file: Option<&str>,
        line: Option<u64>,
        record: &str,
    ) {
        self.rule.append_value(rule);
        self.reason.append_value(reason);
        self.action.append_value(action.as_str());
        self.column.append_option(column);
        self.value.append_option(value);
        self.file.append_option(file);
        self.line.append_option(line);
        self.record.append_value(record);
    }

    fn new() -> Self {
        Builders {
            rule: StringBuilder::new(),
            reason: StringBuilder::new(),
            action: StringBuilder::new(),
            column: StringBuilder::new(),
            value: StringBuilder::new(),
            file: StringBuilder::new(),
            line: UInt64Builder::new(),
            record: StringBuilder::new(),
        }
    }
}

const FLUSH_ROWS: usize = 8192;

/// Collects the rejects of one task; cloned into every step and check that can reject.
#[derive(Clone)]
pub struct Rejects {
    inner: Arc<Mutex<Buffer>>,
}

impl std::fmt::Debug for Rejects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rejects")
    }
}

impl Rejects {
    /// `target` is None for a task without a lake sink: rejects are then only counted.
    pub fn new(run_id: &str, task: &str, target: Option<RejectTarget>) -> Rejects {
        Rejects {
            inner: Arc::new(Mutex::new(Buffer {
                run_id: run_id.to_string(),
                task: task.to_string(),
                target,
                columns: Builders::new(),
                buffered: 0,
                writer: None,
                by_rule: BTreeMap::new(),
            })),
        }
    }

    /// Records the rows of `batch` where `mask` is true. `column` names the offending column, whose original value
    /// is kept as text.
    pub fn record(
        &self,
        batch: &RecordBatch,
        mask: &BooleanArray,
        rule: &str,
        reason: &str,
        column: Option<&str>,
        action: RejectAction,
    ) -> Result<u64> {
        let rejected = filter_record_batch(batch, mask).map_err(|e| Error::engine("quarantine", e))?;
        let n = rejected.num_rows();
        if n == 0 {
            return Ok(0);
        }
        let schema = rejected.schema();
        let text = |name: &str| -> Result<Option<ArrayRef>> {
            match schema.index_of(name) {
                Ok(i) => arrow::compute::cast(rejected.column(i), &DataType::Utf8)
                    .map(Some)
                    .map_err(|e| Error::engine("quarantine", e)),
                Err(_) => Ok(None),
            }
        };
        let values = column.map(text).transpose()?.flatten();
        let files = text(SOURCE_FILE_COLUMN)?;
        let lines = schema.index_of(SOURCE_LINE_COLUMN).ok().map(|i| rejected.column(i).clone());
        let records = records_as_json(&rejected)?;

        let mut b = self.inner.lock().map_err(|_| Error::engine("quarantine", "poisoned"))?;
        *b.by_rule.entry((rule.to_string(), action)).or_insert(0) += n as u64;
        if b.target.is_none() {
            return Ok(n as u64);
        }
        for r in 0..n {
            let value = values.as_ref().filter(|v| v.is_valid(r)).map(|v| v.as_string::<i32>().value(r));
            let file = files.as_ref().filter(|f| f.is_valid(r)).map(|f| f.as_string::<i32>().value(r));
            let line = lines
                .as_ref()
                .filter(|l| l.is_valid(r))
                .map(|l| l.as_primitive::<arrow::datatypes::UInt64Type>().value(r));
            b.columns.push(rule, reason, action, column, value, file, line, &records[r]);
        }
        b.buffered += n;
        if b.buffered >= FLUSH_ROWS {
            b.flush()?;
        }
        Ok(n as u64)
    }

    /// Records the records a source could not read (`on_error: quarantine`) under `rule`.
    pub fn record_source(&self, rule: &str, set_aside: Vec<weir_connect::SourceReject>) -> Result<()> {
        if set_aside.is_empty() {
            return Ok(());
        }
        let mut b = self.inner.lock().map_err(|_| Error::engine("quarantine", "poisoned"))?;
        let action = RejectAction::RowQuarantined;
        *b.by_rule.entry((rule.to_string(), action)).or_insert(0) += set_aside.len() as u64;
        if b.target.is_none() {
            return Ok(());
        }
        for r in &set_aside {
            let (column, value) = (r.column.as_deref(), r.value.as_deref());
            b.columns.push(rule, &r.reason, action, column, value, Some(&r.file), Some(r.line), &r.record);
        }
        b.buffered += set_aside.len();
        if b.buffered >= FLUSH_ROWS {
            b.flush()?;
        }
        Ok(())
    }

    /// Rejected rows (or values) per rule and action so far.
    pub fn counts(&self) -> BTreeMap<(String, RejectAction), u64> {
        self.inner.lock().map(|b| b.by_rule.clone()).unwrap_or_default()
    }

    /// Makes this run's rejects visible. With none, a quarantine partition left by an earlier run of the same date
    /// is replaced by an empty one; a table that never had rejects is not created.
    pub fn commit(&self) -> Result<Option<String>> {
        let mut b = self.inner.lock().map_err(|_| Error::engine("quarantine", "poisoned"))?;
        let Some(target) = b.target.clone() else { return Ok(None) };
        b.flush()?;
        if b.writer.is_none() {
            let stale = target.table_dir.join(&target.partition).exists();
            if !stale || target.append {
                return Ok(None);
            }
            b.writer = Some(open_writer(&target, &b.run_id)?);
        }
        let writer = b.writer.take().ok_or_else(|| Error::engine("quarantine", "no writer"))?;
        writer.commit()?;
        Ok(Some(target.table_dir.display().to_string()))
    }
}

/// On a lake on object storage the quarantine is staged in a local folder like a local lake's (so rejects stream
/// to disk, not memory), and published after the target's commit as a Delta write of the run's partition into
/// `location`. `staged` is what [`Rejects::commit`] returned. Returns the quarantine table when one was written.
pub async fn publish(
    staged: Option<String>,
    target: &RejectTarget,
    location: &weir_lake::TableLocation,
    app_id: String,
) -> Result<Option<String>> {
    use weir_lake::delta::{DeltaTableWriter, DeltaWriteOptions};
    let exists = weir_lake::delta::exists(location).await?;
    // Nothing rejected: only a replaced day or interval with earlier rejects needs a (empty) write.
    if staged.is_none() && !exists {
        return Ok(None);
    }
    let options = DeltaWriteOptions {
        mode: if target.append { WriteMode::Append } else { WriteMode::ReplacePartitions },
        partition_by: Vec::new(),
        static_partition: weir_lake::partition::parse_static(&target.partition)
            .map_err(|e| Error::config(Default::default(), e))?,
        compression: parquet::basic::Compression::SNAPPY,
        row_group_rows: 1 << 20,
        target_file_size: 128 << 20,
        app_id,
        replace_interval: true,
        keys: Vec::new(),
        delete_when: None,
        scd2_as_of: None,
        commit_info: Vec::new(),
    };
    // An append of the same interval replaces the rejects its earlier run added (see `DeltaWriteOptions::app_id`).
    let mut writer = DeltaTableWriter::open(location, &rejects_schema(), options).await?;
    for batch in read_staged(staged_files(target)?) {
        writer.write(&batch?).await?;
    }
    writer.commit().await?;
    Ok(Some(location.to_string()))
}

/// The Parquet files of a quarantine staged in a local folder.
pub fn staged_files(target: &RejectTarget) -> Result<Vec<std::path::PathBuf>> {
    let pattern = format!("{}/**/*.parquet", target.table_dir.display());
    Ok(glob::glob(&pattern).map_err(|e| Error::engine("quarantine", e))?.flatten().collect())
}

/// The rejects in `files`, a batch at a time.
pub fn read_staged(files: Vec<std::path::PathBuf>) -> impl Iterator<Item = Result<RecordBatch>> + Send {
    files.into_iter().flat_map(|file| {
        let reader =
            std::fs::File::open(&file).map_err(|e| Error::io(format!("read {}", file.display()), e)).and_then(|open| {
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(open)
                    .and_then(|b| b.build())
                    .map_err(|e| Error::engine("quarantine", e))
            });
        let batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = match reader {
            Ok(r) => Box::new(r.map(|b| b.map_err(|e| Error::engine("quarantine", e)))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        };
        batches
    })
}

fn open_writer(target: &RejectTarget, run_id: &str) -> Result<ParquetTableWriter> {
    let options = WriterOptions {
        mode: if target.append { WriteMode::Append } else { WriteMode::ReplacePartitions },
        static_partition: Some(target.partition.clone()),
        // Concurrent runs of one task (several dates at once) share the quarantine table.
        wait_for_lock: Some(std::time::Duration::from_secs(600)),
        ..Default::default()
    };
    ParquetTableWriter::open(&target.table_dir, rejects_schema(), options, run_id)
}

impl Buffer {
    fn flush(&mut self) -> Result<()> {
        if self.buffered == 0 {
            return Ok(());
        }
        let Some(target) = self.target.clone() else { return Ok(()) };
        let n = self.buffered;
        let c = &mut self.columns;
        let run_id: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![self.run_id.as_str(); n]));
        let task: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![self.task.as_str(); n]));
        let cols: Vec<ArrayRef> = vec![
            run_id,
            task,
            Arc::new(c.rule.finish()),
            Arc::new(c.reason.finish()),
            Arc::new(c.action.finish()),
            Arc::new(c.column.finish()),
            Arc::new(c.value.finish()),
            Arc::new(c.file.finish()),
            Arc::new(c.line.finish()),
            Arc::new(c.record.finish()),
        ];
        let batch = RecordBatch::try_new(rejects_schema(), cols).map_err(|e| Error::engine("quarantine", e))?;
        self.buffered = 0;
        if self.writer.is_none() {
            self.writer = Some(open_writer(&target, &self.run_id)?);
        }
        match self.writer.as_mut() {
            Some(w) => w.write(&batch),
            None => Ok(()),
        }
    }
}

/// One JSON object per row with the row's visible columns, values as they were when rejected.
pub(crate) fn records_as_json(batch: &RecordBatch) -> Result<Vec<String>> {
    let visible =
        batch.project(&crate::ops::visible_columns(&batch.schema())).map_err(|e| Error::engine("quarantine", e))?;
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer.write(&visible).map_err(|e| Error::engine("quarantine", e))?;
    writer.finish().map_err(|e| Error::engine("quarantine", e))?;
    let text = String::from_utf8(writer.into_inner()).map_err(|e| Error::engine("quarantine", e))?;
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.len() != batch.num_rows() {
        return Err(Error::engine("quarantine", "row count changed while encoding rejected rows"));
    }
    Ok(lines)
}
