//! Checks evaluated on the stream: each batch of a task's output passes every check on its way to the sink, so the
//! checks cost one vectorised pass and no second read. Row-level checks are DataFusion expressions; `unique` and
//! `relationship` keep their keys exactly (`ops::KeySet`); `row_count` and `freshness` keep a counter and a maximum. Custom SQL checks
//! run at the end on the staged output (the table `this`), before anything is committed.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::physical_expr::PhysicalExpr;
use futures::StreamExt;
use weir_config::{Check, CheckKind, OnFail, Severity};
use weir_core::{Error, Result};

use super::rejects::{records_as_json, RejectAction, Rejects};
use crate::ops::{compile_expr, quote_ident, KeySet};
use crate::Engine;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    Passed,
    /// Failed with severity `warn`.
    Warned,
    /// Failed with severity `error`: the task fails and its sink does not commit.
    Failed,
    /// Failing rows were moved to the quarantine table.
    Quarantined,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passed => "passed",
            CheckStatus::Warned => "warned",
            CheckStatus::Failed => "failed",
            CheckStatus::Quarantined => "quarantined",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: String,
    pub kind: &'static str,
    pub line: usize,
    pub severity: Severity,
    pub status: CheckStatus,
    pub rows_checked: u64,
    pub failing_rows: u64,
    /// What was seen, in words (`newest 2026-03-25 23:10:00, 5h old`).
    pub observed: String,
    /// Up to five failing rows as JSON objects.
    pub sample: Vec<String>,
}

enum Eval {
    Row { pass: Arc<dyn PhysicalExpr>, column: Option<String> },
    Unique { columns: Vec<usize>, seen: KeySet },
    RowCount,
    Freshness { column: usize, newest: Option<i64> },
    Relationship { column: usize, key_type: DataType, keys: KeySet },
    Sql { query: String },
}

struct Compiled {
    check: Check,
    eval: Eval,
    rows: u64,
    failing: u64,
    sample: Vec<String>,
}

/// The checks of one task, compiled against its output schema.
pub struct CheckSet {
    checks: Vec<Compiled>,
    /// The output schema the checks were compiled against.
    schema: SchemaRef,
    rejects: Option<Rejects>,
    /// Row count of the previous run of this task's `row_count` check, for `max_change_pct`.
    previous_rows: Option<u64>,
    /// End of the run's data interval, for `freshness` with `relative_to: data_interval_end`.
    data_interval_end: Option<chrono::NaiveDateTime>,
}

/// The SQL a check's queries are written in: DataFusion's (here and on Ballista) or Spark's (a Spark Connect
/// engine, where `"x"` is text and a backslash escapes in strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    DataFusion,
    Spark,
}

impl Dialect {
    fn ident(self, name: &str) -> String {
        match self {
            Dialect::DataFusion => quote_ident(name),
            Dialect::Spark => crate::remote_steps::q(name),
        }
    }

    fn literal(self, v: &serde_json::Value) -> String {
        match (v, self) {
            (serde_json::Value::String(s), Dialect::DataFusion) => format!("'{}'", s.replace('\'', "''")),
            // A backslash escapes in Spark's strings; a doubled quote is a quote there too, and survives the
            // rewriting of lake table names (`spark_connect::with_lake_tables` parses the query).
            (serde_json::Value::String(s), Dialect::Spark) => {
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
            }
            (serde_json::Value::Null, _) => "NULL".into(),
            (other, _) => other.to_string(),
        }
    }
}

/// Whether comparing a column of type `t` with `v` means the same in every engine: text with text, numbers with
/// numbers, booleans with booleans (Spark casts text to numbers and back where DataFusion would refuse or differ).
fn compares_exactly(t: &DataType, v: &serde_json::Value) -> bool {
    let t = match t {
        DataType::Dictionary(_, values) => values.as_ref(),
        other => other,
    };
    match v {
        serde_json::Value::String(_) => matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
        serde_json::Value::Number(_) => t.is_numeric(),
        serde_json::Value::Bool(_) => t == &DataType::Boolean,
        serde_json::Value::Null => true,
        _ => false,
    }
}

