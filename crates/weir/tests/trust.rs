//! Black-box tests of weir's first promise: a re-run, a retry or a NULL in an odd place never loses, doubles or
//! silently changes a row. Each test reproduces a defect found in review (issue "Trust") through the real binary.

mod common;

use std::sync::{Arc, Mutex};

use common::http::{Req, Resp, Server};
use common::{fails, ok, scalar};
use serde_json::json;

fn csv_rows(dir: &std::path::Path, query: &str) -> Vec<String> {
    ok(dir, &["sql", query, "--format", "csv"]).lines().skip(1).map(str::to_string).collect()
}

#[test]
fn dedupe_keeps_rows_that_differ_only_in_where_a_null_sits() {
    let tmp = common::project(
        "nulls",
        &[
            ("in.csv", "a,b,c\n1,,2\n1,2,\n1,,2\n,2,\n,,2\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: in.csv}\n    steps:\n      - dedupe:\n    checks:\n      - unique: {columns: [a, b, c]}\n    sink: {type: lake, table: silver.t}\n",
            ),
        ],
    );
    let dir = tmp.path();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    // (1,∅,2) twice is one row; (1,2,∅), (∅,2,∅) and (∅,∅,2) are distinct, as in Polars, DuckDB and Spark.
    assert_eq!(
        csv_rows(dir, "SELECT a, b, c FROM silver.t ORDER BY a NULLS LAST, b NULLS FIRST, c NULLS FIRST"),
        ["1,,2", "1,2,", ",,2", ",2,"],
        "{out}"
    );
    assert!(out.contains("1 rows removed"), "{out}");
}

/// A lake table written by two commits whose rows share keys and differ in a value: `dedupe` keeps the first row
/// of each key in the order the table's scan lists its files, the same one on every re-run (it used to depend on
/// which of the scan's partitions answered first: re-runs of one day kept one commit's rows or the other's).
#[test]
fn dedupe_over_a_lake_table_keeps_the_same_rows_on_every_rerun() {
    let rows = |v: &str| {
        let body: String = (0..20_000).map(|i| format!("{i},{v}\n")).collect();
        format!("id,v\n{body}")
    };
    let (first, second) = (rows("first"), rows("second"));
    let tmp = common::project(
        "order",
        &[
            ("a.csv", first.as_str()),
            ("b.csv", second.as_str()),
            (
                "pipelines/land.yaml",
                "version: 1\ntasks:\n  - name: a\n    source: {type: csv, path: a.csv}\n    sink: {type: lake, table: raw.t, format: delta, mode: append}\n  - name: b\n    depends_on: [a]\n    source: {type: csv, path: b.csv}\n    sink: {type: lake, table: raw.t, format: delta, mode: append}\n",
            ),
            (
                "pipelines/clean.yaml",
                "version: 1\ntasks:\n  - name: c\n    source: {type: lake, table: raw.t}\n    steps:\n      - dedupe: [id]\n    sink: {type: lake, table: silver.t, format: delta, mode: overwrite}\n",
            ),
        ],
    );
    let dir = tmp.path();
    // Four files: each day lands both sets of rows.
    ok(dir, &["run", "land", "--date", "2026-03-24"]);
    ok(dir, &["run", "land", "--date", "2026-03-25"]);
    let mut kept = std::collections::BTreeSet::new();
    for _ in 0..12 {
        ok(dir, &["run", "clean", "--date", "2026-03-25"]);
        kept.insert(csv_rows(dir, "SELECT v, count(*) FROM silver.t GROUP BY v ORDER BY v").join(" "));
        assert_eq!(kept.len(), 1, "re-runs kept different rows: {kept:?}");
    }
    assert_eq!(kept.len(), 1, "re-runs kept different rows: {kept:?}");
    let kept = kept.into_iter().next().unwrap();
    assert!(kept == "first,20000" || kept == "second,20000", "rows of both commits mixed: {kept}");
}

