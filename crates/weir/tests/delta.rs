//! Black-box tests of Delta Lake tables (`format: delta` on a lake sink), run through the `weir` binary: each run
//! is one Delta version, a re-run of a date replaces it, an append is committed once per date, checks stop the
//! commit, and earlier versions stay readable (time travel). Every scenario runs three times: on a lake in a local
//! folder, in a bucket of a real S3-compatible server (moto) and in a container of Azurite, both on loopback.

mod common;

use common::{fails, ok, scalar, Backend};

/// One `#[test]` per backend for each scenario: `local::name`, `s3::name` and `azure::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Local)
            })*
        }
        mod s3 {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::S3)
            })*
        }
        mod azure {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Azure)
            })*
        }
    };
}

on_both_backends!(
    each_run_is_one_delta_version_and_a_rerun_of_a_date_replaces_it,
    an_append_is_committed_once_per_interval_and_new_columns_evolve_the_schema,
    merge_upserts_on_keys_deletes_on_request_and_is_idempotent,
    merge_with_scd2_history_keeps_every_version_of_a_row,
    optimize_vacuum_and_restore_keep_the_table_readable,
    concurrent_writers_to_one_table_lose_no_commit,
);

const PIPELINE: &str = r#"version: 1
tasks:
  - name: orders
    source: {type: csv, path: "in_{{ ds }}.csv"}
    checks:
      - not_null: [id]
    sink: {type: lake, table: silver.orders, partition: "date={{ ds }}", format: delta}
"#;

fn each_run_is_one_delta_version_and_a_rerun_of_a_date_replaces_it(b: Backend) {
    let p = b.project(
        "d",
        &[
            ("in_2026-03-24.csv", "id,amount\n1,10.5\n2,20\n"),
            ("in_2026-03-25.csv", "id,amount\n3,30.5\n4,40\n5,50\n"),
            ("pipelines/p.yaml", PIPELINE),
        ],
    );
    let dir = p.dir();
    let out = ok(dir, &["run", "p", "--date", "2026-03-24"]);
    assert!(out.contains("(delta version 0)"), "{out}");
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(p.has("silver/orders/_delta_log/00000000000000000001.json"));
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "5");
    // Re-running a date replaces its partition: counts stay, one more version.
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("(delta version 2)"), "{out}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "5");
    assert_eq!(scalar(dir, "SELECT sum(amount) FROM silver.orders WHERE date = '2026-03-24'"), "30.5");
    let history = ok(dir, &["table", "history", "silver.orders", "--format", "csv"]);
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(history.contains("CREATE TABLE") && history.contains("WRITE"), "{history}");
    // Time travel: version 0 held the first day only.
    let old = ok(dir, &["sql", "SELECT count(*) AS n FROM silver.orders", "--as-of", "0", "--format", "csv"]);
    assert_eq!(old.lines().nth(1), Some("2"), "{old}");
    // ... and in a query (or a model), one table at a version next to the current one.
    let both = "SELECT (SELECT count(*) FROM silver.orders@v0) AS then, (SELECT count(*) FROM silver.orders) AS now";
    assert_eq!(ok(dir, &["sql", both, "--format", "csv"]), "then,now\n2,5\n");
    let list = ok(dir, &["table", "list", "--format", "csv"]);
    assert!(list.contains("silver.orders,delta,2,date,"), "{list}");
    // An error check stops the commit: the table keeps version 2.
    std::fs::write(dir.join("in_2026-03-25.csv"), "id,amount\n,1.5\n").unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(err.contains("not_null(id)") && err.contains("nothing was committed"), "{err}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "5");
    let history = ok(dir, &["table", "history", "silver.orders", "--format", "csv"]);
    assert_eq!(history.lines().count(), 4, "{history}");
    // A day re-run with no rows is emptied, not left as it was.
    std::fs::write(dir.join("in_2026-03-25.csv"), "id,amount\n").unwrap();
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        PIPELINE.replace("      - not_null: [id]\n", "").replace("    checks:\n", ""),
    )
    .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "2");
}

fn an_append_is_committed_once_per_interval_and_new_columns_evolve_the_schema(b: Backend) {
    let pipeline = PIPELINE
        .replace("format: delta}", "format: delta, mode: append}")
        .replace("partition: \"date={{ ds }}\", ", "");
    let p = b.project(
        "d",
        &[
            ("in_2026-03-24.csv", "id,amount\n1,10\n"),
            ("in_2026-03-25.csv", "id,amount,coupon\n2,20,SPRING\n"),
            ("pipelines/p.yaml", &pipeline),
        ],
    );
    let dir = p.dir();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    // A re-run of the day replaces what the day appended: never twice.
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "1");
    std::fs::write(
        dir.join("in_2026-03-24.csv"),
        "id,amount
1,11
4,40
",
    )
    .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    assert_eq!(scalar(dir, "SELECT sum(amount) FROM silver.orders"), "51", "a corrected day replaces its rows");
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("+ coupon: Utf8 (added)"), "{out}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders WHERE coupon IS NULL"), "2");
    assert_eq!(scalar(dir, "SELECT coupon FROM silver.orders WHERE id = 2"), "SPRING");
    // A day without the column keeps it in the table (null for its rows).
    std::fs::write(dir.join("in_2026-03-26.csv"), "id,amount\n3,30\n").unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-26"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders WHERE coupon IS NULL"), "3");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders WHERE coupon = 'SPRING'"), "1");
}

