//! Pipeline files (`pipelines/*.yaml`): named tasks with `depends_on`, each reading a source (or running a SQL model),
//! applying cleaning steps and writing to a sink.
//!
//! ```yaml
//! version: 1
//! name: daily_sales
//! tasks:
//!   - name: ingest_orders
//!     source: {type: csv, path: "landing/orders_{{ ds }}.csv"}
//!     sink: {type: lake, table: raw.orders, partition: "date={{ ds }}"}
//!   - name: daily_revenue
//!     depends_on: [ingest_orders]
//!     model: daily_revenue          # models/daily_revenue.sql
//!     sink: {type: lake, table: gold.daily_revenue}
//! ```
//!
//! Sources and sinks are kept as spanned YAML here and read by their connector (`weir-connect`, `weir-lake`), so a
//! new connector never touches this crate.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use weir_core::RunContext;

use crate::checks::{parse_checks, Check};
use crate::diag::{did_you_mean, suggest, Diagnostic};
use crate::engine::{on_this_machine, EngineKind, RemoteEngine, TaskEngine};
use crate::orchestration::{
    self, Alert, HttpCall, PythonCall, RetryPolicy, Schedule, Sensor, ShellCommand, TriggerRule,
};
use crate::steps::{parse_step, Step};
use crate::template;
use crate::yaml::{self, Node, Value};

/// A source or sink block: its `type` and the rest of its settings, for the connector to read.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: String,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub enum TaskInput {
    Source(Component),
    /// `model: NAME`: the SQL in `models/NAME.sql`, already templated.
    Model {
        name: String,
        sql: String,
    },
    /// `sql: "SELECT ..."` inline.
    Sql(String),
    /// `shell: COMMAND`: a command (no rows flow).
    Shell(ShellCommand),
    /// `python: {callable: module:function}`: a Python function run with the run's context (no rows flow).
    Python(PythonCall),
    /// `http: {url, ...}`: a request to a webhook or service.
    Http(HttpCall),
    /// `sensor: {...}`: wait for a file, a partition or fresh data.
    Sensor(Sensor),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub line: usize,
    pub description: Option<String>,
    pub depends_on: Vec<String>,
    pub input: TaskInput,
    pub steps: Vec<Step>,
    /// Data quality checks on the output (or on the input, for a task without a sink).
    pub checks: Vec<Check>,
    pub sink: Option<Component>,
    /// Retries of a failed attempt (the pipeline's `retries` unless the task sets its own).
    pub retries: RetryPolicy,
    /// The longest one attempt may take.
    pub timeout: Option<Duration>,
    pub trigger_rule: TriggerRule,
    /// `pool: NAME`: the task takes one slot of this pool (declared in weir.yaml's `orchestrator.pools`) while it
    /// runs, so at most that many tasks of the pool run at once across every worker.
    pub pool: Option<Pool>,
    /// `engine: local | spark | ballista`: where the task's SQL runs, instead of weir.yaml's default.
    pub engine: Option<TaskEngine>,
}

/// A task's pool and the line that names it (for errors about an undeclared pool).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub schedule: Option<Schedule>,
    /// The longest a whole run may take; its unfinished tasks then fail.
    pub run_timeout: Option<Duration>,
    /// A run not finished this long after its interval ended fires the `deadline` alerts.
    pub deadline: Option<Duration>,
    pub alerts: Vec<Alert>,
    pub tasks: Vec<Task>,
}

const PIPELINE_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "schedule",
    "owner",
    "tags",
    "retries",
    "timeout",
    "run_timeout",
    "deadline",
    "alerts",
    "tasks",
];
const TASK_KEYS: &[&str] = &[
    "name",
    "description",
    "depends_on",
    "source",
    "model",
    "sql",
    "shell",
    "python",
    "http",
    "sensor",
    "steps",
    "checks",
    "sink",
    "retries",
    "timeout",
    "trigger_rule",
    "pool",
    "engine",
];

