//! Black-box tests of the `weir` binary, each named after what a user did. They run the real executable in a
//! temporary folder and read what it printed and what it left in the lake.

mod common;

use std::path::{Path, PathBuf};

use common::{ok, scalar, text, weir};

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(parquet_files(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}

fn new_project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    ok(tmp.path(), &["init", "shop"]);
    tmp
}

#[test]
fn demo_prints_daily_revenue_and_says_where_tables_landed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(tmp.path(), &["demo", "--rows", "20000", "--days", "2", "--dir", "d"]);
    assert!(out.contains("daily revenue by country (gold.daily_revenue)"), "{out}");
    assert!(out.contains("2026-03-25") && out.contains("revenue_usd"), "{out}");
    for table in ["raw.orders", "silver.orders", "gold.daily_revenue"] {
        assert!(out.contains(table), "{table} missing:\n{out}");
    }
    assert!(out.contains("matched none of the formats"), "unparseable dates are reported, not hidden:\n{out}");
    let project = tmp.path().join("d");
    // Every raw row is either in silver, removed as a duplicate, or filtered out as not completed: the counts add up.
    let raw: u64 = scalar(&project, "SELECT count(*) FROM raw.orders").parse().unwrap();
    assert_eq!(raw, 20000);
    let gold_orders: u64 = scalar(&project, "SELECT sum(orders) FROM gold.daily_revenue").parse().unwrap();
    let silver: u64 = scalar(&project, "SELECT count(*) FROM silver.orders").parse().unwrap();
    assert_eq!(gold_orders, silver);
    assert!(silver > 14000 && silver < 17000, "{silver}");
}

#[test]
fn init_then_validate_then_run_for_a_date() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    assert!(ok(&shop, &["validate"]).contains("are valid"));
    let out = ok(&shop, &["run", "daily_sales", "--date", "2026-03-25"]);
    assert!(out.contains("✓ ingest_orders") && out.contains("✓ daily_revenue"), "{out}");
    let countries =
        ok(&shop, &["sql", "SELECT DISTINCT country FROM silver.orders ORDER BY country", "--format", "csv"]);
    for line in countries.lines().skip(1) {
        assert_eq!(line, line.trim().to_uppercase(), "countries are trimmed and upper-cased: {countries}");
    }
}

#[test]
fn rerunning_the_same_date_replaces_its_partitions_instead_of_duplicating() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    ok(&shop, &["run", "daily_sales", "--date", "2026-03-25"]);
    let counts = |shop: &Path| {
        ["raw.orders", "silver.orders", "gold.daily_revenue"]
            .map(|t| scalar(shop, &format!("SELECT count(*) FROM {t}")))
    };
    let first = counts(&shop);
    ok(&shop, &["run", "daily_sales", "--date", "2026-03-25"]);
    assert_eq!(counts(&shop), first);
    assert_eq!(parquet_files(&shop.join("lake/raw/orders")).len(), 1);
}

