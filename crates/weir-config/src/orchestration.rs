//! What a pipeline file says about *when* and *how hard* it runs: its schedule, retry policy, timeouts, trigger rules
//! and alerts, and the `shell` task kind. weir-orchestrate turns these into runs; this module only reads and checks
//! them, so `weir validate` reports a bad cron expression or time zone with its line like any other mistake.
//!
//! ```yaml
//! schedule:                       # or just "@daily", "0 6 * * 1-5", "every 15m"
//!   cron: "0 6 * * *"
//!   timezone: Europe/Berlin
//!   start_date: 2026-03-01
//!   catchup: true                 # run every missed interval (false: only the latest)
//!   max_active_runs: 1
//! retries: {max: 3, delay: 10s, backoff: exponential, max_delay: 10m}   # the default of every task
//! timeout: 1h                     # per task attempt; `run_timeout` for the whole run
//! alerts:
//!   - {on: [failure, retry], webhook: "http://hooks.example/weir"}
//!   - {on: [failure], command: "notify-send weir"}
//! tasks:
//!   - name: cleanup
//!     shell: {command: "rm -rf tmp/{{ ds }}", env: {LEVEL: "1"}, cwd: scripts}
//!     trigger_rule: all_done
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::de::from_node;
use crate::diag::Diagnostic;
use crate::duration::parse as parse_duration;
use crate::yaml::{Node, Value};

/// When the scheduler creates runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub every: Every,
    /// As written (`@daily`, `0 6 * * *`, `every 15m`), for display.
    pub text: String,
    pub timezone: chrono_tz::Tz,
    /// The first interval starts here (midnight in `timezone`); without it, the first interval is the one that ends
    /// next after the scheduler first sees the pipeline.
    pub start_date: Option<NaiveDate>,
    /// No interval starts on or after the end of this day.
    pub end_date: Option<NaiveDate>,
    /// Run every interval missed while the scheduler was down or the pipeline paused (else only the latest).
    pub catchup: bool,
    pub max_active_runs: usize,
}

/// How intervals are cut.
#[derive(Debug, Clone)]
pub enum Every {
    /// Intervals from one cron tick to the next; a run starts when its interval ends, as in Airflow.
    Cron(Box<croner::Cron>),
    /// Fixed-length intervals from `start_date`.
    Fixed(Duration),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    /// A cron expression (five fields) or a preset: @hourly, @daily, @weekly, @monthly, @yearly.
    #[serde(default)]
    cron: Option<String>,
    /// A fixed interval such as `15m` or `6h`.
    #[serde(default)]
    every: Option<String>,
    /// IANA time zone of the cron expression and of the dates (default UTC).
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    catchup: bool,
    #[serde(default = "one")]
    max_active_runs: usize,
}

fn one() -> usize {
    1
}

const PRESETS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// Parses a cron expression or preset.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    let t = text.trim();
    let pattern = match PRESETS.iter().find(|(p, _)| *p == t) {
        Some((_, cron)) => *cron,
        None if t.starts_with('@') => {
            let names: Vec<&str> = PRESETS.iter().map(|(p, _)| *p).collect();
            return Err(format!("unknown preset `{t}`; presets are {}", names.join(", ")));
        }
        None => t,
    };
    croner::Cron::from_str(pattern).map_err(|e| format!("`{t}` is not a cron expression: {e}"))
}

fn parse_date(node: &Node, key: &str, text: &Option<String>, diags: &mut Vec<Diagnostic>) -> Option<NaiveDate> {
    let t = text.as_ref()?;
    match NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            diags.push(Diagnostic::at(node.get(key).unwrap_or(node), format!("`{key}` `{t}` is not YYYY-MM-DD")));
            None
        }
    }
}

