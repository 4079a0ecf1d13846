//! A thin client of Snowflake's driver protocol: the few REST calls its official connectors make to log in (password
//! or key-pair JWT), run one statement at a time in a session (so `BEGIN` ... `COMMIT` span several calls), read
//! small results (JSON or Arrow IPC) and upload a file to a stage for `PUT`. No Rust Snowflake crate fits weir's
//! Arrow version, and a sink needs nothing more.
//!
//! Secrets (the password, the private key) live only in [`Auth`], whose `Debug` hides them; they are sent in the
//! login request's body and never appear in a URL, a log line or an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use base64::Engine as _;
use serde_json::{json, Value};
use weir_config::project::Connection;
use weir_core::{Error, Result};

use crate::connection::statement_head;

/// How the client proves who it is.
#[derive(Clone)]
pub enum Auth {
    Password(String),
    /// An unencrypted PKCS#8 RSA private key (PEM), whose public key is set on the user (`RSA_PUBLIC_KEY`).
    KeyPair(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Password(_) => "Password(***)",
            Auth::KeyPair(_) => "KeyPair(***)",
        })
    }
}

/// A `connections:` entry of `type: snowflake`, its secrets resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The account identifier (`myorg-myaccount` or a locator such as `xy12345.eu-west-1`).
    pub account: String,
    pub user: String,
    pub auth: Auth,
    pub warehouse: Option<String>,
    pub database: Option<String>,
    pub schema: Option<String>,
    pub role: Option<String>,
    /// `https://ACCOUNT.snowflakecomputing.com` unless `url` overrides it (a proxy, a private link, an emulator).
    pub endpoint: String,
}

impl Settings {
    pub fn from_connection(connection: &Connection) -> Result<Settings> {
        let at = |msg: String| Error::config(Default::default(), format!("connection `{}`: {msg}", connection.name));
        let get = |k: &str| crate::connection::setting(connection, k);
        let account = get("account")?.ok_or_else(|| at("a snowflake connection needs `account`".into()))?;
        let user = get("user")?.ok_or_else(|| at("a snowflake connection needs `user`".into()))?;
        let auth = match (get("password")?, get("private_key")?) {
            (Some(p), None) => Auth::Password(p),
            (None, Some(k)) => Auth::KeyPair(k),
            _ => {
                return Err(at(
                    "give either `password` or `private_key` (a PKCS#8 PEM, e.g. `${file:rsa_key.p8}`)".into()
                ))
            }
        };
        let endpoint = match get("url")? {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("https://{}.snowflakecomputing.com", account.to_ascii_lowercase()),
        };
        Ok(Settings {
            account,
            user,
            auth,
            warehouse: get("warehouse")?,
            database: get("database")?,
            schema: get("schema")?,
            role: get("role")?,
            endpoint,
        })
    }
}

/// The rows of a small result, each value as text (NULL as None), with the column names.
#[derive(Debug, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// The values of the column named `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<Vec<Option<String>>> {
        let i = self.columns.iter().position(|c| c.eq_ignore_ascii_case(name))?;
        Some(self.rows.iter().map(|r| r.get(i).cloned().flatten()).collect())
    }
}

