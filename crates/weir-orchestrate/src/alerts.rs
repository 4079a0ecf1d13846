//! Alerts: how the on-call engineer learns that a run failed, is retrying, succeeded or missed its deadline before
//! the dashboards go stale. A webhook gets a Slack-compatible JSON post (`text`, plus the structured fields for
//! other receivers); a command gets the same facts as WEIR_* environment variables. Delivery is best effort with a
//! few retries: an alert that cannot be delivered is logged, never fails the run.

use std::time::Duration;

use serde::Serialize;
use weir_config::{Alert, AlertEvent};

/// What happened, for one alert.
#[derive(Debug, Clone, Serialize)]
pub struct AlertMessage {
    /// Slack's field: one readable line (and the log excerpt).
    pub text: String,
    pub event: &'static str,
    pub pipeline: String,
    pub run: i64,
    pub logical_date: String,
    pub task: Option<String>,
    pub try_number: Option<u32>,
    pub error: Option<String>,
    /// The attempt log's last lines.
    pub log_excerpt: Option<String>,
}

pub fn event_name(e: AlertEvent) -> &'static str {
    match e {
        AlertEvent::Failure => "failure",
        AlertEvent::Retry => "retry",
        AlertEvent::Success => "success",
        AlertEvent::Deadline => "deadline",
    }
}

/// The last `n` lines of a log.
pub fn excerpt(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Sends `message` to every alert of `alerts` that listens to `event`.
pub async fn send(alerts: &[Alert], event: AlertEvent, message: &AlertMessage) {
    for alert in alerts.iter().filter(|a| a.on.contains(&event)) {
        if let Some(url) = &alert.webhook {
            post(url, message).await;
        }
        if let Some(cmd) = &alert.command {
            command(cmd, message).await;
        }
    }
}

async fn post(url: &str, message: &AlertMessage) {
    let url = match weir_config::project::resolve_env(url) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "alert webhook URL");
            return;
        }
    };
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alert client");
            return;
        }
    };
    for attempt in 1..=3u32 {
        match client.post(&url).json(message).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "alert webhook refused the alert"),
            Err(e) => tracing::warn!(error = %e, attempt, "alert webhook unreachable"),
        }
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
    }
    tracing::error!(event = message.event, pipeline = %message.pipeline, "the alert could not be delivered");
}

async fn command(cmd: &str, m: &AlertMessage) {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("WEIR_EVENT", m.event)
        .env("WEIR_PIPELINE", &m.pipeline)
        .env("WEIR_RUN", m.run.to_string())
        .env("WEIR_DS", &m.logical_date)
        .env("WEIR_TASK", m.task.clone().unwrap_or_default())
        .env("WEIR_TRY", m.try_number.map(|t| t.to_string()).unwrap_or_default())
        .env("WEIR_ERROR", m.error.clone().unwrap_or_default())
        .env("WEIR_LOG_EXCERPT", m.log_excerpt.clone().unwrap_or_default())
        .env("WEIR_MESSAGE", &m.text)
        .stdin(std::process::Stdio::null())
        .status();
    match tokio::time::timeout(Duration::from_secs(60), status).await {
        Ok(Ok(s)) if s.success() => {}
        Ok(Ok(s)) => tracing::error!(status = %s, command = cmd, "the alert command failed"),
        Ok(Err(e)) => tracing::error!(error = %e, command = cmd, "the alert command did not start"),
        Err(_) => tracing::error!(command = cmd, "the alert command took longer than 60 s"),
    }
}