#[test]
fn relationship_fails_values_that_do_not_convert_to_the_key_exactly() {
    let pipeline = "version: 1\ntasks:\n  - name: customers\n    source: {type: csv, path: customers.csv}\n    sink: {type: lake, table: silver.customers}\n  - name: orders\n    depends_on: [customers]\n    source: {type: csv, path: orders.csv, schema: {customer_id: double}}\n    checks:\n      - relationship: {column: customer_id, to: silver.customers, field: id}\n    sink: {type: lake, table: silver.orders}\n";
    let tmp = common::project(
        "rel",
        &[
            ("customers.csv", "id\n1\n2\n"),
            ("orders.csv", "order_id,customer_id\n10,1\n11,1.5\n12,2\n13,2.0\n"),
            ("pipelines/p.yaml", pipeline),
        ],
    );
    let dir = tmp.path();
    // 1.5 is no customer id: it must not match customer 1 by being truncated. 2.0 is customer 2.
    let err = fails(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(err.contains("relationship") && err.contains("1 of 4 rows"), "{err}");
    std::fs::write(dir.join("orders.csv"), "order_id,customer_id\n10,1\n12,2\n13,2.0\n").unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "3");
}

/// An API of customers with `updated_at`, filtered server-side by `updated_since` compared as instants (as a real
/// API would), ten records a page.
fn customers_api(data: Arc<Mutex<Vec<(u64, String)>>>) -> Server {
    Server::start(move |req: &Req| {
        let since = req.param("updated_since").unwrap_or_default();
        let since = chrono::DateTime::parse_from_rfc3339(&since).ok();
        let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let rows: Vec<_> = data
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, u)| since.is_none_or(|s| chrono::DateTime::parse_from_rfc3339(u).unwrap() > s))
            .map(|(i, u)| json!({"id": i, "updated_at": u}))
            .collect();
        let chunk: Vec<_> = rows.iter().skip((page - 1) * 10).take(10).cloned().collect();
        Resp::json(json!(chunk))
    })
}

fn incremental_pipeline(api: &Server, sink: &str) -> String {
    format!(
        r#"version: 1
tasks:
  - name: customers
    source:
      type: http_api
      url: "{}"
      paginate: {{type: page, size: 10}}
      incremental: {{cursor_field: updated_at, param: updated_since, initial: "2026-01-01T00:00:00Z"}}
    sink: {sink}
"#,
        api.url("/customers")
    )
}

/// Re-running an incremental interval after its commit reproduces its rows instead of emptying it, and every
/// source record is held once across the intervals.
fn rerun_scenario(format: &str) {
    let data: Arc<Mutex<Vec<(u64, String)>>> =
        Arc::new(Mutex::new((1..=50).map(|i| (i, format!("2026-03-01T10:{:02}:00Z", i))).collect()));
    let api = customers_api(data.clone());
    let sink = format!("{{type: lake, table: raw.customers, partition: \"date={{{{ ds }}}}\", format: {format}}}");
    let tmp = common::project("api", &[("pipelines/p.yaml", &incremental_pipeline(&api, &sink))]);
    let dir = tmp.path();
    let count = |date: &str| scalar(dir, &format!("SELECT count(*) FROM raw.customers WHERE date = '{date}'"));
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    assert_eq!(count("2026-03-01"), "50");
    {
        let mut d = data.lock().unwrap();
        d.extend((51..=60).map(|i| (i, format!("2026-03-02T09:{:02}:00Z", i - 50))));
        d[9].1 = "2026-03-02T08:00:00Z".into(); // record 10 is updated late
    }
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(count("2026-03-02"), "11");
    // A retry after the commit (or `weir clear`) reads the day's window again.
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(count("2026-03-02"), "11", "a re-run of the newest day emptied it");
    // An older day re-run reads its own window, up to where the next day started: record 10 is now the next
    // day's, so the first day holds 49 and no record is in two days.
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    assert_eq!(count("2026-03-01"), "49", "a re-run of an older day emptied it or read later days' rows");
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.customers"), "60");
    assert_eq!(scalar(dir, "SELECT count(DISTINCT id) FROM raw.customers"), "60");
    // The next day still starts past the newest cursor.
    data.lock().unwrap().push((61, "2026-03-03T07:00:00Z".into()));
    ok(dir, &["run", "p", "--date", "2026-03-03"]);
    assert_eq!(count("2026-03-03"), "1");
}

