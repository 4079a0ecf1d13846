//! Checkpoints of a database extraction: the chunks of an incremental read, ordered by its cursor column, are written
//! to the task's spool folder as they arrive, so a run that is killed halfway resumes from the last chunk instead of
//! reading the table again (the handbook: "if a job dies halfway through, you want partial progress on disk").
//!
//! The read is `ORDER BY cursor`; a chunk ends where the cursor value changes (rows that share the last value of a
//! batch wait for the next one), so "every row up to the watermark is spooled" holds exactly and the resumed query asks
//! for `cursor > watermark OR cursor IS NULL` (PostgreSQL sorts NULLs last, so they are never spooled before the end).
//! Chunks are Arrow IPC files written atomically (`crate::spool_files`), then `state.json` counts them; the engine
//! deletes the folder once the data is committed with its cursor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use weir_core::{Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SpoolState {
    /// The query and schema the chunks belong to.
    fingerprint: String,
    /// Chunks written, numbered from 0.
    chunks: u64,
    rows: u64,
    /// The cursor value of the last spooled row: every row with a smaller or equal cursor is spooled.
    watermark: Option<String>,
}

/// A task's and date's chunk folder: `chunk-000000.arrow`... and `state.json`.
#[derive(Debug)]
pub struct ChunkSpool {
    dir: PathBuf,
    state: SpoolState,
}

impl ChunkSpool {
    /// Opens the spool of `dir`; chunks written for another query or schema are discarded.
    pub fn open(dir: &Path, fingerprint: String) -> Result<ChunkSpool> {
        let state = crate::spool_files::open_state(dir, |s: &SpoolState| s.fingerprint == fingerprint)?;
        let state = state.unwrap_or(SpoolState { fingerprint, ..Default::default() });
        if state.chunks > 0 {
            tracing::info!(chunks = state.chunks, rows = state.rows, dir = %dir.display(), "resuming from the spooled chunks");
        }
        Ok(ChunkSpool { dir: dir.to_path_buf(), state })
    }

    /// The cursor value up to which rows are spooled, when a killed run left chunks.
    pub fn watermark(&self) -> Option<&str> {
        self.state.watermark.as_deref()
    }

    /// Rows in the spooled chunks.
    pub fn rows(&self) -> u64 {
        self.state.rows
    }

    /// The spooled chunks, then the rows of `live` (the rest of the read, ordered by column `cursor`), each chunk
    /// spooled before it is passed on.
    pub fn replay_then_spool(
        mut self,
        schema: SchemaRef,
        mut live: BoxStream<'static, Result<RecordBatch>>,
        cursor: usize,
    ) -> BoxStream<'static, Result<RecordBatch>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        tokio::spawn(async move {
            let result: Result<()> = async {
                for n in 0..self.state.chunks {
                    for batch in self.read_chunk(n)? {
                        if tx.send(Ok(batch)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                let mut carry: Option<RecordBatch> = None;
                while let Some(batch) = live.next().await {
                    let batch = match carry.take() {
                        Some(c) => arrow::compute::concat_batches(&schema, [&c, &batch?])
                            .map_err(|e| Error::engine("spool", e))?,
                        None => batch?,
                    };
                    let split = last_run_start(batch.column(cursor))?;
                    carry = Some(batch.slice(split, batch.num_rows() - split));
                    if split == 0 {
                        continue;
                    }
                    let done = batch.slice(0, split);
                    self.write_chunk(&done, cursor)?;
                    if tx.send(Ok(done)).await.is_err() {
                        return Ok(());
                    }
                }
                // The last rows are not spooled: a resumed read asks for them again.
                if let Some(c) = carry.filter(|c| c.num_rows() > 0) {
                    let _ = tx.send(Ok(c)).await;
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        crate::connector::batches_from(rx)
    }

    fn chunk_file(&self, n: u64) -> PathBuf {
        self.dir.join(format!("chunk-{n:06}.arrow"))
    }

    fn read_chunk(&self, n: u64) -> Result<Vec<RecordBatch>> {
        let path = self.chunk_file(n);
        let file = std::fs::File::open(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let reader = arrow::ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)
            .map_err(|e| Error::data(Default::default(), format!("spooled chunk {}: {e}", path.display())))?;
        reader
            .map(|b| b.map_err(|e| Error::data(Default::default(), format!("spooled chunk {}: {e}", path.display()))))
            .collect()
    }

    fn write_chunk(&mut self, batch: &RecordBatch, cursor: usize) -> Result<()> {
        let path = self.chunk_file(self.state.chunks);
        let failed = |e: arrow::error::ArrowError| Error::engine(format!("spool {}", path.display()), e);
        let mut writer = arrow::ipc::writer::FileWriter::try_new(Vec::new(), &batch.schema()).map_err(failed)?;
        writer.write(batch).map_err(failed)?;
        writer.finish().map_err(failed)?;
        crate::spool_files::write_atomic(&path, &writer.into_inner().map_err(failed)?)?;
        let last = batch.column(cursor).slice(batch.num_rows() - 1, 1);
        self.state.watermark = column_max(last.as_ref())?.or(self.state.watermark.take());
        self.state.chunks += 1;
        self.state.rows += batch.num_rows() as u64;
        let bytes = serde_json::to_vec(&self.state).map_err(|e| Error::engine("spool", e))?;
        crate::spool_files::write_atomic(&self.dir.join("state.json"), &bytes)
    }
}

/// Where the last run of equal values (or of NULLs) of a sorted column begins: the rows before it are complete.
fn last_run_start(column: &ArrayRef) -> Result<usize> {
    let n = column.len();
    if n == 0 {
        return Ok(0);
    }
    let ranges =
        arrow::compute::partition(std::slice::from_ref(column)).map_err(|e| Error::engine("spool", e))?.ranges();
    Ok(ranges.last().map_or(0, |r| r.start))
}

/// The spool folder's fingerprint of a read: its query and the columns it returns.
pub fn fingerprint(sql: &str, schema: &Arc<arrow::datatypes::Schema>) -> String {
    let columns: Vec<String> = schema.fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect();
    format!("{sql}\n{}", columns.join(", "))
}

/// The highest value of a cursor column, as text PostgreSQL reads back in a comparison (ISO 8601 for times).
pub(crate) fn column_max(a: &dyn Array) -> Result<Option<String>> {
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    let s = |v: Option<String>| Ok(v);
    match a.data_type() {
        DataType::Int16 => s(arrow::compute::max(a.as_primitive::<Int16Type>()).map(|v| v.to_string())),
        DataType::Int32 => s(arrow::compute::max(a.as_primitive::<Int32Type>()).map(|v| v.to_string())),
        DataType::Int64 => s(arrow::compute::max(a.as_primitive::<Int64Type>()).map(|v| v.to_string())),
        DataType::Utf8 => s(arrow::compute::max_string(a.as_string::<i32>()).map(str::to_string)),
        DataType::Date32 => s(arrow::compute::max(a.as_primitive::<Date32Type>())
            .and_then(|d| chrono::DateTime::from_timestamp(d as i64 * 86_400, 0))
            .map(|t| t.format("%Y-%m-%d").to_string())),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let fmt = if tz.is_some() { "%Y-%m-%dT%H:%M:%S%.6fZ" } else { "%Y-%m-%dT%H:%M:%S%.6f" };
            s(arrow::compute::max(a.as_primitive::<TimestampMicrosecondType>())
                .and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.format(fmt).to_string()))
        }
        other => Err(Error::config(
            Default::default(),
            format!("incremental: a cursor column must be an integer, text, date or timestamp, not {other}"),
        )),
    }
}