impl Pipeline {
    /// Reads, templates and validates a pipeline file for `run`. Every problem is reported, each with its file and line.
    pub fn load(file: &Path, models_dir: &Path, run: &RunContext) -> Result<Pipeline, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| vec![Diagnostic::new(1, 1, format!("cannot read pipeline file: {e}")).in_file(file)])?;
        Self::parse(file, &text, models_dir, run).map_err(|ds| ds.into_iter().map(|d| d.in_file(file)).collect())
    }

    pub fn parse(file: &Path, text: &str, models_dir: &Path, run: &RunContext) -> Result<Pipeline, Vec<Diagnostic>> {
        let (pipeline, diags) = Self::parse_all(file, text, models_dir, run);
        match pipeline {
            Some(p) if diags.is_empty() => Ok(p),
            _ => Err(diags),
        }
    }

    /// Like [`Pipeline::parse`], but also returns the tasks that did parse when others did not, so that `weir validate`
    /// can check their sources and sinks too and report everything in one go.
    pub fn parse_all(
        file: &Path,
        text: &str,
        models_dir: &Path,
        run: &RunContext,
    ) -> (Option<Pipeline>, Vec<Diagnostic>) {
        let rendered = match template::render(text, run) {
            Ok(r) => r,
            Err(d) => return (None, vec![d]),
        };
        let root = match yaml::parse(&rendered) {
            Ok(r) => r,
            Err(d) => return (None, vec![d]),
        };
        let mut diags = Vec::new();
        let Some(entries) = root.as_map() else {
            return (
                None,
                vec![Diagnostic::at(&root, "a pipeline file is a mapping with `version`, `name` and `tasks`")],
            );
        };
        unknown_keys(entries, PIPELINE_KEYS, "pipeline", &mut diags);
        crate::project::check_version(&root, &mut diags);
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = optional_string(&root, "name", &mut diags).unwrap_or(stem);
        let description = optional_string(&root, "description", &mut diags);
        let owner = optional_string(&root, "owner", &mut diags);
        let tags = match root.get("tags") {
            None => Vec::new(),
            Some(n) => match n.as_seq() {
                Some(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
                None => {
                    diags.push(Diagnostic::at(n, "`tags` is a list"));
                    Vec::new()
                }
            },
        };
        let schedule = root.get("schedule").and_then(|n| orchestration::parse_schedule(n, &mut diags));
        let defaults = TaskDefaults {
            retries: root.get("retries").and_then(|n| orchestration::parse_retries(n, &mut diags)).unwrap_or_default(),
            timeout: orchestration::parse_duration_key(&root, "timeout", &mut diags),
        };
        let run_timeout = orchestration::parse_duration_key(&root, "run_timeout", &mut diags);
        let deadline = orchestration::parse_duration_key(&root, "deadline", &mut diags);
        let alerts = root.get("alerts").map(|n| orchestration::parse_alerts(n, &mut diags)).unwrap_or_default();

        let mut tasks = Vec::new();
        let mut graph = Vec::new();
        match root.get("tasks") {
            None => diags.push(Diagnostic::at(&root, "missing `tasks`: a pipeline needs at least one task")),
            Some(node) => match node.as_seq() {
                Some(items) if !items.is_empty() => {
                    for item in items {
                        if let Some(task) = parse_task(item, models_dir, run, &defaults, &mut diags, &mut graph) {
                            tasks.push(task);
                        }
                    }
                }
                _ => diags.push(Diagnostic::at(node, "`tasks` must be a non-empty list")),
            },
        }
        check_graph(&graph, &mut diags);
        diags.sort_by_key(|d| (d.line, d.column));
        let pipeline = Pipeline {
            file: file.to_path_buf(),
            name,
            description,
            owner,
            tags,
            schedule,
            run_timeout,
            deadline,
            alerts,
            tasks,
        };
        (Some(pipeline), diags)
    }

    /// Task indices in an order where every task comes after all it depends on (stable: file order otherwise).
    pub fn topological_order(&self) -> Vec<usize> {
        let index: HashMap<&str, usize> = self.tasks.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        let mut done = vec![false; self.tasks.len()];
        let mut order = Vec::with_capacity(self.tasks.len());
        while order.len() < self.tasks.len() {
            let before = order.len();
            for (i, t) in self.tasks.iter().enumerate() {
                if !done[i] && t.depends_on.iter().all(|d| index.get(d.as_str()).is_none_or(|&j| done[j])) {
                    done[i] = true;
                    order.push(i);
                }
            }
            if order.len() == before {
                break; // a cycle; `check_graph` reported it at load
            }
        }
        order
    }

    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

fn unknown_keys(entries: &[(Node, Node)], allowed: &[&str], what: &str, diags: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    for (k, _) in entries {
        let key = k.as_str().unwrap_or("");
        if !allowed.contains(&key) {
            diags.push(
                Diagnostic::at(k, format!("unknown key `{key}` in {what}")).with_hint(Some(suggest(key, allowed))),
            );
        } else if !seen.insert(key) {
            diags.push(Diagnostic::at(k, format!("key `{key}` is given twice")));
        }
    }
}

fn optional_string(node: &Node, key: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let v = node.get(key)?;
    match &v.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        Value::Null => None,
        _ => {
            diags.push(Diagnostic::at(v, format!("`{key}` must be text, found {}", v.kind_name())));
            None
        }
    }
}

