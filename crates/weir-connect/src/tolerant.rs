//! Tolerant decoding for file sources with `on_error: quarantine`: a record that cannot be read (a CSV row with the
//! wrong number of fields, a value that does not parse as its column's type, a malformed NDJSON line) is set aside
//! as a [`SourceReject`] with its file, line, reason and original text, and the rest of the file still loads.
//!
//! The default path (`on_error: fail`) uses arrow's typed CSV and JSON readers and stops at the first bad record,
//! naming it. This path is slower: CSV records are split by the `csv` crate into text columns which are then cast
//! to the schema's types (arrow's cast accepts the same formats as its CSV parser, and a few more spellings of
//! booleans), and NDJSON batches that fail are decoded again line by line to find the bad lines.

use std::io::{BufRead, Read};
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringBuilder, UInt64Array};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, SchemaRef};
use weir_core::error::Location;
use weir_core::{Error, Result};

/// A record a source could not read, kept for the quarantine.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReject {
    pub file: String,
    pub line: u64,
    pub column: Option<String>,
    pub value: Option<String>,
    pub reason: String,
    /// The record's original text: a JSON object of its fields as text, or the raw line.
    pub record: String,
}

/// Records set aside by a source while it streams; the task drains them into its quarantine as batches arrive.
#[derive(Debug, Clone, Default)]
pub struct SourceRejects(Arc<Mutex<Vec<SourceReject>>>);

impl SourceRejects {
    pub fn push(&self, r: SourceReject) {
        if let Ok(mut v) = self.0.lock() {
            v.push(r);
        }
    }

    /// Takes what was set aside so far.
    pub fn drain(&self) -> Vec<SourceReject> {
        self.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}

/// A batch of good records with the line each started on.
pub struct TolerantBatch {
    pub batch: RecordBatch,
    pub lines: UInt64Array,
}

pub struct CsvSettings {
    pub has_header: bool,
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
    /// Values read as null; None: empty fields are null (arrow's CSV default).
    pub null_values: Option<Vec<String>>,
}

/// A CSV reader with the source's dialect that accepts records of any length (they are checked one by one).
fn csv_reader<R: Read>(input: R, settings: &CsvSettings, has_headers: bool) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .delimiter(settings.delimiter)
        .quote(settings.quote)
        .escape(settings.escape)
        .double_quote(settings.escape.is_none())
        .comment(settings.comment)
        .flexible(true)
        .from_reader(input)
}

fn read_error(file: &str, line: Option<u64>, e: impl std::fmt::Display) -> Error {
    Error::data(Location { file: Some(file.into()), line: line.map(|l| l as usize), column: None }, e.to_string())
}

