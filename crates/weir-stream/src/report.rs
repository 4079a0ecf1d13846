//! The feedback loop: analyst labels (confirmed fraud, chargebacks, false positives) joined with the alerts a stream
//! raised, into precision and recall per rule, printed and appended to a lake table so rules can be tuned on facts.
//!
//! Labels are JSON objects with the event's id and a label, from a Kafka topic or an NDJSON file:
//! `fraud`, `chargeback` and `confirmed_fraud` are positives; `false_positive`, `legit` and `genuine` negatives.
//! Alerts are read from the stream's Delta output (`alerts`, or `decisions` filtered to non-approve decisions).
//!
//! For each rule: *flagged* events it matched; *true positives* among them labelled positive; *false positives*
//! labelled negative; *unlabelled* the rest; precision = TP / (TP + FP); recall = TP / every positive label.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use weir_core::{Error, Result};
use weir_lake::delta::{DeltaTableWriter, DeltaWriteOptions};
use weir_lake::{TableName, WriteMode};

use crate::config::{LabelsFrom, OutputKind, SinkConfig, SourceConfig, StreamConfig};
use crate::env::StreamEnv;

const POSITIVE: &[&str] = &["fraud", "chargeback", "confirmed_fraud"];
const NEGATIVE: &[&str] = &["false_positive", "legit", "genuine"];

#[derive(Debug, Clone, PartialEq)]
pub struct RuleQuality {
    /// A rule name, or `(any rule)` for every alert.
    pub rule: String,
    pub flagged: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub unlabelled: u64,
    /// Positive labels in all.
    pub positives: u64,
}

impl RuleQuality {
    pub fn precision(&self) -> Option<f64> {
        let judged = self.true_positives + self.false_positives;
        (judged > 0).then(|| self.true_positives as f64 / judged as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        (self.positives > 0).then(|| self.true_positives as f64 / self.positives as f64)
    }
}

/// Precision and recall of every rule from alerts (`id`, comma-separated matched rules) and labels (`id`, label).
pub fn evaluate(rules: &[String], alerts: &[(String, String)], labels: &[(String, String)]) -> Vec<RuleQuality> {
    let mut truth: HashMap<&str, bool> = HashMap::new();
    for (id, label) in labels {
        let l = label.to_ascii_lowercase();
        if POSITIVE.contains(&l.as_str()) {
            truth.insert(id, true);
        } else if NEGATIVE.contains(&l.as_str()) {
            // A later positive label (a chargeback after "legit") wins.
            truth.entry(id).or_insert(false);
        }
    }
    let positives = truth.values().filter(|p| **p).count() as u64;
    let mut names: Vec<String> = rules.to_vec();
    names.push("(any rule)".into());
    names
        .into_iter()
        .map(|rule| {
            let flagged: HashSet<&str> = alerts
                .iter()
                .filter(|(_, m)| rule == "(any rule)" || m.split(',').any(|r| r == rule))
                .map(|(id, _)| id.as_str())
                .collect();
            let mut q = RuleQuality {
                rule,
                flagged: flagged.len() as u64,
                true_positives: 0,
                false_positives: 0,
                unlabelled: 0,
                positives,
            };
            for id in flagged {
                match truth.get(id) {
                    Some(true) => q.true_positives += 1,
                    Some(false) => q.false_positives += 1,
                    None => q.unlabelled += 1,
                }
            }
            q
        })
        .collect()
}

fn read_labels(config: &StreamConfig, labels: &LabelsFrom, id: &str, label: &str) -> Result<Vec<(String, String)>> {
    let lines: Vec<Vec<u8>> = match labels {
        LabelsFrom::Ndjson { path } => {
            crate::sources::ndjson::read_lines(&config.relative(path))?.into_iter().map(String::into_bytes).collect()
        }
        LabelsFrom::Kafka { topic } => {
            let brokers = match &config.source {
                SourceConfig::Kafka(k) => k.brokers.clone(),
                _ => {
                    return Err(Error::config(
                        Default::default(),
                        "labels from a Kafka topic need a Kafka source (its brokers)",
                    ))
                }
            };
            crate::sinks::kafka::read_topic(&brokers, topic, true, std::time::Duration::from_secs(60))?
        }
    };
    let mut out = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| Error::data(Default::default(), format!("label {}: not JSON: {e}", n + 1)))?;
        let text = |k: &str| match v.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        match (text(id), text(label)) {
            (Some(i), Some(l)) => out.push((i, l)),
            _ => return Err(Error::data(Default::default(), format!("label {}: needs `{id}` and `{label}`", n + 1))),
        }
    }
    Ok(out)
}

/// The stream's alerts (`id`, matched rules) from its Delta output.
async fn read_alerts(config: &StreamConfig, env: &StreamEnv, id: &str) -> Result<Vec<(String, String)>> {
    let table = config
        .outputs
        .all()
        .filter(|(k, _)| matches!(k, OutputKind::Alerts | OutputKind::Decisions))
        .find_map(|(k, s)| match s {
            SinkConfig::Delta { table, .. } => Some((k, table.clone())),
            _ => None,
        })
        .ok_or_else(|| {
            Error::config(Default::default(), "the feedback report reads alerts from a Delta output: add `{type: delta, table: ...}` to outputs.alerts")
        })?;
    let engine = weir_engine::Engine::new(&env.lake)?;
    engine.register_lake().await?;
    let sql = format!("SELECT CAST({id} AS VARCHAR) AS id, matched_rules FROM {} WHERE decision <> 'approve'", table.1);
    let batches = engine.sql_collect(&sql, "alerts").await?;
    let mut out = Vec::new();
    for b in batches {
        let ids = cast(b.column(0), &DataType::Utf8).map_err(|e| Error::engine("alerts", e))?;
        let ids = ids.as_string::<i32>();
        let rules = cast(b.column(1), &DataType::Utf8).map_err(|e| Error::engine("alerts", e))?;
        let rules = rules.as_string::<i32>();
        for i in 0..b.num_rows() {
            if ids.is_valid(i) {
                out.push((ids.value(i).to_string(), rules.value(i).to_string()));
            }
        }
    }
    Ok(out)
}

