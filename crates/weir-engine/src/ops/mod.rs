//! Cleaning steps compiled into batch operators. Each operator is compiled once against its input schema (column
//! names checked, SQL planned and type-checked by DataFusion) and then applied to every batch as it streams by, so a
//! step costs one vectorised pass and memory stays bounded whatever the table size.
//!
//! Most steps are DataFusion physical expressions evaluated per batch; `dedupe` and forward fill keep a little state
//! between batches; `fill_null` with mean/median/mode gets its value from a first pass (see `task.rs`).

pub mod dates;
mod dedupe;
pub(crate) mod fill;
pub mod python;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use weir_config::steps::{FillStrategy, OnError, Step, StepKind, DEFAULT_DATE_FORMATS};
use weir_core::position::is_hidden;
use weir_core::{Error, Result};

use crate::quality::{RejectAction, Rejects};

pub use dedupe::{DedupeOp, KeySet};
pub use fill::{ColumnStats, ForwardFillOp};

/// Per row, whether `converted` holds `original`'s value without loss: not NULL where the original was not and, for
/// a non-text original, the same value when converted back (19.99 became 19, nanoseconds were cut: lost). Text is
/// judged by whether it parsed. Used wherever a value is converted on the user's behalf (schema contracts,
/// `relationship` keys), so that a lossy conversion is a rejected value, never a silent change.
pub fn converted_exactly(original: &ArrayRef, converted: &ArrayRef) -> Result<Vec<bool>> {
    let text = matches!(original.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let same = if text || original.data_type() == converted.data_type() {
        None
    } else {
        // Types the comparison kernels do not take (lists, structs) are judged by NULLs alone.
        arrow::compute::cast(converted, original.data_type())
            .ok()
            .and_then(|back| arrow::compute::kernels::cmp::eq(&back, original).ok())
    };
    Ok((0..original.len())
        .map(|r| {
            (original.is_null(r) || converted.is_valid(r)) && same.as_ref().is_none_or(|s| s.is_null(r) || s.value(r))
        })
        .collect())
}

/// What a step did, for the run summary.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub step: String,
    pub line: usize,
    pub rows_in: u64,
    pub rows_out: u64,
    pub notes: Vec<String>,
}

/// A compiled step.
pub trait BatchOp: Send {
    fn schema(&self) -> SchemaRef;
    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch>;
    /// Things worth telling the user (values that did not parse, rows removed...).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Row counts kept by the operator itself, for steps that run outside `apply` (planned on DataFusion).
    fn external_counts(&self) -> Option<(u64, u64)> {
        None
    }
    /// Batches the operator still holds when its input has ended (a step over the whole input emits them here).
    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        Ok(Vec::new())
    }
}

/// An operator with its step's name and row counts.
pub struct CompiledStep {
    pub name: &'static str,
    pub line: usize,
    op: Box<dyn BatchOp>,
    rows_in: u64,
    rows_out: u64,
}

impl CompiledStep {
    pub fn schema(&self) -> SchemaRef {
        self.op.schema()
    }

    pub fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        self.rows_in += batch.num_rows() as u64;
        let out = self.op.apply(batch)?;
        self.rows_out += out.num_rows() as u64;
        Ok(out)
    }

    /// What the step emits after its last input batch.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let out = self.op.finish()?;
        self.rows_out += out.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        Ok(out)
    }

    pub fn report(&self) -> StepReport {
        let mut notes = self.op.notes();
        let (rows_in, rows_out) = self.op.external_counts().unwrap_or((self.rows_in, self.rows_out));
        if rows_in > rows_out {
            notes.insert(0, format!("{} rows removed", rows_in - rows_out));
        }
        StepReport { step: self.name.to_string(), line: self.line, rows_in, rows_out, notes }
    }
}

