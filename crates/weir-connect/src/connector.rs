//! The contract between weir and its batch connectors (`crate::registry` finds one by its `type:`).
//!
//! A source is a [`BatchSource`]: parsed once from its YAML block (purely: no file, network or secret is touched),
//! then opened per run into a stream of Arrow record batches. A sink is a [`BatchSink`]: parsed once, then per run
//! it [begins](BatchSink::begin) a [`SinkLoad`] that takes batches and commits them (with the task's rejects) or, when
//! dropped without a commit, leaves the target as it was. Each says what it guarantees (see [`Guarantee`]).
//!
//! Adding a connector is one file in this crate that implements one of the traits, plus one line in
//! [`crate::registry::Registry::builtin`] (see `docs/connectors.md`). Lake tables (`type: lake`) are not connectors:
//! they are read through DataFusion and written with contracts and schema history by weir-engine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Deserialize;
use weir_config::project::Connection;
use weir_config::{Diagnostic, Node};
use weir_core::cursor::CursorWindow;
use weir_core::{Error, Result};

use crate::connection::RejectRows;

/// A stream of batches that all have `schema`.
pub struct SourceStream {
    pub schema: SchemaRef,
    pub batches: BoxStream<'static, Result<RecordBatch>>,
    /// Bytes the source will read, when known (for progress).
    pub total_bytes: Option<u64>,
    /// Bytes read so far, updated as the source reads.
    pub bytes_read: Arc<std::sync::atomic::AtomicU64>,
    /// Records the source set aside (`on_error: quarantine`), to drain as batches arrive.
    pub rejects: Option<crate::tolerant::SourceRejects>,
    /// A resumable source's progress: the cursor to commit with the data, and the checkpoint to clear after.
    pub checkpoint: Option<SourceCheckpoint>,
}

impl SourceStream {
    /// Rows with nothing else to report: no byte counts, no set-aside records, no cursor to commit.
    pub fn new(schema: SchemaRef, batches: BoxStream<'static, Result<RecordBatch>>) -> SourceStream {
        SourceStream {
            schema,
            batches,
            total_bytes: None,
            bytes_read: Default::default(),
            rejects: None,
            checkpoint: None,
        }
    }
}

/// What a source tells the engine after it was read: the cursor to commit, and the spool to delete afterwards.
#[derive(Debug, Clone)]
pub struct SourceCheckpoint {
    /// The highest cursor value read (starting from `after`).
    pub cursor: Arc<Mutex<Option<String>>>,
    /// Where the read started: the lower bound of its cursor window.
    pub after: Option<String>,
    /// The pages to forget once committed (sources that spool).
    pub spool_dir: Option<PathBuf>,
}

impl SourceCheckpoint {
    pub fn cursor(&self) -> Option<String> {
        self.cursor.lock().ok().and_then(|c| c.clone())
    }

    /// Forgets the pages of a run whose data is committed.
    pub fn clear(&self) {
        let Some(dir) = &self.spool_dir else { return };
        if let Err(e) = std::fs::remove_dir_all(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove the spool");
            }
        }
    }
}

/// The batches a producer task sends through `rx`, as a source's stream (it ends when every sender is gone).
pub fn batches_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<RecordBatch>>,
) -> BoxStream<'static, Result<RecordBatch>> {
    use futures::StreamExt;
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Where and how a run uses a connector: given by the engine when it opens a source or begins a load.
#[derive(Debug, Clone)]
pub struct ConnectorRun<'a> {
    /// Relative paths in settings are relative to the project.
    pub project_dir: &'a Path,
    /// weir.yaml's `connections:`, for a `connection: NAME` setting.
    pub connections: &'a BTreeMap<String, Connection>,
    /// Rows per batch.
    pub batch_rows: usize,
}

impl ConnectorRun<'_> {
    /// The weir.yaml connection `name`, which must be of `type: kind`; `what` names the connector asking (`a
    /// postgres sink`), for the error.
    pub fn connection(&self, name: &str, kind: &str, what: &str) -> Result<&Connection> {
        let connection = self
            .connections
            .get(name)
            .ok_or_else(|| Error::config(Default::default(), format!("no connection `{name}` in weir.yaml")))?;
        if connection.kind != kind {
            return Err(Error::config(
                Default::default(),
                format!("connection `{name}` is a {} connection; {what} needs a {kind} connection", connection.kind),
            ));
        }
        Ok(connection)
    }

    /// A database URL given inline or as a weir.yaml connection; secrets (`${env:..}`, `${file:..}`) are resolved
    /// here, at run time, never at validation.
    /// `kind` is the connection type it must be, `what` the connector asking (`a postgres sink`).
    pub fn database_url(
        &self,
        url: Option<&String>,
        connection: Option<&String>,
        kind: &str,
        what: &str,
    ) -> Result<String> {
        match (url, connection) {
            (Some(url), _) => weir_config::project::resolve_env(url)
                .map_err(|e| Error::config(Default::default(), format!("database url: {e}"))),
            (None, Some(name)) => crate::connection::connection_url(self.connection(name, kind, what)?),
            (None, None) => Err(Error::config(Default::default(), "a database needs `url` or `connection`")),
        }
    }
}

