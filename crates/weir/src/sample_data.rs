//! The seed's sample data: a day of messy orders (mixed-case names, several date formats, duplicates, cancelled and
//! refunded rows), generated deterministically for `weir demo` and `weir init`.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use chrono::{Duration, NaiveDate};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

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
