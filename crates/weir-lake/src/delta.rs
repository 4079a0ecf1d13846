//! Delta Lake tables: the silver and gold zones' format (`format: delta` on a lake sink), through the `deltalake`
//! crate, so Spark, Databricks, DuckDB, Polars and the Python `deltalake` package read them.
//!
//! A write streams batches into Parquet files under the table (files are uploaded as they fill; nothing is visible
//! yet), and then makes them visible in one Delta commit: the new files, the files they replace (`overwrite`, or
//! the partitions of this run for `replace_partitions`), a schema change allowed by the contract, and an
//! application transaction naming the pipeline, task and logical date. A killed run leaves only unreferenced files
//! (`weir table vacuum` removes them); a re-run of an `append` whose transaction is already in the log is skipped,
//! so retries never append the same day twice.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, MetadataExt, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use parquet::file::properties::WriterProperties;
use weir_core::{Error, Result};

use crate::sink::WriteMode;
use crate::storage::TableLocation;

/// Whether a folder holds a Delta table.
pub fn is_delta_table(dir: &Path) -> bool {
    dir.join("_delta_log").is_dir()
}

/// Whether a Delta table exists at `location` (a folder or an object-store prefix).
pub async fn exists(location: &TableLocation) -> Result<bool> {
    if let Some(dir) = &location.local {
        return Ok(is_delta_table(dir));
    }
    let table = deltalake::DeltaTableBuilder::from_url(location.url.clone())
        .and_then(|b| b.with_storage_options(location.options.clone()).build())
        .map_err(|e| delta_error(&format!("open delta table {location}"), e))?;
    table.verify_deltatable_existence().await.map_err(|e| delta_error(&format!("open delta table {location}"), e))
}

/// A failure of a Delta operation, with the retry hint its kind gives: object storage, IO and commit races may
/// pass on a retry; a table that is not Delta, a schema that does not fit or a broken log will not; the rest is
/// taken for a bug. (Other libraries' errors inside a Delta operation are `Error::engine`.)
fn delta_error(what: &str, e: deltalake::DeltaTableError) -> Error {
    use deltalake::DeltaTableError as E;
    let message = e.to_string();
    match e {
        E::ObjectStore { .. } | E::Io { .. } | E::Transaction { .. } | E::VersionAlreadyExists(_) => {
            Error::external(what.to_string(), message)
        }
        E::NotATable(_) | E::InvalidTableLocation(_) | E::MissingFeature { .. } | E::InvalidJsonLog { .. } => {
            Error::external_final(what.to_string(), message)
        }
        E::SchemaMismatch { .. } | E::InvalidData { .. } | E::PartitionError { .. } => {
            Error::data(Default::default(), format!("{what}: {message}"))
        }
        _ => Error::engine(what.to_string(), message),
    }
}

/// The URL of a table, creating its folder first when it is local.
fn table_url(location: &TableLocation) -> Result<url::Url> {
    if let Some(dir) = &location.local {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    Ok(location.url.clone())
}

/// Opens a Delta table at its latest version, or at `version`.
pub async fn open(location: &TableLocation, version: Option<u64>) -> Result<DeltaTable> {
    let what = || format!("open delta table {location}");
    let mut builder = deltalake::DeltaTableBuilder::from_url(table_url(location)?)
        .map_err(|e| delta_error(&what(), e))?
        .with_storage_options(location.options.clone());
    if let Some(v) = version {
        builder = builder.with_version(v);
    }
    builder.load().await.map_err(|e| delta_error(&what(), e))
}

/// The Arrow type a column is stored with in Delta: Delta has no views, dictionaries or unsigned integers, and keeps
/// timestamps in microseconds.
pub fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Dictionary(_, v) => delta_type(v),
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, None) => DataType::Timestamp(TimeUnit::Microsecond, None),
        DataType::Timestamp(_, Some(_)) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        other => other.clone(),
    }
}

/// `schema` with every column in its Delta type.
pub fn delta_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().map(|f| Field::new(f.name(), delta_type(f.data_type()), true)).collect::<Vec<_>>(),
    ))
}

#[derive(Debug, Clone)]
pub struct DeltaWriteOptions {
    pub mode: WriteMode,
    /// Columns whose values choose each row's partition.
    pub partition_by: Vec<String>,
    /// A fixed partition for every row of the run (`date=2026-03-25`): stored as a string column.
    pub static_partition: Vec<(String, String)>,
    pub compression: parquet::basic::Compression,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Start a new file after about this many bytes.
    pub target_file_size: u64,
    /// The application transaction of this write; for a task, naming the data interval it writes:
    /// `weir/<pipeline>/<task>/<interval start>/<interval end>`. Empty: none of its own (a stream's commits carry
    /// only their partitions' transactions, so that two processes of a group never conflict on a shared id).
    pub app_id: String,
    /// An `append` of one data interval (`app_id`): it records the files it added, and a later append of the same id
    /// (a retry, a re-run, a backfill) replaces them, so each interval's rows are in the table once, as its latest
    /// run read them. Off for appends that only ever add (a stream's batches, check results).
    pub replace_interval: bool,
    /// `merge`: the columns rows are matched on, and the condition that deletes a matched row.
    pub keys: Vec<String>,
    pub delete_when: Option<String>,
    /// `merge` with `history: scd2`: the date versions start and end on (the run's logical date).
    pub scd2_as_of: Option<String>,
    /// More entries the commit records beside its actions, such as an incremental source's cursor (see
    /// `crate::cursor`), so that they commit with the data.
    pub commit_info: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Clone, Default)]
pub struct DeltaCommitSummary {
    pub version: u64,
    pub rows: u64,
    pub bytes: u64,
    pub files: usize,
    pub removed_files: usize,
    /// The partitions written (`date=2026-03-25`).
    pub partitions: Vec<String>,
    /// True when the application transaction was found in the log and nothing was written.
    pub skipped: bool,
    /// `merge`: rows inserted, updated and deleted in the target.
    pub merged: Option<(usize, usize, usize)>,
}

/// One write to a Delta table, committed at the end or not at all.
pub struct DeltaTableWriter {
    location: TableLocation,
    table: Option<DeltaTable>,
    writer: RecordBatchWriter,
    /// The data schema written (partition columns included, Delta types).
    schema: SchemaRef,
    options: DeltaWriteOptions,
    partition_columns: Vec<String>,
    rows: u64,
    adds: Vec<Add>,
    schema_changed: bool,
    /// Application transactions recorded in the commit beside the write's own (a stream's consumed offsets).
    extra_transactions: Vec<Transaction>,
    /// The version each of these application transactions must have in the table for the commit to go ahead.
    expected_transactions: Vec<(String, Option<i64>)>,
}

impl std::fmt::Debug for DeltaTableWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTableWriter").field("location", &self.location.url).field("rows", &self.rows).finish()
    }
}

