//! The pipelines page (every pipeline with its schedule, state, last runs, next run, owner and tags; search and
//! tag filter) and a pipeline's page: the grid of runs × tasks, the graph of tasks coloured by the latest run, the
//! pipeline file, and the trigger, backfill and pause actions.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use weir_orchestrate::ops::{self, Reprocess};
use weir_orchestrate::store::{parse_stamp, stamp, RunRow, TaskInstanceRow};
use weir_orchestrate::{intervals, PipelineMeta};

use super::{bad_request, check_action, csrf_field, duration, not_found, redact, render, short_time, viewer};
use super::{UiError, Viewer};
use crate::App;

/// Runs shown as squares on the pipelines page, and as columns of the grid.
const RECENT_RUNS: usize = 10;
const GRID_RUNS: usize = 25;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

fn next_run(meta: &PipelineMeta, next_start: Option<&str>, first_seen: &str) -> Option<String> {
    let s = meta.schedule.as_ref()?;
    let start = next_start.and_then(parse_stamp).or_else(|| intervals::first_start(s, parse_stamp(first_seen)?))?;
    intervals::next_due(s, start).map(|t| short_time(Some(&stamp(t))))
}

fn run_square(r: &RunRow) -> Markup {
    html! {
        a class={ "sq s-" (r.state) } href={ "/runs/" (r.id) } title={ (r.logical_date) " · " (r.state) " · " (r.kind) } {}
    }
}

