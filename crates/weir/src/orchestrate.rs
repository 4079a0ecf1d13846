//! The orchestration commands: `weir serve` (scheduler and REST API), `status`, `runs`, `trigger`, `pause`,
//! `unpause`, `backfill`, `clear`, `logs` and `db clean`. They all work on the project's metadata store
//! (`.weir/weir.db`); `serve`, `backfill` and `trigger --wait` also run tasks.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{NaiveDate, Utc};
use weir_orchestrate::ops::{self, Reprocess};
use weir_orchestrate::{PipelineMeta, Scheduler, SchedulerOptions, Store};

use crate::{exit, Exit};

async fn open(project_dir: &Path, options: SchedulerOptions) -> Result<Arc<Scheduler>, Exit> {
    let project = crate::run::load_project(project_dir)?;
    let store = Arc::new(Store::for_project(&project).await?);
    Ok(Scheduler::new(project, store, options))
}

fn pipeline(scheduler: &Scheduler, name: &str) -> Result<Arc<PipelineMeta>, Exit> {
    let name = Path::new(name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(m) = scheduler.pipelines().remove(&name) {
        return Ok(m);
    }
    // A file that does not load says why; a name that matches nothing gets the list.
    if let Some((file, problem)) = scheduler
        .broken_pipelines()
        .into_iter()
        .find(|(f, _)| f.file_stem().is_some_and(|s| s.to_string_lossy() == name))
    {
        return Err(exit(2, anyhow!("{problem}\n(pipeline file {})", file.display())));
    }
    let known: Vec<String> = scheduler.pipelines().into_keys().collect();
    let hint = weir_config::diag::did_you_mean(&name, known.iter().map(String::as_str))
        .unwrap_or_else(|| format!("pipelines are: {}", known.join(", ")));
    Err(exit(2, anyhow!("no pipeline `{name}` ({hint})")))
}

fn date(text: &str, flag: &str) -> Result<NaiveDate, Exit> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| exit(2, anyhow!("{flag} `{text}` is not a date as YYYY-MM-DD")))
}

fn duration(text: &str, flag: &str) -> Result<Duration, Exit> {
    weir_config::duration::parse(text).map_err(|e| exit(2, anyhow!("{flag}: {e}")))
}

/// Options of `weir serve`.
#[derive(Debug)]
pub struct ServeOptions {
    pub bind: String,
    pub parallelism: Option<usize>,
    pub heartbeat_timeout: String,
    pub open_reads: bool,
    /// Names besides the bound address and `localhost` that requests may call the server by.
    pub allowed_hosts: Vec<String>,
}

