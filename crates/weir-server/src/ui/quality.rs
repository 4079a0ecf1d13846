//! The data quality page: check results per table and run (with their failing samples), the quarantine (rows set
//! aside per table, rule and run), and schema drift (what changed between a table's recorded schema versions).

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use weir_engine::quality::contract::{SchemaDiff, SchemaHistory};
use weir_engine::quality::results::RESULTS_TABLE;

use super::lake::batches_table;
use super::{render, viewer, UiError};
use crate::App;

const RESULTS_SHOWN: usize = 200;

#[derive(Deserialize, Default)]
pub struct QualityQuery {
    #[serde(default)]
    table: Option<String>,
}

/// `'text'` as a SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<QualityQuery>,
) -> Result<Response, UiError> {
    let viewer = viewer(&app, &headers, "/quality")?;
    let engine = weir_engine::Engine::for_project(app.scheduler.project())?;
    let tables = engine.register_lake().await?;
    let names: Vec<String> = tables.iter().map(|t| t.name.to_string()).collect();
    let filter = q.table.as_deref().filter(|t| !t.is_empty());
    let results = if names.iter().any(|n| n == RESULTS_TABLE) {
        let only = filter.map(|t| format!("WHERE table_name = {}", literal(t))).unwrap_or_default();
        let sql = format!(
            "SELECT date, table_name AS \"table\", pipeline, task, check_name AS \"check\", severity, status, \
             failing_rows, rows_checked, observed, sample, run_id \
             FROM {RESULTS_TABLE} {only} ORDER BY checked_at DESC, table_name, check_name LIMIT {RESULTS_SHOWN}"
        );
        Some(engine.sql_collect(&sql, "check results").await?)
    } else {
        None
    };
    let mut quarantine = Vec::new();
    for t in names.iter().filter(|n| n.ends_with("__rejected")) {
        let target = t.trim_end_matches("__rejected");
        if filter.is_some_and(|f| f != target) {
            continue;
        }
        let sql = format!(
            "SELECT '{target}' AS \"table\", run_id, task, rule, action, count(*) AS \"rows\", min(reason) AS example \
             FROM {t} GROUP BY run_id, task, rule, action ORDER BY run_id DESC LIMIT 100"
        );
        quarantine.extend(engine.sql_collect(&sql, "quarantine").await?);
    }
    let mut drift = Vec::new();
    for t in tables
        .iter()
        .filter(|t| !t.name.to_string().starts_with("_weir") && !t.name.to_string().ends_with("__rejected"))
    {
        let name = t.name.to_string();
        if filter.is_some_and(|f| f != name) {
            continue;
        }
        let history = SchemaHistory::load(&t.location).await?;
        for pair in history.versions.windows(2) {
            let diff = SchemaDiff::between(&pair[0].columns, &pair[1].columns);
            if !diff.is_empty() {
                drift.push((
                    name.clone(),
                    pair[1].version,
                    pair[1].run_id.clone(),
                    pair[1].recorded_at.clone(),
                    diff.lines(),
                ));
            }
        }
    }
    drift.sort_by(|a, b| b.3.cmp(&a.3));
    let content = html! {
        h1 { "Data quality" }
        form.filters method="get" action="/quality" {
            select name="table" id="quality-table" {
                option value="" { "every table" }
                @for n in names.iter().filter(|n| !n.starts_with("_weir") && !n.ends_with("__rejected")) {
                    option value=(n) selected[filter == Some(n.as_str())] { (n) }
                }
            }
            button type="submit" { "Show" }
        }
        h2 { "Check results" }
        @match &results {
            Some(batches) => (batches_table(batches, "checks")),
            None => p.muted { "No check results yet: run a pipeline whose tasks have `checks`." },
        }
        h2 { "Quarantine" }
        @if quarantine.iter().all(|b| b.num_rows() == 0) { p.muted { "No rows were quarantined." } }
        @else { (batches_table(&quarantine, "quarantine")) }
        h2 { "Schema drift" }
        @if drift.is_empty() { p.muted { "No table changed its schema." } }
        ul #drift { @for (table, version, run, at, lines) in &drift {
            li { a href={ "/lake/" (table) } { (table) } " schema version " (version) span.muted { " · " (at) " · run " (run) }
                ul { @for l in lines { li { code { (l) } } } } }
        } }
    };
    Ok(render(&viewer, "Quality", "Data quality", false, content))
}
