//! The semantic matrix: every sink and write mode driven through the things that make a task run again (a re-run
//! of the same interval, a crash after the commit and its retry, a corrected source, `weir backfill --reprocess all`,
//! `weir clear`, the next interval with new rows and rows updated late). After each step the target's contents must
//! equal an oracle that this file computes on its own from what the source held at each run, with the semantics the
//! README's re-run table promises:
//!
//! - per interval (lake `replace_partitions` into `date={{ ds }}`, Delta `append`): each interval holds the rows of
//!   its latest run;
//! - every run (Parquet and database `append`): each committed run's rows, once per run;
//! - merge on `id` (Delta, PostgreSQL, SQLite): the latest value of each key;
//! - last run (database `replace`): the rows of the latest run.
//!
//! The rows of each day come from a CSV file per day or from a SQLite table queried per day. Incremental sources
//! (REST and PostgreSQL) get their own matrix below, whose oracle is the source itself: no version of a record
//! twice, every current record present, and for a merge exactly the source.
//!
//! Each case runs on a daily schedule, and a chosen set also on a sub-daily one (every 12 hours: two intervals share
//! one `ds`, which is what broke Delta appends and per-day cursors before). The hourly tests of `tests/trust.rs` add
//! `weir serve` with catch-up over a day's 24 intervals.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::http::{Req, Resp, Server};
use common::{fails, ok};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Semantics {
    PerInterval,
    EveryRun,
    Merge,
    LastRun,
}

#[derive(Clone, Copy, Debug)]
enum Target {
    Lake,
    Sqlite,
    Postgres,
}

struct Case {
    name: &'static str,
    sink: &'static str,
    target: Target,
    semantics: Semantics,
}

const CASES: &[Case] = &[
    Case {
        name: "parquet replace_partitions",
        sink: "{type: lake, table: silver.t, partition: \"date={{ ds }}\"}",
        target: Target::Lake,
        semantics: Semantics::PerInterval,
    },
    Case {
        name: "parquet append",
        sink: "{type: lake, table: silver.t, mode: append}",
        target: Target::Lake,
        semantics: Semantics::EveryRun,
    },
    Case {
        name: "delta replace_partitions",
        sink: "{type: lake, table: silver.t, partition: \"date={{ ds }}\", format: delta}",
        target: Target::Lake,
        semantics: Semantics::PerInterval,
    },
    Case {
        name: "delta append",
        sink: "{type: lake, table: silver.t, format: delta, mode: append}",
        target: Target::Lake,
        semantics: Semantics::PerInterval,
    },
    Case {
        name: "delta merge",
        sink: "{type: lake, table: silver.t, format: delta, mode: merge, keys: [id]}",
        target: Target::Lake,
        semantics: Semantics::Merge,
    },
    Case {
        name: "sqlite replace",
        sink: "{type: sqlite, path: marts.db, table: t, mode: replace}",
        target: Target::Sqlite,
        semantics: Semantics::LastRun,
    },
    Case {
        name: "sqlite append",
        sink: "{type: sqlite, path: marts.db, table: t, mode: append}",
        target: Target::Sqlite,
        semantics: Semantics::EveryRun,
    },
    Case {
        name: "sqlite merge",
        sink: "{type: sqlite, path: marts.db, table: t, mode: merge, keys: [id]}",
        target: Target::Sqlite,
        semantics: Semantics::Merge,
    },
    Case {
        name: "postgres replace",
        sink: "{type: postgres, connection: wh, table: public.t, mode: replace}",
        target: Target::Postgres,
        semantics: Semantics::LastRun,
    },
    Case {
        name: "postgres append",
        sink: "{type: postgres, connection: wh, table: public.t, mode: append}",
        target: Target::Postgres,
        semantics: Semantics::EveryRun,
    },
    Case {
        name: "postgres merge",
        sink: "{type: postgres, connection: wh, table: public.t, mode: merge, keys: [id]}",
        target: Target::Postgres,
        semantics: Semantics::Merge,
    },
];

type Rows = Vec<(i64, i64)>;

