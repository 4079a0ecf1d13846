//! Black-box tests of `weir stream`: the example fraud stream over generated payments whose truth is known, from an
//! NDJSON file (the Kafka tests are in `kafka.rs`).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::fraud::{assert_same_ids, file_ids, generate, project, table_ids, wait_until, write_ndjson, EXAMPLE};
use common::{ok, text, weir};
use weir_stream::generator::Payment;

#[test]
fn a_file_stream_flags_every_fraud_and_no_clean_payment_and_sends_late_and_bad_events_aside() {
    let truth = generate(30_000, 1_000, 0.004);
    assert!(truth.fraud.len() > 300 && truth.late.len() > 50, "the generator makes enough of each kind");
    let dir = project(
        1_000,
        "{type: ndjson, path: payments.ndjson}",
        "  alerts: [{type: delta, table: fraud.alerts}]\n  late: [{type: ndjson, path: out/late.ndjson}]\n  invalid: [{type: ndjson, path: out/invalid.ndjson}]",
        "",
    );
    let mut lines: Vec<String> = truth.payments.iter().map(Payment::to_json).collect();
    lines.insert(100, "{\"transaction_id\": \"broken\", \"amount\": ".into());
    lines.insert(200, "{\"transaction_id\":\"no-time\",\"card_id\":\"card-1\",\"amount\":1.0}".into());
    lines
        .insert(300, "{\"transaction_id\":\"bad-amount\",\"amount\":\"a lot\",\"ts\":\"2026-03-25T00:00:00Z\"}".into());
    std::fs::write(dir.path().join("payments.ndjson"), lines.join("\n") + "\n").unwrap();

    let out = ok(dir.path(), &["stream", "fraud.yaml"]);
    assert!(out.contains("stream fraud: 30003 events"), "{out}");
    assert!(out.contains("3 invalid"), "{out}");
    let (alerts, rows) = table_ids(dir.path(), "fraud.alerts");
    assert_eq!(rows, alerts.len(), "no alert twice");
    let missed: Vec<_> = truth.fraud.difference(&alerts).take(5).collect();
    let wrong: Vec<_> = alerts.difference(&truth.fraud).take(5).collect();
    assert!(missed.is_empty() && wrong.is_empty(), "missed fraud {missed:?}; flagged clean {wrong:?}");

    let late: BTreeSet<String> = file_ids(&dir.path().join("out/late.ndjson")).into_iter().collect();
    assert_same_ids(&late, &truth.late, "every late event, and only those, reaches the late output");
    let invalid = std::fs::read_to_string(dir.path().join("out/invalid.ndjson")).unwrap();
    let invalid: Vec<serde_json::Value> = invalid.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        invalid.iter().map(|v| v["_offset"].as_i64().unwrap()).collect::<Vec<_>>(),
        vec![100, 200, 300],
        "line numbers"
    );
    assert!(invalid[1]["error"].as_str().unwrap().contains("no event time"), "{:?}", invalid[1]);
    assert!(invalid[2]["payload"].as_str().unwrap().contains("a lot"), "{:?}", invalid[2]);

    // The feedback loop: labels of every payment, precision and recall per rule.
    let labels: String = truth
        .payments
        .iter()
        .map(|p| {
            format!(
                "{{\"transaction_id\":\"{}\",\"label\":\"{}\"}}\n",
                p.transaction_id,
                if p.label == "fraud" { "fraud" } else { "legit" }
            )
        })
        .collect();
    std::fs::write(dir.path().join("labels.ndjson"), labels).unwrap();
    let report = ok(dir.path(), &["stream", "fraud.yaml", "--report"]);
    let any = report.lines().find(|l| l.trim_start().starts_with("(any rule)")).unwrap_or_else(|| panic!("{report}"));
    assert!(
        any.contains("100.0%") && any.matches("100.0%").count() == 2,
        "precision and recall of all alerts: {report}"
    );
    assert!(
        ok(dir.path(), &["sql", "SELECT count(*) FROM streams.fraud_rule_quality", "-f", "csv"]).contains("\n4"),
        "stored"
    );

    // Run again: it resumes after the last line and writes nothing twice.
    let again = ok(dir.path(), &["stream", "fraud.yaml"]);
    assert!(again.contains("stream fraud: 0 events"), "{again}");
    assert_eq!(table_ids(dir.path(), "fraud.alerts").1, rows);
}

