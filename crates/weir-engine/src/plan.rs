//! The typed plan of a pipeline: every source and sink block parsed once, purely (no file, network or secret
//! touched), with every problem collected. `weir validate`, `weir run`, the scheduler and the web UI's lineage all
//! work from this plan; nothing parses a component again after it.
//!
//! Connector sources and sinks come from a [`Registry`] (`weir-connect`); lake tables (`type: lake`) are planned here,
//! since they are read through DataFusion and written with contracts by this crate.

use weir_config::{Component, Diagnostic, Pipeline, Task, TaskInput};
use weir_connect::{BatchSink, BatchSource, Incremental, Registry};
use weir_lake::{LakeSinkConfig, LakeSourceConfig, WriteMode};

/// Where a task's rows come from.
#[derive(Debug)]
pub enum InputPlan {
    /// `type: lake`: a lake table, read through DataFusion.
    Lake(LakeSourceConfig),
    /// A connector (files, REST, databases).
    Source(Box<dyn BatchSource>),
    /// `model: NAME`: the model's SQL over the lake, templated.
    Model { name: String, sql: String },
    /// `sql:` over the lake.
    Sql(String),
    /// A shell command, an HTTP call or a sensor: no rows.
    NoRows,
}

/// Where a task's rows go.
#[derive(Debug)]
pub enum SinkPlan {
    /// A lake table (Parquet or Delta), with its contract, checks on the staged output and schema history.
    Lake(LakeSinkConfig),
    /// A connector sink (a database table).
    Connector(Box<dyn BatchSink>),
}

/// One task, planned.
#[derive(Debug)]
pub struct TaskPlan {
    pub input: InputPlan,
    pub sink: Option<SinkPlan>,
}

impl TaskPlan {
    /// How the task's source reads incrementally, if it does.
    pub fn incremental(&self) -> Option<Incremental> {
        match &self.input {
            InputPlan::Source(s) => s.incremental(),
            _ => None,
        }
    }

    /// The lake sink, if the task writes a lake table.
    pub fn lake_sink(&self) -> Option<&LakeSinkConfig> {
        match &self.sink {
            Some(SinkPlan::Lake(cfg)) => Some(cfg),
            _ => None,
        }
    }

    /// What the task reads, for lineage: a lake table, the lake tables among `known` that a query names, or an
    /// outside source as `kind:what`.
    pub fn reads(&self, known: &[String]) -> Vec<String> {
        match &self.input {
            InputPlan::Lake(cfg) => vec![cfg.table.clone()],
            InputPlan::Source(s) => vec![format!("{}:{}", s.kind(), s.reads().chars().take(60).collect::<String>())],
            InputPlan::Model { sql, .. } | InputPlan::Sql(sql) => {
                known.iter().filter(|t| names_table(sql, t)).cloned().collect()
            }
            InputPlan::NoRows => Vec::new(),
        }
    }
}

/// Every task of a pipeline, planned, in the pipeline's task order.
#[derive(Debug)]
pub struct PipelinePlan {
    pub tasks: Vec<TaskPlan>,
}

impl PipelinePlan {
    /// The plan of `pipeline.tasks[index]`.
    pub fn task(&self, index: usize) -> &TaskPlan {
        &self.tasks[index]
    }
}

