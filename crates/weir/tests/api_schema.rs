//! The REST API against its own OpenAPI document, driven by schemathesis (from PyPI, in a virtualenv made by
//! `.ci/install-schemathesis`): every operation with generated parameters and bodies, first without the token (no
//! 5xx, and no action may happen), then with it (no 5xx; status codes, content types and bodies as documented).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::http::call;

const PIPELINE: &str = "version: 1\nschedule: {cron: \"@daily\", start_date: 2026-03-01, catchup: false}\ntasks:\n  - name: t\n    shell: {command: \"true\"}\n";

fn schemathesis() -> PathBuf {
    let venv = common::installed(
        "WEIR_SCHEMATHESIS_VENV",
        "schemathesis-venv",
        None,
        "install-schemathesis",
        "the API tests need schemathesis from PyPI",
    );
    venv.join("bin/schemathesis")
}

/// Runs schemathesis against the daemon at `base`; returns whether it found nothing and what it printed.
fn run(dir: &Path, base: &str, token: Option<&str>, checks: &str) -> (bool, String) {
    // Realistic values for the path parameters, so that operations reach past their 404.
    std::fs::write(dir.join("schemathesis.toml"), "[parameters]\n\"path.name\" = \"p\"\n\"path.task\" = \"t\"\n")
        .unwrap();
    let mut c = Command::new(schemathesis());
    c.arg("--config-file").arg(dir.join("schemathesis.toml")).arg("run").arg(format!("{base}/api/openapi.json"));
    c.args(["--checks", checks, "--max-examples", "25", "--seed", "20261202", "--no-color"]);
    if let Some(token) = token {
        c.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = c.current_dir(dir).output().expect("run schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_api_answers_as_its_openapi_document_says_and_does_nothing_without_the_token() {
    let tmp = common::project("api_schema", &[("pipelines/p.yaml", PIPELINE)]);
    let dir = tmp.path();
    let (mut daemon, base) = common::serve(dir, "127.0.0.1:0");
    let token = std::fs::read_to_string(dir.join(".weir/api-token")).unwrap().trim().to_string();
    let auth = format!("Bearer {token}");

    // Without the token: nothing breaks, and nothing is done.
    let (ok, text) = run(dir, &base, None, "not_a_server_error");
    assert!(ok, "schemathesis without the token:\n{text}");
    let (_, runs) = call("GET", &format!("{base}/api/runs"), &[("Authorization", &auth)], "");
    assert!(!runs.contains("\"manual\"") && !runs.contains("\"backfill\""), "a run was made without the token: {runs}");
    let (_, pipeline) = call("GET", &format!("{base}/api/pipelines/p"), &[("Authorization", &auth)], "");
    assert!(pipeline.contains("\"paused\":false"), "paused without the token: {pipeline}");

    // With it: every answer as documented.
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let (ok, text) = run(dir, &base, Some(&token), checks);
    assert!(ok, "schemathesis with the token:\n{text}");
    assert!(!text.contains(&token), "the token is printed");
    daemon.kill().ok();
    daemon.wait().ok();
}
