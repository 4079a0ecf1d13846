//! Differential tests of the cleaning steps against Polars: randomly generated messy data (NULLs in every position,
//! exact duplicates and rows that differ only in where a NULL sits, padded mixed-case unicode text, dates in two
//! formats plus garbage, numbers plus garbage) goes through a weir pipeline and through the same steps in Polars
//! (`tests/differential/oracle.py`, in a virtualenv made by `.ci/install-polars`). The rows out must be the same
//! multiset, and every count weir reports (rows removed, values that did not parse or convert) must equal Polars'.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::ok;

/// A small deterministic generator (xorshift64*): the same seed gives the same data on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: &[&str] = &["anna", "Émile", "jürgen", "ЖАННА", "Zoë", "o'brien", "li wei", "Ålesund", "MÜLLER", "naïve"];
const CITIES: &[&str] = &["Berlin", "KÖLN", "são paulo", "Kraków", "tōkyō", "Zürich", "oslo", "ΑΘΗΝΑ"];
const AMOUNTS: &[&str] = &["12.50", "-3", "0", "7.25", "100", "0.5", "-0.75", "abc", "12,5", "n/a", "19.99", "3"];

fn messy_csv(seed: u64, rows: usize) -> String {
    let mut r = Rng(seed);
    let mut lines: Vec<[String; 5]> = Vec::with_capacity(rows);
    let pad = |r: &mut Rng, s: &str| {
        let left = " ".repeat(r.below(3));
        let right = " ".repeat(r.below(3));
        format!("{left}{s}{right}")
    };
    while lines.len() < rows {
        let roll = r.below(100);
        if roll < 8 && !lines.is_empty() {
            // An exact duplicate of an earlier row.
            let i = r.below(lines.len());
            lines.push(lines[i].clone());
            continue;
        }
        if roll < 14 && !lines.is_empty() {
            // The same values with the NULL moved to another column: a distinct row.
            let i = r.below(lines.len());
            let mut moved = lines[i].clone();
            let (a, b) = (1 + r.below(4), 1 + r.below(4));
            moved.swap(a, b);
            if moved[a].is_empty() == moved[b].is_empty() {
                moved[a] = String::new();
            }
            lines.push(moved);
            continue;
        }
        let id = if r.chance(5) { String::new() } else { (1 + r.below(rows / 2)).to_string() };
        let name = if r.chance(10) { String::new() } else { NAMES[r.below(NAMES.len())].to_string() };
        let name = if name.is_empty() { name } else { pad(&mut r, &name) };
        let city = if r.chance(15) { String::new() } else { CITIES[r.below(CITIES.len())].to_string() };
        let city = if city.is_empty() { city } else { pad(&mut r, &city) };
        let amount = if r.chance(10) { String::new() } else { r.pick(AMOUNTS).to_string() };
        let d = 1 + r.below(28);
        let day = match r.below(10) {
            0 => String::new(),
            1 => "2026-13-45".to_string(),
            2 => "soon".to_string(),
            3..=5 => format!("{d:02}.03.2026"),
            _ => format!("2026-03-{d:02}"),
        };
        lines.push([id, name, city, amount, day]);
    }
    let quote = |v: &String| if v.contains(',') { format!("\"{v}\"") } else { v.clone() };
    let mut out = String::from("id,name,city,amount,day\n");
    for l in &lines {
        out.push_str(&l.iter().map(quote).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

const PIPELINE: &str = r#"version: 1
tasks:
  - name: clean
    source: {type: csv, path: messy.csv, infer_types: false}
    steps:
      - dedupe:
      - trim: [name, city]
      - uppercase: [name]
      - lowercase: [city]
      - parse_dates: {columns: [day], formats: ["%Y-%m-%d", "%d.%m.%Y"], to: date}
      - cast: {amount: double, id: bigint}
      - dedupe: [id]
      - fill_null: {values: {city: unknown}}
      - filter: "amount IS NULL OR amount >= 0"
    sink: {type: lake, table: silver.out}
"#;

fn polars_python() -> PathBuf {
    let venv = common::installed(
        "WEIR_POLARS_VENV",
        "polars-venv",
        None,
        "install-polars",
        "the differential tests need Polars",
    );
    venv.join("bin/python")
}

/// The number in `weir run`'s note for `step` that contains `what` (`dedupe (line 7): 12 rows removed`).
fn reported(out: &str, step_line: usize, what: &str) -> u64 {
    out.lines()
        .map(str::trim)
        .filter(|l| l.contains(&format!("(line {step_line}):")) && l.contains(what))
        .filter_map(|l| {
            let after = l.split_once("):")?.1;
            let after = after.split_once("`: ").map(|(_, rest)| rest).unwrap_or(after);
            after.split_whitespace().next()?.replace(',', "").parse().ok()
        })
        .next()
        .unwrap_or(0)
}

fn same_as_polars(seed: u64, rows: usize) {
    let csv = messy_csv(seed, rows);
    let tmp = common::project("diff", &[("messy.csv", &csv), ("pipelines/p.yaml", PIPELINE)]);
    let dir = tmp.path();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    let oracle = Command::new(polars_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential/oracle.py"))
        .arg(dir.join("messy.csv"))
        .arg(dir.join("lake/silver/out"))
        .output()
        .expect("run the Polars oracle");
    let said = String::from_utf8_lossy(&oracle.stdout);
    assert!(
        oracle.status.success(),
        "seed {seed}: weir's rows differ from Polars':\n{said}{}\nweir said:\n{out}",
        String::from_utf8_lossy(&oracle.stderr)
    );
    let counts: serde_json::Value = serde_json::from_str(said.lines().last().unwrap_or("{}")).expect("oracle counts");
    let want = |k: &str| counts[k].as_u64().unwrap_or_else(|| panic!("no {k} in {counts}"));
    let got = [
        ("dedupe_rows", reported(&out, 6, "rows removed")),
        ("unparsed_day", reported(&out, 10, "matched none of the formats")),
        ("uncast_amount", reported(&out, 11, "`amount`")),
        ("uncast_id", reported(&out, 11, "`id`")),
        ("dedupe_id", reported(&out, 12, "rows removed")),
        ("filter", reported(&out, 14, "rows removed")),
    ];
    for (k, n) in got {
        assert_eq!(n, want(k), "seed {seed}: `{k}` weir {n}, Polars {}\nweir said:\n{out}", want(k));
    }
    assert!(want("dedupe_rows") > 0 && want("unparsed_day") > 0 && want("filter") > 0, "the data is too tame");
}

#[test]
fn cleaning_steps_give_polars_rows_and_counts_on_messy_data() {
    for seed in [1, 0x5eed, 20261202] {
        same_as_polars(seed, 4000);
    }
}
