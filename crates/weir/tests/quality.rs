//! Black-box tests of data quality: checks, quarantine and schema contracts, run through the `weir` binary on a
//! small project, as the data quality issue describes its "done when" scenario.

mod common;

use common::{fails, ok, scalar};

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    common::project("q", files)
}

const DAY1: &str = "order_id,customer_id,amount,currency,ordered_at\n\
1,10,12.50,EUR,2026-03-25 10:00:00\n\
2,,30.00,USD,2026/03/25 11:00:00\n\
3,12,-5.00,EUR,2026-03-25 12:00:00\n\
3,12,-5.00,EUR,2026-03-25 12:00:00\n\
4,13,8.00,XXX,25.03.2026\n";

const PIPELINE: &str = r#"version: 1
tasks:
  - name: orders
    source: {type: csv, path: "landing/orders_{{ ds }}.csv"}
    steps:
      - parse_dates: {columns: [ordered_at], formats: ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S"]}
    checks:
      - not_null: {columns: [customer_id], severity: warn}
      - unique: {columns: [order_id], severity: warn}
      - range: {column: amount, min: 0, on_fail: quarantine}
      - accepted_values: {column: currency, values: [EUR, USD, GBP], severity: warn}
      - row_count: {min: 1}
      - sql: {query: "SELECT * FROM this WHERE amount > 1000", name: no_huge_orders}
    sink: {type: lake, table: silver.orders, partition: "date={{ ds }}"}
"#;

#[test]
fn warn_checks_log_quarantine_keeps_rejected_rows_with_reason_and_line() {
    let tmp = project(&[("landing/orders_2026-03-25.csv", DAY1), ("pipelines/p.yaml", PIPELINE)]);
    let dir = tmp.path();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("check WARN not_null(customer_id)") && out.contains("1 of 5 rows fail"), "{out}");
    assert!(out.contains("check WARN unique(order_id)"), "{out}");
    assert!(out.contains("check QUAR range(amount)"), "{out}");
    assert!(out.contains("check ok   no_huge_orders"), "{out}");
    assert!(out.contains("rows quarantined by check range(amount)"), "{out}");
    assert!(out.contains("values nulled by step parse_dates"), "{out}");
    // The two negative amounts left the output; the unparsed date stayed, as null.
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "3");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders WHERE ordered_at IS NULL"), "1");
    // Every rejected row is in the quarantine with its reason, original values and where it came from.
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders__rejected"), "3");
    let rows = ok(
        dir,
        &[
            "sql",
            "SELECT rule, action, column_name, value, source_line, reason, record FROM silver.orders__rejected ORDER BY source_line, rule",
            "--format",
            "csv",
        ],
    );
    assert!(
        rows.contains("check range(amount),row_quarantined,amount,-5.0,4,\"`amount` is outside [0, inf]\""),
        "{rows}"
    );
    assert!(rows.contains(",5,") && rows.contains("\"\"order_id\"\":3"), "{rows}");
    assert!(
        rows.contains("step parse_dates (line 6),value_nulled,ordered_at,25.03.2026,6,\"matches none of the formats"),
        "{rows}"
    );
    assert!(rows.lines().all(|l| !l.contains("_weir_source")), "hidden columns leak into records: {rows}");
    // Results are stored and queryable.
    let q = ok(dir, &["quality", "silver.orders", "--format", "csv"]);
    assert!(q.contains("not_null(customer_id),warn,warned,1,5"), "{q}");
    assert!(q.contains("range(amount),error,quarantined,2,5"), "{q}");
    // Re-running the date replaces its rejects instead of adding to them.
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders__rejected"), "3");
    assert_eq!(scalar(dir, "SELECT count(DISTINCT run_id) FROM _weir.check_results"), "2");
}

#[test]
fn an_error_check_stops_the_load_and_the_target_keeps_its_previous_state() {
    let tmp = project(&[("landing/orders_2026-03-25.csv", DAY1), ("pipelines/p.yaml", PIPELINE)]);
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    let strict = PIPELINE.replace("{columns: [customer_id], severity: warn}", "[customer_id]");
    std::fs::write(dir.join("pipelines/p.yaml"), strict).unwrap();
    std::fs::write(dir.join("landing/orders_2026-03-25.csv"), DAY1.replace("1,10,", "1,,")).unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(
        err.contains("p.yaml:8: task `orders`: check `not_null(customer_id)` (line 8) failed: 2 of 5 rows fail"),
        "{err}"
    );
    assert!(err.contains("nothing was committed"), "{err}");
    // The earlier load is intact, with its customer 10.
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders WHERE customer_id = 10"), "1");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders__rejected"), "3");
    let q = ok(dir, &["quality", "silver.orders", "--format", "csv"]);
    assert!(q.contains("not_null(customer_id),error,failed,2,5"), "{q}");
}

