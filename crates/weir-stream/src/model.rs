//! A score from a model served over HTTP, for teams that add machine learning next to their rules: weir POSTs the
//! chosen fields of a micro-batch's events as `{"instances": [{field: value, ...}, ...]}` and reads back
//! `{"scores": [number, ...]}` (or a bare JSON array), one score per event, in order.

use std::time::Duration;

use arrow::array::{Float64Array, RecordBatch};
use weir_core::{Error, Result};

use crate::config::{parse_millis, HttpScore};

#[derive(Debug)]
pub struct HttpModel {
    url: String,
    fields: Vec<String>,
    headers: Vec<(String, String)>,
    client: reqwest::Client,
}

impl HttpModel {
    pub fn new(config: &HttpScore) -> Result<HttpModel> {
        let timeout = parse_millis(&config.timeout).map_err(|e| Error::config(Default::default(), e))?;
        let url = weir_config::project::resolve_env(&config.url).map_err(|e| Error::config(Default::default(), e))?;
        let mut headers = Vec::new();
        for (k, v) in &config.headers {
            headers.push((
                k.clone(),
                weir_config::project::resolve_env(v).map_err(|e| Error::config(Default::default(), e))?,
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout as u64))
            .build()
            .map_err(|e| Error::external("score model client", e.to_string()))?;
        Ok(HttpModel { url, fields: config.fields.clone(), headers, client })
    }

    /// One score per row of `batch`.
    pub async fn score(&self, batch: &RecordBatch) -> Result<Float64Array> {
        if batch.num_rows() == 0 {
            return Ok(Float64Array::from(Vec::<f64>::new()));
        }
        let indices: Vec<usize> = self.fields.iter().filter_map(|f| batch.schema().index_of(f).ok()).collect();
        let projected = batch.project(&indices).map_err(|e| Error::engine("score model input", e))?;
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(&projected).map_err(|e| Error::engine("score model input", e))?;
        writer.finish().map_err(|e| Error::engine("score model input", e))?;
        let instances = writer.into_inner();
        let mut body = Vec::with_capacity(instances.len() + 16);
        body.extend_from_slice(b"{\"instances\":");
        body.extend_from_slice(if instances.is_empty() { b"[]" } else { &instances });
        body.push(b'}');
        let mut req = self.client.post(&self.url).header("content-type", "application/json").body(body);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let what = format!("score model {}", self.url);
        let resp = req.send().await.map_err(|e| Error::external(&what, e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Error::external(&what, e.to_string()))?;
        if !status.is_success() {
            return Err(Error::external(
                &what,
                format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()),
            ));
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::external(&what, format!("answer is not JSON: {e}")))?;
        let scores = value
            .get("scores")
            .unwrap_or(&value)
            .as_array()
            .ok_or_else(|| Error::external(&what, "the answer must be {\"scores\": [...]} or a JSON array"))?;
        if scores.len() != batch.num_rows() {
            return Err(Error::external(&what, format!("{} scores for {} events", scores.len(), batch.num_rows())));
        }
        Ok(scores.iter().map(|s| s.as_f64()).collect())
    }
}