impl DeltaTableWriter {
    /// Prepares a write of batches with `schema` (the task's visible output) into the table at `location`,
    /// creating it on commit when it does not exist.
    pub async fn open(
        location: &TableLocation,
        schema: &Schema,
        options: DeltaWriteOptions,
    ) -> Result<DeltaTableWriter> {
        let url = table_url(location)?;
        let table = if exists(location).await? { Some(open(location, None).await?) } else { None };
        let mut fields: Vec<Field> = delta_schema(schema).fields().iter().map(|f| f.as_ref().clone()).collect();
        for (k, _) in &options.static_partition {
            if fields.iter().any(|f| f.name() == k) {
                return Err(Error::config(
                    Default::default(),
                    format!("partition column `{k}` is also a column of the output; use `partition_by: [{k}]`"),
                ));
            }
            fields.push(Field::new(k, DataType::Utf8, true));
        }
        if options.scd2_as_of.is_some() {
            // `history: scd2`: every version carries when it was current.
            for c in crate::sink::SCD2_COLUMNS {
                if fields.iter().any(|f| f.name() == c) {
                    return Err(Error::config(
                        Default::default(),
                        format!("`history: scd2` adds the column `{c}`, which the output already has; rename it"),
                    ));
                }
            }
            fields.push(Field::new("valid_from", DataType::Date32, true));
            fields.push(Field::new("valid_to", DataType::Date32, true));
            fields.push(Field::new("is_current", DataType::Boolean, true));
        }
        let mut partition_columns: Vec<String> = options.static_partition.iter().map(|(k, _)| k.clone()).collect();
        partition_columns.extend(options.partition_by.iter().cloned());
        let mut schema_changed = false;
        if let Some(t) = &table {
            let snapshot = t.snapshot().map_err(|e| delta_error("delta snapshot", e))?;
            let existing = snapshot.metadata().partition_columns().to_vec();
            if existing != partition_columns {
                return Err(Error::data(
                    Default::default(),
                    format!(
                        "the table is partitioned by [{}], the sink asks for [{}]; rewrite it with `mode: overwrite` into a new table",
                        existing.join(", "),
                        partition_columns.join(", ")
                    ),
                ));
            }
            // The contract has judged the change already; here a column the run lacks is kept (written as null),
            // never dropped from the table, and new columns are appended.
            let current: Schema = arrow_of(&snapshot.schema())?;
            let mut merged: Vec<Field> = current
                .fields()
                .iter()
                .map(|c| fields.iter().find(|f| f.name() == c.name()).cloned().unwrap_or_else(|| c.as_ref().clone()))
                .collect();
            merged.extend(fields.iter().filter(|f| current.index_of(f.name()).is_err()).cloned());
            schema_changed = !same_columns(&current, &Schema::new(merged.clone()));
            fields = merged;
        }
        let schema = Arc::new(Schema::new(fields));
        let props = WriterProperties::builder()
            .set_compression(options.compression)
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .build();
        // A merge's staged files are its source, not table files: they keep every column, partitions included.
        let staged_partitions = if options.mode == WriteMode::Merge { Vec::new() } else { partition_columns.clone() };
        let writer = RecordBatchWriter::try_new(
            url.as_str(),
            schema.clone(),
            Some(staged_partitions),
            Some(location.options.clone()),
        )
        .map_err(|e| delta_error("delta writer", e))?
        .with_writer_properties(props)
        .with_target_file_size(options.target_file_size);
        Ok(DeltaTableWriter {
            location: location.clone(),
            table,
            writer,
            schema,
            options,
            partition_columns,
            rows: 0,
            adds: Vec::new(),
            schema_changed,
            extra_transactions: Vec::new(),
            expected_transactions: Vec::new(),
        })
    }

