//! The layout promise of `weir-connect::connector`: a new connector is one file that implements a trait, plus one
//! registration. This file is such a connector, a `type: countdown` source that yields the integers from `from` down
//! to 1 (with a typed config that rejects unknown keys), registered on top of the built-in registry; the test plans a
//! pipeline that names it, runs the task through the same `TaskRunner` as every other source (steps, checks, lake
//! sink), and reads the lake table back.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::Deserialize;
use weir_config::{from_node, Diagnostic, Pipeline, Project};
use weir_connect::connector::{SourceKind, SourceStream};
use weir_connect::{BatchSource, Registry, SourceRun};
use weir_core::RunContext;
use weir_engine::{Engine, TaskRunner};

/// `type: countdown`: the integers `from`, `from - 1`, ..., 1 in a column `n`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Countdown {
    /// Where to start counting down from.
    from: i64,
}

const COUNTDOWN: SourceKind = SourceKind {
    name: "countdown",
    parse: |node| from_node::<Countdown>(node, &["type"]).map(|c| Box::new(c) as Box<dyn BatchSource>),
};

impl BatchSource for Countdown {
    fn kind(&self) -> &str {
        "countdown"
    }

    fn reads(&self) -> String {
        format!("from {}", self.from)
    }

    fn open<'a>(&'a self, run: SourceRun<'a>) -> BoxFuture<'a, weir_core::Result<SourceStream>> {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let values: Vec<i64> = (1..=self.from).rev().collect();
        let batches: Vec<weir_core::Result<RecordBatch>> = values
            .chunks(run.connector.batch_rows.max(1))
            .map(|chunk| {
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(chunk.to_vec()))])
                    .map_err(|e| weir_core::Error::engine("countdown", e))
            })
            .collect();
        Box::pin(async move { Ok(SourceStream::new(schema, futures::stream::iter(batches).boxed())) })
    }
}

const PIPELINE: &str = r#"version: 1
tasks:
  - name: count
    source: {type: countdown, from: 10}
    steps:
      - filter: "n % 2 = 0"
    checks:
      - not_null: [n]
    sink: {type: lake, table: raw.evens}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connector_from_one_file_plans_and_runs_like_a_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let project = Project::parse(dir.path(), "version: 1\nname: toy\nlake:\n  root: lake\n").unwrap();
    let run = RunContext::daily(chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(), "toy-run");
    let file = dir.path().join("pipelines/toy.yaml");
    let pipeline = Pipeline::parse(&file, PIPELINE, &project.models_dir(), &run).unwrap();

    // The built-in registry does not know the type, and says which ones it knows.
    let unknown = weir_engine::plan::plan(&pipeline, &Registry::builtin()).unwrap_err();
    let text = unknown.iter().map(Diagnostic::to_string).collect::<Vec<_>>().join("\n");
    assert!(text.contains("unknown source type `countdown`") && text.contains("csv"), "{text}");

    // Registered, it plans, and an unknown key in its block is refused with its line.
    let registry = Registry::builtin().with_source(COUNTDOWN);
    let plan = weir_engine::plan::plan(&pipeline, &registry).unwrap();
    let typo = Pipeline::parse(&file, &PIPELINE.replace("from: 10", "form: 10"), &project.models_dir(), &run).unwrap();
    let text = weir_engine::plan::plan(&typo, &registry)
        .unwrap_err()
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("toy.yaml:4:") && text.contains("`form`"), "{text}");

    let engine = Engine::for_project(&project).unwrap();
    let runner =
        TaskRunner { project: &project, pipeline_file: &file, run: &run, engine: &engine, full_refresh: false };
    let report = runner.run(&pipeline.tasks[0], plan.task(0), Arc::new(|_| {})).await.unwrap();
    assert_eq!((report.rows_read, report.rows_written), (10, 5), "{report:?}");

    engine.register_lake().await.unwrap();
    let batches = engine.context().sql("SELECT sum(n) AS s FROM raw.evens").await.unwrap().collect().await.unwrap();
    let sum = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
    assert_eq!(sum, 2 + 4 + 6 + 8 + 10);
}
