//! Cleaning steps as written in a pipeline file. Each is a single-key mapping in a task's `steps:` list:
//!
//! ```yaml
//! steps:
//!   - dedupe: [transaction_id]            # or {columns: [...], keep: first|last, order_by: col}
//!   - trim: [customer_name, city]
//!   - lowercase: [customer_name, city]
//!   - fill_null: {columns: [sales_amount], strategy: mean}
//!   - parse_dates: {columns: [order_date], formats: ["%Y-%m-%d", "%Y/%m/%d"]}
//!   - filter: "order_status = 'completed'"
//!   - cast: {amount: double}
//!   - rename: {amt: amount}
//!   - derive: {net_revenue: "amount - discount_amount"}
//!   - select: [order_id, amount]
//!   - drop: [debug_col]
//! ```
//!
//! weir-engine compiles them into batch operators; this module only says what was asked for.

use serde::Deserialize;

use crate::de::from_node;
use crate::diag::{suggest, Diagnostic};
use crate::yaml::{Node, Value};

#[derive(Debug, Clone)]
pub struct Step {
    pub kind: StepKind,
    pub line: usize,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match &self.kind {
            StepKind::Dedupe(_) => "dedupe",
            StepKind::FillNull(_) => "fill_null",
            StepKind::Trim(_) => "trim",
            StepKind::Lowercase(_) => "lowercase",
            StepKind::Uppercase(_) => "uppercase",
            StepKind::ParseDates(_) => "parse_dates",
            StepKind::Filter(_) => "filter",
            StepKind::Cast(_) => "cast",
            StepKind::Rename(_) => "rename",
            StepKind::Select(_) => "select",
            StepKind::Drop(_) => "drop",
            StepKind::Derive(_) => "derive",
            StepKind::Python(_) => "python",
        }
    }
}

#[derive(Debug, Clone)]
pub enum StepKind {
    Dedupe(Dedupe),
    FillNull(FillNull),
    Trim(Columns),
    Lowercase(Columns),
    Uppercase(Columns),
    ParseDates(ParseDates),
    Filter(Filter),
    Cast(Cast),
    Rename(Vec<(String, String)>),
    Select(Columns),
    Drop(Columns),
    Derive(Vec<(String, String)>),
    Python(PythonStep),
}

pub const STEP_KINDS: &[&str] = &[
    "dedupe",
    "fill_null",
    "trim",
    "lowercase",
    "uppercase",
    "parse_dates",
    "filter",
    "cast",
    "rename",
    "select",
    "drop",
    "derive",
    "python",
];

/// A list of column names. Shorthand: `trim: [a, b]` or `trim: a`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// The columns the step applies to.
    pub columns: Vec<String>,
}

/// Which row of a group of duplicates survives.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The first in source order (pandas' default), or the lowest `order_by`.
    #[default]
    First,
    /// The last in `order_by` order.
    Last,
}

/// Drops duplicate rows. Shorthand: `dedupe:` (all columns) or `dedupe: [key, ...]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// Key columns; rows with equal keys are duplicates. Omitted: whole rows must be equal.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Which duplicate to keep.
    #[serde(default)]
    pub keep: Keep,
    /// Column that orders the duplicates of one key for `keep`.
    #[serde(default)]
    pub order_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FillStrategy {
    /// Column mean over the rows reaching this step (pandas `fillna(mean())`).
    Mean,
    /// Column median.
    Median,
    /// Most frequent value (ties: the smallest, as pandas `mode()[0]`).
    Mode,
    /// Last non-null value before it in source order.
    Forward,
}

/// Replaces nulls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillNull {
    /// Columns to fill (with `value` or `strategy`).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// A constant for every listed column.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Computed fill instead of a constant.
    #[serde(default)]
    pub strategy: Option<FillStrategy>,
    /// Per-column constants, as pandas `fillna({"col": value})`.
    #[serde(default)]
    pub values: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DateTarget {
    Date,
    Timestamp,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The value becomes null, is counted in the task summary and is recorded in the quarantine table.
    #[default]
    Null,
    /// The row leaves the output for the quarantine table (`<table>__rejected`), with the value and the reason.
    Quarantine,
    /// The task fails, naming the value and column.
    Fail,
}

/// Parses text into dates or timestamps, trying each format in turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseDates {
    /// Text columns to parse; each is replaced by its parsed value.
    pub columns: Vec<String>,
    /// strftime formats tried in order (`%Y-%m-%d`, `%Y/%m/%d`, `%d.%m.%Y %H:%M`...). Default: ISO dates and
    /// date-times with `-` or `/`.
    #[serde(default)]
    pub formats: Option<Vec<String>>,
    /// `date` or `timestamp`; default: `timestamp` when a format has a time, else `date`.
    #[serde(default)]
    pub to: Option<DateTarget>,
    /// What happens to a value no format matches.
    #[serde(default)]
    pub on_error: OnError,
}

