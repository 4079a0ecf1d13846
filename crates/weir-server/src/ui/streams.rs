//! The streams page: every stream of the project that `weir serve` runs, with its status (and last error), source,
//! delivery, events and events/s, decisions, late and invalid events, decision latency, consumer lag per partition
//! and alerts per rule. It refreshes itself every two seconds while a stream runs.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use weir_core::thousands;
use weir_stream::supervise::StreamStatus;

use super::{render, viewer, UiError};
use crate::App;

/// The run state whose colour a stream's status borrows.
fn badge_state(status: &StreamStatus) -> &'static str {
    match status {
        StreamStatus::Starting => "queued",
        StreamStatus::Running => "running",
        StreamStatus::Finished | StreamStatus::Stopped => "success",
        StreamStatus::Retrying { .. } => "up_for_retry",
        StreamStatus::Failed { .. } => "failed",
    }
}

pub async fn page(State(app): State<App>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, "/streams")?;
    let streams = &app.streams;
    let live = streams
        .streams
        .iter()
        .any(|s| matches!(s.status(), StreamStatus::Running | StreamStatus::Starting | StreamStatus::Retrying { .. }));
    let content = html! {
        h1 { "Streams" }
        @if streams.streams.is_empty() && streams.broken.is_empty() {
            p.muted { "No streams: put stream files in the project's " code { "streams/" } " folder and restart " code { "weir serve" } "." }
        }
        @for (file, problem) in &streams.broken {
            p.error { "✗ " (file.display()) " does not load and is not running:" pre { (problem) } }
        }
        div id="live" {
            @if !streams.streams.is_empty() {
                table.list id="streams" {
                    thead { tr {
                        th { "stream" } th { "status" } th { "source" } th.num { "events" } th.num { "events/s" }
                        th.num { "approve" } th.num { "hold" } th.num { "escalate" } th.num { "late" } th.num { "invalid" }
                        th.num { "latency p50 / p99" } th.num { "restarts" }
                    } }
                    tbody {
                        @for s in &streams.streams {
                            @let status = s.status();
                            @let m = s.metrics().map(|m| m.snapshot()).unwrap_or_default();
                            tr data-stream=(s.name) {
                                td { a href={ "#stream-" (s.name) } { (s.name) } @if let Some(d) = &s.description { div.muted { (d) } } }
                                td { span class={ "badge s-" (badge_state(&status)) } { (status.label()) } }
                                td { code { (s.source) } div.muted { (s.delivery.replace('_', "-")) } }
                                td.num { (thousands(m.events)) }
                                td.num { (thousands(m.events_per_second.round() as u64)) }
                                td.num { (thousands(m.decisions[0])) }
                                td.num { (thousands(m.decisions[1])) }
                                td.num { (thousands(m.decisions[2])) }
                                td.num { (thousands(m.late)) }
                                td.num { (thousands(m.invalid)) }
                                td.num { @if let Some((p50, p99)) = m.latency_ms { (p50) " / " (p99) " ms" } }
                                td.num { (s.restarts()) }
                            }
                        }
                    }
                }
                @for s in &streams.streams {
                    @let status = s.status();
                    @let m = s.metrics().map(|m| m.snapshot()).unwrap_or_default();
                    section id={ "stream-" (s.name) } {
                        h2 { (s.name) " " span.muted { (s.file.display()) } }
                        @if let Some(e) = status.error() {
                            p.error { (if matches!(status, StreamStatus::Retrying { .. }) { "failed, restarting from its checkpoints: " } else { "failed (not retried): " }) (e) }
                        }
                        table.list.rules {
                            thead { tr { th { "rule" } th.num { "matched" } th.num { "alerts (decided by it)" } } }
                            tbody {
                                @for rule in &s.rules {
                                    @let figures = m.rules.iter().find(|r| &r.0 == rule);
                                    tr data-rule=(rule) {
                                        td { (rule) }
                                        td.num { (thousands(figures.map_or(0, |r| r.1))) }
                                        td.num { (thousands(figures.map_or(0, |r| r.2))) }
                                    }
                                }
                            }
                        }
                        @if !m.lag.is_empty() {
                            p { "consumer lag: " @for (i, (p, l)) in m.lag.iter().enumerate() { @if i > 0 { ", " } code { (p) } " " (l) } }
                        }
                        p.muted { "outputs: " (s.outputs.join("; ")) " · " (m.batches) " batches, " (m.checkpoints) " checkpoints"
                            @if m.replayed > 0 { ", " (thousands(m.replayed)) " events replayed to rebuild state" } }
                    }
                }
            }
        }
        p.muted { "Prometheus metrics of every stream: " a href="/metrics" { "/metrics" } "; as JSON: " a href="/api/streams" { "/api/streams" } }
    };
    Ok(render(&viewer, "Streams", "Streams", live, content))
}