#[test]
fn rerunning_an_incremental_day_reproduces_it_parquet() {
    rerun_scenario("parquet");
}

#[test]
fn rerunning_an_incremental_day_reproduces_it_delta() {
    rerun_scenario("delta");
}

#[test]
fn an_incremental_source_cannot_replace_what_it_did_not_read() {
    let api = customers_api(Arc::new(Mutex::new(Vec::new())));
    for sink in [
        "{type: lake, table: raw.customers}",
        "{type: lake, table: raw.customers, partition_by: [id]}",
        "{type: lake, table: raw.customers, mode: overwrite, format: delta}",
    ] {
        let tmp = common::project("api", &[("pipelines/p.yaml", &incremental_pipeline(&api, sink))]);
        let dir = tmp.path();
        let err = fails(dir, &["validate"]);
        assert!(err.contains("incremental source reads only the rows past its cursor"), "{sink}: {err}");
        assert!(err.contains("p.yaml:"), "names the file: {err}");
        let err = fails(dir, &["run", "p", "--date", "2026-03-01"]);
        assert!(err.contains("mode: append"), "{sink}: {err}");
    }
    for sink in [
        "{type: lake, table: raw.customers, mode: append}",
        "{type: lake, table: raw.customers, partition: \"date={{ ds }}\"}",
    ] {
        let tmp = common::project("api", &[("pipelines/p.yaml", &incremental_pipeline(&api, sink))]);
        ok(tmp.path(), &["validate"]);
    }
}

#[test]
fn rest_cursors_compare_as_instants_not_text() {
    // "…:50:00.5Z" is half a second after "…:50:00Z", though it sorts before it as text.
    let data: Arc<Mutex<Vec<(u64, String)>>> =
        Arc::new(Mutex::new((1..=50).map(|i| (i, format!("2026-03-01T10:{:02}:00Z", i))).collect()));
    let api = customers_api(data.clone());
    let sink = "{type: lake, table: raw.customers, partition: \"date={{ ds }}\"}";
    let tmp = common::project("api", &[("pipelines/p.yaml", &incremental_pipeline(&api, sink))]);
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    data.lock().unwrap().push((51, "2026-03-01T10:50:00.5Z".into()));
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(csv_rows(dir, "SELECT id FROM raw.customers WHERE date = '2026-03-02'"), ["51"]);
    // and the cursor committed is that record's, so the next day asks past it
    ok(dir, &["run", "p", "--date", "2026-03-03"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.customers WHERE date = '2026-03-03'"), "0");
    let asked: Vec<String> = api.requests().iter().filter_map(|r| r.param("updated_since")).collect();
    assert_eq!(asked.last().map(String::as_str), Some("2026-03-01T10:50:00.5Z"), "{asked:?}");
}

#[test]
fn rows_quarantined_on_the_way_to_sqlite_land_in_its_rejects_table_and_counts_add_up() {
    let tmp = common::project(
        "lite",
        &[
            ("prices.csv", "sku,price\na,1.5\nb,cheap\nc,2.25\nd,-1\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: prices.csv, infer_types: false}\n    steps:\n      - cast: {columns: {price: double}, on_error: quarantine}\n    checks:\n      - range: {column: price, min: 0, on_fail: quarantine}\n    sink: {type: sqlite, path: marts.db, table: prices, mode: replace}\n",
            ),
        ],
    );
    let dir = tmp.path();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("4 rows read") && out.contains("2 written"), "the summary's counts must add up:\n{out}");
    let db = rusqlite::Connection::open(dir.join("marts.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM prices"), 2);
    assert_eq!(count("SELECT count(*) FROM prices__rejected"), 2);
    let rules: Vec<(String, String)> = db
        .prepare("SELECT rule, value FROM prices__rejected ORDER BY value")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rules[0].0.contains("range") && rules[0].1 == "-1.0", "{rules:?}");
    assert!(rules[1].0.contains("cast") && rules[1].1 == "cheap", "{rules:?}");
    // A re-run replaces the table and its rejects: nothing doubles.
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(count("SELECT count(*) FROM prices"), 2);
    assert_eq!(count("SELECT count(*) FROM prices__rejected"), 2);
}

