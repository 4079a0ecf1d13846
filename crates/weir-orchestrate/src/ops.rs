//! The operator's actions, shared by the CLI and the REST API: trigger a run, backfill a date range, clear a task
//! and its downstream tasks, pause. Each is a few guarded store writes; the scheduler does the rest.

use chrono::{DateTime, NaiveDate, Utc};
use weir_core::{Error, Result};

use crate::dag::TaskState;
use crate::scheduler::PipelineMeta;
use crate::store::{RunRow, Store};

/// A manual run of `meta` for the interval `when` names (a date, or on a pipeline with several intervals a day,
/// an interval's start: see [`PipelineMeta::interval_named`]). An existing run of that interval is an error that
/// says how to run it again.
pub async fn trigger(store: &Store, meta: &PipelineMeta, when: &str, now: DateTime<Utc>) -> Result<RunRow> {
    let interval = meta.interval_named(when)?;
    let ds = interval.start.with_timezone(&meta.timezone()).format("%Y-%m-%d").to_string();
    let when = when.trim();
    match store.create_run(&meta.name, &interval, &ds, "manual", &meta.new_task_instances(), now).await? {
        Some(id) => store.run(id).await?.ok_or_else(|| Error::engine("trigger", "the new run vanished")),
        None => {
            let existing = store.run_for_interval(&meta.name, interval.start).await?;
            let state = existing.map(|r| r.state).unwrap_or_default();
            Err(Error::config(
                Default::default(),
                format!(
                    "{} already has a run for {when} ({state}); run it again with `weir clear {} TASK --date {when}` or `weir backfill {} --from {ds} --to {ds} --reprocess all`",
                    meta.name, meta.name, meta.name
                ),
            ))
        }
    }
}

/// What to do with runs that already exist in a backfill's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprocess {
    /// Leave them.
    None,
    /// Run their failed tasks (and what depends on them) again.
    Failed,
    /// Run every task again.
    All,
}

impl std::str::FromStr for Reprocess {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Reprocess::None),
            "failed" => Ok(Reprocess::Failed),
            "all" => Ok(Reprocess::All),
            other => Err(format!("`--reprocess {other}`: use none, failed or all")),
        }
    }
}

/// One date of a backfill and what happens to it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackfillItem {
    pub date: String,
    /// create, rerun_failed, rerun_all, or skip (with the existing run's state).
    pub action: String,
    pub existing: Option<String>,
    pub run: Option<i64>,
}

/// Plans (and unless `dry_run`, makes) the runs of a backfill from `from` to `to` inclusive: every interval of the
/// schedule on those days (24 a day for an hourly pipeline).
pub async fn backfill(
    store: &Store,
    meta: &PipelineMeta,
    from: NaiveDate,
    to: NaiveDate,
    reprocess: Reprocess,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<Vec<BackfillItem>> {
    if to < from {
        return Err(Error::config(Default::default(), format!("--to {to} is before --from {from}")));
    }
    if (to - from).num_days() > 3660 {
        return Err(Error::config(Default::default(), "a backfill covers at most ten years; split it"));
    }
    let mut out = Vec::new();
    let tz = meta.timezone();
    let days = from.iter_days().take_while(|d| *d <= to);
    let intervals = days.flat_map(|day| {
        let on_day = meta.intervals_on(day);
        let several = on_day.len() > 1;
        on_day.into_iter().map(move |i| (day, i, several))
    });
    for (day, interval, several) in intervals {
        let ds = day.format("%Y-%m-%d").to_string();
        let label =
            if several { interval.start.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string() } else { ds.clone() };
        let existing = store.run_for_interval(&meta.name, interval.start).await?;
        let mut item = BackfillItem {
            date: label,
            action: String::new(),
            existing: existing.as_ref().map(|r| r.state.clone()),
            run: existing.as_ref().map(|r| r.id),
        };
        match existing {
            None => {
                item.action = "create".into();
                if !dry_run {
                    item.run = store
                        .create_run(&meta.name, &interval, &ds, "backfill", &meta.new_task_instances(), now)
                        .await?;
                }
            }
            Some(run) => {
                let finished = run.state == "success" || run.state == "failed";
                let rerun: Vec<String> = match reprocess {
                    _ if !finished => Vec::new(),
                    Reprocess::None => Vec::new(),
                    Reprocess::All => meta.dag.names.clone(),
                    Reprocess::Failed => {
                        let failed: Vec<usize> = store
                            .task_instances(run.id)
                            .await?
                            .iter()
                            .filter(|t| matches!(t.state(), TaskState::Failed | TaskState::UpstreamFailed))
                            .filter_map(|t| meta.dag.names.iter().position(|n| *n == t.task))
                            .collect();
                        with_downstream(meta, &failed)
                    }
                };
                item.action = match (rerun.is_empty(), reprocess) {
                    (true, _) => "skip".into(),
                    (false, Reprocess::All) => "rerun_all".into(),
                    (false, _) => "rerun_failed".into(),
                };
                if !rerun.is_empty() && !dry_run {
                    store.clear(run.id, &budgets(meta, &rerun)).await?;
                }
            }
        }
        out.push(item);
    }
    Ok(out)
}

/// Names of `tasks` and everything downstream of them, in DAG order.
fn with_downstream(meta: &PipelineMeta, tasks: &[usize]) -> Vec<String> {
    let mut all: Vec<usize> = tasks.to_vec();
    for &t in tasks {
        all.extend(meta.dag.downstream_of(t));
    }
    all.sort_unstable();
    all.dedup();
    all.into_iter().map(|i| meta.dag.names[i].clone()).collect()
}

fn budgets(meta: &PipelineMeta, tasks: &[String]) -> Vec<(String, u32)> {
    tasks
        .iter()
        .filter_map(|t| meta.dag.names.iter().position(|n| n == t).map(|i| (t.clone(), meta.max_tries[i])))
        .collect()
}

/// The run of the interval a user named (see [`PipelineMeta::interval_named`]).
pub async fn run_named(store: &Store, meta: &PipelineMeta, when: &str) -> Result<RunRow> {
    let interval = meta.interval_named(when)?;
    store.run_for_interval(&meta.name, interval.start).await?.ok_or_else(|| {
        Error::config(
            Default::default(),
            format!("{} has no run for {when}; start one with `weir trigger {} --date {when}`", meta.name, meta.name),
        )
    })
}

/// Clears `task` of `run` (and its downstream tasks unless `only`), so the scheduler runs them again. Returns the
/// tasks cleared.
pub async fn clear(store: &Store, meta: &PipelineMeta, run: &RunRow, task: &str, only: bool) -> Result<Vec<String>> {
    let Some(index) = meta.dag.names.iter().position(|n| n == task) else {
        let hint = meta.dag.names.join(", ");
        return Err(Error::config(
            Default::default(),
            format!("pipeline `{}` has no task `{task}` (tasks: {hint})", meta.name),
        ));
    };
    let tasks = if only { vec![task.to_string()] } else { with_downstream(meta, &[index]) };
    store.clear(run.id, &budgets(meta, &tasks)).await?;
    Ok(tasks)
}
