//! The scheduler loop: creates the runs of due intervals, decides which waiting tasks may start (the state machine
//! in `dag`), claims queued task instances and runs them here, records every attempt, retries with backoff, enforces
//! timeouts, and sends alerts.
//!
//! All state lives in the metadata store, so the loop itself can be killed at any moment: on restart it reads the
//! runs back, and a task instance whose process died (its pid is gone, or its heartbeat stopped) is queued again;
//! tasks are idempotent by logical date, so the re-run replaces what the lost attempt may have half-done. The loop
//! wakes when an attempt ends (the hand-off to downstream tasks does not wait for a tick), when a retry is due, and
//! at least every `poll`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use weir_config::{AlertEvent, Pipeline, Project, Schedule};
use weir_core::{Error, Result, RunContext};

use crate::alerts::{self, AlertMessage};
use crate::dag::{self, Dag, RunState, TaskState};
use crate::executor::{humanize, AfterFailure};
use crate::intervals::{self, Interval};
use crate::store::{parse_stamp, AttemptEnd, NewTaskInstance, RunRow, Store, TaskInstanceRow};

/// How the loop behaves.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Task attempts run at once by this process.
    pub parallelism: usize,
    /// How often a running attempt says it is alive.
    pub heartbeat: Duration,
    /// An attempt silent this long (on another host, or whose pid cannot be checked) is lost and re-queued.
    pub heartbeat_timeout: Duration,
    /// Create the runs of scheduled intervals (the daemon); a backfill or trigger only works off its own runs.
    pub create_scheduled_runs: bool,
    /// The longest the loop sleeps without an event.
    pub poll: Duration,
    /// Runs of one pipeline at once, instead of each schedule's `max_active_runs` (a backfill's `--max-active`).
    pub max_active_runs: Option<usize>,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            parallelism: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2),
            heartbeat: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(60),
            create_scheduled_runs: true,
            poll: Duration::from_secs(1),
            max_active_runs: None,
        }
    }
}

/// How often a running attempt's output so far is written to its log.
const LIVE_LOG_EVERY: Duration = Duration::from_secs(1);

/// What the scheduler knows of a pipeline file (its shape does not depend on the logical date).
#[derive(Debug)]
pub struct PipelineMeta {
    /// The file stem: the name runs are stored under.
    pub name: String,
    pub file: PathBuf,
    pub schedule: Option<Schedule>,
    pub dag: Dag,
    /// Attempts allowed per task (retries + 1), in DAG order.
    pub max_tries: Vec<u32>,
    pub pipeline: Pipeline,
    /// Its tasks' sources and sinks, parsed and checked (see `weir_engine::plan`).
    pub plan: weir_engine::plan::PipelinePlan,
}

impl PipelineMeta {
    /// Reads a pipeline file for its shape and schedule (templated for today's date).
    pub fn load(project: &Project, file: &std::path::Path) -> std::result::Result<PipelineMeta, String> {
        let today = Utc::now().date_naive();
        let ctx = RunContext::daily(today, "schedule");
        let report = |ds: Vec<weir_config::Diagnostic>| ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        let pipeline = Pipeline::load(file, &project.models_dir(), &ctx).map_err(report)?;
        let undeclared_pools = project.check_pools(&pipeline);
        if !undeclared_pools.is_empty() {
            return Err(report(undeclared_pools));
        }
        let plan = weir_engine::plan::plan(&pipeline, &weir_connect::Registry::builtin()).map_err(report)?;
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(PipelineMeta {
            name,
            file: file.to_path_buf(),
            schedule: pipeline.schedule.clone(),
            dag: Dag::from_pipeline(&pipeline),
            max_tries: pipeline.tasks.iter().map(|t| t.retries.max + 1).collect(),
            pipeline,
            plan,
        })
    }

    /// The task instances a new run of this pipeline starts with.
    pub fn new_task_instances(&self) -> Vec<NewTaskInstance> {
        self.pipeline
            .tasks
            .iter()
            .zip(&self.max_tries)
            .map(|(t, &max_tries)| NewTaskInstance {
                task: t.name.clone(),
                max_tries,
                pool: t.pool.as_ref().map(|p| p.name.clone()),
            })
            .collect()
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        self.schedule.as_ref().map_or(chrono_tz::UTC, |s| s.timezone)
    }