/// Reads CSV records into batches of `schema`, setting aside the records that do not fit. `emit` returns false to
/// stop early.
pub fn read_csv(
    input: impl Read,
    file: &str,
    schema: &SchemaRef,
    settings: &CsvSettings,
    batch_rows: usize,
    rejects: &SourceRejects,
    emit: &mut dyn FnMut(TolerantBatch) -> bool,
) -> Result<()> {
    let mut reader = csv_reader(input, settings, settings.has_header);
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let width = names.len();
    let is_null = |field: &str| match &settings.null_values {
        None => field.is_empty(),
        Some(values) => values.iter().any(|v| v == field),
    };
    let mut record = csv::ByteRecord::new();
    loop {
        let mut builders: Vec<StringBuilder> = (0..width).map(|_| StringBuilder::new()).collect();
        let mut lines: Vec<u64> = Vec::with_capacity(batch_rows);
        let mut done = false;
        while lines.len() < batch_rows {
            let more = reader.read_byte_record(&mut record).map_err(|e| {
                let line = e.position().map(|p| p.line());
                read_error(file, line, e)
            })?;
            if !more {
                done = true;
                break;
            }
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let fields: Vec<std::borrow::Cow<str>> = record.iter().map(String::from_utf8_lossy).collect();
            let reject = |reason: String, column: Option<String>, value: Option<String>| SourceReject {
                file: file.to_string(),
                line,
                column,
                value,
                reason,
                record: serde_json::to_string(&fields).unwrap_or_default(),
            };
            if record.len() != width {
                rejects.push(reject(format!("expected {width} fields, found {}", record.len()), None, None));
                continue;
            }
            if let Some(i) = record.iter().position(|f| std::str::from_utf8(f).is_err()) {
                rejects.push(reject("the field is not valid UTF-8".into(), Some(names[i].clone()), None));
                continue;
            }
            for (b, f) in builders.iter_mut().zip(&fields) {
                if is_null(f) {
                    b.append_null();
                } else {
                    b.append_value(f);
                }
            }
            lines.push(line);
        }
        if !lines.is_empty() {
            let text: Vec<ArrayRef> = builders.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
            let batch = typed(text, UInt64Array::from(lines), file, schema, rejects)?;
            if batch.batch.num_rows() > 0 && !emit(batch) {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// The first `rows` well-formed records of a CSV file (those with as many fields as the header or first record),
/// written back as plain CSV (comma-separated, header first when the file has one), for type inference to run on.
pub fn csv_sample(input: impl Read, settings: &CsvSettings, rows: usize) -> Result<Vec<u8>> {
    let mut reader = csv_reader(input, settings, false);
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut width = None;
    let mut kept = 0;
    let mut record = csv::ByteRecord::new();
    while kept <= rows && reader.read_byte_record(&mut record).unwrap_or(false) {
        let w = *width.get_or_insert(record.len());
        if record.len() != w || record.iter().any(|f| std::str::from_utf8(f).is_err()) {
            continue;
        }
        writer.write_byte_record(&record).map_err(|e| Error::engine("csv sample", e))?;
        kept += 1;
    }
    writer.into_inner().map_err(|e| Error::engine("csv sample", e))
}

/// The first `rows` lines of an NDJSON file that hold a JSON object, for type inference to run on.
pub fn ndjson_sample(mut input: impl BufRead, rows: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut kept = 0;
    while kept < rows {
        line.clear();
        if input.read_until(b'\n', &mut line).map_err(|e| Error::io("read sample", e))? == 0 {
            break;
        }
        if matches!(serde_json::from_slice::<serde_json::Value>(&line), Ok(serde_json::Value::Object(_))) {
            out.extend_from_slice(line.trim_ascii_end());
            out.push(b'\n');
            kept += 1;
        }
    }
    Ok(out)
}

/// Casts text columns to the schema's types; rows with a value that does not convert are set aside.
fn typed(
    text: Vec<ArrayRef>,
    lines: UInt64Array,
    file: &str,
    schema: &SchemaRef,
    rejects: &SourceRejects,
) -> Result<TolerantBatch> {
    let n = lines.len();
    let options = CastOptions { safe: true, ..Default::default() };
    let mut columns = Vec::with_capacity(text.len());
    let mut bad: Vec<Option<(usize, String)>> = vec![None; n];
    for (i, (t, field)) in text.iter().zip(schema.fields()).enumerate() {
        let out = if field.data_type() == &DataType::Utf8 {
            t.clone()
        } else {
            let out = cast_with_options(t, field.data_type(), &options).map_err(|e| read_error(file, None, e))?;
            if out.null_count() > t.null_count() {
                for (r, slot) in bad.iter_mut().enumerate() {
                    if slot.is_none() && t.is_valid(r) && out.is_null(r) {
                        *slot = Some((i, format!("not a valid {}", field.data_type())));
                    }
                }
            }
            out
        };
        columns.push(out);
    }
    if bad.iter().any(Option::is_some) {
        let strings: Vec<&arrow::array::StringArray> =
            text.iter().filter_map(|t| t.as_any().downcast_ref::<arrow::array::StringArray>()).collect();
        for (r, slot) in bad.iter().enumerate() {
            let Some((i, reason)) = slot else { continue };
            let mut record = serde_json::Map::new();
            for (f, s) in schema.fields().iter().zip(&strings) {
                let v = if s.is_valid(r) { serde_json::Value::from(s.value(r)) } else { serde_json::Value::Null };
                record.insert(f.name().clone(), v);
            }
            rejects.push(SourceReject {
                file: file.to_string(),
                line: lines.value(r),
                column: Some(schema.field(*i).name().clone()),
                value: strings.get(*i).map(|s| s.value(r).to_string()),
                reason: format!("column `{}`: {reason}", schema.field(*i).name()),
                record: serde_json::Value::Object(record).to_string(),
            });
        }
        let keep: BooleanArray = bad.iter().map(|b| Some(b.is_none())).collect();
        let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| read_error(file, None, e))?;
        let batch = filter_record_batch(&batch, &keep).map_err(|e| read_error(file, None, e))?;
        let lines: UInt64Array =
            lines.iter().zip(keep.iter()).filter(|(_, k)| *k == Some(true)).map(|(l, _)| l).collect();
        return Ok(TolerantBatch { batch, lines });
    }
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| read_error(file, None, e))?;
    Ok(TolerantBatch { batch, lines })
}

/// Reads NDJSON, one record per line, into batches of `schema`; lines that are not valid JSON or do not fit the
/// schema are set aside. Blank lines are skipped.
pub fn read_ndjson(
    mut input: impl BufRead,
    file: &str,
    schema: &SchemaRef,
    batch_rows: usize,
    rejects: &SourceRejects,
    emit: &mut dyn FnMut(TolerantBatch) -> bool,
) -> Result<()> {
    let mut line_no = 0u64;
    let mut buf = Vec::new();
    loop {
        let mut chunk: Vec<(u64, Vec<u8>)> = Vec::with_capacity(batch_rows);
        let mut done = false;
        while chunk.len() < batch_rows {
            buf.clear();
            let n = input.read_until(b'\n', &mut buf).map_err(|e| read_error(file, Some(line_no + 1), e))?;
            if n == 0 {
                done = true;
                break;
            }
            line_no += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            chunk.push((line_no, buf.clone()));
        }
        if !chunk.is_empty() {
            let batch = decode_json_lines(&chunk, file, schema, rejects)?;
            if batch.batch.num_rows() > 0 && !emit(batch) {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

fn decode_json(lines: &[&[u8]], schema: &SchemaRef) -> std::result::Result<Option<RecordBatch>, String> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(lines.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for l in lines {
        let mut rest: &[u8] = l;
        while !rest.is_empty() {
            let used = decoder.decode(rest).map_err(|e| e.to_string())?;
            if used == 0 {
                break;
            }
            rest = &rest[used..];
        }
        // One record per line: a line that leaves a record open is malformed.
        if decoder.has_partial_record() {
            return Err("the line ends inside a JSON value".into());
        }
    }
    decoder.flush().map_err(|e| e.to_string())
}

fn decode_json_lines(
    chunk: &[(u64, Vec<u8>)],
    file: &str,
    schema: &SchemaRef,
    rejects: &SourceRejects,
) -> Result<TolerantBatch> {
    let all: Vec<&[u8]> = chunk.iter().map(|(_, l)| l.as_slice()).collect();
    if let Ok(Some(batch)) = decode_json(&all, schema) {
        if batch.num_rows() == chunk.len() {
            return Ok(TolerantBatch { batch, lines: chunk.iter().map(|(n, _)| *n).collect() });
        }
    }
    // Something in the chunk is bad: find it line by line.
    let mut pieces = Vec::new();
    let mut lines = Vec::new();
    for (n, l) in chunk {
        match decode_json(&[l.as_slice()], schema) {
            Ok(Some(b)) if b.num_rows() == 1 => {
                pieces.push(b);
                lines.push(*n);
            }
            Ok(_) => rejects.push(json_reject(file, *n, l, "the line holds no single JSON object".into())),
            Err(e) => rejects.push(json_reject(file, *n, l, e)),
        }
    }
    let batch = arrow::compute::concat_batches(schema, &pieces).map_err(|e| read_error(file, None, e))?;
    Ok(TolerantBatch { batch, lines: UInt64Array::from(lines) })
}

fn json_reject(file: &str, line: u64, text: &[u8], reason: String) -> SourceReject {
    let text = String::from_utf8_lossy(text).trim_end().to_string();
    SourceReject {
        file: file.to_string(),
        line,
        column: None,
        value: None,
        reason,
        record: serde_json::Value::from(text).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::{Field, Int64Type, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
        ]))
    }

    fn settings() -> CsvSettings {
        CsvSettings { has_header: true, delimiter: b',', quote: b'"', escape: None, comment: None, null_values: None }
    }

    #[test]
    fn csv_rows_that_do_not_fit_are_set_aside_with_line_and_reason() {
        let text = "id,amount,note\n1,2.5,a\n2,abc,b\n3,1.0\n4,4.0,\"multi\nline\"\n5,5.0,e\n";
        let rejects = SourceRejects::default();
        let mut out = Vec::new();
        read_csv(text.as_bytes(), "o.csv", &schema(), &settings(), 2, &rejects, &mut |b| {
            out.push(b);
            true
        })
        .unwrap();
        let ids: Vec<i64> =
            out.iter().flat_map(|b| b.batch.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
        assert_eq!(ids, [1, 4, 5]);
        let lines: Vec<u64> = out.iter().flat_map(|b| b.lines.values().to_vec()).collect();
        assert_eq!(lines, [2, 5, 7], "a quoted field spanning lines moves the next record's line");
        let r = rejects.drain();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].line, r[0].column.as_deref(), r[0].value.as_deref()), (3, Some("amount"), Some("abc")));
        assert!(r[0].reason.contains("not a valid Float64") && r[0].record.contains("\"amount\":\"abc\""), "{r:?}");
        assert_eq!((r[1].line, r[1].reason.as_str()), (4, "expected 3 fields, found 2"));
        assert_eq!(r[1].record, r#"["3","1.0"]"#);
    }

    #[test]
    fn ndjson_lines_that_do_not_parse_or_fit_are_set_aside() {
        let text = "{\"id\": 1, \"amount\": 2.5}\n{\"id\": \"x\"}\n\n{\"id\": 3\n{\"id\": 4, \"note\": \"d\"}\n";
        let rejects = SourceRejects::default();
        let mut out = Vec::new();
        read_ndjson(text.as_bytes(), "o.ndjson", &schema(), 10, &rejects, &mut |b| {
            out.push(b);
            true
        })
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].batch.column(0).as_primitive::<Int64Type>().values().to_vec(), [1, 4]);
        assert_eq!(out[0].lines.values().to_vec(), [1, 5]);
        let r = rejects.drain();
        assert_eq!(r.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 4], "{r:?}");
        assert!(out[0].batch.column(2).as_string::<i32>().value(1) == "d");
    }
}
