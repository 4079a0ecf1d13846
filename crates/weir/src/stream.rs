//! `weir stream FILE`: runs a stream until its source ends (a file), `--max-events`, `--until-idle`, or Ctrl-C or
//! SIGTERM (either finishes the current micro-batch, commits and checkpoints before exiting); `--report` joins labels with
//! the stream's alerts into precision and recall per rule.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
pub use weir_stream::metrics::{MetricsSnapshot, DECISION_NAMES};
use weir_stream::{RunOptions, StreamConfig, StreamEnv};

use crate::{exit, Exit};

#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    pub max_events: Option<u64>,
    pub until_idle: Option<String>,
    pub instance: Option<String>,
    pub metrics: Option<String>,
    pub report: bool,
    pub labels: Option<std::path::PathBuf>,
}

fn load(file: &Path) -> Result<StreamConfig, Exit> {
    StreamConfig::load(file).map_err(|ds| {
        let text = ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        exit(2, anyhow!("{} problem{} in the stream file:\n{text}", ds.len(), if ds.len() == 1 { "" } else { "s" }))
    })
}

/// What a stream run did: its figures when it stopped, the summary `weir stream` prints, and the rows each sink
/// took.
pub struct StreamOutcome {
    /// The stream's `name`.
    pub stream: String,
    pub figures: MetricsSnapshot,
    pub summary: String,
    pub written: Vec<(String, u64)>,
}

pub async fn stream(project: &Path, file: &Path, o: StreamOptions) -> Result<(), Exit> {
    if o.report {
        let config = load(file)?;
        let env = StreamEnv::discover(project, file, tokio::runtime::Handle::current())?;
        let result = weir_stream::report::report(&config, &env, o.labels.as_deref()).await?;
        print_report(&config.name, &result);
        return Ok(());
    }
    let outcome = run(project, file, &o).await?;
    println!("{}", outcome.summary);
    for (sink, rows) in outcome.written {
        println!("  {sink}: {rows} rows");
    }
    Ok(())
}

/// Runs the stream until its source ends, `max_events`, `until_idle`, or Ctrl-C / SIGTERM.
pub async fn run(project: &Path, file: &Path, o: &StreamOptions) -> Result<StreamOutcome, Exit> {
    let config = Arc::new(load(file)?);
    let env = StreamEnv::discover(project, file, tokio::runtime::Handle::current())?;
    let idle_stop = match &o.until_idle {
        Some(d) => Some(Duration::from_millis(
            weir_stream::config::parse_millis(d).map_err(|e| exit(2, anyhow!("--until-idle: {e}")))? as u64,
        )),
        None => None,
    };
    let options = RunOptions {
        instance: o.instance.clone().unwrap_or_else(|| "0".into()),
        max_events: o.max_events,
        idle_stop,
        ..Default::default()
    };
    let stop = options.stop.clone();
    let built = {
        let (config, env, options) = (config.clone(), env.clone(), options.clone());
        tokio::task::spawn_blocking(move || weir_stream::Stream::build(config, env, options))
            .await
            .map_err(|e| anyhow!("stream start: {e}"))??
    };
    let metrics = built.metrics();
    if let Some(addr) = &o.metrics {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| exit(2, anyhow!("cannot listen on {addr}: {e}")))?;
        let local = listener.local_addr().map_err(|e| anyhow!("listener: {e}"))?;
        println!("metrics at http://{local}/metrics");
        let m = metrics.clone();
        tokio::spawn(weir_server::serve_metrics(
            listener,
            Arc::new(move || {
                let mut text = String::new();
                m.prometheus(&mut text);
                text
            }),
        ));
    }
    println!(
        "stream {} started ({} rules, {} windows, delivery {})",
        config.name,
        config.rules.len(),
        config.windows.len(),
        config.delivery.as_str()
    );
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let handle = std::thread::Builder::new()
        .name(format!("weir-stream-{}", config.name))
        .spawn(move || {
            let mut stream = built;
            let result = stream.run().map(|_| stream.written());
            let _ = done_tx.send(());
            result
        })
        .map_err(|e| anyhow!("cannot start the stream thread: {e}"))?;
    tokio::select! {
        _ = done_rx => {}
        signal = stop_signal() => {
            eprintln!("{signal}: finishing the current batch, committing and checkpointing");
            stop.store(true, Ordering::Relaxed);
        }
    }
    let written = tokio::task::spawn_blocking(move || handle.join())
        .await
        .map_err(|e| anyhow!("stream thread: {e}"))?
        .map_err(|_| anyhow!("the stream thread panicked (please report)"))??;
    Ok(StreamOutcome { stream: config.name.clone(), figures: metrics.snapshot(), summary: metrics.summary(), written })
}

/// Ctrl-C, or SIGTERM (what a service manager or Kubernetes sends to stop a process): both end a stream cleanly.
async fn stop_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the stream cleanly");
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = term.recv() => "terminated",
    }
}

pub fn print_report(stream: &str, result: &[weir_stream::report::RuleQuality]) {
    let pct = |v: Option<f64>| v.map(|x| format!("{:.1}%", x * 100.0)).unwrap_or_else(|| "-".into());
    println!("rule quality of stream {stream} (stored in streams.{}_rule_quality):", stream.replace('-', "_"));
    println!(
        "  {:<24} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8}",
        "rule", "flagged", "true+", "false+", "unlabelled", "precision", "recall"
    );
    for q in result {
        println!(
            "  {:<24} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8}",
            q.rule,
            q.flagged,
            q.true_positives,
            q.false_positives,
            q.unlabelled,
            pct(q.precision()),
            pct(q.recall())
        );
    }
}