fn component(node: &Node, what: &str, diags: &mut Vec<Diagnostic>) -> Option<Component> {
    if node.as_map().is_none() {
        diags.push(Diagnostic::at(
            node,
            format!("`{what}` must be a mapping with a `type`, such as `{{type: csv, path: ...}}`"),
        ));
        return None;
    }
    match node.get("type").and_then(|t| t.as_str()) {
        Some(kind) => Some(Component { kind: kind.to_string(), node: node.clone() }),
        None => {
            diags.push(Diagnostic::at(node, format!("`{what}` needs a `type`")));
            None
        }
    }
}

/// The part of a task the dependency checks need, kept even when the rest of the task has problems.
struct GraphNode {
    name: String,
    line: usize,
    depends_on: Vec<String>,
}

/// What tasks inherit from their pipeline.
struct TaskDefaults {
    retries: RetryPolicy,
    timeout: Option<Duration>,
}

fn parse_task(
    node: &Node,
    models_dir: &Path,
    run: &RunContext,
    defaults: &TaskDefaults,
    diags: &mut Vec<Diagnostic>,
    graph: &mut Vec<GraphNode>,
) -> Option<Task> {
    let Some(entries) = node.as_map() else {
        diags.push(Diagnostic::at(node, "each task is a mapping with `name`, a source or model, and a `sink`"));
        return None;
    };
    let before = diags.len();
    unknown_keys(entries, TASK_KEYS, "task", diags);
    let name = optional_string(node, "name", diags);
    if name.is_none() {
        diags.push(Diagnostic::at(node, "task without a `name`"));
    }
    let description = optional_string(node, "description", diags);
    let depends_on = match node.get("depends_on") {
        None => Vec::new(),
        Some(n) => match &n.value {
            Value::Scalar { text, .. } => vec![text.clone()],
            Value::Seq(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
            Value::Null => Vec::new(),
            Value::Map(_) => {
                diags.push(Diagnostic::at(n, "`depends_on` is a task name or a list of task names"));
                Vec::new()
            }
        },
    };
    if let Some(n) = &name {
        graph.push(GraphNode { name: n.clone(), line: node.line, depends_on: depends_on.clone() });
    }
    let inputs: Vec<&str> = ["source", "model", "sql", "shell", "python", "http", "sensor"]
        .into_iter()
        .filter(|k| node.get(k).is_some())
        .collect();
    let input = match inputs.as_slice() {
        ["source"] => node.get("source").and_then(|n| component(n, "source", diags)).map(TaskInput::Source),
        ["model"] => {
            let n = node.get("model")?;
            let model = n.as_str().unwrap_or("").to_string();
            let path = models_dir.join(format!("{model}.sql"));
            match std::fs::read_to_string(&path) {
                Ok(sql) => match template::render(&sql, run) {
                    Ok(sql) => Some(TaskInput::Model { name: model, sql }),
                    Err(d) => {
                        diags.push(Diagnostic::at(n, format!("in {}: {}", path.display(), d)));
                        None
                    }
                },
                Err(_) => {
                    let known = list_models(models_dir);
                    let hint = did_you_mean(&model, known.iter().map(String::as_str));
                    diags.push(
                        Diagnostic::at(n, format!("model `{model}` not found: no file {}", path.display()))
                            .with_hint(hint),
                    );
                    None
                }
            }
        }
        ["sql"] => optional_string(node, "sql", diags).map(TaskInput::Sql),
        ["shell"] => node.get("shell").and_then(|n| orchestration::parse_shell(n, diags)).map(TaskInput::Shell),
        ["python"] => node.get("python").and_then(|n| orchestration::parse_python(n, diags)).map(TaskInput::Python),
        ["http"] => node.get("http").and_then(|n| orchestration::parse_http(n, diags)).map(TaskInput::Http),
        ["sensor"] => node.get("sensor").and_then(|n| orchestration::parse_sensor(n, diags)).map(TaskInput::Sensor),
        [] => {
            diags.push(Diagnostic::at(
                node,
                "task needs one of `source`, `model`, `sql`, `shell`, `python`, `http` or `sensor`",
            ));
            None
        }
        _ => {
            diags.push(Diagnostic::at(node, format!("task has {}: give exactly one", inputs.join(" and "))));
            None
        }
    };
    let mut steps = Vec::new();
    if let Some(n) = node.get("steps") {
        match &n.value {
            Value::Seq(items) => {
                for item in items {
                    match parse_step(item) {
                        Ok(s) => steps.push(s),
                        Err(ds) => diags.extend(ds),
                    }
                }
            }
            Value::Null => {}
            _ => diags.push(Diagnostic::at(n, "`steps` must be a list")),
        }
    }
    let checks = node.get("checks").map(|n| parse_checks(n, diags)).unwrap_or_default();
    let rowless = ["shell", "python", "http", "sensor"].into_iter().find(|k| node.get(k).is_some());
    if let Some(kind) = rowless {
        for key in ["steps", "checks", "sink"] {
            if let Some(n) = node.get(key) {
                diags.push(Diagnostic::at(n, format!("a `{kind}` task has no rows, so no `{key}`")));
            }
        }
    }
    let is_shell = rowless.is_some();
    let sink = match node.get("sink") {
        Some(n) => component(n, "sink", diags),
        None if is_shell => None,
        // A task that only checks a table needs no sink.
        None if !checks.is_empty() => None,
        None => {
            diags.push(Diagnostic::at(node, "task needs a `sink` (where its output goes), or `checks` to run"));
            None
        }
    };
    // A task with problems is still returned when its parts parsed, so that `weir validate` can check its source,
    // steps and sink too; `Pipeline::parse` fails on any diagnostic anyway.
    let _ = before;
    let retries = match node.get("retries") {
        Some(n) => orchestration::parse_retries(n, diags).unwrap_or_default(),
        None => defaults.retries.clone(),
    };
    let timeout = orchestration::parse_duration_key(node, "timeout", diags).or(defaults.timeout);
    let trigger_rule = match node.get("trigger_rule") {
        None => TriggerRule::default(),
        Some(n) => crate::de::from_node::<TriggerRule>(n, &[]).unwrap_or_else(|_| {
            let given = n.as_str().unwrap_or_default();
            diags.push(
                Diagnostic::at(n, format!("unknown trigger rule `{given}`"))
                    .with_hint(Some(suggest(given, orchestration::TRIGGER_RULES))),
            );
            TriggerRule::default()
        }),
    };
    let pool = node.get("pool").and_then(|n| match n.as_str() {
        Some(name) if !name.trim().is_empty() => Some(Pool { name: name.trim().to_string(), line: n.line }),
        _ => {
            diags.push(Diagnostic::at(n, "`pool` must be the name of a pool declared in weir.yaml"));
            None
        }
    });
    let engine = node.get("engine").and_then(|n| match n.as_str().and_then(EngineKind::parse) {
        Some(kind) => Some(TaskEngine { kind, line: n.line }),
        None => {
            let given = n.as_str().unwrap_or_default();
            diags.push(
                Diagnostic::at(n, format!("unknown engine `{given}`"))
                    .with_hint(Some(suggest(given, EngineKind::NAMES))),
            );
            None
        }
    });
    Some(Task {
        name: name?,
        line: node.line,
        description,
        depends_on,
        input: input?,
        steps,
        checks,
        sink,
        retries,
        timeout,
        trigger_rule,
        pool,
        engine,
    })
}

fn list_models(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn check_graph(tasks: &[GraphNode], diags: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let mut seen = HashSet::new();
    for t in tasks {
        if !seen.insert(t.name.as_str()) {
            diags.push(Diagnostic::new(t.line, 1, format!("task name `{}` is used twice", t.name)));
        }
        for d in &t.depends_on {
            if !names.contains(&d.as_str()) {
                diags.push(
                    Diagnostic::new(
                        t.line,
                        1,
                        format!("task `{}` depends on `{d}`, which is not a task of this pipeline", t.name),
                    )
                    .with_hint(did_you_mean(d, names.iter().copied())),
                );
            } else if d == &t.name {
                diags.push(Diagnostic::new(t.line, 1, format!("task `{}` depends on itself", t.name)));
            }
        }
    }
    // Cycle detection by repeated removal of tasks whose dependencies are all removed.
    let mut remaining: Vec<&GraphNode> = tasks.iter().collect();
    loop {
        let before = remaining.len();
        let names_left: HashSet<&str> = remaining.iter().map(|t| t.name.as_str()).collect();
        remaining.retain(|t| t.depends_on.iter().any(|d| names_left.contains(d.as_str()) && d != &t.name));
        if remaining.len() == before {
            break;
        }
    }
    if !remaining.is_empty() {
        let cycle: Vec<&str> = remaining.iter().map(|t| t.name.as_str()).collect();
        diags.push(Diagnostic::new(
            remaining[0].line,
            1,
            format!("tasks depend on each other in a cycle: {}", cycle.join(" -> ")),
        ));
    }
}

impl Task {
    /// Why this task's rows cannot be computed by a remote engine of `kind` (`None`: they can). Model and `sql:`
    /// tasks send their SQL to either engine (their steps then run here on the rows that come back); on Spark, a lake
    /// source's read and its cleaning steps compile to one SQL plan when every step has an exact remote form.
    pub fn why_not_on(&self, kind: EngineKind) -> Option<String> {
        match (&self.input, kind) {
            (_, EngineKind::Local) => None,
            (TaskInput::Model { .. } | TaskInput::Sql(_), _) => None,
            (TaskInput::Source(c), EngineKind::Spark) if c.kind == "lake" => self
                .steps
                .iter()
                .find_map(|s| s.remote_refusal().map(|why| format!("step `{}` (line {}): {why}", s.name(), s.line))),
            (TaskInput::Source(c), EngineKind::Ballista) if c.kind == "lake" => Some(
                "ballista runs SQL models and `sql:` tasks; a lake source's cleaning steps run here or on spark".into(),
            ),
            (TaskInput::Source(c), _) => Some(format!("weir reads its {} source", c.kind)),
            _ => Some("no SQL: a shell, python, http or sensor task".into()),
        }
    }

    /// The remote engine that computes this task's rows, or None when they are computed here: the task's `engine:`,
    /// else weir.yaml's default engine when it can run the task (see [`Task::why_not_on`]).
    pub fn remote_engine<'p>(&self, project: &'p crate::Project) -> Option<RemoteEngine<'p>> {
        match self.engine.map(|e| e.kind) {
            Some(kind) => project.engine.remote(kind),
            None if self.why_not_on(project.engine.default).is_none() => project.engine.remote(project.engine.default),
            None => None,
        }
    }
}

