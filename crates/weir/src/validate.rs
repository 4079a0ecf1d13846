//! `weir validate`: reads the project file, every pipeline and every model, and reports all problems at once, each
//! with file and line. It touches no data and resolves no secret.

use std::collections::HashMap;
use std::path::Path;

use anyhow::anyhow;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use weir_config::steps::StepKind;
use weir_config::{CheckKind, Diagnostic, Pipeline, Project, Task, TaskInput};
use weir_core::RunContext;
use weir_engine::plan::{InputPlan, PipelinePlan, TaskPlan};

use crate::{exit, Exit};

pub use weir_orchestrate::scheduler::pipeline_files;

/// Plans a pipeline (every source and sink parsed once, their combination checked: `weir_engine::plan`) and checks
/// its SQL: filter and derive expressions, lake `where` clauses, model and check queries. Every problem at once.
pub fn plan_pipeline(pipeline: &Pipeline) -> Result<PipelinePlan, Vec<Diagnostic>> {
    match check_pipeline(pipeline) {
        (Some(plan), diags) if diags.is_empty() => Ok(plan),
        (_, diags) => Err(diags),
    }
}

/// [`plan_pipeline`]'s plan (when its sources and sinks plan) and every problem found.
fn check_pipeline(pipeline: &Pipeline) -> (Option<PipelinePlan>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let plan = weir_engine::plan::plan(pipeline, &weir_connect::Registry::builtin()).map_err(|d| diags.extend(d)).ok();
    let mut sql = Vec::new();
    for task in &pipeline.tasks {
        match &task.input {
            TaskInput::Source(c) if c.kind == "lake" => {
                if let Some(w) = c.node.get("where") {
                    check_expr(w.as_str().unwrap_or(""), w.line, "where", &mut sql);
                }
            }
            TaskInput::Model { name, sql: query } => {
                check_query(query, task.line, &format!("model `{name}`"), &mut sql)
            }
            TaskInput::Sql(query) => check_query(query, task.line, "sql", &mut sql),
            TaskInput::Source(_)
            | TaskInput::Shell(_)
            | TaskInput::Python(_)
            | TaskInput::Http(_)
            | TaskInput::Sensor(_) => {}
        }
        for step in &task.steps {
            match &step.kind {
                StepKind::Filter(f) => check_expr(&f.condition, step.line, "filter", &mut sql),
                StepKind::Derive(pairs) => {
                    for (name, e) in pairs {
                        check_expr(e, step.line, &format!("derive `{name}`"), &mut sql);
                    }
                }
                _ => {}
            }
        }
        for check in &task.checks {
            let what = format!("check `{}`", check.name);
            match &check.kind {
                CheckKind::Expression { condition } => check_expr(condition, check.line, &what, &mut sql),
                CheckKind::Sql { query } => check_query(query, check.line, &what, &mut sql),
                CheckKind::Relationship { to, .. } => {
                    if let Err(e) = weir_lake::TableName::parse(to) {
                        sql.push(Diagnostic::new(check.line, 1, format!("{what}: {e}")));
                    }
                }
                _ => {}
            }
        }
    }
    diags.extend(sql.into_iter().map(|d| d.in_file(&pipeline.file)));
    (plan, diags)
}

/// The output columns of the model and `sql:` tasks that have checks, planned against the lake as it is. A query
/// whose tables do not exist yet (a fresh project) is left out.
async fn planned_columns(project: &Project, pipeline: &Pipeline) -> HashMap<String, Vec<String>> {
    let mut out = HashMap::new();
    let queries: Vec<(&str, &str)> = pipeline
        .tasks
        .iter()
        .filter(|t| !t.checks.is_empty())
        .filter_map(|t| match &t.input {
            TaskInput::Model { sql, .. } | TaskInput::Sql(sql) => Some((t.name.as_str(), sql.as_str())),
            TaskInput::Source(_)
            | TaskInput::Shell(_)
            | TaskInput::Python(_)
            | TaskInput::Http(_)
            | TaskInput::Sensor(_) => None,
        })
        .collect();
    if queries.is_empty() {
        return out;
    }
    let Ok(engine) = weir_engine::Engine::for_project(project) else { return out };
    if engine.register_lake().await.is_err() {
        return out;
    }
    for (task, sql) in queries {
        if let Ok(frame) = engine.context().sql(sql).await {
            out.insert(task.to_string(), frame.schema().fields().iter().map(|f| f.name().clone()).collect());
        }
    }
    out
}

/// The columns a task outputs, followed by name through its steps, when its input's columns can be known without
/// running it: a file source whose files exist (the header or a sample), a lake table that exists, or a model or
/// query whose tables exist.
fn output_columns(
    project: &Project,
    task: &Task,
    plan: &TaskPlan,
    planned: &HashMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let mut cols: Vec<String> = match &plan.input {
        InputPlan::Lake(cfg) => {
            // Only a local lake is listed here (validation reads no remote storage).
            let local = weir_lake::Lake::for_project(project).ok()?.local_root()?.to_path_buf();
            let table =
                weir_lake::catalog::list_local_tables(&local).into_iter().find(|t| t.name.to_string() == cfg.table)?;
            let file = std::fs::File::open(table.sample_file.as_ref()?).ok()?;
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
            let mut names: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
            names.extend(table.partition_columns.iter().cloned());
            match &cfg.columns {
                Some(keep) => keep.clone(),
                None => names,
            }
        }
        // A file's header or sample; validation makes no request and runs no query against a database.
        InputPlan::Source(source) => source.known_columns(&project.dir)?,
        InputPlan::Model { .. } | InputPlan::Sql(_) => planned.get(&task.name)?.clone(),
        InputPlan::NoRows => return None,
    };
    for step in &task.steps {
        match &step.kind {
            StepKind::Rename(pairs) => {
                for (old, new) in pairs {
                    if let Some(c) = cols.iter_mut().find(|c| *c == old) {
                        *c = new.clone();
                    }
                }
            }
            StepKind::Select(c) => cols = c.columns.clone(),
            StepKind::Drop(c) => cols.retain(|x| !c.columns.contains(x)),
            // A Python function's columns are known when it runs (it is asked when the task starts).
            StepKind::Python(_) => return None,
            StepKind::Derive(pairs) => {
                for (name, _) in pairs {
                    if !cols.contains(name) {
                        cols.push(name.clone());
                    }
                }
            }
            _ => {}
        }
    }
    Some(cols)
}

