//! The REST API handlers: JSON over the metadata store, and the operator's actions from `weir_orchestrate::ops`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use weir_orchestrate::ops::{self, Reprocess};
use weir_orchestrate::{intervals, PipelineMeta, RunState};

use crate::App;

/// An error answer: `{"error": "..."}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<weir_core::Error> for ApiError {
    fn from(e: weir_core::Error) -> Self {
        let status = match e {
            weir_core::Error::Config { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The API's routes.
pub(crate) fn routes(app: App) -> Router {
    Router::new()
        .route("/api/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/api/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/api/pipelines", get(list_pipelines))
        .route("/api/pipelines/{name}", get(get_pipeline))
        .route("/api/pipelines/{name}/runs", get(pipeline_runs))
        .route("/api/pipelines/{name}/trigger", post(trigger))
        .route("/api/pipelines/{name}/backfill", post(backfill))
        .route("/api/pipelines/{name}/pause", post(pause))
        .route("/api/pipelines/{name}/unpause", post(unpause))
        .route("/api/pools", get(list_pools))
        .route("/api/streams", get(list_streams))
        .route("/metrics", get(metrics))
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(get_run))
        .route("/api/runs/{id}/tasks/{task}/logs", get(logs))
        .route("/api/runs/{id}/tasks/{task}/clear", post(clear))
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        .with_state(app)
}

/// Mutations need the token; reads too unless they were opened or come from a logged-in browser (the UI's pages
/// poll the API).
async fn authorize(State(app): State<App>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let always_open = path == "/api/health" || path == "/api/openapi.json";
    let read = request.method() == Method::GET || request.method() == Method::HEAD;
    if always_open || (read && crate::ui::auth::may_read(&app, request.headers())) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !crate::ui::auth::constant_time_eq(given.as_bytes(), app.access.token.as_bytes()) {
        let why = if given.is_empty() { "this call needs `Authorization: Bearer TOKEN`" } else { "wrong token" };
        return ApiError(StatusCode::UNAUTHORIZED, why.into()).into_response();
    }
    next.run(request).await
}

fn meta(app: &App, name: &str) -> Result<Arc<PipelineMeta>, ApiError> {
    app.scheduler
        .pipelines()
        .remove(name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no pipeline `{name}`")))
}

async fn pipeline_json(app: &App, meta: &PipelineMeta, detail: bool) -> Result<Value, ApiError> {
    let store = app.scheduler.store();
    let now = Utc::now();
    let row = store.pipeline(&meta.name, now).await?;
    let p = &meta.pipeline;
    let next_run = meta.schedule.as_ref().and_then(|s| {
        let start = row
            .next_start
            .as_deref()
            .and_then(weir_orchestrate::store::parse_stamp)
            .or_else(|| intervals::first_start(s, weir_orchestrate::store::parse_stamp(&row.first_seen)?))?;
        intervals::next_due(s, start).map(weir_orchestrate::store::stamp)
    });
    let recent = store.runs(Some(&meta.name), &[], if detail { 25 } else { 10 }, 0).await?;
    let mut v = json!({
        "name": meta.name,
        "file": meta.file.display().to_string(),
        "description": p.description,
        "owner": p.owner,
        "tags": p.tags,
        "schedule": meta.schedule.as_ref().map(|s| s.text.clone()),
        "timezone": meta.schedule.as_ref().map(|s| s.timezone.name()),
        "catchup": meta.schedule.as_ref().map(|s| s.catchup),
        "paused": row.paused,
        "next_run": next_run,
        "recent_runs": recent.iter().map(|r| json!({"id": r.id, "logical_date": r.logical_date, "state": r.state})).collect::<Vec<_>>(),
    });
    if detail {
        v["tasks"] = p
            .tasks
            .iter()
            .map(|t| {
                let kind = match &t.input {
                    weir_config::TaskInput::Source(c) => format!("source:{}", c.kind),
                    weir_config::TaskInput::Model { name, .. } => format!("model:{name}"),
                    weir_config::TaskInput::Sql(_) => "sql".into(),
                    weir_config::TaskInput::Shell(_) => "shell".into(),
                    weir_config::TaskInput::Python(_) => "python".into(),
                    weir_config::TaskInput::Http(_) => "http".into(),
                    weir_config::TaskInput::Sensor(_) => "sensor".into(),
                };
                json!({
                    "name": t.name,
                    "kind": kind,
                    "sink": t.sink.as_ref().map(|s| s.kind.clone()),
                    "depends_on": t.depends_on,
                    "trigger_rule": format!("{:?}", t.trigger_rule),
                    "retries": t.retries.max,
                    "timeout_seconds": t.timeout.map(|d| d.as_secs()),
                })
            })
            .collect();
    }
    Ok(v)
}

async fn list_pipelines(State(app): State<App>) -> ApiResult {
    let mut metas: Vec<Arc<PipelineMeta>> = app.scheduler.pipelines().into_values().collect();
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pipelines = Vec::new();
    for m in &metas {
        pipelines.push(pipeline_json(&app, m, false).await?);
    }
    let broken: Vec<Value> = app
        .scheduler
        .broken_pipelines()
        .into_iter()
        .map(|(file, problem)| json!({"file": file.display().to_string(), "problem": problem}))
        .collect();
    Ok(Json(json!({ "pipelines": pipelines, "broken": broken })))
}

async fn get_pipeline(State(app): State<App>, Path(name): Path<String>) -> ApiResult {
    let m = meta(&app, &name)?;
    Ok(Json(pipeline_json(&app, &m, true).await?))
}

#[derive(Deserialize)]
struct Page {
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    pipeline: Option<String>,
}

fn default_limit() -> usize {
    50
}

fn states(p: &Page) -> Result<Vec<RunState>, ApiError> {
    match &p.state {
        None => Ok(Vec::new()),
        Some(s) => {
            s.split(',').map(|s| s.parse::<RunState>().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))).collect()
        }
    }
}

async fn pipeline_runs(State(app): State<App>, Path(name): Path<String>, Query(page): Query<Page>) -> ApiResult {
    let runs = app.scheduler.store().runs(Some(&name), &states(&page)?, page.limit.min(1000), page.offset).await?;
    Ok(Json(json!({ "runs": runs })))
}

/// The project's streams (`streams/*.yaml`) with their status and figures.
async fn list_streams(State(app): State<App>) -> ApiResult {
    let streams: Vec<Value> = app
        .streams
        .streams
        .iter()
        .map(|s| {
            let status = s.status();
            let m = s.metrics().map(|m| m.snapshot()).unwrap_or_default();
            json!({
                "name": s.name,
                "file": s.file.display().to_string(),
                "source": s.source,
                "delivery": s.delivery,
                "status": status.label(),
                "error": status.error(),
                "restarts": s.restarts(),
                "events": m.events,
                "events_per_second": m.events_per_second,
                "decisions": {"approve": m.decisions[0], "hold": m.decisions[1], "escalate": m.decisions[2]},
                "late": m.late,
                "invalid": m.invalid,
                "rules": m.rules.iter().map(|(r, matched, decided)| json!({"rule": r, "matched": matched, "alerts": decided})).collect::<Vec<_>>(),
                "consumer_lag": m.lag.iter().map(|(p, l)| json!({"partition": p, "lag": l})).collect::<Vec<_>>(),
                "latency_ms": m.latency_ms.map(|(p50, p99)| json!({"p50": p50, "p99": p99})),
            })
        })
        .collect();
    let broken: Vec<Value> =
        app.streams.broken.iter().map(|(f, e)| json!({"file": f.display().to_string(), "error": e})).collect();
    Ok(Json(json!({ "streams": streams, "broken": broken })))
}

/// Every stream's metrics in Prometheus' text format (read access, like the rest of the API).
async fn metrics(State(app): State<App>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.streams.prometheus()).into_response()
}

