//! A lake source and its cleaning steps compiled to Spark SQL, so that a Spark Connect engine computes a cleaning
//! task's rows with weir's semantics, or refuses. Each step is a stage (a CTE) over the one before; nothing is
//! approximated:
//!
//! - Rows a step removes (`filter`, `dedupe`, a quarantined value) are marked, not dropped (`_weir_out` holds the
//!   step's number), so one aggregate over the last stage gives every step's row counts, and the rows query keeps
//!   the unmarked rows.
//! - A value a step rejects is flagged per step and column (`_weir_bad_<step>_<n>`) with its original value kept, so
//!   the quarantine gets each rejected row as it was at that step, as a local run records it.
//! - Where the engine's conversion could differ from weir's, the row is marked unsure (`_weir_unsure`, with the value)
//!   and the task fails naming it rather than keep a different row. Text becomes a number only when it is digits
//!   (with a sign and one decimal point), where every engine agrees; `parse_dates` is a regular expression per format
//!   with the date validated in integer arithmetic (no time zone, no engine date parser); `dedupe` without
//!   `order_by` keeps "the first row in source order", which a distributed engine does not have, so the engine
//!   checks that a key's rows are identical (then any of them is the first) and marks the key unsure otherwise.
//!
//! Every query reads the source table at one Delta version, so the counts, the quarantine and the rows agree.

use arrow::datatypes::{DataType, Schema};
use weir_config::steps::{Dedupe, Keep, OnError, Step, StepKind, DEFAULT_DATE_FORMATS};
use weir_core::{Error, Result};

use crate::ops::{is_text, no_column};
use crate::quality::RejectAction;

const OUT: &str = "_weir_out";
const UNSURE: &str = "_weir_unsure";
const ALIVE: &str = "`_weir_out` IS NULL";

/// The queries that compute one task's rows on the engine, and what to make of their answers.
#[derive(Debug)]
pub struct RemotePlan {
    /// The kept rows, with the task's output columns.
    pub rows_sql: String,
    /// One row: `rows`, then per step the rows it removed (`out_<n>`), per converting step and column the values it
    /// rejected (`failed_<n>_<k>`), then `unsure` (rows whose result may differ from a local run's) and
    /// `unsure_example` (what one of them holds).
    pub counts_sql: String,
    pub steps: Vec<RemoteStep>,
    /// The rows each rejecting step and column set aside or nulled, as they were at the step.
    pub rejects: Vec<RejectQuery>,
}

/// What the report needs to say about one step.
#[derive(Debug)]
pub struct RemoteStep {
    pub name: &'static str,
    pub line: usize,
    pub kind: StepNotes,
}

#[derive(Debug)]
pub enum StepNotes {
    Plain,
    /// `dedupe`: notes the distinct keys (the rows it kept).
    Dedupe,
    /// `cast` or `parse_dates`: notes, per column, the values that did not convert.
    Converts {
        what: &'static str,
        on_error: OnError,
    },
}

#[derive(Debug)]
pub struct RejectQuery {
    /// The step's position (0-based) in the task.
    pub step: usize,
    /// The counts query's column holding how many values it rejected (`failed_<step>_<n>`).
    pub counter: String,
    pub sql: String,
    pub rule: String,
    pub reason: String,
    pub column: String,
    pub action: RejectAction,
}

/// A column as a stage leaves it; `None`: a type weir does not know (a `derive` expression only the engine plans).
#[derive(Debug, Clone)]
struct Col {
    name: String,
    ty: Option<DataType>,
}