/// Where a step sits, for error messages: `step `trim` (pipelines/x.yaml:14)`.
pub struct StepSite<'a> {
    pub file: &'a std::path::Path,
    /// The project folder (where a `python` step's worker runs).
    pub project_dir: &'a std::path::Path,
    pub task: &'a str,
    /// Where values and rows a step rejects are recorded.
    pub rejects: Option<&'a crate::quality::Rejects>,
}

impl StepSite<'_> {
    fn context(&self, step: &Step) -> String {
        format!("{}:{}: task `{}`, step `{}`", self.file.display(), step.line, self.task, step.name())
    }
}

pub use weir_connect::connection::quote_ident;

/// Finds a column, with a "did you mean" when it is not there.
fn column_index(schema: &Schema, name: &str) -> std::result::Result<usize, String> {
    schema.index_of(name).map_err(|_| no_column(name, schema.fields().iter().map(|f| f.name().as_str()).collect()))
}

/// `no column `x`; did you mean `y`?` (or the list of columns).
pub(crate) fn no_column(name: &str, names: Vec<&str>) -> String {
    match weir_config::diag::did_you_mean(name, names.iter().copied()) {
        Some(h) => format!("no column `{name}`; {h}"),
        None => format!("no column `{name}`; columns are: {}", names.join(", ")),
    }
}

/// Plans a SQL expression over `schema` with DataFusion (type coercion included).
pub fn compile_expr(
    ctx: &SessionContext,
    schema: &SchemaRef,
    sql: &str,
) -> std::result::Result<Arc<dyn PhysicalExpr>, String> {
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
    let expr = ctx.parse_sql_expr(sql, &df_schema).map_err(|e| e.strip_backtrace().to_string())?;
    // Coerce types, then simplify: folds constants once and rewrites functions (such as `coalesce`) that have no
    // physical form of their own.
    let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(
        datafusion::logical_expr::simplify::SimplifyContext::builder().with_schema(Arc::new(df_schema.clone())).build(),
    );
    let expr = simplifier
        .coerce(expr, &df_schema)
        .and_then(|e| simplifier.simplify(e))
        .map_err(|e| e.strip_backtrace().to_string())?;
    ctx.create_physical_expr(expr, &df_schema).map_err(|e| e.strip_backtrace().to_string())
}

/// Indices of weir's hidden position columns, which every step carries through.
fn hidden_columns(schema: &Schema) -> Vec<usize> {
    columns_where(schema, |name| is_hidden(name))
}

/// Indices of the user's columns: all but the hidden position columns.
pub fn visible_columns(schema: &Schema) -> Vec<usize> {
    columns_where(schema, |name| !is_hidden(name))
}

fn columns_where(schema: &Schema, keep: impl Fn(&str) -> bool) -> Vec<usize> {
    schema.fields().iter().enumerate().filter(|(_, f)| keep(f.name())).map(|(i, _)| i).collect()
}