/// Plans every task of `pipeline`; the problems of all tasks at once, each with file and line.
pub fn plan(pipeline: &Pipeline, registry: &Registry) -> Result<PipelinePlan, Vec<Diagnostic>> {
    let mut tasks = Vec::new();
    let mut diags = Vec::new();
    for task in &pipeline.tasks {
        match plan_task(task, registry) {
            Ok(t) => tasks.push(t),
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() {
        Ok(PipelinePlan { tasks })
    } else {
        Err(diags.into_iter().map(|d| d.in_file(&pipeline.file)).collect())
    }
}

/// Plans one task: its source and sink parsed, and their combination checked.
pub fn plan_task(task: &Task, registry: &Registry) -> Result<TaskPlan, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let input = match &task.input {
        TaskInput::Source(c) if c.kind == "lake" => LakeSourceConfig::parse(&c.node).map(InputPlan::Lake),
        TaskInput::Source(c) => registry.source(c, &["lake"]).map(InputPlan::Source),
        TaskInput::Model { name, sql } => Ok(InputPlan::Model { name: name.clone(), sql: sql.clone() }),
        TaskInput::Sql(sql) => Ok(InputPlan::Sql(sql.clone())),
        TaskInput::Shell(_) | TaskInput::Python(_) | TaskInput::Http(_) | TaskInput::Sensor(_) => Ok(InputPlan::NoRows),
    };
    let sink = task.sink.as_ref().map(|c| plan_sink(c, registry)).transpose();
    let (input, sink) = match (input, sink) {
        (Ok(input), Ok(sink)) => (input, sink),
        (input, sink) => {
            diags.extend(input.err().unwrap_or_default());
            diags.extend(sink.err().unwrap_or_default());
            return Err(diags);
        }
    };
    let planned = TaskPlan { input, sink };
    if let Some(problem) = incremental_write_problem(task, &planned) {
        return Err(vec![problem]);
    }
    Ok(planned)
}

fn plan_sink(component: &Component, registry: &Registry) -> Result<SinkPlan, Vec<Diagnostic>> {
    if component.kind == "lake" {
        return LakeSinkConfig::parse(&component.node).map(SinkPlan::Lake);
    }
    registry.sink(component, &["lake"]).map(SinkPlan::Connector)
}

/// Why `task`'s write cannot take an incremental source, if it cannot: such a source reads only the rows past its
/// cursor, so a write that replaces more than this run's own partition (`mode: overwrite`, an unpartitioned table,
/// `partition_by`) would delete every row it did not read again.
fn incremental_write_problem(task: &Task, planned: &TaskPlan) -> Option<Diagnostic> {
    let incremental = planned.incremental()?;
    let sink = planned.lake_sink()?;
    let sink_node = &task.sink.as_ref()?.node;
    let at = sink_node.get("mode").unwrap_or(sink_node);
    if incremental.lookback && sink.mode != WriteMode::Merge {
        return Some(
            Diagnostic::at(
                at,
                format!(
                    "task `{}`: `lookback` reads again rows that an earlier run loaded; only `mode: merge` folds them \
                     into one row per key, any other write would hold them twice",
                    task.name
                ),
            )
            .with_hint(Some("use `mode: merge` with `keys` (format: delta), or remove `lookback`".to_string())),
        );
    }
    let what = match sink.mode {
        WriteMode::Append | WriteMode::Merge => return None,
        WriteMode::Overwrite => "`mode: overwrite` replaces the whole table",
        WriteMode::ReplacePartitions if sink.partition_by.is_some() => {
            "`partition_by` replaces every partition a new row falls in"
        }
        WriteMode::ReplacePartitions if sink.partition.is_none() => "an unpartitioned table is replaced whole",
        WriteMode::ReplacePartitions => return None,
    };
    Some(
        Diagnostic::at(
            at,
            format!(
                "task `{}`: an incremental source reads only the rows past its cursor, and {what} with them: every \
                 row read by an earlier run would be deleted",
                task.name
            ),
        )
        .with_hint(Some(
            "write each run into its own partition (`partition: \"date={{ ds }}\"`), or use `mode: append`, or \
             `mode: merge` with `keys` (format: delta)"
                .to_string(),
        )),
    )
}

/// Whether `sql` mentions `table` (`zone.name`) as a whole word.
fn names_table(sql: &str, table: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let needle = table.to_ascii_lowercase();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    lower
        .match_indices(&needle)
        .any(|(i, _)| !word(lower[..i].chars().next_back()) && !word(lower[i + needle.len()..].chars().next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_a_table_as_a_whole_word() {
        assert!(names_table("SELECT * FROM silver.orders o JOIN raw.users u", "silver.orders"));
        assert!(!names_table("SELECT * FROM silver.orders_archive", "silver.orders"));
        assert!(!names_table("SELECT * FROM x.silver.orders", "silver.orders"));
    }
}