    /// Whether `app_id` is in the table's log without a record of the files it added: an `append` committed
    /// before appends recorded their files (under its date's id), which is then left as it is rather than doubled.
    pub async fn committed_without_files(&mut self, app_id: &str) -> Result<bool> {
        let Some(t) = &self.table else { return Ok(false) };
        let snapshot = t.snapshot().map_err(|e| delta_error("delta snapshot", e))?;
        let v = snapshot
            .transaction_version(t.log_store().as_ref(), app_id)
            .await
            .map_err(|e| delta_error("delta transactions", e))?;
        Ok(v.is_some() && appended_files(t, app_id).await?.is_none())
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let col = match batch.schema().index_of(field.name()) {
                Ok(i) => {
                    let c = batch.column(i);
                    if c.data_type() == field.data_type() {
                        c.clone()
                    } else {
                        cast(c, field.data_type())
                            .map_err(|e| Error::data(Default::default(), format!("column `{}`: {e}", field.name())))?
                    }
                }
                Err(_) => match self.options.static_partition.iter().find(|(k, _)| k == field.name()) {
                    Some((_, v)) => Arc::new(StringArray::from(vec![v.as_str(); n])) as ArrayRef,
                    None => new_null_array(field.data_type(), n),
                },
            };
            columns.push(col);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| Error::engine("delta batch", e))?;
        self.writer.write(batch).await.map_err(|e| delta_error("delta write", e))?;
        self.rows += n as u64;
        Ok(())
    }

    /// Finishes the files written so far and returns where they are (local paths, or URLs on object storage),
    /// for checks on the output before the commit. Nothing is visible to readers yet.
    pub async fn stage(&mut self) -> Result<Vec<String>> {
        let adds = self.writer.flush().await.map_err(|e| delta_error("delta flush", e))?;
        self.adds.extend(adds);
        self.staged_files()
    }

    /// The columns of the table's data files (its schema without the partition columns), in the types the table
    /// stores: what files written by another engine for this write must hold.
    pub fn file_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|f| !self.partition_columns.contains(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// A folder under the table, new for this write, for another engine (a Ballista cluster, Spark) to write the
    /// write's data files into (`date=2026-03-25/weir-<uuid>/`), and its URL;
    /// [`DeltaTableWriter::add_files_written_in`] then takes them into the commit. Only for writes whose rows all go
    /// to one partition (a static `partition:` or none), appended or replacing, without `merge` or `history`.
    pub fn folder_for_other_writers(&self) -> Result<(String, url::Url)> {
        if !self.options.partition_by.is_empty()
            || self.options.mode == WriteMode::Merge
            || self.options.scd2_as_of.is_some()
        {
            return Err(Error::engine(
                format!("{}", self.location),
                "files written elsewhere go to one partition, without merge or history",
            ));
        }
        let mut segments: Vec<String> = self.options.static_partition.iter().map(|(k, v)| format!("{k}={v}")).collect();
        segments.push(format!("weir-{}", uuid::Uuid::new_v4().simple()));
        let folder = segments.join("/");
        let mut url = self.location.url.clone();
        for segment in &segments {
            url = url.join(&format!("{}/", encode_segment(segment))).map_err(|e| Error::engine("staging folder", e))?;
        }
        Ok((folder, url))
    }

    /// Takes the Parquet files another engine wrote into `folder` (from [`DeltaTableWriter::folder_for_other_writers`])
    /// into this write: each becomes an Add action with the static partition's values, and the rows, null counts and
    /// bounds its footer gives (`crate::file_stats`). Returns the rows.
    pub async fn add_files_written_in(&mut self, folder: &str) -> Result<u64> {
        let partition_values: std::collections::HashMap<String, Option<String>> =
            self.options.static_partition.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        let now = chrono::Utc::now().timestamp_millis();
        let mut rows = 0;
        let encoded: Vec<String> = folder.split('/').map(encode_segment).collect();
        let columns = self.file_schema();
        for (name, size, footer) in self.location.parquet_files_in(folder).await? {
            let file_rows = footer.file_metadata().num_rows() as u64;
            self.adds.push(Add {
                path: format!("{}/{}", encoded.join("/"), encode_segment(&name)),
                partition_values: partition_values.clone(),
                size: size as i64,
                modification_time: now,
                data_change: true,
                stats: Some(crate::file_stats::delta_stats(&footer, &columns).to_string()),
                ..Default::default()
            });
            rows += file_rows;
        }
        self.rows += rows;
        Ok(rows)
    }

    /// Records `value` under `name` in this write's commit (an incremental source's cursor: `crate::cursor`).
    pub fn add_commit_info(&mut self, name: &str, value: serde_json::Value) {
        self.options.commit_info.push((name.to_string(), value));
    }

    /// What the commit records beside its actions: the rows written, the files of an append, and `commit_info`.
    fn commit_metadata(&self) -> Vec<(String, serde_json::Value)> {
        let mut meta = vec![("weir_rows".to_string(), serde_json::json!(self.rows))];
        if self.options.mode == WriteMode::Append && self.options.replace_interval {
            let files: Vec<&str> = self.adds.iter().map(|a| a.path.as_str()).collect();
            meta.push((APPENDED.to_string(), serde_json::json!({"id": self.options.app_id, "files": files})));
        }
        meta.extend(self.options.commit_info.iter().cloned());
        meta
    }

    /// Records `app_id` at `version` in this write's commit (a stream records the next offset of each partition it
    /// wrote, so a replay after a crash can skip what the table already holds).
    pub fn add_transaction(&mut self, app_id: &str, version: i64) {
        self.extra_transactions.push(Transaction::new(app_id, version));
    }

    /// Makes the commit conditional on `app_id` being at `expected` (None: never recorded) in the table version it
    /// commits on top of: a compare-and-set, so that a writer that lost its partitions to another (a stream process
    /// that stalled past its group's poll interval) cannot commit after the new owner. It fails with an error that
    /// [`is_fenced`] recognises; a concurrent commit of the same id is caught by Delta's own conflict check.
    pub fn expect_transaction(&mut self, app_id: &str, expected: Option<i64>) {
        self.expected_transactions.push((app_id.to_string(), expected));
    }

    // `&mut self`: the writer is not `Sync`, so a shared borrow could not be held across the awaits.
    async fn check_expected(&mut self, table: Option<&DeltaTable>) -> Result<()> {
        for (app_id, expected) in &self.expected_transactions {
            let actual = match table {
                None => None,
                Some(t) => t
                    .snapshot()
                    .map_err(|e| delta_error("delta snapshot", e))?
                    .transaction_version(t.log_store().as_ref(), app_id)
                    .await
                    .map_err(|e| delta_error("delta transactions", e))?,
            };
            if actual != *expected {
                return Err(fenced(&self.location, app_id, *expected, actual));
            }
        }
        Ok(())
    }

    /// The partition columns of the table (static ones first).
    pub fn partition_columns(&self) -> &[String] {
        &self.partition_columns
    }

    /// Makes the write visible in one commit.
    pub async fn commit(mut self) -> Result<DeltaCommitSummary> {
        self.stage().await?;
        let mut partitions: Vec<String> = self
            .adds
            .iter()
            .map(|a| {
                self.partition_columns
                    .iter()
                    .map(|c| format!("{c}={}", a.partition_values.get(c).cloned().flatten().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .filter(|p| !p.is_empty())
            .collect();
        partitions.sort();
        partitions.dedup();
        let bytes: u64 = self.adds.iter().map(|a| a.size as u64).sum();
        // An empty `app_id`: the write records only the transactions it was given.
        let mut transactions = Vec::new();
        if !self.options.app_id.is_empty() {
            transactions.push(Transaction::new(&self.options.app_id, 1));
        }
        transactions.extend(self.extra_transactions.iter().cloned());
        let props = CommitProperties::default()
            .with_application_transactions(transactions)
            .with_metadata(self.commit_metadata());
        let files = self.adds.len();
        let rows = self.rows;
        if self.options.mode == WriteMode::Merge {
            return self.merge(props, rows).await;
        }
        let table = match self.table.take() {
            Some(t) => t,
            None => match {
                self.check_expected(None).await?;
                self.create(self.adds.iter().cloned().map(Action::Add).collect(), props.clone()).await?
            } {
                Created::New(created) => {
                    return Ok(DeltaCommitSummary {
                        version: created.version().unwrap_or(0),
                        rows,
                        bytes,
                        files,
                        removed_files: 0,
                        partitions,
                        skipped: false,
                        merged: None,
                    })
                }
                // Another writer created the table first: commit on top of its version instead.
                Created::ByAnother(t) => {
                    let snapshot = t.snapshot().map_err(|e| delta_error("delta snapshot", e))?;
                    let current: Schema = arrow_of(&snapshot.schema())?;
                    if !same_columns(&current, &self.schema) {
                        return Err(Error::data(
                            Default::default(),
                            format!("{} was created concurrently with another schema; run again", self.location),
                        ));
                    }
                    t
                }
            },
        };
        // An append that replaces its interval's earlier files "reads" the table, so a concurrent commit (another
        // interval's append) is a conflict for Delta; since no other interval touches these files, the write is
        // planned again on the new version and committed on top of it.
        let mut table = table;
        let mut conflicts = 0;
        loop {
            self.check_expected(Some(&table)).await?;
            let snapshot = table.snapshot().map_err(|e| delta_error("delta snapshot", e))?.clone();
            let log_store = table.log_store();
            // What this write replaces: everything (overwrite), or the files of the partitions it wrote.
            let replaced: Vec<String> = match self.options.mode {
                WriteMode::Append | WriteMode::Merge => Vec::new(),
                WriteMode::Overwrite => vec![],
                // A fixed partition is replaced even when this run wrote no rows into it (the day is now empty).
                WriteMode::ReplacePartitions
                    if self.options.partition_by.is_empty() && !self.options.static_partition.is_empty() =>
                {
                    vec![self
                        .options
                        .static_partition
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("/")]
                }
                WriteMode::ReplacePartitions => partitions.clone(),
            };
            let mut actions: Vec<Action> = Vec::new();
            let mut removed_files = 0;
            // An append replaces what the latest append of the same interval added (see `app_id`).
            let earlier_append = match self.options.mode {
                WriteMode::Append if self.options.replace_interval => {
                    appended_files(&table, &self.options.app_id).await?.unwrap_or_default()
                }
                _ => Vec::new(),
            };
            let replacing =
                self.options.mode == WriteMode::Overwrite || self.options.mode == WriteMode::ReplacePartitions;
            let current: Vec<_> = if replacing || !earlier_append.is_empty() {
                snapshot
                    .snapshot()
                    .file_views(log_store.as_ref(), None)
                    .try_collect()
                    .await
                    .map_err(|e| delta_error("delta files", e))?
            } else {
                Vec::new()
            };
            if !earlier_append.is_empty() {
                let earlier: Vec<String> = earlier_append.iter().map(|p| percent_decoded(p)).collect();
                for f in &current {
                    if earlier.contains(&percent_decoded(&f.path())) {
                        actions.push(Action::Remove(f.remove_action(true)));
                        removed_files += 1;
                    }
                }
            }
            if replacing {
                let unpartitioned = self.partition_columns.is_empty();
                for f in current {
                    let values = f.partition_values_map();
                    let key = self
                        .partition_columns
                        .iter()
                        .map(|c| format!("{c}={}", values.get(c).cloned().flatten().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("/");
                    let drop = self.options.mode == WriteMode::Overwrite || unpartitioned || replaced.contains(&key);
                    if drop {
                        actions.push(Action::Remove(f.remove_action(true)));
                        removed_files += 1;
                    }
                }
            }
            if self.schema_changed {
                let columns: StructType =
                    self.schema.as_ref().try_into_kernel().map_err(|e| Error::engine("delta schema", e))?;
                let metadata =
                    snapshot.metadata().clone().with_schema(&columns).map_err(|e| Error::engine("delta schema", e))?;
                actions.push(Action::Metadata(metadata));
            }
            actions.extend(self.adds.iter().cloned().map(Action::Add));
            let (mode, predicate) = match self.options.mode {
                WriteMode::Append | WriteMode::Merge => (SaveMode::Append, None),
                WriteMode::Overwrite => (SaveMode::Overwrite, None),
                WriteMode::ReplacePartitions if self.partition_columns.is_empty() => (SaveMode::Overwrite, None),
                WriteMode::ReplacePartitions => (SaveMode::Overwrite, Some(partition_predicate(&replaced))),
            };
            let operation = DeltaOperation::Write {
                mode,
                partition_by: (!self.partition_columns.is_empty()).then(|| self.partition_columns.clone()),
                predicate,
            };
            let committed = match CommitBuilder::from(props.clone())
                .with_actions(actions)
                .build(Some(&snapshot), log_store, operation)
                .await
            {
                Ok(c) => c,
                Err(e) if !earlier_append.is_empty() && conflicts < 20 && e.to_string().contains("concurrent") => {
                    conflicts += 1;
                    tracing::debug!(table = %self.location, conflicts, "append conflicted with a concurrent commit; planned again");
                    table = open(&self.location, None).await?;
                    continue;
                }
                Err(e)
                    if !self.expected_transactions.is_empty()
                        && matches!(
                            &e,
                            deltalake::DeltaTableError::Transaction {
                                source: deltalake::kernel::transaction::TransactionError::CommitConflict(
                                    deltalake::kernel::transaction::CommitConflictError::ConcurrentTransaction
                                )
                            }
                        ) =>
                {
                    return Err(fenced(&self.location, "one of its application transactions", None, None));
                }
                Err(e) => return Err(delta_error(&format!("delta commit to {}", self.location), e)),
            };
            return Ok(DeltaCommitSummary {
                version: committed.version(),
                rows,
                bytes,
                files,
                removed_files,
                partitions,
                skipped: false,
                merged: None,
            });
        }
    }

    /// Creates the table with this write's schema and partitioning, committing `actions` with it. When another
    /// writer created it meanwhile, that table is returned instead.
    // `&mut self`: the writer is not `Sync`, so a shared borrow could not be held across the awaits.
    async fn create(&mut self, actions: Vec<Action>, props: CommitProperties) -> Result<Created> {
        let columns: StructType =
            self.schema.as_ref().try_into_kernel().map_err(|e| Error::engine("delta schema", e))?;
        let name = self.location.url.path_segments().and_then(|mut s| s.rfind(|s| !s.is_empty()));
        let created = CreateBuilder::new()
            .with_location(table_url(&self.location)?.to_string())
            .with_storage_options(self.location.options.clone())
            .with_table_name(name.unwrap_or_default().to_string())
            .with_columns(columns.fields().cloned())
            .with_partition_columns(self.partition_columns.clone())
            .with_actions(actions)
            // A create that loses the race for version 0 must fail, not retry: deltalake's conflict checker would
            // let it land as a second CREATE at version 1, replacing the table's metadata under the other writers.
            .with_commit_properties(props.with_max_retries(0))
            .await;
        match created {
            Ok(t) => Ok(Created::New(t)),
            Err(e) if exists(&self.location).await? => {
                tracing::info!(table = %self.location, error = %e, "table created concurrently; using it");
                Ok(Created::ByAnother(open(&self.location, None).await?))
            }
            Err(e) => Err(delta_error("create delta table", e)),
        }
    }

    /// `merge`: the staged files are the source of a Delta MERGE on the keys; they are not part of the table and
    /// are removed once the merge committed its own files.
    async fn merge(mut self, props: CommitProperties, rows: u64) -> Result<DeltaCommitSummary> {
        use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
        let staged = self.staged_files()?;
        let staged_relative: Vec<String> = self.adds.iter().map(|a| a.path.clone()).collect();
        let table = match self.table.take() {
            Some(t) => t,
            // The first merge creates the (empty) table, then inserts everything.
            None => match self.create(Vec::new(), CommitProperties::default()).await? {
                Created::New(t) | Created::ByAnother(t) => t,
            },
        };
        if staged.is_empty() {
            let version = table.version().unwrap_or(0);
            return Ok(DeltaCommitSummary { version, merged: Some((0, 0, 0)), ..Default::default() });
        }
        let ctx = SessionContext::new();
        if self.location.local.is_none() {
            // The staged files are read by URL: DataFusion needs the bucket's store.
            let bucket = url::Url::parse(&format!(
                "{}://{}",
                self.location.url.scheme(),
                self.location.url.host_str().unwrap_or_default()
            ))
            .map_err(|e| Error::engine("merge source", e))?;
            let store = deltalake::logstore::store_for(&bucket, self.location.options.clone())
                .map_err(|e| delta_error("merge source", e))?;
            ctx.register_object_store(&bucket, store);
        }
        let source = ctx
            .read_parquet(staged, ParquetReadOptions::default().schema(&self.schema))
            .await
            .map_err(|e| Error::engine("merge source", e))?;
        if let Some(as_of) = self.options.scd2_as_of.clone() {
            return self.merge_scd2(table, ctx, source, props, rows, &as_of, staged_relative).await;
        }
        let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        let predicate = self
            .options
            .keys
            .iter()
            .map(|k| format!("target.{} = source.{}", quote(k), quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let columns: Vec<String> = self.schema.fields().iter().map(|f| f.name().clone()).collect();
        // Two merges into one table at once (two intervals of a backfill) conflict in Delta: the loser merges again
        // on top of the winner's version, one at a time in effect, as PostgreSQL's merges are.
        let mut table = table;
        let mut conflicts = 0;
        loop {
            let mut builder = table
                .clone()
                .merge(source.clone(), predicate.as_str())
                .with_source_alias("source")
                .with_target_alias("target")
                .with_commit_properties(props.clone())
                .with_streaming(true);
            if let Some(cond) = &self.options.delete_when {
                builder = builder
                    .when_matched_delete(|d| d.predicate(cond.as_str()))
                    .map_err(|e| delta_error("merge delete_when", e))?;
            }
            let (cols_u, cols_i) = (columns.clone(), columns.clone());
            let not_deleted = self.options.delete_when.as_ref().map(|c| format!("NOT COALESCE(({c}), false)"));
            let result = builder
                .when_matched_update(move |u| {
                    cols_u.iter().fold(u, |u, c| u.update(quote(c).as_str(), format!("source.{}", quote(c)).as_str()))
                })
                .map_err(|e| delta_error("merge update", e))?
                .when_not_matched_insert(move |i| {
                    // A source row marked for deletion is never inserted, so merging the same data twice is a no-op.
                    let i = match &not_deleted {
                        Some(p) => i.predicate(p.as_str()),
                        None => i,
                    };
                    cols_i.iter().fold(i, |i, c| i.set(quote(c).as_str(), format!("source.{}", quote(c)).as_str()))
                })
                .map_err(|e| delta_error("merge insert", e))?
                .await;
            match result {
                Ok((merged, metrics)) => {
                    return Ok(Self::merged(
                        &self.location,
                        &staged_relative,
                        merged.version().unwrap_or(0),
                        rows,
                        &metrics,
                    )
                    .await)
                }
                Err(e) if conflicts < 20 && e.to_string().contains("concurrent") => {
                    conflicts += 1;
                    tracing::debug!(table = %self.location, conflicts, "merge conflicted with a concurrent commit; merging again");
                    table = open(&self.location, None).await?;
                }
                Err(e) => return Err(Error::data(Default::default(), format!("merge into {}: {e}", self.location))),
            }
        }
    }

    /// After a merge committed: removes its staged source files and says what it did. (Takes the location, not
    /// `&self`: the writer is not `Sync`, so a borrow of it could not be held across the await.)
    async fn merged(
        location: &TableLocation,
        staged: &[String],
        version: u64,
        rows: u64,
        metrics: &deltalake::operations::merge::MergeMetrics,
    ) -> DeltaCommitSummary {
        if let Err(e) = location.delete_files(staged).await {
            // Unreferenced files only cost space; `weir table vacuum` removes them later.
            tracing::warn!(table = %location, error = %e, "could not remove the merge's staged files");
        }
        DeltaCommitSummary {
            version,
            rows,
            bytes: 0,
            files: metrics.num_target_files_added,
            removed_files: metrics.num_target_files_removed,
            partitions: Vec::new(),
            skipped: false,
            merged: Some((
                metrics.num_target_rows_inserted,
                metrics.num_target_rows_updated,
                metrics.num_target_rows_deleted,
            )),
        }
    }

    /// `merge` with `history: scd2`. The source is staged twice: every row keyed on its keys (it closes the
    /// current version when its values changed, or inserts a new key), plus, for changed rows, a copy with null
    /// keys that matches nothing and so is inserted as the new current version. Unchanged rows change nothing, so
    /// re-running a day is a no-op.
    // `self` by value: the writer is not `Sync`, so a shared borrow could not be held across the awaits.
    #[allow(clippy::too_many_arguments)]
    async fn merge_scd2(
        self,
        table: DeltaTable,
        ctx: deltalake::datafusion::prelude::SessionContext,
        source: deltalake::datafusion::prelude::DataFrame,
        props: CommitProperties,
        rows: u64,
        as_of: &str,
        staged_relative: Vec<String>,
    ) -> Result<DeltaCommitSummary> {
        let failed = |e: deltalake::datafusion::error::DataFusionError| Error::engine("scd2 merge", e);
        let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        let data: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|c| !crate::sink::SCD2_COLUMNS.contains(&c.as_str()))
            .collect();
        let keys = &self.options.keys;
        let changed = data
            .iter()
            .filter(|c| !keys.contains(c))
            // Parenthesised: sqlparser binds IS DISTINCT FROM looser than OR.
            .map(|c| format!("(target.{0} IS DISTINCT FROM source.{0})", quote(c)))
            .collect::<Vec<_>>();
        let changed = if changed.is_empty() { "false".to_string() } else { changed.join(" OR ") };
        let deleted = match &self.options.delete_when {
            Some(c) => format!("COALESCE(({c}), false)"),
            None => "false".to_string(),
        };
        let merge_key = |i: usize| format!("__weir_key_{i}");
        let source_columns = data.iter().map(|c| format!("source.{}", quote(c))).collect::<Vec<_>>().join(", ");
        let null_keys = (0..keys.len())
            .map(|i| format!("CASE WHEN false THEN source.{} END AS {}", quote(&keys[i]), merge_key(i)))
            .collect::<Vec<_>>()
            .join(", ");
        let own_keys = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("source.{} AS {}", quote(k), merge_key(i)))
            .collect::<Vec<_>>();
        let join = keys.iter().map(|k| format!("target.{0} = source.{0}", quote(k))).collect::<Vec<_>>().join(" AND ");
        ctx.register_table("weir_source", source.into_view()).map_err(failed)?;
        table.update_datafusion_session(&ctx.state()).map_err(|e| delta_error("scd2 merge", e))?;
        let current = table.table_provider().await.map_err(|e| Error::engine("scd2 merge", e))?;
        ctx.register_table("weir_target", current).map_err(failed)?;
        let sql = format!(
            "SELECT {null_keys}, {source_columns} FROM weir_source AS source JOIN weir_target AS target \
             ON {join} AND target.is_current WHERE ({changed}) AND NOT ({deleted}) \
             UNION ALL SELECT {}, {source_columns} FROM weir_source AS source",
            own_keys.join(", ")
        );
        let staged = ctx.sql(&sql).await.map_err(failed)?;
        let predicate = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("target.{} = source.{}", quote(k), merge_key(i)))
            .chain(std::iter::once("target.is_current".to_string()))
            .collect::<Vec<_>>()
            .join(" AND ");
        let day = format!("DATE '{}'", as_of.replace('\'', "''"));
        let (close_day, open_day) = (day.clone(), day);
        let inserted = data.clone();
        let (merged, metrics) = table
            .merge(staged, predicate.as_str())
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(props)
            .when_matched_update(|u| {
                u.predicate(format!("({changed}) OR ({deleted})").as_str())
                    .update("is_current", "false")
                    .update("valid_to", close_day.as_str())
            })
            .map_err(|e| delta_error("scd2 merge", e))?
            .when_not_matched_insert(|i| {
                let i = i.predicate(format!("NOT ({deleted})").as_str());
                inserted
                    .iter()
                    .fold(i, |i, c| i.set(quote(c).as_str(), format!("source.{}", quote(c)).as_str()))
                    .set("valid_from", open_day.as_str())
                    .set("valid_to", "CAST(NULL AS DATE)")
                    .set("is_current", "true")
            })
            .map_err(|e| delta_error("scd2 merge", e))?
            .await
            .map_err(|e| Error::data(Default::default(), format!("merge into {}: {e}", self.location)))?;
        // SCD2 deletes nothing: a closed version counts as updated.
        Ok(Self::merged(&self.location, &staged_relative, merged.version().unwrap_or(0), rows, &metrics).await)
    }

    /// Where the files written are: local paths, or URLs on object storage (Add paths are percent-encoded URLs
    /// relative to the table).
    fn staged_files(&self) -> Result<Vec<String>> {
        let base = &self.location.url;
        self.adds
            .iter()
            .map(|a| {
                let url = base.join(&a.path).ok();
                let file = match &self.location.local {
                    Some(_) => url.and_then(|u| u.to_file_path().ok()).map(|p| p.display().to_string()),
                    None => url.map(|u| u.to_string()),
                };
                file.ok_or_else(|| Error::engine("delta files", format!("bad file path {}", a.path)))
            })
            .collect()
    }
}

/// The outcome of creating a table.
enum Created {
    New(DeltaTable),
    /// Another writer created it first.
    ByAnother(DeltaTable),
}

/// `date = '2026-03-25' OR date = '2026-03-26'`, for the commit's record of what was replaced.
fn partition_predicate(partitions: &[String]) -> String {
    partitions
        .iter()
        .map(|p| {
            p.split('/')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| format!("{k} = '{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// A Delta schema as Arrow.
/// The commit metadata key under which an `append` records its interval and the files it added.
const APPENDED: &str = "weir_appended";

/// The files that the newest append of `app_id` added (None: no append recorded its files under that id).
async fn appended_files(table: &DeltaTable, app_id: &str) -> Result<Option<Vec<String>>> {
    let mut commits = table.history(None);
    while let Some(c) = commits.try_next().await.map_err(|e| Error::engine("delta history", e.to_string()))? {
        let Some(appended) = c.info.get(APPENDED) else { continue };
        if appended.get("id").and_then(|v| v.as_str()) != Some(app_id) {
            continue;
        }
        let files = appended.get("files").and_then(|f| f.as_array()).cloned().unwrap_or_default();
        return Ok(Some(files.iter().filter_map(|f| f.as_str().map(str::to_string)).collect()));
    }
    Ok(None)
}

/// A log path with its `%XX` escapes decoded (the log stores partition folders escaped; file views may not).
fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const FENCED: &str = "fenced: ";

fn fenced(location: &TableLocation, app_id: &str, expected: Option<i64>, actual: Option<i64>) -> Error {
    let show = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "unset".into());
    let message = if expected.is_none() && actual.is_none() {
        format!("{FENCED}another writer committed {app_id} at the same time")
    } else {
        format!("{FENCED}{app_id} is at {} in the table, this writer expected {}", show(actual), show(expected))
    };
    Error::external_final(format!("delta commit to {location}"), message)
}

/// Whether `e` is a conditional commit refused because another writer moved its application transaction.
pub fn is_fenced(e: &Error) -> bool {
    matches!(e, Error::External { message, .. } if message.starts_with(FENCED))
}

/// The versions recorded for `app_ids` in the table's log (None for an id never committed, or no table).
pub async fn transaction_versions(location: &TableLocation, app_ids: &[String]) -> Result<Vec<Option<i64>>> {
    if !exists(location).await? {
        return Ok(vec![None; app_ids.len()]);
    }
    let table = open(location, None).await?;
    let snapshot = table.snapshot().map_err(|e| delta_error("delta snapshot", e))?;
    let mut out = Vec::with_capacity(app_ids.len());
    for id in app_ids {
        out.push(
            snapshot
                .transaction_version(table.log_store().as_ref(), id)
                .await
                .map_err(|e| delta_error("delta transactions", e))?,
        );
    }
    Ok(out)
}

/// The data files of a Delta table's version, for an engine that reads Parquet files itself (Ballista's executors
/// cannot open a Delta table: its log is read here and the engine is handed the files).
#[derive(Debug, Clone)]
pub struct DeltaFiles {
    pub version: u64,
    /// The table's columns as weir's own engine reads them: data columns, then partition columns.
    pub schema: SchemaRef,
    pub partition_columns: Vec<String>,
    /// Each file's URL and its partition values (in `partition_columns` order; `None` is null), as the log gives
    /// them: text that the partition column's type parses.
    pub files: Vec<(String, Vec<Option<String>>)>,
}

/// The files a Delta table's latest version is made of (see [`files_at`]).
pub async fn current_files(location: &TableLocation) -> Result<DeltaFiles> {
    files_at(location, None).await
}

/// The files of a Delta table's `version` (its latest when None). Tables whose files alone do not give their rows
/// are refused: deletion vectors (rows deleted from a file are marked beside it) and column mapping (file columns
/// have other names than the table's). weir's own tables use neither.
pub async fn files_at(location: &TableLocation, version: Option<u64>) -> Result<DeltaFiles> {
    let failed = |e: deltalake::DeltaTableError| Error::engine(format!("read the log of {location}"), e);
    let table = open(location, version).await?;
    let state = table.snapshot().map_err(failed)?;
    let mapping = state.metadata().configuration().get("delta.columnMapping.mode").map(String::as_str);
    if !matches!(mapping, None | Some("none")) {
        return Err(Error::data(
            Default::default(),
            format!(
                "{location} uses Delta column mapping, which a remote engine reading its Parquet files cannot resolve"
            ),
        ));
    }
    let partition_columns = state.metadata().partition_columns().to_vec();
    let views: Vec<_> =
        state.snapshot().file_views(table.log_store().as_ref(), None).try_collect().await.map_err(failed)?;
    let mut files = Vec::with_capacity(views.len());
    for view in views {
        if view.deletion_vector_descriptor().is_some() {
            return Err(Error::data(
                Default::default(),
                format!("{location}: file {} has deleted rows marked in a deletion vector, which a remote engine reading Parquet files would not apply", view.path()),
            ));
        }
        let values = view.partition_values_map();
        let url = file_url(&location.url, &view.path())?;
        files.push((url, partition_columns.iter().map(|c| values.get(c).cloned().flatten()).collect()));
    }
    let provider = table.table_provider().await.map_err(|e| Error::engine(format!("read {location}"), e))?;
    Ok(DeltaFiles {
        version: table.version().unwrap_or(0).max(0) as u64,
        schema: provider.schema(),
        partition_columns,
        files,
    })
}

/// The URL of a file a Delta log names by its (decoded) path relative to the table, or by a full URL.
fn file_url(table: &url::Url, path: &str) -> Result<String> {
    if path.contains("://") {
        return Ok(path.to_string());
    }
    let relative: Vec<String> = path.split('/').map(encode_segment).collect();
    table
        .join(&relative.join("/"))
        .map(|u| u.to_string())
        .map_err(|e| Error::data(Default::default(), format!("{table}: file `{path}`: {e}")))
}

/// A file's URL as Hadoop's `Path` (Apache Spark's file systems) takes it: its path not percent-encoded, since
/// `Path` encodes it again (a folder named `ts=00%3A00` is written `ts=00%253A00` in the URL and meant literally).
pub fn hadoop_path(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else { return url.to_string() };
    let path = percent_encoding::percent_decode_str(parsed.path()).decode_utf8_lossy().into_owned();
    let authority = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    };
    format!("{}://{authority}{path}", parsed.scheme())
}

pub fn arrow_of(schema: &StructType) -> Result<Schema> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
    schema.try_into_arrow().map_err(|e| Error::engine("delta schema", e))
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields()).all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// One entry of a table's history.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub version: u64,
    pub timestamp: Option<i64>,
    pub operation: String,
    pub parameters: String,
    pub metrics: String,
    pub app: String,
}

/// The commits of a table, newest first.
pub async fn history(location: &TableLocation, limit: Option<usize>) -> Result<Vec<HistoryEntry>> {
    let table = open(location, None).await?;
    let latest = table.version().unwrap_or(0);
    let infos: Vec<_> = table.history(limit).try_collect().await.map_err(|e| delta_error("delta history", e))?;
    Ok(infos
        .into_iter()
        .enumerate()
        .map(|(i, c)| HistoryEntry {
            version: latest.saturating_sub(i as u64),
            timestamp: c.timestamp,
            operation: c.operation.clone().unwrap_or_default(),
            parameters: serde_json::to_string(&c.operation_parameters.clone().unwrap_or_default()).unwrap_or_default(),
            metrics: c.info.get("operationMetrics").map(|v| v.to_string()).unwrap_or_default(),
            app: c.info.get("weir_rows").map(|v| format!("{v} rows")).unwrap_or_default(),
        })
        .collect())
}

/// What `optimize` did.
#[derive(Debug, Clone, Default)]
pub struct OptimizeSummary {
    pub files_added: u64,
    pub files_removed: u64,
    pub version: u64,
}

/// Compacts small files into files of about `target_size` bytes (or Z-orders them by `zorder` columns), in one
/// commit that changes no data.
pub async fn optimize(
    location: &TableLocation,
    target_size: Option<u64>,
    zorder: Vec<String>,
) -> Result<OptimizeSummary> {
    use deltalake::operations::optimize::OptimizeType;
    let table = open(location, None).await?;
    let mut builder = table.optimize();
    if !zorder.is_empty() {
        builder = builder.with_type(OptimizeType::ZOrder(zorder));
    }
    if let Some(size) = target_size.and_then(std::num::NonZeroU64::new) {
        builder = builder.with_target_size(size);
    }
    let (table, metrics) = builder.await.map_err(|e| delta_error("optimize", e))?;
    Ok(OptimizeSummary {
        files_added: metrics.num_files_added,
        files_removed: metrics.num_files_removed,
        version: table.version().unwrap_or(0),
    })
}

/// Deletes files no version newer than `retain_hours` needs: files removed by earlier commits, and files a killed
/// run wrote but never committed. A retention below the table's (7 days by default) is refused, because a reader
/// or writer still working on an older version could lose its files.
pub async fn vacuum(location: &TableLocation, retain_hours: Option<u64>, dry_run: bool) -> Result<Vec<String>> {
    use deltalake::operations::vacuum::VacuumMode;
    let table = open(location, None).await?;
    let mut builder = table.vacuum().with_mode(VacuumMode::Full).with_dry_run(dry_run);
    if let Some(h) = retain_hours {
        builder = builder.with_retention_period(chrono::Duration::hours(h as i64));
    }
    let (_, metrics) = builder.await.map_err(|e| {
        let text = e.to_string();
        if text.contains("retention") {
            Error::data(
                Default::default(),
                format!("{text}: files younger than the table's retention may still be read by a running query or writer; keep at least the table's `delta.deletedFileRetentionDuration` (default 168 hours)"),
            )
        } else {
            delta_error("vacuum", e)
        }
    })?;
    Ok(metrics.files_deleted)
}

/// Makes `version` the table's current state again, as a new commit (history is kept).
pub async fn restore(location: &TableLocation, version: u64) -> Result<(u64, usize, usize)> {
    let table = open(location, None).await?;
    let latest = table.version().unwrap_or(0);
    if version > latest {
        return Err(Error::data(
            Default::default(),
            format!("the table has no version {version}; its versions are 0 to {latest}"),
        ));
    }
    let (table, metrics) = table
        .restore()
        .with_version_to_restore(version)
        .await
        .map_err(|e| Error::data(Default::default(), format!("restore version {version}: {e}")))?;
    Ok((table.version().unwrap_or(0), metrics.num_restored_file, metrics.num_removed_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files another engine wrote into the write's folder are committed with the partition's values and their rows,
    /// and a later replace of the same day removes them: the table holds each day's rows once.
    #[test]
    fn files_written_elsewhere_join_the_commit_of_their_partition() {
        use arrow::array::Int64Array;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let location = TableLocation::local(&dir.path().join("gold").join("t"));
        let schema = Schema::new(vec![Field::new("n", DataType::Int64, true)]);
        let options = |day: &str| DeltaWriteOptions {
            mode: WriteMode::ReplacePartitions,
            partition_by: Vec::new(),
            static_partition: vec![("date".into(), day.into())],
            compression: parquet::basic::Compression::SNAPPY,
            row_group_rows: 1024,
            target_file_size: 1 << 20,
            app_id: format!("weir/p/t/{day}"),
            replace_interval: true,
            keys: Vec::new(),
            delete_when: None,
            scd2_as_of: None,
            commit_info: Vec::new(),
        };
        // What an executor does: Parquet files with the table's file columns, in the folder it was given.
        let write_elsewhere = |folder_url: &url::Url, name: &str, values: Vec<i64>, file_schema: &SchemaRef| {
            let dir = folder_url.to_file_path().unwrap();
            std::fs::create_dir_all(&dir).unwrap();
            let batch = RecordBatch::try_new(file_schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap();
            let file = std::fs::File::create(dir.join(name)).unwrap();
            let mut writer = parquet::arrow::ArrowWriter::try_new(file, file_schema.clone(), None).unwrap();
            writer.write(&batch).unwrap();
            writer.close().unwrap();
        };
        runtime.block_on(async {
            for (version, values) in [(0, vec![1, 2, 3]), (1, vec![4, 5])] {
                let mut writer = DeltaTableWriter::open(&location, &schema, options("2026-03-25")).await.unwrap();
                let file_schema = writer.file_schema();
                assert_eq!(file_schema.fields().len(), 1, "the partition column is not in the files");
                let (folder, url) = writer.folder_for_other_writers().unwrap();
                assert!(folder.starts_with("date=2026-03-25/weir-"), "{folder}");
                let (a, b) = values.split_at(1);
                write_elsewhere(&url, "a_0.parquet", a.to_vec(), &file_schema);
                write_elsewhere(&url, "b_0.parquet", b.to_vec(), &file_schema);
                assert_eq!(writer.add_files_written_in(&folder).await.unwrap(), values.len() as u64);
                let summary = writer.commit().await.unwrap();
                assert_eq!((summary.version, summary.rows, summary.files), (version, values.len() as u64, 2));
                assert_eq!(summary.partitions, ["date=2026-03-25"]);
            }
            let current = current_files(&location).await.unwrap();
            assert_eq!(current.files.len(), 2, "the second run replaced the first run's files: {:?}", current.files);
            let mut sum = 0;
            for (url, values) in &current.files {
                assert_eq!(values, &[Some("2026-03-25".to_string())]);
                let file = std::fs::File::open(url::Url::parse(url).unwrap().to_file_path().unwrap()).unwrap();
                let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
                for batch in reader {
                    let batch = batch.unwrap();
                    sum += batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().iter().flatten().sum::<i64>();
                }
            }
            assert_eq!(sum, 9, "the day holds the second run's rows only");
        });
    }

    /// Files another engine wrote carry the statistics weir's own writer records for the same rows (deltalake's
    /// form is the oracle), except where a bound would not hold for every row: a timestamp's upper bound is rounded
    /// up to the millisecond, floating point and long text get none, and a row group without statistics leaves its
    /// column without bounds.
    #[test]
    fn files_written_elsewhere_carry_bounds_that_hold_for_every_row() {
        use arrow::array::{Date32Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let long = "a text longer than thirty-two characters, which Delta cuts";
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("unstated", DataType::Int64, true),
        ]));
        // 2026-03-25 10:15:00.000250, 10:15:00.500250 and 10:15:00 UTC; days 20537 = 2026-03-25.
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None, Some(-3)])),
                Arc::new(Date32Array::from(vec![20537, 20536, 20538])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        1_774_433_700_000_250,
                        1_774_433_700_500_250,
                        1_774_433_700_000_000,
                    ])
                    .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec!["b", "a", "c"])),
                Arc::new(Float64Array::from(vec![1.5, f64::NAN, 2.0])),
                Arc::new(StringArray::from(vec![Some("short"), Some(long), None])),
                Arc::new(Int64Array::from(vec![1, 2, 3])),
            ],
        )
        .unwrap();
        let options = DeltaWriteOptions {
            mode: WriteMode::Append,
            partition_by: Vec::new(),
            static_partition: Vec::new(),
            compression: parquet::basic::Compression::SNAPPY,
            row_group_rows: 1024,
            target_file_size: 1 << 20,
            app_id: "weir/p/t".into(),
            replace_interval: false,
            keys: Vec::new(),
            delete_when: None,
            scd2_as_of: None,
            commit_info: Vec::new(),
        };
        let first_stats = |table: &Path| -> serde_json::Value {
            let log = std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json")).unwrap();
            let add = log
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .find(|a| a.get("add").is_some());
            serde_json::from_str(add.unwrap()["add"]["stats"].as_str().unwrap()).unwrap()
        };
        runtime.block_on(async {
            // weir's own writer.
            let own = dir.path().join("own");
            let mut writer =
                DeltaTableWriter::open(&TableLocation::local(&own), &schema, options.clone()).await.unwrap();
            writer.write(&batch).await.unwrap();
            writer.commit().await.unwrap();
            let own = first_stats(&own);

            // Another engine's file: one row per row group, and the column `unstated` written without statistics.
            let elsewhere = dir.path().join("elsewhere");
            let mut writer = DeltaTableWriter::open(&TableLocation::local(&elsewhere), &schema, options).await.unwrap();
            let (folder, url) = writer.folder_for_other_writers().unwrap();
            let folder_path = url.to_file_path().unwrap();
            std::fs::create_dir_all(&folder_path).unwrap();
            let properties = parquet::file::properties::WriterProperties::builder()
                .set_max_row_group_row_count(Some(1))
                .set_column_statistics_enabled("unstated".into(), parquet::file::properties::EnabledStatistics::None)
                .build();
            let file = std::fs::File::create(folder_path.join("part-0.parquet")).unwrap();
            let mut parquet = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
            parquet.write(&batch).unwrap();
            parquet.close().unwrap();
            assert_eq!(writer.add_files_written_in(&folder).await.unwrap(), 3);
            writer.commit().await.unwrap();
            let theirs = first_stats(&elsewhere);

            assert_eq!(theirs["numRecords"], 3);
            for column in ["id", "day", "name"] {
                assert_eq!(theirs["minValues"][column], own["minValues"][column], "min of {column}: {theirs}");
                assert_eq!(theirs["maxValues"][column], own["maxValues"][column], "max of {column}: {theirs}");
            }
            for column in ["id", "day", "at", "name", "amount", "note"] {
                assert_eq!(theirs["nullCount"][column], own["nullCount"][column], "nulls of {column}: {theirs}");
            }
            assert_eq!(theirs["minValues"]["at"], own["minValues"]["at"], "{theirs}");
            assert_eq!(theirs["minValues"]["at"], "2026-03-25T10:15:00Z");
            assert_eq!(theirs["maxValues"]["at"], "2026-03-25T10:15:00.501Z");
            assert_eq!(theirs["minValues"]["day"], "2026-03-24");
            for unbounded in ["amount", "note", "unstated"] {
                assert!(theirs["minValues"].get(unbounded).is_none(), "{unbounded} has a lower bound: {theirs}");
                assert!(theirs["maxValues"].get(unbounded).is_none(), "{unbounded} has an upper bound: {theirs}");
            }
        });
    }

    #[test]
    fn file_urls_escape_what_a_partition_folder_may_hold() {
        let table = url::Url::parse("s3://bucket/lake/silver/orders/").unwrap();
        assert_eq!(
            file_url(&table, "date=2026-03-25/part-00000.parquet").unwrap(),
            "s3://bucket/lake/silver/orders/date=2026-03-25/part-00000.parquet"
        );
        // The log's path, decoded, names a folder that holds `%2F` and a space as themselves.
        assert_eq!(
            file_url(&table, "city=a%2Fb c/part.parquet").unwrap(),
            "s3://bucket/lake/silver/orders/city=a%252Fb%20c/part.parquet"
        );
        assert_eq!(file_url(&table, "s3://other/x.parquet").unwrap(), "s3://other/x.parquet");
    }
}

/// One segment of a path inside a table, as a URL path and a Delta log's `path` write it: every byte but letters,
/// digits and `-._~=` is escaped, so a `%` or a space in a partition value's folder name reaches the store as itself.
fn encode_segment(segment: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'=');
    utf8_percent_encode(segment, SEGMENT).to_string()
}