/// A logged-in session: statements run in it one at a time, in order.
pub struct Session {
    http: reqwest::Client,
    endpoint: String,
    token: String,
    sequence: AtomicU64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// Snowflake answers these codes while a statement still runs; the result is fetched from `getResultUrl`.
const STILL_RUNNING: [&str; 2] = ["333333", "333334"];

impl Session {
    pub async fn login(settings: &Settings) -> Result<Session> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(3600))
            .gzip(true)
            .build()
            .map_err(|e| Error::engine("snowflake client", e))?;
        let mut data = json!({
            "CLIENT_APP_ID": "weir",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "ACCOUNT_NAME": account_name(&settings.account),
            "LOGIN_NAME": settings.user,
            "SESSION_PARAMETERS": {"TIMEZONE": "UTC", "QUERY_TAG": "weir"},
        });
        match &settings.auth {
            Auth::Password(p) => data["PASSWORD"] = json!(p),
            Auth::KeyPair(pem) => {
                data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                data["TOKEN"] = json!(key_pair_jwt(&settings.account, &settings.user, pem, chrono::Utc::now())?);
            }
        }
        let mut query = vec![("request_id", uuid::Uuid::new_v4().to_string())];
        for (k, v) in [
            ("databaseName", &settings.database),
            ("schemaName", &settings.schema),
            ("warehouse", &settings.warehouse),
            ("roleName", &settings.role),
        ] {
            if let Some(v) = v {
                query.push((k, v.clone()));
            }
        }
        let url = format!("{}/session/v1/login-request", settings.endpoint);
        let response = http
            .post(&url)
            .query(&query)
            .header("Accept", "application/json")
            .json(&json!({ "data": data }))
            .send()
            .await
            .map_err(|e| unreachable(&settings.endpoint, e))?;
        let body = answer(response, "log in").await?;
        let token = body["data"]["token"]
            .as_str()
            .ok_or_else(|| Error::external("snowflake", "the login answer holds no session token"))?
            .to_string();
        Ok(Session { http, endpoint: settings.endpoint.clone(), token, sequence: AtomicU64::new(0) })
    }

    /// Runs one statement and returns its result (small results only: the rows of the first chunk).
    pub async fn execute(&self, sql: &str) -> Result<Rows> {
        let data = self.request(sql).await?;
        if data["chunks"].as_array().is_some_and(|c| !c.is_empty()) {
            return Err(Error::engine(
                "snowflake",
                format!("`{}` returned more rows than weir reads", statement_head(sql)),
            ));
        }
        rows_of(&data).map_err(|e| Error::engine("snowflake result", format!("`{}`: {e}", statement_head(sql))))
    }

    /// Uploads `bytes` as `file_name` into `@stage_path` (a `PUT`): Snowflake answers where to put the file.
    pub async fn put(&self, stage_path: &str, file_name: &str, bytes: Vec<u8>) -> Result<()> {
        let data = self.request(&format!("PUT 'file:///weir/{file_name}' @{stage_path} AUTO_COMPRESS=FALSE")).await?;
        let stage = &data["stageInfo"];
        let kind = stage["locationType"].as_str().unwrap_or_default();
        let encrypted = data["encryptionMaterial"].is_object()
            || data["encryptionMaterial"].as_array().is_some_and(|m| m.iter().any(|m| !m.is_null()));
        let failed = |msg: String| Error::external("snowflake upload", format!("{file_name} to @{stage_path}: {msg}"));
        match stage["presignedUrl"].as_str() {
            Some(url) if kind == "GCS" && !encrypted => {
                let response = self
                    .http
                    .put(url)
                    .header("Content-Type", "application/octet-stream")
                    .body(bytes)
                    .send()
                    .await
                    .map_err(|e| failed(e.without_url().to_string()))?;
                if !response.status().is_success() {
                    return Err(failed(format!("the stage answered HTTP {}", response.status())));
                }
                Ok(())
            }
            _ => Err(Error::external_final(
                "snowflake upload",
                format!(
                    "the stage is a {kind} location{}; weir uploads only to stages served over a presigned URL without \
                     client-side encryption",
                    if encrypted { " with client-side encryption" } else { "" }
                ),
            )),
        }
    }

    /// Ends the session (its temporary stage and tables go with it, and an open transaction rolls back).
    pub async fn close(&self) {
        let _ = end_session(&self.http, &self.endpoint, &self.token).await;
    }

    /// The session's token, to end it from another process (see `crate::snowflake`'s detached transactions).
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn auth(&self) -> String {
        format!("Snowflake Token=\"{}\"", self.token)
    }

    /// Sends a statement, follows it while it runs, and returns the answer's `data`.
    async fn request(&self, sql: &str) -> Result<Value> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let url = format!("{}/queries/v1/query-request", self.endpoint);
        let body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": sequence,
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
        });
        let response = self
            .http
            .post(&url)
            .query(&[("requestId", uuid::Uuid::new_v4().to_string())])
            .header("Authorization", self.auth())
            .header("Accept", "application/snowflake")
            .json(&body)
            .send()
            .await
            .map_err(|e| unreachable(&self.endpoint, e))?;
        let mut answer = answer_of(response, sql).await?;
        let mut wait = Duration::from_millis(100);
        while STILL_RUNNING.contains(&answer["code"].as_str().unwrap_or_default()) {
            let path = answer["data"]["getResultUrl"]
                .as_str()
                .ok_or_else(|| Error::external("snowflake", "a running statement without a result URL"))?;
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
            let response = self
                .http
                .get(format!("{}{path}", self.endpoint))
                .header("Authorization", self.auth())
                .header("Accept", "application/snowflake")
                .send()
                .await
                .map_err(|e| unreachable(&self.endpoint, e))?;
            answer = answer_of(response, sql).await?;
        }
        if answer["success"].as_bool() != Some(true) {
            return Err(statement_error(&answer, sql));
        }
        Ok(answer["data"].take())
    }
}