/// Reads `schedule:` (text or mapping).
pub fn parse_schedule(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Schedule> {
    let raw = match &node.value {
        Value::Null => return None,
        Value::Scalar { text, .. } => match text.trim().strip_prefix("every ") {
            Some(every) => RawSchedule { every: Some(every.to_string()), ..from_text() },
            None => RawSchedule { cron: Some(text.clone()), ..from_text() },
        },
        Value::Map(_) => match from_node::<RawSchedule>(node, &[]) {
            Ok(r) => r,
            Err(ds) => {
                diags.extend(ds);
                return None;
            }
        },
        Value::Seq(_) => {
            diags.push(Diagnostic::at(node, "`schedule` is a cron expression, a preset, `every 15m`, or a mapping"));
            return None;
        }
    };
    let at = |k: &str| node.get(k).unwrap_or(node);
    let before = diags.len();
    let (every, text) = match (&raw.cron, &raw.every) {
        (Some(c), None) => match parse_cron(c) {
            Ok(cron) => (Some(Every::Cron(Box::new(cron))), c.trim().to_string()),
            Err(e) => {
                diags.push(Diagnostic::at(at("cron"), e));
                (None, String::new())
            }
        },
        (None, Some(e)) => match parse_duration(e) {
            Ok(d) if d.as_secs() > 0 => (Some(Every::Fixed(d)), format!("every {}", e.trim())),
            Ok(_) => {
                diags.push(Diagnostic::at(at("every"), "`every` must be longer than zero"));
                (None, String::new())
            }
            Err(m) => {
                diags.push(Diagnostic::at(at("every"), m));
                (None, String::new())
            }
        },
        _ => {
            diags.push(Diagnostic::at(node, "a schedule needs exactly one of `cron` and `every`"));
            (None, String::new())
        }
    };
    let timezone = match raw.timezone.as_deref().map(chrono_tz::Tz::from_str) {
        None => chrono_tz::UTC,
        Some(Ok(tz)) => tz,
        Some(Err(_)) => {
            let tz = raw.timezone.clone().unwrap_or_default();
            diags.push(Diagnostic::at(
                at("timezone"),
                format!("unknown time zone `{tz}`: use an IANA name such as `Europe/Berlin` or `UTC`"),
            ));
            chrono_tz::UTC
        }
    };
    let start_date = parse_date(node, "start_date", &raw.start_date, diags);
    let end_date = parse_date(node, "end_date", &raw.end_date, diags);
    if let (Some(s), Some(e)) = (start_date, end_date) {
        if e < s {
            diags.push(Diagnostic::at(at("end_date"), "`end_date` is before `start_date`"));
        }
    }
    if matches!(every, Some(Every::Fixed(_))) && start_date.is_none() {
        diags.push(Diagnostic::at(node, "an `every` schedule needs a `start_date` to count its intervals from"));
    }
    if raw.max_active_runs == 0 {
        diags.push(Diagnostic::at(at("max_active_runs"), "`max_active_runs` must be at least 1"));
    }
    if diags.len() > before {
        return None;
    }
    Some(Schedule {
        every: every?,
        text,
        timezone,
        start_date,
        end_date,
        catchup: raw.catchup,
        max_active_runs: raw.max_active_runs,
    })
}

fn from_text() -> RawSchedule {
    RawSchedule {
        cron: None,
        every: None,
        timezone: None,
        start_date: None,
        end_date: None,
        catchup: false,
        max_active_runs: 1,
    }
}

/// How a failed attempt is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max: u32,
    pub delay: Duration,
    pub exponential: bool,
    pub max_delay: Duration,
    /// Full jitter: the wait is random between zero and the computed delay.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max: 0,
            delay: Duration::from_secs(10),
            exponential: false,
            max_delay: Duration::from_secs(600),
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), before jitter.
    pub fn delay_before(&self, retry: u32) -> Duration {
        let base = if self.exponential {
            self.delay.saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(30)))
        } else {
            self.delay
        };
        base.min(self.max_delay)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetries {
    /// Attempts after the first.
    max: u32,
    /// Wait before the first retry (`10s`).
    #[serde(default)]
    delay: Option<String>,
    /// `fixed` (default) or `exponential` (the wait doubles each retry).
    #[serde(default)]
    backoff: Option<String>,
    /// The longest wait (`10m`).
    #[serde(default)]
    max_delay: Option<String>,
    /// Randomise each wait between zero and its value (spreads retries of many tasks).
    #[serde(default)]
    jitter: bool,
}