/// Checks that name columns the task's output does not have.
async fn check_check_columns(project: &Project, pipeline: &Pipeline, plan: &PipelinePlan) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let planned = planned_columns(project, pipeline).await;
    for (task, task_plan) in pipeline.tasks.iter().zip(&plan.tasks).filter(|(t, _)| !t.checks.is_empty()) {
        let Some(cols) = output_columns(project, task, task_plan, &planned) else { continue };
        for check in &task.checks {
            for c in check.kind.columns() {
                if !cols.iter().any(|x| x == c) {
                    let hint = weir_config::diag::did_you_mean(c, cols.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("columns are: {}", cols.join(", ")));
                    diags.push(
                        Diagnostic::new(
                            check.line,
                            1,
                            format!("check `{}`: task `{}` has no output column `{c}`", check.name, task.name),
                        )
                        .with_hint(Some(hint))
                        .in_file(&pipeline.file),
                    );
                }
            }
        }
    }
    diags
}

fn check_expr(sql: &str, line: usize, what: &str, diags: &mut Vec<Diagnostic>) {
    let result = Parser::new(&GenericDialect {}).try_with_sql(sql).and_then(|mut p| {
        let e = p.parse_expr()?;
        p.expect_token(&datafusion::sql::sqlparser::tokenizer::Token::EOF)?;
        Ok(e)
    });
    if let Err(e) = result {
        diags.push(Diagnostic::new(line, 1, format!("{what}: `{sql}` is not a valid SQL expression: {e}")));
    }
}

fn check_query(sql: &str, line: usize, what: &str, diags: &mut Vec<Diagnostic>) {
    match Parser::parse_sql(&GenericDialect {}, sql) {
        Ok(statements) if statements.len() == 1 => {}
        Ok(statements) => {
            diags.push(Diagnostic::new(line, 1, format!("{what}: expected one SQL query, found {}", statements.len())))
        }
        Err(e) => diags.push(Diagnostic::new(line, 1, format!("{what}: SQL does not parse: {e}"))),
    }
}

pub async fn validate(project_dir: &Path) -> Result<(), Exit> {
    match check(project_dir).await? {
        Ok(summary) => {
            println!("ok: {summary}");
            Ok(())
        }
        Err(diags) => Err(crate::output::report_diagnostics(&diags)),
    }
}

/// Checks weir.yaml, every pipeline file and every stream file: what is valid (`weir.yaml and 2 pipeline files (5
/// tasks) are valid`), or every problem found, sorted by file and line. Fails only when there is nothing to check.
pub async fn check(project_dir: &Path) -> Result<Result<String, Vec<Diagnostic>>, Exit> {
    let project = match Project::load(project_dir) {
        Ok(p) => p,
        Err(diags) => return Ok(Err(diags)),
    };
    // Templates are rendered for yesterday, as `weir run` would by default.
    let run = RunContext::daily(chrono::Utc::now().date_naive() - chrono::Duration::days(1), "validate");
    let files = pipeline_files(&project);
    if files.is_empty() {
        return Err(exit(2, anyhow!("no pipeline files in {}", project.pipelines_dir().display())));
    }
    let mut diags = Vec::new();
    let mut tasks = 0;
    let mut engines = Vec::new();
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::new(1, 1, format!("cannot read: {e}")).in_file(file));
                continue;
            }
        };
        let (pipeline, found) = Pipeline::parse_all(file, &text, &project.models_dir(), &run);
        diags.extend(found.into_iter().map(|d| d.in_file(file)));
        if let Some(p) = pipeline {
            tasks += p.tasks.len();
            diags.extend(project.check_pools(&p));
            diags.extend(p.check_engines(&project));
            engines.extend(p.engine_plan(&project));
            let (plan, found) = check_pipeline(&p);
            diags.extend(found);
            if let Some(plan) = plan {
                diags.extend(check_check_columns(&project, &p, &plan).await);
            }
        }
    }
    // Stream files (streams/*.yaml): their settings and lines; expressions are planned when a stream starts.
    let streams = weir_stream::supervise::stream_files(&project.dir);
    for file in &streams {
        if let Err(found) = weir_stream::StreamConfig::load(file) {
            diags.extend(found.into_iter().map(|d| if d.file.is_none() { d.in_file(file) } else { d }));
        }
    }
    if diags.is_empty() {
        let stream_note = match streams.len() {
            0 => String::new(),
            1 => " and 1 stream file".to_string(),
            n => format!(" and {n} stream files"),
        };
        let mut summary = format!(
            "{} and {} pipeline file{} ({tasks} tasks){stream_note} are valid",
            weir_config::project::PROJECT_FILE,
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
        if !engines.is_empty() {
            summary.push_str("\nwhere each task runs:");
            for line in engines {
                summary.push_str(&format!("\n  {line}"));
            }
        }
        Ok(Ok(summary))
    } else {
        diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Ok(Err(diags))
    }
}