impl Pipeline {
    /// Where each task runs when weir.yaml declares a remote engine, and why a task that cannot run
    /// there stays here: one line per task, for `weir validate`.
    pub fn engine_plan(&self, project: &crate::Project) -> Vec<String> {
        if project.engine.declared().is_empty() {
            return Vec::new();
        }
        let default = project.engine.default;
        self.tasks
            .iter()
            .map(|t| {
                let at = format!("{}.{}", self.name, t.name);
                let what = match &t.input {
                    TaskInput::Source(_) if t.steps.is_empty() => "its lake read",
                    TaskInput::Source(_) => "its lake read and steps as SQL",
                    _ => "SQL",
                };
                match t.remote_engine(project) {
                    Some(engine) => {
                        let url = engine.url().split(';').next().unwrap_or_default();
                        let output = match (&t.input, t.steps.is_empty()) {
                            (TaskInput::Model { .. } | TaskInput::Sql(_), true) => {
                                "its files written there when the rows go unchanged into one partition of a Delta table, else the rows back to weir"
                            }
                            _ => "the rows back to weir",
                        };
                        format!("{at}: {what} on {} ({url}); {output}; weir checks and commits", engine.kind().name())
                    }
                    None if t.engine.is_some() => format!("{at}: here (`engine: local`)"),
                    None => {
                        let asked = match default {
                            EngineKind::Local => project.engine.declared().first().map_or(default, |e| e.kind()),
                            remote => remote,
                        };
                        match t.why_not_on(asked) {
                            Some(why) => format!("{at}: here ({why})"),
                            None => format!("{at}: here (weir.yaml's default is local)"),
                        }
                    }
                }
            })
            .collect()
    }