/// Reads labels and alerts, evaluates every rule, and appends the result to `streams.<stream>_rule_quality`.
pub async fn report(
    config: &StreamConfig,
    env: &StreamEnv,
    labels_file: Option<&std::path::Path>,
) -> Result<Vec<RuleQuality>> {
    let (labels_from, id, label) = match (&config.feedback, labels_file) {
        (_, Some(path)) => {
            let f = config.feedback.as_ref();
            (
                LabelsFrom::Ndjson { path: path.to_string_lossy().to_string() },
                f.map(|f| f.id.clone()).unwrap_or_else(|| "transaction_id".into()),
                f.map(|f| f.label.clone()).unwrap_or_else(|| "label".into()),
            )
        }
        (Some(f), None) => (f.labels.clone(), f.id.clone(), f.label.clone()),
        (None, None) => {
            return Err(Error::config(
                Default::default(),
                "the stream has no `feedback:` (labels topic or file); give --labels FILE",
            ))
        }
    };
    let labels = {
        let config = config.clone();
        let (id, label) = (id.clone(), label.clone());
        tokio::task::spawn_blocking(move || read_labels(&config, &labels_from, &id, &label))
            .await
            .map_err(|e| Error::engine("labels", e))??
    };
    let alerts = read_alerts(config, env, &id).await?;
    let rules: Vec<String> = config.rules.iter().map(|r| r.name.clone()).collect();
    let result = evaluate(&rules, &alerts, &labels);
    store(config, env, &result).await?;
    Ok(result)
}

async fn store(config: &StreamConfig, env: &StreamEnv, result: &[RuleQuality]) -> Result<()> {
    let name = TableName::parse(&format!("streams.{}_rule_quality", config.name.replace('-', "_")))
        .map_err(|e| Error::config(Default::default(), e))?;
    let n = result.len();
    let now = chrono::Utc::now().timestamp_millis();
    let schema = Arc::new(Schema::new(vec![
        Field::new("stream", DataType::Utf8, false),
        Field::new("evaluated_at", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("rule", DataType::Utf8, false),
        Field::new("flagged", DataType::Int64, false),
        Field::new("true_positives", DataType::Int64, false),
        Field::new("false_positives", DataType::Int64, false),
        Field::new("unlabelled", DataType::Int64, false),
        Field::new("positives", DataType::Int64, false),
        Field::new("precision", DataType::Float64, true),
        Field::new("recall", DataType::Float64, true),
    ]));
    let int = |f: fn(&RuleQuality) -> u64| {
        Arc::new(Int64Array::from(result.iter().map(|q| f(q) as i64).collect::<Vec<_>>())) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![config.name.as_str(); n])),
        Arc::new(TimestampMillisecondArray::from(vec![now; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(result.iter().map(|q| q.rule.as_str()).collect::<Vec<_>>())),
        int(|q| q.flagged),
        int(|q| q.true_positives),
        int(|q| q.false_positives),
        int(|q| q.unlabelled),
        int(|q| q.positives),
        Arc::new(Float64Array::from(result.iter().map(|q| q.precision()).collect::<Vec<_>>())),
        Arc::new(Float64Array::from(result.iter().map(|q| q.recall()).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::engine("rule quality", e))?;
    let options = DeltaWriteOptions {
        mode: WriteMode::Append,
        partition_by: Vec::new(),
        static_partition: Vec::new(),
        compression: parquet::basic::Compression::SNAPPY,
        row_group_rows: 1 << 16,
        target_file_size: 64 << 20,
        app_id: format!("weir-stream/{}/rule-quality/{now}", config.name),
        replace_interval: false,
        keys: Vec::new(),
        delete_when: None,
        scd2_as_of: None,
        commit_info: Vec::new(),
    };
    let mut writer = DeltaTableWriter::open(&env.lake.table(&name), &schema, options).await?;
    writer.write(&batch).await?;
    writer.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_and_recall_per_rule() {
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let alerts = vec![s("1", "big,fast"), s("2", "fast"), s("3", "fast"), s("9", "big")];
        let labels = vec![
            s("1", "fraud"),
            s("2", "false_positive"),
            s("4", "chargeback"),
            s("3", "legit"),
            s("3", "chargeback"),
        ];
        let q = evaluate(&["big".into(), "fast".into()], &alerts, &labels);
        // Positives: 1, 4 and 3 (a chargeback beats an earlier "legit").
        assert_eq!(
            q[0],
            RuleQuality {
                rule: "big".into(),
                flagged: 2,
                true_positives: 1,
                false_positives: 0,
                unlabelled: 1,
                positives: 3
            }
        );
        assert_eq!((q[1].true_positives, q[1].false_positives), (2, 1));
        assert_eq!(q[1].precision(), Some(2.0 / 3.0));
        assert_eq!(q[2].recall(), Some(2.0 / 3.0));
    }
}
