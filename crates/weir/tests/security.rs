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
