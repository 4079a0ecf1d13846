//! Black-box tests of the `http_api` source against a local API that injects faults: 429 with Retry-After, bursts
//! of 503, a response slower than the timeout, a malformed page, an expiring OAuth2 token, and a kill mid-run.
//! Every record must arrive exactly once, and no secret may appear in anything weir prints.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::http::{Req, Resp, Server};
use common::{scalar, text};
use serde_json::json;

fn weir_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .env("WEIR_LOG", "debug")
        .envs(env.iter().copied())
        .output()
        .expect("run weir")
}

fn record(id: u64) -> serde_json::Value {
    json!({"id": id, "updated_at": format!("2026-03-01T00:{:02}:{:02}Z", id / 60, id % 60),
           "customer": {"name": format!("c{id}"), "tier": {"level": id % 3}}, "tags": ["a", id.to_string()],
           "amount": id as f64 * 1.5})
}

/// Requests for `page` so far.
fn count(server: &Server, page: u64) -> usize {
    server.requests().iter().filter(|r| r.param("page") == Some(page.to_string())).count()
}

#[test]
fn a_paginated_api_survives_every_fault_and_resumes_without_duplicates() {
    const TOKEN: &str = "s3cret-token-42";
    let broken = Arc::new(AtomicBool::new(true));
    let attempts: Arc<Mutex<std::collections::HashMap<u64, u32>>> = Arc::default();
    let (b, a) = (broken.clone(), attempts.clone());
    let server = Arc::new(Mutex::new(0u16));
    let port = server.clone();
    let api = Server::start(move |req: &Req| {
        if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return Resp::status(401, "{\"error\": \"bad token\"}");
        }
        let page: u64 = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let n = {
            let mut a = a.lock().unwrap();
            let n = a.entry(page).or_default();
            *n += 1;
            *n
        };
        match (page, n) {
            (2, 1) => return Resp::status(429, "slow down").with_header("Retry-After", "1"),
            (4, 1) | (4, 2) => return Resp::status(503, "busy"),
            (6, 1) => std::thread::sleep(Duration::from_millis(2500)),
            (9, _) if b.load(Ordering::SeqCst) => return Resp::status(200, "<html>upstream error</html>"),
            _ => {}
        }
        let ids: Vec<_> = ((page - 1) * 20 + 1..=(page * 20).min(250)).map(record).collect();
        let next =
            (page * 20 < 250).then(|| format!("http://127.0.0.1:{}/orders?page={}", port.lock().unwrap(), page + 1));
        Resp::json(json!({"results": ids, "next": next, "count": 250}))
    });
    *server.lock().unwrap() = api.port;
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: orders
    source:
      type: http_api
      url: "{}"
      auth: {{type: bearer, token: "${{env:API_TOKEN}}"}}
      records: results
      paginate: {{type: next_url, path: next}}
      timeout: 1s
      retry: {{max_attempts: 5, initial_delay: 50ms, max_delay: 200ms}}
    sink: {{type: lake, table: raw.orders, partition: "date={{{{ ds }}}}"}}
