//! Who may see and change what in the browser. Off loopback the pages need a login: the operator pastes the API
//! token once and gets a session cookie (HttpOnly, SameSite=Strict, 12 hours). Every form carries a CSRF token
//! that must match the `weir_csrf` cookie (double submit), and a cross-site `Origin` is refused outright, so a page
//! elsewhere cannot make a logged-in browser trigger or clear anything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};

use crate::App;

pub const SESSION_COOKIE: &str = "weir_session";
pub const CSRF_COOKIE: &str = "weir_csrf";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Logged-in browsers (in memory: a restarted daemon asks for the token again).
#[derive(Default)]
pub struct Sessions {
    started: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    pub fn create(&self) -> String {
        let id = random_token();
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.retain(|_, at| at.elapsed() < SESSION_TTL);
        started.insert(id.clone(), Instant::now());
        id
    }

    pub fn valid(&self, id: &str) -> bool {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        started.get(id).is_some_and(|at| at.elapsed() < SESSION_TTL)
    }

    pub fn end(&self, id: &str) {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// 128 bits from the operating system's generator, as hex.
pub fn random_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn logged_in(app: &App, headers: &HeaderMap) -> bool {
    cookie(headers, SESSION_COOKIE).is_some_and(|id| app.sessions.valid(id))
}

pub fn may_read(app: &App, headers: &HeaderMap) -> bool {
    app.access.open_reads || logged_in(app, headers)
}

pub fn may_change(app: &App, headers: &HeaderMap) -> bool {
    app.access.loopback || logged_in(app, headers)
}

/// A `Set-Cookie` value for a cookie only this site's own requests send back.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> HeaderValue {
    let age = max_age.map(|d| format!("; Max-Age={}", d.as_secs())).unwrap_or_default();
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn session_cookie(id: &str) -> HeaderValue {
    set_cookie(SESSION_COOKIE, id, Some(SESSION_TTL))
}

/// Whether a form post is this site's own: its CSRF field matches the cookie, and its `Origin` (when the browser
/// sends one) is this host.
pub fn same_site_form(headers: &HeaderMap, csrf_field: &str) -> bool {
    let Some(expected) = cookie(headers, CSRF_COOKIE) else { return false };
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), csrf_field.as_bytes()) {
        return false;
    }
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), headers.get(header::HOST)) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            origin_host == host.to_str().unwrap_or_default()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("")));
        }
        h
    }

    #[test]
    fn a_form_needs_the_matching_csrf_cookie_and_its_own_origin() {
        let ok = headers(&[
            (header::COOKIE, "a=1; weir_csrf=abc123"),
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "http://127.0.0.1:8080"),
        ]);
        assert!(same_site_form(&ok, "abc123"));
        assert!(!same_site_form(&ok, "abc124"), "a different token");
        assert!(!same_site_form(&ok, ""), "no token");
        let no_cookie = headers(&[(header::HOST, "127.0.0.1:8080")]);
        assert!(!same_site_form(&no_cookie, "abc123"));
        let elsewhere = headers(&[
            (header::COOKIE, "weir_csrf=abc123"),
            (header::HOST, "127.0.0.1:8080"),
            (header::ORIGIN, "https://evil.example"),
        ]);
        assert!(!same_site_form(&elsewhere, "abc123"), "a cross-site post");
    }

    #[test]
    fn sessions_are_random_and_can_end() {
        let s = Sessions::default();
        let (a, b) = (s.create(), s.create());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(s.valid(&a) && s.valid(&b) && !s.valid("guess"));
        s.end(&a);
        assert!(!s.valid(&a) && s.valid(&b));
    }
}