fn merge_upserts_on_keys_deletes_on_request_and_is_idempotent(b: Backend) {
    let pipeline = r#"version: 1
tasks:
  - name: customers
    source: {type: csv, path: "customers_{{ ds }}.csv"}
    sink: {type: lake, table: silver.customers, format: delta, mode: merge, keys: [id], delete_when: "source.status = 'deleted'"}
"#;
    let p = b.project(
        "d",
        &[
            ("customers_2026-03-24.csv", "id,name,status\n1,ada,active\n2,bob,active\n3,cy,active\n"),
            ("customers_2026-03-25.csv", "id,name,status\n2,bobby,active\n3,cy,deleted\n4,dee,active\n"),
            ("pipelines/p.yaml", pipeline),
        ],
    );
    let dir = p.dir();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("merged: 1 inserted, 1 updated, 1 deleted"), "{out}");
    let rows = || ok(dir, &["sql", "SELECT id, name FROM silver.customers ORDER BY id", "--format", "csv"]);
    let after = rows();
    assert_eq!(after, "id,name\n1,ada\n2,bobby\n4,dee\n", "{after}");
    // The same merge again changes nothing.
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(rows(), after);
    // Partitioned by a column: rows move between partitions when their key's partition value changes.
    let partitioned = pipeline
        .replace("keys: [id]", "keys: [id], partition_by: [status]")
        .replace("silver.customers", "silver.by_status");
    std::fs::write(dir.join("pipelines/p.yaml"), &partitioned).unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    let by_status = ok(dir, &["sql", "SELECT id, name, status FROM silver.by_status ORDER BY id", "--format", "csv"]);
    assert_eq!(by_status, "id,name,status\n1,ada,active\n2,bobby,active\n4,dee,active\n", "{by_status}");
    assert!(p.has("silver/by_status/status=active"));
    // A merge needs keys and a Delta table.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline.replace("format: delta, ", "").replace(", keys: [id]", ""))
        .unwrap();
    let err = fails(dir, &["validate"]);
    assert!(err.contains("needs a Delta table") && err.contains("needs `keys"), "{err}");
}

fn merge_with_scd2_history_keeps_every_version_of_a_row(b: Backend) {
    let pipeline = r#"version: 1
tasks:
  - name: customers
    source: {type: csv, path: "customers_{{ ds }}.csv"}
    sink: {type: lake, table: silver.customers, format: delta, mode: merge, keys: [id], history: scd2, delete_when: "source.status = 'deleted'"}
"#;
    let p = b.project(
        "d",
        &[
            ("customers_2026-03-24.csv", "id,name,status\n1,ada,active\n2,bob,active\n3,cy,active\n"),
            ("customers_2026-03-25.csv", "id,name,status\n1,ada,active\n2,bobby,active\n3,cy,deleted\n4,dee,active\n"),
            ("pipelines/p.yaml", pipeline),
        ],
    );
    let dir = p.dir();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    // bob's old version and cy are closed; bobby and dee are inserted; ada is unchanged.
    assert!(out.contains("merged: 2 inserted, 2 updated, 0 deleted"), "{out}");
    let all = "SELECT id, name, CAST(valid_from AS VARCHAR) AS valid_from, CAST(valid_to AS VARCHAR) AS valid_to, is_current FROM silver.customers ORDER BY id, valid_from";
    let expected = "id,name,valid_from,valid_to,is_current\n\
        1,ada,2026-03-24,,true\n\
        2,bob,2026-03-24,2026-03-25,false\n\
        2,bobby,2026-03-25,,true\n\
        3,cy,2026-03-24,2026-03-25,false\n\
        4,dee,2026-03-25,,true\n";
    assert_eq!(ok(dir, &["sql", all, "--format", "csv"]), expected);
    // Re-running the day changes nothing.
    let again = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(again.contains("merged: 0 inserted, 0 updated, 0 deleted"), "{again}");
    assert_eq!(ok(dir, &["sql", all, "--format", "csv"]), expected);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.customers WHERE is_current"), "3");
}