/// Compiles `steps` over `source` (``delta.`url` VERSION AS OF n``, with the source's `WHERE`), whose columns are
/// `schema`. `site` names the task in errors.
pub fn compile(source: &str, schema: &Schema, steps: &[Step], site: &str) -> Result<RemotePlan> {
    let mut cols: Vec<Col> =
        schema.fields().iter().map(|f| Col { name: f.name().clone(), ty: Some(f.data_type().clone()) }).collect();
    let mut b = Stages {
        ctes: vec![format!(
            "s0 AS (SELECT {}, CAST(NULL AS INT) AS {OUT}, CAST(NULL AS STRING) AS {UNSURE} FROM {source})",
            names(&cols)
        )],
        stage: 0,
        flags: Vec::new(),
        checks: Vec::new(),
    };
    let mut out_counters = Vec::new();
    let mut plan_steps = Vec::new();
    let mut rejects = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let fail = |m: String| Error::sql(format!("{site}: step `{}` (line {})", step.name(), step.line), m);
        if let Some(why) = step.remote_refusal() {
            return Err(fail(why));
        }
        let mut kind = StepNotes::Plain;
        match &step.kind {
            StepKind::Drop(c) => {
                check_columns(&cols, &c.columns).map_err(&fail)?;
                cols.retain(|col| !c.columns.contains(&col.name));
                b.project(&cols, &[]);
            }
            StepKind::Select(c) => {
                check_columns(&cols, &c.columns).map_err(&fail)?;
                cols = c.columns.iter().filter_map(|name| cols.iter().find(|col| &col.name == name).cloned()).collect();
                b.project(&cols, &[]);
            }
            StepKind::Rename(pairs) => {
                let olds: Vec<String> = pairs.iter().map(|(o, _)| o.clone()).collect();
                check_columns(&cols, &olds).map_err(&fail)?;
                let mut exprs: Vec<String> = cols
                    .iter()
                    .map(|c| match pairs.iter().find(|(o, _)| o == &c.name) {
                        Some((_, new)) => format!("{} AS {}", q(&c.name), q(new)),
                        None => q(&c.name),
                    })
                    .collect();
                exprs.push(b.meta());
                for c in &mut cols {
                    if let Some((_, new)) = pairs.iter().find(|(o, _)| o == &c.name) {
                        c.name = new.clone();
                    }
                }
                b.select(&exprs);
            }
            StepKind::Trim(c) | StepKind::Lowercase(c) | StepKind::Uppercase(c) => {
                check_columns(&cols, &c.columns).map_err(&fail)?;
                for name in &c.columns {
                    let ty = cols.iter().find(|col| &col.name == name).and_then(|c| c.ty.clone());
                    if !ty.as_ref().is_some_and(is_text) {
                        return Err(fail(format!("`{}` works on text columns; `{name}` is not text", step.name())));
                    }
                }
                let f = match &step.kind {
                    StepKind::Trim(_) => "trim",
                    StepKind::Lowercase(_) => "lower",
                    _ => "upper",
                };
                let replaced: Vec<(String, String)> =
                    c.columns.iter().map(|name| (name.clone(), format!("{f}({})", q(name)))).collect();
                b.project(&cols, &replaced);
            }
            StepKind::Filter(f) => {
                // A removed row's condition is never evaluated (CASE evaluates lazily), as it never is locally.
                b.select(&[
                    names(&cols),
                    format!(
                        "CASE WHEN {OUT} IS NOT NULL THEN {OUT} WHEN coalesce(({}), false) THEN NULL ELSE {n} END AS {OUT}",
                        f.condition
                    ),
                    UNSURE.into(),
                    b.flag_list(),
                ]);
            }
            StepKind::Derive(pairs) => {
                for (name, sql) in pairs {
                    let expr = format!("CASE WHEN {ALIVE} THEN ({sql}) END");
                    match cols.iter_mut().find(|c| &c.name == name) {
                        Some(c) => {
                            c.ty = None;
                            b.project(&cols, &[(name.clone(), expr)]);
                        }
                        None => {
                            let meta = b.meta();
                            b.select(&[names(&cols), format!("{expr} AS {}", q(name)), meta]);
                            cols.push(Col { name: name.clone(), ty: None });
                        }
                    }
                }
            }
            StepKind::FillNull(f) => {
                let values: Vec<(String, serde_json::Value)> = match (&f.values, &f.value) {
                    (Some(v), _) => v.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    (None, Some(v)) => f.columns.iter().flatten().map(|c| (c.clone(), v.clone())).collect(),
                    (None, None) => return Err(fail("`fill_null` needs `value` or `values` here".into())),
                };
                let filled: Vec<String> = values.iter().map(|(k, _)| k.clone()).collect();
                check_columns(&cols, &filled).map_err(&fail)?;
                let mut replaced = Vec::new();
                for (name, value) in &values {
                    let ty = cols.iter().find(|c| &c.name == name).and_then(|c| c.ty.clone());
                    replaced.push((name.clone(), fill_expr(name, ty.as_ref(), value).map_err(&fail)?));
                }
                b.project(&cols, &replaced);
            }
            StepKind::Cast(c) => {
                let cast: Vec<String> = c.columns.iter().map(|(k, _)| k.clone()).collect();
                check_columns(&cols, &cast).map_err(&fail)?;
                let mut conversions = Vec::new();
                for (name, ty) in &c.columns {
                    let target = weir_connect::types::parse_type(ty).map_err(|m| fail(format!("`{name}`: {m}")))?;
                    let from = cols.iter().find(|col| &col.name == name).and_then(|c| c.ty.clone());
                    conversions.push(cast_conversion(name, from.as_ref(), &target).map_err(&fail)?);
                    if let Some(col) = cols.iter_mut().find(|col| &col.name == name) {
                        col.ty = Some(target);
                    }
                }
                let rule = format!("step cast (line {})", step.line);
                let reasons: Vec<String> = conversions.iter().map(|x| format!("not a valid {}", x.target)).collect();
                rejects.extend(b.convert(n, &cols, conversions, c.on_error, i, &rule, reasons));
                kind = StepNotes::Converts { what: "could not be converted", on_error: c.on_error };
            }
            StepKind::ParseDates(p) => {
                check_columns(&cols, &p.columns).map_err(&fail)?;
                let formats: Vec<String> = match &p.formats {
                    Some(f) => f.clone(),
                    None => DEFAULT_DATE_FORMATS.iter().map(|f| f.to_string()).collect(),
                };
                let to_date = crate::ops::dates::converts_to_date(p.to, formats.iter().map(String::as_str));
                let mut conversions = Vec::new();
                for name in &p.columns {
                    let ty = cols.iter().find(|col| &col.name == name).and_then(|c| c.ty.clone());
                    if !ty.as_ref().is_some_and(is_text) {
                        return Err(fail(format!("`{name}` is not text: only text is parsed on a remote engine")));
                    }
                    conversions.push(date_conversion(name, &formats, to_date).map_err(&fail)?);
                }
                let parsed = if to_date {
                    DataType::Date32
                } else {
                    DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None)
                };
                for col in cols.iter_mut().filter(|c| p.columns.contains(&c.name)) {
                    col.ty = Some(parsed.clone());
                }
                let rule = format!("step parse_dates (line {})", step.line);
                let reasons = vec![format!("matches none of the formats {}", formats.join(", ")); conversions.len()];
                rejects.extend(b.convert(n, &cols, conversions, p.on_error, i, &rule, reasons));
                kind = StepNotes::Converts { what: "matched none of the formats", on_error: p.on_error };
            }
            StepKind::Dedupe(d) => {
                b.dedupe(n, &cols, d).map_err(&fail)?;
                // As locally: the streaming dedupe (no `order_by`) notes its distinct keys.
                if d.order_by.is_none() {
                    kind = StepNotes::Dedupe;
                }
            }
            StepKind::Python(_) => return Err(fail("a `python` step runs in weir's Python worker".into())),
        }
        out_counters.push(format!("count_if({OUT} = {n}) AS out_{n}"));
        plan_steps.push(RemoteStep { name: step.name(), line: step.line, kind });
    }
    let rows_sql = b.query(&names(&cols), &format!("WHERE {ALIVE}"));
    let mut counters = vec!["count(*) AS rows".to_string()];
    counters.extend(out_counters);
    counters.extend(b.flags.iter().map(|f| format!("count_if({}) AS {}", q(f), f.trim_start_matches("_weir_"))));
    let checked: String = b.checks.iter().map(|d| format!(" + (SELECT count(*) FROM {d})")).collect();
    counters.push(format!("count_if({UNSURE} IS NOT NULL){checked} AS unsure"));
    let examples: String = b.checks.iter().map(|d| format!(", (SELECT min(message) FROM {d})")).collect();
    counters.push(format!("coalesce(min({UNSURE}){examples}) AS unsure_example"));
    let counts_sql = b.query(&counters.join(", "), "");
    Ok(RemotePlan { rows_sql, counts_sql, steps: plan_steps, rejects })
}

