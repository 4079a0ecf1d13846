//! Black-box tests of the orchestrator: `weir serve` catching up a daily schedule, retrying, alerting a webhook and
//! answering its REST API; a daemon killed mid-run and started again; backfill, clear, trigger and logs from the CLI.
//! The metadata store is read directly (SQLite) to check what ran how often.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{call, Resp, Server};
use common::{fails, ok};

fn days_ago(n: i64) -> String {
    (chrono::Utc::now().date_naive() - chrono::Duration::days(n)).format("%Y-%m-%d").to_string()
}

/// `weir serve` on a free port; returns the child and the API's base URL.
fn serve(dir: &Path) -> (Child, String) {
    common::serve(dir, "127.0.0.1:0")
}

fn db(dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.join(".weir/weir.db")).expect("open the store");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    conn
}

fn query(dir: &Path, sql: &str) -> Vec<String> {
    let conn = db(dir);
    let mut st = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = st.column_count();
    let rows = st
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i) {
                    Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                    Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                    _ => String::new(),
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.map(|r| r.unwrap_or_default()).collect()
}

/// Polls until `sql` returns `want` (first row), or fails after `secs`.
fn wait_for(dir: &Path, sql: &str, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if dir.join(".weir/weir.db").exists() {
            let got = query(dir, sql);
            if got.first().map(String::as_str) == Some(want) {
                return;
            }
            assert!(Instant::now() < deadline, "waited {secs} s for `{sql}` to be {want}, it is {got:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

#[test]
fn serve_catches_up_daily_runs_in_order_retries_alerts_and_answers_its_api() {
    let hook = Server::start(|_| Resp::json(serde_json::json!({"ok": true})));
    let doomed_day = days_ago(3);
    let pipeline = format!(
        r#"version: 1
schedule: {{cron: "@daily", start_date: {start}, catchup: true, max_active_runs: 1}}
retries: {{max: 1, delay: 1s}}
deadline: 1s
alerts:
  - {{on: [failure, retry, deadline], webhook: "{hook}"}}
tasks:
  - name: extract
    shell: "echo $WEIR_DS >> order.log"
  - name: flaky
    depends_on: [extract]
    shell: "test -f flaky-{{{{ ds }}}} || {{ touch flaky-{{{{ ds }}}}; echo transient >&2; exit 3; }}"
  - name: doomed
    depends_on: [flaky]
    shell: "test {{{{ ds }}}} != {doomed_day} || {{ echo disk full >&2; exit 1; }}"
  - name: publish
    depends_on: [doomed]
    shell: "echo $WEIR_DS >> published.log"
  - name: cleanup
    depends_on: [publish]
    trigger_rule: all_done
    shell: "echo $WEIR_DS >> cleanup.log"
"#,
        start = days_ago(4),
        hook = hook.url("/hook"),
    );
    let tmp = common::project("orch", &[("pipelines/daily.yaml", &pipeline)]);
    let dir = tmp.path();
    let (mut daemon, api) = serve(dir);
    // Four missed days (start_date up to yesterday), one at a time.
    wait_for(dir, "SELECT count(*) FROM runs WHERE state IN ('success', 'failed')", "4", 90);
    let days: Vec<String> = (1..=4).rev().map(days_ago).collect();
    assert_eq!(lines(&dir.join("order.log")), days, "every missed day, oldest first, once");
    assert_eq!(
        query(dir, "SELECT logical_date || ' ' || state FROM runs ORDER BY interval_start"),
        days.iter().map(|d| format!("{d} {}", if *d == doomed_day { "failed" } else { "success" })).collect::<Vec<_>>()
    );
    // The flaky task succeeded on its retry every day; the doomed day's downstream did not run, its clean-up did.
    assert_eq!(
        query(dir, "SELECT DISTINCT try_number || ' ' || state FROM task_instances WHERE task = 'flaky'"),
        ["2 success"]
    );
    let published = lines(&dir.join("published.log"));
    assert_eq!(published.len(), 3);
    assert!(!published.contains(&doomed_day));
    assert_eq!(lines(&dir.join("cleanup.log")).len(), 4);
    assert_eq!(
        query(dir, &format!("SELECT t.state FROM task_instances t JOIN runs r ON r.id = t.run WHERE r.logical_date = '{doomed_day}' AND t.task = 'publish'")),
        ["upstream_failed"]
    );

    // Alerts: a retry for each flaky first attempt and for the doomed one, and one failure with the error and log.
    let alerts: Vec<serde_json::Value> =
        hook.requests().iter().map(|r| serde_json::from_str(&r.body).expect("JSON alert")).collect();
    let failures: Vec<&serde_json::Value> = alerts.iter().filter(|a| a["event"] == "failure").collect();
    assert_eq!(failures.len(), 1, "{alerts:?}");
    let failure = failures[0];
    assert_eq!(failure["task"], "doomed");
    assert_eq!(failure["logical_date"], doomed_day.as_str());
    assert!(failure["error"].as_str().is_some_and(|e| e.contains("disk full")), "{failure}");
    assert!(failure["text"].as_str().is_some_and(|t| t.contains("doomed") && t.contains(&doomed_day)), "{failure}");
    assert!(failure["log_excerpt"].as_str().is_some_and(|l| l.contains("attempt 2 of 2")), "{failure}");
    assert_eq!(alerts.iter().filter(|a| a["event"] == "retry").count(), 5, "{alerts:?}");
    // Every caught-up day ended long after its deadline (1 s after its interval): one deadline alert each.
    let late: Vec<&str> =
        alerts.iter().filter(|a| a["event"] == "deadline").filter_map(|a| a["logical_date"].as_str()).collect();
    assert_eq!(late, days, "{alerts:?}");

    // The REST API: reads are open on loopback, changes need the token.
    let (status, body) = call("GET", &format!("{api}/api/pipelines"), &[], "");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(listed["pipelines"][0]["name"], "daily");
    assert_eq!(listed["pipelines"][0]["schedule"], "@daily");
    let (status, body) = call("GET", &format!("{api}/api/openapi.json"), &[], "");
    assert!(status == 200 && body.contains("\"/api/runs/{id}/tasks/{task}/clear\""), "{body}");
    let trigger = format!("{api}/api/pipelines/daily/trigger");
    let (status, body) = call("POST", &trigger, &[], r#"{"date": "2026-01-15"}"#);
    assert_eq!(status, 401, "{body}");
    let token = std::fs::read_to_string(dir.join(".weir/api-token")).expect("token file");
    let auth = format!("Bearer {}", token.trim());
    let (status, body) = call("POST", &trigger, &[("Authorization", &auth)], r#"{"date": "2026-01-15"}"#);
    assert_eq!(status, 200, "{body}");
    let run: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let id = run["run"]["id"].as_i64().expect("run id");
    wait_for(dir, &format!("SELECT state FROM runs WHERE id = {id}"), "success", 60);
    let (status, body) = call("GET", &format!("{api}/api/runs/{id}/tasks/flaky/logs"), &[], "");
    assert_eq!(status, 200);
    let logs: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(logs["attempts"].as_array().map(Vec::len), Some(2), "{logs}");
    let (status, body) = call("POST", &trigger, &[("Authorization", &auth)], r#"{"date": "2026-01-15"}"#);
    assert!(status == 409 && body.contains("already has a run"), "{status} {body}");
    daemon.kill().expect("stop the daemon");
    let _ = daemon.wait();
}

#[test]
fn a_killed_daemon_resumes_without_a_duplicate_or_a_lost_day() {
    let pipeline = format!(
        r#"version: 1
schedule: {{cron: "@daily", start_date: {start}, catchup: true, max_active_runs: 1}}
tasks:
  - name: slow
    shell: "sleep 2 && echo $WEIR_DS >> slow.log"
  - name: count
    depends_on: [slow]
    shell: "echo $WEIR_DS >> count.log"
"#,
        start = days_ago(3)
    );
    let tmp = common::project("orch", &[("pipelines/daily.yaml", &pipeline)]);
    let dir = tmp.path();
    let (mut daemon, _) = serve(dir);
    // Kill it while the first day's slow task runs.
    wait_for(dir, "SELECT count(*) FROM task_instances WHERE state = 'running'", "1", 60);
    daemon.kill().expect("kill the daemon");
    let _ = daemon.wait();
    let (mut daemon, _) = serve(dir);
    wait_for(dir, "SELECT count(*) FROM runs WHERE state = 'success'", "3", 90);
    daemon.kill().expect("stop the daemon");
    let _ = daemon.wait();
    let days: Vec<String> = (1..=3).rev().map(days_ago).collect();
    assert_eq!(lines(&dir.join("count.log")), days, "each day once, in order");
    assert_eq!(query(dir, "SELECT count(*) FROM runs"), ["3"], "no interval created twice or lost");
    // Every task instance succeeded exactly once; the attempt the kill interrupted is recorded as lost.
    assert_eq!(
        query(
            dir,
            "SELECT max(n) FROM (SELECT count(*) AS n FROM attempts WHERE state = 'success' GROUP BY run, task)"
        ),
        ["1"]
    );
    let lost = query(dir, "SELECT task || ': ' || error FROM attempts WHERE state = 'failed'");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].starts_with("slow: lost: the process running it"), "{lost:?}");
}

#[test]
fn backfill_clear_trigger_and_logs_from_the_cli() {
    let pipeline = r#"version: 1
tasks:
  - name: land
    source: {type: csv, path: "in/{{ ds }}.csv"}
    sink: {type: lake, table: raw.sales, partition: "date={{ ds }}"}
  - name: report
    depends_on: [land]
    shell: "echo report $WEIR_DS >> report.log"
  - name: notify
    depends_on: [report]
    shell: "echo notify $WEIR_DS"
"#;
    let tmp = common::project("orch", &[("pipelines/sales.yaml", pipeline)]);
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("in")).expect("mkdir");
    for (d, rows) in [("2026-03-01", 2), ("2026-03-02", 3), ("2026-03-03", 1)] {
        let body: String = (0..rows).map(|i| format!("{i},{d}\n")).collect();
        std::fs::write(dir.join(format!("in/{d}.csv")), format!("id,day\n{body}")).expect("write");
    }
    let plan = ok(dir, &["backfill", "sales", "--from", "2026-03-01", "--to", "2026-03-03", "--dry-run"]);
    assert!(plan.contains("2026-03-02 create") && plan.contains("dry run"), "{plan}");
    let out = ok(dir, &["backfill", "sales", "--from", "2026-03-01", "--to", "2026-03-03"]);
    assert!(out.contains("✓ 2026-03-03 success"), "{out}");
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.sales"), "6");
    // Again: nothing to do; with --reprocess all, every task runs again and the table is the same.
    assert!(ok(dir, &["backfill", "sales", "--from", "2026-03-01", "--to", "2026-03-03"]).contains("nothing to run"));
    let out = ok(dir, &["backfill", "sales", "--from", "2026-03-02", "--to", "2026-03-02", "--reprocess", "all"]);
    assert!(out.contains("2026-03-02 rerun all (was success)"), "{out}");
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.sales"), "6");

    // clear re-runs a task and what depends on it, not what it depends on.
    ok(dir, &["clear", "sales", "report", "--date", "2026-03-01", "--wait"]);
    assert_eq!(
        query(dir, "SELECT task || ' ' || try_number FROM task_instances WHERE run = 1 ORDER BY task"),
        ["land 1", "notify 2", "report 2"]
    );
    let logs = ok(dir, &["logs", "sales", "notify", "--date", "2026-03-01"]);
    assert!(logs.contains("== attempt 2 (success") && logs.contains("notify 2026-03-01"), "{logs}");
    let logs = ok(dir, &["logs", "sales", "land", "--date", "2026-03-01"]);
    assert!(logs.contains("2 rows read, 2 rows written to raw.sales"), "{logs}");

    // A failing date fails the command and says where to look; trigger refuses a date that has a run.
    let err = fails(dir, &["trigger", "sales", "--date", "2026-03-04", "--wait"]);
    assert!(err.contains("runs failed for 2026-03-04"), "{err}");
    let logs = ok(dir, &["logs", "sales", "land", "--date", "2026-03-04"]);
    assert!(logs.contains("2026-03-04.csv"), "the log names the missing file: {logs}");
    let err = fails(dir, &["trigger", "sales", "--date", "2026-03-01"]);
    assert!(err.contains("already has a run for 2026-03-01 (success)") && err.contains("weir clear"), "{err}");
    let runs = ok(dir, &["runs", "sales", "--date", "2026-03-04"]);
    assert!(runs.contains("failed") && runs.contains("upstream_failed"), "{runs}");
    let status = ok(dir, &["status"]);
    assert!(status.contains("sales") && status.contains("2026-03-04 failed"), "{status}");
    assert!(fails(dir, &["logs", "sales", "land", "--date", "2026-03-09"]).contains("no run for 2026-03-09"));
}

#[test]
fn bad_schedules_are_reported_with_their_line() {
    let tmp = common::project(
        "orch",
        &[(
            "pipelines/p.yaml",
            "version: 1\nschedule:\n  cron: \"0 25 * * *\"\ntasks:\n  - name: a\n    shell: \"true\"\n    trigger_rule: all_sucess\n    pool: warehouse\n",
        )],
    );
    let err = fails(tmp.path(), &["validate"]);
    assert!(err.contains("p.yaml:8") && err.contains("pool `warehouse`, which weir.yaml does not declare"), "{err}");
    assert!(err.contains("p.yaml:3") && err.contains("not a cron expression"), "{err}");
    assert!(err.contains("unknown trigger rule `all_sucess`") && err.contains("all_success"), "{err}");
}

/// Waits (up to 90 s) until the one run in a PostgreSQL store succeeded.
fn wait_for_the_run(pg: &dyn Fn(&str) -> String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while pg("SELECT state FROM runs") != "success" {
        assert!(
            Instant::now() < deadline,
            "the run did not finish: {}",
            pg("SELECT task, state, worker FROM task_instances")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_workers_share_a_postgres_store_and_survive_one_being_killed() {
    let server = common::pg::server();
    let db = server.database("orchestrator");
    let tasks: String =
        (1..=8).map(|i| format!("  - name: t{i}\n    shell: \"sleep 1 && echo $WEIR_TASK >> done.log\"\n")).collect();
    let tmp = common::project("orch", &[("pipelines/wide.yaml", &format!("version: 1\ntasks:\n{tasks}"))]);
    let dir = tmp.path();
    std::fs::write(
        dir.join("weir.yaml"),
        format!("version: 1\nname: orch\nlake:\n  root: lake\norchestrator:\n  store: \"{}\"\n", server.url(&db)),
    )
    .expect("write weir.yaml");
    ok(dir, &["trigger", "wide", "--date", "2026-03-01"]);
    let pg = |sql: &str| server.psql(&db, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut a = common::spawn(dir, &["worker", "--parallelism", "1"]);
    let mut b = common::spawn(dir, &["worker", "--parallelism", "1"]);
    let a_id = format!("%:{}", a.id());
    // Kill worker A while it runs its second task.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done_by_a = pg(&format!("SELECT count(*) FROM attempts WHERE worker LIKE '{a_id}' AND state = 'success'"));
        let running_a =
            pg(&format!("SELECT count(*) FROM task_instances WHERE worker LIKE '{a_id}' AND state = 'running'"));
        if done_by_a != "0" && running_a == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker A never ran a second task: runs {}; tasks {}; attempts {}",
            pg("SELECT id, state FROM runs"),
            pg("SELECT task, state, worker FROM task_instances"),
            pg("SELECT task, state, worker, error FROM attempts")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill().expect("kill worker A");
    let _ = a.wait();
    wait_for_the_run(&pg);
    b.kill().expect("stop worker B");
    let _ = b.wait();
    // Each task succeeded exactly once; both workers did some; A's interrupted task was re-queued and done by B.
    assert_eq!(pg("SELECT count(*), count(DISTINCT task) FROM attempts WHERE state = 'success'"), "8|8");
    assert_eq!(pg("SELECT count(DISTINCT worker) FROM attempts WHERE state = 'success'"), "2");
    let lost = pg("SELECT task || ' ' || error FROM attempts WHERE state = 'failed'");
    assert!(lost.contains("lost: the process running it") && !lost.contains('\n'), "{lost}");
    let lost_task = lost.split(' ').next().unwrap_or_default().to_string();
    let redo =
        pg(&format!("SELECT worker LIKE '{a_id}' FROM attempts WHERE task = '{lost_task}' AND state = 'success'"));
    assert_eq!(redo, "f", "worker B finished the task A lost");
    let mut done = lines(&dir.join("done.log"));
    done.sort();
    done.dedup();
    assert_eq!(done.len(), 8);
}

#[test]
fn a_pool_limits_concurrency_across_two_postgres_workers() {
    let server = common::pg::server();
    let db = server.database("pools");
    // Six tasks share a two-slot pool; two more are free. Each pooled task logs when it starts and ends.
    let mut tasks = String::new();
    for i in 1..=6 {
        tasks.push_str(&format!(
            "  - name: load{i}\n    pool: warehouse\n    shell: \"echo \\\"+ $(date +%s%N)\\\" >> pool.log && sleep 1 && echo \\\"- $(date +%s%N)\\\" >> pool.log\"\n"
        ));
    }
    for i in 1..=2 {
        tasks.push_str(&format!("  - name: free{i}\n    shell: \"sleep 1\"\n"));
    }
    let tmp = common::project("orch", &[("pipelines/loads.yaml", &format!("version: 1\ntasks:\n{tasks}"))]);
    let dir = tmp.path();
    std::fs::write(
        dir.join("weir.yaml"),
        format!(
            "version: 1\nname: orch\nlake:\n  root: lake\norchestrator:\n  store: \"{}\"\n  pools:\n    warehouse: 2\n",
            server.url(&db)
        ),
    )
    .expect("write weir.yaml");
    ok(dir, &["validate"]);
    ok(dir, &["trigger", "loads", "--date", "2026-03-01"]);
    let pg = |sql: &str| server.psql(&db, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    // Each worker could run three tasks at once: only the pool keeps the loads to two.
    let mut a = common::spawn(dir, &["worker", "--parallelism", "3"]);
    let mut b = common::spawn(dir, &["worker", "--parallelism", "3"]);
    wait_for_the_run(&pg);
    let status = ok(dir, &["status"]);
    for w in [&mut a, &mut b] {
        w.kill().expect("stop a worker");
        let _ = w.wait();
    }
    assert!(
        status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["warehouse", "2", "0", "0"]),
        "{status}"
    );
    let mut events: Vec<(u128, i32)> = lines(&dir.join("pool.log"))
        .iter()
        .map(|l| {
            let (sign, at) = l.split_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            (at.parse().unwrap_or_else(|_| panic!("bad time in {l}")), if sign == "+" { 1 } else { -1 })
        })
        .collect();
    assert_eq!(events.len(), 12, "every pooled task ran once");
    // An end sorts before a start at the same instant.
    events.sort();
    let (mut now, mut most) = (0, 0);
    for (_, delta) in events {
        now += delta;
        most = most.max(now);
    }
    assert_eq!(most, 2, "the pool's two slots were used, never more");
}

#[test]
fn sensors_wait_for_files_and_partitions_and_http_tasks_call_out() {
    let hook = Server::start(|r| {
        if r.path() == "/broken" {
            Resp::status(500, "the dashboard is down")
        } else {
            Resp::json(serde_json::json!({"refreshed": true}))
        }
    });
    let pipeline = format!(
        r#"version: 1
tasks:
  - name: wait_file
    sensor: {{file: "landing/{{{{ ds }}}}.csv", poke_interval: 1s, timeout: 30s}}
  - name: land
    depends_on: [wait_file]
    source: {{type: csv, path: "landing/{{{{ ds }}}}.csv"}}
    sink: {{type: lake, table: raw.sales, partition: "date={{{{ ds }}}}"}}
  - name: wait_partition
    depends_on: [land]
    sensor: {{table: raw.sales, partition: "date={{{{ ds }}}}", poke_interval: 1s, timeout: 5s}}
  - name: refresh
    depends_on: [wait_partition]
    http: {{url: "{hook}", body: '{{"ds": "{{{{ ds }}}}"}}', headers: {{X-Token: "${{env:HOOK_TOKEN}}"}}}}
"#,
        hook = hook.url("/refresh")
    );
    let tmp = common::project("orch", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "p", "--date", "2026-03-01"])
        .current_dir(dir)
        .env("WEIR_LOG", "warn")
        .env("HOOK_TOKEN", "s3cret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir run");
    // The file lands while the sensor waits.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::create_dir_all(dir.join("landing")).expect("mkdir");
    std::fs::write(dir.join("landing/2026-03-01.csv.tmp"), "id,amount\n1,2.5\n2,4.0\n").expect("write");
    std::fs::rename(dir.join("landing/2026-03-01.csv.tmp"), dir.join("landing/2026-03-01.csv")).expect("rename");
    let out = run.wait_with_output().expect("wait for weir run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "the sensor did not wait");
    assert!(text.contains("wait_file") && text.contains("2026-03-01.csv is there"), "{text}");
    assert!(text.contains("raw.sales has rows in date=2026-03-01"), "{text}");
    let calls = hook.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].body, r#"{"ds": "2026-03-01"}"#);
    assert_eq!(calls[0].header("x-token"), Some("s3cret"));

    // A file that never comes: the sensor gives up after its timeout and says what it waited for.
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        "version: 1\ntasks:\n  - name: wait_file\n    sensor: {file: \"landing/{{ ds }}.csv\", poke_interval: 1s, timeout: 2s}\n",
    )
    .expect("write");
    let err = fails(dir, &["run", "p", "--date", "2026-03-02"]);
    assert!(err.contains("timed out after 3 pokes") && err.contains("landing/2026-03-02.csv"), "{err}");
    // An endpoint that answers 500: the task fails with the status and the body.
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        format!("version: 1\ntasks:\n  - name: refresh\n    http: {{url: \"{}\"}}\n", hook.url("/broken")),
    )
    .expect("write");
    let err = fails(dir, &["run", "p", "--date", "2026-03-02"]);
    assert!(err.contains("500") && err.contains("the dashboard is down"), "{err}");
}

/// `weir run` runs a task through the scheduler's executor: it retries as the pipeline says (showing the wait),
/// stops a retry for an error that cannot pass, honours the task's `timeout` (killing the command), and
/// `--no-retries` fails at the first failure.
#[test]
fn weir_run_retries_and_times_out_as_the_scheduler_does() {
    let pipeline = r#"version: 1
tasks:
  - name: flaky
    retries: {max: 2, delay: 1s}
    shell: {command: "n=$(cat tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > tries; [ $n -ge 3 ]"}
  - name: slow
    timeout: 2s
    retries: 0
    shell: {command: "sleep 30; touch slept"}
  - name: broken_sql
    retries: {max: 3, delay: 1s}
    sql: "SELECT * FROM raw.nowhere"
    sink: {type: lake, table: silver.nothing}
"#;
    let tmp = common::project("run_retries", &[("pipelines/p.yaml", pipeline)]);
    let dir = tmp.path();

    // Two failures, then success on the third attempt; each wait is shown.
    let out = ok(dir, &["run", "p", "--date", "2026-03-01", "--task", "flaky"]);
    assert_eq!(std::fs::read_to_string(dir.join("tries")).unwrap().trim(), "3", "three attempts:\n{out}");
    assert_eq!(out.matches("retrying in").count(), 2, "each retry says when:\n{out}");
    assert!(out.contains("attempt 1 of 3 failed"), "{out}");

    // --no-retries: the first failure is the last.
    std::fs::remove_file(dir.join("tries")).unwrap();
    let out = fails(dir, &["run", "p", "--date", "2026-03-01", "--task", "flaky", "--no-retries"]);
    assert_eq!(std::fs::read_to_string(dir.join("tries")).unwrap().trim(), "1", "one attempt:\n{out}");

    // The timeout ends the attempt and kills the command.
    let started = Instant::now();
    let out = fails(dir, &["run", "p", "--date", "2026-03-01", "--task", "slow"]);
    assert!(started.elapsed() < Duration::from_secs(20), "stopped at its timeout, not after the command");
    assert!(out.contains("timed out after 2 s"), "{out}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!dir.join("slept").exists(), "the timed-out command was killed");

    // A query on a table that does not exist fails the same way every time: no retry, no wait.
    let started = Instant::now();
    let out = fails(dir, &["run", "p", "--date", "2026-03-01", "--task", "broken_sql"]);
    assert!(!out.contains("retrying in"), "{out}");
    assert!(out.contains("not retried"), "says why there is no retry:\n{out}");
    assert!(started.elapsed() < Duration::from_secs(20));
}