    /// Tasks whose `engine:` cannot hold: a remote engine weir.yaml does not declare, a task whose rows the engine
    /// cannot compute, or a lake in a local folder the engine cannot read.
    pub fn check_engines(&self, project: &crate::Project) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        for task in &self.tasks {
            let Some(engine) = task.engine.filter(|e| e.kind != EngineKind::Local) else { continue };
            let name = engine.kind.name();
            let at = |m: String| Diagnostic::new(engine.line, 1, m).in_file(&self.file);
            if project.engine.remote(engine.kind).is_none() {
                let example = match engine.kind {
                    EngineKind::Ballista => "ballista: {url: \"df://host:50050\"}",
                    _ => "spark: {url: \"sc://host:15002\"}",
                };
                diags.push(
                    at(format!("task `{}` runs on engine {name}, which weir.yaml does not declare", task.name))
                        .with_hint(Some(format!("add `engine: {{{example}, default: local}}` to weir.yaml"))),
                );
            }
            if let Some(why) = task.why_not_on(engine.kind) {
                diags.push(at(format!("task `{}` cannot run on {name}: {why}", task.name)).with_hint(Some(
                    "model and `sql:` tasks send their SQL; on spark a lake source with cleaning steps sends its read and steps"
                        .into(),
                )));
            }
        }
        let root = project.lake.root.as_str();
        let unreadable = self.tasks.iter().find_map(|t| {
            let kind = t.remote_engine(project)?.kind();
            kind.cannot_read_lake(root).map(|why| (t, kind, why))
        });
        if let Some((task, kind, why)) = unreadable {
            diags.push(
                Diagnostic::new(
                    task.line,
                    1,
                    format!("task `{}` runs on {}, which cannot read the lake `{root}`: {why}", task.name, kind.name()),
                )
                .in_file(&self.file),
            );
        }
        let local_lake = !project.lake.root.contains("://") || project.lake.root.starts_with("file://");
        let far = self
            .tasks
            .iter()
            .filter_map(|t| t.remote_engine(project).map(|e| (t, e)))
            .find(|(_, e)| on_this_machine(e.url()) == Some(false));
        if let (true, Some((task, engine))) = (local_lake, far) {
            diags.push(Diagnostic::new(task.line, 1, format!("the lake is a local folder (`{}`), which {} on another machine cannot read: put it on object storage the engine shares (s3://, az://, gs://)", project.lake.root, engine.kind().name())).in_file(&self.file));
        }
        diags
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn run() -> RunContext {
        RunContext::daily(NaiveDate::from_ymd_opt(2026, 3, 25).unwrap(), "r1")
    }