/// What the engine gives one read of a source.
#[derive(Debug, Clone)]
pub struct SourceRun<'a> {
    pub connector: ConnectorRun<'a>,
    /// Ask a file source for the hidden file and line columns (to name a rejected row's position).
    pub positions: bool,
    /// For an incremental source: the cursor window to read (past the committed cursor, or an earlier interval's
    /// window again; empty on a first run or a full refresh).
    pub window: CursorWindow,
    /// This task's and interval's checkpoint folder, for a source that spools what it read.
    pub spool_dir: PathBuf,
    /// Whether the cursor commits with the data (a lake sink): only then may a source resume from its checkpoint
    /// chunk by chunk.
    pub cursor_commits_with_data: bool,
}

/// How a source reads incrementally: past a cursor committed with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incremental {
    /// It reads again part of what an earlier run read (`lookback`): only a merge folds that in once.
    pub lookback: bool,
}

/// A source of record batches.
pub trait BatchSource: std::fmt::Debug + Send + Sync {
    /// The `type:` it was parsed from.
    fn kind(&self) -> &str;

    /// What it reads, for lineage: a table, a query, a path or a URL (no secret).
    fn reads(&self) -> String;

    /// Whether it reads incrementally, and how.
    fn incremental(&self) -> Option<Incremental> {
        None
    }

    /// Its columns when they can be known without a request or a query (a file's header), for `weir validate`.
    fn known_columns(&self, _project_dir: &Path) -> Option<Vec<String>> {
        None
    }

    /// Starts reading. Called once per run, or twice when a step needs two passes (`fill_null: mean`).
    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>>;
}

/// How a sink loads a run's rows into its target table.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// The table holds the rows of the latest run.
    #[default]
    Replace,
    /// Each run's rows are added.
    Append,
    /// Rows update the row with the same keys, or are inserted.
    Merge,
}

impl LoadMode {
    /// The problem with a sink's `keys` for this mode: merge needs them, and only merge takes them.
    pub fn keys_problem(self, node: &Node, keys: &[String]) -> Option<Diagnostic> {
        ((self == LoadMode::Merge) == keys.is_empty())
            .then(|| Diagnostic::at(node, "`mode: merge` needs `keys: [column, ...]`, and only merge takes keys"))
    }
}

/// What a sink promises, for the README's re-run table and for `weir validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guarantee {
    /// The rows, the task's rejects and any cursor become visible together, or not at all.
    pub atomic: bool,
    /// What a re-run of the same interval leaves in the target.
    pub rerun: Rerun,
}

/// What running the same interval again leaves in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rerun {
    /// The target holds the latest run's rows only.
    ReplacesTable,
    /// The interval's earlier rows are replaced by the re-run's.
    ReplacesInterval,
    /// The re-run's rows are added again.
    AddsAgain,
    /// Each key holds its latest value.
    MergesByKey,
}

impl From<LoadMode> for Rerun {
    fn from(mode: LoadMode) -> Rerun {
        match mode {
            LoadMode::Replace => Rerun::ReplacesTable,
            LoadMode::Append => Rerun::AddsAgain,
            LoadMode::Merge => Rerun::MergesByKey,
        }
    }
}

/// A sink that loads record batches into a table outside the lake.
pub trait BatchSink: std::fmt::Debug + Send + Sync {
    /// The `type:` it was parsed from.
    fn kind(&self) -> &str;

    /// The table it loads, as written in the sink block (`public.orders`).
    fn table(&self) -> &str;

    /// How a load changes the table (`replace`, `append`, `merge` on keys).
    fn mode(&self) -> LoadMode;

    /// The target for reports and lineage, such as `postgres:public.orders` (no secret).
    fn target(&self) -> String {
        format!("{}:{}", self.kind(), self.table())
    }

    /// The quarantine beside the target, such as `postgres:public.orders__rejected`.
    fn rejects_target(&self) -> String {
        format!("{}:{}", self.kind(), RejectRows::table_of(self.table()))
    }

    /// Every sink loads in one transaction (or its equivalent), so a load is atomic; re-runs follow the mode.
    fn guarantee(&self) -> Guarantee {
        Guarantee { atomic: true, rerun: self.mode().into() }
    }

    /// Opens one load of rows with `schema`. Nothing is visible before [`SinkLoad::commit`].
    fn begin<'a>(&'a self, run: ConnectorRun<'a>, schema: &'a Schema) -> BoxFuture<'a, Result<Box<dyn SinkLoad>>>;
}

/// One load in progress. Dropped without a commit, it leaves the target as it was.
pub trait SinkLoad: Send {
    fn write<'a>(&'a mut self, batch: &'a RecordBatch) -> BoxFuture<'a, Result<()>>;

    /// Makes the rows and the task's rejects visible together; returns the rows loaded.
    fn commit(self: Box<Self>, rejects: Option<RejectRows>) -> BoxFuture<'static, Result<u64>>;
}

/// How to read a source `type:` from its block.
#[derive(Clone, Copy)]
pub struct SourceKind {
    pub name: &'static str,
    pub parse: fn(&Node) -> std::result::Result<Box<dyn BatchSource>, Vec<Diagnostic>>,
}

/// How to read a sink `type:` from its block.
#[derive(Clone, Copy)]
pub struct SinkKind {
    pub name: &'static str,
    pub parse: fn(&Node) -> std::result::Result<Box<dyn BatchSink>, Vec<Diagnostic>>,
}
