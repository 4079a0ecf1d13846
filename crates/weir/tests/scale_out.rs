//! Scaling out the transforms: a Spark Connect engine works on weir's lake as weir left it. Sail (a Spark Connect
//! server, `common::sail`) reads the daily sales example's Delta tables from S3 (moto) and runs its SQL model
//! unchanged, with the answers weir's own engine gave.

mod common;

use std::path::Path;

const COLUMNS: &str = "order_date, country, orders, revenue_usd, orders_without_timestamp, orders_without_fx_rate";

#[test]
fn sail_reads_the_daily_sales_lake_on_s3_and_runs_its_model_with_the_same_answers() {
    let s3 = common::s3::server();
    let (status, body) = s3.request("PUT", "/weir-example");
    assert!(status == 200 || body.contains("BucketAlready"), "create bucket: {status} {body}");
    let sail = common::sail::server();

    // examples/daily_sales unchanged (lake in s3://weir-example/lake), on a day of the demo's messy orders.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/daily_sales");
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    for file in ["weir.yaml", "pipelines/daily_sales.yaml", "models/daily_revenue.sql"] {
        std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    common::ok(data.path(), &["demo", "--dir", ".", "--generate-only", "--rows", "20000", "--days", "2"]);
    std::fs::create_dir_all(dir.join("landing")).unwrap();
    std::fs::rename(data.path().join("landing/orders"), dir.join("landing/orders")).unwrap();
    let endpoint = s3.endpoint();
    let env = [
        ("S3_ENDPOINT", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("SNOWFLAKE_ACCOUNT", "unused"),
        ("SNOWFLAKE_USER", "unused"),
        ("SNOWFLAKE_PASSWORD", "unused"),
        ("SNOWFLAKE_URL", "http://127.0.0.1:9"),
    ];
    let weir = |args: &[&str]| {
        let out = common::weir_with(dir, args, &env);
        assert!(out.status.success(), "weir {args:?} failed:\n{}", common::text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let day = "2026-03-25";
    weir(&[
        "run",
        "daily_sales",
        "--date",
        day,
        "--task",
        "ingest_orders",
        "--task",
        "clean_orders",
        "--task",
        "daily_revenue",
    ]);
    let by_weir: Vec<String> = weir(&[
        "sql",
        &format!("SELECT {COLUMNS} FROM gold.daily_revenue WHERE date = '{day}' ORDER BY country"),
        "-f",
        "csv",
    ])
    .lines()
    .skip(1)
    .map(str::to_string)
    .collect();
    assert!(by_weir.len() >= 5, "too few countries to compare: {by_weir:?}");

    // Sail reads weir's gold table as weir wrote it.
    let lake = "s3://weir-example/lake";
    let gold = [("gold.daily_revenue", format!("{lake}/gold/daily_revenue"))];
    let read =
        sail.rows(&gold, &format!("SELECT {COLUMNS} FROM gold.daily_revenue WHERE date = '{day}' ORDER BY country"));
    assert_eq!(read, by_weir, "Sail's reading of gold.daily_revenue");

    // And computes it again from weir's silver table with the model's own SQL (rendered for the day).
    let model = std::fs::read_to_string(dir.join("models/daily_revenue.sql")).unwrap().replace("{{ ds }}", day);
    let model = model.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
    let silver = [("silver.orders", format!("{lake}/silver/orders"))];
    let computed = sail.rows(&silver, &format!("SELECT {COLUMNS} FROM ({model}) AS m ORDER BY country"));
    assert_eq!(computed, by_weir, "the model run by Sail on weir's silver.orders");
}
