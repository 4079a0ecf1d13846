//! The lake pages: every table with its format, version, partitions, files and size; a table's schema, partitions,
//! Delta history (each version with the run that wrote it), a preview of its rows, and its lineage from the
//! sources to the last table built from it, read off the pipelines' declarations.

use std::collections::{BTreeSet, HashMap};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};
use weir_lake::{LakeTable, TableFormat};

use super::{not_found, render, viewer, UiError};
use crate::App;

const PREVIEW_ROWS: usize = 20;
const PARTITIONS_SHOWN: usize = 100;

fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

pub async fn list(State(app): State<App>, headers: HeaderMap) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, "/lake")?;
    let project = app.scheduler.project();
    let lake = weir_lake::Lake::for_project(project)?;
    let tables = weir_lake::list_tables(&lake).await?;
    let mut rows = Vec::new();
    for t in &tables {
        rows.push((t, weir_lake::shape(t).await?));
    }
    let content = html! {
        h1 { "Lake" }
        p.muted { (lake.url()) }
        table.list id="tables" {
            thead { tr { th { "table" } th { "format" } th { "version" } th { "partitioned by" } th.num { "files" } th.num { "size" } } }
            tbody { @for (t, shape) in &rows {
                tr data-table=(t.name.to_string()) {
                    td { a href={ "/lake/" (t.name.to_string()) } { (t.name.to_string()) } }
                    td { (t.format.as_str()) }
                    td { (shape.version.map(|v| v.to_string()).unwrap_or_default()) }
                    td { (shape.partition_columns.join(", ")) }
                    td.num { (shape.files) }
                    td.num { (human_bytes(shape.bytes)) }
                }
            } }
        }
        @if rows.is_empty() { p.muted { "The lake has no tables yet: run a pipeline." } }
    };
    Ok(render(&viewer, "Lake", "Lake", false, content))
}

/// `key=value` folders directly under a local table, with their files and bytes.
fn partitions(t: &LakeTable) -> Vec<(String, usize, u64)> {
    let Some(dir) = t.location.local.as_ref() else { return Vec::new() };
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    let mut dirs: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().contains('=')))
        .collect();
    dirs.sort();
    dirs.reverse(); // newest dates first
    for d in dirs.into_iter().take(PARTITIONS_SHOWN) {
        let (mut files, mut bytes) = (0, 0);
        for p in glob::glob(&format!("{}/**/*.parquet", d.display())).into_iter().flatten().flatten() {
            files += 1;
            bytes += p.metadata().map(|m| m.len()).unwrap_or(0);
        }
        out.push((d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), files, bytes));
    }
    out
}

pub fn batches_table(batches: &[RecordBatch], id: &str) -> Markup {
    let Some(first) = batches.first() else { return html! { p.muted { "No rows." } } };
    let schema = first.schema();
    let options = FormatOptions::default().with_null("∅");
    html! {
        div.scroll { table.list.data id=(id) {
            thead { tr { @for f in schema.fields() { th { (f.name()) } } } }
            tbody { @for b in batches {
                @let formatters: Vec<_> = b.columns().iter().filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok()).collect();
                @for row in 0..b.num_rows() { tr { @for f in &formatters { td { (f.value(row).to_string()) } } } }
            } }
        } }
    }
}

/// One edge of the lineage: `from` feeds `to` through a pipeline's task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub pipeline: String,
    pub task: String,
}

/// Every lake table a task writes, with what it reads: a lake source's table, the lake tables a model or query
/// names, or an outside source (`postgres:orders`, `file:landing/*.csv`).
pub fn lineage_edges(app: &App, known: &[String]) -> Vec<Edge> {
    let mut edges = Vec::new();
    for (name, meta) in app.scheduler.pipelines() {
        for (task, planned) in meta.pipeline.tasks.iter().zip(&meta.plan.tasks) {
            let Some(to) = planned.lake_sink().map(|s| s.table.clone()) else { continue };
            for from in planned.reads(known) {
                edges.push(Edge { from, to: to.clone(), pipeline: name.clone(), task: task.name.clone() });
            }
        }
    }
    edges.sort();
    edges.dedup();
    edges
}