async fn list_pools(State(app): State<App>) -> ApiResult {
    Ok(Json(json!({ "pools": app.scheduler.store().pools().await? })))
}

async fn list_runs(State(app): State<App>, Query(page): Query<Page>) -> ApiResult {
    let runs = app
        .scheduler
        .store()
        .runs(page.pipeline.as_deref(), &states(&page)?, page.limit.min(1000), page.offset)
        .await?;
    Ok(Json(json!({ "runs": runs })))
}

async fn get_run(State(app): State<App>, Path(id): Path<i64>) -> ApiResult {
    let store = app.scheduler.store();
    let run = store.run(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let tasks = store.task_instances(id).await?;
    Ok(Json(json!({ "run": run, "task_instances": tasks })))
}

async fn logs(State(app): State<App>, Path((id, task)): Path<(i64, String)>) -> ApiResult {
    let attempts = app.scheduler.store().attempts(id, &task).await?;
    Ok(Json(json!({ "attempts": attempts })))
}

fn parse_date(text: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("`{text}` is not a date as YYYY-MM-DD")))
}

#[derive(Deserialize, Default)]
struct TriggerBody {
    #[serde(default)]
    date: Option<String>,
}

async fn trigger(State(app): State<App>, Path(name): Path<String>, body: Option<Json<TriggerBody>>) -> ApiResult {
    let m = meta(&app, &name)?;
    // A date, or on a pipeline with several intervals a day, an interval's start (`2026-03-01T14:00`).
    let when = match body.and_then(|b| b.0.date) {
        Some(d) => d,
        None => (Utc::now().date_naive() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string(),
    };
    let run = ops::trigger(app.scheduler.store(), &m, &when, Utc::now()).await?;
    app.scheduler.wake();
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
struct BackfillBody {
    from: String,
    to: String,
    #[serde(default)]
    reprocess: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn backfill(State(app): State<App>, Path(name): Path<String>, Json(body): Json<BackfillBody>) -> ApiResult {
    let m = meta(&app, &name)?;
    let reprocess: Reprocess =
        body.reprocess.as_deref().unwrap_or("none").parse().map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let items = ops::backfill(
        app.scheduler.store(),
        &m,
        parse_date(&body.from)?,
        parse_date(&body.to)?,
        reprocess,
        body.dry_run,
        Utc::now(),
    )
    .await?;
    app.scheduler.wake();
    Ok(Json(json!({ "dates": items })))
}

async fn set_paused(app: &App, name: &str, paused: bool) -> ApiResult {
    let m = meta(app, name)?;
    app.scheduler.store().set_paused(&m.name, paused, Utc::now()).await?;
    app.scheduler.wake();
    Ok(Json(json!({ "pipeline": m.name, "paused": paused })))
}

async fn pause(State(app): State<App>, Path(name): Path<String>) -> ApiResult {
    set_paused(&app, &name, true).await
}

async fn unpause(State(app): State<App>, Path(name): Path<String>) -> ApiResult {
    set_paused(&app, &name, false).await
}

#[derive(Deserialize, Default)]
struct ClearBody {
    /// Clear only this task, not its downstream tasks.
    #[serde(default)]
    only: bool,
}

async fn clear(
    State(app): State<App>,
    Path((id, task)): Path<(i64, String)>,
    body: Option<Json<ClearBody>>,
) -> ApiResult {
    let store = app.scheduler.store();
    let run = store.run(id).await?.ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let m = meta(&app, &run.pipeline)?;
    let only = body.map(|b| b.0.only).unwrap_or(false);
    let cleared = ops::clear(store, &m, &run, &task, only).await?;
    app.scheduler.wake();
    Ok(Json(json!({ "run": run.id, "cleared": cleared })))
}