/// Ends the session of `token`: Snowflake rolls back its open transaction and drops its temporary objects.
pub async fn end_session(http: &reqwest::Client, endpoint: &str, token: &str) -> Result<()> {
    let url = format!("{endpoint}/session");
    let response = http
        .post(&url)
        .query(&[("delete", "true")])
        .header("Authorization", format!("Snowflake Token=\"{token}\""))
        .send()
        .await
        .map_err(|e| unreachable(endpoint, e))?;
    answer(response, "end a session").await.map(|_| ())
}

/// The answer of a statement, as JSON (a failed statement is still a JSON answer; the caller reads `success`).
async fn answer_of(response: reqwest::Response, sql: &str) -> Result<Value> {
    let status = response.status();
    let text = response.text().await.map_err(|e| Error::external("snowflake", e.without_url().to_string()))?;
    match serde_json::from_str::<Value>(&text) {
        Ok(v) if v.get("success").is_some() => Ok(v),
        _ => {
            let what =
                format!("`{}`: HTTP {status}: {}", statement_head(sql), text.chars().take(300).collect::<String>());
            Err(if status.is_server_error() || status.as_u16() == 429 {
                Error::external("snowflake", what)
            } else {
                Error::external_final("snowflake", what)
            })
        }
    }
}

/// The login answer, or an error that names Snowflake's message (never the request, which holds the secret).
async fn answer(response: reqwest::Response, what: &str) -> Result<Value> {
    let status = response.status();
    let text = response.text().await.map_err(|e| Error::external("snowflake", e.without_url().to_string()))?;
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        Error::external("snowflake", format!("{what}: HTTP {status}: {}", text.chars().take(300).collect::<String>()))
    })?;
    if body["success"].as_bool() != Some(true) {
        let code = body["code"].as_str().unwrap_or_default();
        let message = body["message"].as_str().unwrap_or("no message");
        return Err(Error::external_final("snowflake", format!("{what} failed: {message} (code {code})")));
    }
    Ok(body)
}

fn statement_error(answer: &Value, sql: &str) -> Error {
    let message = answer["message"].as_str().unwrap_or("no message");
    let code = answer["code"].as_str().or(answer["data"]["errorCode"].as_str()).unwrap_or_default();
    let state = answer["data"]["sqlState"].as_str().unwrap_or_default();
    let text = format!("`{}` failed: {message} (code {code}, SQL state {state})", statement_head(sql));
    // 390112/390114: the session or its token expired: a new attempt logs in again.
    if matches!(code, "390112" | "390114") {
        Error::external("snowflake", text)
    } else {
        Error::data(Default::default(), format!("snowflake {text}"))
    }
}

/// A request that got no answer.
fn unreachable(endpoint: &str, e: reqwest::Error) -> Error {
    Error::external("snowflake", format!("{endpoint} did not answer: {}", crate::http_client::request_failure(e)))
}

