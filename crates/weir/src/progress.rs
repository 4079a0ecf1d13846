//! Progress of long work: a live bar on a terminal (rows, bytes, rate), periodic structured log lines otherwise, so
//! CI logs and schedulers get the same facts without escape codes.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use weir_engine::task::ProgressFn;
use weir_engine::Progress;

pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

pub struct TaskProgress {
    bar: Option<ProgressBar>,
}

impl TaskProgress {
    pub fn start(task: &str) -> TaskProgress {
        let bar = interactive().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(task.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        TaskProgress { bar }
    }

    /// A callback for the task runner.
    pub fn callback(&self, task: &str) -> ProgressFn {
        let bar = self.bar.clone();
        let task = task.to_string();
        let started = Instant::now();
        let last_log = Arc::new(Mutex::new(Instant::now()));
        Arc::new(move |p: Progress| {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let rate = p.rows_read as f64 / secs;
            let bytes = match p.total_bytes {
                Some(t) if t > 0 => format!("{} / {}", HumanBytes(p.bytes_read), HumanBytes(t)),
                _ => String::new(),
            };
            let msg = format!("{} rows read, {} written  {bytes}  {:.0} rows/s", p.rows_read, p.rows_written, rate);
            match &bar {
                Some(b) => b.set_message(msg),
                None => {
                    if let Ok(mut last) = last_log.lock() {
                        if last.elapsed() >= Duration::from_secs(5) {
                            *last = Instant::now();
                            tracing::info!(task = %task, rows_read = p.rows_read, rows_written = p.rows_written, bytes_read = p.bytes_read, rows_per_second = rate as u64, "progress");
                        }
                    }
                }
            }
        })
    }

    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
