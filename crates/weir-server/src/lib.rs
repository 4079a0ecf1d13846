//! weir-server: the HTTP side of `weir serve`. A JSON REST API over the metadata store and the operator's actions
//! (trigger, backfill, clear, pause), described by an OpenAPI document at `/api/openapi.json`, and the web UI:
//! server-rendered pages over the same store and the lake, embedded in the binary (no frontend server, no CDN).
//!
//! Mutating API calls always need `Authorization: Bearer TOKEN`. Reads (API and pages) are open on a loopback
//! address and need the token or a browser session elsewhere, unless the daemon opened them explicitly. The UI's
//! own actions (forms) need a session off loopback and a CSRF token everywhere.

mod api;
mod openapi;
mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use weir_orchestrate::Scheduler;
use weir_stream::supervise::ProjectStreams;

/// Who may call what.
#[derive(Debug, Clone)]
pub struct Access {
    /// The bearer token mutating calls (and, unless `open_reads`, all calls) must present; the UI's login asks for
    /// it too.
    pub token: String,
    /// Whether read endpoints and pages answer without the token or a session.
    pub open_reads: bool,
    /// Whether the server listens on a loopback address only: then the UI's actions need no login (whoever can
    /// reach it can run the CLI too), though still a CSRF token.
    pub loopback: bool,
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pub scheduler: Arc<Scheduler>,
    pub access: Access,
    pub sessions: Arc<ui::auth::Sessions>,
    /// The project's streams that `weir serve` runs (none for a lone API).
    pub streams: Arc<ProjectStreams>,
}

/// The API and the UI on one router.
pub fn router(scheduler: Arc<Scheduler>, access: Access, streams: Arc<ProjectStreams>) -> Router {
    let app = App { scheduler, access, sessions: Arc::default(), streams };
    api::routes(app.clone()).merge(ui::routes(app))
}

/// Serves the API and the UI on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scheduler: Arc<Scheduler>,
    access: Access,
    streams: Arc<ProjectStreams>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(scheduler, access, streams);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(stop).await
}

/// Serves `/metrics` (Prometheus text from `render`) on `listener`: the metrics endpoint of a lone `weir stream`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], render()) }
        }),
    );
    axum::serve(listener, app).await
}
