//! Writes a stream of record batches into a lake table as Parquet, crash-safely.
//!
//! Files are written under a hidden sibling folder `.<table>.weir-staging-<run>/` that no reader lists. `commit()`
//! fsyncs them and swaps each written partition (or the whole table) into place with one atomic rename; a run that
//! dies before that leaves the table exactly as it was, and its staging folder is removed by the next write.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use weir_config::Compression;
use weir_core::{Error, Result};

use crate::atomic::{replace_dir, sync_parent, TableLock};
use crate::partition::{parse_static, Splitter};
use crate::sink::WriteMode;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub mode: WriteMode,
    pub compression: Compression,
    pub row_group_rows: usize,
    pub max_file_rows: usize,
    pub max_file_bytes: usize,
    /// A fixed partition for every row (`date=2026-03-25`).
    pub static_partition: Option<String>,
    /// Columns whose values choose each row's partition.
    pub partition_by: Vec<String>,
    /// How long to wait for another process writing the same table (None: fail at once). weir's own small tables
    /// (check results, quarantine) wait, so concurrent runs share them.
    pub wait_for_lock: Option<std::time::Duration>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            mode: WriteMode::ReplacePartitions,
            compression: Compression::Snappy,
            row_group_rows: 1 << 20,
            max_file_rows: usize::MAX,
            max_file_bytes: 1 << 30,
            static_partition: None,
            partition_by: Vec::new(),
            wait_for_lock: None,
        }
    }
}

/// What a commit changed.
#[derive(Debug, Clone, Default)]
pub struct CommitSummary {
    pub table_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
    pub partitions: Vec<String>,
}

/// The Parquet codec of a configured compression (zstd at level 3).
pub fn parquet_compression(c: Compression) -> Result<PqCompression> {
    Ok(match c {
        Compression::Snappy => PqCompression::SNAPPY,
        Compression::Zstd => PqCompression::ZSTD(ZstdLevel::try_new(3).map_err(pq_err("zstd level"))?),
        Compression::None => PqCompression::UNCOMPRESSED,
    })
}

struct OpenFile {
    writer: ArrowWriter<BufWriter<File>>,
    rows: usize,
}

pub struct ParquetTableWriter {
    table_dir: PathBuf,
    staging: PathBuf,
    options: WriterOptions,
    file_schema: SchemaRef,
    splitter: Option<Splitter>,
    props: WriterProperties,
    run_tag: String,
    open: HashMap<String, OpenFile>,
    /// (partition, staged path) of every finished file.
    finished: Vec<(String, PathBuf)>,
    file_seq: usize,
    rows: u64,
    committed: bool,
    /// Small files kept in the table folder beside the data (its schema history), committed with it.
    table_files: Vec<(String, Vec<u8>)>,
    /// (partition, name, contents): files written into a staged partition before it is swapped in.
    partition_files: Vec<(String, String, Vec<u8>)>,
    _lock: TableLock,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(context, e)
}

fn pq_err(context: &str) -> impl FnOnce(parquet::errors::ParquetError) -> Error + '_ {
    move |e| Error::engine(context, e)
}

