//! A task's report as JSON for the Python package's result objects (`weir.TaskResult`): rows, the table and its
//! Delta version, files, partitions, checks, rejects, merge counts, schema drift.

use serde_json::{json, Value};
use weir_engine::TaskReport;

pub fn tasks_json(reports: &[TaskReport]) -> String {
    Value::Array(reports.iter().map(task).collect()).to_string()
}

fn task(r: &TaskReport) -> Value {
    let checks: Vec<Value> = r
        .checks
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "kind": c.kind,
                "line": c.line,
                "status": c.status.as_str(),
                "rows_checked": c.rows_checked,
                "failing_rows": c.failing_rows,
                "observed": c.observed,
                "sample": c.sample,
            })
        })
        .collect();
    let rejected: Vec<Value> = r
        .rejected
        .iter()
        .map(|((rule, action), rows)| json!({"rule": rule, "action": action.as_str(), "rows": rows}))
        .collect();
    json!({
        "task": r.task,
        "table": r.table,
        "rows_read": r.rows_read,
        "rows_written": r.rows_written,
        "bytes_written": r.bytes_written,
        "files": r.files,
        "partitions": r.partitions,
        "delta_version": r.delta_version,
        "seconds": r.elapsed.as_secs_f64(),
        "checks": checks,
        "rejected": rejected,
        "rejects_table": r.rejects_table,
        "schema_changes": r.schema_changes,
        "schema_version": r.schema_version,
        "merged": r.merged.map(|(inserted, updated, deleted)| json!({"inserted": inserted, "updated": updated, "deleted": deleted})),
        "skipped": r.skipped,
        "output": r.output,
    })
}

/// A stream run's figures as JSON for `weir.StreamResult`.
pub fn stream_json(outcome: &weir::stream::StreamOutcome) -> String {
    let f = &outcome.figures;
    let decisions: serde_json::Map<String, Value> =
        weir::stream::DECISION_NAMES.iter().zip(f.decisions).map(|(name, n)| (name.to_string(), json!(n))).collect();
    json!({
        "stream": outcome.stream,
        "events": f.events,
        "replayed": f.replayed,
        "decisions": decisions,
        "late": f.late,
        "invalid": f.invalid,
        "rules": f.rules.iter().map(|(rule, matched, decided)| json!({"rule": rule, "matched": matched, "decided": decided})).collect::<Vec<_>>(),
        "written": outcome.written.iter().map(|(sink, rows)| (sink.clone(), json!(rows))).collect::<serde_json::Map<_, _>>(),
        "summary": outcome.summary,
    })
    .to_string()
}