/// `weir serve`: the scheduler and the REST API until interrupted.
pub async fn serve(project_dir: &Path, o: ServeOptions) -> Result<(), Exit> {
    let mut options = SchedulerOptions {
        heartbeat_timeout: duration(&o.heartbeat_timeout, "--heartbeat-timeout")?,
        ..Default::default()
    };
    if let Some(p) = o.parallelism {
        options.parallelism = p;
    }
    let scheduler = open(project_dir, options).await?;
    let listener = tokio::net::TcpListener::bind(&o.bind)
        .await
        .map_err(|e| exit(2, anyhow!("cannot listen on {}: {e}", o.bind)))?;
    let addr = listener.local_addr().map_err(|e| anyhow!("listener address: {e}"))?;
    let token = api_token(scheduler.project())?;
    let open_reads = o.open_reads || addr.ip().is_loopback();
    let pipelines = scheduler.pipelines();
    println!(
        "weir serve: {} pipeline{} ({} scheduled), store {}",
        pipelines.len(),
        if pipelines.len() == 1 { "" } else { "s" },
        pipelines.values().filter(|p| p.schedule.is_some()).count(),
        scheduler.store().location
    );
    println!("API at http://{addr}/api (token for changes in {})", token.1.display());
    println!("web UI at http://{addr}/ (open it in a browser)");
    for (file, problem) in scheduler.broken_pipelines() {
        println!("  ✗ {} does not load and is not scheduled:\n{problem}", file.display());
    }
    // The project's streams (streams/*.yaml) run next to the scheduler, each on its own thread.
    let instance = format!("serve-{}", weir_orchestrate::scheduler::worker_id().split(':').next().unwrap_or("host"));
    let streams = Arc::new(weir_stream::supervise::ProjectStreams::start(
        &scheduler.project().dir,
        tokio::runtime::Handle::current(),
        &instance,
    ));
    if !streams.streams.is_empty() || !streams.broken.is_empty() {
        println!(
            "streams: {} running ({}); metrics at http://{addr}/metrics",
            streams.streams.len(),
            streams.streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    for (file, problem) in &streams.broken {
        println!("  ✗ {} does not load and is not running:\n{problem}", file.display());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let access = weir_server::Access {
        token: token.0,
        open_reads,
        loopback: addr.ip().is_loopback(),
        bound: addr,
        allowed_hosts: o.allowed_hosts.clone(),
    };
    let api =
        tokio::spawn(weir_server::serve(listener, scheduler.clone(), access, streams.clone(), std::future::pending()));
    scheduler.run(std::future::pending()).await;
    streams.stop();
    api.abort();
    Ok(())
}

/// `weir worker`: claims and runs queued tasks (and moves their runs on) until interrupted; creates no scheduled
/// runs. Meant for a PostgreSQL store shared by several machines; on SQLite it shares the project's file.
pub async fn worker(project_dir: &Path, parallelism: usize, heartbeat_timeout: &str) -> Result<(), Exit> {
    let options = SchedulerOptions {
        parallelism: parallelism.max(1),
        heartbeat_timeout: duration(heartbeat_timeout, "--heartbeat-timeout")?,
        create_scheduled_runs: false,
        ..Default::default()
    };
    let scheduler = open(project_dir, options).await?;
    println!(
        "weir worker {}: {} task{} at once from {}",
        weir_orchestrate::scheduler::worker_id(),
        parallelism.max(1),
        if parallelism == 1 { "" } else { "s" },
        scheduler.store().location
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    scheduler.run(std::future::pending()).await;
    Ok(())
}

/// The API token: `WEIR_API_TOKEN`, else the one in `.weir/api-token` (created, readable by the owner only).
fn api_token(project: &weir_config::Project) -> Result<(String, std::path::PathBuf), Exit> {
    let path = project.dir.join(".weir").join("api-token");
    if let Ok(t) = std::env::var("WEIR_API_TOKEN") {
        if !t.is_empty() {
            return Ok((t, "WEIR_API_TOKEN".into()));
        }
    }
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok((t.trim().to_string(), path));
        }
    }
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow!("create {}: {e}", dir.display()))?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow!("write {}: {e}", path.display()))?;
    use std::io::Write;
    f.write_all(token.as_bytes()).map_err(|e| anyhow!("write {}: {e}", path.display()))?;
    Ok((token, path))
}

/// `weir status`: every pipeline with its schedule, state and recent runs.
pub async fn status(project_dir: &Path) -> Result<(), Exit> {
    let scheduler = open(project_dir, SchedulerOptions::default()).await?;
    let store = scheduler.store();
    let now = Utc::now();
    let mut metas: Vec<_> = scheduler.pipelines().into_values().collect();
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    println!("{:<24} {:<18} {:<8} {:<22} last runs (newest first)", "pipeline", "schedule", "state", "next run");
    for m in metas {
        let row = store.pipeline(&m.name, now).await?;
        let next = m
            .schedule
            .as_ref()
            .and_then(|s| {
                let start = row.next_start.as_deref().and_then(weir_orchestrate::store::parse_stamp).or_else(|| {
                    weir_orchestrate::intervals::first_start(s, weir_orchestrate::store::parse_stamp(&row.first_seen)?)
                })?;
                weir_orchestrate::intervals::next_due(s, start)
            })
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|| "-".into());
        let runs = store.runs(Some(&m.name), &[], 5, 0).await?;
        let last: Vec<String> = runs.iter().map(|r| format!("{} {}", r.logical_date, r.state)).collect();
        println!(
            "{:<24} {:<18} {:<8} {:<22} {}",
            m.name,
            m.schedule.as_ref().map_or("-".to_string(), |s| s.text.clone()),
            if row.paused { "paused" } else { "active" },
            next,
            if last.is_empty() { "-".to_string() } else { last.join(", ") }
        );
    }
    let pools = store.pools().await?;
    if !pools.is_empty() {
        println!("\n{:<24} {:>5} {:>8} {:>7}", "pool", "slots", "running", "queued");
        for p in pools {
            println!("{:<24} {:>5} {:>8} {:>7}", p.name, p.slots, p.running, p.queued);
        }
    }
    for (file, problem) in scheduler.broken_pipelines() {
        println!("✗ {} does not load:\n{problem}", file.display());
    }
    Ok(())
}