impl ParquetTableWriter {
    /// Opens a writer for the table stored at `table_dir`, for rows of `schema`.
    pub fn open(table_dir: &Path, schema: SchemaRef, options: WriterOptions, run_id: &str) -> Result<Self> {
        let parent = table_dir.parent().ok_or_else(|| Error::engine("lake", "table folder has no parent"))?;
        let name = table_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
        let lock = TableLock::acquire_within(&parent.join(format!(".{name}.lock")), options.wait_for_lock)
            .map_err(io_err(format!("lock table {}", table_dir.display())))?;
        // An append that died half-way is rolled back; staging folders of runs that died are garbage: nobody can be
        // using them while we hold the lock.
        AppendJournal::recover(table_dir)?;
        let prefix = format!(".{name}.weir-staging-");
        if let Ok(rd) = std::fs::read_dir(parent) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    restore_asides(&e.path(), table_dir)?;
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        // Unique to this write, not only to the run: a cleared task, a retry and two tasks of one run that append
        // to the same table each name their files apart (a name shared with an earlier append would replace its
        // file). The run's id leads, for whoever reads the folder.
        let run_part: String = run_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
        let run_tag = format!("{run_part}{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let staging = parent.join(format!("{prefix}{run_tag}"));
        std::fs::create_dir_all(&staging).map_err(io_err(format!("create {}", staging.display())))?;

        if let Some(p) = &options.static_partition {
            parse_static(p).map_err(|e| Error::config(Default::default(), e))?;
        }
        let splitter = if options.partition_by.is_empty() {
            None
        } else {
            Some(Splitter::new(&schema, &options.partition_by).map_err(|e| Error::config(Default::default(), e))?)
        };
        let file_schema = splitter.as_ref().map(|s| s.file_schema()).unwrap_or(schema);
        let compression = parquet_compression(options.compression)?;
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_created_by(format!("weir {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(ParquetTableWriter {
            table_dir: table_dir.to_path_buf(),
            staging,
            options,
            file_schema,
            splitter,
            props,
            run_tag,
            open: HashMap::new(),
            finished: Vec::new(),
            file_seq: 0,
            rows: 0,
            committed: false,
            table_files: Vec::new(),
            partition_files: Vec::new(),
            _lock: lock,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        match &self.splitter {
            Some(s) => {
                let parts = s.split(batch).map_err(|e| Error::engine("split batch by partition", e))?;
                for (part, b) in parts {
                    self.write_to(part, &b)?;
                }
                Ok(())
            }
            None => {
                let part = self.options.static_partition.clone().unwrap_or_default();
                self.write_to(part, batch)
            }
        }
    }

    fn write_to(&mut self, partition: String, batch: &RecordBatch) -> Result<()> {
        if !self.open.contains_key(&partition) {
            let file = self.new_file(&partition)?;
            self.open.insert(partition.clone(), file);
        }
        let f = self.open.get_mut(&partition).ok_or_else(|| Error::engine("lake", "writer vanished"))?;
        f.writer.write(batch).map_err(pq_err("write parquet"))?;
        f.rows += batch.num_rows();
        let full = f.rows >= self.options.max_file_rows
            || f.writer.bytes_written() + f.writer.in_progress_size() >= self.options.max_file_bytes;
        if full {
            if let Some(f) = self.open.remove(&partition) {
                f.writer.close().map_err(pq_err("close parquet file"))?;
            }
        }
        Ok(())
    }

    fn new_file(&mut self, partition: &str) -> Result<OpenFile> {
        let dir = if partition.is_empty() { self.staging.clone() } else { self.staging.join(partition) };
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let path = dir.join(format!("part-{}-{:05}.parquet", self.run_tag, self.file_seq));
        self.file_seq += 1;
        let file = File::create(&path).map_err(io_err(format!("create {}", path.display())))?;
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            self.file_schema.clone(),
            Some(self.props.clone()),
        )
        .map_err(pq_err("open parquet writer"))?;
        self.finished.push((partition.to_string(), path));
        Ok(OpenFile { writer, rows: 0 })
    }

    /// Adds a file to the table folder in the same commit as the data (replacing one of the same name).
    pub fn add_table_file(&mut self, name: &str, contents: Vec<u8>) {
        self.table_files.push((name.to_string(), contents));
    }

    /// A small file that commits with the run's fixed partition (swapped in with its data files), or beside the
    /// table when the run has no fixed partition.
    pub fn add_partition_file(&mut self, name: &str, contents: Vec<u8>) {
        match self.options.static_partition.clone() {
            Some(p) => self.partition_files.push((p, name.to_string(), contents)),
            None => self.add_table_file(name, contents),
        }
    }

    /// Closes the open files and returns the staged folder, so the output can be read (by checks) before it is
    /// committed. Writing after this starts new files.
    pub fn stage(&mut self) -> Result<&Path> {
        for (_, f) in self.open.drain() {
            f.writer.close().map_err(pq_err("close parquet file"))?;
        }
        Ok(&self.staging)
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Makes the written data visible atomically, replacing what `mode` says it replaces.
    pub fn commit(mut self) -> Result<CommitSummary> {
        for (_, f) in self.open.drain() {
            f.writer.close().map_err(pq_err("close parquet file"))?;
        }
        // A run that wrote nothing into a fixed partition still replaces it (with an empty file that keeps the
        // schema), so that re-running a date whose source became empty does not leave stale rows.
        if self.finished.is_empty() && self.splitter.is_none() && self.options.mode != WriteMode::Append {
            let part = self.options.static_partition.clone().unwrap_or_default();
            let f = self.new_file(&part)?;
            f.writer.close().map_err(pq_err("close parquet file"))?;
        }
        let mut summary = CommitSummary { table_dir: self.table_dir.clone(), rows: self.rows, ..Default::default() };
        for (_, path) in &self.finished {
            let f = File::open(path).map_err(io_err(format!("open {}", path.display())))?;
            f.sync_all().map_err(io_err(format!("sync {}", path.display())))?;
            summary.bytes += f.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let mut partitions: Vec<String> = self.finished.iter().map(|(p, _)| p.clone()).collect();
        partitions.sort();
        partitions.dedup();

        let mut old = Vec::new();
        let whole_table = self.options.mode == WriteMode::Overwrite
            || (self.options.mode == WriteMode::ReplacePartitions && partitions.iter().any(|p| p.is_empty()));
        let write_table_files = |dir: &Path| -> Result<()> {
            std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
            for (name, contents) in &self.table_files {
                let tmp = dir.join(format!(".{name}.tmp-{}", self.run_tag));
                let target = dir.join(name);
                let mut f = File::create(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
                f.write_all(contents).and_then(|_| f.sync_all()).map_err(io_err(format!("write {}", tmp.display())))?;
                std::fs::rename(&tmp, &target).map_err(io_err(format!("move into {}", target.display())))?;
            }
            Ok(())
        };
        if whole_table {
            write_table_files(&self.staging)?;
        }
        for (p, name, contents) in &self.partition_files {
            let dir = self.staging.join(p);
            std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
            let path = dir.join(name);
            let mut f = File::create(&path).map_err(io_err(format!("create {}", path.display())))?;
            f.write_all(contents).and_then(|_| f.sync_all()).map_err(io_err(format!("write {}", path.display())))?;
        }
        match self.options.mode {
            _ if whole_table => {
                old.extend(
                    replace_dir(&self.staging, &self.table_dir)
                        .map_err(io_err(format!("replace {}", self.table_dir.display())))?,
                );
            }
            WriteMode::ReplacePartitions => {
                for p in &partitions {
                    let target = self.table_dir.join(p);
                    old.extend(
                        replace_dir(&self.staging.join(p), &target)
                            .map_err(io_err(format!("replace {}", target.display())))?,
                    );
                }
            }
            // `merge` is refused for Parquet tables by the sink's config; it would add like `append`.
            WriteMode::Append | WriteMode::Overwrite | WriteMode::Merge => {
                // Appended files land one by one in existing folders: a journal lists them first (and keeps a copy
                // of each small file they overwrite), so a crash half-way is rolled back by the next writer.
                let moves: Vec<(PathBuf, PathBuf)> = self
                    .finished
                    .iter()
                    .map(|(p, path)| {
                        let dir = if p.is_empty() { self.table_dir.clone() } else { self.table_dir.join(p) };
                        (path.clone(), dir.join(path.file_name().unwrap_or_default()))
                    })
                    .collect();
                let overwritten: Vec<PathBuf> = self
                    .partition_files
                    .iter()
                    .map(|(p, name, _)| self.table_dir.join(p).join(name))
                    .chain(self.table_files.iter().map(|(name, _)| self.table_dir.join(name)))
                    .collect();
                let journal = AppendJournal::begin(&self.table_dir, &self.run_tag, &moves, &overwritten)?;
                for (i, (from, target)) in moves.iter().enumerate() {
                    let dir = target.parent().unwrap_or(&self.table_dir);
                    std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
                    std::fs::rename(from, target).map_err(io_err(format!("move into {}", target.display())))?;
                    sync_parent(target).map_err(io_err(format!("sync {}", dir.display())))?;
                    if i == 0 {
                        weir_core::failpoint::hit("lake_append_after_first_file");
                    }
                }
                // Appended data has no partition swap to ride on: its partition files follow the data files.
                for (p, name, _) in &self.partition_files {
                    let target = self.table_dir.join(p).join(name);
                    std::fs::create_dir_all(self.table_dir.join(p)).map_err(io_err(format!("create {}", p)))?;
                    std::fs::rename(self.staging.join(p).join(name), &target)
                        .map_err(io_err(format!("move into {}", target.display())))?;
                }
                if !self.table_files.is_empty() {
                    write_table_files(&self.table_dir)?;
                    sync_parent(&self.table_dir.join("x"))
                        .map_err(io_err(format!("sync {}", self.table_dir.display())))?;
                }
                journal.finish();
            }
        }
        let appended = matches!(self.options.mode, WriteMode::Append | WriteMode::Merge);
        if !whole_table && !appended && !self.table_files.is_empty() {
            write_table_files(&self.table_dir)?;
            sync_parent(&self.table_dir.join("x")).map_err(io_err(format!("sync {}", self.table_dir.display())))?;
        }
        summary.files = self
            .finished
            .iter()
            .map(|(p, path)| {
                let dir = if p.is_empty() { self.table_dir.clone() } else { self.table_dir.join(p) };
                dir.join(path.file_name().unwrap_or_default())
            })
            .collect();
        summary.partitions = partitions.into_iter().filter(|p| !p.is_empty()).collect();
        for dir in old {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        self.committed = true;
        Ok(summary)
    }
}

/// Moves back what a fallback swap (see `atomic::replace_dir`) had set aside when a crash came between its two
/// renames: a folder `<staged>.weir-old` whose target is missing holds the target's previous content.
fn restore_asides(staging_entry: &Path, table_dir: &Path) -> Result<()> {
    let suffix = crate::atomic::ASIDE_SUFFIX;
    let text = staging_entry.to_string_lossy();
    if let Some(staged) = text.strip_suffix(suffix) {
        // The whole table was being replaced.
        let _ = staged;
        if !table_dir.exists() {
            std::fs::rename(staging_entry, table_dir).map_err(io_err(format!("restore {}", table_dir.display())))?;
        }
        return Ok(());
    }
    let pattern = format!("{}/**/*{suffix}", glob::Pattern::escape(&text));
    for aside in glob::glob(&pattern).map_err(|e| Error::engine("lake", e))?.flatten() {
        let Ok(rel) = aside.strip_prefix(staging_entry) else { continue };
        let rel = rel.to_string_lossy();
        let target = table_dir.join(rel.strip_suffix(suffix).unwrap_or(&rel));
        if !target.exists() {
            tracing::warn!(partition = %target.display(), "restoring a partition set aside by a swap that did not finish");
            std::fs::rename(&aside, &target).map_err(io_err(format!("restore {}", target.display())))?;
        }
    }
    Ok(())
}

/// The record of an append in progress, `.<table>.weir-append-<run>/journal.json` beside the table: the files it
/// adds and, for each small file it overwrites (cursor, schema history), a copy of the old one (or none). Written
/// and synced before the first move and removed after the last, so after a crash [`AppendJournal::recover`] can
/// put the table back as it was before the append, which its retry then makes whole.
struct AppendJournal {
    dir: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AppendRecord {
    added: Vec<PathBuf>,
    /// (file, where its previous content is kept, if it existed)
    overwritten: Vec<(PathBuf, Option<PathBuf>)>,
}

impl AppendJournal {
    fn prefix(table_dir: &Path) -> (PathBuf, String) {
        let parent = table_dir.parent().unwrap_or(table_dir).to_path_buf();
        let name = table_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        (parent, format!(".{name}.weir-append-"))
    }

    fn begin(table_dir: &Path, run_tag: &str, moves: &[(PathBuf, PathBuf)], overwritten: &[PathBuf]) -> Result<Self> {
        let (parent, prefix) = Self::prefix(table_dir);
        let dir = parent.join(format!("{prefix}{run_tag}"));
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let mut record =
            AppendRecord { added: moves.iter().map(|(_, t)| t.clone()).collect(), overwritten: Vec::new() };
        for (i, file) in overwritten.iter().enumerate() {
            let copy = file.exists().then(|| dir.join(format!("old-{i}")));
            if let Some(copy) = &copy {
                std::fs::copy(file, copy).map_err(io_err(format!("keep a copy of {}", file.display())))?;
            }
            record.overwritten.push((file.clone(), copy));
        }
        let json = serde_json::to_vec(&record).map_err(|e| Error::engine("append journal", e))?;
        crate::atomic::write_file(&dir.join("journal.json"), &json)?;
        Ok(AppendJournal { dir })
    }

    /// The append is complete: forget the journal.
    fn finish(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Rolls back every append of the table that a crash left unfinished.
    fn recover(table_dir: &Path) -> Result<()> {
        let (parent, prefix) = Self::prefix(table_dir);
        let Ok(entries) = std::fs::read_dir(&parent) else { return Ok(()) };
        for e in entries.flatten() {
            if !e.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let dir = e.path();
            // No journal: the crash came before it was written, so nothing was moved.
            if let Ok(bytes) = std::fs::read(dir.join("journal.json")) {
                let record: AppendRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::data(Default::default(), format!("{}: {e}", dir.display())))?;
                tracing::warn!(table = %table_dir.display(), files = record.added.len(), "rolling back an append that did not finish");
                for f in &record.added {
                    match std::fs::remove_file(f) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io(format!("roll back {}", f.display()), e))
                        }
                        _ => {}
                    }
                }
                for (file, copy) in &record.overwritten {
                    let restored = match copy {
                        Some(copy) => std::fs::rename(copy, file),
                        None => std::fs::remove_file(file),
                    };
                    match restored {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io(format!("roll back {}", file.display()), e))
                        }
                        _ => {}
                    }
                }
                sync_parent(&table_dir.join("x")).map_err(io_err(format!("sync {}", table_dir.display())))?;
            }
            std::fs::remove_dir_all(&dir).map_err(io_err(format!("remove {}", dir.display())))?;
        }
        Ok(())
    }
}

impl Drop for ParquetTableWriter {
    fn drop(&mut self) {
        if !self.committed {
            // Aborted: nothing was made visible; drop what was staged.
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(vals: &[i64], days: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, false),
            Field::new("day", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vals.to_vec())), Arc::new(StringArray::from(days.to_vec()))],
        )
        .unwrap()
    }

