//! JSON records to Arrow, for API sources: nested objects are flattened into `parent__child` columns, arrays are
//! kept as JSON text (a later step may unnest them), the schema is inferred from the first records (explicit column
//! types win), and batches are decoded with arrow-json.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde_json::{Map, Value};
use weir_core::{Error, Result};

/// `{"a": {"b": 1}, "tags": [1, 2]}` becomes `{"a__b": 1, "tags": "[1,2]"}`.
pub fn flatten(record: Value) -> Map<String, Value> {
    let mut out = Map::new();
    match record {
        Value::Object(m) => flatten_into(&mut out, "", m),
        other => {
            out.insert("value".to_string(), scalar(other));
        }
    }
    out
}

fn flatten_into(out: &mut Map<String, Value>, prefix: &str, m: Map<String, Value>) {
    for (k, v) in m {
        let key = if prefix.is_empty() { k } else { format!("{prefix}__{k}") };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten_into(out, &key, inner),
            Value::Object(_) => {
                out.insert(key, Value::Null);
            }
            other => {
                out.insert(key, scalar(other));
            }
        }
    }
}

fn scalar(v: Value) -> Value {
    match v {
        Value::Array(_) => Value::String(v.to_string()),
        other => other,
    }
}

/// The schema of `records`, with `explicit` types for the columns named there. Columns that are null in every
/// record read as text.
pub fn infer_schema(records: &[Map<String, Value>], explicit: &BTreeMap<String, DataType>) -> Result<SchemaRef> {
    let values = records.iter().map(|r| Ok(Value::Object(r.clone())));
    let inferred = arrow::json::reader::infer_json_schema_from_iterator(values)
        .map_err(|e| Error::data(Default::default(), format!("infer the schema of the records: {e}")))?;
    // Columns in the order fields first appear across records (within a record, serde_json sorts them).
    let mut order: Vec<&String> = Vec::new();
    for r in records {
        for k in r.keys() {
            if !order.contains(&k) {
                order.push(k);
            }
        }
    }
    for k in explicit.keys() {
        if !order.contains(&k) {
            order.push(k);
        }
    }
    let fields: Vec<Field> = order
        .into_iter()
        .map(|name| {
            let t = match explicit.get(name) {
                Some(t) => t.clone(),
                None => match inferred.field_with_name(name).map(|f| f.data_type().clone()) {
                    Ok(DataType::Null) | Err(_) => DataType::Utf8,
                    Ok(t) => t,
                },
            };
            Field::new(name, t, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Decodes flattened records into one batch of `schema`. A field the schema lacks, or a value of the wrong type, is
/// an error that `context` (the URL and page) completes.
pub fn decode(records: &[Map<String, Value>], schema: &SchemaRef, context: &str) -> Result<RecordBatch> {
    for (i, r) in records.iter().enumerate() {
        if let Some(k) = r.keys().find(|k| schema.index_of(k).is_err()) {
            return Err(Error::data(
                Default::default(),
                format!(
                    "{context}: record {} has the field `{k}`, which the first page did not have; declare every field in `columns:` (for example `{k}: string`) so the schema is known up front",
                    i + 1
                ),
            ));
        }
    }
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder()
        .map_err(|e| Error::engine("json decoder", e))?;
    decoder.serialize(records).map_err(|e| {
        Error::data(Default::default(), format!("{context}: {e}; declare the column's type in `columns:`"))
    })?;
    Ok(decoder
        .flush()
        .map_err(|e| Error::data(Default::default(), format!("{context}: {e}")))?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn flattens_objects_keeps_arrays_as_text_and_decodes() {
        let recs: Vec<_> = [
            serde_json::json!({"id": 1, "customer": {"name": "ada", "address": {"city": "Oslo"}}, "tags": ["a", "b"]}),
            serde_json::json!({"id": 2, "customer": {"name": null}, "amount": 2.5}),
        ]
        .into_iter()
        .map(flatten)
        .collect();
        assert!(recs[0].contains_key("customer__address__city"));
        let schema = infer_schema(&recs, &BTreeMap::new()).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        // Fields of a record come in name order (serde_json maps are sorted); new fields of later records follow.
        assert_eq!(names, ["customer__address__city", "customer__name", "id", "tags", "amount"]);
        let b = decode(&recs, &schema, "page 1").unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(3).as_string::<i32>().value(0), r#"["a","b"]"#);
        let extra = vec![flatten(serde_json::json!({"id": 3, "new_field": true}))];
        let err = decode(&extra, &schema, "page 2 (https://x/)").unwrap_err().to_string();
        assert!(err.contains("page 2 (https://x/)") && err.contains("`new_field`"), "{err}");
    }
}