pub async fn list(State(app): State<App>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, "/")?;
    let store = app.scheduler.store();
    let now = Utc::now();
    let mut metas: Vec<Arc<PipelineMeta>> = app.scheduler.pipelines().into_values().collect();
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let mut all_tags: Vec<String> = metas.iter().flat_map(|m| m.pipeline.tags.clone()).collect();
    all_tags.sort();
    all_tags.dedup();
    let needle = q.q.as_deref().unwrap_or("").trim().to_lowercase();
    let tag = q.tag.as_deref().filter(|t| !t.is_empty());
    metas.retain(|m| {
        let p = &m.pipeline;
        let text = format!(
            "{} {} {} {}",
            m.name,
            p.description.as_deref().unwrap_or(""),
            p.owner.as_deref().unwrap_or(""),
            p.tags.join(" ")
        )
        .to_lowercase();
        (needle.is_empty() || text.contains(&needle)) && tag.is_none_or(|t| p.tags.iter().any(|x| x == t))
    });
    let mut rows = Vec::new();
    let mut active = false;
    for m in &metas {
        let row = store.pipeline(&m.name, now).await?;
        let mut runs = store.runs(Some(&m.name), &[], RECENT_RUNS, 0).await?;
        active |= runs.iter().any(|r| r.state == "queued" || r.state == "running");
        runs.reverse();
        rows.push((m.clone(), row, runs));
    }
    let broken = app.scheduler.broken_pipelines();
    let content = html! {
        h1 { "Pipelines" }
        form.filters method="get" action="/" {
            input type="search" name="q" id="search" value=(q.q.as_deref().unwrap_or("")) placeholder="search name, owner, tag";
            select name="tag" id="tag" {
                option value="" { "every tag" }
                @for t in &all_tags { option value=(t) selected[tag == Some(t.as_str())] { (t) } }
            }
            button type="submit" { "Filter" }
        }
        table.list id="pipelines" {
            thead { tr { th { "pipeline" } th { "schedule" } th { "state" } th { "last runs" } th { "next run" } th { "owner" } th { "tags" } } }
            tbody {
                @for (m, row, runs) in &rows {
                    tr data-pipeline=(m.name) {
                        td { a href={ "/pipelines/" (m.name) } { (m.name) }
                             @if let Some(d) = &m.pipeline.description { div.muted { (d) } } }
                        td { code { (m.schedule.as_ref().map_or("manual".to_string(), |s| s.text.clone())) } }
                        td { @if row.paused { span.badge.paused { "paused" } } @else { span.badge.active { "active" } } }
                        td.squares { @for r in runs { (run_square(r)) } }
                        td { (next_run(m, row.next_start.as_deref(), &row.first_seen).unwrap_or_else(|| "-".into())) }
                        td { (m.pipeline.owner.as_deref().unwrap_or("-")) }
                        td { @for t in &m.pipeline.tags { a.tag href={ "/?tag=" (super::urlencode(t)) } { (t) } " " } }
                    }
                }
            }
        }
        @if rows.is_empty() { p.muted { "No pipeline matches." } }
        @for (file, problem) in &broken {
            div.error { strong { (file.display()) " does not load and is not scheduled:" } pre { (problem) } }
        }
    };
    Ok(render(&viewer, "Pipelines", "Pipelines", active, html! { div #live { (content) } }))
}

fn meta(app: &App, name: &str) -> Result<Arc<PipelineMeta>, UiError> {
    app.scheduler.pipelines().remove(name).ok_or_else(|| not_found(format!("no pipeline `{name}`")))
}

/// Tasks laid out in layers (a task's layer is one more than its deepest upstream), as an SVG graph with the
/// latest run's states.
fn graph(meta: &PipelineMeta, states: &HashMap<&str, &str>) -> Markup {
    let dag = &meta.dag;
    let n = dag.names.len();
    let mut layer = vec![0usize; n];
    // Tasks come in dependency order in a valid pipeline; a few passes settle any other order.
    for _ in 0..n.min(64) {
        let mut changed = false;
        for i in 0..n {
            let l = dag.upstream[i].iter().map(|&u| layer[u] + 1).max().unwrap_or(0);
            if l != layer[i] {
                layer[i] = l;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut rows_in_layer: HashMap<usize, usize> = HashMap::new();
    let mut pos = vec![(0usize, 0usize); n];
    for i in 0..n {
        let r = rows_in_layer.entry(layer[i]).or_default();
        pos[i] = (layer[i], *r);
        *r += 1;
    }
    let (w, h, gap_x, gap_y) = (170, 34, 60, 18);
    let width = (layer.iter().max().copied().unwrap_or(0) + 1) * (w + gap_x);
    let height = rows_in_layer.values().max().copied().unwrap_or(1) * (h + gap_y) + gap_y;
    let xy = |i: usize| (pos[i].0 * (w + gap_x) + 10, pos[i].1 * (h + gap_y) + gap_y);
    html! {
        svg.graph id="graph" width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) } {
            @for i in 0..n { @for &u in &dag.upstream[i] {
                @let ((x1, y1), (x2, y2)) = (xy(u), xy(i));
                @let (sx, sy, ex, ey) = (x1 + w, y1 + h / 2, x2, y2 + h / 2);
                path.edge d={ "M" (sx) "," (sy) " C" (sx + gap_x / 2) "," (sy) " " (ex - gap_x / 2) "," (ey) " " (ex) "," (ey) } {}
            } }
            @for i in 0..n {
                @let (x, y) = xy(i);
                @let state = states.get(dag.names[i].as_str()).copied().unwrap_or("none");
                g.node data-task=(dag.names[i]) data-state=(state) {
                    title { (dag.names[i]) ": " (state) }
                    rect class={ "s-" (state) } x=(x) y=(y) width=(w) height=(h) rx="6" {}
                    text x=(x + 10) y=(y + h / 2 + 5) { (truncate(&dag.names[i], 22)) }
                }
            }
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

pub async fn page(State(app): State<App>, headers: HeaderMap, Path(name): Path<String>) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, &format!("/pipelines/{name}"))?;
    let m = meta(&app, &name)?;
    let store = app.scheduler.store();
    let row = store.pipeline(&m.name, Utc::now()).await?;
    let mut runs = store.runs(Some(&m.name), &[], GRID_RUNS, 0).await?;
    runs.reverse(); // oldest on the left, as in Airflow's grid
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let tis = store.task_instances_of_runs(&ids).await?;
    let cell: HashMap<(i64, &str), &TaskInstanceRow> = tis.iter().map(|t| ((t.run, t.task.as_str()), t)).collect();
    let latest = runs.last();
    let latest_states: HashMap<&str, &str> = latest
        .map(|r| tis.iter().filter(|t| t.run == r.id).map(|t| (t.task.as_str(), t.state.as_str())).collect())
        .unwrap_or_default();
    let active = runs.iter().any(|r| r.state == "queued" || r.state == "running");
    let file_text = std::fs::read_to_string(&m.file).unwrap_or_default();
    let yesterday = (Utc::now().date_naive() - chrono::Duration::days(1)).to_string();
    let p = &m.pipeline;
    let content = html! {
        h1 { (m.name) " " @if row.paused { span.badge.paused { "paused" } } }
        @if let Some(d) = &p.description { p.muted { (d) } }
        p.facts {
            "schedule " code { (m.schedule.as_ref().map_or("manual".to_string(), |s| format!("{} ({})", s.text, s.timezone.name()))) }
            " · next run " (next_run(&m, row.next_start.as_deref(), &row.first_seen).unwrap_or_else(|| "-".into()))
            " · owner " (p.owner.as_deref().unwrap_or("-"))
            @if !p.tags.is_empty() { " · tags " (p.tags.join(", ")) }
        }
        @if viewer.may_change { (actions(&viewer, &m.name, row.paused, &yesterday)) }
        div #live {
            h2 { "Grid" }
            @if runs.is_empty() { p.muted { "No runs yet." } } @else {
                div.gridwrap { table.grid id="grid" {
                    thead { tr { th {} @for r in &runs {
                        th { a href={ "/runs/" (r.id) } title={ (r.logical_date) " · " (r.state) } class={ "col s-" (r.state) } { (r.logical_date.get(5..).unwrap_or(&r.logical_date)) } }
                    } } }
                    tbody { @for task in &m.dag.names { tr {
                        th { (task) }
                        @for r in &runs {
                            td { @if let Some(t) = cell.get(&(r.id, task.as_str())) {
                                a class={ "cell s-" (t.state) } data-task=(task) data-run=(r.id)
                                    href={ "/runs/" (r.id) "?task=" (super::urlencode(task)) }
                                    title={ (task) " · " (r.logical_date) " · " (t.state) @if t.started_at.is_some() { " · " (duration(t.started_at.as_deref(), t.ended_at.as_deref())) } @if t.try_number > 1 { " · try " (t.try_number) } } {}
                            } }
                        }
                    } } }
                } }
            }
            h2 { "Graph" @if let Some(r) = latest { span.muted { " (run of " (r.logical_date) ")" } } }
            (graph(&m, &latest_states))
        }
        h2 { "Pipeline file" }
        p.muted { (m.file.display()) }
        pre.file { (redact(&file_text)) }
    };
    Ok(render(&viewer, "Pipelines", &m.name, active, content))
}

fn actions(viewer: &Viewer, name: &str, paused: bool, yesterday: &str) -> Markup {
    html! {
        div.actions {
            form method="post" action={ "/pipelines/" (name) "/trigger" } {
                (csrf_field(viewer))
                // A date, or the start of one of a day's intervals on an hourly pipeline.
                label { "Run for " input type="text" name="date" id="trigger-date" value=(yesterday) size="16"
                    pattern="[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2})?"
                    title="YYYY-MM-DD, or YYYY-MM-DDTHH:MM for one of a day's intervals" required; }
                button type="submit" id="trigger" { "Trigger" }
            }
            form method="post" action={ "/pipelines/" (name) "/backfill" } {
                (csrf_field(viewer))
                label { "Backfill " input type="date" name="from" id="backfill-from" required; }
                label { " to " input type="date" name="to" id="backfill-to" required; }
                select name="reprocess" { option value="none" { "new dates only" } option value="failed" { "and failed" } option value="all" { "all dates" } }
                button type="submit" id="backfill" { "Backfill" }
            }
            form method="post" action={ "/pipelines/" (name) (if paused { "/unpause" } else { "/pause" }) } {
                (csrf_field(viewer))
                button type="submit" id="pause" { (if paused { "Unpause" } else { "Pause" }) }
            }
        }
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, UiError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| bad_request(format!("`{text}` is not a date as YYYY-MM-DD")))
}

#[derive(Deserialize)]
pub struct TriggerForm {
    csrf: String,
    date: String,
}

pub async fn trigger(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<TriggerForm>,
) -> Result<Response, UiError> {
    check_action(&app, &headers, &form.csrf, &format!("/pipelines/{name}"))?;
    let m = meta(&app, &name)?;
    let run = ops::trigger(app.scheduler.store(), &m, form.date.trim(), Utc::now()).await?;
    app.scheduler.wake();
    Ok(Redirect::to(&format!("/runs/{}", run.id)).into_response())
}

#[derive(Deserialize)]
pub struct BackfillForm {
    csrf: String,
    from: String,
    to: String,
    #[serde(default)]
    reprocess: Option<String>,
}

pub async fn backfill(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<BackfillForm>,
) -> Result<Response, UiError> {
    check_action(&app, &headers, &form.csrf, &format!("/pipelines/{name}"))?;
    let m = meta(&app, &name)?;
    let reprocess: Reprocess = form.reprocess.as_deref().unwrap_or("none").parse().map_err(bad_request)?;
    let (from, to) = (parse_date(&form.from)?, parse_date(&form.to)?);
    if to < from {
        return Err(bad_request(format!("the backfill ends ({to}) before it starts ({from})")));
    }
    ops::backfill(app.scheduler.store(), &m, from, to, reprocess, false, Utc::now()).await?;
    app.scheduler.wake();
    Ok(Redirect::to(&format!("/pipelines/{name}")).into_response())
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn set_paused(app: &App, headers: &HeaderMap, name: &str, csrf: &str, paused: bool) -> Result<Response, UiError> {
    check_action(app, headers, csrf, &format!("/pipelines/{name}"))?;
    let m = meta(app, name)?;
    app.scheduler.store().set_paused(&m.name, paused, Utc::now()).await?;
    app.scheduler.wake();
    Ok(Redirect::to(&format!("/pipelines/{name}")).into_response())
}

pub async fn pause(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    set_paused(&app, &headers, &name, &form.csrf, true).await
}

pub async fn unpause(
    State(app): State<App>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    set_paused(&app, &headers, &name, &form.csrf, false).await
}
