//! Data quality checks as written in a pipeline file: a task's `checks:` list, run on its output before the sink
//! commits (or on a lake table, for a task without a sink).
//!
//! ```yaml
//! checks:
//!   - not_null: [transaction_id, country]
//!   - unique: [transaction_id]
//!   - accepted_values: {column: currency, values: [USD, EUR, GBP], severity: warn}
//!   - range: {column: amount, min: 0, max: 100000, on_fail: quarantine}
//!   - regex: {column: email, pattern: '^[^@]+@[^@]+$'}
//!   - expression: {condition: "discount_amount <= amount", name: discount_below_amount}
//!   - row_count: {min: 1, max_change_pct: 50}
//!   - freshness: {column: order_ts, max_age: 36h}   # relative_to: data_interval_end, for backfills
//!   - relationship: {column: customer_id, to: silver.customers, field: id}
//!   - sql: "SELECT * FROM this WHERE amount < 0"      # rows returned are failures; `this` is the output
//! ```
//!
//! Every check has a `severity`: `error` (the default) fails the task before its sink commits, `warn` logs and goes
//! on. Row-level checks (`not_null`, `accepted_values`, `range`, `regex`, `expression`) may say
//! `on_fail: quarantine`: failing rows leave the output for the `<table>__rejected` table instead.

use serde::Deserialize;

use crate::de::from_node;
use crate::diag::{suggest, Diagnostic};
use crate::steps::shorthand;
use crate::yaml::{Node, Value};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The task fails before its sink commits: the target keeps its previous state.
    #[default]
    Error,
    /// The failure is logged and stored; the task goes on.
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warn => "warn",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnFail {
    /// Failing rows stay in the output; the check reports them.
    #[default]
    Report,
    /// Failing rows move to the quarantine table (`<table>__rejected`) with the reason; the check only warns.
    Quarantine,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub kind: CheckKind,
    /// A name for reports; default: the kind and its columns (`not_null(country)`).
    pub name: String,
    pub severity: Severity,
    pub on_fail: OnFail,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    NotNull { columns: Vec<String> },
    Unique { columns: Vec<String> },
    AcceptedValues { column: String, values: Vec<serde_json::Value> },
    Range { column: String, min: Option<serde_json::Value>, max: Option<serde_json::Value> },
    Regex { column: String, pattern: String },
    Expression { condition: String },
    RowCount { min: Option<u64>, max: Option<u64>, max_change_pct: Option<f64> },
    Freshness { column: String, max_age: std::time::Duration, max_age_text: String, relative_to: FreshnessAnchor },
    Relationship { column: String, to: String, field: String },
    Sql { query: String },
}

impl CheckKind {
    pub fn kind_name(&self) -> &'static str {
        match self {
            CheckKind::NotNull { .. } => "not_null",
            CheckKind::Unique { .. } => "unique",
            CheckKind::AcceptedValues { .. } => "accepted_values",
            CheckKind::Range { .. } => "range",
            CheckKind::Regex { .. } => "regex",
            CheckKind::Expression { .. } => "expression",
            CheckKind::RowCount { .. } => "row_count",
            CheckKind::Freshness { .. } => "freshness",
            CheckKind::Relationship { .. } => "relationship",
            CheckKind::Sql { .. } => "sql",
        }
    }

    /// Whether the check judges each row on its own (and so can quarantine the rows that fail).
    pub fn is_row_level(&self) -> bool {
        matches!(
            self,
            CheckKind::NotNull { .. }
                | CheckKind::AcceptedValues { .. }
                | CheckKind::Range { .. }
                | CheckKind::Regex { .. }
                | CheckKind::Expression { .. }
        )
    }

    /// Columns of the checked table the check names.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            CheckKind::NotNull { columns } | CheckKind::Unique { columns } => {
                columns.iter().map(String::as_str).collect()
            }
            CheckKind::AcceptedValues { column, .. }
            | CheckKind::Range { column, .. }
            | CheckKind::Regex { column, .. }
            | CheckKind::Freshness { column, .. }
            | CheckKind::Relationship { column, .. } => vec![column.as_str()],
            CheckKind::Expression { .. } | CheckKind::RowCount { .. } | CheckKind::Sql { .. } => Vec::new(),
        }
    }
}

pub const CHECK_KINDS: &[&str] = &[
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "regex",
    "expression",
    "row_count",
    "freshness",
    "relationship",
    "sql",
];

