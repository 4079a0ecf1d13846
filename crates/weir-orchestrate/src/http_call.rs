//! `http:` tasks: one request to a webhook or service (trigger a job elsewhere, refresh a dashboard). A 2xx answer
//! succeeds; anything else fails with the status and the start of the body, and is retried like any task.

use std::time::Duration;

use weir_config::HttpCall;
use weir_core::{Error, Result};

/// Sends the request; returns the status line and the start of the body, for the attempt's log.
pub async fn call(task: &str, c: &HttpCall) -> Result<String> {
    let resolve = |v: &str| {
        weir_config::project::resolve_env(v)
            .map_err(|e| Error::config(Default::default(), format!("task `{task}`: {e}")))
    };
    let url = resolve(&c.url)?;
    let client = reqwest::Client::builder()
        .timeout(c.timeout.max(Duration::from_millis(1)))
        .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::external(format!("task `{task}`"), e.to_string()))?;
    let method = reqwest::Method::from_bytes(c.method.as_bytes())
        .map_err(|e| Error::config(Default::default(), format!("task `{task}`: method: {e}")))?;
    let mut request = client.request(method, &url);
    for (k, v) in &c.headers {
        request = request.header(k, resolve(v)?);
    }
    if let Some(body) = &c.body {
        request = request.header("Content-Type", "application/json").body(body.clone());
    }
    let what = format!("{} {}", c.method, c.url);
    let response =
        request.send().await.map_err(|e| Error::external(format!("task `{task}`: {what}"), e.to_string()))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(2000).collect();
    if status.is_success() {
        Ok(format!("{what} → {status}\n{excerpt}\n"))
    } else {
        Err(Error::external(format!("task `{task}`: {what}"), format!("answered {status}: {excerpt}")))
    }
}