    fn parse(text: &str) -> Result<Pipeline, Vec<Diagnostic>> {
        Pipeline::parse(Path::new("pipelines/p.yaml"), text, Path::new("/nonexistent/models"), &run())
    }

    #[test]
    fn parses_tasks_in_dependency_order() {
        let p = parse(
            "version: 1\nname: p\ntasks:\n  - name: b\n    depends_on: a\n    sql: select 1\n    sink: {type: lake, table: x.b}\n  - name: a\n    source: {type: csv, path: 'in_{{ ds }}.csv'}\n    steps:\n      - trim: [city]\n      - filter: \"x > 1\"\n    sink: {type: lake, table: x.a}\n",
        )
        .unwrap();
        let order: Vec<&str> = p.topological_order().iter().map(|&i| p.tasks[i].name.as_str()).collect();
        assert_eq!(order, ["a", "b"]);
        let TaskInput::Source(src) = &p.tasks[1].input else { panic!() };
        assert_eq!(src.node.get("path").unwrap().as_str(), Some("in_2026-03-25.csv"));
        assert_eq!(p.tasks[1].steps.len(), 2);
    }

    #[test]
    fn reports_every_problem_with_lines() {
        let errs = parse(
            "version: 1\ntasks:\n  - name: a\n    sourc: {type: csv}\n    sink: {type: lake}\n  - name: b\n    depends_on: [aa]\n    source: {type: csv}\n    steps:\n      - trimm: [x]\n      - dedupe: {keep: last}\n    sink: {type: lake}\n  - name: c\n    model: missing_model\n    sink: {type: lake}\n",
        )
        .unwrap_err();
        let text = errs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        assert!(text.contains("4:5: unknown key `sourc` in task") && text.contains("did you mean `source`?"), "{text}");
        assert!(text.contains("10:9: unknown step `trimm`") && text.contains("did you mean `trim`?"), "{text}");
        assert!(text.contains("`keep: last` needs `order_by`"), "{text}");
        assert!(text.contains("model `missing_model` not found"), "{text}");
        assert!(errs.len() >= 4, "{text}");
    }