/// `weir runs [PIPELINE] [--date D]`: runs, or one run's task instances.
pub async fn runs(project_dir: &Path, name: Option<&str>, on: Option<&str>, limit: usize) -> Result<(), Exit> {
    let scheduler = open(project_dir, SchedulerOptions::default()).await?;
    let store = scheduler.store();
    if let (Some(name), Some(d)) = (name, on) {
        let meta = pipeline(&scheduler, name)?;
        let day = chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok();
        let intervals = match day {
            Some(day) => meta.intervals_on(day),
            None => vec![meta.interval_named(d)?],
        };
        if intervals.len() > 1 {
            // A pipeline with several intervals a day: every run of the day, one a line.
            let tz = meta.timezone();
            println!("{:>6}  {:<17} {:<10} {:<10} ended", "run", "interval start", "kind", "state");
            for i in &intervals {
                let start = i.start.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string();
                match store.run_for_interval(&meta.name, i.start).await? {
                    Some(r) => println!(
                        "{:>6}  {start:<17} {:<10} {:<10} {}",
                        r.id,
                        r.kind,
                        r.state,
                        r.ended_at.unwrap_or_default()
                    ),
                    None => println!("{:>6}  {start:<17} {:<10} {:<10}", "-", "", "no run"),
                }
            }
            println!("(one run's tasks: weir runs {} --date {}T00:00)", meta.name, d.trim());
            return Ok(());
        }
        let Some(run) = store.run_for_interval(&meta.name, intervals[0].start).await? else {
            return Err(exit(1, anyhow!("{} has no run for {d}", meta.name)));
        };
        println!("run {} of {} for {}: {} ({})", run.id, run.pipeline, run.logical_date, run.state, run.kind);
        println!("{:<24} {:<16} {:>5}  {:<24} error", "task", "state", "tries", "ended");
        let tis = store.task_instances(run.id).await?;
        for t in meta.dag.names.iter().filter_map(|n| tis.iter().find(|t| &t.task == n)) {
            println!(
                "{:<24} {:<16} {:>2}/{:<2}  {:<24} {}",
                t.task,
                t.state,
                t.try_number,
                t.max_tries,
                t.ended_at.clone().unwrap_or_default(),
                t.error.as_deref().map(|e| e.lines().next().unwrap_or_default()).unwrap_or_default()
            );
        }
        return Ok(());
    }
    let pipeline_name = match name {
        Some(n) => Some(pipeline(&scheduler, n)?.name.clone()),
        None => None,
    };
    println!("{:>6}  {:<24} {:<12} {:<10} {:<9} {:<24} ended", "id", "pipeline", "date", "kind", "state", "started");
    for r in store.runs(pipeline_name.as_deref(), &[], limit, 0).await? {
        println!(
            "{:>6}  {:<24} {:<12} {:<10} {:<9} {:<24} {}",
            r.id,
            r.pipeline,
            r.logical_date,
            r.kind,
            r.state,
            r.started_at.unwrap_or_default(),
            r.ended_at.unwrap_or_default()
        );
    }
    Ok(())
}

/// Waits for runs in this process and says how they ended; an error when one failed.
async fn wait_for(scheduler: &Arc<Scheduler>, ids: &[i64]) -> Result<(), Exit> {
    let done = scheduler.run_until_done(ids).await?;
    let failed: Vec<String> = done.iter().filter(|r| r.state == "failed").map(|r| r.logical_date.clone()).collect();
    for r in &done {
        println!("  {} {} {}", if r.state == "success" { "✓" } else { "✗" }, r.logical_date, r.state);
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(exit(
            1,
            anyhow!("runs failed for {}; see `weir runs PIPELINE --date D` and `weir logs`", failed.join(", ")),
        ))
    }
}

/// `weir trigger PIPELINE [--date D] [--wait]`.
pub async fn trigger(
    project_dir: &Path,
    name: &str,
    on: Option<&str>,
    wait: bool,
    parallelism: Option<usize>,
) -> Result<(), Exit> {
    let mut options = SchedulerOptions { create_scheduled_runs: false, ..Default::default() };
    if let Some(p) = parallelism {
        options.parallelism = p.max(1);
    }
    let scheduler = open(project_dir, options).await?;
    let meta = pipeline(&scheduler, name)?;
    let when = match on {
        Some(w) => w.to_string(),
        None => crate::run::parse_date(None)?.format("%Y-%m-%d").to_string(),
    };
    let run = ops::trigger(scheduler.store(), &meta, &when, Utc::now()).await?;
    println!("run {} of {} for {} queued", run.id, meta.name, run.logical_date);
    if wait {
        wait_for(&scheduler, &[run.id]).await?;
    } else {
        println!("`weir serve` runs it (or run `weir trigger --wait` next time to run it here)");
    }
    Ok(())
}