pub(crate) fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Compiles `step` for batches of `input`. `stats` holds the values computed by a first pass for `fill_null` with a
/// strategy (column -> fill value), when the step needs them.
pub fn compile(
    ctx: &SessionContext,
    step: &Step,
    input: &SchemaRef,
    stats: Option<&ColumnStats>,
    site: &StepSite<'_>,
) -> Result<CompiledStep> {
    let fail = |m: String| Error::sql(site.context(step), m);
    let cols = |names: &[String]| -> Result<Vec<usize>> {
        names.iter().map(|n| column_index(input, n).map_err(|m| fail(m))).collect()
    };
    let text_cols = |names: &[String]| -> Result<Vec<usize>> {
        let idx = cols(names)?;
        for &i in &idx {
            let f = input.field(i);
            if !is_text(f.data_type()) {
                return Err(fail(format!(
                    "`{}` works on text columns; `{}` is {}",
                    step.name(),
                    f.name(),
                    f.data_type()
                )));
            }
        }
        Ok(idx)
    };
    // Replace some columns by expressions, keep the others.
    let replace = |replacements: Vec<(usize, String)>| -> Result<Box<dyn BatchOp>> {
        let mut exprs: Vec<(String, String)> =
            input.fields().iter().map(|f| (f.name().clone(), quote_ident(f.name()))).collect();
        for (i, sql) in replacements {
            exprs[i].1 = sql;
        }
        Ok(Box::new(ProjectOp::new(ctx, input, exprs).map_err(&fail)?))
    };
    let op: Box<dyn BatchOp> = match &step.kind {
        StepKind::Trim(c) => replace(
            text_cols(&c.columns)?
                .into_iter()
                .map(|i| (i, format!("btrim({})", quote_ident(input.field(i).name()))))
                .collect(),
        )?,
        StepKind::Lowercase(c) => replace(
            text_cols(&c.columns)?
                .into_iter()
                .map(|i| (i, format!("lower({})", quote_ident(input.field(i).name()))))
                .collect(),
        )?,
        StepKind::Uppercase(c) => replace(
            text_cols(&c.columns)?
                .into_iter()
                .map(|i| (i, format!("upper({})", quote_ident(input.field(i).name()))))
                .collect(),
        )?,
        StepKind::Select(c) => {
            let mut idx = cols(&c.columns)?;
            idx.extend(hidden_columns(input));
            Box::new(
                ProjectOp::new(
                    ctx,
                    input,
                    idx.iter().map(|&i| (input.field(i).name().clone(), quote_ident(input.field(i).name()))).collect(),
                )
                .map_err(&fail)?,
            )
        }
        StepKind::Drop(c) => {
            let idx = cols(&c.columns)?;
            let keep = input
                .fields()
                .iter()
                .enumerate()
                .filter(|(i, _)| !idx.contains(i))
                .map(|(_, f)| (f.name().clone(), quote_ident(f.name())))
                .collect();
            Box::new(ProjectOp::new(ctx, input, keep).map_err(&fail)?)
        }
        StepKind::Rename(pairs) => {
            let mut exprs: Vec<(String, String)> =
                input.fields().iter().map(|f| (f.name().clone(), quote_ident(f.name()))).collect();
            for (old, new) in pairs {
                let i = column_index(input, old).map_err(&fail)?;
                exprs[i].0 = new.clone();
            }
            Box::new(ProjectOp::new(ctx, input, exprs).map_err(&fail)?)
        }
        StepKind::Derive(pairs) => {
            // Each derived column may use the ones derived before it: compile them one after another.
            let mut schema = input.clone();
            let mut chain: Vec<Box<dyn BatchOp>> = Vec::new();
            for (name, sql) in pairs {
                let mut exprs: Vec<(String, String)> =
                    schema.fields().iter().map(|f| (f.name().clone(), quote_ident(f.name()))).collect();
                match exprs.iter_mut().find(|(n, _)| n == name) {
                    Some(e) => e.1 = sql.clone(),
                    None => exprs.push((name.clone(), sql.clone())),
                }
                let op = ProjectOp::new(ctx, &schema, exprs).map_err(|m| fail(format!("`{name}`: {m}")))?;
                schema = op.schema();
                chain.push(Box::new(op));
            }
            Box::new(Chain(chain))
        }
        StepKind::Filter(f) => {
            let pred = compile_expr(ctx, input, &f.condition).map_err(&fail)?;
            let t = pred.data_type(input).map_err(|e| fail(e.to_string()))?;
            if t != DataType::Boolean {
                return Err(fail(format!("`{}` is {t}, not a true/false condition", f.condition)));
            }
            Box::new(FilterOp { schema: input.clone(), predicate: pred })
        }
        StepKind::Cast(c) => {
            let mut targets = Vec::new();
            for (col, ty) in &c.columns {
                let i = column_index(input, col).map_err(&fail)?;
                let t = weir_connect::types::parse_type(ty).map_err(|m| fail(format!("`{col}`: {m}")))?;
                if !arrow::compute::can_cast_types(input.field(i).data_type(), &t) {
                    return Err(fail(format!("`{col}` cannot be cast from {} to {t}", input.field(i).data_type())));
                }
                targets.push((i, t));
            }
            Box::new(CastOp::new(input, targets, c.on_error, site.rejects.cloned(), step.line))
        }
        StepKind::ParseDates(p) => {
            let idx = cols(&p.columns)?;
            let formats: Vec<dates::DateFormat> = match &p.formats {
                Some(f) => f.iter().map(|f| dates::DateFormat::new(f).map_err(&fail)).collect::<Result<_>>()?,
                None => DEFAULT_DATE_FORMATS
                    .iter()
                    .map(|f| dates::DateFormat::new(f).map_err(&fail))
                    .collect::<Result<_>>()?,
            };
            let to_date = dates::converts_to_date(p.to, formats.iter().map(|f| f.text.as_str()));
            Box::new(ParseDatesOp::new(input, idx, formats, to_date, p.on_error, site.rejects.cloned(), step.line))
        }
        StepKind::Python(p) => Box::new(python::PythonOp::start(p, input, site.project_dir, &site.context(step))?),
        StepKind::Dedupe(d) => {
            if d.order_by.is_some() {
                // Ordered dedupe needs all rows of a key; the task runner plans it on DataFusion instead.
                return Err(Error::engine(site.context(step), "ordered dedupe must be planned by the task runner"));
            }
            let idx = match &d.columns {
                Some(c) => cols(c)?,
                None => visible_columns(input),
            };
            Box::new(DedupeOp::new(input.clone(), idx))
        }
        StepKind::FillNull(f) => {
            if let Some(values) = &f.values {
                let mut repl = Vec::new();
                for (col, v) in values {
                    let i = column_index(input, col).map_err(&fail)?;
                    repl.push((i, fill::coalesce_sql(input.field(i), v).map_err(&fail)?));
                }
                replace(repl)?
            } else {
                let columns = f.columns.clone().unwrap_or_default();
                let idx = cols(&columns)?;
                match (&f.value, f.strategy) {
                    (Some(v), _) => replace(
                        idx.iter()
                            .map(|&i| fill::coalesce_sql(input.field(i), v).map(|s| (i, s)))
                            .collect::<std::result::Result<_, _>>()
                            .map_err(&fail)?,
                    )?,
                    (None, Some(FillStrategy::Forward)) => Box::new(ForwardFillOp::new(input.clone(), idx)),
                    (None, Some(strategy)) => {
                        let stats = stats
                            .ok_or_else(|| Error::engine(site.context(step), "fill statistics were not computed"))?;
                        let mut repl = Vec::new();
                        for &i in &idx {
                            let f = input.field(i);
                            let value = stats.fill_value(f.name(), strategy).map_err(&fail)?;
                            match value {
                                Some(v) => repl.push((i, fill::coalesce_sql(f, &v).map_err(&fail)?)),
                                None => {} // all values null: nothing to fill from
                            }
                        }
                        replace(repl)?
                    }
                    (None, None) => return Err(fail("`fill_null` needs `value`, `values` or `strategy`".into())),
                }
            }
        }
    };
    Ok(CompiledStep { name: step.name(), line: step.line, op, rows_in: 0, rows_out: 0 })
}