fn names(cols: &[Col]) -> String {
    cols.iter().map(|c| q(&c.name)).collect::<Vec<_>>().join(", ")
}

fn orig_name(step: usize, column: &str) -> String {
    format!("_weir_orig_{step}_{column}")
}

fn action(on_error: OnError) -> RejectAction {
    if on_error == OnError::Quarantine {
        RejectAction::RowQuarantined
    } else {
        RejectAction::ValueNulled
    }
}

/// One column's conversion: the converted value, whether a set value failed, and when the result is unsure.
struct Conversion {
    column: String,
    /// The target type, for the reject's reason.
    target: String,
    /// Intermediate columns computed first (name, expression), in levels: a level's expressions use the columns
    /// of the levels before it only, so each level is one stage.
    helpers: Vec<Vec<(String, String)>>,
    value: String,
    /// True for a set value that did not convert (over the helpers' stage).
    failed: String,
    /// Text naming an unsure value, or NULL.
    unsure: String,
}

/// Text to an integer or floating point type, only where every engine converts alike: digits with an optional
/// minus sign (and one decimal point for floating point), short enough not to overflow. Text without a single digit
/// (and no `inf`/`nan` spelling) fails everywhere; anything else (` 12`, `+3`, `1e5`) is unsure.
fn cast_conversion(name: &str, from: Option<&DataType>, to: &DataType) -> std::result::Result<Conversion, String> {
    let col = q(name);
    let (spark, exact) = match to {
        DataType::Int8 => ("TINYINT", "^-?[0-9]{1,2}$"),
        DataType::Int16 => ("SMALLINT", "^-?[0-9]{1,4}$"),
        DataType::Int32 => ("INT", "^-?[0-9]{1,9}$"),
        DataType::Int64 => ("BIGINT", "^-?[0-9]{1,18}$"),
        DataType::Float32 => ("FLOAT", "^-?[0-9]{1,30}([.][0-9]{1,30})?$"),
        DataType::Float64 => ("DOUBLE", "^-?[0-9]{1,300}([.][0-9]{1,300})?$"),
        other => return Err(format!("`{name}`: a cast to {other} does not run on a remote engine")),
    };
    let target = to.to_string();
    match from {
        Some(t) if is_text(t) => {}
        Some(t) if t == to => {
            return Ok(Conversion {
                column: name.into(),
                target,
                helpers: vec![],
                value: col,
                failed: "false".into(),
                unsure: "CAST(NULL AS STRING)".into(),
            })
        }
        Some(t) => return Err(format!("`{name}` is {t}: only text is cast on a remote engine")),
        None => return Err(format!("`{name}` is computed by the engine: its type is not known to weir")),
    }
    let float = matches!(to, DataType::Float32 | DataType::Float64);
    let never = if float {
        format!("NOT {col} RLIKE '[0-9]' AND NOT lower({col}) RLIKE 'inf|nan'")
    } else {
        format!("NOT {col} RLIKE '[0-9]'")
    };
    Ok(Conversion {
        column: name.into(),
        target,
        helpers: vec![],
        value: format!("CASE WHEN {col} RLIKE '{exact}' THEN try_cast({col} AS {spark}) END"),
        failed: format!(
            "{col} IS NOT NULL AND ((({col} RLIKE '{exact}') AND try_cast({col} AS {spark}) IS NULL) OR ({never}))"
        ),
        unsure: format!(
            "CASE WHEN {col} IS NOT NULL AND NOT ({col} RLIKE '{exact}') AND NOT ({never}) \
             THEN concat('cast: column `{}` value \\'', {col}, '\\'') END",
            sql_text(name)
        ),
    })
}