pub async fn pause(project_dir: &Path, name: &str, paused: bool) -> Result<(), Exit> {
    let scheduler = open(project_dir, SchedulerOptions::default()).await?;
    let meta = pipeline(&scheduler, name)?;
    scheduler.store().set_paused(&meta.name, paused, Utc::now()).await?;
    println!("{} {}", meta.name, if paused { "paused: no new scheduled runs" } else { "unpaused" });
    Ok(())
}

/// Options of `weir backfill`.
#[derive(Debug)]
pub struct BackfillOptions {
    pub from: String,
    pub to: String,
    pub reprocess: String,
    pub max_active: usize,
    pub dry_run: bool,
}

/// `weir backfill PIPELINE --from D --to D`: makes the runs, then runs them here, `max_active` dates at once.
pub async fn backfill(project_dir: &Path, name: &str, o: BackfillOptions) -> Result<(), Exit> {
    let options = SchedulerOptions {
        create_scheduled_runs: false,
        max_active_runs: Some(o.max_active.max(1)),
        ..Default::default()
    };
    let scheduler = open(project_dir, options).await?;
    let meta = pipeline(&scheduler, name)?;
    let reprocess: Reprocess = o.reprocess.parse().map_err(|e: String| exit(2, anyhow!(e)))?;
    let items = ops::backfill(
        scheduler.store(),
        &meta,
        date(&o.from, "--from")?,
        date(&o.to, "--to")?,
        reprocess,
        o.dry_run,
        Utc::now(),
    )
    .await?;
    for i in &items {
        let was = i.existing.as_deref().map(|s| format!(" (was {s})")).unwrap_or_default();
        println!("  {} {}{was}", i.date, i.action.replace('_', " "));
    }
    if o.dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }
    let ids: Vec<i64> = items.iter().filter(|i| i.action != "skip").filter_map(|i| i.run).collect();
    if ids.is_empty() {
        println!("nothing to run");
        return Ok(());
    }
    wait_for(&scheduler, &ids).await
}

/// `weir clear PIPELINE TASK --date D`: the task and its downstream tasks run again (here, at once).
pub async fn clear(project_dir: &Path, name: &str, task: &str, on: &str, only: bool, wait: bool) -> Result<(), Exit> {
    let options = SchedulerOptions { create_scheduled_runs: false, ..Default::default() };
    let scheduler = open(project_dir, options).await?;
    let meta = pipeline(&scheduler, name)?;
    let run = ops::run_named(scheduler.store(), &meta, on).await?;
    let cleared = ops::clear(scheduler.store(), &meta, &run, task, only).await?;
    println!("cleared {} of run {} ({})", cleared.join(", "), run.id, run.logical_date);
    if wait {
        wait_for(&scheduler, &[run.id]).await?;
    }
    Ok(())
}

/// `weir logs PIPELINE TASK --date D [--try N]`: every attempt's log (or one).
pub async fn logs(project_dir: &Path, name: &str, task: &str, on: &str, try_number: Option<u32>) -> Result<(), Exit> {
    let scheduler = open(project_dir, SchedulerOptions::default()).await?;
    let meta = pipeline(&scheduler, name)?;
    let run = ops::run_named(scheduler.store(), &meta, on).await?;
    let attempts = scheduler.store().attempts(run.id, task).await?;
    if attempts.is_empty() {
        return Err(exit(1, anyhow!("task `{task}` of {} has no attempt for {on}", meta.name)));
    }
    for a in attempts.iter().filter(|a| try_number.is_none_or(|t| t == a.try_number)) {
        println!(
            "== attempt {} ({}, {} → {})",
            a.try_number,
            a.state,
            a.started_at,
            a.ended_at.clone().unwrap_or_default()
        );
        print!("{}", a.log);
        if let Some(e) = &a.error {
            if !a.log.contains(e.as_str()) {
                println!("error: {e}");
            }
        }
    }
    Ok(())
}

/// `weir db clean --older-than 90d`.
pub async fn db_clean(project_dir: &Path, older_than: &str) -> Result<(), Exit> {
    let scheduler = open(project_dir, SchedulerOptions::default()).await?;
    let age = duration(older_than, "--older-than")?;
    let before = Utc::now() - chrono::Duration::from_std(age).map_err(|e| anyhow!("{e}"))?;
    let n = scheduler.store().delete_older_than(before).await?;
    println!(
        "deleted {n} finished run{} older than {older_than} (with their tasks, logs and lineage)",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}
