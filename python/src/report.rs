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
