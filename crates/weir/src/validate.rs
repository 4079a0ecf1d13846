//! `weir validate`: reads the project file, every pipeline and every model, and reports all problems at once, each
//! with file and line. It touches no data and resolves no secret.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use weir_config::steps::StepKind;
use weir_config::{Diagnostic, Pipeline, Project, TaskInput};
use weir_core::RunContext;

use crate::{exit, Exit};

pub fn pipeline_files(project: &Project) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(project.pipelines_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

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
        if let Some(sink) = &task.sink {
            if sink.kind != "lake" {
                let at = sink.node.get("type").unwrap_or(&sink.node);
                diags.push(
                    Diagnostic::at(at, format!("unknown sink type `{}`", sink.kind))
                        .with_hint(Some("expected `lake`".into())),
                );
            } else if let Err(d) = weir_lake::LakeSinkConfig::parse(&sink.node) {
                diags.extend(d);
            }
        }
    }
    diags.into_iter().map(|d| d.in_file(file)).collect()
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

pub fn validate(project_dir: &Path) -> Result<(), Exit> {
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
        }
    }
    if diags.is_empty() {
        println!(
            "ok: {} and {} pipeline file{} ({tasks} tasks) are valid",
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
