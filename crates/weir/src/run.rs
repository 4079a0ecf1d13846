//! `weir run PIPELINE --date D`: runs the tasks of a pipeline in dependency order for one data interval, cut as the
//! scheduler cuts it (a day, or on a sub-daily schedule the interval that starts at `D`), each task through the same
//! executor as `weir serve` (its `timeout`, and its `retries` with the wait shown, unless `--no-retries`). A failed
//! task stops the tasks that depend on it (they are reported as not run); independent tasks still run.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use chrono::NaiveDate;
use weir_config::{Pipeline, Project};
use weir_core::RunContext;
use weir_engine::plan::PipelinePlan;
use weir_engine::{Engine, TaskReport};
use weir_orchestrate::executor::{humanize, AfterFailure, Attempt};
use weir_orchestrate::PipelineMeta;

use crate::output::{report_diagnostics, thousands};
use crate::progress::TaskProgress;
use crate::{exit, Exit};

pub fn load_project(dir: &Path) -> Result<Project, Exit> {
    Project::load(dir).map_err(|diags| report_diagnostics(&diags))
}

pub fn pipeline_path(project: &Project, arg: &str) -> Result<PathBuf, Exit> {
    let as_path = PathBuf::from(arg);
    if arg.ends_with(".yaml") || arg.ends_with(".yml") || arg.contains('/') {
        return if as_path.is_file() { Ok(as_path) } else { Err(exit(2, anyhow!("pipeline file {arg} not found"))) };
    }
    let path = project.pipelines_dir().join(format!("{arg}.yaml"));
    if path.is_file() {
        return Ok(path);
    }
    let known = crate::validate::pipeline_files(project)
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect::<Vec<_>>();
    let hint = weir_config::diag::did_you_mean(arg, known.iter().map(String::as_str))
        .unwrap_or_else(|| format!("pipelines are: {}", known.join(", ")));
    Err(exit(2, anyhow!("no pipeline `{arg}` in {} ({hint})", project.pipelines_dir().display())))
}

pub fn parse_date(date: Option<&str>) -> Result<NaiveDate, Exit> {
    match date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| exit(2, anyhow!("--date `{d}` is not a date as YYYY-MM-DD"))),
        None => Ok(chrono::Utc::now().date_naive() - chrono::Duration::days(1)),
    }
}

/// How `weir run` runs a pipeline's tasks.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only these tasks (and nothing else), in dependency order.
    pub only: Vec<String>,
    /// Ignore incremental cursors committed by earlier runs.
    pub full_refresh: bool,
    /// Fail at a task's first failure instead of retrying as the pipeline says (for debugging).
    pub no_retries: bool,
}

pub async fn run(
    project_dir: &Path,
    pipeline: &str,
    date: Option<&str>,
    options: &RunOptions,
) -> Result<Vec<TaskReport>, Exit> {
    let project = load_project(project_dir)?;
    let file = pipeline_path(&project, pipeline)?;
    let meta = match PipelineMeta::load(&project, &file) {
        Ok(meta) => meta,
        Err(problem) => {
            // The file's own diagnostics, with their lines, when it does not load.
            let run = RunContext::daily(parse_date(None)?, "validate");
            Pipeline::load(&file, &project.models_dir(), &run).map_err(|d| report_diagnostics(&d))?;
            return Err(exit(2, anyhow!("{problem}")));
        }
    };
    let run = weir_orchestrate::executor::run_context_for(
        &meta,
        date,
        chrono::Utc::now(),
        uuid::Uuid::now_v7().simple().to_string(),
    )
    .map_err(|e| exit(2, anyhow!(e)))?;
    let pipeline = Pipeline::load(&file, &project.models_dir(), &run).map_err(|d| report_diagnostics(&d))?;
    let plan = crate::validate::plan_pipeline(&pipeline).map_err(|d| report_diagnostics(&d))?;
    for t in &options.only {
        if pipeline.task(t).is_none() {
            return Err(exit(2, anyhow!("pipeline `{}` has no task `{t}`", pipeline.name)));
        }
    }
    run_pipeline(&project, &pipeline, &plan, &run, options).await
}

/// The interval of `run` for people: its day, or the start of a shorter interval with its UTC offset.
fn interval_label(run: &RunContext) -> String {
    if run.is_one_day() {
        run.ds()
    } else {
        run.start_with_offset().format("%Y-%m-%dT%H:%M%:z").to_string()
    }
}