pub const DEFAULT_DATE_FORMATS: &[&str] =
    &["%Y-%m-%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S"];

/// Keeps the rows for which a SQL condition is true. Shorthand: `filter: "amount > 0"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// A SQL boolean expression over the columns.
    pub condition: String,
}

/// Calls a Python function on each batch and takes what it returns (pyarrow, Polars or pandas data) as the next
/// step's input. Shorthand: `python: "cleaning:normalise"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonStep {
    /// `module:function`, imported with the project folder first on the module path.
    pub function: String,
    /// What the function is given: `arrow` (a pyarrow.RecordBatch, or a Table with `mode: table`; the default),
    /// `polars` or `pandas` (a DataFrame).
    #[serde(default)]
    pub input: PythonInput,
    /// `batch` (default): the function is called on each batch as it streams by. `table`: once, on the whole
    /// input (which the worker then holds in memory), for functions that need every row (a sort, a group-by).
    #[serde(default)]
    pub mode: PythonMode,
}

/// How often a Python step's function is called.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PythonMode {
    #[default]
    Batch,
    Table,
}

/// The form a Python step's function receives each batch in.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PythonInput {
    #[default]
    Arrow,
    Polars,
    Pandas,
}

impl PythonInput {
    pub fn as_str(self) -> &'static str {
        match self {
            PythonInput::Arrow => "arrow",
            PythonInput::Polars => "polars",
            PythonInput::Pandas => "pandas",
        }
    }
}

/// Changes column types.
#[derive(Debug, Clone)]
pub struct Cast {
    /// (column, SQL type) pairs: `int`, `bigint`, `double`, `decimal(12,2)`, `date`, `timestamp`, `varchar`, `boolean`.
    pub columns: Vec<(String, String)>,
    /// What happens to a value that does not convert.
    pub on_error: OnError,
}

pub(crate) fn parse_step(node: &Node) -> Result<Step, Vec<Diagnostic>> {
    let Some([(key, body)]) = node.as_map() else {
        return Err(vec![Diagnostic::at(node, "a step is a single `kind: settings` entry, such as `- trim: [city]`")
            .with_hint(Some(format!("step kinds: {}", STEP_KINDS.join(", "))))]);
    };
    let kind_name = key.as_str().unwrap_or("");
    let line = key.line;
    let columns = |body: &Node| from_node::<Columns>(&shorthand(body, "columns", true), &[]);
    let kind = match kind_name {
        "dedupe" => {
            if matches!(body.value, Value::Null) {
                StepKind::Dedupe(Dedupe::default())
            } else {
                StepKind::Dedupe(from_node(&shorthand(body, "columns", true), &[])?)
            }
        }
        "fill_null" => StepKind::FillNull(from_node(body, &[])?),
        "trim" => StepKind::Trim(columns(body)?),
        "lowercase" => StepKind::Lowercase(columns(body)?),
        "uppercase" => StepKind::Uppercase(columns(body)?),
        "select" => StepKind::Select(columns(body)?),
        "drop" => StepKind::Drop(columns(body)?),
        "parse_dates" => StepKind::ParseDates(from_node(&shorthand(body, "columns", true), &[])?),
        "filter" => StepKind::Filter(from_node(&shorthand(body, "condition", false), &[])?),
        "rename" => StepKind::Rename(string_pairs(body, "rename")?),
        "derive" => StepKind::Derive(string_pairs(body, "derive")?),
        "python" => {
            let step: PythonStep = from_node(&shorthand(body, "function", false), &[])?;
            if !step.function.split_once(':').is_some_and(|(m, f)| !m.is_empty() && !f.is_empty()) {
                let at = body.get("function").unwrap_or(body);
                return Err(vec![Diagnostic::at(
                    at,
                    format!("python function `{}` is not `module:function` (e.g. `cleaning:normalise`)", step.function),
                )]);
            }
            StepKind::Python(step)
        }
        "cast" => {
            let on_error = match body.get("on_error") {
                Some(n) => from_node::<OnError>(n, &[])?,
                None => OnError::default(),
            };
            let cols_node = body.get("columns").cloned().unwrap_or_else(|| body.clone());
            let columns = string_pairs(&cols_node, "cast")?
                .into_iter()
                .filter(|(k, _)| body.get("columns").is_some() || k != "on_error")
                .collect();
            StepKind::Cast(Cast { columns, on_error })
        }
        other => {
            return Err(vec![
                Diagnostic::at(key, format!("unknown step `{other}`")).with_hint(Some(suggest(other, STEP_KINDS)))
            ])
        }
    };
    let step = Step { kind, line };
    check_step(&step, node).map(|_| step)
}