#[test]
fn schema_drift_is_reported_evolve_adds_columns_and_freeze_fails_with_a_diff() {
    let pipeline = "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: \"in_{{ ds }}.csv\"}\n    sink: {type: lake, table: silver.t, partition: \"date={{ ds }}\"}\n";
    let tmp = project(&[
        ("in_2026-03-24.csv", "id,amount,flag\n1,10,true\n"),
        ("in_2026-03-25.csv", "id,amount,flag,coupon\n2,20,false,SPRING\n"),
        ("in_2026-03-26.csv", "id,amount,flag,coupon\n3,abc,true,X\n"),
        ("pipelines/p.yaml", pipeline),
    ]);
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("+ coupon: Utf8 (added)") && out.contains("schema version 2 recorded"), "{out}");
    // The day written before the column existed reads it as null.
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t WHERE coupon IS NULL"), "1");
    assert_eq!(scalar(dir, "SELECT sum(amount) FROM silver.t"), "30");
    let diff = ok(dir, &["schema", "diff", "silver.t"]);
    assert!(diff.contains("version 1 -> 2") && diff.contains("+ coupon: Utf8 (added)"), "{diff}");
    // A retyped column (amount became text) is not a widening: evolve refuses it.
    let err = fails(dir, &["run", "p", "--date", "2026-03-26"]);
    assert!(err.contains("~ amount: Int64 -> Utf8 (retyped)") && err.contains("`amount` (Int64 -> Utf8)"), "{err}");
    // Frozen: the new column is refused with expected vs found.
    let frozen = pipeline.replace("partition: \"date={{ ds }}\"}", "partition: \"date={{ ds }}\", contract: freeze}");
    std::fs::write(dir.join("pipelines/p.yaml"), frozen).unwrap();
    std::fs::write(dir.join("in_2026-03-27.csv"), "id,amount,flag,coupon,channel\n4,5,true,X,web\n").unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-27"]);
    assert!(
        err.contains("+ channel: Utf8 (added)")
            && err.contains("expected: id Int64, amount Int64, flag Boolean, coupon Utf8"),
        "{err}"
    );
    assert!(err.contains("contract is `freeze`"), "{err}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t"), "2");
}

#[test]
fn validate_reports_checks_on_missing_columns_and_bad_sql() {
    let pipeline = r#"version: 1
tasks:
  - name: orders
    source: {type: csv, path: "landing/orders.csv"}
    steps:
      - rename: {amount: total}
    checks:
      - not_null: [custmer_id]
      - range: {column: amount, min: 0}
      - expression: "total >>> 0"
      - sql: "SELEC * FROM this"
    sink: {type: lake, table: silver.orders}
"#;
    let tmp = project(&[("landing/orders.csv", DAY1), ("pipelines/p.yaml", pipeline)]);
    let err = fails(tmp.path(), &["validate"]);
    assert!(
        err.contains("p.yaml:8:") && err.contains("no output column `custmer_id`") && err.contains("customer_id"),
        "{err}"
    );
    assert!(err.contains("p.yaml:9:") && err.contains("no output column `amount`"), "{err}");
    assert!(err.contains("p.yaml:10:") && err.contains("not a valid SQL expression"), "{err}");
    assert!(err.contains("p.yaml:11:") && err.contains("SQL does not parse"), "{err}");
}

#[test]
fn discard_contracts_keep_the_table_schema_and_quarantine_what_does_not_fit() {
    let pipeline = "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: \"in_{{ ds }}.csv\"}\n    sink: {type: lake, table: silver.t, partition: \"date={{ ds }}\", contract: discard_row}\n";
    let tmp = project(&[
        ("in_2026-03-24.csv", "id,amount,flag\n1,10,true\n"),
        // A new column (set on one row), a text column where amount was a number, and flag missing.
        ("in_2026-03-25.csv", "id,amount,coupon\n2,20,\n3,abc,\n4,7,SPRING\n5,8,\n"),
        ("pipelines/p.yaml", pipeline),
    ]);
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("+ coupon: Utf8 (added)") && out.contains("the table keeps its schema"), "{out}");
    assert!(out.contains("2 rows quarantined by contract discard_row"), "{out}");
    // Rows 2 and 5 fit (amount converts, flag reads as null); 3 (amount 'abc') and 4 (a coupon) are quarantined.
    assert_eq!(scalar(dir, "SELECT string_agg(CAST(id AS VARCHAR), '-' ORDER BY id) FROM silver.t"), "1-2-5");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t WHERE flag IS NULL"), "2");
    let schema = ok(dir, &["schema", "show", "silver.t"]);
    assert!(!schema.contains("coupon") && schema.contains("amount"), "{schema}");
    let rows = ok(
        dir,
        &[
            "sql",
            "SELECT column_name, value, source_line, action FROM silver.t__rejected ORDER BY source_line",
            "--format",
            "csv",
        ],
    );
    assert!(
        rows.contains("amount,abc,3,row_quarantined") && rows.contains("coupon,SPRING,4,row_quarantined"),
        "{rows}"
    );

    // discard_value: the rows stay, the values that do not fit are left out and recorded.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline.replace("discard_row", "discard_value")).unwrap();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("1 values nulled by contract discard_value"), "{out}");
    assert!(out.contains("1 values of columns outside the table discarded by contract discard_value"), "{out}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t"), "5");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t WHERE amount IS NULL"), "1");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.t__rejected"), "2");
}

