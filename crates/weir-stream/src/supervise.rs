//! A project's streams (`streams/*.yaml`), run by `weir serve` next to the scheduler: each on its own thread,
//! restarted with backoff after a failure that may pass (a broker away, a sink refusing), and resuming from its
//! checkpoints each time; a failure that cannot pass by itself (a wrong expression, a broken checkpoint) stops that
//! stream and is shown until the file is fixed and the daemon restarted. Their metrics feed `/metrics` and the web
//! UI's streams page.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_core::error::RetryHint;

use crate::config::{SourceConfig, StreamConfig};
use crate::env::StreamEnv;
use crate::metrics::StreamMetrics;
use crate::runtime::{RunOptions, Stream};

/// What a supervised stream is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamStatus {
    Starting,
    Running,
    /// Its source ended (a file read to its end).
    Finished,
    /// It failed and is started again at `retry_at`.
    Retrying {
        error: String,
        retry_at: chrono::DateTime<chrono::Utc>,
    },
    /// It failed in a way a restart would repeat.
    Failed {
        error: String,
    },
    Stopped,
}

impl StreamStatus {
    pub fn label(&self) -> &'static str {
        match self {
            StreamStatus::Starting => "starting",
            StreamStatus::Running => "running",
            StreamStatus::Finished => "finished",
            StreamStatus::Retrying { .. } => "retrying",
            StreamStatus::Failed { .. } => "failed",
            StreamStatus::Stopped => "stopped",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            StreamStatus::Retrying { error, .. } | StreamStatus::Failed { error } => Some(error),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct State {
    status: StreamStatus,
    metrics: Option<Arc<StreamMetrics>>,
    restarts: u32,
}

/// One stream of the project and what it is doing now.
#[derive(Debug)]
pub struct Supervised {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    /// Where its events come from, for people (`kafka payments @ host:9092`, `ndjson payments.ndjson`).
    pub source: String,
    pub rules: Vec<String>,
    pub outputs: Vec<String>,
    pub delivery: String,
    state: Mutex<State>,
}

impl Supervised {
    pub fn status(&self) -> StreamStatus {
        self.lock().status.clone()
    }

    pub fn restarts(&self) -> u32 {
        self.lock().restarts
    }

    /// The metrics of its current (or last) run.
    pub fn metrics(&self) -> Option<Arc<StreamMetrics>> {
        self.lock().metrics.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, status: StreamStatus) {
        self.lock().status = status;
    }
}

/// Every stream of a project, and the files that did not load.
#[derive(Debug, Default)]
pub struct ProjectStreams {
    pub streams: Vec<Arc<Supervised>>,
    pub broken: Vec<(PathBuf, String)>,
    stop: Arc<AtomicBool>,
}

/// The stream files of a project folder (`streams/*.yaml`), sorted.
pub fn stream_files(project_dir: &Path) -> Vec<PathBuf> {
    weir_config::project::yaml_files(&project_dir.join("streams"))
}

fn describe_source(config: &StreamConfig) -> String {
    match &config.source {
        SourceConfig::Kafka(k) => format!("kafka {} @ {} (group {})", k.topics.join(","), k.brokers, k.group),
        SourceConfig::Ndjson { path, .. } => format!("ndjson {path}"),
        SourceConfig::Generator(g) => format!("generator ({} events)", g.events),
    }
}

const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl ProjectStreams {
    /// Loads every stream file of the project and starts each stream on its own thread. `instance` tells this
    /// process apart from others running the same streams (the Kafka transactional id).
    pub fn start(project_dir: &Path, runtime: tokio::runtime::Handle, instance: &str) -> ProjectStreams {
        let mut out = ProjectStreams::default();
        for file in stream_files(project_dir) {
            let config = match StreamConfig::load(&file) {
                Ok(c) => Arc::new(c),
                Err(ds) => {
                    out.broken.push((file, ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
                    continue;
                }
            };
            let env = match StreamEnv::discover(project_dir, &file, runtime.clone()) {
                Ok(e) => e,
                Err(e) => {
                    out.broken.push((file, format!("{e}")));
                    continue;
                }
            };
            let supervised = Arc::new(Supervised {
                name: config.name.clone(),
                file: file.clone(),
                description: config.description.clone(),
                source: describe_source(&config),
                rules: config.rules.iter().map(|r| r.name.clone()).collect(),
                outputs: config.outputs.all().map(|(k, s)| format!("{} -> {}", k.as_str(), s.describe())).collect(),
                delivery: config.delivery.as_str().to_string(),
                state: Mutex::new(State { status: StreamStatus::Starting, metrics: None, restarts: 0 }),
            });
            let (s, stop, instance) = (supervised.clone(), out.stop.clone(), instance.to_string());
            let spawned = std::thread::Builder::new()
                .name(format!("weir-stream-{}", config.name))
                .spawn(move || supervise(&s, config, env, &instance, stop));
            match spawned {
                Ok(_) => out.streams.push(supervised),
                Err(e) => out.broken.push((file, format!("cannot start its thread: {e}"))),
            }
        }
        out
    }

    /// Asks every stream to finish its batch, commit and checkpoint, and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The Prometheus exposition of every running (or last run) stream.
    pub fn prometheus(&self) -> String {
        let mut text = String::new();
        for s in &self.streams {
            if let Some(m) = s.metrics() {
                m.prometheus(&mut text);
            }
        }
        text
    }
}

/// Runs one stream until it finishes, fails for good, or `stop`; restarts it after failures that may pass.
fn supervise(s: &Supervised, config: Arc<StreamConfig>, env: StreamEnv, instance: &str, stop: Arc<AtomicBool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let options = RunOptions { instance: instance.to_string(), stop: stop.clone(), ..Default::default() };
        s.set(StreamStatus::Starting);
        let outcome = Stream::build(config.clone(), env.clone(), options).and_then(|mut stream| {
            s.lock().metrics = Some(stream.metrics());
            s.set(StreamStatus::Running);
            tracing::info!(stream = %s.name, "stream started");
            stream.run()
        });
        match outcome {
            Ok(()) if stop.load(Ordering::Relaxed) => {
                s.set(StreamStatus::Stopped);
                return;
            }
            Ok(()) => {
                tracing::info!(stream = %s.name, "stream finished: its source ended");
                s.set(StreamStatus::Finished);
                return;
            }
            Err(e) if e.retry_hint() == RetryHint::Never => {
                tracing::error!(stream = %s.name, error = %format!("{e:#}"), "stream failed (not retried: fix the stream file or its inputs and restart)");
                s.set(StreamStatus::Failed { error: format!("{e:#}") });
                return;
            }
            Err(e) => {
                let retry_at = chrono::Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
                tracing::warn!(stream = %s.name, error = %format!("{e:#}"), retry_in_s = backoff.as_secs(), "stream failed; restarting from its checkpoints");
                s.set(StreamStatus::Retrying { error: format!("{e:#}"), retry_at });
                s.lock().restarts += 1;
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        s.set(StreamStatus::Stopped);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
