//! `type: http_api`: records from a paginated REST API, with what production APIs need (the handbook's
//! `fetch_all_pages`, done properly).
//!
//! ```yaml
//! source:
//!   type: http_api
//!   url: "https://api.example.com/v1/orders"
//!   params: {status: all, day: "{{ ds }}"}
//!   headers: {Accept: application/json}
//!   auth: {type: bearer, token: "${env:SHOP_TOKEN}"}    # basic | api_key {name, value, in} | oauth2 {token_url, client_id, client_secret}
//!   records: results                                   # JSON path of the record list (default: the body, or results/data/items)
//!   paginate: {type: next_url, path: next}             # link_header | cursor {path, param} | offset {limit} | page {size} | none
//!   incremental: {cursor_field: updated_at, param: updated_since, initial: "2026-01-01T00:00:00Z", lookback: 1h}
//!   retry: {max_attempts: 6, initial_delay: 500ms, max_delay: 30s}
//!   rate_limit: 10                                     # requests per second to this host, shared by all tasks
//!   # concurrency: 4                                   # pages fetched at once (with page or offset pagination only)
//!   columns: {amount: double}                          # types of columns (the others are inferred)
//!   details: {url: "https://api.example.com/v1/orders/{id}", concurrency: 8}   # one request per listed record
//! ```
//!
//! **Details** (dlt's dependent resources): when the list holds only ids, `details.url` is requested for each listed
//! record (`{field}` takes the record's value), several at once, and the detail responses become the records.
//!
//! **Checkpoint and resume.** Every page is written to the task's spool folder (`.weir/spool/<pipeline>/<task>/<date>/`
//! in the project) as it arrives, and then the position of the next page is recorded beside it; both writes are
//! atomic. A run killed halfway leaves the pages it fetched; the next run of the same date replays them from disk and
//! continues from the recorded position, so no record is fetched twice or missed. The spool is deleted once the
//! task's data is committed.
//!
//! **Incremental.** With `incremental`, the highest `cursor_field` value seen is committed with the data (see the
//! engine), and the next run sends it in `param` (less `lookback`, a duration or a number of units) and drops records at or below it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use futures::StreamExt;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use weir_config::{from_node, Diagnostic, Node};
use weir_core::{Error, Result};

use crate::connector::{BatchSource, Incremental, SourceCheckpoint, SourceKind, SourceRun, SourceStream};
use crate::http_client::{AuthConfig, HttpClient, Redactor, Request, Response, RetryConfig};
use crate::json_records::{decode, flatten, infer_schema};
use crate::types::parse_type;
use futures::future::BoxFuture;
use weir_core::cursor::greater;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    #[serde(alias = "get")]
    Get,
    #[serde(alias = "post")]
    Post,
}

/// How the next page is found.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paginate {
    /// One request.
    #[default]
    None,
    /// The next page's URL is in the body (`{"results": [...], "next": "https://..."}`); null or missing ends.
    NextUrl {
        #[serde(default = "default_next_path")]
        path: String,
    },
    /// The next page's URL is the `Link` header's `rel="next"`.
    LinkHeader,
    /// A token in the body goes into a query parameter of the next request.
    Cursor { path: String, param: String },
    /// `offset`/`limit` parameters; a short page (or reaching `total_path`) ends.
    Offset {
        #[serde(default = "default_offset_param")]
        param: String,
        #[serde(default = "default_limit_param")]
        limit_param: String,
        limit: u64,
        #[serde(default)]
        total_path: Option<String>,
    },
    /// A page number; an empty page, a short page (with `size`) or `total_pages_path` ends.
    Page {
        #[serde(default = "default_page_param")]
        param: String,
        #[serde(default = "default_start")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u64>,
        #[serde(default)]
        total_pages_path: Option<String>,
    },
}