/// What the target must hold, computed from the runs that committed (interval, rows), in order.
#[derive(Default)]
struct Oracle {
    committed: Vec<(String, Rows)>,
}

impl Oracle {
    fn expected(&self, semantics: Semantics) -> Rows {
        let mut out: Rows = match semantics {
            Semantics::PerInterval => {
                let mut latest: BTreeMap<&str, &Rows> = BTreeMap::new();
                for (day, rows) in &self.committed {
                    latest.insert(day, rows);
                }
                latest.values().flat_map(|r| r.iter().copied()).collect()
            }
            Semantics::EveryRun => self.committed.iter().flat_map(|(_, r)| r.iter().copied()).collect(),
            Semantics::Merge => {
                let mut by_key = BTreeMap::new();
                for (_, rows) in &self.committed {
                    for (id, amount) in rows {
                        by_key.insert(*id, *amount);
                    }
                }
                by_key.into_iter().collect()
            }
            Semantics::LastRun => self.committed.last().map(|(_, r)| r.clone()).unwrap_or_default(),
        };
        out.sort_unstable();
        out
    }
}

/// Where the rows of a day come from: a CSV file per day, or a SQLite table queried per day.
#[derive(Clone, Copy, Debug, PartialEq)]
enum FileSource {
    Csv,
    Sqlite,
}

struct Run<'a> {
    case: &'a Case,
    source: FileSource,
    schedule: Schedule,
    dir: &'a Path,
    pg_db: &'a str,
    files: BTreeMap<String, Rows>,
    oracle: Oracle,
}

impl Run<'_> {
    fn write_day(&mut self, day: &str, rows: &[(i64, i64)]) {
        match self.source {
            FileSource::Csv => {
                let mut csv = String::from("id,amount\n");
                for (id, amount) in rows {
                    csv.push_str(&format!("{id},{amount}\n"));
                }
                std::fs::write(self.dir.join(format!("in_{}.csv", self.schedule.file_key(day))), csv).unwrap();
            }
            FileSource::Sqlite => {
                let db = rusqlite::Connection::open(self.dir.join("source.db")).unwrap();
                db.execute_batch("CREATE TABLE IF NOT EXISTS src (day TEXT, id INTEGER, amount INTEGER)").unwrap();
                let key = self.schedule.file_key(day);
                db.execute("DELETE FROM src WHERE day = ?1", [&key]).unwrap();
                for (id, amount) in rows {
                    db.execute("INSERT INTO src VALUES (?1, ?2, ?3)", rusqlite::params![key, id, amount]).unwrap();
                }
            }
        }
        self.files.insert(day.to_string(), rows.to_vec());
    }

    /// `weir run` for `day`; the oracle learns that `day` committed with the file's rows.
    fn run(&mut self, day: &str) {
        ok(self.dir, &["run", "p", "--date", day]);
        self.committed(day);
    }

    fn committed(&mut self, day: &str) {
        self.oracle.committed.push((day.to_string(), self.files[day].clone()));
    }

    fn target(&self) -> Rows {
        let mut rows: Rows = match self.case.target {
            Target::Lake => ok(self.dir, &["sql", "SELECT id, amount FROM silver.t", "--format", "csv"])
                .lines()
                .skip(1)
                .map(pair)
                .collect(),
            Target::Sqlite => {
                let db = rusqlite::Connection::open(self.dir.join("marts.db")).unwrap();
                let mut st = db.prepare("SELECT id, amount FROM t").unwrap();
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
            }
            Target::Postgres => common::pg::server()
                .psql(self.pg_db, "SELECT id, amount FROM t")
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| pair(&l.replace('|', ",")))
                .collect(),
        };
        rows.sort_unstable();
        rows
    }

    fn check(&self, step: &str) {
        assert_eq!(
            self.target(),
            self.oracle.expected(self.case.semantics),
            "{}: after {step} the target differs from the oracle",
            self.case.name
        );
    }
}

fn sorted(rows: &Rows) -> Rows {
    let mut r = rows.clone();
    r.sort_unstable();
    r
}

fn pair(line: &str) -> (i64, i64) {
    let (a, b) = line.split_once(',').unwrap_or_else(|| panic!("not a pair: {line}"));
    (a.trim().parse().unwrap(), b.trim().parse().unwrap())
}