    #[test]
    fn tasks_go_to_the_engine_that_can_run_them() {
        let project = |engine: &str, root: &str| {
            crate::Project::parse(
                Path::new("/p"),
                &format!("version: 1\nname: p\nlake:\n  root: {root}\nengine: {engine}\n"),
            )
            .unwrap()
        };
        let p = parse(
            "version: 1\nname: p\ntasks:\n  - name: model\n    sql: select 1\n    sink: {type: lake, table: g.m}\n  - name: clean\n    source: {type: lake, table: raw.orders}\n    steps:\n      - trim: [country]\n    sink: {type: lake, table: s.o}\n  - name: pinned\n    engine: spark\n    sql: select 2\n    sink: {type: lake, table: g.p}\n",
        )
        .unwrap();
        let both = project(
            "{spark: {url: 'sc://spark.internal'}, ballista: {url: 'df://ballista.internal:50050'}, default: ballista}",
            "s3://b/lake",
        );
        let plan = p.engine_plan(&both);
        assert!(plan[0].contains("p.model: SQL on ballista (df://ballista.internal:50050)"), "{plan:?}");
        assert!(plan[0].contains("its files written there when the rows go unchanged into one partition"), "{plan:?}");
        assert!(plan[1].contains("p.clean: here (ballista runs SQL models and `sql:` tasks"), "{plan:?}");
        assert!(plan[2].contains("p.pinned: SQL on spark (sc://spark.internal)"), "{plan:?}");
        assert!(p.check_engines(&both).is_empty(), "{:?}", p.check_engines(&both));
        let local = project("{ballista: {url: 'df://ballista.internal:50050'}, default: local}", "s3://b/lake");
        assert!(p.engine_plan(&local)[0].contains("here (weir.yaml's default is local)"));
        let problems: Vec<String> = p.check_engines(&local).iter().map(|d| d.to_string()).collect();
        assert!(
            problems.iter().any(|d| d.contains("runs on engine spark, which weir.yaml does not declare")),
            "{problems:?}"
        );
        for root in ["az://container/lake", "abfss://container@account.dfs.core.windows.net/lake", "gs://bucket/lake"] {
            let elsewhere = project("{ballista: {url: 'df://ballista.internal:50050'}}", root);
            let problems: Vec<String> = p.check_engines(&elsewhere).iter().map(|d| d.to_string()).collect();
            let refused = format!("runs on ballista, which cannot read the lake `{root}`: its executors read S3");
            assert!(problems.iter().any(|d| d.contains(&refused)), "{root}: {problems:?}");
        }
        let far = project("{ballista: {url: 'df://ballista.internal:50050'}}", "lake");
        let problems: Vec<String> = p.check_engines(&far).iter().map(|d| d.to_string()).collect();
        assert!(problems.iter().any(|d| d.contains("which ballista on another machine cannot read")), "{problems:?}");
    }

    #[test]
    fn detects_unknown_dependencies_and_cycles() {
        let errs = parse(
            "version: 1\ntasks:\n  - name: a\n    depends_on: [b]\n    sql: select 1\n    sink: {type: lake}\n  - name: b\n    depends_on: [a, ingest]\n    sql: select 1\n    sink: {type: lake}\n",
        )
        .unwrap_err();
        let text = errs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        assert!(text.contains("depends on `ingest`"), "{text}");
        assert!(text.contains("cycle: a -> b"), "{text}");
    }
}
