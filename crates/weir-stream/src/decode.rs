//! Message payloads (JSON objects, or Avro records framed as Confluent's Schema Registry or Avro's single-object
//! encoding) into Arrow batches of the stream's declared schema.
//!
//! A micro-batch is decoded in one call; when that fails, its messages are decoded one by one so that only the bad
//! ones go to the `invalid` output, each with its offset and the decoder's reason. Nothing is dropped silently.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::json::reader::{Decoder as JsonDecoder, ReaderBuilder as JsonReaderBuilder};
use arrow_avro::reader::ReaderBuilder as AvroReaderBuilder;
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};

use crate::config::StreamConfig;

/// The Arrow type of a declared field type.
pub fn arrow_type(name: &str) -> DataType {
    match name {
        "string" => DataType::Utf8,
        "long" | "int" => DataType::Int64,
        "double" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        "date" => DataType::Date32,
        _ => DataType::Utf8,
    }
}

/// The event schema declared by a stream.
pub fn event_schema(config: &StreamConfig) -> SchemaRef {
    Arc::new(Schema::new(config.schema.iter().map(|(n, t)| Field::new(n, arrow_type(t), true)).collect::<Vec<_>>()))
}

/// A message that could not be decoded.
#[derive(Debug, Clone)]
pub struct BadMessage {
    /// Index of the message in the micro-batch.
    pub index: usize,
    pub error: String,
}

pub enum Format {
    Json,
    Avro { store: SchemaStore, single_object: bool },
}

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::Avro { .. } => "avro",
        })
    }
}

/// Decodes payloads into batches of `schema`.
#[derive(Debug)]
pub struct PayloadDecoder {
    schema: SchemaRef,
    format: Format,
}

impl PayloadDecoder {
    pub fn json(schema: SchemaRef) -> PayloadDecoder {
        PayloadDecoder { schema, format: Format::Json }
    }

    /// An Avro decoder for messages written with `writer_schema` (the `.avsc` text).
    pub fn avro(schema: SchemaRef, writer_schema: &str, confluent_id: Option<u32>) -> Result<PayloadDecoder, String> {
        let avro = AvroSchema::new(writer_schema.to_string());
        let (store, single_object) = match confluent_id {
            Some(id) => {
                let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
                store.set(Fingerprint::Id(id), avro).map_err(|e| format!("avro schema: {e}"))?;
                (store, false)
            }
            None => {
                let mut store = SchemaStore::new();
                store.register(avro).map_err(|e| format!("avro schema: {e}"))?;
                (store, true)
            }
        };
        Ok(PayloadDecoder { schema, format: Format::Avro { store, single_object } })
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn json_decoder(&self, rows: usize) -> Result<JsonDecoder, String> {
        JsonReaderBuilder::new(self.schema.clone())
            .with_batch_size(rows.max(1))
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())
    }

