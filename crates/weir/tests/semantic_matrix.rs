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
//! Incremental sources (REST and PostgreSQL) get their own matrix below, whose oracle is the source itself: no
//! version of a record twice, every current record present, and for a merge exactly the source.

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

struct Run<'a> {
    case: &'a Case,
    dir: &'a Path,
    pg_db: &'a str,
    files: BTreeMap<String, Rows>,
    oracle: Oracle,
}

impl Run<'_> {
    fn write_day(&mut self, day: &str, rows: &[(i64, i64)]) {
        let mut csv = String::from("id,amount\n");
        for (id, amount) in rows {
            csv.push_str(&format!("{id},{amount}\n"));
        }
        std::fs::write(self.dir.join(format!("in_{day}.csv")), csv).unwrap();
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

fn drive(case: &Case, pg_db: &str) {
    eprintln!("case: {}", case.name);
    let pipeline = format!(
        "version: 1\nschedule: {{cron: \"@daily\", start_date: {D1}, end_date: {D2}, catchup: false}}\ntasks:\n  - name: t\n    source: {{type: csv, path: \"in_{{{{ ds }}}}.csv\", schema: {{id: bigint, amount: bigint}}}}\n    sink: {}\n",
        case.sink
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
    let mut r = Run { case, dir, pg_db, files: BTreeMap::new(), oracle: Oracle::default() };

    r.write_day(D1, &[(1, 10), (2, 20), (3, 30), (4, 40)]);
    r.write_day(D2, &[(5, 50), (6, 60), (7, 70)]);
    r.run(D1);
    r.check("the first run");
    r.run(D2);
    r.check("the second day");
    r.run(D1);
    r.check("a re-run of the first day");

    // A crash after the commit, then the retry.
    let crashed = common::command(dir, &["run", "p", "--date", D2])
        .env("WEIR_FAILPOINT", "task_after_target_commit")
        .output()
        .expect("run weir");
    assert!(!crashed.status.success(), "{}: the failpoint must stop the run", case.name);
    r.committed(D2);
    r.check("a crash after the commit");
    r.run(D2);
    r.check("the retry after the crash");

    // The source of the first day is corrected: a value changed, a row gone, a row added.
    r.write_day(D1, &[(1, 10), (2, 25), (3, 30), (8, 80)]);
    r.run(D1);
    r.check("a corrected first day");

    // A backfill over the intervals that exist runs both again; a clear runs the second again.
    ok(dir, &["backfill", "p", "--from", D1, "--to", D2, "--reprocess", "all"]);
    // The two intervals run at once: for a table that each run replaces whole, either may commit last.
    let d1_last = r.case.semantics == Semantics::LastRun && r.target() == sorted(&r.files[D1]);
    let order = if d1_last { [D2, D1] } else { [D1, D2] };
    for day in order {
        r.committed(day);
    }
    r.check("a backfill with --reprocess all");
    ok(dir, &["clear", "p", "t", "--date", D2, "--wait"]);
    r.committed(D2);
    r.check("weir clear");

    // The next interval: new rows and a row of the first day updated late.
    r.write_day(D3, &[(9, 90), (10, 100), (2, 26)]);
    r.run(D3);
    r.check("the next day with new and late-updated rows");
}

#[test]
fn every_sink_and_mode_holds_what_its_semantics_promise_through_reruns_crashes_backfills_and_clears() {
    for (i, case) in CASES.iter().enumerate() {
        let db = match case.target {
            Target::Postgres => common::pg::server().database(&format!("matrix_{i}")),
            _ => String::new(),
        };
        drive(case, &db);
    }
}

/// A REST API of records with `updated_at`, filtered server-side by instant.
fn api(data: Arc<Mutex<Vec<(i64, String)>>>) -> Server {
    Server::start(move |req: &Req| {
        let since = req.param("updated_since").and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok());
        let page: usize = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let rows: Vec<_> = data
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, u)| since.is_none_or(|s| chrono::DateTime::parse_from_rfc3339(u).unwrap() > s))
            .map(|(i, u)| json!({"id": i, "updated_at": u}))
            .collect();
        Resp::json(json!(rows.iter().skip((page - 1) * 10).take(10).cloned().collect::<Vec<_>>()))
    })
}

/// Every (id, updated_at) version in the lake, sorted.
fn versions(dir: &Path) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> =
        ok(dir, &["sql", "SELECT id, CAST(updated_at AS VARCHAR) FROM raw.c", "--format", "csv"])
            .lines()
            .skip(1)
            .map(|l| {
                let (a, b) = l.split_once(',').unwrap();
                (a.parse().unwrap(), b.to_string())
            })
            .collect();
    v.sort();
    v
}

#[test]
fn incremental_sources_hold_each_version_once_and_every_current_record() {
    let sinks = [
        ("parquet per day", "{type: lake, table: raw.c, partition: \"date={{ ds }}\"}", false),
        ("delta per day", "{type: lake, table: raw.c, partition: \"date={{ ds }}\", format: delta}", false),
        ("delta append", "{type: lake, table: raw.c, format: delta, mode: append}", false),
        ("delta merge", "{type: lake, table: raw.c, format: delta, mode: merge, keys: [id]}", true),
    ];
    for (name, sink, merge) in sinks {
        let data: Arc<Mutex<Vec<(i64, String)>>> =
            Arc::new(Mutex::new((1..=25).map(|i| (i, format!("2026-03-01T10:{i:02}:00Z"))).collect()));
        let server = api(data.clone());
        let pipeline = format!(
            "version: 1\ntasks:\n  - name: c\n    source:\n      type: http_api\n      url: \"{}\"\n      paginate: {{type: page, size: 10}}\n      incremental: {{cursor_field: updated_at, param: updated_since, initial: \"2026-01-01T00:00:00Z\"}}\n    sink: {sink}\n",
            server.url("/c")
        );
        let tmp = common::project("inc", &[("pipelines/p.yaml", &pipeline)]);
        let dir = tmp.path();
        let check = |step: &str| {
            let held = versions(dir);
            let mut unique = held.clone();
            unique.dedup();
            assert_eq!(held, unique, "{name}: after {step} a version is held twice");
            let current: Vec<(i64, String)> = data.lock().unwrap().clone();
            for rec in &current {
                assert!(held.contains(rec), "{name}: after {step} the current {rec:?} is missing");
            }
            if merge {
                let mut want = current.clone();
                want.sort();
                assert_eq!(held, want, "{name}: after {step} the merge differs from the source");
            }
        };
        ok(dir, &["run", "p", "--date", D1]);
        check("the first day");
        {
            let mut d = data.lock().unwrap();
            d.extend((26..=30).map(|i| (i, format!("2026-03-02T09:{:02}:00Z", i - 25))));
            d[4].1 = "2026-03-02T08:00:00Z".into(); // record 5 updated late
        }
        ok(dir, &["run", "p", "--date", D2]);
        check("the second day");
        ok(dir, &["run", "p", "--date", D2]);
        check("a re-run of the second day");
        ok(dir, &["run", "p", "--date", D1]);
        check("a re-run of the first day");
        let crashed = common::command(dir, &["run", "p", "--date", D2])
            .env("WEIR_FAILPOINT", "task_after_target_commit")
            .output()
            .expect("run weir");
        assert!(!crashed.status.success());
        ok(dir, &["run", "p", "--date", D2]);
        check("a crash after the commit and its retry");
        data.lock().unwrap().push((31, "2026-03-03T07:00:00Z".into()));
        ok(dir, &["run", "p", "--date", D3]);
        check("the next day");
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