/// The characters Rust's `str::trim` removes (Unicode White_Space), which weir strips before parsing a date.
fn whitespace() -> String {
    let controls = [9u32, 10, 11, 12, 13, 133].iter().map(|c| format!("chr({c})")).collect::<Vec<_>>().join(", ");
    let others: String = [0x20u32, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
        .into_iter()
        .chain(0x2000..=0x200A)
        .filter_map(char::from_u32)
        .collect();
    format!("concat({controls}, '{others}')")
}

/// Text to a date or timestamp as weir's matcher parses it: per format a regular expression (`%Y` four digits,
/// `%m %d %H` one or two, `%M %S` two, `%f` one to nine, literals as themselves), the parts validated as a calendar
/// date and time, then built with `make_date` / `make_timestamp_ntz` (no time zone involved). A value two formats
/// read as different times is unsure (weir tries the format that matched last first).
fn date_conversion(name: &str, formats: &[String], to_date: bool) -> std::result::Result<Conversion, String> {
    let col = q(name);
    let t = q(&format!("_weir_t_{name}"));
    let trimmed = vec![(format!("_weir_t_{name}"), format!("trim(BOTH {} FROM {col})", whitespace()))];
    // Whether the value matches a format is asked once per format, not once per field.
    let mut matches_level = Vec::new();
    let (mut parts_level, mut values_level) = (Vec::new(), Vec::new());
    let mut values = Vec::new();
    for (f, format) in formats.iter().enumerate() {
        let (regex, parts) = date_regex(format)?;
        let matched = q(&format!("_weir_m_{f}_{name}"));
        matches_level.push((format!("_weir_m_{f}_{name}"), format!("{t} RLIKE '{regex}'")));
        let field = |g: usize| format!("regexp_extract({t}, '{regex}', {})", g + 1);
        let part = |p: char| -> String {
            match parts.iter().position(|&x| x == p) {
                Some(g) => format!("CAST({} AS INT)", field(g)),
                None if p == 'Y' => "1970".into(),
                None if p == 'm' || p == 'd' => "1".into(),
                None => "0".into(),
            }
        };
        let micros = match parts.iter().position(|&x| x == 'f') {
            Some(g) => format!("rpad(substr({}, 1, 6), 6, '0')", field(g)),
            None => "'000000'".into(),
        };
        let (y, mo, d, h, mi, s) = (part('Y'), part('m'), part('d'), part('H'), part('M'), part('S'));
        let h_name = |x: &str| format!("_weir_{x}_{f}_{name}");
        for (x, e) in [("y", &y), ("mo", &mo), ("d", &d), ("h", &h), ("mi", &mi), ("s", &s), ("us", &micros)] {
            parts_level.push((h_name(x), format!("CASE WHEN {matched} THEN {e} END")));
        }
        let [y, mo, d, h, mi, s, us] = ["y", "mo", "d", "h", "mi", "s", "us"].map(|x| q(&h_name(x)));
        let days = format!(
            "CASE WHEN {mo} = 2 THEN CASE WHEN ({y} % 4 = 0 AND {y} % 100 <> 0) OR {y} % 400 = 0 THEN 29 ELSE 28 END \
             WHEN {mo} IN (4, 6, 9, 11) THEN 30 ELSE 31 END"
        );
        let valid = format!(
            "{y} >= 1 AND {mo} BETWEEN 1 AND 12 AND {d} BETWEEN 1 AND {days} AND {h} <= 23 AND {mi} <= 59 AND {s} <= 59"
        );
        let build = if to_date {
            format!("make_date({y}, {mo}, {d})")
        } else {
            format!("make_timestamp_ntz({y}, {mo}, {d}, {h}, {mi}, CAST(concat(CAST({s} AS STRING), '.', {us}) AS DECIMAL(8,6)))")
        };
        values_level
            .push((format!("_weir_v_{f}_{name}"), format!("CASE WHEN {y} IS NOT NULL AND {valid} THEN {build} END")));
        values.push((q(&format!("_weir_v_{f}_{name}")), y));
    }
    let helpers = vec![trimmed, matches_level, parts_level, values_level];
    let value = format!("coalesce({})", values.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>().join(", "));
    let mut doubts: Vec<String> = Vec::new();
    for (a, (va, ya)) in values.iter().enumerate() {
        // Year 0 is a date in weir's calendar and not in Spark's.
        doubts.push(format!("{ya} = 0"));
        for (vb, _) in &values[a + 1..] {
            doubts.push(format!("({va} IS NOT NULL AND {vb} IS NOT NULL AND {va} <> {vb})"));
        }
    }
    Ok(Conversion {
        column: name.into(),
        target: if to_date { "date".into() } else { "timestamp".into() },
        helpers,
        failed: format!(
            "{col} IS NOT NULL AND {t} <> '' AND {value} IS NULL AND NOT coalesce({}, false)",
            doubts.join(" OR ")
        ),
        unsure: format!(
            "CASE WHEN coalesce({}, false) THEN concat('parse_dates: column `{}` value \\'', {col}, '\\'') END",
            doubts.join(" OR "),
            sql_text(name)
        ),
        value,
    })
}

/// A date format as an anchored regular expression (no backslashes: literals are character classes) and the
/// specifier of each capture group.
fn date_regex(format: &str) -> std::result::Result<(String, Vec<char>), String> {
    let mut regex = String::from("^");
    let mut parts = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            let mut s = chars.next().ok_or_else(|| format!("`{format}` ends with %"))?;
            if s == '.' {
                regex.push_str("[.]");
                s = chars.next().filter(|&f| f == 'f').ok_or_else(|| format!("`{format}`: %. must be %.f"))?;
            }
            regex.push_str(match s {
                'Y' => "([0-9]{4})",
                'm' | 'd' | 'H' => "([0-9]{1,2})",
                'M' | 'S' => "([0-9]{2})",
                'f' => "([0-9]{1,9})",
                other => return Err(format!("`{format}`: %{other} does not run on a remote engine")),
            });
            parts.push(s);
        } else if c.is_ascii() && !matches!(c, '\\' | '[' | ']' | '^' | '\'') && !c.is_ascii_control() {
            regex.push('[');
            regex.push(c);
            regex.push(']');
        } else {
            return Err(format!("`{format}`: the character {c:?} does not run on a remote engine"));
        }
    }
    regex.push('$');
    Ok((regex, parts))
}