/// Computes output columns from SQL expressions over the input columns.
pub struct ProjectOp {
    schema: SchemaRef,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
}

impl ProjectOp {
    pub fn new(
        ctx: &SessionContext,
        input: &SchemaRef,
        exprs: Vec<(String, String)>,
    ) -> std::result::Result<ProjectOp, String> {
        let mut fields = Vec::new();
        let mut compiled = Vec::new();
        for (name, sql) in exprs {
            let e = compile_expr(ctx, input, &sql)?;
            let t = e.data_type(input).map_err(|e| e.to_string())?;
            fields.push(Field::new(name, t, true));
            compiled.push(e);
        }
        Ok(ProjectOp { schema: Arc::new(Schema::new(fields)), exprs: compiled })
    }
}

impl BatchOp for ProjectOp {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let cols = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(n)))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()
            .map_err(|e| Error::sql("evaluate expression", e.strip_backtrace().to_string()))?;
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| Error::engine("project", e))
    }
}

struct Chain(Vec<Box<dyn BatchOp>>);

impl BatchOp for Chain {
    fn schema(&self) -> SchemaRef {
        self.0.last().map(|o| o.schema()).unwrap_or_else(|| Arc::new(Schema::empty()))
    }

    fn apply(&mut self, mut batch: RecordBatch) -> Result<RecordBatch> {
        for op in &mut self.0 {
            batch = op.apply(batch)?;
        }
        Ok(batch)
    }
}

