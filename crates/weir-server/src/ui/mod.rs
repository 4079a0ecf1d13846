//! The web UI: pages rendered on the server (maud) from the metadata store and the lake, with one small embedded
//! script that refreshes the live parts of a page while runs are active. Everything it needs is compiled into the
//! binary, so it works offline. Pages: pipelines, a pipeline (grid, graph, file, actions), a run (Gantt, attempts,
//! logs with a live tail), the lake (tables, schema, partitions, history with the run that wrote each version,
//! preview, lineage), data quality (check results, quarantine, schema drift) and the project's streams.

pub mod auth;
mod lake;
mod pipelines;
mod quality;
mod runs;
mod secrets;
mod streams;

pub use secrets::redact;

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::App;

pub(crate) fn routes(app: App) -> Router {
    Router::new()
        .route("/", get(pipelines::list))
        .route("/pipelines/{name}", get(pipelines::page))
        .route("/pipelines/{name}/trigger", post(pipelines::trigger))
        .route("/pipelines/{name}/backfill", post(pipelines::backfill))
        .route("/pipelines/{name}/pause", post(pipelines::pause))
        .route("/pipelines/{name}/unpause", post(pipelines::unpause))
        .route("/runs/{id}", get(runs::page))
        .route("/runs/{id}/tasks/{task}/clear", post(runs::clear))
        .route("/lake", get(lake::list))
        .route("/lake/{table}", get(lake::page))
        .route("/quality", get(quality::page))
        .route("/streams", get(streams::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/ui/weir.css", get(|| asset("text/css", include_str!("../../assets/weir.css"))))
        .route("/ui/weir.js", get(|| asset("text/javascript", include_str!("../../assets/weir.js"))))
        .with_state(app)
}

async fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// What a page knows of the browser asking for it.
pub struct Viewer {
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// Set when the browser had no CSRF cookie yet.
    new_csrf: bool,
    /// Whether the viewer may use the action buttons.
    pub may_change: bool,
    pub logged_in: bool,
}

/// An error page (or a redirect to the login).
pub enum UiError {
    Status(StatusCode, String),
    Login(String),
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Login(next) => Redirect::to(&format!("/login?next={}", urlencode(&next))).into_response(),
            UiError::Status(status, message) => {
                let body = html! {
                    (DOCTYPE)
                    html { head { meta charset="utf-8"; title { "weir: error" } link rel="stylesheet" href="/ui/weir.css"; }
                    body { main { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                    p.error { (message) } p { a href="/" { "Back to the pipelines" } } } } }
                };
                (status, maud::PreEscaped(body.into_string())).into_response_html()
            }
        }
    }
}