/// Builds the stages of a task, one CTE each; every stage carries the task's columns, `_weir_out` and
/// `_weir_unsure`.
struct Stages {
    ctes: Vec<String>,
    stage: usize,
    /// Failure flags of the converting steps so far (`_weir_failed_<step>_<n>`), carried to the last stage for the
    /// counts query.
    flags: Vec<String>,
    /// CTEs listing the keys a `dedupe` found ambiguous (one `message` column each).
    checks: Vec<String>,
}

impl Stages {
    /// The bookkeeping columns every stage carries: `_weir_out`, `_weir_unsure` and the failure flags.
    fn meta(&self) -> String {
        self.flags.iter().fold(format!("{OUT}, {UNSURE}"), |all, f| format!("{all}, {}", q(f)))
    }

    /// The failure flags alone (after `_weir_out` and `_weir_unsure` were written out).
    fn flag_list(&self) -> String {
        self.flags.iter().map(|f| q(f)).collect::<Vec<_>>().join(", ")
    }

    /// A stage selecting `exprs` from the previous one.
    fn select(&mut self, exprs: &[String]) {
        let from = self.stage;
        self.stage += 1;
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).filter(|e| !e.is_empty()).collect();
        self.ctes.push(format!("s{} AS (SELECT {} FROM s{from})", self.stage, exprs.join(", ")));
    }

    /// The query over the last stage.
    fn query(&self, select: &str, rest: &str) -> String {
        format!("WITH {}\nSELECT {select} FROM s{} {rest}", self.ctes.join(",\n"), self.stage)
    }

    /// `cols`, with some replaced by expressions, and the bookkeeping columns.
    fn project(&mut self, cols: &[Col], replaced: &[(String, String)]) {
        let mut exprs: Vec<String> = cols
            .iter()
            .map(|c| match replaced.iter().find(|(n, _)| n == &c.name) {
                Some((_, e)) => format!("{e} AS {}", q(&c.name)),
                None => q(&c.name),
            })
            .collect();
        exprs.push(self.meta());
        self.select(&exprs);
    }

    /// A converting step: helper stages, then the converted columns. Its stage also holds, for this step only, each
    /// column's original value and whether it failed, from which each column's reject query reads the rows as they
    /// were before the step. Values that may convert differently elsewhere mark the row unsure.
    #[allow(clippy::too_many_arguments)]
    fn convert(
        &mut self,
        n: usize,
        cols: &[Col],
        conversions: Vec<Conversion>,
        on_error: OnError,
        step: usize,
        rule: &str,
        reasons: Vec<String>,
    ) -> Vec<RejectQuery> {
        // Helper levels of every conversion side by side: level k of each is one stage.
        let depth = conversions.iter().map(|c| c.helpers.len()).max().unwrap_or(0);
        let mut helpers: Vec<String> = Vec::new();
        for level in 0..depth {
            let new: Vec<(String, String)> =
                conversions.iter().filter_map(|c| c.helpers.get(level)).flatten().cloned().collect();
            let mut exprs = vec![names(cols), helpers.join(", ")];
            exprs.extend(new.iter().map(|(h, e)| format!("{e} AS {}", q(h))));
            exprs.push(self.meta());
            self.select(&exprs);
            helpers.extend(new.iter().map(|(h, _)| q(h)));
        }
        let mut exprs: Vec<String> = cols
            .iter()
            .map(|c| match conversions.iter().find(|x| x.column == c.name) {
                Some(x) => format!("CASE WHEN {ALIVE} THEN {} END AS {}", x.value, q(&c.name)),
                None => q(&c.name),
            })
            .collect();
        let failed: Vec<String> = conversions.iter().map(|x| format!("({ALIVE} AND {})", x.failed)).collect();
        for (k, x) in conversions.iter().enumerate() {
            exprs.push(format!("{} AS `_weir_failed_{n}_{k}`", failed[k]));
            exprs.push(format!("{} AS {}", q(&x.column), q(&orig_name(n, &x.column))));
        }
        let unsure: Vec<String> =
            conversions.iter().map(|x| format!("CASE WHEN {ALIVE} THEN {} END", x.unsure)).collect();
        exprs.push(format!("coalesce({UNSURE}, {}) AS {UNSURE}", unsure.join(", ")));
        exprs.push(match on_error {
            OnError::Quarantine => {
                format!("CASE WHEN {OUT} IS NULL AND ({}) THEN {n} ELSE {OUT} END AS {OUT}", failed.join(" OR "))
            }
            _ => OUT.to_string(),
        });
        exprs.push(self.flag_list());
        self.select(&exprs);
        self.flags.extend((0..conversions.len()).map(|k| format!("_weir_failed_{n}_{k}")));
        let before: Vec<String> = cols
            .iter()
            .map(|c| match conversions.iter().find(|x| x.column == c.name) {
                Some(x) => format!("{} AS {}", q(&orig_name(n, &x.column)), q(&c.name)),
                None => q(&c.name),
            })
            .collect();
        let before = before.join(", ");
        conversions
            .iter()
            .zip(reasons)
            .enumerate()
            .map(|(k, (x, reason))| RejectQuery {
                step,
                counter: format!("failed_{n}_{k}"),
                sql: self.query(&before, &format!("WHERE `_weir_failed_{n}_{k}`")),
                rule: rule.to_string(),
                reason,
                column: x.column.clone(),
                action: action(on_error),
            })
            .collect()
    }

    /// `dedupe`: per key (among the rows still kept), the first by `order_by` is kept; rows tied for first must be
    /// identical, or the key is unsure (there is no source order to break the tie as a local run does).
    fn dedupe(&mut self, n: usize, cols: &[Col], d: &Dedupe) -> std::result::Result<(), String> {
        let order = d.order_by.as_deref();
        if let Some(o) = order {
            check_columns(cols, &[o.to_string()])?;
        }
        let keys: Vec<String> = match &d.columns {
            Some(c) => {
                check_columns(cols, c)?;
                c.clone()
            }
            None => cols.iter().map(|c| c.name.clone()).filter(|c| Some(c.as_str()) != order).collect(),
        };
        for k in &keys {
            let ty = cols.iter().find(|c| &c.name == k).and_then(|c| c.ty.clone());
            match ty {
                Some(DataType::Float16 | DataType::Float32 | DataType::Float64) => {
                    return Err(format!("key `{k}` is floating point, whose equal values engines group differently"))
                }
                None => return Err(format!("key `{k}` is computed by the engine: its type is not known to weir")),
                Some(t) if !t.is_primitive() && !is_text(&t) && t != DataType::Boolean => {
                    return Err(format!("key `{k}` is {t}: only scalar keys are compared on a remote engine"))
                }
                _ => {}
            }
        }
        let mut partition = vec![format!("({ALIVE})")];
        partition.extend(keys.iter().map(|k| q(k)));
        let partition = partition.join(", ");
        let dir = if d.keep == Keep::First { "ASC" } else { "DESC" };
        let first = order.map(|o| format!("{} {dir} NULLS LAST", q(o)));
        let others: Vec<&Col> = cols.iter().filter(|c| !keys.contains(&c.name)).collect();
        // Rows tied for first are identical when kept (else unsure), so any tie-break gives the same row; one over
        // every column keeps the query deterministic.
        let mut row_order: Vec<String> = first.iter().cloned().collect();
        row_order.extend(others.iter().map(|c| format!("{} ASC NULLS FIRST", q(&c.name))));
        if row_order.is_empty() {
            row_order.push(q(&keys[0]));
        }
        let rank = match &first {
            Some(f) => format!("rank() OVER (PARTITION BY {partition} ORDER BY {f})"),
            None => "1".into(),
        };
        let key_text = keys
            .iter()
            .map(|k| format!("coalesce(CAST({} AS STRING), 'NULL')", q(k)))
            .collect::<Vec<_>>()
            .join(", ', ', ");
        let message = format!(
            "concat('dedupe: rows with ({}) = (', {key_text}, ') differ and a remote engine has no source order to keep the first')",
            sql_text(&keys.join(", "))
        );
        let compared: Vec<&&Col> = others.iter().filter(|c| Some(c.name.as_str()) != order).collect();
        let unsure = match order {
            None => {
                // Keys whose rows are not all identical, found by one aggregate (a window per column costs ten
                // times more on the engines tried): each column has one value, or is NULL throughout.
                let same: Vec<String> = compared
                    .iter()
                    .map(|c| {
                        let c = q(&c.name);
                        format!("(min({c}) <=> max({c})) AND count({c}) IN (0, count(*))")
                    })
                    .collect();
                let same = if same.is_empty() { "true".to_string() } else { same.join(" AND ") };
                let group = keys.iter().map(|k| q(k)).collect::<Vec<_>>().join(", ");
                self.ctes.push(format!(
                    "d{n} AS (SELECT {message} AS message FROM s{} WHERE {ALIVE} GROUP BY {group} \
                     HAVING count(*) > 1 AND NOT ({same}))",
                    self.stage
                ));
                self.checks.push(format!("d{n}"));
                UNSURE.to_string()
            }
            Some(o) => {
                // Rows tied for first (same key and order value) must be identical: sorted by every other column,
                // a group's rows all are exactly when its first and last are.
                let sorted =
                    compared.iter().map(|c| format!("{} ASC NULLS FIRST", q(&c.name))).collect::<Vec<_>>().join(", ");
                let whole = format!(
                    "OVER (PARTITION BY {partition}, {} ORDER BY {} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)",
                    q(o),
                    if sorted.is_empty() { q(o) } else { sorted }
                );
                let differ: Vec<String> = compared
                    .iter()
                    .map(|c| {
                        let c = q(&c.name);
                        format!("NOT (first_value({c}) {whole} <=> last_value({c}) {whole})")
                    })
                    .collect();
                let differ = if differ.is_empty() { "false".to_string() } else { differ.join(" OR ") };
                format!(
                    "coalesce({UNSURE}, CASE WHEN {ALIVE} AND {rank} = 1 AND ({differ}) THEN {message} END) AS {UNSURE}"
                )
            }
        };
        self.select(&[
            names(cols),
            format!("row_number() OVER (PARTITION BY {partition} ORDER BY {}) AS `_weir_rn`", row_order.join(", ")),
            unsure,
            OUT.into(),
            self.flag_list(),
        ]);
        self.select(&[
            names(cols),
            format!("CASE WHEN {OUT} IS NULL AND `_weir_rn` > 1 THEN {n} ELSE {OUT} END AS {OUT}"),
            UNSURE.into(),
            self.flag_list(),
        ]);
        Ok(())
    }
}

