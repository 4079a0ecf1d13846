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
/// A run that lasted this long was healthy: its failure starts the backoff again from the first step.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// How long to wait before restarting a stream whose run lasted `ran_for` and failed, when the wait before that
/// run was `previous` (None: the first failure): doubling while runs keep failing early, back to the first step
/// after a healthy run, so that one failure a day does not wait the maximum forever after.
fn next_backoff(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        Some(p) if ran_for < HEALTHY_RUN => (p * 2).min(MAX_BACKOFF),
        _ => FIRST_BACKOFF,
    }
}

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
        let metrics: Vec<Arc<StreamMetrics>> = self.streams.iter().filter_map(|s| s.metrics()).collect();
        crate::metrics::prometheus_text(&metrics)
    }
}

/// Runs one stream until it finishes, fails for good, or `stop`; restarts it after failures that may pass.
fn supervise(s: &Supervised, config: Arc<StreamConfig>, env: StreamEnv, instance: &str, stop: Arc<AtomicBool>) {
    let mut backoff: Option<Duration> = None;
    loop {
        let started = std::time::Instant::now();
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
                let backoff = *backoff.insert(next_backoff(backoff, started.elapsed()));
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
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_while_runs_fail_early_and_starts_over_after_a_healthy_run() {
        let early = Duration::from_secs(1);
        let mut b = None;
        let mut waits = Vec::new();
        for _ in 0..10 {
            b = Some(next_backoff(b, early));
            waits.push(b.unwrap().as_secs());
        }
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(next_backoff(b, HEALTHY_RUN), FIRST_BACKOFF, "a healthy run resets the backoff");
        assert_eq!(next_backoff(Some(FIRST_BACKOFF), early), Duration::from_secs(4));
    }
}