pub struct FilterOp {
    schema: SchemaRef,
    predicate: Arc<dyn PhysicalExpr>,
}

impl BatchOp for FilterOp {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mask = self
            .predicate
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| Error::sql("evaluate filter", e.strip_backtrace().to_string()))?;
        // SQL semantics: a null condition does not keep the row.
        let mask = mask.as_boolean();
        let mask = if mask.null_count() > 0 { arrow::compute::prep_null_mask_filter(mask) } else { mask.clone() };
        filter_record_batch(&batch, &mask).map_err(|e| Error::engine("filter", e))
    }
}

pub struct CastOp {
    schema: SchemaRef,
    targets: Vec<(usize, DataType)>,
    failed: Vec<(String, u64, Vec<String>)>,
    rejected: ValueRejects,
}

impl CastOp {
    fn new(
        input: &SchemaRef,
        targets: Vec<(usize, DataType)>,
        on_error: OnError,
        rejects: Option<Rejects>,
        line: usize,
    ) -> CastOp {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (i, t) in &targets {
            fields[*i] = Field::new(fields[*i].name(), t.clone(), true);
        }
        let failed = targets.iter().map(|(i, _)| (input.field(*i).name().clone(), 0, Vec::new())).collect();
        CastOp {
            schema: Arc::new(Schema::new(fields)),
            targets,
            failed,
            rejected: ValueRejects::new(on_error, rejects, format!("step cast (line {line})")),
        }
    }
}

impl BatchOp for CastOp {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut cols = batch.columns().to_vec();
        let opts = CastOptions { safe: true, ..Default::default() };
        for (k, (i, t)) in self.targets.iter().enumerate() {
            let src = &cols[*i];
            let out = cast_with_options(src, t, &opts).map_err(|e| Error::engine("cast", e))?;
            if out.null_count() > src.null_count() {
                let text = arrow::compute::cast(src, &DataType::Utf8).map_err(|e| Error::engine("cast", e))?;
                let text = text.as_string::<i32>();
                let bad: Vec<usize> = (0..src.len()).filter(|&r| src.is_valid(r) && out.is_null(r)).collect();
                let entry = &mut self.failed[k];
                if self.rejected.on_error == OnError::Fail {
                    return Err(Error::data(
                        Default::default(),
                        format!("cast: column `{}` value '{}' is not a valid {t}", entry.0, text.value(bad[0])),
                    ));
                }
                entry.1 += bad.len() as u64;
                for r in bad.iter().take(5) {
                    if entry.2.len() < 5 {
                        entry.2.push(text.value(*r).to_string());
                    }
                }
                self.rejected.record(&batch, src, &out, &entry.0, || format!("not a valid {t}"))?;
            }
            cols[*i] = out;
        }
        let out = RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| Error::engine("cast", e))?;
        self.rejected.finish(out)
    }

    fn notes(&self) -> Vec<String> {
        self.failed
            .iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(c, n, s)| conversion_note(c, *n, "could not be converted", self.rejected.on_error, s))
            .collect()
    }
}

