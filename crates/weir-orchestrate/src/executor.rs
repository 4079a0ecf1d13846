//! One way to run a task, shared by `weir run` and the scheduler's workers, so that a task behaves the same on the
//! command line and under `weir serve`: the same interval, the same time limit (the task's `timeout`, capped by what
//! is left of the pipeline's `run_timeout`), and the same decision after a failure (retry after the policy's wait,
//! or give up when the error says that running it again cannot help).
//!
//! Data tasks (a source or a query into a sink) run through weir-engine's [`TaskRunner`]; shell commands, HTTP calls
//! and sensors need no DataFusion plan and run from here ([`crate::shell`], [`crate::http_call`], [`crate::sensor`]).

use std::path::Path;
use std::time::{Duration, Instant};

use rand::Rng;
use weir_config::{Pipeline, Project, RetryPolicy, Task, TaskInput};
use weir_core::{Error, Result, RetryHint, RunContext};
use weir_engine::plan::{PipelinePlan, TaskPlan};
use weir_engine::task::ProgressFn;
use weir_engine::{Engine, TaskReport, TaskRunner};

use crate::shell::LiveOutput;

/// One attempt of one task for one interval.
pub struct Attempt<'a> {
    pub project: &'a Project,
    /// The pipeline rendered for the interval of `run`.
    pub pipeline: &'a Pipeline,
    /// The name runs are stored under (the pipeline file's stem).
    pub pipeline_name: &'a str,
    pub task: &'a Task,
    /// The task's sources and sinks as planned (see `weir_engine::plan`).
    pub plan: &'a TaskPlan,
    pub run: &'a RunContext,
    /// The session to run data tasks in; made for the attempt when not given.
    pub engine: Option<&'a Engine>,
    /// Ignore incremental cursors committed by earlier runs.
    pub full_refresh: bool,
    /// A shell command's output is copied here as it comes (the scheduler's live log).
    pub live: Option<&'a LiveOutput>,
    pub progress: ProgressFn,
    /// When the run began, for the pipeline's `run_timeout`.
    pub run_started: Option<Instant>,
}

impl Attempt<'_> {
    /// How long this attempt may take: the task's `timeout`, and no longer than what is left of `run_timeout`.
    pub fn limit(&self) -> Option<Duration> {
        let left = self
            .pipeline
            .run_timeout
            .zip(self.run_started)
            .map(|(limit, started)| limit.saturating_sub(started.elapsed()));
        match (self.task.timeout, left) {
            (Some(t), Some(l)) => Some(t.min(l)),
            (t, l) => t.or(l),
        }
    }

    /// The task, and the remote engine its rows are computed on if any (`task `t` on ballista (df://host:50050)`):
    /// where to look when it timed out.
    fn where_it_ran(&self) -> String {
        let task = format!("task `{}`", self.task.name);
        match self.task.remote_engine(self.project) {
            Some(engine) => {
                let url = weir_config::project::resolve_env(engine.url()).unwrap_or_else(|_| engine.url().to_string());
                format!("{task} on {} ({url})", engine.kind().name())
            }
            None => task,
        }
    }

    /// Runs the task once, within [`Attempt::limit`]. A timed-out shell command has its process group killed.
    pub async fn run(&self) -> Result<TaskReport> {
        let work = async {
            let started = Instant::now();
            let task = self.task;
            let rowless = |output: String| TaskReport {
                task: task.name.clone(),
                elapsed: started.elapsed(),
                output: Some(output),
                ..Default::default()
            };
            // A DataFusion session for the kinds that need one (data tasks and sensors): the given one, or one made
            // for this attempt.
            let needs_engine = !matches!(task.input, TaskInput::Shell(_) | TaskInput::Python(_) | TaskInput::Http(_));
            let made = match (needs_engine, self.engine) {
                (true, None) => Some(Engine::for_project(self.project)?),
                _ => None,
            };
            let engine =
                || self.engine.or(made.as_ref()).ok_or_else(|| Error::engine("executor", "no session for a data task"));
            match &task.input {
                TaskInput::Shell(cmd) => {
                    let dir = &self.project.dir;
                    let done = crate::shell::run_shell(dir, self.pipeline_name, &task.name, self.run, cmd, self.live);
                    Ok(done.await?.into_report(&task.name))
                }
                TaskInput::Python(call) => {
                    let cmd = crate::python_task::command(call);
                    let dir = &self.project.dir;
                    let done = crate::shell::run_shell(dir, self.pipeline_name, &task.name, self.run, &cmd, self.live);
                    Ok(done.await?.into_report(&task.name))
                }
                TaskInput::Http(call) => Ok(rowless(crate::http_call::call(&task.name, call).await?)),
                TaskInput::Sensor(sensor) => {
                    Ok(rowless(crate::sensor::wait(engine()?, &self.project.dir, &task.name, sensor).await?))
                }
                TaskInput::Source(_) | TaskInput::Model { .. } | TaskInput::Sql(_) => {
                    let runner = TaskRunner {
                        project: self.project,
                        pipeline_file: &self.pipeline.file,
                        run: self.run,
                        engine: engine()?,
                        full_refresh: self.full_refresh,
                    };
                    runner.run(task, self.plan, self.progress.clone()).await
                }
            }
        };
        match self.limit() {
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                Err(Error::external(self.where_it_ran(), format!("timed out after {}", humanize(limit))))
            }),
            None => work.await,
        }
    }
}

