//! Filling nulls: constants (`coalesce`), values computed over the column (mean, median, mode: pandas'
//! `fillna(df[c].mean())` idiom) and forward fill, which carries the last non-null value across batches.

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat, take};
use arrow::datatypes::{DataType, Field, SchemaRef};
use std::collections::HashMap;
use weir_config::steps::FillStrategy;
use weir_core::{Error, Result};

use super::{quote_ident, BatchOp};

fn sql_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Float64 => "DOUBLE".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        _ => return None,
    })
}

/// `coalesce(col, CAST(value AS <col type>))`: the column keeps its type.
pub fn coalesce_sql(field: &Field, value: &serde_json::Value) -> std::result::Result<String, String> {
    let t = field.data_type();
    let lit = fill_literal(field.name(), Some(t), value, |s| format!("'{}'", s.replace('\'', "''")))?;
    let col = quote_ident(field.name());
    Ok(match sql_type(t) {
        Some(st) => format!("coalesce({col}, CAST({lit} AS {st}))"),
        None => format!("coalesce({col}, {lit})"),
    })
}

/// The SQL literal that fills the nulls of column `name` (of type `ty`, when known) with `value`, its strings
/// written by `text` (each SQL dialect escapes its own): a fractional number for an integer column is rounded, as a
/// cast would truncate it. Shared by the local `fill_null` and its Spark SQL form.
pub fn fill_literal(
    name: &str,
    ty: Option<&DataType>,
    value: &serde_json::Value,
    text: impl Fn(&str) -> String,
) -> std::result::Result<String, String> {
    let lit = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => text(s),
        serde_json::Value::Bool(b) => b.to_string().to_uppercase(),
        other => return Err(format!("cannot fill `{name}` with {other}")),
    };
    let is_int = matches!(ty, Some(DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64));
    Ok(if is_int && value.as_f64().is_some_and(|f| f.fract() != 0.0) { format!("round({lit})") } else { lit })
}

/// Per-column accumulators for the first pass of `fill_null` with a strategy.
#[derive(Default)]
pub struct ColumnStats {
    columns: HashMap<String, Acc>,
}

#[derive(Default)]
struct Acc {
    numeric: bool,
    sum: f64,
    count: u64,
    values: Vec<f64>,
    counts: HashMap<String, u64>,
    strategy: Option<FillStrategy>,
}