/// Reads `retries:` (a number of retries, or a mapping).
pub fn parse_retries(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<RetryPolicy> {
    let at = |k: &str| node.get(k).unwrap_or(node);
    let raw = match &node.value {
        Value::Scalar { text, .. } => match text.parse::<u32>() {
            Ok(max) => RawRetries { max, delay: None, backoff: None, max_delay: None, jitter: false },
            Err(_) => {
                diags.push(Diagnostic::at(node, format!("`retries` is a number or a mapping, not `{text}`")));
                return None;
            }
        },
        Value::Map(_) => match from_node::<RawRetries>(node, &[]) {
            Ok(r) => r,
            Err(ds) => {
                diags.extend(ds);
                return None;
            }
        },
        _ => {
            diags.push(Diagnostic::at(node, "`retries` is a number or a mapping"));
            return None;
        }
    };
    let mut policy = RetryPolicy { max: raw.max, jitter: raw.jitter, ..Default::default() };
    let mut duration = |key: &str, text: &Option<String>, into: &mut Duration| {
        if let Some(t) = text {
            match parse_duration(t) {
                Ok(d) => *into = d,
                Err(e) => diags.push(Diagnostic::at(at(key), e)),
            }
        }
    };
    duration("delay", &raw.delay, &mut policy.delay);
    duration("max_delay", &raw.max_delay, &mut policy.max_delay);
    match raw.backoff.as_deref() {
        None | Some("fixed") => {}
        Some("exponential") => policy.exponential = true,
        Some(other) => {
            diags.push(Diagnostic::at(at("backoff"), format!("`backoff` is `fixed` or `exponential`, not `{other}`")))
        }
    }
    Some(policy)
}

/// When a task runs, given how its upstream tasks ended (Airflow's trigger rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    /// Every upstream succeeded (the default).
    #[default]
    AllSuccess,
    /// Every upstream finished, whatever its state (clean-up tasks).
    AllDone,
    /// At least one upstream failed (alert tasks); skipped when none did.
    OneFailed,
}

pub const TRIGGER_RULES: &[&str] = &["all_success", "all_done", "one_failed"];

/// What an alert reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A task failed for good (no retry left), or a run failed.
    Failure,
    /// A task attempt failed and will be retried.
    Retry,
    /// A run succeeded.
    Success,
    /// A run was not finished by its deadline.
    Deadline,
}

/// Where an alert goes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// The events that fire it (default: failure).
    #[serde(default = "failure_only")]
    pub on: Vec<AlertEvent>,
    /// A URL that receives a Slack-compatible JSON post (`text` plus the structured fields).
    #[serde(default)]
    pub webhook: Option<String>,
    /// A shell command, run with WEIR_PIPELINE, WEIR_TASK, WEIR_EVENT, WEIR_DS, WEIR_ERROR... in its environment.
    #[serde(default)]
    pub command: Option<String>,
}

fn failure_only() -> Vec<AlertEvent> {
    vec![AlertEvent::Failure]
}

/// Reads `alerts:`.
pub fn parse_alerts(node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<Alert> {
    let Some(items) = node.as_seq() else {
        diags.push(Diagnostic::at(node, "`alerts` is a list of `{on: [...], webhook: URL}` or `{command: ...}`"));
        return Vec::new();
    };
    let mut alerts = Vec::new();
    for item in items {
        match from_node::<Alert>(item, &[]) {
            Ok(a) if a.webhook.is_some() == a.command.is_some() => {
                diags.push(Diagnostic::at(item, "an alert needs exactly one of `webhook` and `command`"))
            }
            Ok(a) => alerts.push(a),
            Err(ds) => diags.extend(ds),
        }
    }
    alerts
}

/// `shell:` a command run by `sh -c` in the project folder (or `cwd`), with extra environment variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellCommand {
    pub command: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the project folder.
    #[serde(default)]
    pub cwd: Option<String>,
    /// What errors call the command, when not its text (`python jobs.refresh:main` for a `python:` task).
    #[serde(skip)]
    pub label: Option<String>,
}

/// Reads `shell:` (a command, or a mapping).
pub fn parse_shell(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<ShellCommand> {
    match &node.value {
        Value::Scalar { text, .. } if !text.trim().is_empty() => {
            Some(ShellCommand { command: text.clone(), env: BTreeMap::new(), cwd: None, label: None })
        }
        Value::Map(_) => from_node::<ShellCommand>(node, &[]).map_err(|ds| diags.extend(ds)).ok(),
        _ => {
            diags.push(Diagnostic::at(node, "`shell` is a command, or `{command, env, cwd}`"));
            None
        }
    }
}

/// `python:` a Python function run under the scheduler like a shell command (its own process, output captured as
/// the task's log, timeouts and retries), called with the run's context.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonCall {
    /// `module:function` (`jobs.refresh:main`, or `module:Class.method`), imported with the project folder (or
    /// `cwd`) first on the module path.
    pub callable: String,
    /// Values the function finds in `context.params`.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory, relative to the project folder.
    #[serde(default)]
    pub cwd: Option<String>,
}

