//! Templating of the logical date into pipeline files and SQL models, with the variable names Airflow users know
//! (`{{ ds }}`, `{{ ds_nodash }}`, `{{ data_interval_start }}`, `{{ macros.ds_add(ds, -1) }}`).
//!
//! Files are rendered as text before they are parsed, so any value can be templated. Undefined variables are errors,
//! never empty strings: a typo in `{{ ds }}` must not silently read the wrong partition.

use chrono::{Duration, NaiveDate};
use minijinja::{context, Environment, UndefinedBehavior, Value};
use weir_core::RunContext;

use crate::diag::Diagnostic;

/// The variables a template may use, listed for error hints.
pub const VARIABLES: &[&str] = &[
    "ds",
    "ds_nodash",
    "ts",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "prev_ds",
    "next_ds",
    "run_id",
    "macros",
];

fn ds_add(ds: String, days: i64) -> Result<String, minijinja::Error> {
    let date = NaiveDate::parse_from_str(&ds, "%Y-%m-%d").map_err(|e| {
        minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("ds_add: `{ds}` is not YYYY-MM-DD: {e}"))
    })?;
    let shifted = Duration::try_days(days).and_then(|d| date.checked_add_signed(d)).ok_or_else(|| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("ds_add: {ds} plus {days} days is no date"),
        )
    })?;
    Ok(shifted.format("%Y-%m-%d").to_string())
}

fn ds_format(ds: String, input: String, output: String) -> Result<String, minijinja::Error> {
    let date = NaiveDate::parse_from_str(&ds, &input).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("ds_format: `{ds}` does not match `{input}`: {e}"),
        )
    })?;
    // A format with an unknown `%` item is an error, not a panic of chrono's Display.
    let items: Vec<chrono::format::Item> = chrono::format::StrftimeItems::new(&output).collect();
    if items.iter().any(|i| matches!(i, chrono::format::Item::Error)) {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("ds_format: `{output}` is not a strftime format"),
        ));
    }
    let mut text = String::new();
    use std::fmt::Write;
    write!(text, "{}", date.format_with_items(items.into_iter())).map_err(|_| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("ds_format: `{output}` cannot format a date"),
        )
    })?;
    Ok(text)
}

/// Renders `text` for `run`. Errors name the line inside the text.
pub fn render(text: &str, run: &RunContext) -> Result<String, Diagnostic> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_function("ds_add", ds_add);
    env.add_function("ds_format", ds_format);
    let ds = run.ds();
    let macros = context! {
        ds_add => Value::from_function(ds_add),
        ds_format => Value::from_function(ds_format),
    };
    let ctx = context! {
        ds => ds,
        ds_nodash => run.logical_date.format("%Y%m%d").to_string(),
        // With their UTC offset, as Airflow renders them: at an autumn clock change two hourly intervals start at
        // the same local time, and only the offset tells their partitions apart.
        ts => run.start_with_offset().format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        logical_date => run.logical_date.format("%Y-%m-%d").to_string(),
        data_interval_start => run.start_with_offset().format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        data_interval_end => run.end_with_offset().format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        prev_ds => (run.logical_date - Duration::days(1)).format("%Y-%m-%d").to_string(),
        next_ds => (run.logical_date + Duration::days(1)).format("%Y-%m-%d").to_string(),
        run_id => run.run_id.clone(),
        macros => macros,
    };
    env.render_str(text, ctx).map_err(|e| {
        let line = e.line().unwrap_or(1);
        let mut message = format!("template error: {}", e.kind());
        if let Some(detail) = e.detail() {
            message.push_str(&format!(": {detail}"));
        }
        let hint = matches!(e.kind(), minijinja::ErrorKind::UndefinedError)
            .then(|| format!("templates can use {}", VARIABLES.join(", ")));
        Diagnostic::new(line, 1, message).with_hint(hint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunContext {
        RunContext::daily(NaiveDate::from_ymd_opt(2026, 3, 25).unwrap(), "r1")
    }

    #[test]
    fn renders_airflow_variables() {
        let out = render("p/date={{ ds }}/{{ ds_nodash }} {{ data_interval_end }} {{ macros.ds_add(ds, -1) }}", &run())
            .unwrap();
        assert_eq!(out, "p/date=2026-03-25/20260325 2026-03-26T00:00:00+00:00 2026-03-24");
    }

    #[test]
    fn undefined_variables_fail_with_their_line() {
        let err = render("a: 1\nb: {{ dss }}\n", &run()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("undefined"), "{err:?}");
    }
}