impl ColumnStats {
    pub fn new(columns: &[(String, FillStrategy)]) -> Self {
        ColumnStats {
            columns: columns
                .iter()
                .map(|(c, s)| (c.clone(), Acc { strategy: Some(*s), ..Default::default() }))
                .collect(),
        }
    }

    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        for (name, acc) in &mut self.columns {
            let Some(col) = batch.column_by_name(name) else { continue };
            acc.numeric = col.data_type().is_numeric();
            match acc.strategy {
                Some(FillStrategy::Mean) | Some(FillStrategy::Median) if acc.numeric => {
                    let f = cast(col, &DataType::Float64).map_err(|e| Error::engine("fill statistics", e))?;
                    for v in f.as_primitive::<arrow::datatypes::Float64Type>().iter().flatten() {
                        acc.sum += v;
                        acc.count += 1;
                        if acc.strategy == Some(FillStrategy::Median) {
                            acc.values.push(v);
                        }
                    }
                }
                Some(FillStrategy::Mode) => {
                    let s = cast(col, &DataType::Utf8).map_err(|e| Error::engine("fill statistics", e))?;
                    for v in s.as_string::<i32>().iter().flatten() {
                        *acc.counts.entry(v.to_string()).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The fill value for `column`, or None when the column has no non-null value at all.
    pub fn fill_value(
        &self,
        column: &str,
        strategy: FillStrategy,
    ) -> std::result::Result<Option<serde_json::Value>, String> {
        let acc = self.columns.get(column).ok_or_else(|| format!("no statistics for `{column}`"))?;
        let number = |f: f64| serde_json::Number::from_f64(f).map(serde_json::Value::Number);
        match strategy {
            FillStrategy::Mean | FillStrategy::Median if !acc.numeric => {
                Err(format!("`{column}` is not numeric: use `strategy: mode` or a `value`"))
            }
            FillStrategy::Mean => Ok((acc.count > 0).then(|| acc.sum / acc.count as f64).and_then(number)),
            FillStrategy::Median => {
                let mut v = acc.values.clone();
                if v.is_empty() {
                    return Ok(None);
                }
                v.sort_by(|a, b| a.total_cmp(b));
                let m = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
                Ok(number(m))
            }
            FillStrategy::Mode => {
                let best = acc.counts.values().copied().max();
                let mut modes: Vec<&String> =
                    acc.counts.iter().filter(|(_, c)| Some(**c) == best).map(|(v, _)| v).collect();
                if acc.numeric {
                    modes.sort_by(|a, b| {
                        a.parse::<f64>().unwrap_or(f64::NAN).total_cmp(&b.parse::<f64>().unwrap_or(f64::NAN))
                    });
                    Ok(modes.first().and_then(|m| m.parse::<f64>().ok()).and_then(number))
                } else {
                    modes.sort();
                    Ok(modes.first().map(|m| serde_json::Value::String((*m).clone())))
                }
            }
            FillStrategy::Forward => Err("forward fill needs no statistics".into()),
        }
    }
}

/// Replaces each null by the last non-null value before it, across batches (source order).
pub struct ForwardFillOp {
    schema: SchemaRef,
    columns: Vec<usize>,
    carry: Vec<Option<ArrayRef>>,
}

impl ForwardFillOp {
    pub fn new(schema: SchemaRef, columns: Vec<usize>) -> Self {
        let carry = columns.iter().map(|_| None).collect();
        ForwardFillOp { schema, columns, carry }
    }
}

impl BatchOp for ForwardFillOp {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut cols = batch.columns().to_vec();
        for (k, &i) in self.columns.iter().enumerate() {
            let col = &cols[i];
            if col.null_count() == 0 {
                self.carry[k] = Some(col.slice(col.len() - 1, 1));
                continue;
            }
            // Index 0 is the carried value (or a null), the batch's rows follow at 1..=n.
            let head = self.carry[k].clone().unwrap_or_else(|| new_null_array(col.data_type(), 1));
            let joined = concat(&[head.as_ref(), col.as_ref()]).map_err(|e| Error::engine("forward fill", e))?;
            let mut last = 0u32;
            let idx: UInt32Array = (0..col.len())
                .map(|r| {
                    if col.is_valid(r) {
                        last = r as u32 + 1;
                    }
                    last
                })
                .collect();
            let filled = take(joined.as_ref(), &idx, None).map_err(|e| Error::engine("forward fill", e))?;
            if last > 0 || self.carry[k].is_some() {
                self.carry[k] = Some(filled.slice(filled.len() - 1, 1));
            }
            cols[i] = filled;
        }
        RecordBatch::try_new(self.schema.clone(), cols).map_err(|e| Error::engine("forward fill", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float64Array;
    use arrow::datatypes::Schema;
    use std::sync::Arc;

    #[test]
    fn forward_fill_carries_across_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let mut op = ForwardFillOp::new(schema.clone(), vec![0]);
        let b =
            |v: Vec<Option<f64>>| RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(v))]).unwrap();
        let o1 = op.apply(b(vec![None, Some(1.0), None])).unwrap();
        let o2 = op.apply(b(vec![None, Some(2.0)])).unwrap();
        let vals =
            |r: &RecordBatch| r.column(0).as_primitive::<arrow::datatypes::Float64Type>().iter().collect::<Vec<_>>();
        assert_eq!(vals(&o1), [None, Some(1.0), Some(1.0)]);
        assert_eq!(vals(&o2), [Some(1.0), Some(2.0)]);
    }

    #[test]
    fn statistics_match_pandas() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Float64Array::from(vec![Some(100.0), None, Some(250.0), Some(250.0)]))],
        )
        .unwrap();
        let mut s = ColumnStats::new(&[("x".into(), FillStrategy::Median)]);
        s.update(&batch).unwrap();
        assert_eq!(s.fill_value("x", FillStrategy::Median).unwrap(), Some(serde_json::json!(250.0)));
        let mut m = ColumnStats::new(&[("x".into(), FillStrategy::Mean)]);
        m.update(&batch).unwrap();
        assert_eq!(m.fill_value("x", FillStrategy::Mean).unwrap(), Some(serde_json::json!(200.0)));
    }
}