#[test]
fn validate_lists_every_problem_of_a_broken_pipeline_with_lines_and_hints() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    std::fs::write(
        shop.join("pipelines/broken.yaml"),
        r#"version: 1
name: broken
tasks:
  - name: ingest
    source: {type: csv, pth: "landing/x.csv"}
    sink: {type: lake, table: raw.x}
  - name: clean
    depend_on: [ingest]
    source: {type: lake, table: raw.x}
    steps:
      - trimm: [name]
      - filter: "amount >"
      - parse_dates: {columns: [d], formats: ["%Y-%m-%d"], to: datetime}
    sink: {type: lake, table: Silver.X}
  - name: report
    depends_on: [clen]
    model: revenue
    sink: {type: lake, table: gold.r}
"#,
    )
    .unwrap();
    let o = weir(&shop, &["validate"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for expected in [
        "broken.yaml:5:25: unknown key `pth`",
        "did you mean `path`?",
        "broken.yaml:8:5: unknown key `depend_on` in task",
        "did you mean `depends_on`?",
        "broken.yaml:11:9: unknown step `trimm`",
        "filter: `amount >` is not a valid SQL expression",
        "unknown value `datetime`",
        "table name `Silver.X` must be `zone.table`",
        "depends on `clen`",
        "did you mean `clean`?",
        "model `revenue` not found",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn the_handbook_cleaning_example_parses_every_date_format() {
    // The handbook's clean_with_pandas / clean_with_polars input. pandas 3 turns "2026/03/02" into NaT; weir parses
    // every listed format, as Polars does, and would count any value it could not parse.
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    std::fs::write(
        shop.join("landing/handbook.csv"),
        "customer_name,city,sales_amount,order_date\n Alice , New York ,100.0,2026-03-01\nbob,LONDON,,2026/03/02\nbob,LONDON,,2026/03/02\n CHARLIE , San Francisco ,250.0,2026-03-04\n",
    )
    .unwrap();
    std::fs::write(
        shop.join("pipelines/handbook.yaml"),
        r#"version: 1
tasks:
  - name: clean
    source: {type: csv, path: landing/handbook.csv}
    steps:
      - dedupe:
      - fill_null: {columns: [sales_amount], strategy: mean}
      - trim: [customer_name, city]
      - lowercase: [customer_name, city]
      - parse_dates: {columns: [order_date], formats: ["%Y-%m-%d", "%Y/%m/%d"]}
    sink: {type: lake, table: silver.handbook}
"#,
    )
    .unwrap();
    let out = ok(&shop, &["run", "handbook", "--date", "2026-03-25"]);
    assert!(out.contains("1 rows removed"), "the duplicate bob row is removed: {out}");
    assert!(!out.contains("matched none"), "{out}");
    let rows = ok(&shop, &["sql", "SELECT customer_name, city, sales_amount, CAST(order_date AS VARCHAR) AS d FROM silver.handbook ORDER BY d", "--format", "csv"]);
    assert_eq!(
        rows.trim(),
        "customer_name,city,sales_amount,d\nalice,new york,100.0,2026-03-01\nbob,london,175.0,2026-03-02\ncharlie,san francisco,250.0,2026-03-04"
    );
}

#[test]
fn a_bad_csv_value_fails_naming_file_line_and_value_and_leaves_the_lake_unchanged() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    std::fs::write(shop.join("landing/prices.csv"), "sku,price\na,1.5\nb,2.5\n").unwrap();
    let pipeline = r#"version: 1
tasks:
  - name: load
    source: {type: csv, path: landing/prices.csv, schema: {price: double}}
    sink: {type: lake, table: raw.prices}
  - name: after
    depends_on: [load]
    sql: SELECT count(*) AS n FROM raw.prices
    sink: {type: lake, table: gold.price_count}
"#;
    std::fs::write(shop.join("pipelines/prices.yaml"), pipeline).unwrap();
    ok(&shop, &["run", "prices", "--date", "2026-03-25"]);
    std::fs::write(shop.join("landing/prices.csv"), "sku,price\na,1.5\nb,2.5\nc,3.5\nd,oops\n").unwrap();
    let o = weir(&shop, &["run", "prices", "--date", "2026-03-25"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("prices.csv:5") && all.contains("column `price`") && all.contains("'oops'"), "{all}");
    assert!(all.contains("after") && all.contains("not run: upstream task `load` failed"), "{all}");
    assert_eq!(scalar(&shop, "SELECT count(*) FROM raw.prices"), "2", "the previous load is intact");
    let siblings: Vec<String> = std::fs::read_dir(shop.join("lake/raw"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(siblings.iter().all(|s| !s.contains("staging")), "no staging debris: {siblings:?}");
}

#[test]
fn sql_errors_and_unknown_pipelines_are_explained() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    ok(&shop, &["run", "daily_sales", "--date", "2026-03-25"]);
    let o = weir(&shop, &["sql", "SELECT amount_usd FROM silver.orders"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("amount_usd"), "{}", text(&o));

    let o = weir(&shop, &["run", "daly_sales"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `daily_sales`?"), "{}", text(&o));

    let json = ok(
        &shop,
        &["sql", "SELECT country, orders FROM gold.daily_revenue ORDER BY country LIMIT 2", "--format", "json"],
    );
    assert_eq!(json.lines().count(), 2);
    assert!(json.starts_with("{\"country\":"), "{json}");
}

#[test]
fn a_killed_run_leaves_the_previous_partition_and_the_next_run_completes() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    ok(&shop, &["run", "daily_sales", "--date", "2026-03-25", "--task", "ingest_orders"]);
    let before = scalar(&shop, "SELECT count(*) FROM raw.orders");
    // A day large enough that the run is still writing when it is killed.
    ok(tmp.path(), &["demo", "--dir", "shop", "--rows", "1500000", "--days", "1", "--generate-only"]);
    let mut child = common::spawn(&shop, &["run", "daily_sales", "--date", "2026-03-25", "--task", "ingest_orders"]);
    // Wait until the run has staged data, then kill it hard.
    let zone = shop.join("lake/raw");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let staged = std::fs::read_dir(&zone).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains("staging") && !parquet_files(&e.path()).is_empty()
        });
        if staged || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run was killed before it finished");
    assert_eq!(scalar(&shop, "SELECT count(*) FROM raw.orders"), before, "readers still see the previous partition");
    ok(&shop, &["run", "daily_sales", "--date", "2026-03-25", "--task", "ingest_orders"]);
    assert_eq!(scalar(&shop, "SELECT count(*) FROM raw.orders"), "1500000");
    let debris: Vec<String> = std::fs::read_dir(&zone)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(debris.is_empty(), "{debris:?}");
}

#[test]
fn every_cleaning_step_in_one_pipeline_gives_the_expected_rows() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    std::fs::write(
        shop.join("landing/updates.csv"),
        "id,updated_at,name,score,city,price,code\n1,2026-01-01,  Ann ,10,Paris,1.5,a\n1,2026-01-03,ann,,Paris,2.5,b\n2,2026-01-02,BOB,30,,x,c\n3,2026-01-01,cy,,Rome,4,\n",
    )
    .unwrap();
    std::fs::write(
        shop.join("pipelines/steps.yaml"),
        r#"version: 1
tasks:
  - name: all_steps
    source: {type: csv, path: landing/updates.csv}
    steps:
      - fill_null: {columns: [city], strategy: forward}
      - fill_null: {columns: [score], strategy: median}
      - fill_null: {columns: [code], strategy: mode}
      - cast: {price: double}
      - dedupe: {columns: [id], keep: last, order_by: updated_at}
      - trim: [name]
      - uppercase: [name]
      - rename: {name: customer}
      - derive: {score2: "score * 2"}
      - drop: [updated_at]
      - select: [id, customer, city, score, score2, price, code]
    sink: {type: lake, table: silver.customers, partition_by: [city], compression: zstd}
"#,
    )
    .unwrap();
    let out = ok(&shop, &["run", "steps", "--date", "2026-03-25"]);
    assert!(out.contains("`price`: 1 values could not be converted and became null (e.g. 'x')"), "{out}");
    assert!(out.contains("dedupe") && out.contains("1 rows removed"), "{out}");
    assert!(
        shop.join("lake/silver/customers/city=Paris").is_dir() && shop.join("lake/silver/customers/city=Rome").is_dir()
    );
    let rows = ok(
        &shop,
        &[
            "sql",
            "SELECT id, customer, city, score, score2, price, code FROM silver.customers ORDER BY id",
            "--format",
            "csv",
        ],
    );
    assert_eq!(
        rows.trim(),
        "id,customer,city,score,score2,price,code\n1,ANN,Paris,20,40,2.5,b\n2,BOB,Paris,30,60,,c\n3,CY,Rome,20,40,4.0,a"
    );
}

#[test]
fn json_and_parquet_sources_round_trip_through_the_lake() {
    let tmp = new_project();
    let shop = tmp.path().join("shop");
    std::fs::create_dir_all(shop.join("landing/events")).unwrap();
    std::fs::write(
        shop.join("landing/events/a.json"),
        "[{\"id\": 1, \"kind\": \"view\"}, {\"id\": 2, \"kind\": \"buy\"}]",
    )
    .unwrap();
    std::fs::write(shop.join("landing/events/b.json"), "{\"id\": 3, \"kind\": \"view\"}\n").unwrap();
    std::fs::write(
        shop.join("pipelines/events.yaml"),
        r#"version: 1
tasks:
  - name: land
    source: {type: json, path: "landing/events/*.json"}
    sink: {type: lake, table: raw.events, partition: "date={{ ds }}"}
  - name: copy
    depends_on: [land]
    source: {type: parquet, path: "lake/raw/events/date={{ ds }}/*.parquet"}
    steps:
      - filter: "kind = 'view'"
    sink: {type: lake, table: silver.views, mode: append}
"#,
    )
    .unwrap();
    ok(&shop, &["run", "events", "--date", "2026-03-25"]);
    assert_eq!(scalar(&shop, "SELECT count(*) FROM raw.events"), "3");
    assert_eq!(scalar(&shop, "SELECT sum(id) FROM silver.views"), "4");
    // `append` adds files: a second run doubles the appended table but replaces the raw partition.
    ok(&shop, &["run", "events", "--date", "2026-03-25"]);
    assert_eq!(scalar(&shop, "SELECT count(*) FROM raw.events"), "3");
    assert_eq!(scalar(&shop, "SELECT count(*) FROM silver.views"), "4");
}

/// Logs written to a pipe or a file carry no colour codes (they end up in CI logs, files and log collectors).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let tmp = common::project(
        "plain_logs",
        &[("pipelines/p.yaml", "version: 1\ntasks:\n  - name: t\n    shell: {command: \"exit 3\"}\n")],
    );
    let o = weir(tmp.path(), &["run", "p", "--date", "2026-03-01"]);
    assert!(!o.status.success());
    let all = text(&o);
    assert!(all.contains("task failed"), "the failure is logged:\n{all}");
    assert!(!all.contains('\u{1b}'), "no escape codes when stderr is not a terminal:\n{all:?}");
}

/// Every duration is written the same way (`500ms`, `30s`, `5m`, `1h`): a bare number is refused by `weir validate`,
/// naming the line, the form to write and what the old bare number meant.
#[test]
fn durations_have_one_syntax_and_a_bare_number_is_explained() {
    let pipeline = r#"version: 1
tasks:
  - name: api
    source:
      type: http_api
      url: "http://127.0.0.1:9/orders"
      timeout: 2
      retry: {max_attempts: 3, initial_delay: 500ms, max_delay: 30s}
    sink: {type: lake, table: raw.orders}
  - name: slow
    timeout: 90
    shell: {command: "true"}
  - name: ping
    http: {url: "http://127.0.0.1:9/", timeout: 30s}
"#;
    let tmp = common::project("durations", &[("pipelines/p.yaml", pipeline)]);
    let o = weir(tmp.path(), &["validate"]);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(out.contains("p.yaml:7:") && out.contains("`2` has no unit") && out.contains("`2s`"), "{out}");
    assert!(out.contains("p.yaml:11:") && out.contains("`90` has no unit"), "{out}");
    assert_eq!(out.matches("has no unit").count(), 2, "the settings with units pass:\n{out}");
}
