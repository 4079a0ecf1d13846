//! Hostile input against a running weir: web pages that rebind a domain to the daemon, API answers that try to
//! take credentials elsewhere, secrets that must never be shown. Black-box: the real binary on loopback.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use common::http::call;

const PIPELINE: &str = "version: 1\nschedule: {cron: \"@daily\", start_date: 2026-03-01, catchup: false}\ntasks:\n  - name: t\n    shell: {command: \"true\"}\n";

/// One HTTP/1.1 request exactly as given (head lines without the blank line), for forged headers.
fn raw(addr: &str, head: &[&str], body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let mut request = head.join("\r\n");
    request.push_str(&format!("\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

fn paused(base: &str) -> bool {
    let (status, body) = call("GET", &format!("{base}/api/pipelines/p"), &[], "");
    assert_eq!(status, 200, "{body}");
    body.contains("\"paused\":true")
}

fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(dir.join("pipelines/p.yaml"), PIPELINE).unwrap();
}

/// A page on `evil.test` whose name the attacker re-points at 127.0.0.1 talks to the daemon with `Host:
/// evil.test:PORT` and a matching `Origin`. It must get nothing: no read, no CSRF pair, no action.
#[test]
fn a_rebinding_page_cannot_read_or_drive_the_daemon() {
    let tmp = common::project("rebinding", &[("pipelines/p.yaml", PIPELINE)]);
    let dir = tmp.path();
    project(dir);
    let (mut child, base) = common::serve(dir, "127.0.0.1:0");
    let addr = base.trim_start_matches("http://").to_string();
    let port = addr.rsplit_once(':').unwrap().1.to_string();
    let evil = format!("evil.test:{port}");

    // Reads: the API, a page, the metrics: refused, saying why.
    for path in ["/api/pipelines", "/", "/pipelines/p", "/metrics", "/api/openapi.json"] {
        let (status, body) = call("GET", &format!("{base}{path}"), &[("Host", &evil)], "");
        assert_eq!(status, 421, "{path} answered a foreign Host:\n{body}");
        assert!(body.contains("--allowed-host"), "{path}: {body}");
    }

    // The action with the attacker's own CSRF pair and a same-"site" Origin.
    let form = "csrf=pair";
    let (status, answer) = raw(
        &addr,
        &[
            "POST /pipelines/p/pause HTTP/1.1",
            &format!("Host: {evil}"),
            &format!("Origin: http://{evil}"),
            "Cookie: weir_csrf=pair",
            "Content-Type: application/x-www-form-urlencoded",
        ],
        form,
    );
    assert_eq!(status, 421, "{answer}");
    assert!(!paused(&base), "the pipeline was paused by a foreign page");

    // The daemon's own names still work: its address and localhost.
    let (status, _) = call("GET", &format!("{base}/api/pipelines"), &[("Host", &format!("localhost:{port}"))], "");
    assert_eq!(status, 200);
    let (status, _) = call("GET", &format!("{base}/"), &[], "");
    assert_eq!(status, 200);
    child.kill().ok();
    child.wait().ok();

    // A name the operator allows is answered.
    let mut allowed = common::command(dir, &["serve", "--bind", "127.0.0.1:0", "--allowed-host", "weir.internal"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = common::address_of(&mut allowed);
    let port = base.rsplit_once(':').unwrap().1.to_string();
    let (status, body) =
        call("GET", &format!("{base}/api/pipelines"), &[("Host", &format!("weir.internal:{port}"))], "");
    assert_eq!(status, 200, "{body}");
    let (status, _) = call("GET", &format!("{base}/api/pipelines"), &[("Host", &evil)], "");
    assert_eq!(status, 421);
    allowed.kill().ok();
    allowed.wait().ok();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// After a login, `next` may only send the browser to a path of this site: `/\evil.test`, which browsers read as
/// `//evil.test`, and its variants with tabs or encoded slashes, land on `/`.
#[test]
fn login_never_redirects_to_another_site() {
    let tmp = common::project("open_redirect", &[("pipelines/p.yaml", PIPELINE)]);
    let dir = tmp.path();
    let (mut child, base) = common::serve(dir, "127.0.0.1:0");
    let addr = base.trim_start_matches("http://").to_string();
    let token = std::fs::read_to_string(dir.join(".weir/api-token")).unwrap();
    let location = |next: &str| {
        let body = format!("token={}&csrf=pair&next={}", urlencode(token.trim()), urlencode(next));
        let (status, answer) = raw(
            &addr,
            &[
                "POST /login HTTP/1.1",
                &format!("Host: {addr}"),
                "Cookie: weir_csrf=pair",
                "Content-Type: application/x-www-form-urlencoded",
            ],
            &body,
        );
        assert!((300..400).contains(&status), "{next}: {answer}");
        answer
            .lines()
            .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    for hostile in
        ["/\\evil.test", "/\\/evil.test", "//evil.test", "/\t/evil.test", "https://evil.test", "/%5Cevil.test\\x"]
    {
        assert_eq!(location(hostile), "/", "next={hostile:?}");
    }
    assert_eq!(location("/pipelines/p?tab=runs"), "/pipelines/p?tab=runs", "a path of this site is kept");
    child.kill().ok();
    child.wait().ok();
}

/// The pipeline page shows the file with every secret masked, whatever the YAML style: block or flow maps, quoted
/// or not, any nesting, every auth kind and connection form of the README.
#[test]
fn the_pipeline_page_masks_secrets_in_every_yaml_style() {
    let secrets = ["s3cr3t-bearer", "s3cr3t-basic", "s3cr3t-apikey", "s3cr3t-client", "s3cr3t-url", "s3cr3t-header"];
    let pipeline = format!(
        r#"version: 1
schedule: {{cron: "@daily", start_date: 2026-03-01, catchup: false}}
tasks:
  - name: bearer
    source: {{type: http_api, url: "https://api.example.com/a", auth: {{type: bearer, token: {}}}}}
    sink: {{type: lake, table: raw.a}}
  - name: basic
    source: {{type: http_api, url: "https://api.example.com/b", auth: {{type: basic, username: me, "password": '{}'}}}}
    sink: {{type: lake, table: raw.b}}
  - name: api_key
    source:
      type: http_api
      url: "https://api.example.com/c"
      auth: {{type: api_key, name: X-Key, value: {}, in: header}}
    sink: {{type: lake, table: raw.c}}
  - name: oauth
    source:
      type: http_api
      url: "https://api.example.com/d"
      auth:
        type: oauth2
        token_url: "https://auth.example.com/token"
        client_id: weir
        client_secret: {}
    sink: {{type: lake, table: raw.d}}
  - name: pg
    source: {{type: postgres, url: "postgres://loader:{}@db.example.com:5432/shop", table: orders}}
    sink: {{type: lake, table: raw.e}}
  - name: headers
    source: {{type: http_api, url: "https://api.example.com/f", headers: {{Authorization: "Bearer {}", Accept: json}}}}
    sink: {{type: lake, table: raw.f}}
"#,
        secrets[0], secrets[1], secrets[2], secrets[3], secrets[4], secrets[5]
    );
    let tmp = common::project("masking", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    let (mut child, base) = common::serve(dir, "127.0.0.1:0");
    let (status, page) = call("GET", &format!("{base}/pipelines/p"), &[], "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("client_id: weir") && page.contains("api.example.com"), "the file is shown:\n{page}");
    for secret in secrets {
        assert!(!page.contains(secret), "{secret} is shown on the page");
    }
    child.kill().ok();
    child.wait().ok();
}

/// An API answer that points weir elsewhere (a `next` URL, a redirect) must not take the credentials with it, and
/// must not make weir read a cloud metadata address into the lake.
#[test]
fn rest_credentials_go_only_to_the_configured_origin() {
    use common::http::{Req, Resp, Server};
    use serde_json::json;
    // Another origin (same machine, other port), which records what it was sent.
    let elsewhere = Server::start(|req: &Req| match req.path() {
        "/more" => Resp::json(json!({"results": [{"id": 3}], "next": null})),
        _ => Resp::json(json!({"results": [], "next": null})),
    });
    let other = elsewhere.port;
    let api = Server::start(move |req: &Req| match req.path() {
        "/orders" => Resp::json(json!({"results": [{"id": 1}], "next": format!("http://127.0.0.1:{other}/more")})),
        "/redirected" => Resp::status(302, "").with_header("Location", &format!("http://127.0.0.1:{other}/more")),
        "/metadata" => Resp::json(json!({"results": [{"id": 9}], "next": "http://169.254.169.254/latest/meta-data/"})),
        _ => Resp::status(404, "no"),
    });
    let pipeline = |path: &str, extra: &str| {
        format!(
            "version: 1\ntasks:\n  - name: t\n    source:\n      type: http_api\n      url: \"{}\"\n      auth: {{type: api_key, name: X-Api-Key, value: \"${{env:KEY}}\", in: header}}\n      headers: {{Authorization: \"Bearer ${{env:KEY}}\"}}\n      records: results\n      paginate: {{type: next_url, path: next}}\n      timeout: 2s\n      retry: {{max_attempts: 1}}\n{extra}    sink: {{type: lake, table: raw.t}}\n",
            api.url(path)
        )
    };
    let env = [("KEY", "k3y-never-elsewhere")];
    let leaked =
        || elsewhere.requests().iter().any(|r| r.header("x-api-key").is_some() || r.header("authorization").is_some());

    // A next URL on another origin is fetched without the credentials.
    let tmp = common::project("creds", &[("pipelines/p.yaml", &pipeline("/orders", ""))]);
    let out = common::weir_with(tmp.path(), &["run", "p", "--date", "2026-03-01"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(elsewhere.requests().iter().any(|r| r.path() == "/more"), "the next page was fetched");
    assert!(!leaked(), "credentials were sent to another origin");
    assert!(api.requests().iter().all(|r| r.header("x-api-key") == Some("k3y-never-elsewhere")), "the API got them");

    // A redirect to another origin is not followed with the credentials either.
    let tmp = common::project("creds_redirect", &[("pipelines/p.yaml", &pipeline("/redirected", ""))]);
    let out = common::weir_with(tmp.path(), &["run", "p", "--date", "2026-03-01"], &env);
    assert!(!out.status.success() && common::text(&out).contains("redirect"), "{}", common::text(&out));
    assert!(!leaked(), "credentials followed a redirect to another origin");

    // Allowed explicitly, the other origin gets them.
    let allow = format!("      credential_hosts: [\"127.0.0.1:{other}\"]\n");
    let tmp = common::project("creds_allowed", &[("pipelines/p.yaml", &pipeline("/orders", &allow))]);
    let out = common::weir_with(tmp.path(), &["run", "p", "--date", "2026-03-01"], &env);
    assert!(out.status.success(), "{}", common::text(&out));
    assert!(leaked(), "an allowed origin gets the credentials");

    // A link-local (cloud metadata) address is refused before any connection, naming the setting that allows it.
    let tmp = common::project("metadata", &[("pipelines/p.yaml", &pipeline("/metadata", ""))]);
    let started = std::time::Instant::now();
    let out = common::weir_with(tmp.path(), &["run", "p", "--date", "2026-03-01"], &env);
    let text = common::text(&out);
    assert!(!out.status.success() && text.contains("169.254.169.254") && text.contains("link-local"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused, not tried");
    assert!(!tmp.path().join("lake/raw/t").exists(), "nothing landed");
}

/// `weir run` of a project (named `name`) whose one task reads table `t` from a `kind` database at `url` into the
/// lake: whether it succeeded, and what it printed.
fn read_table_t(name: &str, kind: &str, url: &str) -> (bool, String) {
    let pipeline = format!(
        "version: 1\ntasks:\n  - name: t\n    source: {{type: {kind}, url: \"{url}\", table: t}}\n    sink: {{type: lake, table: raw.t}}\n"
    );
    let tmp = common::project(name, &[("pipelines/p.yaml", &pipeline)]);
    let out = common::weir_with(tmp.path(), &["run", "p", "--date", "2026-03-01", "--no-retries"], &[]);
    (out.status.success(), common::text(&out))
}

/// PostgreSQL over TLS as libpq's `sslmode` says, against a cluster that accepts TLS only: `require` and the
/// default connect, `verify-full` connects to the name its certificate was issued for and refuses another, and
/// `disable` is refused by the server.
#[test]
fn postgres_connections_use_tls_as_sslmode_says() {
    let pg = common::pg::tls_server();
    let db = pg.database("tls");
    pg.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)").unwrap();
    let ca = pg.ca_file().display().to_string();
    let port = pg.port;
    let attempt = |name: &str, url: &str| read_table_t(name, "postgres", url);
    let base = format!("postgres://weir@127.0.0.1:{port}/{db}");
    for (name, url) in [
        ("tls_default", base.clone()),
        ("tls_require", format!("{base}?sslmode=require")),
        (
            "tls_verify_ca",
            format!(
                "postgres://weir@wrong.weir.test:{port}/{db}?hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert={ca}"
            ),
        ),
        (
            "tls_verify_full",
            format!("postgres://weir@localhost:{port}/{db}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
        ),
    ] {
        let (ok, text) = attempt(name, &url);
        assert!(ok && text.contains("2 rows read"), "{name}: {text}");
    }
    // Another name than the certificate's.
    let (ok, text) = attempt(
        "tls_wrong_name",
        &format!("postgres://weir@wrong.weir.test:{port}/{db}?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}"),
    );
    assert!(!ok && text.contains("certificate") && text.contains("not valid for name"), "{text}");
    // The system's roots do not know the test CA.
    let (ok, text) = attempt(
        "tls_unknown_ca",
        &format!("postgres://weir@localhost:{port}/{db}?hostaddr=127.0.0.1&sslmode=verify-full"),
    );
    assert!(!ok && text.contains("certificate"), "{text}");
    // No TLS: this server accepts none.
    let (ok, text) = attempt("tls_disable", &format!("{base}?sslmode=disable"));
    assert!(!ok && text.contains("no encryption"), "{text}");
}

/// Secrets in every place the README supports (the environment, a secrets file, a URL password, a header, an
/// OAuth2 client secret and the token it buys, a connection's password, the lake's storage key) never appear in
/// anything weir shows: every command's output at debug level, the stored attempt logs, the API's answers and the
/// web UI's pages, on success and on failure.
#[test]
fn secrets_never_leave_in_any_output_log_answer_or_page() {
    use common::http::{Req, Resp, Server};
    use serde_json::json;
    const ACCESS_TOKEN: &str = "s3cr3t-access-token";
    let secrets =
        [("LAKE_SECRET", "s3cr3t-lake-key"), ("PG_PASSWORD", "s3cr3t-pg-password"), ("HEADER_SECRET", "s3cr3t-header")];
    let (file_secret, url_password) = ("s3cr3t-client-secret", "s3cr3t-url-password");
    let api = Server::start(|req: &Req| match req.path() {
        "/token" if req.body.contains("s3cr3t-client-secret") => {
            Resp::json(json!({"access_token": ACCESS_TOKEN, "expires_in": 3600}))
        }
        "/orders" if req.header("authorization") == Some(&format!("Bearer {ACCESS_TOKEN}")) => {
            Resp::json(json!({"results": [{"id": 1, "amount": 5}], "next": null}))
        }
        _ => Resp::status(401, "no"),
    });
    let pg = common::pg::server();
    let db = pg.database("secrets");
    pg.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)").unwrap();
    let project = common::Backend::S3.project("secrets", &[]);
    let dir = project.dir();
    let yaml = std::fs::read_to_string(dir.join("weir.yaml"))
        .unwrap()
        .replace("secret_access_key: test", "secret_access_key: \"${env:LAKE_SECRET}\"");
    let yaml = format!(
        "{yaml}connections:\n  wh: {{type: postgres, host: 127.0.0.1, port: {}, user: weir, password: \"${{env:PG_PASSWORD}}\", dbname: {db}}}\n",
        pg.port
    );
    std::fs::write(dir.join("weir.yaml"), yaml).unwrap();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/client_secret"), file_secret).unwrap();
    let pipeline = format!(
        r#"version: 1
schedule: {{cron: "@daily", start_date: 2026-03-01, catchup: false}}
tasks:
  - name: api
    source:
      type: http_api
      url: "{}"
      auth: {{type: oauth2, token_url: "{}", client_id: weir, client_secret: "${{file:secrets/client_secret}}"}}
      headers: {{X-Trace: "${{env:HEADER_SECRET}}"}}
      records: results
    sink: {{type: lake, table: raw.orders, format: delta}}
  - name: api_inline
    retries: 0
    source: {{type: http_api, url: "{}", auth: {{type: api_key, name: X-Key, value: s3cr3t-inline-key, in: header}}}}
    sink: {{type: lake, table: raw.inline, format: delta}}
  - name: pg_url
    source: {{type: postgres, url: "postgres://weir:{url_password}@127.0.0.1:{}/{db}", table: t}}
    sink: {{type: lake, table: raw.pg, format: delta}}
  - name: pg_connection
    source: {{type: postgres, connection: wh, table: t}}
    sink: {{type: lake, table: raw.pg2, format: delta}}
  - name: pg_refused
    retries: 0
    source: {{type: postgres, url: "postgres://weir:{url_password}@127.0.0.1:1/{db}", table: t}}
    sink: {{type: lake, table: raw.pg3, format: delta}}
"#,
        api.url("/orders"),
        api.url("/token"),
        api.url("/orders"),
        pg.port
    );
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline).unwrap();

    let mut shown: Vec<(String, String)> = Vec::new();
    let mut run = |args: &[&str]| {
        let out = common::weir_with(dir, args, &secrets);
        shown.push((format!("weir {}", args.join(" ")), common::text(&out)));
        out.status.success()
    };
    assert!(run(&["validate"]));
    assert!(!run(&["-vv", "run", "p", "--date", "2026-03-01"]), "pg_refused fails");
    assert!(run(&["sql", "SELECT * FROM raw.orders", "-f", "csv"]));
    assert!(run(&["trigger", "p", "--date", "2026-03-02", "--wait"]) || true);
    for task in ["api", "api_inline", "pg_url", "pg_connection", "pg_refused"] {
        run(&["logs", "p", task, "--date", "2026-03-02"]);
    }
    run(&["runs"]);
    run(&["status"]);
    // The secrets were used: the API answered with the bought token, both databases were read, the lake written.
    let said = |what: &str| shown.iter().find(|(w, _)| w.starts_with(what)).map(|(_, o)| o.clone()).unwrap_or_default();
    assert!(said("weir sql").contains("5,1"), "{}", said("weir sql"));
    let run_output = said("weir -vv run");
    for task in ["api", "pg_url", "pg_connection"] {
        assert!(run_output.contains(&format!("✓ {task}")), "{task} ran:\n{run_output}");
    }
    assert!(run_output.contains("pg_refused") && run_output.contains("failed"), "{run_output}");

    let mut daemon = common::command(dir, &["serve", "--bind", "127.0.0.1:0"])
        .envs(secrets.iter().copied())
        .env("WEIR_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its own log, read as it comes (a full pipe would stop the daemon).
    let mut stderr = daemon.stderr.take().unwrap();
    let daemon_log = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let base = common::address_of(&mut daemon);
    let token = std::fs::read_to_string(dir.join(".weir/api-token")).unwrap();
    let auth = format!("Bearer {}", token.trim());
    let mut paths: Vec<String> = [
        "/api/pipelines",
        "/api/pipelines/p",
        "/api/pipelines/p/runs",
        "/api/runs",
        "/api/pools",
        "/api/streams",
        "/metrics",
        "/",
        "/pipelines/p",
        "/lake",
        "/lake/raw.orders",
        "/lake/raw.pg",
        "/quality",
        "/streams",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let (_, runs) = call("GET", &format!("{base}/api/runs"), &[("Authorization", &auth)], "");
    let runs: serde_json::Value = serde_json::from_str(&runs).unwrap_or_default();
    for r in runs.as_array().into_iter().flatten().chain(runs["runs"].as_array().into_iter().flatten()) {
        if let Some(id) = r["id"].as_i64() {
            paths.push(format!("/runs/{id}"));
            paths.push(format!("/api/runs/{id}"));
            for task in ["api", "api_inline", "pg_url", "pg_connection", "pg_refused"] {
                paths.push(format!("/api/runs/{id}/tasks/{task}/logs"));
            }
        }
    }
    for path in &paths {
        let (status, body) = call("GET", &format!("{base}{path}"), &[("Authorization", &auth)], "");
        assert_eq!(status, 200, "GET {path}: {body}");
        shown.push((format!("GET {path} ({status})"), body));
    }
    daemon.kill().ok();
    daemon.wait().ok();
    shown.push(("weir serve's own log".into(), daemon_log.join().unwrap_or_default()));

    // An inline secret (written in the file, in flow style) is masked wherever the file is shown.
    let all_secrets: Vec<&str> =
        secrets.iter().map(|(_, v)| *v).chain([file_secret, url_password, ACCESS_TOKEN, "s3cr3t-inline-key"]).collect();
    for (where_, text) in &shown {
        for secret in &all_secrets {
            assert!(!text.contains(secret), "{secret} appears in {where_}:\n{text}");
        }
    }
    assert!(paths.iter().any(|p| p.starts_with("/runs/")), "runs were found: {paths:?}");
}

/// MariaDB over TLS with the same `sslmode` names, against a server that requires secure transport.
#[test]
fn mysql_connections_use_tls_as_sslmode_says() {
    let maria = common::mysql::tls_server();
    maria.sql("CREATE DATABASE IF NOT EXISTS tls; CREATE TABLE IF NOT EXISTS tls.t (id int); DELETE FROM tls.t; INSERT INTO tls.t VALUES (1), (2)").unwrap();
    let ca = maria.ca_file().display().to_string();
    let port = maria.port;
    let attempt = |name: &str, url: &str| read_table_t(name, "mysql", url);
    for (name, url) in [
        ("my_require", format!("mysql://root@127.0.0.1:{port}/tls?sslmode=require")),
        ("my_verify_full", format!("mysql://root@localhost:{port}/tls?sslmode=verify-full&sslrootcert={ca}")),
    ] {
        let (ok, text) = attempt(name, &url);
        assert!(ok && text.contains("2 rows read"), "{name}: {text}");
    }
    // 127.0.0.1 is not the name the certificate was issued for.
    let (ok, text) =
        attempt("my_wrong_name", &format!("mysql://root@127.0.0.1:{port}/tls?sslmode=verify-full&sslrootcert={ca}"));
    assert!(!ok && text.to_lowercase().contains("certificate"), "{text}");
    // verify-ca cannot be honoured by the MySQL driver: refused, saying what to use.
    let (ok, text) =
        attempt("my_verify_ca", &format!("mysql://root@127.0.0.1:{port}/tls?sslmode=verify-ca&sslrootcert={ca}"));
    assert!(!ok && text.contains("verify-ca") && text.contains("verify-full"), "{text}");
    // Plain text: this server refuses it (MariaDB answers "access denied" to an insecure transport).
    let (ok, text) = attempt("my_disable", &format!("mysql://root@127.0.0.1:{port}/tls?sslmode=disable"));
    assert!(!ok && (text.contains("secure") || text.contains("Access denied")), "{text}");
}