#[test]
fn a_source_with_on_error_quarantine_sets_unreadable_records_aside_and_loads_the_rest() {
    let pipeline = r#"version: 1
tasks:
  - name: orders
    source: {type: csv, path: "o.csv", schema: {amount: double}, on_error: quarantine}
    sink: {type: lake, table: raw.orders}
  - name: events
    source: {type: ndjson, path: "e.ndjson", on_error: quarantine}
    sink: {type: lake, table: raw.events}
"#;
    let tmp = project(&[
        ("o.csv", "id,amount,note\n1,2.5,a\n2,abc,b\n3,1.0\n4,4.0,\"two\nlines\"\n5,5.0,e\n"),
        ("e.ndjson", "{\"id\": 1, \"kind\": \"click\"}\n{\"id\": 2, \"kind\": \n{\"id\": 3, \"kind\": \"view\"}\n"),
        ("pipelines/p.yaml", pipeline),
    ]);
    let dir = tmp.path();
    let out = ok(dir, &["run", "p"]);
    assert!(out.contains("2 rows quarantined by source csv (on_error: quarantine)"), "{out}");
    assert!(out.contains("1 rows quarantined by source ndjson (on_error: quarantine)"), "{out}");
    assert_eq!(scalar(dir, "SELECT string_agg(CAST(id AS VARCHAR), '-' ORDER BY id) FROM raw.orders"), "1-4-5");
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.events"), "2");
    let rows = ok(
        dir,
        &[
            "sql",
            "SELECT source_line, column_name, value, reason FROM raw.orders__rejected ORDER BY source_line",
            "--format",
            "csv",
        ],
    );
    assert!(rows.contains("3,amount,abc,column `amount`: not a valid Float64"), "{rows}");
    assert!(rows.contains("4,,,\"expected 3 fields, found 2\""), "{rows}");
    assert_eq!(scalar(dir, "SELECT source_line FROM raw.events__rejected"), "2");
    // Without on_error the first bad record stops the task, naming it.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline.replace(", on_error: quarantine", "")).unwrap();
    let err = fails(dir, &["run", "p"]);
    assert!(err.contains("o.csv") && err.contains("found 2 records at line 4"), "{err}");
    assert!(err.contains("`on_error: quarantine` on the source"), "{err}");
    std::fs::write(dir.join("o.csv"), "id,amount,note\n1,2.5,a\n2,abc,b\n").unwrap();
    let err = fails(dir, &["run", "p"]);
    assert!(err.contains("o.csv:3:") && err.contains("'abc'"), "{err}");
}

#[test]
fn validate_plans_sql_tasks_against_the_lake_to_check_their_check_columns() {
    let load = "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: in.csv}\n    sink: {type: lake, table: silver.t}\n";
    let report = "version: 1\ntasks:\n  - name: r\n    sql: \"SELECT id, amount * 2 AS doubled FROM silver.t\"\n    checks:\n      - not_null: [amount]\n    sink: {type: lake, table: gold.r}\n";
    let tmp = project(&[("in.csv", "id,amount\n1,10\n"), ("pipelines/load.yaml", load)]);
    let dir = tmp.path();
    ok(dir, &["run", "load"]);
    std::fs::write(dir.join("pipelines/report.yaml"), report).unwrap();
    let err = fails(dir, &["validate"]);
    assert!(err.contains("report.yaml:6:") && err.contains("no output column `amount`"), "{err}");
    assert!(err.contains("doubled"), "{err}");
}

#[test]
fn freshness_relative_to_the_data_interval_lets_a_backfill_pass() {
    let pipeline = "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: in.csv}\n    checks:\n      - freshness: {column: ts, max_age: 36h, relative_to: data_interval_end}\n    sink: {type: lake, table: silver.t}\n";
    let tmp = project(&[("in.csv", "id,ts\n1,2026-03-25 10:00:00\n"), ("pipelines/p.yaml", pipeline)]);
    let dir = tmp.path();
    // The day's data is fresh for its own interval (ends 2026-03-26 00:00), however long ago that was.
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("check ok   freshness(ts)") && out.contains("at 2026-03-26 00:00:00"), "{out}");
    // Against the wall clock the same data is months old.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline.replace(", relative_to: data_interval_end", "")).unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(err.contains("freshness(ts)") && err.contains("limit 36h"), "{err}");
}