    /// Decodes all of `payloads` (in order) or fails on the first bad one.
    fn decode_all(&self, payloads: &[&[u8]]) -> Result<RecordBatch, String> {
        match &self.format {
            Format::Json => {
                let mut decoder = self.json_decoder(payloads.len())?;
                for p in payloads {
                    let trimmed = p.trim_ascii();
                    if !trimmed.starts_with(b"{") {
                        return Err("not a JSON object".into());
                    }
                    decoder.decode(trimmed).map_err(|e| e.to_string())?;
                    // Each message is one whole value: a message cut short must not join the next one.
                    if decoder.has_partial_record() {
                        return Err("truncated JSON object".into());
                    }
                }
                let batch = decoder.flush().map_err(|e| e.to_string())?;
                let batch = batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema.clone()));
                if batch.num_rows() != payloads.len() {
                    return Err(format!("{} messages gave {} rows", payloads.len(), batch.num_rows()));
                }
                Ok(batch)
            }
            Format::Avro { store, .. } => {
                let mut decoder = AvroReaderBuilder::new()
                    .with_writer_schema_store(store.clone())
                    .with_batch_size(payloads.len().max(1))
                    .build_decoder()
                    .map_err(|e| e.to_string())?;
                for p in payloads {
                    let used = decoder.decode(p).map_err(|e| e.to_string())?;
                    if used != p.len() {
                        return Err(format!("avro record used {used} of {} bytes", p.len()));
                    }
                }
                let batch = decoder.flush().map_err(|e| e.to_string())?;
                let batch = batch.ok_or_else(|| "no avro record".to_string())?;
                self.conform(&batch)
            }
        }
    }

    /// Casts a decoded batch (Avro's own types) to the declared schema, by column name.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let n = batch.num_rows();
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| match batch.schema().index_of(f.name()) {
                Ok(i) => {
                    let c = batch.column(i);
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        let out = cast(c, f.data_type()).map_err(|e| format!("field `{}`: {e}", f.name()))?;
                        // A value that does not convert exactly (a string that is no number, 19.99 for an integer)
                        // makes the message invalid, with the reason, instead of becoming NULL or 19 unseen.
                        let exact = weir_engine::ops::converted_exactly(c, &out).map_err(|e| e.to_string())?;
                        match exact.iter().position(|e| !e) {
                            None => Ok(out),
                            Some(r) => Err(format!(
                                "field `{}`: {} does not convert exactly to {}",
                                f.name(),
                                arrow::util::display::array_value_to_string(c, r).unwrap_or_default(),
                                f.data_type()
                            )),
                        }
                    }
                }
                Err(_) => Ok(new_null_array(f.data_type(), n)),
            })
            .collect::<Result<Vec<ArrayRef>, String>>()?;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }

    /// Decodes a micro-batch: the good messages as one batch (`kept[i]` is the message index of row `i`) and the
    /// bad ones with their reasons.
    pub fn decode(&self, payloads: &[&[u8]]) -> (RecordBatch, Vec<usize>, Vec<BadMessage>) {
        if let Ok(batch) = self.decode_all(payloads) {
            return (batch, (0..payloads.len()).collect(), Vec::new());
        }
        let mut good = Vec::new();
        let mut kept = Vec::new();
        let mut bad = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            match self.decode_all(std::slice::from_ref(p)) {
                Ok(b) => {
                    good.push(b);
                    kept.push(i);
                }
                Err(error) => bad.push(BadMessage { index: i, error }),
            }
        }
        let batch = arrow::compute::concat_batches(&self.schema, &good)
            .unwrap_or_else(|_| RecordBatch::new_empty(self.schema.clone()));
        (batch, kept, bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, RecordBatch};
    use arrow::datatypes::{Float64Type, TimestampMillisecondType};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("ts", arrow_type("timestamp"), true),
        ]))
    }

    #[test]
    fn json_messages_decode_and_bad_ones_are_isolated() {
        let d = PayloadDecoder::json(schema());
        let msgs: Vec<&[u8]> = vec![
            br#"{"id":"a","amount":10.5,"ts":"2026-03-25T00:00:01Z","extra":1}"#,
            br#"{"id":"b","amount":"lots","ts":"2026-03-25T00:00:02Z"}"#,
            br#"{"id":"c","amount":3,"ts":1774396803000}"#,
            b"not json",
            br#"{"id":"d","amount":1"#,
        ];
        let (batch, kept, bad): (RecordBatch, _, _) = d.decode(&msgs);
        assert_eq!(kept, vec![0, 2]);
        assert_eq!(bad.iter().map(|b| b.index).collect::<Vec<_>>(), vec![1, 3, 4]);
        assert!(bad[0].error.contains("lots") || bad[0].error.to_lowercase().contains("amount"), "{:?}", bad[0]);
        assert_eq!(batch.column(1).as_primitive::<Float64Type>().values(), &[10.5, 3.0]);
        assert_eq!(batch.column(2).as_primitive::<TimestampMillisecondType>().value(1), 1_774_396_803_000);
    }

    #[test]
    fn an_avro_value_that_does_not_convert_exactly_makes_its_message_invalid() {
        use arrow_avro::schema::SCHEMA_METADATA_KEY;
        use arrow_avro::writer::format::AvroSoeFormat;
        use arrow_avro::writer::WriterBuilder;
        use std::collections::HashMap;
        let avsc = r#"{"type":"record","name":"P","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}"#;
        let arrow_schema = Schema::new_with_metadata(
            vec![Field::new("id", DataType::Utf8, false), Field::new("amount", DataType::Float64, false)],
            HashMap::from([(SCHEMA_METADATA_KEY.to_string(), avsc.to_string())]),
        );
        let mut store = SchemaStore::new();
        let fp = store.register(AvroSchema::new(avsc.to_string())).unwrap();
        let frame = |amount: f64| {
            let batch = RecordBatch::try_new(
                Arc::new(arrow_schema.clone()),
                vec![
                    Arc::new(arrow::array::StringArray::from(vec!["a"])),
                    Arc::new(arrow::array::Float64Array::from(vec![amount])),
                ],
            )
            .unwrap();
            let mut w = WriterBuilder::new(arrow_schema.clone())
                .with_fingerprint_strategy(fp.into())
                .build::<_, AvroSoeFormat>(Vec::new())
                .unwrap();
            w.write(&batch).unwrap();
            w.finish().unwrap();
            w.into_inner()
        };
        // The stream declares `amount` as an integer: 12.0 fits, 19.99 does not and must not become 19.
        let declared = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
        ]));
        let d = PayloadDecoder::avro(declared, avsc, None).unwrap();
        let (fits, lossy) = (frame(12.0), frame(19.99));
        let (out, kept, bad) = d.decode(&[&fits, &lossy]);
        assert_eq!(kept, vec![0]);
        assert_eq!(out.column(1).as_primitive::<arrow::datatypes::Int64Type>().value(0), 12);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].error.contains("19.99") && bad[0].error.contains("amount"), "{}", bad[0].error);
    }

    #[test]
    fn avro_single_object_and_confluent_frames_decode() {
        use arrow_avro::schema::SCHEMA_METADATA_KEY;
        use arrow_avro::writer::format::AvroSoeFormat;
        use arrow_avro::writer::WriterBuilder;
        use std::collections::HashMap;
        let avsc = r#"{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
        let arrow_schema = Schema::new_with_metadata(
            vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("amount", DataType::Float64, false),
                Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())), false),
            ],
            HashMap::from([(SCHEMA_METADATA_KEY.to_string(), avsc.to_string())]),
        );
        let batch = RecordBatch::try_new(
            Arc::new(arrow_schema.clone()),
            vec![
                Arc::new(arrow::array::StringArray::from(vec!["a"])),
                Arc::new(arrow::array::Float64Array::from(vec![12.5])),
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from(vec![1_774_396_800_000]).with_timezone("+00:00"),
                ),
            ],
        )
        .unwrap();
        let mut store = SchemaStore::new();
        let fp = store.register(AvroSchema::new(avsc.to_string())).unwrap();
        let mut w = WriterBuilder::new(arrow_schema.clone())
            .with_fingerprint_strategy(fp.into())
            .build::<_, AvroSoeFormat>(Vec::new())
            .unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let frame = w.into_inner();
        let d = PayloadDecoder::avro(schema(), avsc, None).unwrap();
        let (out, kept, bad) = d.decode(&[&frame, b"\x01garbage"]);
        assert_eq!((kept, bad.len()), (vec![0], 1));
        assert_eq!(out.column(1).as_primitive::<Float64Type>().value(0), 12.5);
        assert_eq!(out.column(2).as_primitive::<TimestampMillisecondType>().value(0), 1_774_396_800_000);
    }
}