/// What `cast` and `parse_dates` do with the values they cannot convert: each becomes null and is recorded in the
/// quarantine; with `on_error: quarantine` its whole row leaves the output instead.
struct ValueRejects {
    on_error: OnError,
    rejects: Option<Rejects>,
    rule: String,
    /// Rows of the current batch with a rejected value.
    quarantined: Option<arrow::array::BooleanArray>,
}

impl ValueRejects {
    fn new(on_error: OnError, rejects: Option<Rejects>, rule: String) -> Self {
        ValueRejects { on_error, rejects, rule, quarantined: None }
    }

    /// Records the values of `column` that were set in `before` (a column of `batch`) and are null in `after`.
    fn record(
        &mut self,
        batch: &RecordBatch,
        before: &ArrayRef,
        after: &ArrayRef,
        column: &str,
        reason: impl FnOnce() -> String,
    ) -> Result<()> {
        let mask: arrow::array::BooleanArray =
            (0..before.len()).map(|r| Some(before.is_valid(r) && after.is_null(r))).collect();
        if let Some(rejects) = &self.rejects {
            let action = if self.on_error == OnError::Quarantine {
                RejectAction::RowQuarantined
            } else {
                RejectAction::ValueNulled
            };
            rejects.record(batch, &mask, &self.rule, &reason(), Some(column), action)?;
        }
        self.quarantined = Some(match self.quarantined.take() {
            None => mask,
            Some(q) => arrow::compute::or(&q, &mask).map_err(|e| Error::engine("quarantine", e))?,
        });
        Ok(())
    }

    /// The converted batch, without the rows quarantined while converting it.
    fn finish(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        match (self.on_error, self.quarantined.take()) {
            (OnError::Quarantine, Some(mask)) => {
                let keep = arrow::compute::not(&mask).map_err(|e| Error::engine("quarantine", e))?;
                filter_record_batch(&batch, &keep).map_err(|e| Error::engine("quarantine", e))
            }
            _ => Ok(batch),
        }
    }
}

/// A converting step's note on one column: `` `amount`: 3 values could not be converted and became null (e.g. 'x') ``.
pub(crate) fn conversion_note(column: &str, n: u64, what: &str, on_error: OnError, samples: &[String]) -> String {
    let fate = if on_error == OnError::Quarantine { "their rows were quarantined" } else { "became null" };
    format!("`{column}`: {n} values {what} and {fate} (e.g. {})", quote_list(samples))
}

fn quote_list(values: &[String]) -> String {
    values.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ")
}

pub struct ParseDatesOp {
    schema: SchemaRef,
    columns: Vec<usize>,
    formats: Vec<dates::DateFormat>,
    to_date: bool,
    failed: Vec<(u64, Vec<String>)>,
    rejected: ValueRejects,
}

impl ParseDatesOp {
    fn new(
        input: &SchemaRef,
        columns: Vec<usize>,
        formats: Vec<dates::DateFormat>,
        to_date: bool,
        on_error: OnError,
        rejects: Option<Rejects>,
        line: usize,
    ) -> Self {
        let t =
            if to_date { DataType::Date32 } else { DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None) };
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for &i in &columns {
            fields[i] = Field::new(fields[i].name(), t.clone(), true);
        }
        let failed = columns.iter().map(|_| (0, Vec::new())).collect();
        ParseDatesOp {
            schema: Arc::new(Schema::new(fields)),
            columns,
            formats,
            to_date,
            failed,
            rejected: ValueRejects::new(on_error, rejects, format!("step parse_dates (line {line})")),
        }
    }
}

