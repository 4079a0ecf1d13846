//! Black-box tests of `weir stream` on a real Apache Kafka broker (started by the harness, `common::kafka`): the
//! example fraud stream over generated payments whose truth is known, at-least-once across a kill, two processes of
//! one group, exactly-once across a crash at every failpoint and kills at random moments, and a paused process
//! (a zombie) whose partitions moved on while it slept.
//!
//! No test waits on idle time: a run is over when the group has committed the end of every partition
//! (`wait_until_consumed`), and then it is stopped with SIGTERM, which finishes its batch and exits cleanly.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fraud::{assert_same_ids, generate, json_ids, project, table_ids, wait_until, Truth};
use common::kafka::{kafka, Broker};
use weir_stream::generator::Payment;

const CONSUMED: Duration = Duration::from_secs(240);

/// The Delta sink of the alerts.
const DELTA: &str = "{type: delta, table: fraud.alerts}";

/// A project whose stream reads `topic` in `group` and sends its alerts to the Kafka topic `alerts`, then to
/// `more_outputs` (`DELTA` by default).
fn kafka_project(
    broker: &Broker,
    topic: &str,
    group: &str,
    delivery: &str,
    alerts: &str,
    more_outputs: &str,
    options: &str,
) -> tempfile::TempDir {
    project(
        400,
        &format!(
            "{{type: kafka, brokers: \"{}\", topics: [{topic}], group: {group}, options: {{session.timeout.ms: \"3000\"{options}}}}}",
            broker.bootstrap
        ),
        &format!("  alerts: [{{type: kafka, topic: {alerts}}}, {more_outputs}]"),
        &format!("delivery: {delivery}\nbatch: {{max_events: 200}}\n"),
    )
}

fn keyed(payments: &[Payment]) -> Vec<(String, String)> {
    payments.iter().map(|p| (p.card_id.clone(), p.to_json())).collect()
}

/// Topics `NAME-payments` (4 partitions, the generated payments on it, keyed by card) and `NAME-alerts`.
fn topics(broker: &Broker, name: &str, truth: &Truth) -> (String, String) {
    let (payments, alerts) = (format!("{name}-payments"), format!("{name}-alerts"));
    broker.create_topic(&payments, 4);
    broker.create_topic(&alerts, 1);
    broker.produce(&payments, &keyed(&truth.payments));
    (payments, alerts)
}

/// Starts `weir stream fraud.yaml` in `dir`; its stdout is kept for `stop`, its log goes to `stream-INSTANCE.log`.
fn start(dir: &Path, instance: &str, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join(format!("stream-{instance}.log"))).unwrap();
    let mut c = common::command(dir, &["stream", "fraud.yaml", "--instance", instance]);
    c.env("WEIR_LOG", "info").stdout(Stdio::piped()).stderr(log);
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("start weir stream")
}

fn log_of(dir: &Path, instance: &str) -> String {
    std::fs::read_to_string(dir.join(format!("stream-{instance}.log"))).unwrap_or_default()
}