    fn max_active_runs(&self) -> usize {
        self.schedule.as_ref().map_or(16, |s| s.max_active_runs)
    }

    /// The interval of a manual run or backfill for logical date `ds`: the schedule's interval that starts that
    /// day, or the whole day.
    pub fn interval_for_date(&self, date: chrono::NaiveDate) -> Interval {
        let tz = self.timezone();
        let day_start = |d: chrono::NaiveDate| {
            use chrono::TimeZone;
            let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
            tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc)).unwrap_or_else(|| naive.and_utc())
        };
        let start = day_start(date);
        if let Some(s) = &self.schedule {
            if let Some(i) = intervals::due(
                &Schedule { catchup: true, start_date: s.start_date.or(Some(date)), end_date: None, ..s.clone() },
                start,
                start + chrono::Duration::days(400),
            )
            .into_iter()
            .next()
            .filter(|i| i.start.with_timezone(&tz).date_naive() == date)
            {
                return i;
            }
        }
        Interval { start, end: day_start(date.succ_opt().unwrap_or(date)) }
    }

    /// Every interval of the schedule that starts on `date` (24 for an hourly pipeline), or the whole day.
    pub fn intervals_on(&self, date: chrono::NaiveDate) -> Vec<Interval> {
        let first = self.interval_for_date(date);
        let tz = self.timezone();
        let Some(s) = &self.schedule else { return vec![first] };
        let day_end = self.interval_for_date(date.succ_opt().unwrap_or(date)).start.max(first.end);
        let all = intervals::due(
            &Schedule { catchup: true, start_date: s.start_date.or(Some(date)), end_date: None, ..s.clone() },
            first.start,
            day_end + chrono::Duration::days(400),
        );
        let on_day: Vec<Interval> =
            all.into_iter().take_while(|i| i.start.with_timezone(&tz).date_naive() == date).collect();
        if on_day.is_empty() {
            vec![first]
        } else {
            on_day
        }
    }

    /// The interval a user names on the command line: `2026-03-01` (a pipeline with one interval that day) or
    /// its start, `2026-03-01T14:00` (in the schedule's time zone). A bare date on a pipeline with several intervals
    /// a day is an error that lists how to name them.
    pub fn interval_named(&self, when: &str) -> Result<Interval> {
        use chrono::TimeZone;
        let when = when.trim();
        if let Ok(date) = chrono::NaiveDate::parse_from_str(when, "%Y-%m-%d") {
            let on_day = self.intervals_on(date);
            if on_day.len() == 1 {
                return Ok(on_day[0]);
            }
            let tz = self.timezone();
            let starts: Vec<String> = on_day
                .iter()
                .take(3)
                .map(|i| i.start.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string())
                .collect();
            return Err(Error::config(
                Default::default(),
                format!(
                    "{} has {} intervals on {date}; name one by its start, such as {}",
                    self.name,
                    on_day.len(),
                    starts.join(", ")
                ),
            ));
        }
        let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(when, f).ok())
            .ok_or_else(|| {
                Error::config(
                    Default::default(),
                    format!("`{when}` is neither a date (YYYY-MM-DD) nor a start (YYYY-MM-DDTHH:MM)"),
                )
            })?;
        let tz = self.timezone();
        let start = tz.from_local_datetime(&local).earliest().map(|t| t.with_timezone(&Utc)).unwrap_or(local.and_utc());
        self.intervals_on(local.date())
            .into_iter()
            .find(|i| i.start == start)
            .ok_or_else(|| Error::config(Default::default(), format!("no interval of {} starts at {when}", self.name)))
    }
}

/// The pipeline files of a project.
pub fn pipeline_files(project: &Project) -> Vec<PathBuf> {
    weir_config::project::yaml_files(&project.pipelines_dir())
}

/// How long a scheduler keeps trying to record an attempt's result in a failing store before it gives up (and the
/// attempt is re-queued once its heartbeat stops).
const FINISH_RETRY_FOR: Duration = Duration::from_secs(600);

