//! Bounded fuzzing of everything that reads untrusted bytes: pipeline and stream files (YAML and templates), CSV
//! and NDJSON sources with `on_error: quarantine`, REST pages (JSON records, flattening, inference, decoding) and
//! PostgreSQL's binary COPY stream. Each target replays its corpus (`fuzz/corpus/<target>/`), then mutates it for
//! `WEIR_FUZZ_SECONDS` seconds (default 10): any input must give a result or an error, never a panic, and never
//! take more than `HANG` to answer. See `fuzz/README.md`.
//!
//! The mutations are AFL's "havoc" kind (bit flips, interesting bytes and tokens, deletions, duplications, splices
//! with other corpus entries), seeded by `WEIR_FUZZ_SEED` (printed on a failure) so that a failure can be replayed:
//! a fixed seed by default, so that every run and CI tries the same inputs; `WEIR_FUZZ_SEED=random` explores new
//! ones (run it for a while after changing a parser, and add what it finds to the corpus with the fix).
//! Stable Rust has no libFuzzer; this finds the shallow crashes fast and runs on every `cargo test`.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The longest one input may take.
const HANG: Duration = Duration::from_secs(10);

/// Bytes that make parsers take other paths.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b": ",
    b",",
    b"\"",
    b"'",
    b"\n",
    b"\r\n",
    b"\t",
    b"- ",
    b"&a ",
    b"*a",
    b"!!str ",
    b"? ",
    b"|\n",
    b">-\n",
    b"{{",
    b"}}",
    b"{{ ds }}",
    b"{% if x %}",
    b"{{ macros.ds_add(ds, -1) }}",
    b"${env:X}",
    b"%YAML 1.2\n",
    b"---\n",
    b"...\n",
    b"#",
    b"\\",
    b"\0",
    b"\xff",
    b"\xc3\xa9",
    b"\xf0\x9f\x92\xa9",
    b"null",
    b"NaN",
    b"-1",
    b"99999999999999999999",
    b"1e309",
    b"0x7fffffff",
    b"2026-02-30",
    b"24:00:00",
    b"true",
];

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}

fn mutate(rng: &mut SmallRng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let len = data.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                data[i] = [0u8, 0x7f, 0x80, 0xff, b'"', b'\n', b':', b'{'][rng.random_range(0..8)];
            }
            2 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                let at = rng.random_range(0..=len);
                data.splice(at..at, token.iter().copied());
            }
            3 if len > 1 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=16.min(len - a))).min(len);
                data.drain(a..b);
            }
            4 if len > 1 => {
                let a = rng.random_range(0..len);
                let b = (a + rng.random_range(1..=64.min(len - a))).min(len);
                let copy = data[a..b].to_vec();
                let at = rng.random_range(0..=len);
                data.splice(at..at, copy);
            }
            5 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = (a + rng.random_range(1..=256)).min(other.len());
                    let at = rng.random_range(0..=len);
                    data.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if len > 4 => {
                // A length or count field: an interesting 32-bit number at a random place.
                let at = rng.random_range(0..len - 4);
                let v: i32 = [-1, 0, 1, 0x7fff_ffff, i32::MIN, 65536, 255][rng.random_range(0..7)];
                data[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            _ if len > 0 => data.truncate(rng.random_range(0..len)),
            _ => {}
        }
    }
    data
}