#[test]
fn hourly_delta_appends_under_serve_write_every_interval_once() {
    let day = (chrono::Utc::now().date_naive() - chrono::Duration::days(2)).format("%Y-%m-%d").to_string();
    let pipeline = format!(
        r#"version: 1
schedule: {{cron: "0 * * * *", start_date: {day}, end_date: {day}, catchup: true}}
tasks:
  - name: land
    source: {{type: csv, path: in.csv}}
    steps:
      - derive: {{hour: "'{{{{ data_interval_start }}}}'"}}
    sink: {{type: lake, table: raw.events, format: delta, mode: append}}
"#
    );
    let tmp = common::project("hourly", &[("in.csv", "id\n1\n"), ("pipelines/hourly.yaml", &pipeline)]);
    let dir = tmp.path();
    let (mut daemon, _) = common::serve(dir, "127.0.0.1:0");
    let store = dir.join(".weir/weir.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let finished = loop {
        let done: Option<(i64, i64)> = rusqlite::Connection::open(&store).ok().and_then(|c| {
            c.query_row(
                "SELECT count(*) FILTER (WHERE state IN ('success', 'failed')), count(*) FILTER (WHERE state = 'failed') FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
        });
        if done.is_some_and(|(n, _)| n >= 24) || std::time::Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    daemon.kill().expect("stop the daemon");
    let _ = daemon.wait();
    assert_eq!(finished, Some((24, 0)), "24 hourly runs, none failed");
    // Every hour appended its row: none skipped as "already committed" for the day, none twice.
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.events"), "24");
    assert_eq!(scalar(dir, "SELECT count(DISTINCT hour) FROM raw.events"), "24");
}

#[test]
fn a_contract_rejects_a_lossy_conversion_instead_of_storing_a_changed_value() {
    let pipeline = "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: \"in_{{ ds }}.csv\"}\n    sink: {type: lake, table: silver.t, partition: \"date={{ ds }}\", contract: discard_value}\n";
    let tmp = common::project(
        "lossy",
        &[
            ("in_2026-03-24.csv", "id,amount\n1,10\n"),
            // amount is a bigint in the table; 19.99 does not fit it, 20.0 does.
            ("in_2026-03-25.csv", "id,amount\n2,19.99\n3,20.0\n"),
            ("pipelines/p.yaml", pipeline),
        ],
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(
        csv_rows(dir, "SELECT id, amount FROM silver.t WHERE date = '2026-03-25' ORDER BY id"),
        ["2,", "3,20"],
        "19.99 must not be stored as 19"
    );
    assert_eq!(csv_rows(dir, "SELECT value FROM silver.t__rejected"), ["19.99"]);
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline.replace("discard_value", "discard_row")).unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(csv_rows(dir, "SELECT id FROM silver.t WHERE date = '2026-03-25'"), ["3"]);
}

#[test]
fn dedupe_keep_last_does_not_let_a_null_order_win() {
    let tmp = common::project(
        "last",
        &[
            ("in.csv", "id,updated_at,v\n1,2026-03-01,old\n1,,unknown\n1,2026-03-05,new\n2,,only\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: in.csv}\n    steps:\n      - dedupe: {columns: [id], order_by: updated_at, keep: last}\n    sink: {type: lake, table: silver.t}\n",
            ),
        ],
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(csv_rows(dir, "SELECT id, v FROM silver.t ORDER BY id"), ["1,new", "2,only"]);
}

fn pg_project(db: &str, pipeline: &str) -> tempfile::TempDir {
    let tmp = common::project("pg", &[("pipelines/p.yaml", pipeline)]);
    let url = common::pg::server().url(db);
    std::fs::write(
        tmp.path().join("weir.yaml"),
        format!("version: 1\nname: pg\nlake:\n  root: lake\nconnections:\n  wh: {{type: postgres, url: \"{url}\"}}\n"),
    )
    .unwrap();
    tmp
}

#[test]
fn postgres_merge_refuses_ambiguous_keys_and_replace_keeps_the_table() {
    let server = common::pg::server();
    let db = server.database("trust_merge");
    let pipeline = |sink: &str| {
        format!("version: 1\ntasks:\n  - name: load\n    source: {{type: csv, path: in.csv}}\n    steps:\n      - cast: {{columns: {{amount: double}}, on_error: quarantine}}\n    sink: {{type: postgres, connection: wh, table: public.prices, {sink}}}\n")
    };
    let tmp = pg_project(&db, &pipeline("mode: merge, keys: [sku]"));
    let dir = tmp.path();
    let csv = |rows: &str| std::fs::write(dir.join("in.csv"), format!("sku,amount\n{rows}")).unwrap();
    let psql = |sql: &str| server.psql(&db, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    // A NULL key would never match: inserted again on every run. It is refused, naming it.
    csv("a,1\n,2\n");
    let err = fails(dir, &["run", "p", "--date", "2026-03-01"]);
    assert!(err.contains("NULL") && err.contains("(sku)"), "{err}");
    // Two rows for one key: which wins? Refused, naming the key.
    csv("a,1\nb,2\na,3\n");
    let err = fails(dir, &["run", "p", "--date", "2026-03-01"]);
    assert!(err.contains("more than once") && err.contains("(a)"), "{err}");
    csv("a,1\nb,2\nc,oops\n");
    let out = ok(dir, &["run", "p", "--date", "2026-03-01"]);
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    assert_eq!(psql("SELECT sku, amount FROM prices ORDER BY sku"), "a|1\nb|2", "{out}");
    // The value that did not cast is in the quarantine table of the same database, once per run (merge adds).
    assert_eq!(psql("SELECT count(*), min(value) FROM prices__rejected"), "2|oops");

    // replace keeps the table: its grants, indexes and the views on it survive.
    psql("CREATE ROLE reader; GRANT SELECT ON prices TO reader; CREATE INDEX prices_sku ON prices (sku); CREATE VIEW cheap AS SELECT sku FROM prices WHERE amount < 2");
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline("mode: replace")).unwrap();
    csv("x,1\ny,5\n");
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(psql("SELECT sku FROM cheap"), "x");
    assert_eq!(psql("SELECT has_table_privilege('reader', 'prices', 'SELECT')"), "t");
    assert_eq!(psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'prices_sku'"), "1");
    // replace also replaces the rejects: this run had none.
    assert_eq!(psql("SELECT count(*) FROM prices__rejected"), "0");
}

#[test]
fn a_daemon_killed_during_a_shell_task_never_lets_two_attempts_run_at_once() {
    let day = (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let pipeline = format!(
        "version: 1\nschedule: {{cron: \"@daily\", start_date: {day}, end_date: {day}, catchup: true}}\ntasks:\n  - name: slow\n    shell: \"echo start >> attempts.log; sleep 4; echo end >> attempts.log\"\n"
    );
    let tmp = common::project("killed", &[("pipelines/daily.yaml", &pipeline)]);
    let dir = tmp.path();
    let log = || std::fs::read_to_string(dir.join("attempts.log")).unwrap_or_default();
    let (mut daemon, _) = common::serve(dir, "127.0.0.1:0");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !log().contains("start") {
        assert!(std::time::Instant::now() < deadline, "the task never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    daemon.kill().expect("kill -9 the daemon"); // its shell task's process group lives on
    let _ = daemon.wait();
    let (mut daemon, _) = common::serve(dir, "127.0.0.1:0");
    let store = dir.join(".weir/weir.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let done: Option<i64> = rusqlite::Connection::open(&store)
            .ok()
            .and_then(|c| c.query_row("SELECT count(*) FROM runs WHERE state = 'success'", [], |r| r.get(0)).ok());
        if done == Some(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not succeed after the restart");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Long enough for the first attempt's command to finish, had it survived.
    std::thread::sleep(std::time::Duration::from_secs(5));
    daemon.kill().expect("stop the daemon");
    let _ = daemon.wait();
    let lines: Vec<String> = log().lines().map(str::to_string).collect();
    assert_eq!(lines, ["start", "start", "end"], "the lost attempt's command must not finish beside its retry");
}

#[test]
fn backfill_and_clear_address_every_interval_of_an_hourly_pipeline() {
    let day = "2026-03-01";
    let pipeline = format!(
        "version: 1\nschedule: {{cron: \"0 * * * *\", start_date: {day}, end_date: {day}, catchup: false}}\ntasks:\n  - name: t\n    shell: \"echo $WEIR_DATA_INTERVAL_START >> hours.log\"\n"
    );
    let tmp = common::project("hourly", &[("pipelines/hourly.yaml", &pipeline)]);
    let dir = tmp.path();
    let hours = || -> Vec<String> {
        let mut l: Vec<String> =
            std::fs::read_to_string(dir.join("hours.log")).unwrap_or_default().lines().map(str::to_string).collect();
        l.sort();
        l
    };
    // A backfill of one day runs all 24 of its intervals, not the first one.
    ok(dir, &["backfill", "hourly", "--from", day, "--to", day]);
    assert_eq!(hours().len(), 24, "{:?}", hours());
    assert_eq!(hours()[14], "2026-03-01T14:00:00");
    // Clearing the 14:00 run re-runs 14:00, not midnight.
    ok(dir, &["clear", "hourly", "t", "--date", "2026-03-01T14:00", "--wait"]);
    let h = hours();
    assert_eq!(h.iter().filter(|l| l.as_str() == "2026-03-01T14:00:00").count(), 2, "{h:?}");
    assert_eq!(h.iter().filter(|l| l.as_str() == "2026-03-01T00:00:00").count(), 1, "{h:?}");
    // `weir runs` lists every run of the day, not only the first.
    let runs = ok(dir, &["runs", "hourly", "--date", day]);
    assert_eq!(runs.lines().filter(|l| l.contains("success")).count(), 24, "{runs}");
    let one = ok(dir, &["runs", "hourly", "--date", "2026-03-01T14:00"]);
    assert!(one.contains("success") && one.contains("t "), "{one}");
    // A bare date is ambiguous here: the error says how to name an interval.
    let err = fails(dir, &["clear", "hourly", "t", "--date", day]);
    assert!(err.contains("24 intervals") && err.contains("2026-03-01T00:00"), "{err}");
    // A manual run names its interval too: the 2 March 09:00 hour, not that day's first.
    ok(dir, &["trigger", "hourly", "--date", "2026-03-02T09:00", "--wait"]);
    assert_eq!(hours().last().map(String::as_str), Some("2026-03-02T09:00:00"), "{:?}", hours());
}

#[test]
fn a_parquet_append_killed_half_way_is_rolled_back_and_its_retry_adds_each_row_once() {
    let tmp = common::project(
        "append",
        &[
            ("in.csv", "id,day\n1,a\n2,b\n3,a\n4,b\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: in.csv}\n    sink: {type: lake, table: raw.events, partition_by: [day], mode: append}\n",
            ),
        ],
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    // The next run dies after its first file moved in: the table shows a partial append...
    common::crashes_at(dir, &["run", "p", "--date", "2026-03-02"], "lake_append_after_first_file");
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.events"), "6", "one of the two new files is visible");
    // ...which the retry rolls back before it appends again: each row twice (two runs), never three times.
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(
        csv_rows(dir, "SELECT id, count(*) FROM raw.events GROUP BY id ORDER BY id"),
        ["1,2", "2,2", "3,2", "4,2"]
    );
}

#[test]
fn a_crash_between_the_target_and_its_rejects_loses_no_reject_on_retry() {
    let tmp = common::project(
        "rejects",
        &[
            ("in.csv", "id,amount\n1,5\n2,-1\n3,7\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: in.csv}\n    checks:\n      - range: {column: amount, min: 0, on_fail: quarantine}\n    sink: {type: lake, table: silver.t, format: delta, mode: append}\n",
            ),
        ],
    );
    let dir = tmp.path();
    common::crashes_at(dir, &["run", "p", "--date", "2026-03-01"], "task_after_target_commit");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t"), "2");
    // The retry of the interval replaces its append (not skipped, not doubled) and commits the reject.
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t"), "2");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t__rejected"), "1");
}

#[test]
fn a_partition_swap_killed_between_its_renames_loses_nothing() {
    let tmp = common::project(
        "swap",
        &[
            ("in_2026-03-01.csv", "id\n1\n2\n"),
            ("in_2026-03-02.csv", "id\n3\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: \"in_{{ ds }}.csv\"}\n    sink: {type: lake, table: raw.t, partition: \"date={{ ds }}\"}\n",
            ),
        ],
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    std::fs::write(dir.join("in_2026-03-01.csv"), "id\n10\n").unwrap();
    // The portable swap (for file systems without an atomic exchange) dies after moving the old partition aside.
    common::crashes_at(
        dir,
        &["run", "p", "--date", "2026-03-01"],
        "lake_swap_without_exchange,lake_swap_between_renames",
    );
    assert!(!dir.join("lake/raw/t/date=2026-03-01").exists(), "the crash came between the renames");
    // The next write to the table (another day) puts the old partition back before it cleans up.
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(csv_rows(dir, "SELECT id FROM raw.t ORDER BY id"), ["1", "2", "3"]);
}

#[test]
fn postgres_lookback_reads_a_late_committed_row_and_a_merge_holds_it_once() {
    let server = common::pg::server();
    let db = server.database("trust_lookback");
    let psql = |sql: &str| server.psql(&db, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    psql("CREATE TABLE events (id int, updated_at timestamptz); INSERT INTO events SELECT g, timestamptz '2026-03-01 10:00:00+00' + g * interval '1 minute' FROM generate_series(1, 10) g");
    let pipeline = |sink: &str| {
        format!("version: 1\ntasks:\n  - name: events\n    source: {{type: postgres, connection: wh, table: events, incremental: {{cursor_field: updated_at, lookback: 600}}}}\n    sink: {sink}\n")
    };
    let tmp = pg_project(&db, &pipeline("{type: lake, table: raw.events, partition: \"date={{ ds }}\"}"));
    let dir = tmp.path();
    // Re-read rows would be held twice by any write but a merge.
    let err = fails(dir, &["validate"]);
    assert!(err.contains("lookback") && err.contains("mode: merge"), "{err}");
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        pipeline("{type: lake, table: raw.events, format: delta, mode: merge, keys: [id]}"),
    )
    .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    // A transaction that began before the first read commits after it, with an older cursor value.
    psql("INSERT INTO events VALUES (11, timestamptz '2026-03-01 10:05:30+00'); INSERT INTO events VALUES (12, timestamptz '2026-03-01 11:00:00+00')");
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.events"), "12");
    assert_eq!(scalar(dir, "SELECT count(DISTINCT id) FROM raw.events"), "12");
}

#[test]
fn two_appends_of_one_run_to_one_parquet_table_keep_both() {
    let tmp = common::project(
        "two",
        &[
            ("a.csv", "id\n1\n2\n"),
            ("b.csv", "id\n3\n"),
            (
                "pipelines/p.yaml",
                "version: 1\ntasks:\n  - name: a\n    source: {type: csv, path: a.csv}\n    sink: {type: lake, table: raw.t, mode: append}\n  - name: b\n    depends_on: [a]\n    source: {type: csv, path: b.csv}\n    sink: {type: lake, table: raw.t, mode: append}\n",
            ),
        ],
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    // Both tasks share the run's id; their files must not share a name (the second would replace the first).
    assert_eq!(csv_rows(dir, "SELECT id FROM raw.t ORDER BY id"), ["1", "2", "3"]);
}
