//! A thin client of BigQuery's REST API (v2): a service account's access token, tables created and deleted, Parquet
//! load jobs by multipart upload, query jobs (scripts with transactions included) followed until done, and small
//! query results. weir needs only these calls; the failures of a job are reported with BigQuery's own error list.
//!
//! The service account's private key lives only in [`ServiceAccount`], whose `Debug` hides it; it signs the token
//! request and never appears in a URL, a log line or an error.

use std::time::Duration;

use serde_json::{json, Value};
use weir_config::project::Connection;
use weir_core::{Error, Result};

use crate::connection::statement_head;

/// A service account's JSON key (`type: service_account`), as the Google Cloud console downloads it.
#[derive(Clone)]
pub struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount").field("client_email", &self.client_email).finish_non_exhaustive()
    }
}

impl ServiceAccount {
    pub fn from_json(text: &str) -> Result<ServiceAccount> {
        let bad = |msg: &str| Error::config(Default::default(), format!("bigquery credentials: {msg}"));
        let key: Value = serde_json::from_str(text).map_err(|_| bad("not a service account's JSON key"))?;
        let field = |k: &str| key[k].as_str().map(str::to_string).ok_or_else(|| bad(&format!("the key has no `{k}`")));
        Ok(ServiceAccount {
            client_email: field("client_email")?,
            private_key: field("private_key")?,
            token_uri: key["token_uri"].as_str().unwrap_or("https://oauth2.googleapis.com/token").to_string(),
        })
    }

    /// The signed assertion of the JWT-bearer grant (RFC 7523) for BigQuery's scope, valid for an hour.
    pub fn assertion(&self, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
        let key = crate::jwt::RsaKey::from_pem(&self.private_key, "bigquery credentials private_key")?;
        key.sign(&json!({
            "iss": self.client_email,
            "scope": "https://www.googleapis.com/auth/bigquery",
            "aud": self.token_uri,
            "iat": now.timestamp(),
            "exp": now.timestamp() + 3600,
        }))
    }
}

/// A `connections:` entry of `type: bigquery`, its secrets resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub project: String,
    /// Where jobs run (`EU`, `US`, `europe-west4`...): BigQuery's default when unset.
    pub location: Option<String>,
    /// `https://bigquery.googleapis.com` unless `url` overrides it (a private endpoint, an emulator).
    pub endpoint: String,
    /// None only with `url` set: an emulator that takes no token.
    pub credentials: Option<ServiceAccount>,
}

impl Settings {
    pub fn from_connection(connection: &Connection) -> Result<Settings> {
        let at = |msg: String| Error::config(Default::default(), format!("connection `{}`: {msg}", connection.name));
        let get = |k: &str| crate::connection::setting(connection, k);
        let project = get("project")?.ok_or_else(|| at("a bigquery connection needs `project`".into()))?;
        let url = get("url")?;
        let credentials =
            match get("credentials")? {
                Some(json) => Some(ServiceAccount::from_json(&json)?),
                None if url.is_some() => None,
                None => return Err(at(
                    "a bigquery connection needs `credentials` (a service account's JSON key, e.g. `${file:sa.json}`)"
                        .into(),
                )),
            };
        Ok(Settings {
            project,
            location: get("location")?,
            endpoint: url.unwrap_or_else(|| "https://bigquery.googleapis.com".into()).trim_end_matches('/').to_string(),
            credentials,
        })
    }
}

/// The rows of a small result, each value as text (NULL as None).
pub type Rows = Vec<Vec<Option<String>>>;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("project", &self.settings.project).finish_non_exhaustive()
    }
}