impl From<weir_core::Error> for UiError {
    fn from(e: weir_core::Error) -> Self {
        let status = match e {
            weir_core::Error::Config { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        UiError::Status(status, e.to_string())
    }
}

pub fn not_found(what: String) -> UiError {
    UiError::Status(StatusCode::NOT_FOUND, what)
}

pub fn bad_request(what: String) -> UiError {
    UiError::Status(StatusCode::BAD_REQUEST, what)
}

/// A status and HTML body as an HTML response.
trait HtmlResponse {
    fn into_response_html(self) -> Response;
}

impl HtmlResponse for (StatusCode, maud::PreEscaped<String>) {
    fn into_response_html(self) -> Response {
        (self.0, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.1 .0).into_response()
    }
}

/// The viewer of a page at `path`, or the login redirect when reads need a session.
pub fn viewer(app: &App, headers: &HeaderMap, path: &str) -> Result<Viewer, UiError> {
    if !auth::may_read(app, headers) {
        return Err(UiError::Login(path.to_string()));
    }
    let existing = auth::cookie(headers, auth::CSRF_COOKIE).filter(|c| c.len() == 32).map(str::to_string);
    Ok(Viewer {
        new_csrf: existing.is_none(),
        csrf: existing.unwrap_or_else(auth::random_token),
        may_change: auth::may_change(app, headers),
        logged_in: auth::logged_in(app, headers),
    })
}

/// Checks a form post: the viewer may change things and the form is this site's own.
pub fn check_action(app: &App, headers: &HeaderMap, csrf: &str, path: &str) -> Result<(), UiError> {
    if !auth::may_change(app, headers) {
        return Err(UiError::Login(path.to_string()));
    }
    if !auth::same_site_form(headers, csrf) {
        return Err(UiError::Status(
            StatusCode::FORBIDDEN,
            "this form did not come from this page (CSRF token missing or wrong): reload the page and try again".into(),
        ));
    }
    Ok(())
}

/// A whole page: navigation, title and content. `live` makes the script refresh `#live` every two seconds.
pub fn render(viewer: &Viewer, section: &str, title: &str, live: bool, content: Markup) -> Response {
    let nav = [("Pipelines", "/"), ("Lake", "/lake"), ("Quality", "/quality"), ("Streams", "/streams")];
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · weir" }
                link rel="stylesheet" href="/ui/weir.css";
                script src="/ui/weir.js" defer {}
            }
            body data-live=[live.then_some("1")] {
                header.top {
                    a.brand href="/" { "weir" }
                    nav { @for (name, href) in nav {
                        a href=(href) class=[(name == section).then_some("active")] { (name) }
                    } }
                    @if viewer.logged_in {
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    };
    let mut response = (StatusCode::OK, maud::PreEscaped(body.into_string())).into_response_html();
    if viewer.new_csrf {
        response.headers_mut().append(header::SET_COOKIE, auth::set_cookie(auth::CSRF_COOKIE, &viewer.csrf, None));
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; style-src 'self' 'unsafe-inline'"),
    );
    response
}

/// The hidden field every form carries.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A state as a coloured badge.
pub fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge s-" (state) } { (state.replace('_', " ")) } }
}

/// `2026-03-01T10:00:00.000Z` as `2026-03-01 10:00:00`.
pub fn short_time(stamp: Option<&str>) -> String {
    stamp
        .map(|s| s.replace('T', " ").trim_end_matches('Z').split('.').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Seconds between two stored stamps (to now when `end` is none), as `1m 05s`.
pub fn duration(start: Option<&str>, end: Option<&str>) -> String {
    let parse = |s: &str| weir_orchestrate::store::parse_stamp(s);
    let Some(start) = start.and_then(parse) else { return String::new() };
    let end = end.and_then(parse).unwrap_or_else(chrono::Utc::now);
    let ms = (end - start).num_milliseconds().max(0);
    if ms < 10_000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60)
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only paths of this site: never an absolute URL elsewhere. Browsers read a backslash as a slash and drop tabs
/// and newlines, so `/\\evil.test` and `/<tab>/evil.test` mean `//evil.test`: a path with a backslash, a control
/// character or whitespace is refused too, as is one that resolves to another origin.
fn local_path(next: Option<&str>) -> String {
    let Some(p) = next else { return "/".into() };
    let plain = p.starts_with('/')
        && !p.starts_with("//")
        && !p.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace());
    let base = url::Url::parse("http://weir.invalid/").ok();
    let same_origin = base
        .as_ref()
        .and_then(|b| b.join(p).ok())
        .is_some_and(|u| u.scheme() == "http" && u.host_str() == Some("weir.invalid") && u.port().is_none());
    if plain && same_origin {
        p.to_string()
    } else {
        "/".into()
    }
}

/// The viewer of the login page: no session needed, a CSRF cookie made when missing.
fn login_viewer(app: &App, headers: &HeaderMap) -> Viewer {
    let existing = auth::cookie(headers, auth::CSRF_COOKIE);
    Viewer {
        new_csrf: existing.is_none(),
        csrf: existing.map(str::to_string).unwrap_or_else(auth::random_token),
        may_change: false,
        logged_in: auth::logged_in(app, headers),
    }
}

async fn login_page(State(app): State<App>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    login_form(&login_viewer(&app, &headers), &local_path(q.next.as_deref()), None)
}

fn login_form(viewer: &Viewer, next: &str, problem: Option<&str>) -> Response {
    render(
        viewer,
        "",
        "Log in",
        false,
        html! {
            h1 { "Log in" }
            p { "Paste the API token: " code { ".weir/api-token" } " in the project, or " code { "WEIR_API_TOKEN" } "." }
            @if let Some(p) = problem { p.error { (p) } }
            form.login method="post" action="/login" {
                (csrf_field(viewer))
                input type="hidden" name="next" value=(next);
                input type="password" name="token" id="token" autocomplete="current-password" placeholder="token" required;
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(State(app): State<App>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(form.next.as_deref());
    if !auth::same_site_form(&headers, &form.csrf) {
        return UiError::Status(StatusCode::FORBIDDEN, "reload the login page and try again".into()).into_response();
    }
    if !auth::constant_time_eq(form.token.trim().as_bytes(), app.access.token.as_bytes()) {
        let mut r = login_form(&login_viewer(&app, &headers), &next, Some("That is not the token."));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    }
    let id = app.sessions.create();
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().append(header::SET_COOKIE, auth::session_cookie(&id));
    r
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn logout(State(app): State<App>, headers: HeaderMap, Form(form): Form<CsrfOnly>) -> Response {
    if auth::same_site_form(&headers, &form.csrf) {
        if let Some(id) = auth::cookie(&headers, auth::SESSION_COOKIE) {
            app.sessions.end(id);
        }
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(header::SET_COOKIE, auth::set_cookie(auth::SESSION_COOKIE, "", Some(Default::default())));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_only_sends_back_to_this_site() {
        assert_eq!(local_path(Some("/runs/3")), "/runs/3");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("/\t/evil.example")), "/");
        assert_eq!(local_path(None), "/");
    }
}
