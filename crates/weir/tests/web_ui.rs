//! End-to-end tests of the web UI: a real headless Chromium (Debian's, through chromedriver) against `weir serve`
//! on loopback. They open every page, trigger a run and watch it turn green without reloading (the page's own
//! refresh), read a live and a finished log, backfill two dates from the form, log in when the daemon listens
//! beyond loopback, and save a screenshot of each page under `target/tmp/ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A project with the demo's lake pipeline (run once, so the lake has tables and quality results) and a shell
/// pipeline whose first task prints, waits and prints again.
fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    common::ok(tmp.path(), &["init", dir.to_str().expect("utf-8 path")]);
    let pipeline = dir.join("pipelines/daily_sales.yaml");
    let text = std::fs::read_to_string(&pipeline).expect("read the demo pipeline");
    // A check on the gold table, so the quality page has results to show.
    let text = text.replacen(
        "  - name: daily_revenue\n",
        "  - name: daily_revenue\n    checks:\n      - expression: {condition: \"orders > 0\", name: every_country_has_orders}\n",
        1,
    );
    std::fs::write(&pipeline, text).expect("write the demo pipeline");
    std::fs::write(
        dir.join("pipelines/ops.yaml"),
        "version: 1\nowner: data-platform\ntags: [ops, nightly]\ndescription: Shell tasks with a live log\ntasks:\n\
         \x20 - name: extract\n    shell: \"echo 'extract started'; sleep 6; echo 'extracted 3 rows'\"\n\
         \x20 - name: transform\n    depends_on: [extract]\n    shell: \"echo transformed\"\n\
         \x20 - name: publish\n    depends_on: [transform]\n    shell: \"echo published for $WEIR_DS\"\n",
    )
    .expect("write ops.yaml");
    // A stream for `weir serve` to run: the example fraud stream on the built-in generator (it ends by itself).
    std::fs::create_dir_all(dir.join("streams")).expect("streams folder");
    std::fs::write(dir.join("streams/users.csv"), weir_stream::generator::users_csv(500)).expect("users.csv");
    let example = include_str!("../../../examples/streams/fraud.yaml");
    let (start, end) = (example.find("outputs:").expect("outputs"), example.find("checkpoint:").expect("checkpoint"));
    let stream =
        format!("{}outputs:\n  alerts: [{{type: delta, table: fraud.alerts}}]\n{}", &example[..start], &example[end..])
            .replace(
                "source: {type: ndjson, path: payments.ndjson}",
                "source: {type: generator, events: 20000, cards: 500, seed: 3}",
            );
    std::fs::write(dir.join("streams/fraud.yaml"), stream).expect("write the stream");
    common::ok(&dir, &["run", "daily_sales", "--date", "2026-03-25"]);
    tmp
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