const D1: &str = "2026-03-01";
const D2: &str = "2026-03-02";
const D3: &str = "2026-03-03";

/// The schedule a case runs on, and the three intervals it drives (named as `weir run --date` takes them): two
/// that a backfill covers, and the next one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Schedule {
    Daily,
    TwiceDaily,
}

impl Schedule {
    fn cron(self) -> &'static str {
        match self {
            Schedule::Daily => "@daily",
            Schedule::TwiceDaily => "0 */12 * * *",
        }
    }

    fn intervals(self) -> [&'static str; 3] {
        match self {
            Schedule::Daily => ["2026-03-01", "2026-03-02", "2026-03-03"],
            Schedule::TwiceDaily => ["2026-03-01T00:00", "2026-03-01T12:00", "2026-03-02T00:00"],
        }
    }

    /// The days `weir backfill --from/--to` takes to cover exactly the first two intervals.
    fn backfill_days(self) -> (&'static str, &'static str) {
        match self {
            Schedule::Daily => ("2026-03-01", "2026-03-02"),
            Schedule::TwiceDaily => ("2026-03-01", "2026-03-01"),
        }
    }

    /// A template that tells the intervals apart, for file names and partitions.
    fn interval_key(self) -> &'static str {
        match self {
            Schedule::Daily => "{{ ds }}",
            Schedule::TwiceDaily => "{{ ts[:13] }}",
        }
    }

    /// The file name the template above renders for `interval`.
    fn file_key(self, interval: &str) -> String {
        interval.get(..13).unwrap_or(interval).to_string()
    }
}

fn drive(case: &Case, source: FileSource, schedule: Schedule, pg_db: &str) {
    eprintln!("case: {} from {source:?}, {schedule:?}", case.name);
    let key = schedule.interval_key();
    let source_yaml = match source {
        FileSource::Csv => format!("{{type: csv, path: \"in_{key}.csv\", schema: {{id: bigint, amount: bigint}}}}"),
        FileSource::Sqlite => {
            format!("{{type: sqlite, path: source.db, query: \"SELECT id, amount FROM src WHERE day = '{key}'\"}}")
        }
    };
    let [d1, d2, d3] = schedule.intervals();
    let (from, to) = schedule.backfill_days();
    let pipeline = format!(
        "version: 1\nschedule: {{cron: \"{}\", start_date: {from}, end_date: {to}, catchup: false}}\ntasks:\n  - name: t\n    source: {source_yaml}\n    sink: {}\n",
        schedule.cron(),
        case.sink.replace("{{ ds }}", key)
    );
    let tmp = common::project("matrix", &[("pipelines/p.yaml", &pipeline)]);
    let dir = tmp.path();
    if matches!(case.target, Target::Postgres) {
        std::fs::write(
            dir.join("weir.yaml"),
            format!(
                "version: 1\nname: matrix\nlake:\n  root: lake\nconnections:\n  wh: {{type: postgres, url: \"{}\"}}\n",
                common::pg::server().url(pg_db)
            ),
        )
        .unwrap();
    }
    let mut r = Run { case, source, schedule, dir, pg_db, files: BTreeMap::new(), oracle: Oracle::default() };

    r.write_day(d1, &[(1, 10), (2, 20), (3, 30), (4, 40)]);
    r.write_day(d2, &[(5, 50), (6, 60), (7, 70)]);
    r.run(d1);
    r.check("the first run");
    r.run(d2);
    r.check("the second interval");
    r.run(d1);
    r.check("a re-run of the first interval");

    // A crash after the commit, then the retry.
    common::crashes_at(dir, &["run", "p", "--date", d2], "task_after_target_commit");
    r.committed(d2);
    r.check("a crash after the commit");
    r.run(d2);
    r.check("the retry after the crash");

    // The source of the first interval is corrected: a value changed, a row gone, a row added.
    r.write_day(d1, &[(1, 10), (2, 25), (3, 30), (8, 80)]);
    r.run(d1);
    r.check("a corrected first interval");

    // A backfill over the intervals that exist runs both again; a clear runs the second again.
    ok(dir, &["backfill", "p", "--from", from, "--to", to, "--reprocess", "all"]);
    // The two intervals run at once: for a table that each run replaces whole, either may commit last.
    let d1_last = r.case.semantics == Semantics::LastRun && r.target() == sorted(&r.files[d1]);
    let order = if d1_last { [d2, d1] } else { [d1, d2] };
    for interval in order {
        r.committed(interval);
    }
    r.check("a backfill with --reprocess all");
    ok(dir, &["clear", "p", "t", "--date", d2, "--wait"]);
    r.committed(d2);
    r.check("weir clear");

    // The next interval: new rows and a row of the first interval updated late.
    r.write_day(d3, &[(9, 90), (10, 100), (2, 26)]);
    r.run(d3);
    r.check("the next interval with new and late-updated rows");
}