pub async fn run_pipeline(
    project: &Project,
    pipeline: &Pipeline,
    plan: &PipelinePlan,
    run: &RunContext,
    options: &RunOptions,
) -> Result<Vec<TaskReport>, Exit> {
    let engine = Engine::for_project(project)?;
    let pipeline_name = pipeline.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let label = interval_label(run);
    println!("pipeline {} for {label} (run {})", pipeline.name, run.run_id);
    tracing::info!(pipeline = %pipeline.name, interval = %label, run_id = %run.run_id, "run started");
    let run_started = std::time::Instant::now();
    let mut failed: HashSet<String> = HashSet::new();
    let mut reports = Vec::new();
    let mut first_error = None;
    for i in pipeline.topological_order() {
        let task = &pipeline.tasks[i];
        if !options.only.is_empty() && !options.only.contains(&task.name) {
            continue;
        }
        if let Some(up) = task.depends_on.iter().find(|d| failed.contains(*d)) {
            println!("  - {:<20} not run: upstream task `{up}` failed", task.name);
            failed.insert(task.name.clone());
            continue;
        }
        let max_tries = if options.no_retries { 1 } else { task.retries.max + 1 };
        let mut try_number = 1;
        let result = loop {
            tracing::info!(task = %task.name, try_number, max_tries, "task started");
            let progress = TaskProgress::start(&task.name);
            let attempt = Attempt {
                project,
                pipeline,
                pipeline_name: &pipeline_name,
                task,
                plan: plan.task(i),
                run,
                engine: Some(&engine),
                full_refresh: options.full_refresh,
                live: None,
                progress: progress.callback(&task.name),
                run_started: Some(run_started),
            };
            let result = attempt.run().await;
            progress.finish();
            let Err(e) = result else { break result };
            match AfterFailure::decide(&task.retries, &e, try_number, max_tries) {
                AfterFailure::Retry(wait) => {
                    println!(
                        "  ↻ {:<20} attempt {try_number} of {max_tries} failed: {e}; retrying in {}",
                        task.name,
                        humanize(wait)
                    );
                    tracing::warn!(task = %task.name, try_number, max_tries, error = %e, wait_ms = wait.as_millis() as u64, "task failed; retrying");
                    tokio::time::sleep(wait).await;
                    try_number += 1;
                }
                after => {
                    if let Some(why) = after.why_not(&e).filter(|_| max_tries > 1) {
                        println!("      {why}");
                    }
                    break Err(e);
                }
            }
        };
        match result {
            Ok(r) => {
                print_report(&r);
                tracing::info!(task = %r.task, rows = r.rows_written, bytes = r.bytes_written, seconds = r.elapsed.as_secs_f64(), "task succeeded");
                reports.push(r);
            }
            Err(e) => {
                let tries = if try_number > 1 { format!(" after {try_number} attempts") } else { String::new() };
                println!("  ✗ {:<20} failed{tries}: {e}", task.name);
                tracing::error!(task = %task.name, error = %e, try_number, "task failed");
                failed.insert(task.name.clone());
                first_error.get_or_insert((task.name.clone(), e));
            }
        }
    }
    match first_error {
        None => Ok(reports),
        Some((task, e)) => {
            let code = if matches!(e, weir_core::Error::Config { .. }) { 2 } else { 1 };
            Err(exit(
                code,
                anyhow!(e).context(format!("task `{task}` of pipeline `{}` failed for {label}", pipeline.name)),
            ))
        }
    }
}

fn print_report(r: &TaskReport) {
    if r.skipped {
        println!("  ✓ {:<20} skipped: this date's append is already committed to {}", r.task, r.table);
        return;
    }
    let secs = r.elapsed.as_secs_f64();
    if let (Some(output), true) = (&r.output, r.table.is_empty()) {
        // A shell, http or sensor task: no rows, its output's last line says what it did.
        let last = output.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        println!(
            "  ✓ {:<20} done in {secs:.2}s{}",
            r.task,
            if last.is_empty() { String::new() } else { format!(": {last}") }
        );
        return;
    }
    let rate = if secs > 0.0 { r.rows_read as f64 / secs } else { 0.0 };
    let mut parts = if r.partitions.is_empty() { String::new() } else { format!(" [{}]", r.partitions.join(", ")) };
    if let Some(v) = r.delta_version {
        parts.push_str(&format!(" (delta version {v})"));
    }
    println!(
        "  ✓ {:<20} {} rows read, {} written to {}{} ({} in {} file{}) in {:.2}s, {:.0} rows/s",
        r.task,
        thousands(r.rows_read),
        thousands(r.rows_written),
        r.table,
        parts,
        indicatif::HumanBytes(r.bytes_written),
        r.files,
        if r.files == 1 { "" } else { "s" },
        secs,
        rate
    );
    if let Some((inserted, updated, deleted)) = r.merged {
        println!("      merged: {inserted} inserted, {updated} updated, {deleted} deleted");
    }
    for s in &r.steps {
        for note in &s.notes {
            if note.ends_with("distinct keys") {
                continue;
            }
            println!("      {} (line {}): {note}", s.step, s.line);
        }
    }
    print_quality(r);
}

/// Check results, quarantined rows and schema drift of a task, under its summary line.
pub fn print_quality(r: &TaskReport) {
    use weir_engine::quality::CheckStatus;
    for c in &r.checks {
        let mark = match c.status {
            CheckStatus::Passed => "ok  ",
            CheckStatus::Warned => "WARN",
            CheckStatus::Failed => "FAIL",
            CheckStatus::Quarantined => "QUAR",
        };
        println!("      check {mark} {} (line {}): {}", c.name, c.line, c.observed);
        if c.status == CheckStatus::Warned || c.status == CheckStatus::Failed {
            tracing::warn!(task = %r.task, check = %c.name, status = c.status.as_str(), failing = c.failing_rows, "check did not pass");
        }
    }
    for ((rule, action), n) in &r.rejected {
        let what = match action {
            weir_engine::quality::RejectAction::RowQuarantined => "rows quarantined",
            weir_engine::quality::RejectAction::ValueNulled => "values nulled",
            weir_engine::quality::RejectAction::ValueDiscarded => "values of columns outside the table discarded",
        };
        println!("      rejected: {} {what} by {rule}", thousands(*n));
    }
    if let Some(t) = &r.rejects_table {
        println!("      rejects kept in {t}");
    }
    if !r.schema_changes.is_empty() {
        println!("      schema drift against the table's recorded schema:");
        for l in &r.schema_changes {
            println!("        {l}");
        }
    }
    if let Some(v) = r.schema_version {
        if v > 1 {
            println!("      schema version {v} recorded");
        }
    }
}