#[test]
fn stream_files_are_checked_with_lines_and_expressions_before_any_event_is_read() {
    let dir = project(10, "{type: ndjson, path: payments.ndjson}", "  alerts: [{type: stdout}]", "");
    write_ndjson(dir.path(), &[]);
    let file = dir.path().join("fraud.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        original.replace("card_2m.payments >= 2", "card_2m.paymnts >= 2").replace("decision: hold", "decision: hodl"),
    )
    .unwrap();
    let o = weir(dir.path(), &["stream", "fraud.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unknown decision `hodl`") && text(&o).contains("fraud.yaml:"), "{}", text(&o));
    std::fs::write(&file, original.replace("card_2m.payments >= 2", "card_2m.paymnts >= 2")).unwrap();
    let o = weir(dir.path(), &["stream", "fraud.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("rule `card_testing`") && text(&o).contains("paymnts"), "{}", text(&o));
    // A window aggregate over a lookup column would rebuild different state on a replay (lookups reload).
    std::fs::write(&file, original.replace("count(distinct country)", "count(distinct users.home_country)")).unwrap();
    let o = weir(dir.path(), &["stream", "fraud.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("window `card_10m`") && text(&o).contains("reads a lookup"), "{}", text(&o));
}

#[test]
fn a_killed_file_stream_resumes_with_the_same_alerts_and_no_duplicate() {
    let truth = generate(150_000, 2_000, 0.0);
    let source = "{type: ndjson, path: payments.ndjson}";
    let outputs = "  alerts: [{type: delta, table: fraud.alerts}]";
    let batch = "batch: {max_events: 400}\n";
    // One run straight through, one killed in the middle and started again.
    let straight = project(2_000, source, outputs, batch);
    write_ndjson(straight.path(), &truth.payments);
    ok(straight.path(), &["stream", "fraud.yaml"]);
    let killed = project(2_000, source, outputs, batch);
    write_ndjson(killed.path(), &truth.payments);
    let mut child = common::spawn(killed.path(), &["stream", "fraud.yaml"]);
    let positions = killed.path().join("lake/_streams/fraud/positions.json");
    wait_until(Duration::from_secs(60), "the stream to commit a few batches", || {
        std::fs::read_to_string(&positions)
            .ok()
            .and_then(|t| t.split(':').nth(1).and_then(|n| n.trim_end_matches('}').parse::<i64>().ok()))
            .is_some_and(|n| n > 20_000)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before = std::fs::read_to_string(&positions).unwrap();
    assert!(!before.contains("150000"), "killed before the end: {before}");
    let out = ok(killed.path(), &["stream", "fraud.yaml"]);
    assert!(out.contains("replayed") || out.contains("events"), "{out}");

    let q = "SELECT transaction_id, decision, rule, card_10m_payments, card_10m_countries, card_2m_payments, round(score, 6) AS score FROM fraud.alerts ORDER BY transaction_id";
    let a = ok(straight.path(), &["sql", q, "-f", "csv"]);
    let b = ok(killed.path(), &["sql", q, "-f", "csv"]);
    assert_eq!(a.lines().count() - 1, truth.fraud.len(), "every fraud flagged once");
    let differ: Vec<(&str, &str)> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).take(5).collect();
    assert!(a == b, "the killed and restarted stream decided exactly as the uninterrupted one: {} vs {} rows; first differences {differ:?}", a.lines().count(), b.lines().count());
}

#[test]
fn validate_checks_the_project_stream_files_with_their_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    ok(tmp.path(), &["init", dir.to_str().unwrap()]);
    std::fs::create_dir_all(dir.join("streams")).unwrap();
    std::fs::write(dir.join("streams/fraud.yaml"), EXAMPLE).unwrap();
    assert!(ok(&dir, &["validate"]).contains("and 1 stream file are valid"));
    std::fs::write(dir.join("streams/fraud.yaml"), EXAMPLE.replace("decision: hold", "decision: hodl")).unwrap();
    let o = weir(&dir, &["validate"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("fraud.yaml:") && text(&o).contains("unknown decision `hodl`"), "{}", text(&o));
}

/// One event dated next year must not move the watermark: it would make every later event of its partition "late"
/// and keep it from the rules (a fraud bypass). It goes to `invalid` with the reason; the next fraud event is
/// escalated. An event that is late still meets the rules that do not need its windows, flagged `late`.
#[test]
fn an_event_from_the_future_cannot_blind_the_rules() {
    let dir = project(
        10,
        "{type: ndjson, path: payments.ndjson}",
        "  alerts: [{type: ndjson, path: out/alerts.ndjson}]\n  late: [{type: ndjson, path: out/late.ndjson}]\n  invalid: [{type: ndjson, path: out/invalid.ndjson}]",
        "",
    );
    let event = |id: &str, card: u64, amount: f64, country: &str, ts: &str| {
        format!(
            "{{\"transaction_id\":\"{id}\",\"card_id\":\"card-{card}\",\"user_id\":\"user-{card}\",\"amount\":{amount},\"country\":\"{country}\",\"merchant\":\"m\",\"ts\":\"{ts}\"}}\n"
        )
    };
    let home = weir_stream::generator::home_country(1);
    let abroad = if home == "US" { "BR" } else { "US" };
    let mut lines = String::new();
    lines.push_str(&event("ok-1", 1, 20.0, home, "2026-03-25T10:00:00Z"));
    lines.push_str(&event("from-the-future", 1, 1.0, home, "2027-12-31T00:00:00Z"));
    lines.push_str(&event("fraud-after", 1, 9000.0, abroad, "2026-03-25T10:01:00Z"));
    lines.push_str(&event("ok-2", 1, 15.0, home, "2026-03-25T10:30:00Z"));
    // Half an hour behind the watermark: late for the windows, not for a rule on the amount and country.
    lines.push_str(&event("late-fraud", 1, 9500.0, abroad, "2026-03-25T10:02:00Z"));
    std::fs::write(dir.path().join("payments.ndjson"), lines).unwrap();

    let out = ok(dir.path(), &["stream", "fraud.yaml"]);
    let alerts = std::fs::read_to_string(dir.path().join("out/alerts.ndjson")).unwrap_or_default();
    let alerts: Vec<serde_json::Value> = alerts.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let alert = |id: &str| alerts.iter().find(|a| a["transaction_id"] == id).cloned();
    let fraud =
        alert("fraud-after").unwrap_or_else(|| panic!("the fraud after the future event was not escalated: {out}"));
    assert_eq!(fraud["decision"], "escalate", "{fraud}");
    assert_eq!(fraud["late"], false, "{fraud}");
    let late = alert("late-fraud").unwrap_or_else(|| panic!("the late fraud was not decided: {alerts:?}"));
    assert_eq!((late["decision"].as_str(), late["late"].as_bool()), (Some("escalate"), Some(true)), "{late}");
    assert!(file_ids(&dir.path().join("out/late.ndjson")).contains(&"late-fraud".to_string()), "still in late");

    let invalid = std::fs::read_to_string(dir.path().join("out/invalid.ndjson")).unwrap();
    assert!(invalid.contains("from-the-future") && invalid.contains("max_future_skew"), "{invalid}");
}

/// `weir serve` with two streams: `/metrics` declares each family once and keeps its samples together, as Prometheus'
/// own text parser (`tests/promcheck`, Go's `expfmt`) demands; it used to repeat every family per stream.
#[test]
fn the_metrics_of_two_streams_pass_prometheus_own_text_parser() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("weir.yaml"), "version: 1\nname: two-streams\nlake:\n  root: lake\n").unwrap();
    std::fs::create_dir_all(dir.join("streams")).unwrap();
    std::fs::write(dir.join("streams/users.csv"), weir_stream::generator::users_csv(200)).unwrap();
    let (start, end) = (EXAMPLE.find("outputs:").unwrap(), EXAMPLE.find("checkpoint:").unwrap());
    for name in ["fraud", "fraud_b"] {
        let stream = format!(
            "{}outputs:\n  alerts: [{{type: delta, table: {name}.alerts}}]\n{}",
            &EXAMPLE[..start],
            &EXAMPLE[end..]
        )
        .replace(
            "source: {type: ndjson, path: payments.ndjson}",
            "source: {type: generator, events: 3000, cards: 200, seed: 5}",
        )
        .replace("name: fraud\n", &format!("name: {name}\n"));
        std::fs::write(dir.join(format!("streams/{name}.yaml")), stream).unwrap();
    }
    let (mut daemon, base) = common::serve(dir, "127.0.0.1:0");
    let mut metrics = String::new();
    wait_until(Duration::from_secs(120), "both streams to finish", || {
        metrics = common::http::call("GET", &format!("{base}/metrics"), &[], "").1;
        ["fraud", "fraud_b"]
            .iter()
            .all(|s| metrics.contains(&format!("weir_stream_events_total{{stream=\"{s}\"}} 3000")))
    });
    let _ = daemon.kill();
    let _ = daemon.wait();
    let checker = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/promcheck");
    let mut go = std::process::Command::new("go")
        .args(["run", "."])
        .current_dir(checker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run go (Prometheus' text parser is a Go library)");
    std::io::Write::write_all(go.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
    let out = go.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{metrics}", String::from_utf8_lossy(&out.stderr));
    let families = String::from_utf8_lossy(&out.stdout);
    assert!(families.contains("weir_stream_events_total 2"), "one family, both streams' samples: {families}");
}

/// A Kafka sink's `options` reach its producer: they used to be applied before weir's own defaults, which then
/// overwrote them (a `linger.ms` in the stream file was silently replaced by 5). A value librdkafka refuses proves
/// the option got through, before any broker is contacted.
#[test]
fn a_kafka_sinks_options_are_not_overwritten_by_weirs_defaults() {
    let dir = project(
        10,
        "{type: ndjson, path: payments.ndjson}",
        "  alerts: [{type: kafka, brokers: \"127.0.0.1:9\", topic: alerts, options: {linger.ms: \"soon\"}}]",
        "",
    );
    write_ndjson(dir.path(), &[]);
    let o = weir(dir.path(), &["stream", "fraud.yaml"]);
    assert!(!o.status.success(), "the producer took linger.ms=soon: {}", text(&o));
    assert!(text(&o).contains("linger.ms"), "{}", text(&o));
}