/// `coalesce(col, CAST(value AS type))`, as the local `fill_null` does.
fn fill_expr(name: &str, ty: Option<&DataType>, value: &serde_json::Value) -> std::result::Result<String, String> {
    let lit = crate::ops::fill::fill_literal(name, ty, value, |s| format!("'{}'", sql_text(s)))?;
    let spark = match ty {
        Some(DataType::Float64) => "DOUBLE",
        Some(DataType::Float32) => "FLOAT",
        Some(DataType::Int64) => "BIGINT",
        Some(DataType::Int32) => "INT",
        Some(DataType::Int16) => "SMALLINT",
        Some(DataType::Int8) => "TINYINT",
        Some(t) if is_text(t) => "STRING",
        Some(DataType::Boolean) => "BOOLEAN",
        Some(DataType::Date32) => "DATE",
        Some(DataType::Timestamp(_, None)) => "TIMESTAMP_NTZ",
        Some(t) => return Err(format!("`{name}` is {t}: it is not filled on a remote engine")),
        None => return Err(format!("`{name}` is computed by the engine: its type is not known to weir")),
    };
    Ok(format!("coalesce({}, CAST({lit} AS {spark}))", q(name)))
}

fn check_columns(cols: &[Col], names: &[String]) -> std::result::Result<(), String> {
    match names.iter().find(|name| !cols.iter().any(|c| &c.name == *name)) {
        Some(name) => Err(no_column(name, cols.iter().map(|c| c.name.as_str()).collect())),
        None => Ok(()),
    }
}