/// Reads `python:` (`{callable, params, env, cwd}`, or the callable alone).
pub fn parse_python(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<PythonCall> {
    let call = match &node.value {
        Value::Scalar { text, .. } => {
            PythonCall { callable: text.trim().to_string(), params: BTreeMap::new(), env: BTreeMap::new(), cwd: None }
        }
        Value::Map(_) => from_node::<PythonCall>(node, &[]).map_err(|ds| diags.extend(ds)).ok()?,
        _ => {
            diags.push(Diagnostic::at(node, "`python` is `module:function`, or `{callable, params, env, cwd}`"));
            return None;
        }
    };
    let at = node.get("callable").unwrap_or(node);
    match call.callable.split_once(':') {
        Some((module, function))
            if !module.is_empty()
                && !function.is_empty()
                && module.split('.').chain(function.split('.')).all(is_python_identifier) =>
        {
            Some(call)
        }
        _ => {
            diags.push(Diagnostic::at(
                at,
                format!("python callable `{}` is not `module:function` (e.g. `jobs.refresh:main`)", call.callable),
            ));
            None
        }
    }
}

fn is_python_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// `http:` a request to a webhook or service (start a job elsewhere, ping a dashboard refresh).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    pub url: String,
    /// GET, POST (default), PUT, PATCH or DELETE.
    #[serde(default = "post")]
    pub method: String,
    /// Header values may be `${env:NAME}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body, as text (templated like the rest of the file).
    #[serde(default)]
    pub body: Option<String>,
    /// How long the request may take (default `30s`).
    #[serde(default = "thirty_seconds", deserialize_with = "crate::duration::deserialize")]
    pub timeout: Duration,
}

fn post() -> String {
    "POST".into()
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

/// What a sensor waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorKind {
    /// A file (or a glob match) under the project folder.
    File(String),
    /// A lake table holds rows in a partition (`date=2026-03-01`).
    Partition { table: String, partition: String },
    /// A lake table's newest `column` value is at most `max_age` old.
    Fresh { table: String, column: String, max_age: Duration },
}

/// `sensor:` waits, poking every `poke_interval`, until its condition holds or `timeout` passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    pub kind: SensorKind,
    pub poke_interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSensor {
    /// A path or glob under the project folder.
    #[serde(default)]
    file: Option<String>,
    /// A lake table (`zone.table`).
    #[serde(default)]
    table: Option<String>,
    /// With `table`: a partition that must hold rows.
    #[serde(default)]
    partition: Option<String>,
    /// With `table` and `max_age`: the timestamp column whose newest value must be recent.
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    max_age: Option<String>,
    /// How often to look (default 30s).
    #[serde(default)]
    poke_interval: Option<String>,
    /// How long to wait before failing (default 24h).
    #[serde(default)]
    timeout: Option<String>,
}