#[test]
fn every_sink_and_mode_holds_what_its_semantics_promise_through_reruns_crashes_backfills_and_clears() {
    for (s, source) in [FileSource::Csv, FileSource::Sqlite].into_iter().enumerate() {
        for (i, case) in CASES.iter().enumerate() {
            let db = match case.target {
                Target::Postgres => common::pg::server().database(&format!("matrix_{s}_{i}")),
                _ => String::new(),
            };
            drive(case, source, Schedule::Daily, &db);
        }
    }
}

/// Two intervals a day that share one `ds`: one case per kind of semantics and per target, from CSV files.
#[test]
fn sub_daily_intervals_are_kept_apart_through_reruns_crashes_backfills_and_clears() {
    let chosen = ["parquet replace_partitions", "delta append", "delta merge", "sqlite append", "postgres replace"];
    for name in chosen {
        let case = CASES.iter().find(|c| c.name == name).expect("a case of the matrix");
        let db = match case.target {
            Target::Postgres => common::pg::server().database(&format!("matrix_sub_daily_{}", name.replace(' ', "_"))),
            _ => String::new(),
        };
        drive(case, FileSource::Csv, Schedule::TwiceDaily, &db);
    }
}

/// A REST API of records with `updated_at` (epoch seconds, served as RFC 3339), filtered server-side by instant.
fn api(data: Arc<Mutex<Vec<(i64, i64)>>>) -> Server {
    Server::start(move |req: &Req| {
        let since = req.param("updated_since").and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok());
        let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let rows: Vec<_> = data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, u)| since.is_none_or(|s| *u > s.timestamp()))
            .map(|(i, u)| json!({"id": i, "updated_at": rfc3339(*u)}))
            .collect();
        Resp::json(json!(rows.iter().skip((page - 1) * 10).take(10).cloned().collect::<Vec<_>>()))
    })
}

fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Every (id, updated_at) version in the lake, as epoch seconds, sorted.
fn versions(dir: &Path) -> Vec<(i64, i64)> {
    let mut v: Vec<(i64, i64)> =
        ok(dir, &["sql", "SELECT id, CAST(to_unixtime(updated_at) AS BIGINT) FROM raw.c", "--format", "csv"])
            .lines()
            .skip(1)
            .map(pair)
            .collect();
    v.sort();
    v
}

#[derive(Clone, Copy, Debug)]
enum IncSource {
    Rest,
    Postgres,
}