/// Turns `trim: [a, b]` into `trim: {columns: [a, b]}` (and `filter: "x > 1"` into `filter: {condition: ...}`).
pub(crate) fn shorthand(body: &Node, field: &str, list: bool) -> Node {
    match &body.value {
        Value::Map(_) => body.clone(),
        Value::Scalar { .. } if list => {
            body.synthetic_map(vec![(field, Node { value: Value::Seq(vec![body.clone()]), ..body.clone() })])
        }
        _ => body.synthetic_map(vec![(field, body.clone())]),
    }
}

/// An ordered `{name: text}` mapping (rename, derive, cast).
fn string_pairs(body: &Node, what: &str) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
    let Some(entries) = body.as_map() else {
        return Err(vec![Diagnostic::at(body, format!("`{what}` takes a mapping such as `{{old: new}}`"))]);
    };
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for (k, v) in entries {
        match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => out.push((k.to_string(), v.to_string())),
            _ => diags.push(Diagnostic::at(v, format!("`{what}` entries must be `name: text`"))),
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}

/// Checks that need more than one field at a time.
fn check_step(step: &Step, node: &Node) -> Result<(), Vec<Diagnostic>> {
    let problem = match &step.kind {
        StepKind::Dedupe(d) if d.keep == Keep::Last && d.order_by.is_none() => Some(
            "`keep: last` needs `order_by`: rows read in parallel have no reliable `last` without an ordering column",
        ),
        StepKind::Dedupe(Dedupe { columns: Some(c), .. }) if c.is_empty() => {
            Some("`dedupe` with an empty column list: omit `columns` to compare whole rows")
        }
        StepKind::FillNull(f) => {
            let modes = [f.value.is_some(), f.strategy.is_some(), f.values.is_some()].iter().filter(|b| **b).count();
            if modes != 1 {
                Some("`fill_null` takes exactly one of `value`, `strategy` or `values`")
            } else if f.values.is_none() && f.columns.as_ref().is_none_or(|c| c.is_empty()) {
                Some("`fill_null` with `value` or `strategy` needs `columns`")
            } else if f.values.is_some() && f.columns.is_some() {
                Some("`fill_null` with `values` names its columns there; drop `columns`")
            } else {
                None
            }
        }
        StepKind::Cast(c) if c.columns.is_empty() => Some("`cast` needs at least one `column: type`"),
        StepKind::ParseDates(p) if p.columns.is_empty() => Some("`parse_dates` needs at least one column"),
        StepKind::ParseDates(ParseDates { formats: Some(f), .. }) if f.is_empty() => {
            Some("`formats` is empty: omit it for the defaults or list at least one")
        }
        _ => None,
    };
    match problem {
        Some(p) => Err(vec![Diagnostic::at(node, p)]),
        None => Ok(()),
    }
}

/// Cast targets a remote engine converts text to exactly as weir does (digits, with a sign and a decimal point for
/// floating point); other targets differ in rounding or accepted spellings between engines.
pub const REMOTE_CAST_TYPES: &[&str] = &[
    "int",
    "integer",
    "int32",
    "int4",
    "bigint",
    "int64",
    "long",
    "int8",
    "smallint",
    "int16",
    "int2",
    "double",
    "float",
    "float64",
    "float8",
    "double precision",
    "real",
    "float32",
    "float4",
];

/// strftime specifiers a remote engine parses exactly as weir's fast matcher does.
const REMOTE_DATE_SPECIFIERS: &[char] = &['Y', 'm', 'd', 'H', 'M', 'S', 'f'];

impl Step {
    /// Why this step cannot be compiled to a remote engine's SQL with weir's exact semantics (`None`: it can).
    pub fn remote_refusal(&self) -> Option<String> {
        match &self.kind {
            StepKind::Python(_) => Some("a `python` step runs in weir's Python worker".into()),
            StepKind::FillNull(f) if f.strategy.is_some() => {
                Some("`fill_null` with a strategy is computed by weir (mean, median, mode, forward fill)".into())
            }
            StepKind::Cast(c) => c
                .columns
                .iter()
                .find(|(_, t)| !REMOTE_CAST_TYPES.contains(&t.trim().to_ascii_lowercase().as_str()))
                .map(|(col, t)| {
                    format!("`cast` of `{col}` to `{t}`: only integer and floating point casts run remotely")
                }),
            StepKind::ParseDates(p) => {
                let formats: Vec<&str> = match &p.formats {
                    Some(f) => f.iter().map(String::as_str).collect(),
                    None => DEFAULT_DATE_FORMATS.to_vec(),
                };
                formats.into_iter().find(|f| !remote_date_format(f)).map(|f| {
                    format!("`parse_dates` format `{f}`: only %Y %m %d %H %M %S %f and ASCII literals run remotely")
                })
            }
            _ => None,
        }
    }
}

fn remote_date_format(format: &str) -> bool {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('.') if chars.next() == Some('f') => {}
                Some(s) if REMOTE_DATE_SPECIFIERS.contains(&s) => {}
                _ => return false,
            },
            c if !c.is_ascii() => return false,
            _ => {}
        }
    }
    true
}
