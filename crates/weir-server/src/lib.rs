//! weir-server: the HTTP side of `weir serve`. A JSON REST API over the metadata store and the operator's actions
//! (trigger, backfill, clear, pause), described by an OpenAPI document at `/api/openapi.json`; the web UI adds its
//! pages to the same router.
//!
//! Mutating endpoints always need `Authorization: Bearer TOKEN`. Read endpoints are open on a loopback address and
//! need the token elsewhere, unless the daemon was started with reads opened explicitly.

mod api;
mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::router;
use weir_orchestrate::Scheduler;

/// Who may call what.
#[derive(Debug, Clone)]
pub struct Access {
    /// The bearer token mutating calls (and, unless `open_reads`, all calls) must present.
    pub token: String,
    /// Whether read endpoints answer without the token.
    pub open_reads: bool,
}

/// Serves the API on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scheduler: Arc<Scheduler>,
    access: Access,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(scheduler, access);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(stop).await
}