/// A Spark SQL identifier.
pub(crate) fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Text inside a Spark SQL string literal (a backslash escapes in Spark's strings).
pub(crate) fn sql_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn steps(yaml: &str) -> Vec<Step> {
        let text = format!("version: 1\ntasks:\n  - name: t\n    source: {{type: lake, table: raw.x}}\n    steps:\n{yaml}    sink: {{type: lake, table: silver.x}}\n");
        let run = weir_core::RunContext::daily(chrono::NaiveDate::from_ymd_opt(2026, 3, 25).unwrap(), "r");
        let p =
            weir_config::Pipeline::parse(std::path::Path::new("p.yaml"), &text, std::path::Path::new("models"), &run)
                .unwrap();
        p.tasks[0].steps.clone()
    }

    #[test]
    fn date_formats_become_anchored_expressions_without_backslashes() {
        let (re, parts) = date_regex("%d.%m.%Y %H:%M").unwrap();
        assert_eq!(re, "^([0-9]{1,2})[.]([0-9]{1,2})[.]([0-9]{4})[ ]([0-9]{1,2})[:]([0-9]{2})$");
        assert_eq!(parts, ['d', 'm', 'Y', 'H', 'M']);
        let (re, parts) = date_regex("%Y-%m-%dT%H:%M:%S%.f").unwrap();
        assert!(re.ends_with("[.]([0-9]{1,9})$"), "{re}");
        assert_eq!(parts.last(), Some(&'f'));
        assert!(date_regex("%Y\\%m").is_err());
    }

    #[test]
    fn floating_point_keys_and_engine_typed_columns_are_refused() {
        let schema = Schema::new(vec![Field::new("k", DataType::Float64, true), Field::new("t", DataType::Utf8, true)]);
        let e = compile("t", &schema, &steps("      - dedupe: [k]\n"), "task").unwrap_err().to_string();
        assert!(e.contains("floating point"), "{e}");
        let e = compile("t", &schema, &steps("      - derive: {u: \"t || 'x'\"}\n      - cast: {u: bigint}\n"), "task")
            .unwrap_err()
            .to_string();
        assert!(e.contains("computed by the engine"), "{e}");
        let e =
            compile("t", &schema, &steps("      - cast: {t: \"decimal(12,2)\"}\n"), "task").unwrap_err().to_string();
        assert!(e.contains("only integer and floating point"), "{e}");
    }

    #[test]
    fn counts_cover_every_step_and_rejects_read_the_step_input() {
        let schema = Schema::new(vec![Field::new("id", DataType::Utf8, true), Field::new("ts", DataType::Utf8, true)]);
        let plan = compile(
            "delta.`s3://b/raw/x` VERSION AS OF 4",
            &schema,
            &steps("      - filter: \"id <> ''\"\n      - parse_dates: [ts]\n      - cast: {id: bigint}\n"),
            "task",
        )
        .unwrap();
        for c in ["out_1", "out_2", "out_3", "unsure", "unsure_example"] {
            assert!(plan.counts_sql.contains(&format!("AS {c}")), "{c}: {}", plan.counts_sql);
        }
        assert!(plan.rows_sql.contains("FROM delta.`s3://b/raw/x` VERSION AS OF 4"));
        assert_eq!(plan.rejects.len(), 2);
        // The parse_dates rejects come from its own stage, with `ts` as it arrived.
        assert!(plan.rejects[0].sql.contains("`_weir_orig_2_ts` AS `ts`"), "{}", plan.rejects[0].sql);
        assert!(!plan.rejects[0].sql.contains("_weir_orig_3"), "{}", plan.rejects[0].sql);
    }
}
