//! The metadata store: pipelines (paused, where their schedule stands), runs, task instances with every attempt and
//! its log, and lineage (which run wrote which table version). SQLite in the project by default (`.weir/weir.db`,
//! WAL, one file), so `weir serve` needs no server.
//!
//! Every state change is one SQL statement or transaction, guarded by the state it expects (`... WHERE state =
//! 'queued'`), so two processes sharing the file never both claim a task, and a scheduler killed between two
//! statements leaves a state the next one resumes from. Timestamps are UTC RFC 3339 text with milliseconds, which
//! sort as they read.

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use weir_core::{Error, Result};

use crate::dag::{RunState, TaskState};
use crate::intervals::Interval;

/// Schema migrations, applied in order; the store records how many ran.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE pipelines (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT NOT NULL,
    -- where the next scheduled interval starts (the end of the last one created)
    next_start TEXT
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    run_id TEXT NOT NULL UNIQUE,
    logical_date TEXT NOT NULL,
    interval_start TEXT NOT NULL,
    interval_end TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    deadline_alerted INTEGER NOT NULL DEFAULT 0,
    UNIQUE (pipeline, interval_start)
);
CREATE INDEX runs_by_state ON runs (state, interval_start);
CREATE INDEX runs_by_pipeline ON runs (pipeline, interval_start);
CREATE TABLE task_instances (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    state TEXT NOT NULL,
    try_number INTEGER NOT NULL DEFAULT 0,
    max_tries INTEGER NOT NULL,
    next_try_at TEXT,
    started_at TEXT,
    ended_at TEXT,
    heartbeat_at TEXT,
    worker TEXT,
    error TEXT,
    PRIMARY KEY (run, task)
);
CREATE INDEX task_instances_by_state ON task_instances (state);
CREATE TABLE attempts (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    try_number INTEGER NOT NULL,
    state TEXT NOT NULL,
    worker TEXT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    log TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run, task, try_number)
);
CREATE TABLE lineage (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task TEXT NOT NULL,
    table_name TEXT NOT NULL,
    version INTEGER,
    rows INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX lineage_by_table ON lineage (table_name, version);
"#];

/// Time as stored.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Clone, Serialize)]
pub struct PipelineRow {
    pub name: String,
    pub paused: bool,
    pub first_seen: String,
    pub next_start: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub pipeline: String,
    pub run_id: String,
    pub logical_date: String,
    pub interval_start: String,
    pub interval_end: String,
    /// scheduled, manual or backfill.
    pub kind: String,
    pub state: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
}

impl RunRow {
    pub fn interval(&self) -> Option<Interval> {
        Some(Interval { start: parse_stamp(&self.interval_start)?, end: parse_stamp(&self.interval_end)? })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskInstanceRow {
    pub run: i64,
    pub task: String,
    pub state: String,
    pub try_number: u32,
    pub max_tries: u32,
    pub next_try_at: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub worker: Option<String>,
    pub error: Option<String>,
}

impl TaskInstanceRow {
    pub fn state(&self) -> TaskState {
        self.state.parse().unwrap_or(TaskState::None)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub run: i64,
    pub task: String,
    pub try_number: u32,
    pub state: String,
    pub worker: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    pub log: String,
}

/// How an attempt ended, and what the task instance becomes.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    /// success or failed (the attempt's own state).
    pub attempt_state: TaskState,
    /// success, failed or up_for_retry (the task instance's next state).
    pub next: TaskState,
    pub next_try_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub log: String,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

fn db_error(what: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::external(format!("metadata store: {what}"), e.to_string())
}

const RUN_COLUMNS: &str = "id, pipeline, run_id, logical_date, interval_start, interval_end, kind, state, created_at, \
                           started_at, ended_at";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        run_id: r.get(2)?,
        logical_date: r.get(3)?,
        interval_start: r.get(4)?,
        interval_end: r.get(5)?,
        kind: r.get(6)?,
        state: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        ended_at: r.get(10)?,
    })
}

const TI_COLUMNS: &str =
    "run, task, state, try_number, max_tries, next_try_at, started_at, ended_at, heartbeat_at, worker, error";

fn ti_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskInstanceRow> {
    Ok(TaskInstanceRow {
        run: r.get(0)?,
        task: r.get(1)?,
        state: r.get(2)?,
        try_number: r.get(3)?,
        max_tries: r.get(4)?,
        next_try_at: r.get(5)?,
        started_at: r.get(6)?,
        ended_at: r.get(7)?,
        heartbeat_at: r.get(8)?,
        worker: r.get(9)?,
        error: r.get(10)?,
    })
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| Error::external(format!("metadata store {}", path.display()), e.to_string()))?;
        Self::init(conn)
    }

    /// A store in memory (tests, dry runs).
    pub fn in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory().map_err(db_error("open"))?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_error("busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error("WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error("synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db_error("foreign keys"))?;
        let store = Store { conn: Mutex::new(conn) };
        store.migrate()?;
        Ok(store)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("migrate"))?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS weir_schema (version INTEGER NOT NULL)")
            .map_err(db_error("migrate"))?;
        let done: i64 = tx
            .query_row("SELECT coalesce(max(version), 0) FROM weir_schema", [], |r| r.get(0))
            .map_err(db_error("migrate"))?;
        if done as usize > MIGRATIONS.len() {
            return Err(Error::external(
                "metadata store",
                format!("it was written by a newer weir (schema {done}, this weir knows {})", MIGRATIONS.len()),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            tx.execute_batch(sql).map_err(db_error("migrate"))?;
            tx.execute("INSERT INTO weir_schema (version) VALUES (?1)", [i as i64 + 1]).map_err(db_error("migrate"))?;
        }
        tx.commit().map_err(db_error("migrate"))
    }

    /// The pipeline's row, created on first sight.
    pub fn pipeline(&self, name: &str, now: DateTime<Utc>) -> Result<PipelineRow> {
        let conn = self.conn();
        conn.execute("INSERT OR IGNORE INTO pipelines (name, first_seen) VALUES (?1, ?2)", params![name, stamp(now)])
            .map_err(db_error("pipeline"))?;
        conn.query_row("SELECT name, paused, first_seen, next_start FROM pipelines WHERE name = ?1", [name], |r| {
            Ok(PipelineRow { name: r.get(0)?, paused: r.get(1)?, first_seen: r.get(2)?, next_start: r.get(3)? })
        })
        .map_err(db_error("pipeline"))
    }

    pub fn pipelines(&self) -> Result<Vec<PipelineRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT name, paused, first_seen, next_start FROM pipelines ORDER BY name")
            .map_err(db_error("pipelines"))?;
        let rows = st
            .query_map([], |r| {
                Ok(PipelineRow { name: r.get(0)?, paused: r.get(1)?, first_seen: r.get(2)?, next_start: r.get(3)? })
            })
            .map_err(db_error("pipelines"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("pipelines"))
    }

    pub fn set_paused(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<()> {
        self.pipeline(name, now)?;
        self.conn()
            .execute("UPDATE pipelines SET paused = ?2 WHERE name = ?1", params![name, paused])
            .map_err(db_error("pause"))?;
        Ok(())
    }

    /// Creates the runs of scheduled intervals and moves the pipeline's schedule past them, in one transaction:
    /// a crash leaves both or neither, and an interval that already has a run is not created twice.
    pub fn schedule_runs(
        &self,
        pipeline: &str,
        runs: &[(Interval, String, String)],
        tasks: &[(String, u32)],
        next_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>> {
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("schedule"))?;
        let mut ids = Vec::new();
        for (interval, ds, run_id) in runs {
            if let Some(id) = insert_run(&tx, pipeline, interval, ds, run_id, "scheduled", tasks, now)? {
                ids.push(id);
            }
        }
        tx.execute("UPDATE pipelines SET next_start = ?2 WHERE name = ?1", params![pipeline, stamp(next_start)])
            .map_err(db_error("schedule"))?;
        tx.commit().map_err(db_error("schedule"))?;
        Ok(ids)
    }

    /// A manual or backfill run of one interval; None when the interval already has a run.
    pub fn create_run(
        &self,
        pipeline: &str,
        interval: &Interval,
        ds: &str,
        kind: &str,
        tasks: &[(String, u32)],
        now: DateTime<Utc>,
    ) -> Result<Option<i64>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("run"))?;
        let run_id = uuid::Uuid::now_v7().simple().to_string();
        let id = insert_run(&tx, pipeline, interval, ds, &run_id, kind, tasks, now)?;
        tx.commit().map_err(db_error("run"))?;
        Ok(id)
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRow>> {
        self.conn()
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"), [id], run_row)
            .optional()
            .map_err(db_error("run"))
    }

    pub fn run_for_interval(&self, pipeline: &str, start: DateTime<Utc>) -> Result<Option<RunRow>> {
        self.conn()
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1 AND interval_start = ?2"),
                params![pipeline, stamp(start)],
                run_row,
            )
            .optional()
            .map_err(db_error("run"))
    }

    /// Runs, newest interval first: of one pipeline and/or in some states, at most `limit` after `offset`.
    pub fn runs(
        &self,
        pipeline: Option<&str>,
        states: &[RunState],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RunRow>> {
        let conn = self.conn();
        let states: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR pipeline = ?1)");
        if !states.is_empty() {
            sql.push_str(&format!(" AND state IN ({})", states.join(", ")));
        }
        sql.push_str(" ORDER BY interval_start DESC, id DESC LIMIT ?2 OFFSET ?3");
        let mut st = conn.prepare(&sql).map_err(db_error("runs"))?;
        let rows = st.query_map(params![pipeline, limit as i64, offset as i64], run_row).map_err(db_error("runs"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("runs"))
    }

    /// Runs that are queued or running, oldest interval first (the scheduler's work list).
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE state IN ('queued', 'running') ORDER BY interval_start, id"
            ))
            .map_err(db_error("runs"))?;
        let rows = st.query_map([], run_row).map_err(db_error("runs"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("runs"))
    }

    /// Moves a run between states; false when it was not in `from`.
    pub fn set_run_state(&self, id: i64, from: RunState, to: RunState, now: DateTime<Utc>) -> Result<bool> {
        let set = match to {
            RunState::Running => "started_at = coalesce(started_at, ?4)",
            RunState::Success | RunState::Failed => "ended_at = ?4",
            RunState::Queued => "ended_at = NULL, started_at = coalesce(?4, started_at)",
        };
        let started = (to != RunState::Queued).then(|| stamp(now));
        let n = self
            .conn()
            .execute(
                &format!("UPDATE runs SET state = ?3, {set} WHERE id = ?1 AND state = ?2"),
                params![id, from.as_str(), to.as_str(), started],
            )
            .map_err(db_error("run state"))?;
        Ok(n == 1)
    }

    /// Runs past their deadline not yet alerted; marks them alerted.
    pub fn mark_deadline_alerted(&self, id: i64) -> Result<bool> {
        let n = self
            .conn()
            .execute("UPDATE runs SET deadline_alerted = 1 WHERE id = ?1 AND deadline_alerted = 0", [id])
            .map_err(db_error("deadline"))?;
        Ok(n == 1)
    }

    pub fn task_instances(&self, run: i64) -> Result<Vec<TaskInstanceRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!("SELECT {TI_COLUMNS} FROM task_instances WHERE run = ?1"))
            .map_err(db_error("task instances"))?;
        let rows = st.query_map([run], ti_row).map_err(db_error("task instances"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("task instances"))
    }

    /// Task instances in a state, across runs (oldest run first).
    pub fn task_instances_in(&self, state: TaskState) -> Result<Vec<TaskInstanceRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!(
                "SELECT {TI_COLUMNS} FROM task_instances t WHERE state = ?1 ORDER BY (SELECT interval_start FROM runs r WHERE r.id = t.run), run"
            ))
            .map_err(db_error("task instances"))?;
        let rows = st.query_map([state.as_str()], ti_row).map_err(db_error("task instances"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("task instances"))
    }

    /// Moves a task instance from one state to another (the scheduler's decisions); false when it was not in `from`.
    pub fn set_task_state(&self, run: i64, task: &str, from: TaskState, to: TaskState) -> Result<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE task_instances SET state = ?4, next_try_at = NULL WHERE run = ?1 AND task = ?2 AND state = ?3",
                params![run, task, from.as_str(), to.as_str()],
            )
            .map_err(db_error("task state"))?;
        Ok(n == 1)
    }

    /// Claims a queued task instance for `worker`: only one claimer wins. Returns its try number.
    pub fn claim(&self, run: i64, task: &str, worker: &str, now: DateTime<Utc>) -> Result<Option<u32>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("claim"))?;
        let n = tx
            .execute(
                "UPDATE task_instances SET state = 'running', try_number = try_number + 1, started_at = ?4, \
                 ended_at = NULL, heartbeat_at = ?4, worker = ?3, error = NULL \
                 WHERE run = ?1 AND task = ?2 AND state = 'queued'",
                params![run, task, worker, stamp(now)],
            )
            .map_err(db_error("claim"))?;
        if n == 0 {
            return Ok(None);
        }
        let try_number: u32 = tx
            .query_row("SELECT try_number FROM task_instances WHERE run = ?1 AND task = ?2", params![run, task], |r| {
                r.get(0)
            })
            .map_err(db_error("claim"))?;
        tx.execute(
            "INSERT OR REPLACE INTO attempts (run, task, try_number, state, worker, started_at) VALUES (?1, ?2, ?3, 'running', ?4, ?5)",
            params![run, task, try_number, worker, stamp(now)],
        )
        .map_err(db_error("claim"))?;
        tx.commit().map_err(db_error("claim"))?;
        Ok(Some(try_number))
    }

    pub fn heartbeat(&self, run: i64, task: &str, worker: &str, now: DateTime<Utc>) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE task_instances SET heartbeat_at = ?4 WHERE run = ?1 AND task = ?2 AND worker = ?3 AND state = 'running'",
                params![run, task, worker, stamp(now)],
            )
            .map_err(db_error("heartbeat"))?;
        Ok(())
    }

    /// Records how attempt `try_number` ended, if that attempt still owns the task instance (a cleared or re-claimed
    /// task ignores the late result). Returns whether it was recorded.
    pub fn finish_attempt(
        &self,
        run: i64,
        task: &str,
        try_number: u32,
        end: &AttemptEnd,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("finish"))?;
        let n = tx
            .execute(
                "UPDATE task_instances SET state = ?4, ended_at = ?5, next_try_at = ?6, error = ?7 \
                 WHERE run = ?1 AND task = ?2 AND try_number = ?3 AND state = 'running'",
                params![run, task, try_number, end.next.as_str(), stamp(now), end.next_try_at.map(stamp), end.error],
            )
            .map_err(db_error("finish"))?;
        tx.execute(
            "UPDATE attempts SET state = ?4, ended_at = ?5, error = ?6, log = ?7 WHERE run = ?1 AND task = ?2 AND try_number = ?3",
            params![run, task, try_number, end.attempt_state.as_str(), stamp(now), end.error, end.log],
        )
        .map_err(db_error("finish"))?;
        tx.commit().map_err(db_error("finish"))?;
        Ok(n == 1)
    }

    /// An attempt whose process died goes back to the queue; it does not use up a retry (the task did not fail).
    pub fn requeue_lost(&self, run: i64, task: &str, try_number: u32, why: &str, now: DateTime<Utc>) -> Result<bool> {
        let mut conn = self.conn();
        let tx =
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("requeue"))?;
        let n = tx
            .execute(
                "UPDATE task_instances SET state = 'queued', max_tries = max_tries + 1, error = ?4, worker = NULL \
                 WHERE run = ?1 AND task = ?2 AND try_number = ?3 AND state = 'running'",
                params![run, task, try_number, why],
            )
            .map_err(db_error("requeue"))?;
        tx.execute(
            "UPDATE attempts SET state = 'failed', ended_at = ?4, error = ?5 WHERE run = ?1 AND task = ?2 AND try_number = ?3",
            params![run, task, try_number, stamp(now), why],
        )
        .map_err(db_error("requeue"))?;
        tx.commit().map_err(db_error("requeue"))?;
        Ok(n == 1)
    }

    /// Up-for-retry task instances whose wait is over become queued.
    pub fn requeue_retries(&self, now: DateTime<Utc>) -> Result<usize> {
        self.conn()
            .execute(
                "UPDATE task_instances SET state = 'queued', next_try_at = NULL WHERE state = 'up_for_retry' AND (next_try_at IS NULL OR next_try_at <= ?1)",
                [stamp(now)],
            )
            .map_err(db_error("retries"))
    }

    /// The earliest time an up-for-retry task becomes due.
    pub fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = self
            .conn()
            .query_row("SELECT min(next_try_at) FROM task_instances WHERE state = 'up_for_retry'", [], |r| r.get(0))
            .map_err(db_error("retries"))?;
        Ok(t.as_deref().and_then(parse_stamp))
    }

    /// Resets tasks of a run to run again (`weir clear`): each (task, attempts allowed) gets that many more
    /// attempts, and the run is queued again. A running attempt's late result is then ignored.
    pub fn clear(&self, run: i64, tasks: &[(String, u32)]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_error("clear"))?;
        let mut n = 0;
        for (task, budget) in tasks {
            n += tx
                .execute(
                    "UPDATE task_instances SET state = 'none', max_tries = try_number + ?3, next_try_at = NULL,                      error = NULL, ended_at = NULL, worker = NULL WHERE run = ?1 AND task = ?2",
                    params![run, task, budget],
                )
                .map_err(db_error("clear"))?;
        }
        if n > 0 {
            tx.execute("UPDATE runs SET state = 'queued', ended_at = NULL WHERE id = ?1", [run])
                .map_err(db_error("clear"))?;
        }
        tx.commit().map_err(db_error("clear"))?;
        Ok(n)
    }

    pub fn attempts(&self, run: i64, task: &str) -> Result<Vec<AttemptRow>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT run, task, try_number, state, worker, started_at, ended_at, error, log FROM attempts \
                 WHERE run = ?1 AND task = ?2 ORDER BY try_number",
            )
            .map_err(db_error("attempts"))?;
        let rows = st
            .query_map(params![run, task], |r| {
                Ok(AttemptRow {
                    run: r.get(0)?,
                    task: r.get(1)?,
                    try_number: r.get(2)?,
                    state: r.get(3)?,
                    worker: r.get(4)?,
                    started_at: r.get(5)?,
                    ended_at: r.get(6)?,
                    error: r.get(7)?,
                    log: r.get(8)?,
                })
            })
            .map_err(db_error("attempts"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("attempts"))
    }

    /// Records that a task of a run wrote a table version.
    pub fn record_lineage(
        &self,
        run: i64,
        task: &str,
        table: &str,
        version: Option<u64>,
        rows: u64,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO lineage (run, task, table_name, version, rows, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run, task, table, version.map(|v| v as i64), rows as i64, stamp(now)],
            )
            .map_err(db_error("lineage"))?;
        Ok(())
    }

    /// Which run and task wrote each version of `table`: (version, run, task, rows).
    pub fn lineage(&self, table: &str) -> Result<Vec<(Option<i64>, i64, String, i64)>> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT version, run, task, rows FROM lineage WHERE table_name = ?1 ORDER BY at")
            .map_err(db_error("lineage"))?;
        let rows =
            st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(db_error("lineage"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("lineage"))
    }

    /// Deletes finished runs (with their task instances, attempts, logs and lineage) whose interval ended before
    /// `before`. Returns how many runs went.
    pub fn delete_older_than(&self, before: DateTime<Utc>) -> Result<usize> {
        self.conn()
            .execute("DELETE FROM runs WHERE interval_end < ?1 AND state IN ('success', 'failed')", [stamp(before)])
            .map_err(db_error("clean"))
    }
}

