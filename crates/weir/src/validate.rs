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

use crate::{exit, Exit};

pub use weir_orchestrate::scheduler::pipeline_files;

/// Checks the parts of a pipeline that belong to connectors and to SQL: source and sink settings, filter and derive
/// expressions, model queries.
pub fn check_components(pipeline: &Pipeline) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let file = &pipeline.file;
    for task in &pipeline.tasks {
        match &task.input {
            TaskInput::Source(c) if c.kind == "lake" => {
                if let Err(d) = weir_lake::LakeSourceConfig::parse(&c.node) {
                    diags.extend(d);
                } else if let Some(w) = c.node.get("where") {
                    check_expr(w.as_str().unwrap_or(""), w.line, "where", &mut diags);
                }
            }
            TaskInput::Source(c) => {
                if let Err(d) = weir_connect::parse_source(c) {
                    diags.extend(d);
                }
            }
            TaskInput::Model { name, sql } => check_query(sql, task.line, &format!("model `{name}`"), &mut diags),
            TaskInput::Sql(sql) => check_query(sql, task.line, "sql", &mut diags),
            TaskInput::Shell(_) | TaskInput::Http(_) | TaskInput::Sensor(_) => {}
        }
        for step in &task.steps {
            match &step.kind {
                StepKind::Filter(f) => check_expr(&f.condition, step.line, "filter", &mut diags),
                StepKind::Derive(pairs) => {
                    for (name, e) in pairs {
                        check_expr(e, step.line, &format!("derive `{name}`"), &mut diags);
                    }
                }
                _ => {}
            }
        }
        for check in &task.checks {
            let what = format!("check `{}`", check.name);
            match &check.kind {
                CheckKind::Expression { condition } => check_expr(condition, check.line, &what, &mut diags),
                CheckKind::Sql { query } => check_query(query, check.line, &what, &mut diags),
                CheckKind::Relationship { to, .. } => {
                    if let Err(e) = weir_lake::TableName::parse(to) {
                        diags.push(Diagnostic::new(check.line, 1, format!("{what}: {e}")));
                    }
                }
                _ => {}
            }
        }
        if let Some(sink) = &task.sink {
            let parsed = match sink.kind.as_str() {
                "lake" => weir_lake::LakeSinkConfig::parse(&sink.node).map(|_| ()),
                "postgres" => weir_connect::postgres_sink::PostgresSinkConfig::parse(&sink.node).map(|_| ()),
                "sqlite" => weir_connect::sqlite::SqliteSinkConfig::parse(&sink.node).map(|_| ()),
                other => {
                    let at = sink.node.get("type").unwrap_or(&sink.node);
                    Err(vec![Diagnostic::at(at, format!("unknown sink type `{other}`"))
                        .with_hint(Some(weir_config::diag::suggest(other, &["lake", "postgres", "sqlite"])))])
                }
            };
            if let Err(d) = parsed {
                diags.extend(d);
            }
        }
        diags.extend(weir_engine::task::incremental_write_problem(task));
    }
    diags.into_iter().map(|d| d.in_file(file)).collect()
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
            TaskInput::Source(_) | TaskInput::Shell(_) | TaskInput::Http(_) | TaskInput::Sensor(_) => None,
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
fn output_columns(project: &Project, task: &Task, planned: &HashMap<String, Vec<String>>) -> Option<Vec<String>> {
    let mut cols: Vec<String> = match &task.input {
        TaskInput::Source(c) if c.kind == "lake" => {
            let cfg = weir_lake::LakeSourceConfig::parse(&c.node).ok()?;
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
        TaskInput::Source(c) => match weir_connect::parse_source(c).ok()? {
            weir_connect::SourceConfig::File(f) => {
                let files = f.files(&project.dir).ok()?;
                f.infer_schema(&files).ok()?.fields().iter().map(|f| f.name().clone()).collect()
            }
            // Validation makes no requests: an API's fields are known once it answers.
            weir_connect::SourceConfig::HttpApi(_)
            | weir_connect::SourceConfig::Postgres(_)
            | weir_connect::SourceConfig::Sqlite(_)
            | weir_connect::SourceConfig::Mysql(_) => return None,
        },
        TaskInput::Model { .. } | TaskInput::Sql(_) => planned.get(&task.name)?.clone(),
        TaskInput::Shell(_) | TaskInput::Http(_) | TaskInput::Sensor(_) => return None,
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
async fn check_check_columns(project: &Project, pipeline: &Pipeline) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let planned = planned_columns(project, pipeline).await;
    for task in pipeline.tasks.iter().filter(|t| !t.checks.is_empty()) {
        let Some(cols) = output_columns(project, task, &planned) else { continue };
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
    let project = match Project::load(project_dir) {
        Ok(p) => p,
        Err(diags) => return Err(crate::run::report_diagnostics(&diags)),
    };
    // Templates are rendered for yesterday, as `weir run` would by default.
    let run = RunContext::daily(chrono::Utc::now().date_naive() - chrono::Duration::days(1), "validate");
    let files = pipeline_files(&project);
    if files.is_empty() {
        return Err(exit(2, anyhow!("no pipeline files in {}", project.pipelines_dir().display())));
    }
    let mut diags = Vec::new();
    let mut tasks = 0;
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
            diags.extend(check_components(&p));
            diags.extend(project.check_pools(&p));
            diags.extend(check_check_columns(&project, &p).await);
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
        println!(
            "ok: {} and {} pipeline file{} ({tasks} tasks){stream_note} are valid",
            weir_config::project::PROJECT_FILE,
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
        Ok(())
    } else {
        diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Err(crate::run::report_diagnostics(&diags))
    }
}
