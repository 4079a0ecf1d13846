//! The HTTP side of the `http_api` source: one request with everything production APIs need around it.
//!
//! * **Retries** on connect errors, timeouts, 429, 500, 502, 503 and 504: exponential backoff with full jitter, capped
//!   at a maximum delay, for a maximum number of attempts; a `Retry-After` header (seconds or an HTTP date) is
//!   honoured, even above the cap. Other 4xx fail at once, with an excerpt of the response body.
//! * **Rate limiting**: a requests-per-second budget per host, shared by every request of the process.
//! * **Auth**: bearer token, basic, API key in a header or the query, OAuth2 client credentials (the token is fetched,
//!   cached until shortly before it expires, and fetched again after a 401).
//! * **Secrets** are never printed: every error and log line goes through [`Redactor`].
//! * **Reach** ([`Reach`]): the auth and the configured headers go only to the source's own origin (and the hosts the
//!   pipeline names in `credential_hosts`); a `next` link or `Link` header elsewhere is fetched without them, and a
//!   redirect elsewhere is not followed. Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services)
//!   are refused, whether named by address or by a name that resolves there, unless `allow_link_local`.

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

/// An origin: scheme, host and port (the port only when it was given, for an allowed host without one).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn of(url: &reqwest::Url) -> Option<Origin> {
        Some(Origin {
            scheme: Some(url.scheme().to_string()),
            host: url.host_str()?.trim_matches(|c| c == '[' || c == ']').to_ascii_lowercase(),
            port: url.port_or_known_default(),
        })
    }

    /// `host`, `host:port` or `scheme://host[:port]`.
    fn parse(text: &str) -> Option<Origin> {
        let text = text.trim().trim_end_matches('/');
        if text.contains("://") {
            let url = reqwest::Url::parse(text).ok()?;
            return Some(Origin { port: url.port(), ..Origin::of(&url)? });
        }
        let url = reqwest::Url::parse(&format!("http://{text}")).ok()?;
        Some(Origin { scheme: None, host: Origin::of(&url)?.host, port: url.port() })
    }

    /// Whether `asked` is this origin (a part not given here matches anything).
    fn matches(&self, asked: &Origin) -> bool {
        self.host == asked.host
            && self.scheme.as_ref().is_none_or(|s| Some(s) == asked.scheme.as_ref())
            && self.port.is_none_or(|p| Some(p) == asked.port)
    }
}

/// Where a source's credentials may go and which addresses it may reach (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Reach {
    credential_origins: Vec<Origin>,
    allow_link_local: bool,
}

impl Reach {
    /// Credentials for `urls`' origins (the source's URL, its details URL, the OAuth2 token URL) and for
    /// `credential_hosts` (`host`, `host:port` or `scheme://host:port`).
    pub fn new(urls: &[&reqwest::Url], credential_hosts: &[String], allow_link_local: bool) -> Result<Reach> {
        let mut credential_origins: Vec<Origin> = urls.iter().filter_map(|u| Origin::of(u)).collect();
        for host in credential_hosts {
            credential_origins.push(Origin::parse(host).ok_or_else(|| {
                Error::config(Default::default(), format!("credential_hosts: `{host}` is not a host or an origin"))
            })?);
        }
        Ok(Reach { credential_origins, allow_link_local })
    }

    /// Whether a request to `url` carries the source's credentials.
    pub fn gets_credentials(&self, url: &reqwest::Url) -> bool {
        Origin::of(url).is_some_and(|asked| self.credential_origins.iter().any(|o| o.matches(&asked)))
    }

    /// Why `url` may not be requested at all, if it may not (a link-local address given as such).
    fn refused(&self, url: &reqwest::Url) -> Option<String> {
        let ip = match url.host()? {
            url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
            url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
            url::Host::Domain(_) => return None,
        };
        (!self.allow_link_local && link_local(ip)).then(|| link_local_refusal(&ip.to_string()))
    }
}