    fn parquet_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(parquet_files(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
        out.sort();
        out
    }

    fn count_rows(dir: &Path) -> usize {
        parquet_files(dir)
            .iter()
            .map(|p| {
                let f = File::open(p).unwrap();
                let r =
                    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
                r.map(|b| b.unwrap().num_rows()).sum::<usize>()
            })
            .sum()
    }

    #[test]
    fn rerunning_a_static_partition_replaces_it() {
        let tmp = tempfile::tempdir().unwrap();
        let table = tmp.path().join("raw/orders");
        let b = batch(&[1, 2, 3], &["a", "b", "c"]);
        let opts = WriterOptions { static_partition: Some("date=2026-03-25".into()), ..Default::default() };
        for run in ["run1", "run2"] {
            let mut w = ParquetTableWriter::open(&table, b.schema(), opts.clone(), run).unwrap();
            w.write(&b).unwrap();
            let s = w.commit().unwrap();
            assert_eq!(s.rows, 3);
            assert_eq!(s.partitions, vec!["date=2026-03-25".to_string()]);
        }
        let opts2 = WriterOptions { static_partition: Some("date=2026-03-26".into()), ..Default::default() };
        let mut w = ParquetTableWriter::open(&table, b.schema(), opts2, "run3").unwrap();
        w.write(&b).unwrap();
        w.commit().unwrap();
        assert_eq!(count_rows(&table), 6, "two partitions of 3 rows, no duplicates");
        // No staging or lock debris is visible inside the table.
        assert!(parquet_files(&table).iter().all(|p| !p.to_string_lossy().contains("staging")));
    }

    #[test]
    fn an_aborted_write_leaves_the_table_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let table = tmp.path().join("raw/t");
        let b = batch(&[1, 2], &["a", "b"]);
        let mut w = ParquetTableWriter::open(&table, b.schema(), WriterOptions::default(), "r1").unwrap();
        w.write(&b).unwrap();
        w.commit().unwrap();
        let mut w = ParquetTableWriter::open(&table, b.schema(), WriterOptions::default(), "r2").unwrap();
        w.write(&batch(&[9, 9, 9, 9], &["x", "x", "x", "x"])).unwrap();
        drop(w); // the run died before commit
        assert_eq!(count_rows(&table), 2);
        let siblings: Vec<String> = std::fs::read_dir(tmp.path().join("raw"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(siblings.iter().all(|s| !s.contains("staging")), "{siblings:?}");
    }

    #[test]
    fn partition_by_splits_and_rotates_files() {
        let tmp = tempfile::tempdir().unwrap();
        let table = tmp.path().join("silver/t");
        let opts = WriterOptions { partition_by: vec!["day".into()], max_file_rows: 2, ..Default::default() };
        let b = batch(&[1, 2, 3, 4, 5], &["a", "a", "a", "b", "b"]);
        let mut w = ParquetTableWriter::open(&table, b.schema(), opts, "r1").unwrap();
        w.write(&b).unwrap();
        w.write(&b).unwrap();
        let s = w.commit().unwrap();
        assert_eq!(s.partitions, vec!["day=a", "day=b"]);
        assert_eq!(count_rows(&table), 10);
        assert!(parquet_files(&table.join("day=a")).len() >= 2, "files rotate after max_file_rows");
    }
}