fn default_next_path() -> String {
    "next".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_start() -> u64 {
    1
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// The record field that grows (`updated_at`, `id`; flattened names such as `meta__updated_at` work).
    pub cursor_field: String,
    /// The query parameter that asks for newer records.
    pub param: String,
    /// The value of the first run.
    #[serde(default)]
    pub initial: Option<String>,
    /// Re-read this much before the stored value: a duration such as `1h` for timestamps, a number of units for
    /// numbers.
    #[serde(default, deserialize_with = "weir_config::duration::deserialize_lookback")]
    pub lookback: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpApiConfig {
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body of a POST.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub records: Option<String>,
    #[serde(default)]
    pub paginate: Paginate,
    #[serde(default)]
    pub incremental: Option<IncrementalConfig>,
    /// How long one request may take (`30s` by default).
    #[serde(default = "default_timeout", deserialize_with = "weir_config::duration::deserialize")]
    pub timeout: Duration,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Requests per second to the API's host.
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// Pages fetched at once (page and offset pagination only).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    #[serde(default)]
    pub details: Option<DetailsConfig>,
    /// Hosts besides the `url`'s origin (and `details.url`'s) that get the auth and the headers: `host`,
    /// `host:port` or `scheme://host:port`. A `next` link, `Link` header or redirect to any other origin is not
    /// given them.
    #[serde(default)]
    pub credential_hosts: Vec<String>,
    /// Let requests reach link-local addresses (169.254.0.0/16, fe80::/10), where cloud metadata services answer.
    #[serde(default)]
    pub allow_link_local: bool,
}

/// A request per listed record, whose response replaces it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetailsConfig {
    /// URL with `{field}` placeholders filled from each listed record (flattened names).
    pub url: String,
    /// JSON path of the record (or list of records) in the response; default: the body.
    #[serde(default)]
    pub records: Option<String>,
    /// Detail requests in flight.
    #[serde(default = "default_details_concurrency")]
    pub concurrency: usize,
}

fn default_details_concurrency() -> usize {
    8
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_concurrency() -> usize {
    1
}

/// `type: http_api`.
pub const SOURCE: SourceKind =
    SourceKind { name: "http_api", parse: |n| HttpApiConfig::parse(n).map(|c| Box::new(c) as Box<dyn BatchSource>) };

impl BatchSource for HttpApiConfig {
    fn kind(&self) -> &str {
        "http_api"
    }

    fn reads(&self) -> String {
        self.url.clone()
    }

    fn incremental(&self) -> Option<Incremental> {
        self.incremental.as_ref().map(|i| Incremental { lookback: i.lookback.is_some() })
    }

    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, Result<SourceStream>> {
        Box::pin(self.open_pages(run.spool_dir, run.window, run.connector.batch_rows))
    }
}

impl HttpApiConfig {
    pub fn parse(node: &Node) -> std::result::Result<HttpApiConfig, Vec<Diagnostic>> {
        let cfg: HttpApiConfig = from_node(node, &["type"])?;
        let mut diags = Vec::new();
        let at = |k: &str| node.get(k).unwrap_or(node);
        if reqwest::Url::parse(&cfg.url).is_err() && !cfg.url.contains("${env:") {
            diags.push(Diagnostic::at(at("url"), format!("`{}` is not an absolute URL", cfg.url)));
        }
        for (col, ty) in &cfg.columns {
            if let Err(e) = parse_type(ty) {
                diags.push(Diagnostic::at(at("columns"), format!("column `{col}`: {e}")));
            }
        }
        if cfg.concurrency == 0 || cfg.timeout.is_zero() || cfg.retry.max_attempts == 0 {
            diags.push(Diagnostic::at(node, "`concurrency`, `timeout` and `retry.max_attempts` must be positive"));
        }
        if cfg.concurrency > 1 && !matches!(cfg.paginate, Paginate::Page { .. } | Paginate::Offset { .. }) {
            diags.push(Diagnostic::at(
                at("concurrency"),
                "`concurrency` needs `page` or `offset` pagination: other kinds learn the next page from the previous one",
            ));
        }
        if let Some(d) = &cfg.details {
            if d.concurrency == 0 || !d.url.contains('{') {
                diags.push(Diagnostic::at(
                    at("details"),
                    "`details.url` needs a `{field}` placeholder and `details.concurrency` must be positive",
                ));
            }
        }
        if let Paginate::Offset { limit: 0, .. } | Paginate::Page { size: Some(0), .. } = cfg.paginate {
            diags.push(Diagnostic::at(at("paginate"), "page sizes must be positive"));
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }

    /// Fetches (or replays) the first page to learn the schema, and streams the rest. `spool_dir` is this task's and
    /// interval's checkpoint folder; `window` the cursor window to read (past the cursor committed by the last run,
    /// or an earlier interval's window again; empty on a first run or a full refresh).
    async fn open_pages(
        &self,
        spool_dir: PathBuf,
        window: weir_core::cursor::CursorWindow,
        batch_rows: usize,
    ) -> Result<SourceStream> {
        let resolve = |s: &str| {
            weir_config::project::resolve_env(s)
                .map_err(|e| Error::config(Default::default(), format!("http_api: {e}")))
        };
        let (auth, secrets) = match &self.auth {
            Some(a) => {
                let (a, s) =
                    a.resolve().map_err(|e| Error::config(Default::default(), format!("http_api auth: {e}")))?;
                (Some(a), s)
            }
            None => (None, Vec::new()),
        };
        // Values from the environment or secrets files in the URL, params and headers are secrets too.
        let mut secrets = secrets;
        for raw in std::iter::once(&self.url).chain(self.params.values()).chain(self.headers.values()) {
            secrets.extend(referenced_values(raw));
        }
        let redactor = Redactor::new(secrets);
        let headers: Vec<(String, String)> =
            self.headers.iter().map(|(k, v)| Ok((k.clone(), resolve(v)?))).collect::<Result<_>>()?;
        let params: Vec<(String, String)> =
            self.params.iter().map(|(k, v)| Ok((k.clone(), resolve(v)?))).collect::<Result<_>>()?;
        let base = reqwest::Url::parse(&resolve(&self.url)?)
            .map_err(|e| Error::config(Default::default(), format!("http_api url: {e}")))?;
        let mut own = vec![base.clone()];
        if let Some(d) = &self.details {
            // `{field}` placeholders do not change the origin.
            own.extend(reqwest::Url::parse(&resolve(&d.url)?.replace(['{', '}'], "")).ok());
        }
        if let Some(crate::http_client::AuthConfig::Oauth2 { token_url, .. }) = &auth {
            own.extend(reqwest::Url::parse(token_url).ok());
        }
        let own: Vec<&reqwest::Url> = own.iter().collect();
        let reach = crate::http_client::Reach::new(&own, &self.credential_hosts, self.allow_link_local)?;
        let client =
            HttpClient::new(&headers, auth, self.retry.clone(), self.rate_limit, self.timeout, redactor, reach)?;
        let explicit: BTreeMap<String, DataType> = self
            .columns
            .iter()
            .map(|(k, v)| Ok((k.clone(), parse_type(v).map_err(|e| Error::config(Default::default(), e))?)))
            .collect::<Result<_>>()?;

        // Resume from the spool when it belongs to this very request; else start afresh. (A hash: the request may
        // hold secrets, and the spool is on disk.)
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            format!("{base} {params:?} {:?} {:?} {:?}", self.paginate, self.records, self.details).hash(&mut h);
            format!("{:016x}", h.finish())
        };
        let spool = Spool::open(&spool_dir, &fingerprint)?;
        let mut state = spool.state.clone().unwrap_or_else(|| SpoolState {
            fingerprint,
            pages: 0,
            next: Position::Start,
            start_cursor: window.after.clone(),
        });
        if state.pages > 0 {
            tracing::info!(pages = state.pages, dir = %spool_dir.display(), "resuming from the spooled pages");
        }
        let tracker =
            Arc::new(CursorTracker::new(self.incremental.clone(), state.start_cursor.clone(), window.up_to.clone()));
        let cursor_param = match &self.incremental {
            Some(inc) => state
                .start_cursor
                .as_deref()
                .map(|c| tracker.with_lookback(c))
                .or_else(|| inc.initial.clone())
                .map(|v| (inc.param.clone(), v)),
            None => None,
        };
        let fetcher = Arc::new(Fetcher {
            client,
            base,
            params,
            cursor_param,
            method: if self.method == HttpMethod::Post { Method::POST } else { Method::GET },
            body: self.body.clone(),
            paginate: self.paginate.clone(),
            records: self.records.clone(),
            tracker: tracker.clone(),
            details: self.details.clone(),
        });

        // The schema: from the first spooled page, or from the first page fetched now.
        let mut first: Option<(Vec<Map<String, Value>>, String)> = None;
        if state.pages > 0 {
            let records = spool.read_page(0)?;
            records.iter().for_each(|r| tracker.observe(r));
            first = Some((records, format!("page 1 (spooled in {})", spool_dir.display())));
        } else if state.next != Position::Done {
            let page = fetcher.fetch(&state.next, 1).await?;
            spool.write_page(0, &page.records)?;
            state.pages = 1;
            state.next = page.next.clone();
            spool.write_state(&state)?;
            first = Some((page.records, page.context));
        }
        let sample = first.as_ref().map(|(r, _)| r.as_slice()).unwrap_or(&[]);
        let schema = infer_schema(sample, &explicit)?;
        let bytes_read = Arc::new(AtomicU64::new(0));

        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(4);
        let checkpoint = SourceCheckpoint {
            cursor: tracker.max.clone(),
            after: tracker.start.clone(),
            spool_dir: Some(spool_dir.clone()),
        };
        let producer = Producer {
            fetcher,
            spool,
            state,
            schema: schema.clone(),
            batch_rows: batch_rows.max(1),
            concurrency: self.concurrency,
            tx,
            bytes: bytes_read.clone(),
        };
        tokio::spawn(async move {
            let tx = producer.tx.clone();
            if let Err(e) = producer.run(first).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        let batches = crate::connector::batches_from(rx);
        let stream = SourceStream {
            schema,
            batches,
            total_bytes: None,
            bytes_read,
            rejects: None,
            checkpoint: Some(checkpoint),
        };
        Ok(stream)
    }
}

/// The values that the `${env:NAME}` and `${file:PATH}` references of `raw` resolve to (unresolvable ones are
/// reported when the whole value is resolved).
fn referenced_values(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else { break };
        if let Ok(v) = weir_config::project::resolve_env(&rest[start..start + end + 1]) {
            out.push(v);
        }
        rest = &rest[start + end + 1..];
    }
    out
}

/// Where the next request goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Position {
    Start,
    Url(String),
    Cursor(String),
    Offset(u64),
    Page(u64),
    Done,
}

struct Page {
    records: Vec<Map<String, Value>>,
    next: Position,
    /// `page 3 (https://...)`, for errors.
    context: String,
}

struct Fetcher {
    client: HttpClient,
    base: reqwest::Url,
    params: Vec<(String, String)>,
    cursor_param: Option<(String, String)>,
    method: Method,
    body: Option<String>,
    paginate: Paginate,
    records: Option<String>,
    tracker: Arc<CursorTracker>,
    details: Option<DetailsConfig>,
}

impl Fetcher {
    fn request(&self, at: &Position) -> Result<Request> {
        let mut url = match at {
            Position::Url(u) => {
                self.base.join(u).map_err(|e| Error::data(Default::default(), format!("next page URL `{u}`: {e}")))?
            }
            _ => self.base.clone(),
        };
        if !matches!(at, Position::Url(_)) {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in &self.params {
                    q.append_pair(k, v);
                }
                if let Some((k, v)) = &self.cursor_param {
                    q.append_pair(k, v);
                }
                match (&self.paginate, at) {
                    (Paginate::Cursor { param, .. }, Position::Cursor(c)) => {
                        q.append_pair(param, c);
                    }
                    (Paginate::Offset { param, limit_param, limit, .. }, _) => {
                        let offset = if let Position::Offset(o) = at { *o } else { 0 };
                        q.append_pair(param, &offset.to_string());
                        q.append_pair(limit_param, &limit.to_string());
                    }
                    (Paginate::Page { param, start, size_param, size, .. }, _) => {
                        let page = if let Position::Page(p) = at { *p } else { *start };
                        q.append_pair(param, &page.to_string());
                        if let (Some(sp), Some(s)) = (size_param, size) {
                            q.append_pair(sp, &s.to_string());
                        }
                    }
                    _ => {}
                }
            }
            if url.query() == Some("") {
                url.set_query(None);
            }
        }
        Ok(Request { method: self.method.clone(), url, body: self.body.clone() })
    }

    /// The position of page `n` (0-based after `from`) for concurrent pagination.
    fn nth_after(&self, from: &Position, n: u64) -> Option<Position> {
        match (&self.paginate, from) {
            (Paginate::Page { start, .. }, Position::Start) => Some(Position::Page(start + n)),
            (Paginate::Page { .. }, Position::Page(p)) => Some(Position::Page(p + n)),
            (Paginate::Offset { limit, .. }, Position::Start) => Some(Position::Offset(limit * n)),
            (Paginate::Offset { limit, .. }, Position::Offset(o)) => Some(Position::Offset(o + limit * n)),
            _ => None,
        }
    }

    /// Fetches the page at `at` (`number` counts pages from 1, for messages).
    async fn fetch(&self, at: &Position, number: u64) -> Result<Page> {
        let req = self.request(at)?;
        let shown = self.client.redactor().redact(req.url.as_str());
        let context = format!("page {number} ({shown})");
        let response = self.client.send(&req, &format!("page {number}")).await?;
        let mut page = self.parse(at, response, context)?;
        if let Some(details) = &self.details {
            page.records = self.fetch_details(details, std::mem::take(&mut page.records), number).await?;
        }
        Ok(page)
    }

    /// One request per listed record, `details.concurrency` at a time, in the list's order.
    async fn fetch_details(
        &self,
        details: &DetailsConfig,
        listed: Vec<Map<String, Value>>,
        number: u64,
    ) -> Result<Vec<Map<String, Value>>> {
        let urls = listed.iter().map(|r| detail_url(&details.url, r)).collect::<Result<Vec<_>>>()?;
        // Built eagerly (not in a closure of the stream) so the future stays `Send` for any lifetime.
        let requests: Vec<_> = urls.into_iter().map(|u| self.fetch_detail(details, u, number)).collect();
        let fetched: Vec<Result<Vec<Map<String, Value>>>> =
            futures::stream::iter(requests).buffered(details.concurrency.max(1)).collect().await;
        let mut out = Vec::with_capacity(fetched.len());
        for f in fetched {
            out.extend(f?);
        }
        Ok(out)
    }

    async fn fetch_detail(&self, details: &DetailsConfig, url: String, number: u64) -> Result<Vec<Map<String, Value>>> {
        let url = reqwest::Url::parse(&url)
            .map_err(|e| Error::config(Default::default(), format!("details.url `{url}`: {e}")))?;
        let shown = self.client.redactor().redact(url.as_str());
        let context = format!("detail of page {number} ({shown})");
        let req = Request { method: Method::GET, url, body: None };
        let response = self.client.send(&req, &context).await?;
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|e| Error::data(Default::default(), format!("{context}: the response is not JSON ({e})")))?;
        let found = match &details.records {
            Some(p) => lookup(&body, p).ok_or_else(|| {
                Error::data(Default::default(), format!("{context}: the records path `{p}` is missing"))
            })?,
            None => &body,
        };
        Ok(match found {
            Value::Array(items) => items.iter().cloned().map(flatten).collect(),
            other => vec![flatten(other.clone())],
        })
    }

    fn parse(&self, at: &Position, response: Response, context: String) -> Result<Page> {
        let bad = |msg: String| Error::data(Default::default(), format!("{context}: {msg}"));
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| {
            bad(format!(
                "the response is not JSON ({e}): {}",
                crate::http_client::excerpt(&String::from_utf8_lossy(&response.body))
            ))
        })?;
        let list = match &self.records {
            Some(path) => lookup(&body, path)
                .ok_or_else(|| bad(format!("the records path `{path}` is missing from the response")))?,
            None if body.is_array() => &body,
            None => ["results", "data", "items", "records"]
                .iter()
                .find_map(|k| body.get(k).filter(|v| v.is_array()))
                .ok_or_else(|| {
                bad("the response is an object without a record list; name it with `records:`".to_string())
            })?,
        };
        let Value::Array(items) = list else {
            return Err(bad(format!("the records path holds {}, not a list", kind_of(list))));
        };
        let count = items.len() as u64;
        let records: Vec<Map<String, Value>> =
            items.iter().cloned().map(flatten).filter(|r| self.tracker.keep(r)).collect();
        let next = match &self.paginate {
            Paginate::None => Position::Done,
            Paginate::NextUrl { path } => match lookup(&body, path) {
                Some(Value::String(u)) if !u.is_empty() => Position::Url(u.clone()),
                _ => Position::Done,
            },
            Paginate::LinkHeader => match next_link(&response.headers) {
                Some(u) => Position::Url(u),
                None => Position::Done,
            },
            Paginate::Cursor { path, .. } => match lookup(&body, path) {
                _ if count == 0 => Position::Done,
                Some(Value::String(c)) if !c.is_empty() => Position::Cursor(c.clone()),
                Some(Value::Number(n)) => Position::Cursor(n.to_string()),
                _ => Position::Done,
            },
            Paginate::Offset { limit, total_path, .. } => {
                let offset = if let Position::Offset(o) = at { *o } else { 0 };
                let total = total_path.as_ref().and_then(|p| lookup(&body, p)).and_then(|v| v.as_u64());
                if count < *limit || total.is_some_and(|t| offset + count >= t) {
                    Position::Done
                } else {
                    Position::Offset(offset + count)
                }
            }
            Paginate::Page { start, size, total_pages_path, .. } => {
                let page = if let Position::Page(p) = at { *p } else { *start };
                let total = total_pages_path.as_ref().and_then(|p| lookup(&body, p)).and_then(|v| v.as_u64());
                if count == 0 || size.is_some_and(|s| count < s) || total.is_some_and(|t| page >= t) {
                    Position::Done
                } else {
                    Position::Page(page + 1)
                }
            }
        };
        Ok(Page { records, next, context })
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `https://x/orders/{id}` with `{id}` taken from the record (URL-encoded).
fn detail_url(template: &str, record: &Map<String, Value>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| Error::config(Default::default(), format!("details.url `{template}`: unterminated `{{`")))?;
        let field = &rest[start + 1..end];
        let value = match record.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => {
                return Err(Error::data(
                    Default::default(),
                    format!("details.url `{template}`: a listed record has no value for `{field}`"),
                ))
            }
        };
        out.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `a.b.0.c` in a JSON value.
fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    let path = path.trim_start_matches("$.").trim_start_matches('$');
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |v, part| match v {
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => v.get(part),
    })
}

/// The `rel="next"` target of a `Link` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        for part in value.to_str().ok()?.split(',') {
            let mut pieces = part.split(';');
            let target = pieces.next()?.trim();
            if pieces.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            }) {
                return Some(target.trim_start_matches('<').trim_end_matches('>').to_string());
            }
        }
    }
    None
}

/// Tracks the highest cursor value and drops records at or below the stored one, and past the window's end when
/// an earlier interval is read again.
struct CursorTracker {
    config: Option<IncrementalConfig>,
    start: Option<String>,
    up_to: Option<String>,
    max: Arc<Mutex<Option<String>>>,
}

impl CursorTracker {
    fn new(config: Option<IncrementalConfig>, start: Option<String>, up_to: Option<String>) -> CursorTracker {
        CursorTracker { config, max: Arc::new(Mutex::new(start.clone())), start, up_to }
    }

    fn value(&self, record: &Map<String, Value>) -> Option<String> {
        let cfg = self.config.as_ref()?;
        match record.get(&cfg.cursor_field) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Raises the highest value seen to `record`'s (also for records replayed from the spool).
    fn observe(&self, record: &Map<String, Value>) {
        let Some(value) = self.value(record) else { return };
        if let Ok(mut max) = self.max.lock() {
            if max.as_deref().is_none_or(|m| greater(&value, m)) {
                *max = Some(value);
            }
        }
    }

    fn keep(&self, record: &Map<String, Value>) -> bool {
        let Some(cfg) = &self.config else { return true };
        let Some(value) = self.value(record) else { return true };
        if self.up_to.as_deref().is_some_and(|u| greater(&value, u)) {
            return false; // a later interval's record: it was read by that interval's run
        }
        self.observe(record);
        // With a lookback, records are re-read on purpose (a merge sink folds them); else the boundary is exclusive.
        match (&self.start, cfg.lookback) {
            (Some(start), None) => greater(&value, start),
            _ => true,
        }
    }

    /// The stored value less the lookback.
    fn with_lookback(&self, value: &str) -> String {
        match self.config.as_ref().and_then(|c| c.lookback) {
            Some(back) => weir_core::cursor::minus(value, back),
            None => value.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SpoolState {
    fingerprint: String,
    /// Pages written, numbered from 0.
    pages: u64,
    /// Where the page after them is.
    next: Position,
    /// The cursor the run started from (kept, so a resumed run asks for the same records).
    start_cursor: Option<String>,
}

/// The task's checkpoint folder: `page-000000.json`... and `state.json`.
struct Spool {
    dir: PathBuf,
    state: Option<SpoolState>,
}

impl Spool {
    fn open(dir: &Path, fingerprint: &str) -> Result<Spool> {
        let state = crate::spool_files::open_state(dir, |s: &SpoolState| s.fingerprint == fingerprint)?;
        Ok(Spool { dir: dir.to_path_buf(), state })
    }

    fn page_file(&self, n: u64) -> PathBuf {
        self.dir.join(format!("page-{n:06}.json"))
    }

    fn write_page(&self, n: u64, records: &[Map<String, Value>]) -> Result<()> {
        let bytes = serde_json::to_vec(records).map_err(|e| Error::engine("spool", e))?;
        crate::spool_files::write_atomic(&self.page_file(n), &bytes)
    }

    fn write_state(&self, state: &SpoolState) -> Result<()> {
        let bytes = serde_json::to_vec(state).map_err(|e| Error::engine("spool", e))?;
        crate::spool_files::write_atomic(&self.dir.join("state.json"), &bytes)
    }

    fn read_page(&self, n: u64) -> Result<Vec<Map<String, Value>>> {
        let path = self.page_file(n);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::data(Default::default(), format!("{}: {e}", path.display())))
    }
}

/// Replays spooled pages, fetches the rest (several at once when allowed), spools each, and sends batches.
struct Producer {
    fetcher: Arc<Fetcher>,
    spool: Spool,
    state: SpoolState,
    schema: SchemaRef,
    batch_rows: usize,
    concurrency: usize,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    bytes: Arc<AtomicU64>,
}

/// Pages decoded but not sent yet: small pages are gathered into batches of about `batch_rows` rows.
#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl Producer {
    async fn run(mut self, first: Option<(Vec<Map<String, Value>>, String)>) -> Result<()> {
        let mut pending = Pending::default();
        // Spooled pages (the first one was read already for the schema).
        if let Some((records, ctx)) = first {
            self.add(&mut pending, &records, &ctx).await?;
        }
        for n in 1..self.state.pages {
            let records = self.spool.read_page(n)?;
            records.iter().for_each(|r| self.fetcher.tracker.observe(r));
            self.add(&mut pending, &records, &format!("page {} (spooled)", n + 1)).await?;
        }
        while self.state.next != Position::Done {
            let from = self.state.next.clone();
            let width = if self.fetcher.nth_after(&from, 0).is_some() { self.concurrency } else { 1 };
            let number = self.state.pages + 1;
            let fetcher = self.fetcher.clone();
            let positions: Vec<Position> =
                (0..width as u64).map(|i| fetcher.nth_after(&from, i).unwrap_or_else(|| from.clone())).collect();
            let mut pages = futures::stream::iter(positions.into_iter().enumerate().map(|(i, at)| {
                let f = fetcher.clone();
                async move { f.fetch(&at, number + i as u64).await }
            }))
            .buffered(width);
            while let Some(page) = pages.next().await {
                let page = page?;
                // The page is decoded before it is spooled: a page that does not fit fails here, with everything
                // before it safely on disk.
                let n = self.state.pages;
                self.spool.write_page(n, &page.records)?;
                self.state.pages += 1;
                self.state.next = page.next.clone();
                self.spool.write_state(&self.state)?;
                self.add(&mut pending, &page.records, &page.context).await?;
                if self.state.next == Position::Done {
                    break; // later pages of the window are past the end
                }
            }
        }
        self.send(&mut pending).await
    }

    async fn add(&self, pending: &mut Pending, records: &[Map<String, Value>], ctx: &str) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let batch = decode(records, &self.schema, ctx)?;
        self.bytes.fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        pending.rows += batch.num_rows();
        pending.batches.push(batch);
        if pending.rows >= self.batch_rows {
            self.send(pending).await?;
        }
        Ok(())
    }

    async fn send(&self, pending: &mut Pending) -> Result<()> {
        if pending.batches.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut pending.batches);
        pending.rows = 0;
        let batch = arrow::compute::concat_batches(&self.schema, &batches).map_err(|e| Error::engine("http_api", e))?;
        self.tx.send(Ok(batch)).await.map_err(|_| Error::engine("http_api", "the task stopped reading"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_paths_and_link_headers() {
        let v = serde_json::json!({"data": {"items": [1, 2]}, "meta": {"next": "c2"}});
        assert_eq!(lookup(&v, "data.items").unwrap().as_array().unwrap().len(), 2);
        assert_eq!(lookup(&v, "$.meta.next").unwrap(), "c2");
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            "<https://x/?page=1>; rel=\"prev\", <https://x/?page=3>; rel=\"next\"".parse().unwrap(),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/?page=3"));
    }

    #[test]
    fn secrets_referenced_in_params_are_found_for_redaction() {
        std::env::set_var("WEIR_TEST_API_SIG", "s1gn4ture");
        assert_eq!(referenced_values("v1:${env:WEIR_TEST_API_SIG}:${env:WEIR_TEST_NOT_SET}"), ["s1gn4ture"]);
        assert!(referenced_values("plain").is_empty());
    }

    #[test]
    fn cursor_values_compare_as_numbers_or_text_and_look_back() {
        assert!(greater("10", "9") && greater("2026-03-02T00:00:00Z", "2026-03-01T23:59:59Z"));
        let t = CursorTracker::new(
            Some(IncrementalConfig {
                cursor_field: "u".into(),
                param: "since".into(),
                initial: None,
                lookback: Some(3600.0),
            }),
            None,
            None,
        );
        assert_eq!(t.with_lookback("2026-03-02T00:00:00Z"), "2026-03-01T23:00:00Z");
        assert_eq!(t.with_lookback("5000"), "1400");
    }
}