/// What to do after attempt `try_number` (1-based) of `max_tries` failed with `error`.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterFailure {
    /// Try again after this wait.
    Retry(Duration),
    /// Stop: no attempts left.
    OutOfAttempts,
    /// Stop: the error says that running the same work again cannot help (a configuration or data problem).
    NotRetryable,
}

impl AfterFailure {
    /// Decides from the error's retry hint alone, and from the task's policy for the wait (with its jitter).
    pub fn decide(policy: &RetryPolicy, error: &Error, try_number: u32, max_tries: u32) -> AfterFailure {
        if error.retry_hint() == RetryHint::Never {
            return AfterFailure::NotRetryable;
        }
        if try_number >= max_tries {
            return AfterFailure::OutOfAttempts;
        }
        let mut wait = policy.delay_before(try_number);
        if policy.jitter {
            wait = Duration::from_millis(rand::rng().random_range(0..=wait.as_millis() as u64));
        }
        AfterFailure::Retry(wait)
    }

    /// Why there is no retry, for logs; `None` for a retry or an ordinary last failure.
    pub fn why_not(&self, error: &Error) -> Option<String> {
        matches!(self, AfterFailure::NotRetryable)
            .then(|| format!("not retried: {}", error.domain().not_retried_because()))
    }
}

/// The interval of `weir run PIPELINE --date WHEN` as the scheduler cuts it: `WHEN` is a date or, on a pipeline with
/// several intervals a day, an interval's start; without it, the newest interval that has ended.
pub fn run_context_for(
    meta: &crate::PipelineMeta,
    when: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
    run_id: String,
) -> Result<RunContext> {
    let interval = match when {
        Some(when) => meta.interval_named(when)?,
        None => {
            let tz = meta.timezone();
            let today = now.with_timezone(&tz).date_naive();
            let ended = |day: chrono::NaiveDate| meta.intervals_on(day).into_iter().filter(|i| i.end <= now).last();
            ended(today)
                .or_else(|| today.pred_opt().and_then(ended))
                .unwrap_or_else(|| meta.interval_for_date(today.pred_opt().unwrap_or(today)))
        }
    };
    Ok(interval.run_context(meta.timezone(), run_id))
}

/// A pipeline file rendered for one interval, and its plan.
#[derive(Debug)]
pub struct PlannedPipeline {
    pub pipeline: Pipeline,
    pub plan: PipelinePlan,
}

impl PlannedPipeline {
    /// Renders the file at `file` for `run` and plans it; every problem at once, with its line.
    pub fn load(project: &Project, file: &Path, run: &RunContext) -> Result<PlannedPipeline> {
        let report = |ds: Vec<weir_config::Diagnostic>| {
            Error::config(Default::default(), ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))
        };
        let pipeline = Pipeline::load(file, &project.models_dir(), run).map_err(report)?;
        let plan = weir_engine::plan::plan(&pipeline, &weir_connect::Registry::builtin()).map_err(report)?;
        Ok(PlannedPipeline { pipeline, plan })
    }

    /// The task named `name`, with its plan.
    pub fn task(&self, name: &str) -> Option<(&Task, &TaskPlan)> {
        let i = self.pipeline.tasks.iter().position(|t| t.name == name)?;
        Some((&self.pipeline.tasks[i], self.plan.task(i)))
    }
}

/// A wait or a duration for people: `800 ms`, `5 s`, `3 min`, `2.5 h`.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_error_that_may_pass_is_retried_and_only_while_attempts_are_left() {
        let policy = RetryPolicy { max: 2, delay: Duration::from_secs(3), jitter: false, ..Default::default() };
        let timeout = Error::external("task `t`", "timed out after 2 s");
        assert_eq!(AfterFailure::decide(&policy, &timeout, 1, 3), AfterFailure::Retry(Duration::from_secs(3)));
        assert_eq!(AfterFailure::decide(&policy, &timeout, 3, 3), AfterFailure::OutOfAttempts);
        let refused = Error::external_final("http_api page 1", "answered 403 Forbidden");
        assert_eq!(AfterFailure::decide(&policy, &refused, 1, 3), AfterFailure::NotRetryable);
        let config = Error::config(Default::default(), "no table `raw.nowhere`");
        let decided = AfterFailure::decide(&policy, &config, 1, 3);
        assert_eq!(decided, AfterFailure::NotRetryable);
        assert!(decided.why_not(&config).is_some_and(|w| w.contains("configuration")));
    }
}
