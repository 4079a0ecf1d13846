//! A run's page: its timeline (a Gantt chart of every task attempt), its task instances with their tries and
//! errors, a task's attempt logs (refreshed every two seconds while the run is active: a live tail of the command's
//! output), and the clear action.

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use weir_orchestrate::ops;
use weir_orchestrate::store::{parse_stamp, AttemptRow};

use super::{check_action, csrf_field, duration, not_found, render, short_time, state_badge, viewer};
use super::{UiError, Viewer};
use crate::App;

#[derive(Deserialize, Default)]
pub struct RunQuery {
    #[serde(default)]
    task: Option<String>,
}

/// Attempts as bars on one time axis, from the first start to the last end (or now).
fn gantt(attempts: &[AttemptRow]) -> Markup {
    let start_of = |a: &AttemptRow| parse_stamp(&a.started_at);
    let end_of = |a: &AttemptRow| a.ended_at.as_deref().and_then(parse_stamp).unwrap_or_else(Utc::now);
    let Some(first) = attempts.iter().filter_map(start_of).min() else {
        return html! { p.muted { "No attempt has started yet." } };
    };
    let last: DateTime<Utc> = attempts.iter().map(end_of).max().unwrap_or(first);
    let span = (last - first).num_milliseconds().max(1) as f64;
    html! {
        div.gantt id="gantt" {
            @for a in attempts {
                @let s = start_of(a).unwrap_or(first);
                @let left = (s - first).num_milliseconds() as f64 / span * 100.0;
                @let width = ((end_of(a) - s).num_milliseconds() as f64 / span * 100.0).max(0.4);
                div.bar-row {
                    span.bar-label { (a.task) @if a.try_number > 1 { " #" (a.try_number) } }
                    span.bar-track {
                        a class={ "bar s-" (a.state) } data-task=(a.task) href={ "?task=" (super::urlencode(&a.task)) "#logs" }
                            style={ "left:" (format!("{left:.2}")) "%;width:" (format!("{width:.2}")) "%" }
                            title={ (a.task) " try " (a.try_number) " · " (a.state) " · " (duration(Some(&a.started_at), a.ended_at.as_deref())) } {}
                    }
                }
            }
            div.axis { span { (short_time(Some(&weir_orchestrate::store::stamp(first)))) } span { (duration(Some(&weir_orchestrate::store::stamp(first)), Some(&weir_orchestrate::store::stamp(last)))) } }
        }
    }
}

pub async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<RunQuery>,
) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, &format!("/runs/{id}"))?;
    let store = app.scheduler.store();
    let run = store.run(id).await?.ok_or_else(|| not_found(format!("no run {id}")))?;
    let mut tis = store.task_instances(id).await?;
    let order: Vec<String> =
        app.scheduler.pipelines().get(&run.pipeline).map(|m| m.dag.names.clone()).unwrap_or_default();
    tis.sort_by_key(|t| order.iter().position(|n| *n == t.task).unwrap_or(usize::MAX));
    let attempts = store.attempts_of_run(id).await?;
    // The log shown: the task asked for, else the first failed or running one.
    let shown = q.task.clone().or_else(|| {
        tis.iter()
            .find(|t| t.state == "failed")
            .or_else(|| tis.iter().find(|t| t.state == "running"))
            .map(|t| t.task.clone())
    });
    let logs = match &shown {
        Some(task) => store.attempts(id, task).await?,
        None => Vec::new(),
    };
    let active = run.state == "queued" || run.state == "running";
    let lineage = store.lineage_of_run(id).await?;
    let content = html! {
        h1 { a href={ "/pipelines/" (run.pipeline) } { (run.pipeline) } " · " (run.logical_date) }
        div #live {
            p.facts {
                (state_badge(&run.state)) " " (run.kind) " run · interval " (short_time(Some(&run.interval_start))) " → " (short_time(Some(&run.interval_end)))
                @if run.started_at.is_some() { " · took " (duration(run.started_at.as_deref(), run.ended_at.as_deref())) }
            }
            h2 { "Timeline" }
            (gantt(&attempts))
            h2 { "Tasks" }
            table.list id="tasks" {
                thead { tr { th { "task" } th { "state" } th { "tries" } th { "duration" } th { "worker" } th { "error" } th {} } }
                tbody { @for t in &tis {
                    tr data-task=(t.task) data-state=(t.state) {
                        td { a href={ "?task=" (super::urlencode(&t.task)) "#logs" } { (t.task) } }
                        td { (state_badge(&t.state)) }
                        td { (t.try_number) " / " (t.max_tries) }
                        td { (duration(t.started_at.as_deref(), t.ended_at.as_deref())) }
                        td.muted { (t.worker.as_deref().unwrap_or("")) }
                        td.error-cell { (t.error.as_deref().unwrap_or("")) }
                        td { @if viewer.may_change { (clear_form(&viewer, id, &t.task)) } }
                    }
                } }
            }
            @if !lineage.is_empty() {
                h2 { "Tables written" }
                ul { @for (task, table, version, rows) in &lineage {
                    li { a href={ "/lake/" (table) } { (table) } @if let Some(v) = version { " version " (v) } " · " (rows) " rows by " (task) }
                } }
            }
            h2 #logs { "Logs" @if let Some(t) = &shown { " of " code { (t) } } }
            @if logs.is_empty() { p.muted { "Pick a task to see its attempts' logs." } }
            @for a in &logs {
                div.attempt data-try=(a.try_number) {
                    h3 { "Attempt " (a.try_number) " " (state_badge(&a.state)) " " span.muted { (short_time(Some(&a.started_at))) " · " (duration(Some(&a.started_at), a.ended_at.as_deref())) " · " (a.worker.as_deref().unwrap_or("")) } }
                    @if let Some(e) = &a.error { p.error { (e) } }
                    pre.log data-tail=[(a.state == "running").then_some("1")] { (a.log) }
                }
            }
        }
    };
    Ok(render(&viewer, "Pipelines", &format!("{} {}", run.pipeline, run.logical_date), active, content))
}

fn clear_form(viewer: &Viewer, run: i64, task: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/runs/" (run) "/tasks/" (super::urlencode(task)) "/clear" } {
            (csrf_field(viewer))
            label.muted title="only this task, not its downstream tasks" { input type="checkbox" name="only" value="true"; " only" }
            button type="submit" class="clear" data-task=(task) { "Clear" }
        }
    }
}

#[derive(Deserialize)]
pub struct ClearForm {
    csrf: String,
    #[serde(default)]
    only: Option<String>,
}

pub async fn clear(
    State(app): State<App>,
    headers: HeaderMap,
    Path((id, task)): Path<(i64, String)>,
    Form(form): Form<ClearForm>,
) -> Result<Response, UiError> {
    check_action(&app, &headers, &form.csrf, &format!("/runs/{id}"))?;
    let store = app.scheduler.store();
    let run = store.run(id).await?.ok_or_else(|| not_found(format!("no run {id}")))?;
    let meta = app
        .scheduler
        .pipelines()
        .remove(&run.pipeline)
        .ok_or_else(|| not_found(format!("no pipeline `{}`", run.pipeline)))?;
    // This very run: on an hourly pipeline, the day's other runs are not it.
    ops::clear(store, &meta, &run, &task, form.only.is_some()).await?;
    app.scheduler.wake();
    Ok(Redirect::to(&format!("/runs/{id}?task={}", super::urlencode(&task))).into_response())
}
