//! The HTTP side of the `http_api` source: one request with everything production APIs need around it.
//!
//! * **Retries** on connect errors, timeouts, 429, 500, 502, 503 and 504: exponential backoff with full jitter, capped
//!   at a maximum delay, for a maximum number of attempts; a `Retry-After` header (seconds or an HTTP date) is
//!   honoured, even above the cap. Other 4xx fail at once, with an excerpt of the response body.
//! * **Rate limiting**: a requests-per-second budget per host, shared by every request of the process.
//! * **Auth**: bearer token, basic, API key in a header or the query, OAuth2 client credentials (the token is fetched,
//!   cached until shortly before it expires, and fetched again after a 401).
//! * **Secrets** are never printed: every error and log line goes through [`Redactor`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use weir_core::{Error, Result};

/// How a request authenticates.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    Bearer {
        token: String,
    },
    Basic {
        username: String,
        password: String,
    },
    ApiKey {
        name: String,
        value: String,
        /// `header` (default) or `query`.
        #[serde(default, rename = "in")]
        location: ApiKeyLocation,
    },
    /// OAuth2 client credentials grant.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default)]
        scope: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    #[default]
    Header,
    Query,
}

impl AuthConfig {
    /// The same settings with `${env:NAME}` references resolved, and the secret values to redact.
    pub fn resolve(&self) -> std::result::Result<(AuthConfig, Vec<String>), String> {
        let r = |s: &str| weir_config::project::resolve_env(s);
        Ok(match self {
            AuthConfig::Bearer { token } => {
                let token = r(token)?;
                (AuthConfig::Bearer { token: token.clone() }, vec![token])
            }
            AuthConfig::Basic { username, password } => {
                let password = r(password)?;
                (AuthConfig::Basic { username: r(username)?, password: password.clone() }, vec![password])
            }
            AuthConfig::ApiKey { name, value, location } => {
                let value = r(value)?;
                (AuthConfig::ApiKey { name: name.clone(), value: value.clone(), location: *location }, vec![value])
            }
            AuthConfig::Oauth2 { token_url, client_id, client_secret, scope } => {
                let client_secret = r(client_secret)?;
                let cfg = AuthConfig::Oauth2 {
                    token_url: r(token_url)?,
                    client_id: r(client_id)?,
                    client_secret: client_secret.clone(),
                    scope: scope.clone(),
                };
                (cfg, vec![client_secret])
            }
        })
    }
}

/// Retry settings (`retry:` of the source).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry (`500ms` by default); doubled at each attempt.
    #[serde(default = "default_initial_delay", deserialize_with = "weir_config::duration::deserialize")]
    pub initial_delay: Duration,
    /// Longest delay between attempts (`30s` by default; a longer `Retry-After` is still honoured).
    #[serde(default = "default_max_delay", deserialize_with = "weir_config::duration::deserialize")]
    pub max_delay: Duration,
}

fn default_attempts() -> u32 {
    6
}
fn default_initial_delay() -> Duration {
    Duration::from_millis(500)
}
fn default_max_delay() -> Duration {
    Duration::from_secs(30)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_attempts(),
            initial_delay: default_initial_delay(),
            max_delay: default_max_delay(),
        }
    }
}

/// Replaces secret values with `***` in anything that may be printed.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: Vec<String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 3).collect();
        // The URL-encoded form shows up in query strings.
        let encoded: Vec<String> =
            secrets.iter().map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect()).collect();
        secrets.extend(encoded);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }
}

/// A per-host requests-per-second budget, shared by every source of the process.
fn throttle_for(host: &str, per_second: f64) -> Arc<Mutex<Instant>> {
    static HOSTS: OnceLock<Mutex<HashMap<String, Arc<Mutex<Instant>>>>> = OnceLock::new();
    let hosts = HOSTS.get_or_init(Default::default);
    let mut map = hosts.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(format!("{host}@{per_second}")).or_insert_with(|| Arc::new(Mutex::new(Instant::now()))).clone()
}

/// One request to send (URL with its query already built).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: reqwest::Url,
    pub body: Option<String>,
}