/// The rows of an answer: JSON `rowset`, or Arrow IPC in `rowsetBase64`, every value as text.
fn rows_of(data: &Value) -> std::result::Result<Rows, String> {
    let columns: Vec<String> = data["rowtype"]
        .as_array()
        .map(|t| t.iter().map(|c| c["name"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    if let Some(rowset) = data["rowset"].as_array() {
        let rows = rowset
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|vals| {
                        vals.iter()
                            .map(|v| match v {
                                Value::Null => None,
                                Value::String(s) => Some(s.clone()),
                                other => Some(other.to_string()),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        return Ok(Rows { columns, rows });
    }
    let encoded = data["rowsetBase64"].as_str().unwrap_or_default();
    if encoded.is_empty() {
        return Ok(Rows { columns, rows: Vec::new() });
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| e.to_string())?;
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for batch in reader {
        rows.extend(text_rows(&batch.map_err(|e| e.to_string())?)?);
    }
    Ok(Rows { columns, rows })
}

fn text_rows(batch: &RecordBatch) -> std::result::Result<Vec<Vec<Option<String>>>, String> {
    let columns: Vec<arrow::array::ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).map_err(|e| e.to_string()))
        .collect::<std::result::Result<_, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            columns
                .iter()
                .map(|c| {
                    let c = arrow::array::AsArray::as_string::<i32>(c.as_ref());
                    (!c.is_null(i)).then(|| c.value(i).to_string())
                })
                .collect()
        })
        .collect())
}

/// The account part of an identifier that names a region (`xy12345.eu-west-1` -> `XY12345`), as login and JWT take it.
fn account_name(account: &str) -> String {
    account.split('.').next().unwrap_or(account).to_ascii_uppercase()
}

/// A key-pair login token: a JWT signed RS256 with the user's private key, whose issuer names the public key by its
/// SHA-256 fingerprint (as `DESC USER` shows it in `RSA_PUBLIC_KEY_FP`), valid for an hour.
pub fn key_pair_jwt(account: &str, user: &str, pem: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String> {
    let key = crate::jwt::RsaKey::from_pem(pem, "snowflake private_key")?;
    let fingerprint = public_key_fingerprint(key.public_key());
    let subject = format!("{}.{}", account_name(account), user.to_ascii_uppercase());
    key.sign(&json!({
        "iss": format!("{subject}.SHA256:{fingerprint}"),
        "sub": subject,
        "iat": now.timestamp(),
        "exp": now.timestamp() + 3540,
    }))
}

/// `SHA256:` fingerprint of an RSA public key: base64 of the SHA-256 of its DER SubjectPublicKeyInfo, built here
/// from the PKCS#1 `RSAPublicKey` ring gives.
fn public_key_fingerprint(pkcs1: &[u8]) -> String {
    // AlgorithmIdentifier { rsaEncryption, NULL }.
    const ALGORITHM: [u8; 15] =
        [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bit_string = vec![0u8];
    bit_string.extend_from_slice(pkcs1);
    let mut inner = ALGORITHM.to_vec();
    inner.extend(der(0x03, &bit_string));
    let spki = der(0x30, &inner);
    base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, &spki))
}

/// One DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_long_form_past_127_bytes() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    /// A key made for this test only: `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`.
    const TEST_KEY: &str = include_str!("../testdata/snowflake_test_key.p8");

    #[test]
    fn key_pair_tokens_name_the_key_as_snowflake_does_and_verify() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let jwt = key_pair_jwt("xy12345.eu-west-1", "loader", TEST_KEY, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: Value = serde_json::from_slice(&url.decode(parts[1]).unwrap()).unwrap();
        // The fingerprint Snowflake computes: `openssl rsa -in snowflake_test_key.p8 -pubout -outform DER |
        // openssl dgst -sha256 -binary | base64`.
        assert_eq!(claims["iss"], "XY12345.LOADER.SHA256:DnfMzerQLaKDBSmYDhVaM53npHqsSVJIbdFrpC14v2Y=");
        assert_eq!(claims["sub"], "XY12345.LOADER");
        assert_eq!(claims["iat"], 1_800_000_000);
        assert_eq!(claims["exp"], 1_800_003_540);
        let header: Value = serde_json::from_slice(&url.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let body: String = TEST_KEY.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &url.decode(parts[2]).unwrap())
            .expect("the signature verifies with the public key");
    }

    #[test]
    fn a_key_that_is_not_pkcs8_is_refused_with_a_hint() {
        let err = key_pair_jwt("a", "u", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n", chrono::Utc::now());
        assert!(err.unwrap_err().to_string().contains("-nocrypt"));
        let err = key_pair_jwt("a", "u", "not a key", chrono::Utc::now()).unwrap_err().to_string();
        assert!(err.contains("private_key"), "{err}");
    }

    #[test]
    fn statement_heads_are_one_short_line() {
        assert_eq!(statement_head("SELECT 1\n  FROM t"), "SELECT 1 FROM t");
        assert!(statement_head(&"x ".repeat(200)).ends_with("..."));
    }
}
