//! `weir demo`: the main job on embedded defaults. It generates a realistic, messy e-commerce data set (duplicates,
//! nulls, mixed-case and padded text, dates in three formats plus garbage, several currencies, cancelled orders),
//! runs the daily pipeline for every day into a local lake, and prints daily revenue by country. No server, no network.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use weir_config::{Pipeline, Project};
use weir_core::RunContext;

use crate::output::{print_batches, thousands};
use crate::Exit;

const COUNTRIES: &[(&str, &str, f64)] = &[
    ("US", "USD", 1.0),
    ("DE", "EUR", 0.92),
    ("FR", "EUR", 0.92),
    ("ES", "EUR", 0.92),
    ("GB", "GBP", 0.79),
    ("IN", "INR", 83.0),
    ("JP", "JPY", 150.0),
    ("BR", "BRL", 5.5),
];
const STATUSES: &[(&str, u32)] = &[("completed", 80), ("cancelled", 12), ("refunded", 5), ("pending", 3)];
const NAMES: &[&str] = &[
    "alice martin",
    "bob schmidt",
    "charlie dupont",
    "diana rossi",
    "emeka obi",
    "fatima khan",
    "george smith",
    "hana sato",
    "ivan petrov",
    "julia garcia",
    "kofi mensah",
    "lena fischer",
    "mateo silva",
    "nina patel",
];

fn messy_case(rng: &mut SmallRng, s: &str) -> String {
    let cased = match rng.random_range(0..4) {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        2 => {
            let mut c = s.chars();
            c.next().map(|f| f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase()).unwrap_or_default()
        }
        _ => s.to_string(),
    };
    match rng.random_range(0..6) {
        0 => format!(" {cased}"),
        1 => format!("{cased}  "),
        _ => cased,
    }
}

/// Writes `rows` transactions over `days` days ending on `last_day` into `dir/landing/orders/YYYY-MM-DD.csv`.
/// About 2% of rows are exact duplicates of a recent row. Deterministic for a given seed.
pub fn generate(
    dir: &Path,
    rows: usize,
    days: u32,
    last_day: NaiveDate,
    seed: u64,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let landing = dir.join("landing/orders");
    std::fs::create_dir_all(&landing).with_context(|| format!("create {}", landing.display()))?;
    let days = days.max(1);
    let per_day = rows / days as usize;
    let mut next_id: u64 = 1_000_000;
    let mut files = Vec::new();
    for d in 0..days {
        let day = last_day - Duration::days((days - 1 - d) as i64);
        let n = if d == days - 1 { rows - per_day * (days as usize - 1) } else { per_day };
        let path = landing.join(format!("{}.csv", day.format("%Y-%m-%d")));
        let tmp = path.with_extension("csv.tmp");
        let mut w = BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?,
        );
        writeln!(w, "transaction_id,order_ts,country,currency,amount,discount_amount,order_status,customer_name")?;
        let mut recent: Vec<String> = Vec::with_capacity(64);
        for _ in 0..n {
            if !recent.is_empty() && rng.random_range(0..100) < 2 {
                let line = recent[rng.random_range(0..recent.len())].clone();
                writeln!(w, "{line}")?;
                continue;
            }
            next_id += 1;
            let secs = rng.random_range(0..86_400);
            let ts = day.and_hms_opt(secs / 3600, (secs / 60) % 60, secs % 60).unwrap_or_default();
            let order_ts = match rng.random_range(0..1000) {
                0 => "not-a-date".to_string(),
                1 => String::new(),
                2 => format!("{}-13-45 10:00:00", day.format("%Y")),
                3..=700 => ts.format("%Y-%m-%d %H:%M:%S").to_string(),
                701..=900 => ts.format("%Y/%m/%d %H:%M:%S").to_string(),
                _ => ts.format("%d.%m.%Y %H:%M").to_string(),
            };
            let (country, currency, rate) = COUNTRIES[rng.random_range(0..COUNTRIES.len())];
            let amount = (rng.random_range(5.0..500.0f64) * rate * 100.0).round() / 100.0;
            let discount = if rng.random_range(0..10) < 3 {
                String::new()
            } else {
                format!("{:.2}", amount * rng.random_range(0.0..0.1))
            };
            let mut pick = rng.random_range(0..100);
            let status = STATUSES
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    if !hit {
                        pick -= *w;
                    }
                    hit
                })
                .map(|s| s.0)
                .unwrap_or("completed");
            let name = NAMES[rng.random_range(0..NAMES.len())];
            let line = format!(
                "{next_id},{order_ts},{},{},{amount:.2},{discount},{},{}",
                messy_case(&mut rng, country),
                if rng.random_range(0..10) == 0 { currency.to_lowercase() } else { currency.to_string() },
                messy_case(&mut rng, status),
                messy_case(&mut rng, name),
            );
            writeln!(w, "{line}")?;
            if recent.len() < 64 {
                recent.push(line);
            } else {
                let i = rng.random_range(0..64);
                recent[i] = line;
            }
        }
        w.flush()?;
        drop(w);
        std::fs::rename(&tmp, &path).with_context(|| format!("move {}", path.display()))?;
        files.push(path);
    }
    Ok(files)
}

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
    let project = Project::load(dir).map_err(|d| crate::run::report_diagnostics(&d))?;
    let file = project.pipelines_dir().join("daily_sales.yaml");
    let started = Instant::now();
    let mut totals = (0u64, 0u64);
    for d in 0..days.max(1) {
        let day = last_day - Duration::days((days.max(1) - 1 - d) as i64);
        let run = RunContext::daily(day, uuid::Uuid::now_v7().simple().to_string());
        let pipeline =
            Pipeline::load(&file, &project.models_dir(), &run).map_err(|d| crate::run::report_diagnostics(&d))?;
        let plan = crate::validate::plan_pipeline(&pipeline).map_err(|d| crate::run::report_diagnostics(&d))?;
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
    let project = Project::load(dir).map_err(|d| crate::run::report_diagnostics(&d))?;
    let lake_root = project.lake_root();
    for old in [lake_root.join("_streams/fraud"), lake_root.join("fraud/alerts"), streams.join("out")] {
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("clear {}", old.display()))?;
        }
    }
    let config = std::sync::Arc::new(
        weir_stream::StreamConfig::load(&stream_file).map_err(|d| crate::run::report_diagnostics(&d))?,
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
