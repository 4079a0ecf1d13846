//! `type: webhook` sink: each micro-batch's rows POSTed as one JSON array, retried with backoff on connection errors,
//! 429 and 5xx (honouring `Retry-After`). At-least-once: a crash after the POST and before the offset commit sends
//! those rows again, so the receiver should deduplicate (on `transaction_id`, or `_partition` + `_offset`).
//!
//! ```yaml
//! outputs:
//!   alerts: [{type: webhook, url: "https://hooks.example.com/fraud", headers: {Authorization: "Bearer ${env:HOOK_TOKEN}"}}]
//! ```

use std::time::Duration;

use arrow::array::RecordBatch;
use weir_core::{Error, Result};

use crate::config::{parse_millis, WebhookConfig};

#[derive(Debug)]
pub struct WebhookSink {
    url: String,
    headers: Vec<(String, String)>,
    client: reqwest::Client,
    buffer: Vec<RecordBatch>,
}

const ATTEMPTS: u32 = 6;

impl WebhookSink {
    pub fn new(config: &WebhookConfig) -> Result<WebhookSink> {
        let resolve = |v: &str| weir_config::project::resolve_env(v).map_err(|e| Error::config(Default::default(), e));
        let timeout = parse_millis(&config.timeout).map_err(|e| Error::config(Default::default(), e))?;
        let headers = config.headers.iter().map(|(k, v)| Ok((k.clone(), resolve(v)?))).collect::<Result<Vec<_>>>()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout as u64))
            .build()
            .map_err(|e| Error::external("webhook client", e.to_string()))?;
        Ok(WebhookSink { url: resolve(&config.url)?, headers, client, buffer: Vec::new() })
    }

    pub fn write(&mut self, rows: RecordBatch) {
        self.buffer.push(rows);
    }

    pub async fn commit(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        {
            let mut w = arrow::json::ArrayWriter::new(&mut body);
            for b in &self.buffer {
                w.write(b).map_err(|e| Error::engine("webhook json", e))?;
            }
            w.finish().map_err(|e| Error::engine("webhook json", e))?;
        }
        let what = format!("webhook {}", self.url);
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let mut req = self.client.post(&self.url).header("content-type", "application/json").body(body.clone());
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            let (retry, message, wait) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    self.buffer.clear();
                    return Ok(());
                }
                Ok(resp) => {
                    let status = resp.status();
                    let after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(60)));
                    let text = resp.text().await.unwrap_or_default();
                    let retry = status.as_u16() == 429 || status.is_server_error();
                    (retry, format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()), after)
                }
                Err(e) => (true, e.to_string(), None),
            };
            if !retry || attempt == ATTEMPTS {
                return Err(Error::external(&what, format!("{message} (attempt {attempt} of {ATTEMPTS})")));
            }
            tracing::warn!(url = %self.url, attempt, error = %message, "webhook failed; retrying");
            tokio::time::sleep(wait.unwrap_or(delay)).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        unreachable!("the last attempt returns")
    }
}