#[allow(clippy::too_many_arguments)]
fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    pipeline: &str,
    interval: &Interval,
    ds: &str,
    run_id: &str,
    kind: &str,
    tasks: &[(String, u32)],
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO runs (pipeline, run_id, logical_date, interval_start, interval_end, kind, state, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7)",
            params![pipeline, run_id, ds, stamp(interval.start), stamp(interval.end), kind, stamp(now)],
        )
        .map_err(db_error("create run"))?;
    if n == 0 {
        return Ok(None);
    }
    let id = tx.last_insert_rowid();
    for (task, max_tries) in tasks {
        tx.execute(
            "INSERT INTO task_instances (run, task, state, max_tries) VALUES (?1, ?2, 'none', ?3)",
            params![id, task, max_tries],
        )
        .map_err(db_error("create run"))?;
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_stamp(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn an_interval_has_one_run_and_a_task_one_claimer() -> Result<()> {
        let store = Store::in_memory()?;
        let now = t("2026-03-02T00:00:00Z");
        let interval = Interval { start: t("2026-03-01T00:00:00Z"), end: t("2026-03-02T00:00:00Z") };
        let tasks = vec![("a".to_string(), 2)];
        let runs = vec![(interval, "2026-03-01".to_string(), "r1".to_string())];
        let first = store.schedule_runs("p", &runs, &tasks, interval.end, now)?;
        assert_eq!(first.len(), 1);
        // The same interval again (a scheduler that crashed before it saw its own commit) creates nothing.
        let runs = vec![(interval, "2026-03-01".to_string(), "r2".to_string())];
        assert!(store.schedule_runs("p", &runs, &tasks, interval.end, now)?.is_empty());
        assert!(store.create_run("p", &interval, "2026-03-01", "manual", &tasks, now)?.is_none());
        let run = first[0];
        assert!(store.set_task_state(run, "a", TaskState::None, TaskState::Queued)?);
        assert_eq!(store.claim(run, "a", "w1", now)?, Some(1));
        assert_eq!(store.claim(run, "a", "w2", now)?, None, "a running task cannot be claimed again");
        let end = AttemptEnd {
            attempt_state: TaskState::Failed,
            next: TaskState::UpForRetry,
            next_try_at: Some(now + chrono::Duration::seconds(30)),
            error: Some("boom".into()),
            log: "attempt log".into(),
        };
        assert!(store.finish_attempt(run, "a", 1, &end, now)?);
        assert!(!store.finish_attempt(run, "a", 1, &end, now)?, "a late result does not count twice");
        assert_eq!(store.requeue_retries(now)?, 0, "the retry waits");
        assert_eq!(store.requeue_retries(now + chrono::Duration::seconds(31))?, 1);
        assert_eq!(store.claim(run, "a", "w2", now)?, Some(2));
        let attempts = store.attempts(run, "a")?;
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].log, "attempt log");
        Ok(())
    }
}
