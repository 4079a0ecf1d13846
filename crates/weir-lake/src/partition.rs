//! Hive-style partitions: a partition is a folder path such as `date=2026-03-25/country=DE`. This module renders
//! partition values into such paths (escaped as Hive does) and splits a batch by the values of its partition columns.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;

/// Hive's name for a null partition value.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Escapes a partition value the way Hive and Spark do, so the path round-trips through other engines.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '#' | '%' | '\'' | '*' | '/' | ':' | '=' | '?' | '\\' | '\x7f' | '{' | '[' | ']' | '^')
            || (c as u32) < 0x20
        {
            for b in c.to_string().bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a static partition spec such as `date=2026-03-25` or `year=2026/month=03`.
pub fn parse_static(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for segment in spec.trim_matches('/').split('/') {
        let Some((k, v)) = segment.split_once('=') else {
            return Err(format!("partition segment `{segment}` is not `column=value`"));
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("partition column `{k}` must be letters, digits and `_`"));
        }
        if v.is_empty() {
            return Err(format!("partition `{k}` has an empty value"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Splits rows of `batch` by the values of `columns`. Returns (partition path, rows without the partition columns).
pub struct Splitter {
    columns: Vec<usize>,
    keep: Vec<usize>,
    names: Vec<String>,
    out_schema: SchemaRef,
}

impl Splitter {
    pub fn new(schema: &Schema, columns: &[String]) -> Result<Splitter, String> {
        let mut idx = Vec::new();
        for c in columns {
            let i = schema.index_of(c).map_err(|_| {
                format!(
                    "partition column `{c}` is not in the data; columns are: {}",
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                )
            })?;
            idx.push(i);
        }
        let keep: Vec<usize> = (0..schema.fields().len()).filter(|i| !idx.contains(i)).collect();
        let out_schema = std::sync::Arc::new(schema.project(&keep).map_err(|e| e.to_string())?);
        Ok(Splitter { columns: idx, keep, names: columns.to_vec(), out_schema })
    }

    /// Schema of the data files (partition columns live in the path).
    pub fn file_schema(&self) -> SchemaRef {
        self.out_schema.clone()
    }

    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
        let values: Vec<ArrayRef> =
            self.columns.iter().map(|&i| cast(batch.column(i), &DataType::Utf8)).collect::<Result<_, _>>()?;
        let strings: Vec<&StringArray> =
            values.iter().map(|a| a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8")).collect();
        let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut key = String::new();
        for row in 0..batch.num_rows() {
            key.clear();
            for (n, s) in self.names.iter().zip(&strings) {
                if !key.is_empty() {
                    key.push('/');
                }
                key.push_str(n);
                key.push('=');
                if s.is_null(row) {
                    key.push_str(NULL_PARTITION);
                } else {
                    key.push_str(&escape(s.value(row)));
                }
            }
            match groups.get_mut(&key) {
                Some(v) => v.push(row as u32),
                None => {
                    order.push(key.clone());
                    groups.insert(key.clone(), vec![row as u32]);
                }
            }
        }
        let columns: Vec<&ArrayRef> = self.keep.iter().map(|&i| batch.column(i)).collect();
        let mut out = Vec::with_capacity(order.len());
        for part in order {
            let rows = groups.remove(&part).unwrap_or_default();
            let part_batch = if rows.len() == batch.num_rows() {
                RecordBatch::try_new(self.out_schema.clone(), columns.iter().map(|c| (*c).clone()).collect())?
            } else {
                let indices = UInt32Array::from(rows);
                let cols = columns.iter().map(|c| take(c.as_ref(), &indices, None)).collect::<Result<Vec<_>, _>>()?;
                RecordBatch::try_new(self.out_schema.clone(), cols)?
            };
            out.push((part, part_batch));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, Int64Array};
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn splits_by_value_and_drops_partition_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("c", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Date32Array::from(vec![Some(20537), Some(20538), Some(20537), None])),
                Arc::new(StringArray::from(vec!["a/b", "x", "a/b", "x"])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            ],
        )
        .unwrap();
        let s = Splitter::new(&schema, &["d".into(), "c".into()]).unwrap();
        let parts = s.split(&batch).unwrap();
        let names: Vec<&str> = parts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(names, ["d=2026-03-25/c=a%2Fb", "d=2026-03-26/c=x", "d=__HIVE_DEFAULT_PARTITION__/c=x"]);
        assert_eq!(parts[0].1.num_rows(), 2);
        assert_eq!(parts[0].1.num_columns(), 1);
    }

    #[test]
    fn static_specs_are_checked() {
        assert_eq!(parse_static("date=2026-03-25").unwrap(), vec![("date".into(), "2026-03-25".into())]);
        assert!(parse_static("2026-03-25").unwrap_err().contains("not `column=value`"));
    }
}