/// Settings every check takes besides its own.
const COMMON: &[&str] = &["severity", "on_fail", "name"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsBody {
    /// The columns checked.
    columns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptedBody {
    column: String,
    /// The allowed values; nulls pass (add a `not_null` check to forbid them).
    values: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeBody {
    column: String,
    /// Inclusive lower bound.
    #[serde(default)]
    min: Option<serde_json::Value>,
    /// Inclusive upper bound.
    #[serde(default)]
    max: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexBody {
    column: String,
    /// A regular expression the whole value must match somewhere (anchor it with `^...$` for a full match).
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpressionBody {
    /// A SQL condition every row must satisfy (null counts as satisfied, as in dbt).
    condition: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowCountBody {
    #[serde(default)]
    min: Option<u64>,
    #[serde(default)]
    max: Option<u64>,
    /// Largest change, in percent, against the row count of the previous run of this check.
    #[serde(default)]
    max_change_pct: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreshnessBody {
    /// A date or timestamp column.
    column: String,
    /// How old the newest value may be: `90m`, `36h`, `2d`.
    max_age: String,
    #[serde(default)]
    relative_to: FreshnessAnchor,
}

/// What a `freshness` check measures the age of the newest value against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreshnessAnchor {
    /// The wall clock when the check runs (default): is the data fresh now?
    #[default]
    Now,
    /// The end of the run's data interval: was the data fresh for the day being (back)filled?
    DataIntervalEnd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationshipBody {
    column: String,
    /// The lake table holding the keys (`silver.customers`).
    to: String,
    /// Its key column.
    field: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    /// A query over `this` (the checked output); every row it returns is a failure.
    query: String,
}

pub(crate) fn parse_check(node: &Node) -> Result<Check, Vec<Diagnostic>> {
    let Some([(key, body)]) = node.as_map() else {
        return Err(vec![Diagnostic::at(
            node,
            "a check is a single `kind: settings` entry, such as `- not_null: [order_id]`",
        )
        .with_hint(Some(format!("check kinds: {}", CHECK_KINDS.join(", "))))]);
    };
    let kind_name = key.as_str().unwrap_or("");
    let line = key.line;
    let (severity, on_fail, name) = common(body)?;
    let columns = |body: &Node| from_node::<ColumnsBody>(&shorthand(body, "columns", true), COMMON);
    let kind = match kind_name {
        "not_null" => CheckKind::NotNull { columns: columns(body)?.columns },
        "unique" => CheckKind::Unique { columns: columns(body)?.columns },
        "accepted_values" => {
            let b: AcceptedBody = from_node(body, COMMON)?;
            CheckKind::AcceptedValues { column: b.column, values: b.values }
        }
        "range" => {
            let b: RangeBody = from_node(body, COMMON)?;
            CheckKind::Range { column: b.column, min: b.min, max: b.max }
        }
        "regex" => {
            let b: RegexBody = from_node(body, COMMON)?;
            CheckKind::Regex { column: b.column, pattern: b.pattern }
        }
        "expression" => {
            let b: ExpressionBody = from_node(&shorthand(body, "condition", false), COMMON)?;
            CheckKind::Expression { condition: b.condition }
        }
        "row_count" => {
            let b: RowCountBody = from_node(body, COMMON)?;
            CheckKind::RowCount { min: b.min, max: b.max, max_change_pct: b.max_change_pct }
        }
        "freshness" => {
            let b: FreshnessBody = from_node(body, COMMON)?;
            let max_age = crate::duration::parse(&b.max_age)
                .map_err(|e| vec![Diagnostic::at(body.get("max_age").unwrap_or(body), e)])?;
            CheckKind::Freshness { column: b.column, max_age, max_age_text: b.max_age, relative_to: b.relative_to }
        }
        "relationship" => {
            let b: RelationshipBody = from_node(body, COMMON)?;
            CheckKind::Relationship { column: b.column, to: b.to, field: b.field }
        }
        "sql" => {
            let b: SqlBody = from_node(&shorthand(body, "query", false), COMMON)?;
            CheckKind::Sql { query: b.query }
        }
        other => {
            return Err(vec![
                Diagnostic::at(key, format!("unknown check `{other}`")).with_hint(Some(suggest(other, CHECK_KINDS)))
            ])
        }
    };
    let problem = match &kind {
        CheckKind::NotNull { columns } | CheckKind::Unique { columns } if columns.is_empty() => {
            Some("the check needs at least one column".to_string())
        }
        CheckKind::AcceptedValues { values, .. } if values.is_empty() => {
            Some("`values` is empty: no value could pass".to_string())
        }
        CheckKind::Range { min: None, max: None, .. } => Some("`range` needs `min`, `max` or both".to_string()),
        CheckKind::RowCount { min: None, max: None, max_change_pct: None } => {
            Some("`row_count` needs `min`, `max` or `max_change_pct`".to_string())
        }
        CheckKind::Regex { pattern, .. } => {
            regex_syntax_error(pattern).map(|e| format!("`pattern` is not a valid regular expression: {e}"))
        }
        _ => None,
    };
    if let Some(p) = problem {
        return Err(vec![Diagnostic::at(node, p)]);
    }
    if on_fail == OnFail::Quarantine && !kind.is_row_level() {
        return Err(vec![Diagnostic::at(
            body.get("on_fail").unwrap_or(node),
            format!(
                "`on_fail: quarantine` needs a row-level check (not_null, accepted_values, range, regex, expression); `{kind_name}` judges the table as a whole"
            ),
        )]);
    }
    let name = name.unwrap_or_else(|| default_name(&kind));
    Ok(Check { kind, name, severity, on_fail, line })
}

fn regex_syntax_error(pattern: &str) -> Option<String> {
    // The checks run on DataFusion's regex functions, which use the `regex` crate: an unbalanced group or a bad
    // escape is caught here by a light structural test and, fully, when the check is compiled.
    let mut depth = 0i32;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if chars.next().is_none() {
                    return Some("it ends with a lone `\\`".into());
                }
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Some("a `)` has no matching `(`".into());
                }
            }
            _ => {}
        }
    }
    (depth != 0).then(|| "a `(` is not closed".into())
}

fn default_name(kind: &CheckKind) -> String {
    let cols = kind.columns().join(", ");
    match kind {
        CheckKind::Expression { condition } => format!("expression({condition})"),
        CheckKind::RowCount { .. } => "row_count".into(),
        CheckKind::Sql { .. } => "sql".into(),
        CheckKind::Relationship { column, to, field } => format!("relationship({column} -> {to}.{field})"),
        _ => format!("{}({cols})", kind.kind_name()),
    }
}

type CommonSettings = (Severity, OnFail, Option<String>);

fn common(body: &Node) -> Result<CommonSettings, Vec<Diagnostic>> {
    let severity = match body.get("severity") {
        Some(n) => from_node::<Severity>(n, &[])?,
        None => Severity::default(),
    };
    let on_fail = match body.get("on_fail") {
        Some(n) => from_node::<OnFail>(n, &[])?,
        None => OnFail::default(),
    };
    let name = body.get("name").and_then(|n| n.as_str()).map(str::to_string);
    Ok((severity, on_fail, name))
}

pub(crate) fn parse_checks(node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<Check> {
    let mut checks = Vec::new();
    match &node.value {
        Value::Seq(items) => {
            for item in items {
                match parse_check(item) {
                    Ok(c) => checks.push(c),
                    Err(ds) => diags.extend(ds),
                }
            }
        }
        Value::Null => {}
        _ => diags.push(Diagnostic::at(node, "`checks` must be a list")),
    }
    let mut names = std::collections::HashSet::new();
    for c in &checks {
        if !names.insert(c.name.as_str()) {
            diags.push(Diagnostic::new(c.line, 1, format!("two checks are named `{}`; give one a `name`", c.name)));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<Check>, Vec<Diagnostic>> {
        let node = crate::yaml::parse(yaml).unwrap();
        let mut diags = Vec::new();
        let checks = parse_checks(&node, &mut diags);
        if diags.is_empty() {
            Ok(checks)
        } else {
            Err(diags)
        }
    }

    #[test]
    fn shorthands_settings_and_names() {
        let c = parse(
            "- not_null: [a, b]\n- unique: id\n- range: {column: amount, min: 0, severity: warn, on_fail: quarantine}\n- sql: select * from this where a < 0\n- freshness: {column: ts, max_age: 36h}\n",
        )
        .unwrap();
        assert_eq!(c[0].name, "not_null(a, b)");
        assert!(matches!(&c[1].kind, CheckKind::Unique { columns } if columns == &["id"]));
        assert_eq!((c[2].severity, c[2].on_fail), (Severity::Warn, OnFail::Quarantine));
        assert!(matches!(&c[3].kind, CheckKind::Sql { query } if query.starts_with("select")));
        assert!(
            matches!(&c[4].kind, CheckKind::Freshness { max_age, .. } if *max_age == std::time::Duration::from_secs(36 * 3600))
        );
    }

    #[test]
    fn problems_name_their_line() {
        let errs = parse(
            "- not_nul: [a]\n- range: {column: a}\n- unique: {columns: [a], on_fail: quarantine}\n- regex: {column: a, pattern: '(a'}\n- freshness: {column: t, max_age: 3 days}\n- accepted_values: {column: a, valuse: [1]}\n",
        )
        .unwrap_err();
        let text = errs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        assert!(text.contains("1:3: unknown check `not_nul`") && text.contains("did you mean `not_null`?"), "{text}");
        assert!(text.contains("`range` needs `min`, `max` or both"), "{text}");
        assert!(text.contains("needs a row-level check"), "{text}");
        assert!(text.contains("not a valid regular expression"), "{text}");
        assert!(text.contains("unknown unit `days`"), "{text}");
        assert!(text.contains("valuse"), "{text}");
    }
}