fn column_index(schema: &SchemaRef, name: &str, context: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let hint = weir_config::diag::did_you_mean(name, names.iter().copied())
            .unwrap_or_else(|| format!("columns are: {}", names.join(", ")));
        Error::sql(context, format!("no column `{name}`; {hint}"))
    })
}

/// The SQL condition a row must satisfy for a row-level check, in `dialect`; None for a check that is no row
/// condition, or a `regex` in Spark (Java's regular expressions are not the `regex` crate's).
pub fn row_condition(kind: &CheckKind, schema: &SchemaRef, dialect: Dialect) -> Option<String> {
    let quote_ident = |c: &str| dialect.ident(c);
    let sql_literal = |v: &serde_json::Value| dialect.literal(v);
    let is_text = |c: &str| {
        schema
            .field_with_name(c)
            .map(|f| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
            .unwrap_or(true)
    };
    Some(match kind {
        CheckKind::NotNull { columns } => {
            columns.iter().map(|c| format!("{} IS NOT NULL", quote_ident(c))).collect::<Vec<_>>().join(" AND ")
        }
        CheckKind::AcceptedValues { column, values } => format!(
            "{c} IS NULL OR {c} IN ({})",
            values.iter().map(sql_literal).collect::<Vec<_>>().join(", "),
            c = quote_ident(column)
        ),
        CheckKind::Range { column, min, max } => {
            let c = quote_ident(column);
            let mut parts = Vec::new();
            if let Some(m) = min {
                parts.push(format!("{c} >= {}", sql_literal(m)));
            }
            if let Some(m) = max {
                parts.push(format!("{c} <= {}", sql_literal(m)));
            }
            format!("{c} IS NULL OR ({})", parts.join(" AND "))
        }
        CheckKind::Regex { .. } if dialect == Dialect::Spark => return None,
        CheckKind::Regex { column, pattern } => {
            let c = quote_ident(column);
            let text = if is_text(column) { c.clone() } else { format!("CAST({c} AS VARCHAR)") };
            format!("{c} IS NULL OR {text} ~ '{}'", pattern.replace('\'', "''"))
        }
        CheckKind::Expression { condition } => condition.clone(),
        _ => return None,
    })
}

impl CheckSet {
    /// Compiles `checks` for batches of `schema`: column names, types and SQL are checked here, before any data
    /// moves. `relationship` checks load the keys of the table they point to.
    pub async fn compile(
        engine: &Engine,
        checks: &[Check],
        schema: &SchemaRef,
        rejects: Option<Rejects>,
        previous_rows: Option<u64>,
        context: &str,
    ) -> Result<CheckSet> {
        let mut out = Vec::new();
        for check in checks {
            let ctx = format!("{context}, check `{}` (line {})", check.name, check.line);
            for c in check.kind.columns() {
                column_index(schema, c, &ctx)?;
            }
            let eval = match &check.kind {
                k if k.is_row_level() => {
                    let sql = row_condition(k, schema, Dialect::DataFusion).unwrap_or_default();
                    let pass = compile_expr(engine.context(), schema, &sql).map_err(|m| Error::sql(&ctx, m))?;
                    let t = pass.data_type(schema).map_err(|e| Error::sql(&ctx, e.to_string()))?;
                    if t != DataType::Boolean {
                        return Err(Error::sql(&ctx, format!("`{sql}` is {t}, not a true/false condition")));
                    }
                    let cols = k.columns();
                    Eval::Row { pass, column: (cols.len() == 1).then(|| cols[0].to_string()) }
                }
                CheckKind::Unique { columns } => Eval::Unique {
                    columns: columns.iter().map(|c| column_index(schema, c, &ctx)).collect::<Result<_>>()?,
                    seen: KeySet::default(),
                },
                CheckKind::RowCount { .. } => Eval::RowCount,
                CheckKind::Freshness { column, .. } => {
                    let i = column_index(schema, column, &ctx)?;
                    let t = schema.field(i).data_type();
                    if !matches!(t, DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _)) {
                        return Err(Error::sql(
                            &ctx,
                            format!("`freshness` needs a date or timestamp column; `{column}` is {t}"),
                        ));
                    }
                    Eval::Freshness { column: i, newest: None }
                }
                CheckKind::Relationship { column, to, field } => {
                    let i = column_index(schema, column, &ctx)?;
                    engine.register_lake().await?;
                    let table = weir_lake::TableName::parse(to).map_err(|e| Error::config(Default::default(), e))?;
                    let sql = format!(
                        "SELECT DISTINCT {} FROM {}.{}",
                        quote_ident(field),
                        quote_ident(&table.zone),
                        quote_ident(&table.name)
                    );
                    let mut stream = engine.sql_stream(&sql, &ctx).await?;
                    let key_type = stream.schema.field(0).data_type().clone();
                    if !arrow::compute::can_cast_types(schema.field(i).data_type(), &key_type) {
                        return Err(Error::sql(
                            &ctx,
                            format!(
                                "`{column}` ({}) cannot be compared with {to}.{field} ({key_type})",
                                schema.field(i).data_type()
                            ),
                        ));
                    }
                    let mut keys = KeySet::default();
                    while let Some(b) = stream.batches.next().await {
                        keys.insert(&[b?.column(0).clone()])?;
                    }
                    Eval::Relationship { column: i, key_type, keys }
                }
                CheckKind::Sql { query } => Eval::Sql { query: query.clone() },
                _ => unreachable!("row-level kinds are handled above"),
            };
            out.push(Compiled { check: check.clone(), eval, rows: 0, failing: 0, sample: Vec::new() });
        }
        Ok(CheckSet { checks: out, schema: schema.clone(), rejects, previous_rows, data_interval_end: None })
    }

    /// Sets the end of the run's data interval (for `freshness` checks relative to it).
    pub fn with_data_interval_end(mut self, end: chrono::NaiveDateTime) -> Self {
        self.data_interval_end = Some(end);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Whether a custom SQL check needs the staged output registered as `this`.
    pub fn needs_sql(&self) -> bool {
        self.checks.iter().any(|c| matches!(c.eval, Eval::Sql { .. }))
    }

    /// Whether every check can be judged by SQL in `dialect` over the staged output
    /// ([`CheckSet::measure_with_sql`]) instead of on the rows as they pass, with the same outcome: not when a check
    /// quarantines rows (they must leave the output) or compares with another table's keys (`relationship`, whose
    /// exact matching of converted values is done here). In Spark also not a `regex`, values compared with a column
    /// of another kind (`'1'` with a number), or a `unique` key of floating point numbers (Spark groups -0.0 with
    /// 0.0 and NaNs together).
    pub fn can_run_as_sql(&self, dialect: Dialect) -> bool {
        let column_type = |c: &str| self.schema.field_with_name(c).map(|f| f.data_type().clone()).ok();
        self.checks.iter().all(|c| {
            let anywhere = c.check.on_fail != OnFail::Quarantine && !matches!(c.eval, Eval::Relationship { .. });
            let in_spark = match &c.check.kind {
                _ if dialect == Dialect::DataFusion => true,
                kind if kind.is_row_level() && row_condition(kind, &self.schema, dialect).is_none() => false,
                CheckKind::AcceptedValues { column, values } => {
                    column_type(column).is_some_and(|t| values.iter().all(|v| compares_exactly(&t, v)))
                }
                CheckKind::Range { column, min, max } => {
                    column_type(column).is_some_and(|t| min.iter().chain(max.iter()).all(|v| compares_exactly(&t, v)))
                }
                CheckKind::Unique { columns } => {
                    columns.iter().all(|k| column_type(k).is_some_and(|t| !t.is_floating()))
                }
                _ => true,
            };
            anywhere && in_spark
        })
    }

    /// Measures every check with SQL over the staged output, the table `this` of `sql` holding `rows` rows, as
    /// [`CheckSet::apply`] would have on the rows passing: failing rows and up to five of them, the newest value.
    /// [`CheckSet::finish`] then judges them. Only when [`CheckSet::can_run_as_sql`].
    pub async fn measure_with_sql(&mut self, sql: &CheckSql<'_>, rows: u64) -> Result<()> {
        let dialect = sql.dialect();
        let quote_ident = |c: &str| dialect.ident(c);
        for c in &mut self.checks {
            c.rows = rows;
            let what = format!("check `{}` (line {})", c.check.name, c.check.line);
            let failing = match (&mut c.eval, &c.check.kind) {
                (Eval::Row { .. }, kind) => {
                    // A null condition passes (as in dbt): only a definite false fails.
                    let condition = row_condition(kind, &self.schema, dialect)
                        .ok_or_else(|| Error::engine(&what, "this check cannot be written in this engine's SQL"))?;
                    format!("SELECT * FROM this WHERE ({condition}) IS FALSE")
                }
                (Eval::Unique { .. }, CheckKind::Unique { columns }) => {
                    // Every row of a key beyond its first is a duplicate; rows with a null key are not compared.
                    let keys: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
                    let valid: Vec<String> = keys.iter().map(|k| format!("{k} IS NOT NULL")).collect();
                    let counted = format!(
                        "SELECT COALESCE(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM this WHERE {} GROUP BY {}) AS k",
                        valid.join(" AND "),
                        keys.join(", ")
                    );
                    c.failing = single_u64(&sql.collect(&counted, &what).await?);
                    let on: Vec<String> = keys.iter().map(|k| format!("t.{k} = d.{k}")).collect();
                    let sample = format!(
                        "SELECT t.* FROM this AS t JOIN (SELECT {keys} FROM this WHERE {valid} GROUP BY {keys} HAVING count(*) > 1) AS d ON {on} LIMIT 5",
                        keys = keys.join(", "),
                        valid = valid.join(" AND "),
                        on = on.join(" AND ")
                    );
                    if c.failing > 0 {
                        for b in sql.collect(&sample, &what).await? {
                            c.sample.extend(records_as_json(&b)?);
                        }
                    }
                    continue;
                }
                (Eval::Freshness { newest, .. }, CheckKind::Freshness { column, .. }) => {
                    let query = format!("SELECT max({}) FROM this", quote_ident(column));
                    for b in sql.collect(&query, &what).await? {
                        let ts = arrow::compute::cast(b.column(0), &DataType::Timestamp(TimeUnit::Microsecond, None))
                            .map_err(|e| Error::engine("freshness", e))?;
                        if let Some(m) = arrow::compute::max(ts.as_primitive::<TimestampMicrosecondType>()) {
                            *newest = Some(newest.map_or(m, |x| x.max(m)));
                        }
                    }
                    continue;
                }
                (Eval::RowCount | Eval::Sql { .. }, _) => continue,
                _ => return Err(Error::engine(what, "this check is judged on the rows as they pass, not by SQL")),
            };
            (c.failing, c.sample) = failures_of(sql, &failing, &what).await?;
        }
        Ok(())
    }

    /// Runs every streaming check on `batch`; returns it without the rows quarantined by a check.
    pub fn apply(&mut self, mut batch: RecordBatch) -> Result<RecordBatch> {
        for c in &mut self.checks {
            let n = batch.num_rows();
            c.rows += n as u64;
            let failing: Option<BooleanArray> = match &mut c.eval {
                Eval::Row { pass, .. } => {
                    let v = pass
                        .evaluate(&batch)
                        .and_then(|v| v.into_array(n))
                        .map_err(|e| Error::sql(format!("check `{}`", c.check.name), e.strip_backtrace()))?;
                    let not = arrow::compute::not(v.as_boolean()).map_err(|e| Error::engine("check", e))?;
                    // A null condition passes (as in dbt): only a definite false fails.
                    Some(if not.null_count() > 0 { prep_null_mask_filter(&not) } else { not })
                }
                Eval::Unique { columns, seen } => {
                    let keys: Vec<ArrayRef> = columns.iter().map(|&i| batch.column(i).clone()).collect();
                    let fresh = seen.insert(&keys)?;
                    // As in dbt, rows with a null key are not compared.
                    let dup: BooleanArray =
                        (0..n).map(|r| Some(!fresh[r] && keys.iter().all(|k| k.is_valid(r)))).collect();
                    Some(dup)
                }
                Eval::RowCount => None,
                Eval::Freshness { column, newest } => {
                    let ts =
                        arrow::compute::cast(batch.column(*column), &DataType::Timestamp(TimeUnit::Microsecond, None))
                            .map_err(|e| Error::engine("freshness", e))?;
                    if let Some(m) = arrow::compute::max(ts.as_primitive::<TimestampMicrosecondType>()) {
                        *newest = Some(newest.map_or(m, |x| x.max(m)));
                    }
                    None
                }
                Eval::Relationship { column, key_type, keys } => {
                    let original = batch.column(*column);
                    let col = arrow::compute::cast(original, key_type).map_err(|e| Error::engine("relationship", e))?;
                    let found = keys.contains(std::slice::from_ref(&col))?;
                    let fits = crate::ops::converted_exactly(original, &col)?;
                    // A value that does not convert to the key's type exactly (1.5 for an integer key, text that is
                    // no number) matches no key.
                    Some((0..n).map(|r| Some(original.is_valid(r) && !(fits[r] && found[r]))).collect())
                }
                Eval::Sql { .. } => None,
            };
            let Some(failing) = failing else { continue };
            let count = failing.true_count();
            if count == 0 {
                continue;
            }
            c.failing += count as u64;
            if c.sample.len() < 5 {
                let rows = filter_record_batch(&batch, &failing).map_err(|e| Error::engine("check", e))?;
                let take = rows.slice(0, (5 - c.sample.len()).min(rows.num_rows()));
                c.sample.extend(records_as_json(&take)?);
            }
            if c.check.on_fail == OnFail::Quarantine {
                if let Some(r) = &self.rejects {
                    let column = match &c.eval {
                        Eval::Row { column, .. } => column.clone(),
                        _ => None,
                    };
                    r.record(
                        &batch,
                        &failing,
                        &format!("check {}", c.check.name),
                        &describe_failure(&c.check.kind),
                        column.as_deref(),
                        RejectAction::RowQuarantined,
                    )?;
                }
                let keep = arrow::compute::not(&failing).map_err(|e| Error::engine("check", e))?;
                batch = filter_record_batch(&batch, &keep).map_err(|e| Error::engine("check", e))?;
            }
        }
        Ok(batch)
    }

    /// Judges every check. Custom SQL checks run now, on the table `this` that the caller registered.
    pub async fn finish(&mut self, sql: CheckSql<'_>) -> Result<Vec<CheckResult>> {
        let mut results = Vec::new();
        let now = chrono::Utc::now().naive_utc();
        let interval_end = self.data_interval_end.unwrap_or(now);
        for c in &mut self.checks {
            let mut observed: String;
            let failed = match (&c.eval, &c.check.kind) {
                (Eval::RowCount, CheckKind::RowCount { min, max, max_change_pct }) => {
                    observed = format!("{} rows", c.rows);
                    let mut bad = min.is_some_and(|m| c.rows < m) || max.is_some_and(|m| c.rows > m);
                    if let (Some(pct), Some(prev)) = (max_change_pct, self.previous_rows) {
                        let change = if prev == 0 {
                            if c.rows == 0 {
                                0.0
                            } else {
                                f64::INFINITY
                            }
                        } else {
                            (c.rows as f64 - prev as f64).abs() * 100.0 / prev as f64
                        };
                        observed = format!("{} rows, {change:.1}% change from the previous run's {prev}", c.rows);
                        bad |= change > *pct;
                    }
                    bad
                }
                (Eval::Freshness { newest, .. }, CheckKind::Freshness { max_age, max_age_text, relative_to, .. }) => {
                    match newest {
                        None => {
                            observed = "no values".into();
                            true
                        }
                        Some(m) => {
                            let anchor = match relative_to {
                                weir_config::checks::FreshnessAnchor::Now => now,
                                weir_config::checks::FreshnessAnchor::DataIntervalEnd => interval_end,
                            };
                            let newest =
                                chrono::DateTime::from_timestamp_micros(*m).map(|d| d.naive_utc()).unwrap_or(anchor);
                            let age = (anchor - newest).to_std().unwrap_or(Duration::ZERO);
                            let against = match relative_to {
                                weir_config::checks::FreshnessAnchor::Now => String::new(),
                                weir_config::checks::FreshnessAnchor::DataIntervalEnd => format!(" at {anchor}"),
                            };
                            observed = format!("newest {newest}, {} old{against} (limit {max_age_text})", human(age));
                            age > *max_age
                        }
                    }
                }
                (Eval::Sql { query }, _) => {
                    let what = format!("check `{}` (line {})", c.check.name, c.check.line);
                    (c.failing, c.sample) = failures_of(&sql, query, &what).await?;
                    observed = format!("{} rows returned", c.failing);
                    c.failing > 0
                }
                _ => {
                    observed = format!("{} of {} rows fail", c.failing, c.rows);
                    c.failing > 0
                }
            };
            let status = match (failed, c.check.on_fail, c.check.severity) {
                (false, _, _) => CheckStatus::Passed,
                (true, OnFail::Quarantine, _) => CheckStatus::Quarantined,
                (true, _, Severity::Warn) => CheckStatus::Warned,
                (true, _, Severity::Error) => CheckStatus::Failed,
            };
            results.push(CheckResult {
                name: c.check.name.clone(),
                kind: c.check.kind.kind_name(),
                line: c.check.line,
                severity: c.check.severity,
                status,
                rows_checked: c.rows,
                failing_rows: c.failing,
                observed,
                sample: c.sample.clone(),
            });
        }
        Ok(results)
    }
}

/// Where the SQL of checks runs: this process's engine (the staged output registered as `this`), or the Ballista
/// cluster or Spark Connect engine that wrote the output (`this` being the files it wrote).
pub enum CheckSql<'a> {
    Here(&'a Engine),
    Ballista(&'a crate::ballista::StagedOnCluster),
    Spark(&'a crate::spark_connect::StagedOnSpark),
}

impl CheckSql<'_> {
    async fn collect(&self, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
        match self {
            CheckSql::Here(engine) => engine.sql_collect(sql, what).await,
            CheckSql::Ballista(staged) => staged.collect(sql, what).await,
            CheckSql::Spark(staged) => staged.collect(sql, what).await,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            CheckSql::Here(_) | CheckSql::Ballista(_) => Dialect::DataFusion,
            CheckSql::Spark(_) => Dialect::Spark,
        }
    }
}

/// How many rows `query` (the failing rows of a check) returns, and up to five of them as JSON.
async fn failures_of(sql: &CheckSql<'_>, query: &str, what: &str) -> Result<(u64, Vec<String>)> {
    let failing = single_u64(&sql.collect(&format!("SELECT count(*) FROM ({query}) AS failures"), what).await?);
    let mut sample = Vec::new();
    if failing > 0 {
        for b in sql.collect(&format!("SELECT * FROM ({query}) AS failures LIMIT 5"), what).await? {
            sample.extend(records_as_json(&b)?);
        }
    }
    Ok((failing, sample))
}

/// The one integer a `SELECT count(*)` or `sum` answered (0 for no row or a null).
fn single_u64(batches: &[RecordBatch]) -> u64 {
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else { return 0 };
    arrow::compute::cast(b.column(0), &DataType::UInt64)
        .ok()
        .and_then(|c| {
            c.as_primitive_opt::<arrow::datatypes::UInt64Type>().filter(|c| c.is_valid(0)).map(|c| c.value(0))
        })
        .unwrap_or(0)
}

fn describe_failure(kind: &CheckKind) -> String {
    match kind {
        CheckKind::NotNull { columns } => format!("null in {}", columns.join(", ")),
        CheckKind::AcceptedValues { column, values } => {
            format!("`{column}` is not one of {}", values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
        }
        CheckKind::Range { column, min, max } => format!(
            "`{column}` is outside [{}, {}]",
            min.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "-inf".into()),
            max.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "inf".into())
        ),
        CheckKind::Regex { column, pattern } => format!("`{column}` does not match /{pattern}/"),
        CheckKind::Expression { condition } => format!("not true: {condition}"),
        other => other.kind_name().to_string(),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn check(kind: CheckKind) -> Check {
        Check { kind, name: "c".into(), severity: Severity::Error, on_fail: OnFail::Report, line: 1 }
    }

    async fn compiled(kinds: Vec<CheckKind>) -> CheckSet {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(&weir_lake::Lake::local(dir.path())).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let checks: Vec<Check> = kinds.into_iter().map(check).collect();
        CheckSet::compile(&engine, &checks, &schema, None, None, "test").await.unwrap()
    }

    #[test]
    fn spark_conditions_quote_names_with_backticks_and_escape_backslashes() {
        let schema = Arc::new(Schema::new(vec![Field::new("it's", DataType::Utf8, true)]));
        let values = vec![serde_json::json!("O'Hara"), serde_json::json!("a\\b")];
        let kind = CheckKind::AcceptedValues { column: "it's".into(), values };
        assert_eq!(
            row_condition(&kind, &schema, Dialect::Spark).unwrap(),
            "`it's` IS NULL OR `it's` IN ('O''Hara', 'a\\\\b')"
        );
        assert_eq!(
            row_condition(&kind, &schema, Dialect::DataFusion).unwrap(),
            "\"it's\" IS NULL OR \"it's\" IN ('O''Hara', 'a\\b')"
        );
        let regex = CheckKind::Regex { column: "it's".into(), pattern: "^[a-z]+$".into() };
        assert!(row_condition(&regex, &schema, Dialect::Spark).is_none());
    }

    #[tokio::test]
    async fn only_checks_spark_judges_as_weir_does_run_there() {
        let same = vec![
            CheckKind::NotNull { columns: vec!["name".into()] },
            CheckKind::AcceptedValues { column: "name".into(), values: vec![serde_json::json!("a")] },
            CheckKind::Range { column: "n".into(), min: Some(serde_json::json!(1)), max: None },
            CheckKind::Unique { columns: vec!["name".into(), "n".into()] },
        ];
        let set = compiled(same).await;
        assert!(set.can_run_as_sql(Dialect::Spark) && set.can_run_as_sql(Dialect::DataFusion));
        for differs in [
            CheckKind::Regex { column: "name".into(), pattern: "^a".into() },
            CheckKind::AcceptedValues { column: "n".into(), values: vec![serde_json::json!("1")] },
            CheckKind::Range { column: "name".into(), min: Some(serde_json::json!(1)), max: None },
            CheckKind::Unique { columns: vec!["x".into()] },
        ] {
            let set = compiled(vec![differs.clone()]).await;
            assert!(!set.can_run_as_sql(Dialect::Spark), "{differs:?}");
            assert!(set.can_run_as_sql(Dialect::DataFusion), "{differs:?}");
        }
    }
}
