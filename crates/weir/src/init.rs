//! `weir init DIR`: scaffolds a project a data engineer can read in a minute: `weir.yaml`, one daily pipeline
//! (land raw CSV → clean → daily revenue by country), its SQL model, and a small messy sample file to run it on.

use std::path::Path;

use anyhow::{anyhow, Context};

use crate::{exit, Exit};

pub const WEIR_YAML: &str = r#"version: 1
name: shop
# Where lake tables live: `raw.orders` is stored under lake/raw/orders/.
lake:
  root: lake
defaults:
  compression: snappy        # or zstd
  row_group_rows: 1048576
# Named connections; secrets come from the environment, e.g. password: ${env:WAREHOUSE_PASSWORD}
connections: {}
"#;

pub const DAILY_SALES_YAML: &str = r#"version: 1
name: daily_sales
description: Land the day's raw orders, clean them, and compute daily revenue by country in USD.
schedule: "@daily"
tasks:
  - name: ingest_orders
    description: Land the raw CSV unchanged (every column as text) in the raw zone, one partition per day.
    source:
      type: csv
      path: "landing/orders/{{ ds }}.csv"
      infer_types: false
    sink:
      type: lake
      table: raw.orders
      partition: "date={{ ds }}"

  - name: clean_orders
    description: Deduplicate, normalise text, parse dates in every format seen, fill missing discounts, keep completed orders.
    depends_on: [ingest_orders]
    source:
      type: lake
      table: raw.orders
      where: "date = '{{ ds }}'"
    steps:
      - drop: [date]                       # the partition column; the sink writes it again
      - dedupe: [transaction_id]
      - trim: [country, currency, order_status, customer_name]
      - uppercase: [country, currency]
      - lowercase: [order_status, customer_name]
      - parse_dates:
          columns: [order_ts]
          formats: ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d.%m.%Y %H:%M"]
          to: timestamp
      - cast: {transaction_id: bigint, amount: double, discount_amount: double}
      - fill_null: {values: {discount_amount: 0}}
      - filter: "order_status = 'completed'"
      - derive:
          order_date: "CAST(order_ts AS DATE)"
          net_revenue: "amount - discount_amount"
    sink:
      type: lake
      table: silver.orders
      partition: "date={{ ds }}"
      format: delta                        # silver and gold are Delta tables: versions, time travel

  - name: daily_revenue
    depends_on: [clean_orders]
    model: daily_revenue
    sink:
      type: lake
      table: gold.daily_revenue
      partition: "date={{ ds }}"
      format: delta
"#;

/// The demo's model is the example's (`examples/daily_sales`), so the two never drift apart.
pub const DAILY_REVENUE_SQL: &str = include_str!("../../../examples/daily_sales/models/daily_revenue.sql");

/// Writes the project files into `dir` (creating it). Existing files are overwritten.
pub fn write_project(dir: &Path) -> anyhow::Result<()> {
    for sub in ["pipelines", "models", "landing/orders"] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("create {}", dir.join(sub).display()))?;
    }
    let files = [
        ("weir.yaml", WEIR_YAML),
        ("pipelines/daily_sales.yaml", DAILY_SALES_YAML),
        ("models/daily_revenue.sql", DAILY_REVENUE_SQL),
        (".gitignore", "lake/\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).with_context(|| format!("write {}", dir.join(name).display()))?;
    }
    Ok(())
}

pub fn init(dir: &Path) -> Result<(), Exit> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(exit(2, anyhow!("{} exists and is not empty; choose a new folder", dir.display())));
    }
    write_project(dir)?;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 25).ok_or_else(|| anyhow!("date"))?;
    crate::sample_data::generate(dir, 40, 1, day, 7)?;
    println!("created project {}:", dir.display());
    println!("  weir.yaml                     lake location, defaults, connections");
    println!("  pipelines/daily_sales.yaml    land raw orders -> clean -> daily revenue");
    println!("  models/daily_revenue.sql      the gold model (SQL on DataFusion)");
    println!("  landing/orders/2026-03-25.csv a small messy sample");
    println!();
    println!("next:");
    println!("  cd {} && weir validate && weir run daily_sales --date 2026-03-25", dir.display());
    println!("  weir sql \"SELECT * FROM gold.daily_revenue\"");
    Ok(())
}