/// This process's name in the store: `host:pid`.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{host}:{}", std::process::id())
}

/// Whether `worker` names a process on the host of `me` (this process's id) that is gone.
fn is_dead_here(worker: &str, me: &str) -> bool {
    let Some((host, pid)) = worker.rsplit_once(':') else { return false };
    let here = me.rsplit_once(':').map_or("", |(h, _)| h);
    host == here && pid.parse::<u32>().is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// A pipeline file rendered for one run, with the file's modification time then.
type Rendered = (SystemTime, Arc<crate::executor::PlannedPipeline>);

pub struct Scheduler {
    project: Arc<Project>,
    store: Arc<Store>,
    options: SchedulerOptions,
    worker: String,
    pipelines: Mutex<HashMap<PathBuf, (SystemTime, Arc<PipelineMeta>)>>,
    /// Pipelines whose file does not load, with the problem (reported once per change).
    broken: Mutex<HashMap<PathBuf, String>>,
    wake: Arc<tokio::sync::Notify>,
    running: Arc<AtomicUsize>,
    /// Task instances this process is running.
    mine: Arc<Mutex<HashSet<(i64, String)>>>,
    /// Pipeline files rendered for a run (file, run id) → (file time, pipeline).
    rendered: Mutex<HashMap<(PathBuf, i64), Rendered>>,
    /// Whether the store's pools were made the project's (once per process, at its first pass).
    pools_set: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("worker", &self.worker).finish()
    }
}

impl Scheduler {
    pub fn new(project: Project, store: Arc<Store>, options: SchedulerOptions) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            project: Arc::new(project),
            store,
            options,
            worker: worker_id(),
            pipelines: Mutex::new(HashMap::new()),
            broken: Mutex::new(HashMap::new()),
            wake: Arc::new(tokio::sync::Notify::new()),
            running: Arc::new(AtomicUsize::new(0)),
            mine: Arc::new(Mutex::new(HashSet::new())),
            rendered: Mutex::new(HashMap::new()),
            pools_set: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Wakes the loop (a run was triggered, a task cleared).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The project's pipelines, re-read when their file changed. Files that do not load are logged and left out.
    pub fn pipelines(&self) -> HashMap<String, Arc<PipelineMeta>> {
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = HashMap::new();
        let files = pipeline_files(&self.project);
        cache.retain(|f, _| files.contains(f));
        for file in files {
            let mtime = std::fs::metadata(&file).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            let fresh = cache.get(&file).filter(|(t, _)| *t == mtime).map(|(_, m)| m.clone());
            let meta = match fresh {
                Some(m) => m,
                None => match PipelineMeta::load(&self.project, &file) {
                    Ok(m) => {
                        let m = Arc::new(m);
                        cache.insert(file.clone(), (mtime, m.clone()));
                        self.broken.lock().unwrap_or_else(|p| p.into_inner()).remove(&file);
                        m
                    }
                    Err(problem) => {
                        let mut broken = self.broken.lock().unwrap_or_else(|p| p.into_inner());
                        if broken.get(&file) != Some(&problem) {
                            tracing::error!(file = %file.display(), %problem, "pipeline file does not load; it is not scheduled");
                            broken.insert(file.clone(), problem);
                        }
                        continue;
                    }
                },
            };
            out.insert(meta.name.clone(), meta);
        }
        out
    }

