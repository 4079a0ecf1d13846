//! weir-server: the HTTP side of `weir serve`. A JSON REST API over the metadata store and the operator's actions
//! (trigger, backfill, clear, pause), described by an OpenAPI document at `/api/openapi.json`, and the web UI:
//! server-rendered pages over the same store and the lake, embedded in the binary (no frontend server, no CDN).
//!
//! Mutating API calls always need `Authorization: Bearer TOKEN`. Reads (API and pages) are open on a loopback
//! address and need the token or a browser session elsewhere, unless the daemon opened them explicitly. The UI's
//! own actions (forms) need a session off loopback and a CSRF token everywhere.
//!
//! Every request must name the server by a `Host` it answers to (see [`host_allowed`]): a web page whose domain is
//! re-pointed at the daemon (DNS rebinding) reaches it with its own name, and gets 421 on every route.

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
    /// The address the server listens on.
    pub bound: SocketAddr,
    /// Names besides its address and `localhost` that requests may call the server by (`--allowed-host`, such as a
    /// reverse proxy's name); `.example.com` allows every name under it.
    pub allowed_hosts: Vec<String>,
}

/// Whether a request's `Host` (or HTTP/2 authority) names this server: an IP address it listens on (any address
/// when it listens on all of them: an address cannot be rebound), `localhost` when it listens on loopback or on all
/// addresses, or an allowed name. The port is not compared: a rebinding page uses the server's own port.
pub fn host_allowed(access: &Access, host: &str) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
        None => host
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(host.clone(), |(n, _)| n.to_string()),
    };
    let name = name.trim_end_matches('.');
    let ip = access.bound.ip();
    if let Ok(asked) = name.parse::<std::net::IpAddr>() {
        return asked == ip
            || (ip.is_unspecified() && !asked.is_unspecified())
            || (ip.is_loopback() && asked.is_loopback());
    }
    if name == "localhost" && (ip.is_loopback() || ip.is_unspecified()) {
        return true;
    }
    access.allowed_hosts.iter().any(|allowed| {
        let allowed = allowed.trim().trim_end_matches('.').to_ascii_lowercase();
        match allowed.strip_prefix('.') {
            Some(domain) => name == domain || name.ends_with(&format!(".{domain}")),
            None => name == allowed,
        }
    })
}

/// Refuses a request that names another host (421 Misdirected Request), on every route.
async fn check_host(
    axum::extract::State(access): axum::extract::State<Access>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let named = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match named {
        Some(host) if !host_allowed(&access, &host) => {
            let shown: String = host.chars().filter(|c| c.is_ascii_graphic()).take(100).collect();
            tracing::warn!(host = %shown, "refused a request for a host this server does not answer to");
            (
                axum::http::StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "weir: this server (listening on {}) does not answer to the host `{shown}`; to reach it by that \
                     name, start it with --allowed-host {}\n",
                    access.bound,
                    shown.rsplit_once(':').map_or(shown.as_str(), |(n, _)| n)
                ),
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
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
    let app = App { scheduler, access: access.clone(), sessions: Arc::default(), streams };
    api::routes(app.clone()).merge(ui::routes(app)).layer(axum::middleware::from_fn_with_state(access, check_host))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn access(bound: &str, allowed: &[&str]) -> Access {
        Access {
            token: String::new(),
            open_reads: false,
            loopback: true,
            bound: bound.parse().unwrap(),
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn only_the_servers_own_names_are_answered() {
        let local = access("127.0.0.1:8080", &["weir.internal", ".corp.example"]);
        for ok in ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:8080", "weir.internal:8080"] {
            assert!(host_allowed(&local, ok), "{ok}");
        }
        for ok in ["a.corp.example", "corp.example:443", "weir.internal."] {
            assert!(host_allowed(&local, ok), "{ok}");
        }
        for refused in ["evil.test:8080", "127.0.0.1.evil.test", "localhost.evil.test", "xcorp.example", "10.0.0.5"] {
            assert!(!host_allowed(&local, refused), "{refused}");
        }
        // Listening on every address: any address (it cannot be rebound) and localhost; names only when allowed.
        let all = access("0.0.0.0:8080", &[]);
        assert!(host_allowed(&all, "10.0.0.5:8080") && host_allowed(&all, "localhost:8080"));
        assert!(!host_allowed(&all, "myhost.lan:8080"));
    }
}