/// Reads `sensor:`.
pub fn parse_sensor(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Sensor> {
    let raw = from_node::<RawSensor>(node, &[]).map_err(|ds| diags.extend(ds)).ok()?;
    let at = |k: &str| node.get(k).unwrap_or(node);
    let mut duration = |key: &str, text: &Option<String>, default: u64| match text {
        None => Some(Duration::from_secs(default)),
        Some(t) => match parse_duration(t) {
            Ok(d) if d.as_secs() > 0 => Some(d),
            Ok(_) => {
                diags.push(Diagnostic::at(at(key), format!("`{key}` must be longer than zero")));
                None
            }
            Err(e) => {
                diags.push(Diagnostic::at(at(key), e));
                None
            }
        },
    };
    let poke_interval = duration("poke_interval", &raw.poke_interval, 30);
    let timeout = duration("timeout", &raw.timeout, 86_400);
    let max_age = raw.max_age.as_ref().and_then(|_| duration("max_age", &raw.max_age, 0));
    let kind = match (&raw.file, &raw.table, &raw.partition, &raw.column) {
        (Some(f), None, None, None) => Some(SensorKind::File(f.clone())),
        (None, Some(t), Some(p), None) => Some(SensorKind::Partition { table: t.clone(), partition: p.clone() }),
        (None, Some(t), None, Some(c)) => match max_age {
            Some(max_age) => Some(SensorKind::Fresh { table: t.clone(), column: c.clone(), max_age }),
            None => {
                diags.push(Diagnostic::at(node, "a freshness sensor needs `max_age` (such as `2h`)"));
                None
            }
        },
        _ => {
            diags.push(Diagnostic::at(
                node,
                "a sensor waits for `file`, for `table` + `partition`, or for `table` + `column` + `max_age`",
            ));
            None
        }
    };
    Some(Sensor { kind: kind?, poke_interval: poke_interval?, timeout: timeout? })
}

/// Reads `http:`.
pub fn parse_http(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<HttpCall> {
    let call = from_node::<HttpCall>(node, &[]).map_err(|ds| diags.extend(ds)).ok()?;
    let method = call.method.to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        diags.push(Diagnostic::at(node.get("method").unwrap_or(node), format!("unknown method `{}`", call.method)));
        return None;
    }
    if !call.url.starts_with("http://") && !call.url.starts_with("https://") && !call.url.starts_with("${") {
        diags.push(Diagnostic::at(node.get("url").unwrap_or(node), format!("`{}` is not an http(s) URL", call.url)));
        return None;
    }
    Some(HttpCall { method, ..call })
}

/// Reads a duration key such as `timeout: 30m`.
pub fn parse_duration_key(node: &Node, key: &str, diags: &mut Vec<Diagnostic>) -> Option<Duration> {
    let v = node.get(key)?;
    let text = v.as_str().unwrap_or_default();
    match parse_duration(text) {
        Ok(d) if d.as_secs() > 0 => Some(d),
        Ok(_) => {
            diags.push(Diagnostic::at(v, format!("`{key}` must be longer than zero")));
            None
        }
        Err(e) => {
            diags.push(Diagnostic::at(v, e));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(yaml: &str) -> Result<Schedule, Vec<Diagnostic>> {
        let node = crate::yaml::parse(yaml).map_err(|d| vec![d])?;
        let node = node.get("schedule").cloned().ok_or_else(Vec::new)?;
        let mut diags = Vec::new();
        let s = parse_schedule(&node, &mut diags);
        if diags.is_empty() {
            s.ok_or_else(Vec::new)
        } else {
            Err(diags)
        }
    }

    #[test]
    fn schedules_read_presets_cron_and_fixed_intervals() {
        let s = schedule("schedule: \"@daily\"").map_err(|d| format!("{d:?}")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(s.every, Every::Cron(_)) && !s.catchup && s.max_active_runs == 1);
        let s = schedule(
            "schedule: {cron: \"0 6 * * 1-5\", timezone: Europe/Berlin, start_date: 2026-03-01, catchup: true}",
        )
        .map_err(|d| format!("{d:?}"))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.timezone, chrono_tz::Europe::Berlin);
        assert!(s.catchup);
        let s = schedule("schedule: {every: 15m, start_date: 2026-03-01}")
            .map_err(|d| format!("{d:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(s.every, Every::Fixed(d) if d.as_secs() == 900));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong_where() {
        let msg = |yaml: &str| schedule(yaml).err().map(|d| format!("{}: {}", d[0].line, d[0].message));
        assert!(msg("schedule: \"@dayly\"").is_some_and(|m| m.contains("unknown preset `@dayly`")));
        assert!(msg("schedule: \"61 * * * *\"").is_some_and(|m| m.contains("not a cron expression")));
        assert!(msg("schedule:\n  cron: \"@daily\"\n  timezone: Mars/Base")
            .is_some_and(|m| m.starts_with("3:") && m.contains("unknown time zone `Mars/Base`")));
        assert!(msg("schedule: every 15m").is_some_and(|m| m.contains("needs a `start_date`")));
        assert!(msg("schedule: {cron: \"@daily\", catchup: yes please}").is_some());
    }

    #[test]
    fn sensors_read_their_three_kinds_and_refuse_a_mixture() {
        let sensor = |yaml: &str| {
            let node = crate::yaml::parse(yaml).map_err(|d| d.message)?;
            let mut diags = Vec::new();
            let s = parse_sensor(&node, &mut diags);
            match (s, diags.first()) {
                (Some(s), None) => Ok(s),
                (_, Some(d)) => Err(d.message.clone()),
                (None, None) => Err("nothing".into()),
            }
        };
        let s = sensor("{file: \"in/*.csv\", poke_interval: 5s, timeout: 1h}");
        assert_eq!(
            s.map(|s| (s.kind, s.poke_interval.as_secs(), s.timeout.as_secs())),
            Ok((SensorKind::File("in/*.csv".into()), 5, 3600))
        );
        let s = sensor("{table: gold.revenue, column: updated_at, max_age: 2h}");
        assert!(matches!(s.map(|s| s.kind), Ok(SensorKind::Fresh { max_age, .. }) if max_age.as_secs() == 7200));
        assert!(sensor("{table: gold.revenue, column: updated_at}").is_err_and(|e| e.contains("needs `max_age`")));
        assert!(
            sensor("{file: a.csv, table: raw.x, partition: \"date=1\"}").is_err_and(|e| e.contains("waits for `file`"))
        );
    }

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            max: 5,
            delay: Duration::from_secs(10),
            exponential: true,
            max_delay: Duration::from_secs(60),
            jitter: false,
        };
        let waits: Vec<u64> = (1..=5).map(|r| p.delay_before(r).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 60, 60]);
    }
}