impl Client {
    /// A client with a fresh access token (when the connection has credentials).
    pub async fn connect(settings: &Settings) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(3600))
            .build()
            .map_err(|e| Error::engine("bigquery client", e))?;
        let token = match &settings.credentials {
            Some(account) => {
                let assertion = account.assertion(chrono::Utc::now())?;
                let response = http
                    .post(&account.token_uri)
                    .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
                    .send()
                    .await
                    .map_err(|e| unreachable(&account.token_uri, e))?;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or_default();
                match body["access_token"].as_str() {
                    Some(t) => Some(t.to_string()),
                    None => {
                        let why = body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("no token");
                        return Err(Error::external_final(
                            "bigquery",
                            format!(
                                "{} refused the service account {}: HTTP {status}: {why}",
                                account.token_uri, account.client_email
                            ),
                        ));
                    }
                }
            }
            None => None,
        };
        Ok(Client { http, settings: settings.clone(), token })
    }

    pub fn project(&self) -> &str {
        &self.settings.project
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/bigquery/v2/projects/{}{path}", self.settings.endpoint, self.settings.project)
    }

    /// Sends a request and returns its JSON answer, or BigQuery's error (`what` says what was asked).
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        Ok(self.send_found(request, what).await?.unwrap_or(Value::Null))
    }

    /// [`Client::send`], with a 404 answered as None (a table that does not exist).
    async fn send_found(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Option<Value>> {
        let response = request.send().await.map_err(|e| unreachable(&self.settings.endpoint, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Error::external("bigquery", e.without_url().to_string()))?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(Some(body));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let message = match body["error"]["message"].as_str() {
            Some(m) => m.to_string(),
            None => text.chars().take(300).collect(),
        };
        let text = format!("{what}: HTTP {status}: {message}");
        Err(if status.is_server_error() || status.as_u16() == 429 {
            Error::external("bigquery", text)
        } else {
            Error::data(Default::default(), format!("bigquery {text}"))
        })
    }

    /// Creates `dataset.table` with `fields` (BigQuery's schema JSON), deleted by BigQuery itself after `expires`.
    pub async fn create_table(&self, dataset: &str, table: &str, fields: &[Value], expires: Duration) -> Result<()> {
        let expiration = chrono::Utc::now().timestamp_millis() + expires.as_millis() as i64;
        let body = json!({
            "tableReference": {"projectId": self.settings.project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": fields},
            "expirationTime": expiration.to_string(),
        });
        let request = self.request(reqwest::Method::POST, self.api(&format!("/datasets/{dataset}/tables"))).json(&body);
        self.send(request, &format!("create table {dataset}.{table}")).await.map(|_| ())
    }

    /// The column names of `dataset.table`, or None when it does not exist.
    pub async fn table_columns(&self, dataset: &str, table: &str) -> Result<Option<Vec<String>>> {
        let url = self.api(&format!("/datasets/{dataset}/tables/{table}"));
        let found =
            self.send_found(self.request(reqwest::Method::GET, url), &format!("read table {dataset}.{table}")).await?;
        Ok(found.map(|t| {
            let fields = t["schema"]["fields"].as_array().cloned().unwrap_or_default();
            fields.iter().filter_map(|f| f["name"].as_str().map(str::to_string)).collect()
        }))
    }

    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<()> {
        let url = self.api(&format!("/datasets/{dataset}/tables/{table}"));
        self.send(self.request(reqwest::Method::DELETE, url), &format!("delete table {dataset}.{table}"))
            .await
            .map(|_| ())
    }

    /// Appends a Parquet file to `dataset.table` with a load job (multipart upload), and waits for it.
    pub async fn load_parquet(&self, dataset: &str, table: &str, file: Vec<u8>) -> Result<()> {
        let mut job = json!({"configuration": {"load": {
            "destinationTable": {"projectId": self.settings.project, "datasetId": dataset, "tableId": table},
            "sourceFormat": "PARQUET",
            "writeDisposition": "WRITE_APPEND",
            "createDisposition": "CREATE_NEVER",
        }}});
        if let Some(location) = &self.settings.location {
            job["jobReference"] = json!({"location": location});
        }
        let boundary = format!("weir{}", uuid::Uuid::new_v4().simple());
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{job}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!(
            "{}/upload/bigquery/v2/projects/{}/jobs?uploadType=multipart",
            self.settings.endpoint, self.settings.project
        );
        let request = self
            .request(reqwest::Method::POST, url)
            .header("Content-Type", format!("multipart/related; boundary={boundary}"))
            .body(body);
        let what = format!("load into {dataset}.{table}");
        let job = self.send(request, &what).await?;
        self.wait(&job, &what).await.map(|_| ())
    }

    /// Runs a statement or a script as a query job and waits until it is done.
    pub async fn run(&self, sql: &str) -> Result<Value> {
        let mut job = json!({"configuration": {"query": {"query": sql, "useLegacySql": false}}});
        if let Some(location) = &self.settings.location {
            job["jobReference"] = json!({"location": location});
        }
        let what = format!("`{}`", statement_head(sql));
        let job = self.send(self.request(reqwest::Method::POST, self.api("/jobs")).json(&job), &what).await?;
        self.wait(&job, &what).await
    }

    /// Runs a query and returns its rows (small results only: the first page).
    pub async fn query(&self, sql: &str) -> Result<Rows> {
        let done = self.run(sql).await?;
        let reference = &done["jobReference"];
        let mut url = self.api(&format!("/queries/{}", reference["jobId"].as_str().unwrap_or_default()));
        if let Some(location) = reference["location"].as_str() {
            url.push_str(&format!("?location={location}"));
        }
        let result = self
            .send(self.request(reqwest::Method::GET, url), &format!("results of `{}`", statement_head(sql)))
            .await?;
        Ok(result["rows"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        r["f"]
                            .as_array()
                            .map(|cells| cells.iter().map(|c| c["v"].as_str().map(str::to_string)).collect())
                    })
                    .map(Option::unwrap_or_default)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Follows a job until BigQuery says it is done; its errors become this call's error.
    async fn wait(&self, job: &Value, what: &str) -> Result<Value> {
        let id = job["jobReference"]["jobId"].as_str().unwrap_or_default().to_string();
        let mut url = self.api(&format!("/jobs/{id}"));
        if let Some(location) = job["jobReference"]["location"].as_str() {
            url.push_str(&format!("?location={location}"));
        }
        let mut job = job.clone();
        let mut pause = Duration::from_millis(50);
        while job["status"]["state"].as_str() != Some("DONE") {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
            job = self.send(self.request(reqwest::Method::GET, url.clone()), what).await?;
        }
        if job["status"]["errorResult"].is_object() {
            let errors: Vec<String> = job["status"]["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|e| {
                            let reason = e["reason"].as_str().unwrap_or_default();
                            format!("{} ({reason})", e["message"].as_str().unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(Error::data(
                Default::default(),
                format!("bigquery job {id} ({what}) failed: {}", errors.join("; ")),
            ));
        }
        Ok(job)
    }
}

/// A request that got no answer.
fn unreachable(endpoint: &str, e: reqwest::Error) -> Error {
    Error::external("bigquery", format!("{endpoint} did not answer: {}", crate::http_client::request_failure(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_signs_an_assertion_for_its_token_uri() {
        let key = include_str!("../testdata/snowflake_test_key.p8");
        let account = ServiceAccount::from_json(
            &json!({"type": "service_account", "client_email": "loader@p.iam.gserviceaccount.com", "private_key": key})
                .to_string(),
        )
        .unwrap();
        assert!(!format!("{account:?}").contains("PRIVATE"));
        let jwt = account.assertion(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()).unwrap();
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: Value =
            serde_json::from_slice(&base64::Engine::decode(&url, jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(claims["iss"], "loader@p.iam.gserviceaccount.com");
        assert_eq!(claims["scope"], "https://www.googleapis.com/auth/bigquery");
        assert_eq!(claims["exp"], 1_800_003_600);
    }
}