    /// Pipelines that do not load, with their problems.
    pub fn broken_pipelines(&self) -> Vec<(PathBuf, String)> {
        self.broken.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(f, p)| (f.clone(), p.clone())).collect()
    }

    /// Runs the loop until `stop` resolves. Attempts in flight are left to finish in the background; a process
    /// that exits kills them, and the next scheduler re-queues them.
    pub async fn run(self: &Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        tracing::info!(worker = %self.worker, parallelism = self.options.parallelism, "scheduler started");
        loop {
            let wait = match self.pass().await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "scheduler pass failed");
                    self.options.poll
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stop => break,
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Runs passes until every run of `ids` has ended; returns their final rows.
    pub async fn run_until_done(self: &Arc<Self>, ids: &[i64]) -> Result<Vec<RunRow>> {
        loop {
            let wait = self.pass().await?;
            let mut rows = Vec::new();
            for id in ids {
                if let Some(r) = self.store.run(*id).await? {
                    rows.push(r);
                }
            }
            if rows.iter().all(|r| r.state == "success" || r.state == "failed") {
                return Ok(rows);
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass over the store. Returns how long the loop may sleep.
    pub async fn pass(self: &Arc<Self>) -> Result<Duration> {
        if !self.pools_set.load(Ordering::Relaxed) {
            let pools: Vec<(String, u32)> =
                self.project.orchestrator.pools.iter().map(|(name, slots)| (name.clone(), slots.0)).collect();
            self.store.set_pools(&pools).await?;
            self.pools_set.store(true, Ordering::Relaxed);
        }
        let now = Utc::now();
        let pipelines = self.pipelines();
        if self.options.create_scheduled_runs {
            for meta in pipelines.values() {
                if let Err(e) = self.schedule(meta, now).await {
                    tracing::error!(pipeline = %meta.name, error = %e, "could not create scheduled runs");
                }
            }
        }
        self.recover_lost(now).await?;
        self.store.requeue_retries(now).await?;
        let active = self.store.active_runs().await?;
        let mut running_per_pipeline: HashMap<&str, usize> = HashMap::new();
        for r in active.iter().filter(|r| r.state == "running") {
            *running_per_pipeline.entry(r.pipeline.as_str()).or_default() += 1;
        }
        for run in &active {
            let Some(meta) = pipelines.get(&run.pipeline) else { continue };
            if run.state == "queued" {
                // Pausing stops the schedule; runs someone asked for (manual, backfill) still go.
                let paused = run.kind == "scheduled" && self.store.pipeline(&meta.name, now).await?.paused;
                let limit = self.options.max_active_runs.unwrap_or_else(|| meta.max_active_runs());
                let count = running_per_pipeline.entry(run.pipeline.as_str()).or_default();
                if paused || *count >= limit {
                    continue;
                }
                if self.store.set_run_state(run.id, RunState::Queued, RunState::Running, now).await? {
                    *count += 1;
                    tracing::info!(pipeline = %run.pipeline, ds = %run.logical_date, run = run.id, "run started");
                } else {
                    continue;
                }
            }
            if self.advance(run, meta, now).await? {
                // Its slot is free for the next queued run of the pipeline, in this same pass.
                if let Some(count) = running_per_pipeline.get_mut(run.pipeline.as_str()) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        self.dispatch(&pipelines, now).await?;
        let mut wait = self.options.poll;
        if let Some(t) = self.store.next_retry_at().await? {
            wait = wait.min((t - Utc::now()).to_std().unwrap_or_default());
        }
        Ok(wait.max(Duration::from_millis(5)))
    }

    /// Creates the runs of the intervals of `meta` that are due.
    async fn schedule(&self, meta: &PipelineMeta, now: DateTime<Utc>) -> Result<()> {
        let Some(schedule) = &meta.schedule else { return Ok(()) };
        let row = self.store.pipeline(&meta.name, now).await?;
        if row.paused {
            return Ok(());
        }
        let next_start = match row.next_start.as_deref().and_then(parse_stamp) {
            Some(t) => t,
            None => {
                let first_seen = parse_stamp(&row.first_seen).unwrap_or(now);
                match intervals::first_start(schedule, first_seen) {
                    Some(t) => t,
                    None => return Ok(()),
                }
            }
        };
        let due = intervals::due(schedule, next_start, now);
        let Some(last) = due.last() else { return Ok(()) };
        let tz = schedule.timezone;
        let runs: Vec<(Interval, String, String)> = due
            .iter()
            .map(|i| {
                let ds = i.start.with_timezone(&tz).format("%Y-%m-%d").to_string();
                (*i, ds, uuid::Uuid::now_v7().simple().to_string())
            })
            .collect();
        let created = self.store.schedule_runs(&meta.name, &runs, &meta.new_task_instances(), last.end, now).await?;
        if !created.is_empty() {
            tracing::info!(pipeline = %meta.name, runs = created.len(), "scheduled runs created");
        }
        Ok(())
    }

    /// Attempts whose process is gone go back to the queue (without using a retry: the task did not fail).
    async fn recover_lost(&self, now: DateTime<Utc>) -> Result<()> {
        let mine = self.mine.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for ti in self.store.task_instances_in(TaskState::Running).await? {
            if mine.contains(&(ti.run, ti.task.clone())) {
                continue;
            }
            let worker = ti.worker.clone().unwrap_or_default();
            let silent = ti
                .heartbeat_at
                .as_deref()
                .and_then(parse_stamp)
                .is_none_or(|h| (now - h).to_std().unwrap_or_default() > self.options.heartbeat_timeout);
            let gone = worker == self.worker || is_dead_here(&worker, &self.worker);
            if gone || silent {
                let why = if gone {
                    format!("lost: the process running it ({worker}) stopped")
                } else {
                    format!("lost: no heartbeat from {worker} since {}", ti.heartbeat_at.clone().unwrap_or_default())
                };
                if gone {
                    // The attempt's processes may outlive the scheduler that started them (a `kill -9`): stop them
                    // before another attempt starts, so two never write at once.
                    if let Some(run) = self.store.run(ti.run).await? {
                        let killed = crate::shell::kill_attempt(&run.run_id, &ti.task).await;
                        if killed > 0 {
                            tracing::warn!(run = ti.run, task = %ti.task, processes = killed, "killed the lost attempt's processes");
                        }
                    }
                }
                if self.store.requeue_lost(ti.run, &ti.task, ti.try_number, &why, now).await? {
                    tracing::warn!(run = ti.run, task = %ti.task, try_number = ti.try_number, %why, "task re-queued");
                }
            }
        }
        Ok(())
    }

    /// Decides the waiting tasks of a running run, ends the run when all its tasks ended, and enforces its timeout
    /// and deadline. Returns whether the run ended.
    async fn advance(&self, run: &RunRow, meta: &PipelineMeta, now: DateTime<Utc>) -> Result<bool> {
        let tis = self.store.task_instances(run.id).await?;
        let by_name: HashMap<&str, &TaskInstanceRow> = tis.iter().map(|t| (t.task.as_str(), t)).collect();
        // A task added to the file after the run was created is not part of it; one removed is ignored.
        let mut states: Vec<TaskState> =
            meta.dag.names.iter().map(|n| by_name.get(n.as_str()).map_or(TaskState::Skipped, |t| t.state())).collect();
        let timed_out = meta.pipeline.run_timeout.is_some_and(|limit| {
            run.started_at
                .as_deref()
                .and_then(parse_stamp)
                .is_some_and(|s| (now - s).to_std().unwrap_or_default() > limit)
        });
        if timed_out {
            for (i, s) in states.iter_mut().enumerate() {
                if matches!(s, TaskState::None | TaskState::Queued | TaskState::UpForRetry) {
                    let name = &meta.dag.names[i];
                    if self.store.set_task_state(run.id, name, *s, TaskState::Failed).await? {
                        *s = TaskState::Failed;
                    }
                }
            }
        }
        let before = states.clone();
        for (i, next) in dag::advance(&meta.dag, &mut states) {
            let name = &meta.dag.names[i];
            if !by_name.contains_key(name.as_str()) {
                continue;
            }
            if !self.store.set_task_state(run.id, name, before[i], next).await? {
                return Ok(false); // changed under us (a clear); the next pass sees it
            }
        }
        if let Some(outcome) = dag::run_outcome(&states) {
            if self.store.set_run_state(run.id, RunState::Running, outcome, now).await? {
                tracing::info!(pipeline = %run.pipeline, ds = %run.logical_date, run = run.id, state = %outcome, "run ended");
                let event = if outcome == RunState::Success { AlertEvent::Success } else { AlertEvent::Failure };
                // A failed run's tasks already alerted; a run alerts on success only.
                if event == AlertEvent::Success {
                    let text = format!("✅ weir: {} for {} succeeded", run.pipeline, run.logical_date);
                    let msg = message(text, event, run, None, None, None, None);
                    alerts::send(&meta.pipeline.alerts, event, &msg).await;
                }
                return Ok(true);
            }
            return Ok(false);
        }
        if let Some(deadline) = meta.pipeline.deadline {
            let late =
                run.interval().is_some_and(|i| now > i.end + chrono::Duration::from_std(deadline).unwrap_or_default());
            if late && self.store.mark_deadline_alerted(run.id).await? {
                let text = format!(
                    "⏰ weir: {} for {} is not finished {} after its interval ended",
                    run.pipeline,
                    run.logical_date,
                    humanize(deadline)
                );
                let msg = message(text, AlertEvent::Deadline, run, None, None, None, None);
                alerts::send(&meta.pipeline.alerts, AlertEvent::Deadline, &msg).await;
            }
        }
        Ok(false)
    }

    /// Claims queued task instances (oldest run first) up to this process's parallelism and starts them.
    async fn dispatch(
        self: &Arc<Self>,
        pipelines: &HashMap<String, Arc<PipelineMeta>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let free = self.options.parallelism.saturating_sub(self.running.load(Ordering::SeqCst));
        if free == 0 {
            return Ok(());
        }
        let names: Vec<String> = pipelines.keys().cloned().collect();
        for claimed in self.store.claim(&self.worker, &names, free, now).await? {
            let key = (claimed.run, claimed.task.clone());
            self.running.fetch_add(1, Ordering::SeqCst);
            self.mine.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone());
            let run = self.store.run(claimed.run).await?;
            let meta = run.as_ref().and_then(|r| pipelines.get(&r.pipeline).cloned());
            let this = self.clone();
            tokio::spawn(async move {
                if let (Some(run), Some(meta)) = (run, meta) {
                    this.attempt(run, meta, claimed.task, claimed.try_number, claimed.max_tries).await;
                }
                this.mine.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                this.running.fetch_sub(1, Ordering::SeqCst);
                this.wake.notify_one();
            });
        }
        Ok(())
    }

    /// Runs one attempt of a task and records how it ended.
    async fn attempt(&self, run: RunRow, meta: Arc<PipelineMeta>, task: String, try_number: u32, max_tries: u32) {
        let started = Utc::now();
        tracing::info!(pipeline = %run.pipeline, ds = %run.logical_date, task = %task, try_number, "task started");
        let mut log = format!(
            "{} attempt {try_number} of {max_tries} of task `{task}` ({} for {}) on {}\n",
            started.format("%Y-%m-%d %H:%M:%S%.3f UTC"),
            run.pipeline,
            run.logical_date,
            self.worker
        );
        // The command's output as it comes: written to the attempt's log every second while it runs (a live tail
        // for `weir logs` and the web UI), next to the heartbeat.
        let live: crate::shell::LiveOutput = Arc::default();
        // Set when a heartbeat finds that this attempt no longer owns its task (another scheduler re-queued it as
        // lost, or it was cleared): the attempt stops at once, its process group killed, so two attempts never write
        // at the same time.
        let disowned = Arc::new(tokio::sync::Notify::new());
        let heartbeat = {
            let disowned = disowned.clone();
            let (store, worker, task, id, every) =
                (self.store.clone(), self.worker.clone(), task.clone(), run.id, self.options.heartbeat);
            let (live, header) = (live.clone(), log.clone());
            tokio::spawn(async move {
                let (mut beat, mut written) = (tokio::time::Instant::now(), 0);
                loop {
                    tokio::time::sleep(LIVE_LOG_EVERY.min(every)).await;
                    let output = {
                        let live = live.lock().unwrap_or_else(|p| p.into_inner());
                        (live.len() != written).then(|| (live.len(), String::from_utf8_lossy(&live).into_owned()))
                    };
                    if let Some((len, output)) = output {
                        written = len;
                        let text = format!("{header}{output}");
                        if let Err(e) = store.write_running_log(id, &task, try_number, &text).await {
                            tracing::warn!(error = %e, "live log");
                        }
                    }
                    if beat.elapsed() >= every {
                        beat = tokio::time::Instant::now();
                        match store.heartbeat(id, &task, try_number, &worker, Utc::now()).await {
                            Ok(true) => {}
                            Ok(false) => {
                                disowned.notify_one();
                                return;
                            }
                            Err(e) => tracing::warn!(error = %e, "heartbeat"),
                        }
                    }
                }
            })
        };
        let outcome = tokio::select! {
            outcome = self.execute(&run, &meta, &task, &mut log, &live) => outcome,
            _ = disowned.notified() => {
                tracing::warn!(run = run.id, task = %task, try_number, "the attempt no longer owns its task (re-queued or cleared elsewhere); stopped");
                heartbeat.abort();
                return;
            }
        };
        let now = Utc::now();
        let index = meta.dag.names.iter().position(|n| *n == task);
        let policy = index.map(|i| meta.pipeline.tasks[i].retries.clone()).unwrap_or_default();
        let end = match &outcome {
            Ok(report) => {
                log.push_str(&format!("{} succeeded after {:.3} s\n", now.format("%H:%M:%S%.3f"), secs(started, now)));
                if !report.table.is_empty() {
                    if let Err(e) = self
                        .store
                        .record_lineage(run.id, &task, &report.table, report.delta_version, report.rows_written, now)
                        .await
                    {
                        tracing::warn!(error = %e, "lineage");
                    }
                }
                AttemptEnd {
                    attempt_state: TaskState::Success,
                    next: TaskState::Success,
                    next_try_at: None,
                    error: None,
                    log,
                }
            }
            Err(e) => {
                let error = e.to_string(); // weir's errors print their cause in their message
                log.push_str(&format!(
                    "{} failed after {:.3} s: {error}\n",
                    now.format("%H:%M:%S%.3f"),
                    secs(started, now)
                ));
                let after = AfterFailure::decide(&policy, e, try_number, max_tries);
                if let Some(why) = after.why_not(e) {
                    log.push_str(&format!("{why}\n"));
                }
                match after {
                    AfterFailure::Retry(wait) => {
                        log.push_str(&format!("retry {} of {} in {}\n", try_number, max_tries - 1, humanize(wait)));
                        AttemptEnd {
                            attempt_state: TaskState::Failed,
                            next: TaskState::UpForRetry,
                            next_try_at: Some(now + chrono::Duration::from_std(wait).unwrap_or_default()),
                            error: Some(error),
                            log,
                        }
                    }
                    AfterFailure::OutOfAttempts | AfterFailure::NotRetryable => AttemptEnd {
                        attempt_state: TaskState::Failed,
                        next: TaskState::Failed,
                        next_try_at: None,
                        error: Some(error),
                        log,
                    },
                }
            }
        };
        // The result is recorded before the heartbeat stops: a store that fails for a while (a lost connection, a
        // busy file) is retried, so a task whose work is committed is not taken for lost and run again.
        let recording_since = std::time::Instant::now();
        let mut wait = Duration::from_millis(200);
        let recorded = loop {
            match self.store.finish_attempt(run.id, &task, try_number, &end, now).await {
                Ok(recorded) => break Some(recorded),
                Err(e) if recording_since.elapsed() < FINISH_RETRY_FOR => {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "could not record the attempt; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record the attempt; it will be re-queued when its heartbeat stops");
                    break None;
                }
            }
        };
        heartbeat.abort();
        match recorded {
            Some(true) => {}
            Some(false) => {
                tracing::warn!(run = run.id, task = %task, try_number, "the attempt's result came after the task was cleared or re-queued; ignored");
                return;
            }
            None => return,
        }
        let event = match end.next {
            TaskState::Success => {
                tracing::info!(pipeline = %run.pipeline, ds = %run.logical_date, task = %task, "task succeeded");
                return;
            }
            TaskState::UpForRetry => AlertEvent::Retry,
            _ => AlertEvent::Failure,
        };
        let error = end.error.clone().unwrap_or_default();
        tracing::error!(pipeline = %run.pipeline, ds = %run.logical_date, task = %task, try_number, error = %error, "task failed");
        let text = match event {
            AlertEvent::Retry => format!(
                "🔁 weir: {} task `{task}` for {} failed (attempt {try_number} of {max_tries}); retrying: {error}",
                run.pipeline, run.logical_date
            ),
            _ => format!(
                "❌ weir: {} task `{task}` for {} failed after {try_number} attempt{}: {error}",
                run.pipeline,
                run.logical_date,
                if try_number == 1 { "" } else { "s" }
            ),
        };
        let msg = message(
            text,
            event,
            &run,
            Some(task.clone()),
            Some(try_number),
            Some(error),
            Some(alerts::excerpt(&end.log, 20)),
        );
        alerts::send(&meta.pipeline.alerts, event, &msg).await;
    }

    /// The pipeline file rendered for one run, parsed once per run (and file change) rather than once per task: a
    /// 1,000-task file took most of each task's time to re-read.
    fn pipeline_for_run(
        &self,
        meta: &PipelineMeta,
        run: i64,
        ctx: &RunContext,
    ) -> Result<Arc<crate::executor::PlannedPipeline>> {
        let mtime = std::fs::metadata(&meta.file).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        let key = (meta.file.clone(), run);
        {
            let cache = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((t, p)) = cache.get(&key) {
                if *t == mtime {
                    return Ok(p.clone());
                }
            }
        }
        let pipeline = crate::executor::PlannedPipeline::load(&self.project, &meta.file, ctx)?;
        let pipeline = Arc::new(pipeline);
        let mut cache = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 64 {
            cache.clear(); // runs in flight are few; the next attempt of each re-reads its file once
        }
        cache.insert(key, (mtime, pipeline.clone()));
        Ok(pipeline)
    }

    /// Loads the pipeline for the run's interval and runs the task, within its timeout.
    async fn execute(
        &self,
        run: &RunRow,
        meta: &PipelineMeta,
        task: &str,
        log: &mut String,
        live: &crate::shell::LiveOutput,
    ) -> Result<weir_engine::TaskReport> {
        let interval = run
            .interval()
            .ok_or_else(|| Error::engine("metadata store", format!("run {} has no valid interval", run.id)))?;
        let ctx = interval.run_context(meta.timezone(), run.run_id.clone());
        let planned = self.pipeline_for_run(meta, run.id, &ctx)?;
        let Some((t, plan)) = planned.task(task) else {
            return Err(Error::config(
                Default::default(),
                format!("pipeline `{}` has no task `{task}` any more", meta.name),
            ));
        };
        // The run's start as this process's clock sees it, for the pipeline's `run_timeout`.
        let run_started = run.started_at.as_deref().and_then(parse_stamp).and_then(|started| {
            std::time::Instant::now().checked_sub((Utc::now() - started).to_std().unwrap_or_default())
        });
        let result = crate::executor::Attempt {
            project: &self.project,
            pipeline: &planned.pipeline,
            pipeline_name: &meta.name,
            task: t,
            plan,
            run: &ctx,
            engine: None,
            full_refresh: false,
            live: Some(live),
            progress: Arc::new(|_| {}),
            run_started,
        }
        .run()
        .await;
        if let Ok(report) = &result {
            log.push_str(&report_lines(report));
        }
        result
    }
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// What a successful attempt did, for its log.
fn report_lines(r: &weir_engine::TaskReport) -> String {
    let mut out = String::new();
    if let Some(o) = &r.output {
        out.push_str(o);
        if !o.is_empty() && !o.ends_with('\n') {
            out.push('\n');
        }
    }
    if !r.table.is_empty() {
        out.push_str(&format!("{} rows read, {} rows written to {}", r.rows_read, r.rows_written, r.table));
        if let Some(v) = r.delta_version {
            out.push_str(&format!(" (version {v})"));
        }
        out.push('\n');
    }
    for c in &r.checks {
        out.push_str(&format!("check {}: {:?} ({})\n", c.name, c.status, c.observed));
    }
    out
}

fn message(
    text: String,
    event: AlertEvent,
    run: &RunRow,
    task: Option<String>,
    try_number: Option<u32>,
    error: Option<String>,
    log_excerpt: Option<String>,
) -> AlertMessage {
    let text = match &log_excerpt {
        Some(l) if !l.is_empty() => format!("{text}\n```\n{l}\n```"),
        _ => text,
    };
    AlertMessage {
        text,
        event: alerts::event_name(event),
        pipeline: run.pipeline.clone(),
        run: run.id,
        logical_date: run.logical_date.clone(),
        task,
        try_number,
        error,
        log_excerpt,
    }
}