"#,
        api.url("/orders")
    );
    let tmp = common::project("api", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    let env = [("API_TOKEN", TOKEN)];

    // Page 9 is malformed: the run fails naming it, after pages 1-8 are safely spooled; nothing is committed.
    let first = weir_with(dir, &["run", "p", "--date", "2026-03-25"], &env);
    let out = text(&first);
    assert!(!first.status.success(), "{out}");
    assert!(out.contains("page 9") && out.contains("/orders?page=9") && out.contains("not JSON"), "{out}");
    assert!(!out.contains(TOKEN), "the token leaked:\n{out}");
    assert!(!dir.join("lake/raw/orders").exists());
    assert!(dir.join(".weir/spool/p/orders/2026-03-25/page-000007.json").exists());
    // 429: the retry waited for Retry-After; 503 twice then fine; the slow page timed out once.
    let log = api.requests();
    let page2: Vec<_> = log.iter().filter(|r| r.param("page").as_deref() == Some("2")).collect();
    assert_eq!(page2.len(), 2);
    assert!(page2[1].at - page2[0].at >= Duration::from_millis(1000), "Retry-After not honoured");
    assert_eq!(count(&api, 4), 3);
    assert_eq!(count(&api, 6), 2);

    // The API heals; the re-run replays pages 1-8 from the spool and fetches only the rest.
    broken.store(false, Ordering::SeqCst);
    let before: Vec<usize> = (1..=8).map(|p| count(&api, p)).collect();
    let second = weir_with(dir, &["run", "p", "--date", "2026-03-25"], &env);
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert!(!out.contains(TOKEN), "the token leaked:\n{out}");
    assert_eq!((1..=8).map(|p| count(&api, p)).collect::<Vec<_>>(), before, "spooled pages were fetched again");
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.orders"), "250");
    assert_eq!(scalar(dir, "SELECT count(DISTINCT id) FROM raw.orders"), "250");
    assert_eq!(scalar(dir, "SELECT customer__tier__level FROM raw.orders WHERE id = 5"), "2");
    assert_eq!(scalar(dir, r#"SELECT tags = '["a","7"]' FROM raw.orders WHERE id = 7"#), "true");
    assert!(!dir.join(".weir/spool/p/orders/2026-03-25").exists(), "the spool is cleared after the commit");

    // A wrong token is a 401: it fails at once with the body, without retries.
    let bad = weir_with(dir, &["run", "p", "--date", "2026-03-26"], &[("API_TOKEN", "wrong")]);
    let out = text(&bad);
    assert!(!bad.status.success() && out.contains("401") && out.contains("bad token"), "{out}");
}

#[test]
fn a_run_killed_mid_way_resumes_from_its_checkpoint_with_each_record_once() {
    let api = Server::start(|req: &Req| {
        let offset: u64 = req.param("offset").and_then(|p| p.parse().ok()).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(100));
        let ids: Vec<_> = (offset + 1..=(offset + 10).min(300)).map(record).collect();
        Resp::json(json!({"data": {"items": ids}, "total": 300}))
    });
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: orders
    source:
      type: http_api
      url: "{}"
      records: data.items
      paginate: {{type: offset, limit: 10, total_path: total}}
    sink: {{type: lake, table: raw.orders, partition: "date={{{{ ds }}}}"}}
"#,
        api.url("/orders")
    );
    let tmp = common::project("api", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    let mut child = common::spawn(dir, &["run", "p", "--date", "2026-03-25"]);
    while api.requests().len() < 12 {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();
    let fetched_before = api.requests().len();
    assert!(!dir.join("lake/raw/orders").exists());
    common::ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.orders"), "300");
    assert_eq!(scalar(dir, "SELECT count(DISTINCT id) FROM raw.orders"), "300");
    // At most the page in flight at the kill is fetched twice.
    assert!(api.requests().len() <= 30 + 1, "{} requests", api.requests().len());
    assert!(api.requests().len() - fetched_before < 30 - 10);
}

#[test]
fn incremental_runs_ask_only_for_newer_records_and_full_refresh_starts_over() {
    incremental_scenario("");
}

#[test]
fn incremental_cursors_commit_with_delta_writes_too() {
    incremental_scenario(", format: delta");
}

/// The cursor is committed with the data: in the Parquet partition, or in the Delta commit (`sink_extra`).
fn incremental_scenario(sink_extra: &str) {
    let updated: Arc<Mutex<Vec<(u64, String)>>> =
        Arc::new(Mutex::new((1..=50).map(|i| (i, format!("2026-03-01T10:{:02}:00Z", i))).collect()));
    let data = updated.clone();
    let api = Server::start(move |req: &Req| {
        if req.param("key").as_deref() != Some("k3y-secret") {
            return Resp::status(403, "forbidden");
        }
        let since = req.param("updated_since").unwrap_or_default();
        let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let rows: Vec<_> = data
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u)| u.as_str() > since.as_str())
            .map(|(i, u)| json!({"id": i, "updated_at": u}))
            .collect();
        let chunk: Vec<_> = rows.iter().skip((page - 1) * 10).take(10).cloned().collect();
        Resp::json(json!(chunk))
    });
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: customers
    source:
      type: http_api
      url: "{}"
      auth: {{type: api_key, name: key, value: "${{env:API_KEY}}", in: query}}
      paginate: {{type: page, size: 10}}
      concurrency: 4
      incremental: {{cursor_field: updated_at, param: updated_since, initial: "2026-01-01T00:00:00Z"}}
    sink: {{type: lake, table: raw.customers, partition: "date={{{{ ds }}}}"{sink_extra}}}
"#,
        api.url("/customers")
    );
    let tmp = common::project("api", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    let env = [("API_KEY", "k3y-secret")];
    let run = |date: &str, extra: &[&str]| {
        let mut args = vec!["run", "p", "--date", date];
        args.extend_from_slice(extra);
        let o = weir_with(dir, &args, &env);
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&o).contains("k3y-secret"), "the API key leaked:\n{}", text(&o));
    };
    run("2026-03-01", &[]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.customers"), "50");
    // New records and one update arrive; the next day asks only for what is newer than the last cursor.
    {
        let mut d = updated.lock().unwrap();
        d.extend((51..=60).map(|i| (i, format!("2026-03-02T09:{:02}:00Z", i))));
        d[9].1 = "2026-03-02T08:00:00Z".into();
    }
    run("2026-03-02", &[]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.customers WHERE date = '2026-03-02'"), "11");
    let asked: Vec<String> = api.requests().iter().filter_map(|r| r.param("updated_since")).collect();
    assert!(asked.contains(&"2026-03-01T10:50:00Z".to_string()), "{asked:?}");
    // Nothing new: an empty day.
    run("2026-03-03", &[]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.customers WHERE date = '2026-03-03'"), "0");
    // --full-refresh forgets the cursor.
    run("2026-03-04", &["--full-refresh"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.customers WHERE date = '2026-03-04'"), "60");
}

#[test]
fn an_expired_oauth2_token_is_refreshed() {
    let issued = Arc::new(AtomicU32::new(0));
    let i = issued.clone();
    let api = Server::start(move |req: &Req| {
        if req.path() == "/token" {
            assert!(req.body.contains("grant_type=client_credentials") && req.body.contains("client_secret=cl13nt"));
            let n = i.fetch_add(1, Ordering::SeqCst) + 1;
            return Resp::json(json!({"access_token": format!("tok-{n}"), "expires_in": 3600}));
        }
        let page: u64 = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        // The first token is revoked after the first page.
        if req.header("authorization") == Some("Bearer tok-1") && page > 1 {
            return Resp::status(401, "token expired");
        }
        let ids: Vec<_> = if page <= 3 { ((page - 1) * 5 + 1..=page * 5).map(record).collect() } else { vec![] };
        Resp::json(json!({"items": ids}))
    });
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: orders
    source:
      type: http_api
      url: "{}"
      auth: {{type: oauth2, token_url: "{}", client_id: weir, client_secret: "${{env:CLIENT_SECRET}}"}}
      paginate: {{type: page}}
    sink: {{type: lake, table: raw.orders}}
"#,
        api.url("/orders"),
        api.url("/token")
    );
    let tmp = common::project("api", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    let o = weir_with(dir, &["run", "p", "--date", "2026-03-25"], &[("CLIENT_SECRET", "cl13nt")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("cl13nt"));
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(scalar(dir, "SELECT count(DISTINCT id) FROM raw.orders"), "15");
}

#[test]
fn a_posted_search_fans_out_into_detail_requests() {
    let api = Server::start(|req: &Req| {
        if req.path() == "/search" {
            assert_eq!(req.method, "POST");
            assert!(req.body.contains("\"status\":\"open\""), "{}", req.body);
            let cursor: u64 = req.param("after").and_then(|c| c.parse().ok()).unwrap_or(0);
            let ids: Vec<_> = (cursor + 1..=(cursor + 4).min(12)).map(|i| json!({"id": i})).collect();
            let next = if cursor + 4 < 12 { json!((cursor + 4).to_string()) } else { json!(null) };
            return Resp::json(json!({"hits": ids, "meta": {"next_cursor": next}}));
        }
        let id: u64 = req.path().trim_start_matches("/orders/").parse().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        Resp::json(json!({"order": record(id)}))
    });
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: orders
    source:
      type: http_api
      url: "{}"
      method: POST
      body: '{{"status":"open"}}'
      records: hits
      paginate: {{type: cursor, path: meta.next_cursor, param: after}}
      details: {{url: "{}", records: order, concurrency: 4}}
    sink: {{type: lake, table: raw.orders}}
"#,
        api.url("/search"),
        api.url("/orders/{id}")
    );
    let tmp = common::project("api", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    common::ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(scalar(dir, "SELECT count(DISTINCT id) FROM raw.orders"), "12");
    assert_eq!(scalar(dir, "SELECT customer__name FROM raw.orders WHERE id = 11"), "c11");
    assert_eq!(api.requests().iter().filter(|r| r.path().starts_with("/orders/")).count(), 12);
}

#[test]
fn the_rate_limit_spaces_requests_to_a_host() {
    let api = Server::start(|req: &Req| {
        let page: u64 = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let ids: Vec<_> = if page <= 10 { vec![record(page)] } else { vec![] };
        Resp::json(json!(ids))
    });
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: orders
    source: {{type: http_api, url: "{}", paginate: {{type: page}}, rate_limit: 20, concurrency: 4}}
    sink: {{type: lake, table: raw.orders}}
"#,
        api.url("/orders")
    );
    let tmp = common::project("api", &[("pipelines/p.yaml", &pipeline)]);
    common::ok(tmp.path(), &["run", "p", "--date", "2026-03-25"]);
    let log = api.requests();
    assert_eq!(scalar(tmp.path(), "SELECT count(*) FROM raw.orders"), "10");
    // 11+ requests at 20 per second, even with 4 in flight: at least 10 gaps of 50 ms.
    let span = log.last().unwrap().at - log.first().unwrap().at;
    assert!(log.len() >= 11 && span >= Duration::from_millis(480), "{} requests in {span:?}", log.len());
}