/// The edges connected to `table`: everything upstream of it and everything downstream.
fn around(edges: &[Edge], table: &str) -> (Vec<Edge>, Vec<Edge>) {
    let walk = |forward: bool| {
        let mut seen = BTreeSet::from([table.to_string()]);
        let mut out = Vec::new();
        let mut frontier = vec![table.to_string()];
        while let Some(t) = frontier.pop() {
            for e in edges.iter().filter(|e| if forward { e.from == t } else { e.to == t }) {
                out.push(e.clone());
                let next = if forward { &e.to } else { &e.from };
                if seen.insert(next.clone()) {
                    frontier.push(next.clone());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    };
    (walk(false), walk(true))
}

fn edge_list(edges: &[Edge], id: &str) -> Markup {
    let link = |t: &str| {
        if t.contains(':') {
            html! { code { (t) } }
        } else {
            html! { a href={ "/lake/" (t) } { (t) } }
        }
    };
    html! { ul.lineage id=(id) { @for e in edges {
        li { (link(&e.from)) " → " (link(&e.to)) span.muted { " by " a href={ "/pipelines/" (e.pipeline) } { (e.pipeline) } "." (e.task) } }
    } } }
}

pub async fn page(State(app): State<App>, headers: HeaderMap, Path(name): Path<String>) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, &format!("/lake/{name}"))?;
    let project = app.scheduler.project();
    let engine = weir_engine::Engine::for_project(project)?;
    let tables = engine.register_lake().await?;
    let Some(t) = tables.iter().find(|t| t.name.to_string() == name) else {
        return Err(not_found(format!("no lake table `{name}`")));
    };
    let shape = weir_lake::shape(t).await?;
    let schema = engine.sql_collect(&format!("DESCRIBE {name}"), "describe").await?;
    let preview = engine.sql_collect(&format!("SELECT * FROM {name} LIMIT {PREVIEW_ROWS}"), "preview").await?;
    let history = match t.format {
        TableFormat::Delta => weir_lake::delta::history(&t.location, Some(50)).await?,
        TableFormat::Parquet => Vec::new(),
    };
    let store = app.scheduler.store();
    let writes = store.lineage(&name).await?;
    let by_version: HashMap<i64, (i64, &str)> =
        writes.iter().filter_map(|(v, run, task, _)| v.map(|v| (v, (*run, task.as_str())))).collect();
    let known: Vec<String> = tables.iter().map(|t| t.name.to_string()).collect();
    let (upstream, downstream) = around(&lineage_edges(&app, &known), &name);
    let parts = partitions(t);
    let content = html! {
        h1 { (name) }
        p.facts { (t.format.as_str()) @if let Some(v) = shape.version { " · version " (v) } " · " (shape.files) " files · " (human_bytes(shape.bytes))
            @if !shape.partition_columns.is_empty() { " · partitioned by " (shape.partition_columns.join(", ")) } }
        p.muted { (t.location.to_string()) }
        h2 { "Schema" }
        (batches_table(&schema, "schema"))
        h2 { "Lineage" }
        @if upstream.is_empty() && downstream.is_empty() { p.muted { "No pipeline reads or writes this table." } }
        @if !upstream.is_empty() { h3 { "Upstream" } (edge_list(&upstream, "upstream")) }
        @if !downstream.is_empty() { h3 { "Downstream" } (edge_list(&downstream, "downstream")) }
        @if !parts.is_empty() {
            h2 { "Partitions" }
            table.list id="partitions" { thead { tr { th { "partition" } th.num { "files" } th.num { "size" } } }
                tbody { @for (p, files, bytes) in &parts { tr { td { (p) } td.num { (files) } td.num { (human_bytes(*bytes)) } } } } }
        }
        @if !history.is_empty() {
            h2 { "History" }
            table.list id="history" {
                thead { tr { th { "version" } th { "when" } th { "operation" } th { "parameters" } th { "written by" } } }
                tbody { @for e in &history {
                    tr { td { (e.version) }
                        td { (e.timestamp.and_then(chrono::DateTime::from_timestamp_millis).map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()) }
                        td { (e.operation) } td.muted { (e.parameters) }
                        td { @if let Some((run, task)) = by_version.get(&(e.version as i64)) { a href={ "/runs/" (run) } { "run " (run) } " · " (task) } }
                    }
                } }
            }
        } @else if !writes.is_empty() {
            h2 { "Writes" }
            ul { @for (_, run, task, rows) in writes.iter().rev().take(50) { li { a href={ "/runs/" (run) } { "run " (run) } " · " (task) " · " (rows) " rows" } } }
        }
        h2 { "Preview" }
        (batches_table(&preview, "preview"))
    };
    Ok(render(&viewer, "Lake", &name, false, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineage_walks_up_to_the_sources_and_down_to_the_last_table() {
        let e =
            |from: &str, to: &str| Edge { from: from.into(), to: to.into(), pipeline: "p".into(), task: "t".into() };
        let edges = vec![
            e("postgres:orders", "raw.orders"),
            e("raw.orders", "silver.orders"),
            e("silver.orders", "gold.revenue"),
            e("raw.users", "silver.users"),
        ];
        let (up, down) = around(&edges, "silver.orders");
        assert_eq!(up, vec![e("postgres:orders", "raw.orders"), e("raw.orders", "silver.orders")]);
        assert_eq!(down, vec![e("silver.orders", "gold.revenue")]);
    }
}