/// Runs `target` on the corpus, then on mutations, for the time budget. Fails on a panic or a hang, saving the input.
fn fuzz(name: &str, target: impl Fn(&[u8]) + Send + Sync + 'static) {
    // A fixed seed by default, so that a test run (and CI) is repeatable; `WEIR_FUZZ_SEED=random` explores.
    let seed: u64 = match std::env::var("WEIR_FUZZ_SEED").ok().as_deref() {
        Some("random") => rand::random(),
        Some(s) => s.parse().unwrap_or(20_261_202),
        None => 20_261_202,
    };
    let budget =
        Duration::from_secs_f64(std::env::var("WEIR_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0));
    let corpus = corpus(name);
    let target = std::sync::Arc::new(target);
    // Inputs go to a worker thread; this thread watches the time each one takes.
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(0);
    let (done_tx, done_rx) = mpsc::channel::<Result<(), String>>();
    let worker = {
        let target = target.clone();
        std::thread::spawn(move || {
            for input in rx {
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| target(&input)));
                let _ = done_tx.send(outcome.map_err(|p| {
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                }));
            }
        })
    };
    let failed = |input: &[u8], why: String| -> ! {
        let dir = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| std::env::temp_dir());
        let dir = dir.join("fuzz-failures").join(name);
        std::fs::create_dir_all(&dir).ok();
        let file = dir.join(format!("seed-{seed}-{}.bin", input.len()));
        std::fs::write(&file, input).ok();
        panic!("fuzz target `{name}` {why} (WEIR_FUZZ_SEED={seed}); the input is in {}", file.display());
    };
    let run = |input: Vec<u8>| {
        tx.send(input.clone()).expect("the worker is alive");
        match done_rx.recv_timeout(HANG) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => failed(&input, format!("panicked: {message}")),
            Err(_) => failed(&input, format!("took more than {} s", HANG.as_secs())),
        }
    };
    for input in &corpus {
        run(input.clone());
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let base = &corpus[rng.random_range(0..corpus.len())];
        run(mutate(&mut rng, base, &corpus));
        runs += 1;
    }
    drop(tx);
    worker.join().ok();
    eprintln!(
        "fuzz {name}: {} corpus inputs and {runs} mutations in {:.1} s, seed {seed}",
        corpus.len(),
        budget.as_secs_f64()
    );
}

fn run_context() -> weir_core::RunContext {
    weir_core::RunContext::daily(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), "fuzz")
}

#[test]
fn pipeline_files_and_templates() {
    fuzz("pipeline_yaml", |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let run = run_context();
        let _ = weir_config::template::render(&text, &run);
        if let Ok(pipeline) = weir_config::Pipeline::parse(Path::new("p.yaml"), &text, Path::new("models"), &run) {
            let _ = weir_engine::plan::plan(&pipeline, &weir_connect::Registry::builtin());
        }
    });
}

#[test]
fn stream_files() {
    fuzz("stream_yaml", |bytes| {
        let _ = weir_stream::StreamConfig::parse(Path::new("s.yaml"), &String::from_utf8_lossy(bytes));
    });
}

/// Reads `bytes` as a file source of `kind` with `on_error: quarantine`, to the end.
fn read_file_source(kind: &str, bytes: &[u8]) {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.data"), bytes).unwrap();
    let node = weir_config::yaml::parse(&format!("{{type: {kind}, path: in.data, on_error: quarantine}}")).unwrap();
    let registry = weir_connect::Registry::builtin();
    let source = registry.source(&weir_config::Component { kind: kind.into(), node }, &[]).unwrap();
    let connections = Default::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let run = weir_connect::SourceRun {
            connector: weir_connect::ConnectorRun { project_dir: dir.path(), connections: &connections, batch_rows: 7 },
            positions: true,
            window: Default::default(),
            spool_dir: dir.path().join("spool"),
            cursor_commits_with_data: false,
        };
        if let Ok(mut stream) = source.open(run).await {
            while let Some(batch) = stream.batches.next().await {
                if batch.is_err() {
                    break;
                }
            }
            if let Some(rejects) = &stream.rejects {
                let _ = rejects.drain();
            }
        }
    });
}

#[test]
fn csv_with_quarantine() {
    fuzz("csv", |bytes| read_file_source("csv", bytes));
}

#[test]
fn ndjson_with_quarantine() {
    fuzz("ndjson", |bytes| read_file_source("ndjson", bytes));
}

#[test]
fn rest_pages_as_records() {
    fuzz("json_records", |bytes| {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else { return };
        let records: Vec<serde_json::Value> = match value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Object(mut map) => match map.remove("results") {
                Some(serde_json::Value::Array(items)) => items,
                _ => vec![serde_json::Value::Object(map)],
            },
            other => vec![other],
        };
        let flat: Vec<_> = records.into_iter().map(weir_connect::json_records::flatten).collect();
        if let Ok(schema) = weir_connect::json_records::infer_schema(&flat, &Default::default()) {
            let _ = weir_connect::json_records::decode(&flat, &schema, "page 1");
        }
    });
}

#[test]
fn postgres_binary_copy() {
    // int4, text, numeric, timestamptz, bool, float8, date
    let types = [23, 25, 1700, 1184, 16, 701, 1082];
    fuzz("pg_copy", move |bytes| {
        for chunk in [bytes.len().max(1), 7, 1] {
            let _ = weir_connect::postgres::decode_copy_stream(&types, bytes, chunk);
        }
    });
}