/// A successful response.
#[derive(Debug)]
pub struct Response {
    pub url: reqwest::Url,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

#[derive(Debug)]
struct Token {
    value: String,
    expires: Option<Instant>,
}

/// Sends requests with auth, rate limit and retries.
pub struct HttpClient {
    client: reqwest::Client,
    headers: HeaderMap,
    auth: Option<AuthConfig>,
    retry: RetryConfig,
    rate_limit: Option<f64>,
    redactor: Redactor,
    token: tokio::sync::Mutex<Option<Token>>,
    /// Total time spent waiting before retries (reported, and checked by tests).
    pub retried: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    pub fn new(
        headers: &[(String, String)],
        auth: Option<AuthConfig>,
        retry: RetryConfig,
        rate_limit: Option<f64>,
        timeout: Duration,
        redactor: Redactor,
    ) -> Result<HttpClient> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION"), " (+https://github.com/weir-data/weir)"))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .gzip(true)
            .build()
            .map_err(|e| Error::engine("http client", e))?;
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::config(Default::default(), format!("header `{k}`: {e}")))?;
            let value = HeaderValue::from_str(v).map_err(|e| {
                Error::config(Default::default(), format!("header `{k}`: {}", redactor.redact(&e.to_string())))
            })?;
            map.insert(name, value);
        }
        Ok(HttpClient {
            client,
            headers: map,
            auth,
            retry,
            rate_limit,
            redactor,
            token: tokio::sync::Mutex::new(None),
            retried: Default::default(),
        })
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    async fn wait_for_budget(&self, url: &reqwest::Url) {
        let Some(per_second) = self.rate_limit.filter(|r| *r > 0.0) else { return };
        let slot = throttle_for(url.host_str().unwrap_or(""), per_second);
        let wait = {
            let mut next = slot.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + Duration::from_secs_f64(1.0 / per_second);
            at - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    async fn oauth_token(&self, force: bool) -> Result<String> {
        let Some(AuthConfig::Oauth2 { token_url, client_id, client_secret, scope }) = &self.auth else {
            return Ok(String::new());
        };
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            if !force && t.expires.is_none_or(|e| Instant::now() < e) {
                return Ok(t.value.clone());
            }
        }
        let mut form =
            vec![("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let response = self
            .client
            .post(token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| Error::external("oauth2 token", self.redactor.redact(&e.to_string())))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let answered = format!("{token_url} answered {status}: {}", self.redactor.redact(&excerpt(&text)));
            return Err(if is_retryable(status) {
                Error::external("oauth2 token", answered)
            } else {
                Error::external_final("oauth2 token", answered)
            });
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            #[serde(default)]
            expires_in: Option<f64>,
        }
        let t: TokenResponse = serde_json::from_str(&text)
            .map_err(|e| Error::external_final("oauth2 token", format!("{token_url}: not a token response: {e}")))?;
        // Refresh a little early so a token does not expire in flight.
        let expires = t.expires_in.map(|s| Instant::now() + Duration::from_secs_f64((s - 30.0).max(s / 2.0).max(0.0)));
        *cached = Some(Token { value: t.access_token.clone(), expires });
        Ok(t.access_token)
    }

    async fn build(&self, req: &Request, force_token: bool) -> Result<reqwest::RequestBuilder> {
        let mut url = req.url.clone();
        if let Some(AuthConfig::ApiKey { name, value, location: ApiKeyLocation::Query }) = &self.auth {
            url.query_pairs_mut().append_pair(name, value);
        }
        let mut b = self.client.request(req.method.clone(), url).headers(self.headers.clone());
        if let Some(body) = &req.body {
            b = b.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        b = match &self.auth {
            None | Some(AuthConfig::ApiKey { location: ApiKeyLocation::Query, .. }) => b,
            Some(AuthConfig::Bearer { token }) => b.bearer_auth(token),
            Some(AuthConfig::Basic { username, password }) => b.basic_auth(username, Some(password)),
            Some(AuthConfig::ApiKey { name, value, location: ApiKeyLocation::Header }) => {
                b.header(name.as_str(), value.as_str())
            }
            Some(AuthConfig::Oauth2 { .. }) => b.bearer_auth(self.oauth_token(force_token).await?),
        };
        Ok(b)
    }

    /// Sends `req`, retrying what is worth retrying. `what` names the request in errors (`page 3`).
    pub async fn send(&self, req: &Request, what: &str) -> Result<Response> {
        let shown = self.redactor.redact(req.url.as_str());
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.wait_for_budget(&req.url).await;
            let outcome = self.build(req, false).await?.send().await;
            let (retry_after, why) = match outcome {
                Ok(r) if r.status().is_success() => {
                    let url = r.url().clone();
                    let headers = r.headers().clone();
                    match r.bytes().await {
                        Ok(body) => return Ok(Response { url, headers, body }),
                        Err(e) => (None, format!("reading the body failed: {}", self.redactor.redact(&e.to_string()))),
                    }
                }
                Ok(r)
                    if r.status() == StatusCode::UNAUTHORIZED
                        && matches!(self.auth, Some(AuthConfig::Oauth2 { .. }))
                        && !refreshed =>
                {
                    // The token expired early or was revoked: fetch a new one and try again at once.
                    refreshed = true;
                    attempt -= 1;
                    self.oauth_token(true).await?;
                    tracing::info!(url = %shown, "401: refreshed the OAuth2 token");
                    continue;
                }
                Ok(r) if is_retryable(r.status()) => {
                    let status = r.status();
                    let after = retry_after(r.headers());
                    (after, format!("{status}"))
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    // A 4xx other than 408 and 429 answers the same request the same way again.
                    return Err(Error::external_final(
                        format!("http_api {what}"),
                        format!("{} {shown} answered {status}: {}", req.method, self.redactor.redact(&excerpt(&body))),
                    ));
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() => {
                    let kind = if e.is_timeout() { "timed out" } else { "connection failed" };
                    (None, format!("{kind}: {}", self.redactor.redact(&e.to_string())))
                }
                Err(e) => {
                    return Err(Error::external(format!("http_api {what}"), self.redactor.redact(&e.to_string())));
                }
            };
            if attempt >= self.retry.max_attempts {
                return Err(Error::external(
                    format!("http_api {what}"),
                    format!("{shown}: gave up after {attempt} attempts; last: {why}"),
                ));
            }
            let backoff = self.retry.initial_delay.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
            let jittered = rand::rng().random_range(0.0..=backoff.min(self.retry.max_delay.as_secs_f64()));
            let delay = match retry_after {
                Some(d) => d.max(Duration::from_secs_f64(jittered)),
                None => Duration::from_secs_f64(jittered),
            };
            tracing::warn!(url = %shown, attempt, delay_ms = delay.as_millis() as u64, "{why}; retrying");
            self.retried.fetch_add(delay.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(delay).await;
        }
    }
}

fn is_retryable(s: StatusCode) -> bool {
    matches!(s.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.max(0.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The first 300 characters of a body, on one line.
pub fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later.to_rfc2822()).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(27) && d <= Duration::from_secs(30), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn redaction_hides_secrets_and_their_url_encoding() {
        let r = Redactor::new(vec!["s3cr3t/+key".into()]);
        assert_eq!(r.redact("token s3cr3t/+key in https://x/?k=s3cr3t%2F%2Bkey"), "token *** in https://x/?k=***");
    }
}