/// Link-local addresses, where cloud metadata services answer (169.254.169.254, fd00:ec2::254 is the one
/// exception outside, refused too), including IPv4 addresses mapped into IPv6.
fn link_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => {
            v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

fn link_local_refusal(what: &str) -> String {
    format!(
        "{what} is a link-local address, where cloud metadata services (and their credentials) answer; weir does \
         not read it unless the source sets `allow_link_local: true`"
    )
}

/// Resolves names as the system does, without the link-local addresses (unless allowed): a name an API hands
/// out cannot lead weir to the metadata service either.
struct GuardedResolver {
    allow_link_local: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_link_local;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<std::net::SocketAddr> =
                found.iter().copied().filter(|a| allow || !link_local(a.ip())).collect();
            if kept.is_empty() && !found.is_empty() {
                let refusal = link_local_refusal(&format!("{host} resolves only to {}, which", found[0].ip()));
                return Err(Box::new(LinkLocalRefused(refusal)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A name that resolves only to link-local addresses, refused by [`GuardedResolver`].
#[derive(Debug)]
struct LinkLocalRefused(String);

impl std::fmt::Display for LinkLocalRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkLocalRefused {}

/// Sends requests with auth, rate limit and retries.
pub struct HttpClient {
    client: reqwest::Client,
    reach: Arc<Reach>,
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
        reach: Reach,
    ) -> Result<HttpClient> {
        let reach = Arc::new(reach);
        // A redirect is followed within the origins that get the credentials, or anywhere when there are none to
        // carry; never to a link-local address.
        let has_credentials = auth.is_some() || !headers.is_empty();
        let policy_reach = reach.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("more than 10 redirects");
            }
            if let Some(refusal) = policy_reach.refused(attempt.url()) {
                let to = attempt.url().to_string();
                return attempt.error(format!("redirect to {to}: {refusal}"));
            }
            if has_credentials && !policy_reach.gets_credentials(attempt.url()) {
                let origin = attempt.url().origin().ascii_serialization();
                return attempt.error(format!(
                    "redirect to {origin}, which does not get this source's credentials (add it to `credential_hosts` \
                     to follow it with them)"
                ));
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION"), " (+https://github.com/weir-data/weir)"))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .gzip(true)
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver { allow_link_local: reach.allow_link_local }))
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
            reach,
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
        if !self.reach.gets_credentials(&url) {
            // Another origin (a `next` link, a `Link` header): asked without the auth and the configured headers.
            tracing::info!(url = %self.redactor.redact(url.as_str()), "another origin: requested without the source's credentials (see `credential_hosts`)");
            let mut b = self.client.request(req.method.clone(), url);
            if let Some(body) = &req.body {
                b = b.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
            }
            return Ok(b);
        }
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
        if let Some(refusal) = self.reach.refused(&req.url) {
            return Err(Error::external_final(format!("http_api {what}"), format!("{shown}: {refusal}")));
        }
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
                Err(e) if e.is_redirect() || weir_core::error::caused_by::<LinkLocalRefused>(&e) => {
                    // Refused by the rules of `Reach`: the same answer every time.
                    return Err(Error::external_final(
                        format!("http_api {what}"),
                        self.redactor.redact(&weir_core::error::with_causes(&e)),
                    ));
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() => {
                    let kind = if e.is_timeout() { "timed out" } else { "connection failed" };
                    (None, format!("{kind}: {}", self.redactor.redact(&weir_core::error::with_causes(&e))))
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

/// What went wrong with a request that got no answer, with its causes, without the URL (callers name the endpoint
/// once, and a URL may carry a token).
pub fn request_failure(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_their_own_origins_and_link_local_addresses_are_refused() {
        let api = reqwest::Url::parse("https://api.example.com/v1/orders").unwrap();
        let reach = Reach::new(&[&api], &["cdn.example.com".into(), "http://127.0.0.1:9000".into()], false).unwrap();
        let gets = |u: &str| reach.gets_credentials(&reqwest::Url::parse(u).unwrap());
        assert!(gets("https://api.example.com/v1/orders?page=2") && gets("https://API.example.com:443/x"));
        assert!(!gets("http://api.example.com/v1") && !gets("https://api.example.com:8443/v1"), "scheme and port");
        assert!(!gets("https://evil.test/") && !gets("https://api.example.com.evil.test/"));
        assert!(gets("https://cdn.example.com:8443/a") && gets("http://cdn.example.com/a"), "a bare host: any port");
        assert!(gets("http://127.0.0.1:9000/x") && !gets("http://127.0.0.1:9001/x"));
        let refused = |u: &str| reach.refused(&reqwest::Url::parse(u).unwrap()).is_some();
        assert!(refused("http://169.254.169.254/latest/meta-data/") && refused("http://[fe80::1]/"));
        assert!(refused("http://[::ffff:169.254.169.254]/") && refused("http://[fd00:ec2::254]/"));
        assert!(!refused("http://10.0.0.1/") && !refused("https://api.example.com/"));
        let allowed = Reach::new(&[&api], &[], true).unwrap();
        assert!(allowed.refused(&reqwest::Url::parse("http://169.254.169.254/").unwrap()).is_none());
        assert!(Reach::new(&[&api], &["http://[bad".into()], false).is_err());
    }

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