/// Waits until `group` committed the end of `topic`; fails with the logs of the stream's processes otherwise.
fn consumed(broker: &Broker, group: &str, topic: &str, dir: &Path, instances: &[&str]) {
    if let Err(e) = broker.wait_until_consumed(group, topic, CONSUMED) {
        let logs: Vec<String> = instances
            .iter()
            .map(|i| {
                let log = log_of(dir, i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                format!("--- stream {i}, last lines:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
            })
            .collect();
        panic!("{e}\n{}", logs.join("\n"));
    }
}

/// Stops a running stream with SIGTERM and returns its summary; it must exit cleanly.
fn stop(child: Child, dir: &Path, instance: &str) -> String {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = wait_for_exit(child, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "stream {instance} did not stop cleanly: {stdout}\n{}", log_of(dir, instance));
    stdout
}

/// Waits for a process to end, or fails after `limit` (killing it).
fn wait_for_exit(mut child: Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// The number of new events a stream's summary says it decided.
fn events(summary: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_prefix("stream fraud: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {summary}"))
}

/// Every fraud once in the Delta table and, for `read_committed` readers, once on the alerts topic.
fn assert_exactly_once(broker: &Broker, dir: &Path, alerts: &str, truth: &Truth) {
    let on_topic = json_ids(broker.read(alerts));
    let distinct: BTreeSet<String> = on_topic.iter().cloned().collect();
    assert_same_ids(&distinct, &truth.fraud, "the alerts topic holds every fraud and nothing else");
    assert_eq!(on_topic.len(), distinct.len(), "a read_committed reader sees each alert once");
    let (delta, rows) = table_ids(dir, "fraud.alerts");
    assert_same_ids(&delta, &truth.fraud, "the Delta alerts hold every fraud and nothing else");
    assert_eq!(rows, delta.len(), "no Delta alert twice");
}

#[test]
fn at_least_once_loses_no_alert_across_a_kill() {
    let broker = kafka();
    let truth = generate(4_000, 400, 0.0);
    let (payments, alerts) = topics(broker, "alo", &truth);
    let dir = kafka_project(broker, &payments, "alo", "at_least_once", &alerts, DELTA, "");
    let mut first = start(dir.path(), "0", &[]);
    wait_until(Duration::from_secs(120), "some alerts", || dir.path().join("lake/fraud/alerts/_delta_log").exists());
    first.kill().unwrap();
    first.wait().unwrap();
    let second = start(dir.path(), "0", &[]);
    consumed(broker, "alo", &payments, dir.path(), &["0"]);
    let summary = stop(second, dir.path(), "0");
    assert!(summary.contains("stream fraud"), "{summary}");
    let (delta, rows) = table_ids(dir.path(), "fraud.alerts");
    assert_same_ids(&delta, &truth.fraud, "the Delta alerts hold every fraud and nothing else");
    assert_eq!(rows, delta.len(), "Delta commits carry the offsets: no duplicate even after the kill");
    let topic: BTreeSet<String> = json_ids(broker.read(&alerts)).into_iter().collect();
    assert_same_ids(&topic, &truth.fraud, "the alerts topic (at-least-once) lost nothing");
}

#[test]
fn two_processes_of_one_group_split_the_partitions_and_write_each_alert_once() {
    let broker = kafka();
    let truth = generate(6_000, 400, 0.0);
    let (payments, alerts) = topics(broker, "two", &truth);
    let dir = kafka_project(broker, &payments, "two", "exactly_once", &alerts, DELTA, "");
    let a = start(dir.path(), "a", &[]);
    let b = start(dir.path(), "b", &[]);
    consumed(broker, "two", &payments, dir.path(), &["a", "b"]);
    let (sa, sb) = (stop(a, dir.path(), "a"), stop(b, dir.path(), "b"));
    assert_exactly_once(broker, dir.path(), &alerts, &truth);
    assert_eq!(events(&sa) + events(&sb), 6_000, "every event decided once between the two:\n{sa}\n{sb}");
    assert!(!format!("{sa}{sb}").contains("more than one partition"), "keyed by card: no split window key");
}

/// `--until-idle` ends a run once nothing arrived for that long: both processes of a group end after the topic is
/// consumed (the idle clock must not start over at every rebalance), and between them they decided every event.
#[test]
fn until_idle_ends_both_processes_of_a_group() {
    let broker = kafka();
    let truth = generate(3_000, 400, 0.0);
    let (payments, alerts) = topics(broker, "idle", &truth);
    let dir = kafka_project(broker, &payments, "idle", "at_least_once", &alerts, DELTA, "");
    let run = |instance: &str| {
        common::command(dir.path(), &["stream", "fraud.yaml", "--until-idle", "5s", "--instance", instance])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run("a"), run("b"));
    let (a, b) = (wait_for_exit(a, Duration::from_secs(180)), wait_for_exit(b, Duration::from_secs(180)));
    let (sa, sb) = (String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    assert!(a.status.success() && b.status.success(), "{sa}\n{sb}");
    assert_eq!(broker.committed("idle", &payments), broker.ends(&payments), "the topic was consumed");
    assert!(events(&sa) + events(&sb) >= 3_000, "every event decided:\n{sa}\n{sb}");
    let (delta, rows) = table_ids(dir.path(), "fraud.alerts");
    assert_same_ids(&delta, &truth.fraud, "the Delta alerts");
    assert_eq!(rows, delta.len());
}

/// Windows are kept per partition: payments keyed by transaction instead of card put one card's payments on several
/// partitions, and its windows undercount. That cannot be silent: the summary warns and the metrics count it.
#[test]
fn a_topic_not_keyed_by_the_window_key_is_reported() {
    let broker = kafka();
    let truth = generate(3_000, 100, 0.0);
    let (payments, alerts) = ("split-payments", "split-alerts");
    broker.create_topic(payments, 4);
    broker.create_topic(alerts, 1);
    let by_transaction: Vec<(String, String)> =
        truth.payments.iter().map(|p| (p.transaction_id.clone(), p.to_json())).collect();
    broker.produce(payments, &by_transaction);
    let dir = kafka_project(broker, payments, "split", "at_least_once", alerts, DELTA, "");
    let run = start(dir.path(), "0", &[]);
    consumed(broker, "split", payments, dir.path(), &["0"]);
    let summary = stop(run, dir.path(), "0");
    assert!(summary.contains("window keys arrived on more than one partition"), "{summary}");
    assert!(log_of(dir.path(), "0").contains("a window key arrived on two partitions"), "{}", log_of(dir.path(), "0"));
}

/// The points where a crash hurts most, each in turn: outputs written and nothing committed; the Delta table
/// committed and the Kafka transaction not; everything committed and the window state not saved; the window state
/// of some partitions saved and not of others.
#[test]
fn exactly_once_survives_a_crash_at_every_failpoint() {
    let broker = kafka();
    let truth = generate(8_000, 400, 0.0);
    for (i, failpoint) in
        ["stream_before_commit", "stream_between_sink_commits", "stream_after_commit", "stream_mid_checkpoint"]
            .iter()
            .enumerate()
    {
        let name = format!("fp{i}");
        let (payments, alerts) = topics(broker, &name, &truth);
        let dir = kafka_project(broker, &payments, &name, "exactly_once", &alerts, DELTA, "");
        // Frequent checkpoints, so that the crash finds some.
        let file = dir.path().join("fraud.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("checkpoint: {interval: 5s}", "checkpoint: {interval: 100ms}")).unwrap();
        let crashed = start(dir.path(), "0", &[("WEIR_FAILPOINT", &format!("{failpoint}:6"))]);
        let out = wait_for_exit(crashed, Duration::from_secs(180));
        assert!(
            !out.status.success() && log_of(dir.path(), "0").contains("WEIR_FAILPOINT"),
            "{failpoint} ended the first run: {}",
            log_of(dir.path(), "0")
        );
        let again = start(dir.path(), "0", &[]);
        consumed(broker, &name, &payments, dir.path(), &["0"]);
        stop(again, dir.path(), "0");
        assert_exactly_once(broker, dir.path(), &alerts, &truth);
    }
}

#[test]
fn exactly_once_survives_kills_at_random_moments() {
    let broker = kafka();
    let truth = generate(20_000, 400, 0.0);
    let (payments, alerts) = topics(broker, "kill", &truth);
    let dir = kafka_project(broker, &payments, "kill", "exactly_once", &alerts, DELTA, "");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    eprintln!("kill moments from seed {seed}");
    let mut state = seed as u64 | 1;
    for round in 0..3 {
        let mut child = start(dir.path(), "0", &[]);
        // Wait until this run committed something (a fact), then kill it 0-1.5 s later, wherever it is.
        let before = broker.committed("kill", &payments).values().sum::<i64>();
        wait_until(Duration::from_secs(120), "a commit", || {
            broker.committed("kill", &payments).values().sum::<i64>() > before
        });
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_millis(state % 1_500));
        child.kill().unwrap();
        child.wait().unwrap();
        eprintln!("round {round}: killed at {:?}", broker.committed("kill", &payments));
    }
    let last = start(dir.path(), "0", &[]);
    consumed(broker, "kill", &payments, dir.path(), &["0"]);
    stop(last, dir.path(), "0");
    assert_exactly_once(broker, dir.path(), &alerts, &truth);
}

/// A process stalls between writing a batch and committing it for longer than `max.poll.interval.ms`: the group
/// gives its partitions to the other process, which decides them again and commits. When the stalled process
/// wakes, none of its late writes may land: not in Delta, not in PostgreSQL, not on the alerts topic, and the
/// committed offsets must not move back.
/// The sinks commit in the order of the outputs, and the first to refuse stops the batch: one test has PostgreSQL
/// refuse first, the other Delta.
#[test]
fn a_process_that_stalled_past_the_poll_interval_is_fenced_by_postgres_when_it_wakes() {
    zombie_is_fenced("zombie_pg", true);
}

#[test]
fn a_process_that_stalled_past_the_poll_interval_is_fenced_by_delta_when_it_wakes() {
    zombie_is_fenced("zombie_delta", false);
}

fn zombie_is_fenced(name: &str, postgres_first: bool) {
    let broker = kafka();
    let pg = common::pg::server();
    let db = pg.database(name);
    let truth = generate(6_000, 400, 0.0);
    let (payments, alerts) = topics(broker, name, &truth);
    let postgres = format!("{{type: postgres, url: \"{}\", table: fraud_alerts}}", pg.url(&db));
    let outputs = if postgres_first { format!("{postgres}, {DELTA}") } else { format!("{DELTA}, {postgres}") };
    let dir =
        kafka_project(broker, &payments, name, "exactly_once", &alerts, &outputs, ", max.poll.interval.ms: \"4000\"");
    // The zombie starts alone, takes every partition and stalls before committing its 3rd batch.
    let zombie = start(dir.path(), "zombie", &[("WEIR_FAILPOINT", "stream_stall_before_commit:3:15s")]);
    wait_until(Duration::from_secs(120), "the stall", || log_of(dir.path(), "zombie").contains("WEIR_FAILPOINT"));
    let heir = start(dir.path(), "heir", &[]);
    consumed(broker, name, &payments, dir.path(), &["zombie", "heir"]);
    let ends = broker.ends(&payments);
    // The zombie wakes and tries to commit what it wrote before the stall.
    wait_until(Duration::from_secs(120), "the zombie to wake and be fenced", || {
        log_of(dir.path(), "zombie").contains("fenced")
    });
    stop(heir, dir.path(), "heir");
    let z = wait_for_exit_or_stop(zombie, dir.path());
    eprintln!("zombie: {z}");
    assert_eq!(broker.committed(name, &payments), ends, "the committed offsets never moved back");
    assert_exactly_once(broker, dir.path(), &alerts, &truth);
    let rows = pg.psql(&db, "SELECT transaction_id FROM fraud_alerts").unwrap();
    let pg_rows: Vec<String> = rows.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    let pg_ids: BTreeSet<String> = pg_rows.iter().cloned().collect();
    assert_same_ids(&pg_ids, &truth.fraud, "the PostgreSQL alerts hold every fraud");
    assert_eq!(pg_rows.len(), pg_ids.len(), "no PostgreSQL alert twice");
}

/// Stops a process that may have ended by itself already; returns what it printed.
fn wait_for_exit_or_stop(mut child: Child, dir: &Path) -> String {
    if child.try_wait().unwrap().is_none() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    let out = wait_for_exit(child, Duration::from_secs(120));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        log_of(dir, "zombie").lines().rev().take(5).collect::<Vec<_>>().join("\n")
    )
}