#[test]
fn incremental_sources_hold_each_version_once_and_every_current_record() {
    let sinks = [
        ("parquet per day", "{type: lake, table: raw.c, partition: \"date={{ ds }}\"}", false),
        ("delta per day", "{type: lake, table: raw.c, partition: \"date={{ ds }}\", format: delta}", false),
        ("delta append", "{type: lake, table: raw.c, format: delta, mode: append}", false),
        ("delta merge", "{type: lake, table: raw.c, format: delta, mode: merge, keys: [id]}", true),
    ];
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z").unwrap().timestamp();
    for (n, source) in [IncSource::Rest, IncSource::Postgres].into_iter().enumerate() {
        for (k, (sink_name, sink, merge)) in sinks.iter().enumerate() {
            let name = format!("{source:?} into {sink_name}");
            let data: Arc<Mutex<Vec<(i64, i64)>>> = Arc::new(Mutex::new((1..=25).map(|i| (i, t0 + i * 60)).collect()));
            let server = api(data.clone());
            let pg = common::pg::server();
            let db = match source {
                IncSource::Postgres => pg.database(&format!("inc_{n}_{k}")),
                IncSource::Rest => String::new(),
            };
            // The source's table follows `data` (PostgreSQL), or the API serves it (REST).
            let publish = |data: &[(i64, i64)]| {
                if let IncSource::Postgres = source {
                    let values: Vec<String> = data.iter().map(|(i, u)| format!("({i}, to_timestamp({u}))")).collect();
                    pg.psql(&db, &format!("DELETE FROM c; INSERT INTO c VALUES {}", values.join(", "))).unwrap();
                }
            };
            let source_yaml = match source {
                IncSource::Rest => format!(
                    "\n      type: http_api\n      url: \"{}\"\n      paginate: {{type: page, size: 10}}\n      incremental: {{cursor_field: updated_at, param: updated_since, initial: \"2026-01-01T00:00:00Z\"}}",
                    server.url("/c")
                ),
                IncSource::Postgres => {
                    pg.psql(&db, "CREATE TABLE c (id int, updated_at timestamptz)").unwrap();
                    "\n      type: postgres\n      connection: wh\n      table: c\n      incremental: {cursor_field: updated_at}".to_string()
                }
            };
            publish(&data.lock().unwrap());
            let pipeline = format!("version: 1\ntasks:\n  - name: c\n    source:{source_yaml}\n    sink: {sink}\n");
            let tmp = common::project("inc", &[("pipelines/p.yaml", &pipeline)]);
            let dir = tmp.path();
            std::fs::write(
                dir.join("weir.yaml"),
                format!(
                    "version: 1\nname: inc\nlake:\n  root: lake\nconnections:\n  wh: {{type: postgres, url: \"{}\"}}\n",
                    pg.url(if db.is_empty() { "postgres" } else { &db })
                ),
            )
            .unwrap();
            let check = |step: &str| {
                let held = versions(dir);
                let mut unique = held.clone();
                unique.dedup();
                assert_eq!(held, unique, "{name}: after {step} a version is held twice");
                let current: Vec<(i64, i64)> = data.lock().unwrap().clone();
                for rec in &current {
                    assert!(held.contains(rec), "{name}: after {step} the current {rec:?} is missing");
                }
                if *merge {
                    let mut want = current.clone();
                    want.sort();
                    assert_eq!(held, want, "{name}: after {step} the merge differs from the source");
                }
            };
            ok(dir, &["run", "p", "--date", D1]);
            check("the first day");
            {
                let mut d = data.lock().unwrap();
                d.extend((26..=30).map(|i| (i, t0 + 86_400 + i * 60)));
                d[4].1 = t0 + 86_000; // record 5 updated late
                publish(&d);
            }
            ok(dir, &["run", "p", "--date", D2]);
            check("the second day");
            ok(dir, &["run", "p", "--date", D2]);
            check("a re-run of the second day");
            ok(dir, &["run", "p", "--date", D1]);
            check("a re-run of the first day");
            common::crashes_at(dir, &["run", "p", "--date", D2], "task_after_target_commit");
            ok(dir, &["run", "p", "--date", D2]);
            check("a crash after the commit and its retry");
            {
                let mut d = data.lock().unwrap();
                d.push((31, t0 + 2 * 86_400));
                publish(&d);
            }
            ok(dir, &["run", "p", "--date", D3]);
            check("the next day");
        }
    }
    // And a write that would replace what an incremental read did not read is refused.
    let server = api(Arc::new(Mutex::new(Vec::new())));
    let pipeline = format!(
        "version: 1\ntasks:\n  - name: c\n    source: {{type: http_api, url: \"{}\", incremental: {{cursor_field: updated_at, param: s}}}}\n    sink: {{type: lake, table: raw.c}}\n",
        server.url("/c")
    );
    let tmp = common::project("inc", &[("pipelines/p.yaml", &pipeline)]);
    fails(tmp.path(), &["run", "p", "--date", D1]);
}
