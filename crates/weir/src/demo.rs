//! `weir demo`: the main job on embedded defaults. It generates a realistic, messy e-commerce data set (duplicates,
//! nulls, mixed-case and padded text, dates in three formats plus garbage, several currencies, cancelled orders),
//! runs the daily pipeline for every day into a local lake, and prints daily revenue by country. No server, no network.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use weir_config::{Pipeline, Project};
use weir_core::RunContext;

use crate::output::{print_batches, thousands};
use crate::sample_data::generate;
use crate::Exit;

pub async fn demo(dir: &Path, rows: usize, days: u32, generate_only: bool, fraud_events: u64) -> Result<(), Exit> {
    let last_day = NaiveDate::from_ymd_opt(2026, 3, 25).context("date")?;
    crate::init::write_project(dir)?;
    let t = Instant::now();
    let files = generate(dir, rows, days, last_day, 42)?;
    let bytes: u64 = files.iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum();
    println!(
        "generated {} messy transactions ({}) in {} daily CSV files under {} in {:.1}s",
        thousands(rows as u64),
        indicatif::HumanBytes(bytes),
        files.len(),
        dir.join("landing/orders").display(),
        t.elapsed().as_secs_f64()
    );
    if generate_only {
        return Ok(());
    }
    let project = Project::load(dir).map_err(|d| crate::output::report_diagnostics(&d))?;
    let file = project.pipelines_dir().join("daily_sales.yaml");
    let started = Instant::now();
    let mut totals = (0u64, 0u64);
    for d in 0..days.max(1) {
        let day = last_day - Duration::days((days.max(1) - 1 - d) as i64);
        let run = RunContext::daily(day, uuid::Uuid::now_v7().simple().to_string());
        let pipeline =
            Pipeline::load(&file, &project.models_dir(), &run).map_err(|d| crate::output::report_diagnostics(&d))?;
        let plan = crate::validate::plan_pipeline(&pipeline).map_err(|d| crate::output::report_diagnostics(&d))?;
        let reports = crate::run::run_pipeline(&project, &pipeline, &plan, &run, &Default::default()).await?;
        if let (Some(first), Some(clean)) = (reports.first(), reports.iter().find(|r| r.task == "clean_orders")) {
            totals.0 += first.rows_read;
            totals.1 += clean.rows_written;
        }
    }
    println!();
    println!(
        "{} raw rows -> {} clean completed orders in {:.1}s",
        thousands(totals.0),
        thousands(totals.1),
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("daily revenue by country (gold.daily_revenue):");
    let engine = weir_engine::Engine::for_project(&project)?;
    engine.register_lake().await?;
    let batches = engine
        .sql_collect(
            "SELECT order_date, country, orders, revenue_usd, orders_without_timestamp, orders_without_fx_rate FROM gold.daily_revenue ORDER BY order_date, revenue_usd DESC",
            "demo query",
        )
        .await?;
    print_batches(&batches, "table", 200)?;
    println!();
    println!("where everything landed:");
    for t in weir_lake::list_tables(engine.lake()).await? {
        let format = match t.format {
            weir_lake::TableFormat::Delta => "delta",
            weir_lake::TableFormat::Parquet => "parquet",
        };
        let parts = if t.partition_columns.is_empty() {
            String::new()
        } else {
            format!(", partitioned by {}", t.partition_columns.join(", "))
        };
        println!("  {:<24} {} ({format}{parts})", t.name.to_string(), t.location);
    }
    println!();
    println!(
        "try: weir --project {} sql \"SELECT country, sum(revenue_usd) FROM gold.daily_revenue GROUP BY country\"",
        dir.display()
    );
    println!("     weir --project {} table history silver.orders", dir.display());
    if fraud_events > 0 {
        println!();
        fraud(dir, fraud_events).await?;
    }
    Ok(())
}

/// Writes `payments.ndjson` (the generated card payments), `labels.ndjson` (each payment's truth: fraud or legit)
/// and `users.csv` (the users lookup) into `dir`: the fraud demo's input, and the streaming benchmark's.
pub fn write_payments(dir: &Path, config: &weir_stream::config::GeneratorConfig) -> Result<(), Exit> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut generator = weir_stream::generator::PaymentGenerator::new(config);
    let mut payments = std::io::BufWriter::new(std::fs::File::create(dir.join("payments.ndjson"))?);
    let mut labels = std::io::BufWriter::new(std::fs::File::create(dir.join("labels.ndjson"))?);
    while let Some(p) = generator.next_payment() {
        writeln!(payments, "{}", p.to_json())?;
        let label = if p.label == "fraud" { "fraud" } else { "legit" };
        writeln!(labels, r#"{{"transaction_id":"{}","label":"{label}"}}"#, p.transaction_id)?;
    }
    payments.flush()?;
    labels.flush()?;
    std::fs::write(dir.join("users.csv"), weir_stream::generator::users_csv(config.cards))?;
    Ok(())
}

/// The streaming half of the demo: card payments with known fraud from the built-in generator, decided by the
/// example stream (`examples/streams/fraud.yaml`) reading an NDJSON file, then scored against the generator's
/// labels. The stream's state and outputs from an earlier demo run are cleared first, so the demo is repeatable.
pub async fn fraud(dir: &Path, events: u64) -> Result<(), Exit> {
    let landing = dir.join("landing/fraud");
    std::fs::create_dir_all(&landing).with_context(|| format!("create {}", landing.display()))?;
    let streams = dir.join("streams");
    std::fs::create_dir_all(&streams).with_context(|| format!("create {}", streams.display()))?;
    let config =
        weir_stream::config::GeneratorConfig { events, seed: 7, cards: 5_000, fraud_rate: 0.01, late_rate: 0.001 };
    let t = Instant::now();
    write_payments(&landing, &config)?;
    let stream_file = streams.join("fraud.yaml");
    let text = include_str!("../../../examples/streams/fraud.yaml")
        .replace("path: payments.ndjson", "path: ../landing/fraud/payments.ndjson")
        .replace("file: users.csv", "file: ../landing/fraud/users.csv")
        .replace("path: labels.ndjson", "path: ../landing/fraud/labels.ndjson");
    std::fs::write(&stream_file, text)?;
    println!(
        "fraud detection: generated {} card payments (1% fraud in three patterns, 0.1% late) under {} in {:.1}s",
        thousands(events),
        landing.display(),
        t.elapsed().as_secs_f64()
    );
    let project = Project::load(dir).map_err(|d| crate::output::report_diagnostics(&d))?;
    let lake_root = project.lake_root();
    for old in [lake_root.join("_streams/fraud"), lake_root.join("fraud/alerts"), streams.join("out")] {
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("clear {}", old.display()))?;
        }
    }
    let config = std::sync::Arc::new(
        weir_stream::StreamConfig::load(&stream_file).map_err(|d| crate::output::report_diagnostics(&d))?,
    );
    let env = weir_stream::StreamEnv::discover(dir, &stream_file, tokio::runtime::Handle::current())?;
    let (metrics, written) = {
        let (config, env) = (config.clone(), env.clone());
        tokio::task::spawn_blocking(move || weir_stream::run_stream(config, env, Default::default()))
            .await
            .map_err(|e| anyhow::anyhow!("stream: {e}"))??
    };
    println!("{}", metrics.summary());
    for (sink, rows) in written {
        println!("  {sink}: {rows} rows");
    }
    println!();
    let result = weir_stream::report::report(&config, &env, None).await?;
    crate::stream::print_report(&config.name, &result);
    println!();
    println!("try: weir --project {} sql \"SELECT rule, count(*) FROM fraud.alerts GROUP BY rule\"", dir.display());
    println!(
        "     weir --project {0} stream {0}/streams/fraud.yaml   (again: it resumes where it stopped)",
        dir.display()
    );
    Ok(())
}
