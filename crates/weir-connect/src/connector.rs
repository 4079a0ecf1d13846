//! The contract between weir and its batch connectors, and the registry that finds a connector by its `type:`.
//!
//! A source is a [`BatchSource`]: parsed once from its YAML block (purely: no file, network or secret is touched),
//! then opened per run into a stream of Arrow record batches. A sink is a [`BatchSink`]: parsed once, then per run
//! it [begins](BatchSink::begin) a [`SinkLoad`] that takes batches and commits them (with the task's rejects) or, when
//! dropped without a commit, leaves the target as it was. Each says what it guarantees (see [`Guarantee`]).
//!
//! Adding a connector is one file in this crate that implements one of the traits, plus one line in
//! [`Registry::builtin`]. A project may also build its own registry ([`Registry::with_source`]) — the tests of
//! `weir-engine` add a toy source from a single test file this way. Lake tables (`type: lake`) are not connectors:
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
use weir_config::{Component, Diagnostic, Node};
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
pub fn batches_from(mut rx: tokio::sync::mpsc::Receiver<Result<RecordBatch>>) -> BoxStream<'static, Result<RecordBatch>> {
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
    /// A database URL given inline or as a weir.yaml connection; secrets (`${env:..}`, `${file:..}`) are resolved
    /// here, at run time, never at validation.
    pub fn database_url(&self, url: Option<&String>, connection: Option<&String>) -> Result<String> {
        match (url, connection) {
            (Some(url), _) => weir_config::project::resolve_env(url)
                .map_err(|e| Error::config(Default::default(), format!("database url: {e}"))),
            (None, Some(name)) => {
                let conn = self.connections.get(name).ok_or_else(|| {
                    Error::config(Default::default(), format!("no connection `{name}` in weir.yaml"))
                })?;
                crate::connection::connection_url(conn)
            }
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

    /// The target for reports and lineage, such as `postgres:public.orders` (no secret).
    fn target(&self) -> String;

    /// The quarantine beside the target, such as `postgres:public.orders__rejected`.
    fn rejects_target(&self) -> String;

    fn guarantee(&self) -> Guarantee;

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

/// The connectors a pipeline may name, by `type:`.
#[derive(Clone)]
pub struct Registry {
    sources: Vec<SourceKind>,
    sinks: Vec<SinkKind>,
}

impl Registry {
    /// Every connector of this crate: one line each.
    pub fn builtin() -> Registry {
        Registry { sources: Vec::new(), sinks: Vec::new() }
            .with_source(crate::file::CSV)
            .with_source(crate::file::JSON)
            .with_source(crate::file::NDJSON)
            .with_source(crate::file::PARQUET)
            .with_source(crate::http_api::SOURCE)
            .with_source(crate::postgres::SOURCE)
            .with_source(crate::mysql::SOURCE)
            .with_source(crate::sqlite::SOURCE)
            .with_sink(crate::postgres_sink::SINK)
            .with_sink(crate::sqlite::SINK)
    }

    /// The registry with one more source kind (replacing one of the same name).
    pub fn with_source(mut self, kind: SourceKind) -> Registry {
        self.sources.retain(|k| k.name != kind.name);
        self.sources.push(kind);
        self
    }

    /// The registry with one more sink kind (replacing one of the same name).
    pub fn with_sink(mut self, kind: SinkKind) -> Registry {
        self.sinks.retain(|k| k.name != kind.name);
        self.sinks.push(kind);
        self
    }

    pub fn source_kinds(&self) -> Vec<&'static str> {
        self.sources.iter().map(|k| k.name).collect()
    }

    pub fn sink_kinds(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|k| k.name).collect()
    }

    /// Reads a `source:` block; an unknown `type` lists the known ones (with `also`, kinds handled elsewhere).
    pub fn source(
        &self,
        component: &Component,
        also: &[&'static str],
    ) -> std::result::Result<Box<dyn BatchSource>, Vec<Diagnostic>> {
        match self.sources.iter().find(|k| k.name == component.kind) {
            Some(kind) => (kind.parse)(&component.node),
            None => Err(unknown("source", component, self.source_kinds(), also)),
        }
    }

    /// Reads a `sink:` block; an unknown `type` lists the known ones (with `also`, kinds handled elsewhere).
    pub fn sink(
        &self,
        component: &Component,
        also: &[&'static str],
    ) -> std::result::Result<Box<dyn BatchSink>, Vec<Diagnostic>> {
        match self.sinks.iter().find(|k| k.name == component.kind) {
            Some(kind) => (kind.parse)(&component.node),
            None => Err(unknown("sink", component, self.sink_kinds(), also)),
        }
    }
}

fn unknown(what: &str, component: &Component, mut kinds: Vec<&'static str>, also: &[&'static str]) -> Vec<Diagnostic> {
    kinds.extend_from_slice(also);
    let node = component.node.get("type").unwrap_or(&component.node);
    vec![Diagnostic::at(node, format!("unknown {what} type `{}`", component.kind))
        .with_hint(Some(weir_config::diag::suggest(&component.kind, &kinds)))]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The YAML examples in the module docs of the connectors, as a user would copy them.
    const DOCUMENTED: &[(&str, &str)] = &[
        ("file.rs", include_str!("file.rs")),
        ("http_api.rs", include_str!("http_api.rs")),
        ("postgres.rs", include_str!("postgres.rs")),
        ("mysql.rs", include_str!("mysql.rs")),
        ("sqlite.rs", include_str!("sqlite.rs")),
        ("postgres_sink.rs", include_str!("postgres_sink.rs")),
    ];

    fn doc_example(source: &str) -> String {
        let doc: Vec<&str> =
            source.lines().take_while(|l| l.starts_with("//!")).map(|l| l.trim_start_matches("//!")).collect();
        let start = doc.iter().position(|l| l.trim() == "```yaml").expect("a yaml example") + 1;
        let end = start + doc[start..].iter().position(|l| l.trim() == "```").expect("the example's end");
        doc[start..end].iter().map(|l| l.strip_prefix(' ').unwrap_or(l)).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_connector_parses_the_example_in_its_module_doc() {
        let registry = Registry::builtin();
        let mut seen = Vec::new();
        for (file, text) in DOCUMENTED {
            let example = doc_example(text);
            let root = weir_config::yaml::parse(&example).unwrap_or_else(|d| panic!("{file}: {d}\n{example}"));
            for (key, node) in root.as_map().unwrap_or_default() {
                let kind = node.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_string();
                let component = Component { kind: kind.clone(), node: node.clone() };
                let parsed = match key.as_str() {
                    Some("source") => registry.source(&component, &[]).map(|s| s.kind().to_string()),
                    Some("sink") => registry.sink(&component, &[]).map(|s| s.kind().to_string()),
                    other => panic!("{file}: unexpected key {other:?}"),
                };
                let text = parsed.map_err(|d| format!("{file}: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")));
                assert_eq!(text, Ok(kind.clone()), "{file}");
                seen.push(kind);
            }
        }
        for kind in ["csv", "http_api", "postgres", "mysql", "sqlite"] {
            assert!(seen.iter().any(|k| k == kind), "no documented example of `{kind}`");
        }
    }

    #[test]
    fn an_unknown_type_lists_the_known_ones() {
        let node = weir_config::yaml::parse("{type: csvv, path: x}").unwrap();
        let component = Component { kind: "csvv".into(), node };
        let err = Registry::builtin().source(&component, &["lake"]).unwrap_err();
        let text = err[0].to_string();
        assert!(text.contains("unknown source type `csvv`") && text.contains("csv"), "{text}");
    }
}
