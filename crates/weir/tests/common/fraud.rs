//! The fraud stream's test fixtures shared by `stream.rs` and `kafka.rs`: generated payments whose truth is known,
//! a project folder holding the example stream with its source and outputs replaced, and readers of its outputs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use weir_stream::config::GeneratorConfig;
use weir_stream::generator::{users_csv, Payment, PaymentGenerator};

use super::ok;

pub const EXAMPLE: &str = include_str!("../../../../examples/streams/fraud.yaml");

pub struct Truth {
    pub payments: Vec<Payment>,
    pub fraud: BTreeSet<String>,
    pub late: BTreeSet<String>,
}

pub fn generate(events: u64, cards: u64, late_rate: f64) -> Truth {
    let config = GeneratorConfig { events, seed: 11, cards, fraud_rate: 0.03, late_rate };
    let mut g = PaymentGenerator::new(&config);
    let payments: Vec<Payment> = std::iter::from_fn(|| g.next_payment()).collect();
    let ids = |label: &str| payments.iter().filter(|p| p.label == label).map(|p| p.transaction_id.clone()).collect();
    Truth { fraud: ids("fraud"), late: ids("late"), payments: payments.clone() }
}

/// A project folder with the users lookup and the example stream, its source and outputs replaced.
pub fn project(cards: u64, source: &str, outputs: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weir.yaml"), "version: 1\nname: streams\nlake:\n  root: lake\n").unwrap();
    std::fs::write(dir.path().join("users.csv"), users_csv(cards)).unwrap();
    let start = EXAMPLE.find("outputs:").unwrap();
    let end = EXAMPLE.find("checkpoint:").unwrap();
    let text = format!("{}outputs:\n{outputs}\n{extra}{}", &EXAMPLE[..start], &EXAMPLE[end..])
        .replace("source: {type: ndjson, path: payments.ndjson}", &format!("source: {source}"));
    std::fs::write(dir.path().join("fraud.yaml"), text).unwrap();
    dir
}

pub fn write_ndjson(dir: &Path, payments: &[Payment]) {
    let text: String = payments.iter().map(|p| p.to_json() + "\n").collect();
    std::fs::write(dir.join("payments.ndjson"), text).unwrap();
}

/// The ids of a lake table's rows (and how many rows there are).
pub fn table_ids(dir: &Path, table: &str) -> (BTreeSet<String>, usize) {
    let out = ok(dir, &["sql", &format!("SELECT transaction_id FROM {table}"), "-f", "csv"]);
    let rows: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
    (rows.iter().cloned().collect(), rows.len())
}

pub fn json_ids(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).unwrap();
            v["transaction_id"].as_str().unwrap().to_string()
        })
        .collect()
}

pub fn file_ids(path: &Path) -> Vec<String> {
    json_ids(std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string))
}

/// Fails naming a few ids that one set has and the other lacks (the sets can hold thousands).
pub fn assert_same_ids(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    if got != want {
        let missing: Vec<_> = want.difference(got).take(5).collect();
        let extra: Vec<_> = got.difference(want).take(5).collect();
        panic!("{what}: {} ids instead of {}; missing {missing:?}; unexpected {extra:?}", got.len(), want.len());
    }
}

/// Waits until `check` holds, or fails after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
