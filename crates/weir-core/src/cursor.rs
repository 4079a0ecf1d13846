//! Incremental cursors: the highest value of a growing field (`updated_at`, `id`) that a source has loaded. Values
//! are kept as text and compared as numbers when both are numbers, else as text (ISO 8601 timestamps sort as text).

/// Whether cursor value `a` is past `b`.
pub fn greater(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x > y,
        _ => a > b,
    }
}

/// The key a task's cursor is stored under in its table: `<pipeline>/<task>`.
pub fn key(pipeline: &str, task: &str) -> String {
    format!("{pipeline}/{task}")
}