fn optimize_vacuum_and_restore_keep_the_table_readable(b: Backend) {
    let pipeline = PIPELINE
        .replace("format: delta}", "format: delta, mode: append}")
        .replace("partition: \"date={{ ds }}\", ", "");
    let p = b.project("d", &[("pipelines/p.yaml", &pipeline)]);
    let dir = p.dir();
    for day in 20..25 {
        let date = format!("2026-03-{day}");
        std::fs::write(dir.join(format!("in_{date}.csv")), format!("id,amount\n{day},1.5\n")).unwrap();
        ok(dir, &["run", "p", "--date", &date]);
    }
    let out = ok(dir, &["table", "optimize", "silver.orders"]);
    assert!(out.contains("5 files compacted into 1 (version 5)"), "{out}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "5");
    // Vacuum refuses to go below the retention window; a dry run within it lists nothing young.
    let err = fails(dir, &["table", "vacuum", "silver.orders", "--retain-hours", "0"]);
    assert!(err.contains("retention"), "{err}");
    let out = ok(dir, &["table", "vacuum", "silver.orders", "--dry-run"]);
    assert!(out.contains("would delete 0 unreferenced files"), "{out}");
    // Restore to the second version: two days, as a new version.
    let out = ok(dir, &["table", "restore", "silver.orders", "--version", "1"]);
    assert!(out.contains("restored version 1 as version 6"), "{out}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "2");
    let err = fails(dir, &["table", "restore", "silver.orders", "--version", "42"]);
    assert!(err.contains("has no version 42"), "{err}");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "2");
}

fn concurrent_writers_to_one_table_lose_no_commit(b: Backend) {
    let pipeline = PIPELINE.replace("format: delta}", "format: delta, mode: append}");
    let mut files: Vec<(String, String)> = vec![("pipelines/p.yaml".into(), pipeline)];
    for day in 10..16 {
        files.push((format!("in_2026-03-{day}.csv"), format!("id,amount\n{day},1.5\n")));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let p = b.project("d", &refs);
    let dir = p.dir();
    // Six runs at once on a table that does not exist yet: one creates it, the others commit on top, retrying
    // on conflicts.
    let children: Vec<_> = (10..16)
        .map(|day| {
            common::command(dir, &["run", "p", "--date", &format!("2026-03-{day}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let c = c.wait_with_output().unwrap();
        assert!(c.status.success(), "{}", common::text(&c));
    }
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "6");
    let history = ok(dir, &["table", "history", "silver.orders", "--format", "csv"]);
    assert_eq!(history.lines().count(), 7, "{history}");
}

#[test]
fn a_lake_on_s3_keeps_quarantine_check_results_and_schema_history_in_the_bucket() {
    let pipeline = r#"version: 1
tasks:
  - name: orders
    source: {type: csv, path: "in_{{ ds }}.csv"}
    checks:
      - range: {column: amount, min: 0, on_fail: quarantine}
    sink: {type: lake, table: silver.orders, partition: "date={{ ds }}", format: delta}
"#;
    let p = Backend::S3
        .project("q", &[("in_2026-03-24.csv", "id,amount\n1,10\n2,-5\n3,7\n"), ("pipelines/p.yaml", pipeline)]);
    let dir = p.dir();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders"), "2");
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders__rejected WHERE date = '2026-03-24'"), "1");
    assert_eq!(scalar(dir, "SELECT failing_rows FROM _weir.check_results"), "1");
    assert!(p.has("silver/orders/_weir_schema.json") && p.has("silver/orders__rejected/_delta_log"));
    // A re-run of the day without bad rows empties that day's quarantine.
    std::fs::write(dir.join("in_2026-03-24.csv"), "id,amount\n1,10\n").unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-24"]);
    assert_eq!(scalar(dir, "SELECT count(*) FROM silver.orders__rejected"), "0");
    let schema = ok(dir, &["schema", "show", "silver.orders"]);
    assert!(schema.contains("amount"), "{schema}");

    // Plain Parquet tables need a local lake; the error says what to do.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline.replace(", format: delta", "")).unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-24"]);
    assert!(err.contains("only Delta tables can live on object storage") && err.contains("format: delta"), "{err}");

    // A bucket that does not exist, and an option object_store does not know: clear errors, nothing written.
    let yaml = std::fs::read_to_string(dir.join("weir.yaml")).unwrap();
    std::fs::write(dir.join("weir.yaml"), yaml.replace("s3://weir-test/", "s3://no-such-bucket/")).unwrap();
    let err = fails(dir, &["sql", "SELECT 1"]);
    assert!(err.contains("s3://no-such-bucket/") && err.contains("NoSuchBucket"), "{err}");
    std::fs::write(dir.join("weir.yaml"), yaml.replace("allow_http: true", "allow_htp: true")).unwrap();
    let err = fails(dir, &["sql", "SELECT 1"]);
    assert!(err.contains("unknown s3:// option `allow_htp`"), "{err}");
}