impl BatchOp for ParseDatesOp {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut cols = batch.columns().to_vec();
        for (k, &i) in self.columns.iter().enumerate() {
            let target = self.schema.field(i).data_type().clone();
            let src = &cols[i];
            let parsed = match src.data_type() {
                DataType::Utf8 => {
                    let a = src.as_string::<i32>();
                    dates::parse_column(a.iter(), a.len(), &self.formats, self.to_date)
                }
                DataType::LargeUtf8 => {
                    let a = src.as_string::<i64>();
                    dates::parse_column(a.iter(), a.len(), &self.formats, self.to_date)
                }
                DataType::Utf8View => {
                    let a = src.as_string_view();
                    dates::parse_column(a.iter(), a.len(), &self.formats, self.to_date)
                }
                // Already a date or timestamp (CSV inference saw ISO values): only convert.
                _ => {
                    let a = arrow::compute::cast(src, &target).map_err(|e| Error::engine("parse_dates", e))?;
                    cols[i] = a;
                    continue;
                }
            };
            if parsed.failed > 0 {
                let name = self.schema.field(i).name();
                if self.rejected.on_error == OnError::Fail {
                    return Err(Error::data(
                        Default::default(),
                        format!(
                            "parse_dates: column `{name}` value '{}' matches none of the formats {}",
                            parsed.samples.first().cloned().unwrap_or_default(),
                            self.formats.iter().map(|f| format!("`{}`", f.text)).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                let entry = &mut self.failed[k];
                entry.0 += parsed.failed as u64;
                for s in parsed.samples {
                    if entry.1.len() < 5 && !entry.1.contains(&s) {
                        entry.1.push(s);
                    }
                }
                let formats = &self.formats;
                self.rejected.record(&batch, src, &parsed.array, name, || {
                    format!(
                        "matches none of the formats {}",
                        formats.iter().map(|f| f.text.as_str()).collect::<Vec<_>>().join(", ")
                    )
                })?;
            }
            cols[i] = parsed.array;
        }
        let out = RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| Error::engine("parse_dates", e))?;
        self.rejected.finish(out)
    }

    fn notes(&self) -> Vec<String> {
        self.columns
            .iter()
            .zip(&self.failed)
            .filter(|(_, (n, _))| *n > 0)
            .map(|(&i, (n, s))| {
                conversion_note(
                    self.schema.field(i).name(),
                    *n,
                    "matched none of the formats",
                    self.rejected.on_error,
                    s,
                )
            })
            .collect()
    }
}

/// Row counts of a step that runs outside the batch operators.
#[derive(Clone, Default)]
pub struct CountedStream {
    pub rows_in: Arc<std::sync::atomic::AtomicU64>,
    pub rows_out: Arc<std::sync::atomic::AtomicU64>,
}

impl CountedStream {
    pub(crate) fn new() -> Self {
        Self::default()
    }
    pub(crate) fn add_in(&self, n: usize) {
        self.rows_in.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    pub(crate) fn add_out(&self, n: usize) {
        self.rows_out.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A step whose rows are counted outside the batch operators (planned on DataFusion).
struct Counted {
    counts: CountedStream,
}

impl BatchOp for Counted {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::empty())
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(batch)
    }

    fn external_counts(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        Some((self.counts.rows_in.load(Relaxed), self.counts.rows_out.load(Relaxed)))
    }
}

impl CompiledStep {
    pub(crate) fn counter(name: &'static str, line: usize, counts: CountedStream) -> CompiledStep {
        CompiledStep { name, line, op: Box::new(Counted { counts }), rows_in: 0, rows_out: 0 }
    }
}

/// A step another engine ran: its counts and notes are known before any row arrives.
struct Reported {
    rows_in: u64,
    rows_out: u64,
    notes: Vec<String>,
}

impl BatchOp for Reported {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::empty())
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        Ok(batch)
    }

    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn external_counts(&self) -> Option<(u64, u64)> {
        Some((self.rows_in, self.rows_out))
    }
}

impl CompiledStep {
    pub(crate) fn reported(
        name: &'static str,
        line: usize,
        rows_in: u64,
        rows_out: u64,
        notes: Vec<String>,
    ) -> CompiledStep {
        CompiledStep { name, line, op: Box::new(Reported { rows_in, rows_out, notes }), rows_in: 0, rows_out: 0 }
    }
}