struct Browser {
    client: Client,
    driver: Child,
    shots: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        common::install_debian(&["chromium", "chromium-driver"]);
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (Debian's chromium-driver, installed by .ci/install-debian)");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium",
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]}),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
            }
        };
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Browser { client, driver, shots }
    }

    async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        let el = self.wait_for(css, 10).await;
        el.text().await.unwrap_or_else(|e| panic!("text of {css}: {e}"))
    }

    async fn wait_for(&self, css: &str, secs: u64) -> fantoccini::elements::Element {
        match self.client.wait().at_most(Duration::from_secs(secs)).for_element(Locator::Css(css)).await {
            Ok(el) => el,
            Err(e) => {
                let page = self.client.source().await.unwrap_or_default();
                panic!("no `{css}` within {secs} s ({e}); the page:\n{}", &page[..page.len().min(4000)])
            }
        }
    }

    async fn click(&self, css: &str) {
        self.wait_for(css, 10).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn set(&self, id: &str, value: &str) {
        self.client
            .execute("document.getElementById(arguments[0]).value = arguments[1];", vec![json!(id), json!(value)])
            .await
            .unwrap_or_else(|e| panic!("set #{id}: {e}"));
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "{name}: not a real screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("save screenshot");
    }

    async fn url(&self) -> String {
        self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default()
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A raw HTTP/1.1 POST with no cookie (what a form on another site could send).
fn bare_post(base: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operate_pipelines_from_a_browser() {
    let tmp = project();
    let dir = tmp.path().join("demo");
    let (mut daemon, base) = common::serve(&dir, "127.0.0.1:0");
    let b = Browser::start().await;

    // Pipelines: both listed, with owner and tags; the search narrows the list.
    b.open(&format!("{base}/")).await;
    assert!(b.text("tr[data-pipeline='ops']").await.contains("data-platform"));
    b.wait_for("tr[data-pipeline='daily_sales']", 5).await;
    b.screenshot("pipelines").await;
    b.open(&format!("{base}/?q=nightly")).await;
    b.wait_for("tr[data-pipeline='ops']", 5).await;
    assert!(b.client.find(Locator::Css("tr[data-pipeline='daily_sales']")).await.is_err(), "the search filters");

    // Trigger a run from the pipeline page; the run page follows it live: the log of the running task shows its
    // first line before the task ends, then every task turns green without a reload.
    b.open(&format!("{base}/pipelines/ops")).await;
    b.set("trigger-date", "2026-03-10").await;
    b.click("#trigger").await;
    b.wait_for("tr[data-task='extract'][data-state='running']", 20).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = b.client.find(Locator::Css("pre.log")).await.ok();
        let text = match log {
            Some(el) => el.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if text.contains("extract started") {
            assert!(!text.contains("extracted 3 rows"), "the tail showed the log before the task ended");
            break;
        }
        assert!(Instant::now() < deadline, "the running task's log never showed its first line: {text:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.wait_for("tr[data-task='publish'][data-state='success']", 30).await;
    b.wait_for("#gantt a.bar.s-success[data-task='extract']", 5).await;
    b.screenshot("run").await;
    // A finished task's log.
    b.click("tr[data-task='publish'] a").await;
    assert!(b.text("pre.log").await.contains("published for 2026-03-10"));

    // Backfill two dates from the form; the grid gets their columns, green.
    b.open(&format!("{base}/pipelines/ops")).await;
    b.set("backfill-from", "2026-03-01").await;
    b.set("backfill-to", "2026-03-02").await;
    b.click("#backfill").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        b.open(&format!("{base}/pipelines/ops")).await;
        let green = b.client.find_all(Locator::Css("#grid thead a.col.s-success")).await.map(|v| v.len()).unwrap_or(0);
        if green == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill did not finish: {green} green runs");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(b.client.find_all(Locator::Css("#grid a.cell.s-success")).await.map(|v| v.len()).unwrap_or(0), 9);
    b.wait_for("#graph g.node[data-task='publish'][data-state='success']", 5).await;
    assert!(b.text("pre.file").await.contains("extracted 3 rows"), "the pipeline file is shown");
    b.screenshot("pipeline").await;

    // The lake: tables, then one table's schema, history (with the run that wrote it), lineage and preview.
    b.open(&format!("{base}/lake")).await;
    b.wait_for("tr[data-table='gold.daily_revenue']", 5).await;
    b.screenshot("lake").await;
    b.click("tr[data-table='silver.orders'] a").await;
    assert!(b.text("#schema").await.contains("transaction_id"));
    assert!(b.text("#upstream").await.contains("raw.orders"), "lineage up to the source");
    assert!(b.text("#downstream").await.contains("gold.daily_revenue"));
    b.wait_for("#preview tbody tr", 5).await;
    b.screenshot("table").await;
    b.open(&format!("{base}/lake/gold.daily_revenue")).await;
    b.wait_for("#history tbody tr", 5).await;

    // Quality: the check's result.
    b.open(&format!("{base}/quality")).await;
    assert!(b.text("#checks").await.contains("every_country_has_orders"));
    b.screenshot("quality").await;

    // Streams: the project's stream ran next to the scheduler until its generator ended, with its decisions, alerts
    // per rule and Prometheus metrics.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        b.open(&format!("{base}/streams")).await;
        let row = b.text("tr[data-stream='fraud']").await;
        if row.contains("finished") {
            assert!(row.contains("20,000"), "every event decided: {row}");
            break;
        }
        assert!(!row.contains("failed"), "{row}");
        assert!(Instant::now() < deadline, "the stream did not finish: {row}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rule = b.text("tr[data-rule='big_foreign_amount']").await;
    let alerts: u64 = rule.split_whitespace().last().and_then(|n| n.replace(',', "").parse().ok()).unwrap_or(0);
    assert!(alerts > 0, "the rule's alerts are counted: {rule}");
    b.screenshot("streams").await;
    b.open(&format!("{base}/metrics")).await;
    assert!(b.text("body").await.contains("weir_stream_events_total{stream=\"fraud\"} 20000"));

    // A form posted from elsewhere (no CSRF cookie, foreign origin) changes nothing.
    let answer = bare_post(&base, "/pipelines/ops/pause", "csrf=guess");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    b.open(&format!("{base}/pipelines/ops")).await;
    assert_eq!(b.text("#pause").await, "Pause", "still unpaused");

    b.stop().await;
    let _ = daemon.kill();
    let _ = daemon.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_loopback_the_ui_asks_for_a_login() {
    let tmp =
        common::project("auth", &[("pipelines/p.yaml", "version: 1\ntasks:\n  - name: a\n    shell: \"true\"\n")]);
    let dir = tmp.path();
    let port = free_port();
    let (mut daemon, _) = common::serve(dir, &format!("0.0.0.0:{port}"));
    let base = format!("http://127.0.0.1:{port}");
    let token = std::fs::read_to_string(dir.join(".weir/api-token")).expect("the daemon wrote its token");
    let b = Browser::start().await;
    b.open(&format!("{base}/pipelines/p")).await;
    b.wait_for("#token", 5).await;
    assert!(b.url().await.contains("/login?next=/pipelines/p"), "{}", b.url().await);
    b.screenshot("login").await;
    b.wait_for("#token", 5).await.send_keys("not-the-token").await.expect("type");
    b.click("#login").await;
    assert!(b.text("main").await.contains("That is not the token"));
    b.wait_for("#token", 5).await.send_keys(token.trim()).await.expect("type");
    b.click("#login").await;
    b.wait_for("#grid, #graph", 10).await;
    assert!(b.url().await.ends_with("/pipelines/p"), "back where the login started: {}", b.url().await);
    // The API's reads answer the logged-in browser; without the session they need the token.
    b.open(&format!("{base}/api/pipelines")).await;
    assert!(b.text("body").await.contains("\"name\":\"p\""));
    b.click_logout(&base).await;
    b.open(&format!("{base}/")).await;
    b.wait_for("#token", 5).await;
    b.stop().await;
    let _ = daemon.kill();
    let _ = daemon.wait();
}

impl Browser {
    async fn click_logout(&self, base: &str) {
        self.open(&format!("{base}/")).await;
        self.click("form.logout button").await;
        self.wait_for("#token", 5).await;
    }
}
