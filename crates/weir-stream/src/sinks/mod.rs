//! Where decisions go, and what each destination guarantees.
//!
//! Every micro-batch's outputs are written to their sinks, then committed: Delta and PostgreSQL sinks commit rows
//! together with the next offset of each partition they hold (an application transaction in the Delta log, a row of
//! `weir_stream_offsets` in the same PostgreSQL transaction), so after a crash a replay skips rows they already have.
//! Kafka sinks share one producer: with `delivery: exactly_once` it is transactional, and the consumed offsets are
//! committed in the same transaction as the produced alerts; with `at_least_once` it flushes and checks every
//! delivery before the source commits. Webhooks and files are at-least-once: a replay may repeat the last batch.
//!
//! A sink skips the rows of a partition below its *threshold*: the offset up to which it already holds the outputs
//! (its own recorded position for Delta and PostgreSQL, the source's committed offset for the others).
//!
//! Commits are fenced: Delta and PostgreSQL move a partition's offset only from where this process last saw it, and
//! the Kafka transaction carries the group's generation. A process that lost its partitions while a batch was in
//! flight (a rebalance, a stall past `max.poll.interval.ms`) gets a *fenced* error (`crate::fenced`) instead of
//! writing rows the new owner has written already; the stream then drops the batch and rebuilds its partitions.

pub mod delta;
pub mod file;
pub mod kafka;
pub mod postgres;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use weir_core::Result;

use crate::config::{OutputKind, SinkConfig, StreamConfig};
use crate::env::StreamEnv;
use crate::processor::PartitionId;
use crate::sources::kafka::Consumer;

enum SinkImpl {
    /// A route of the shared Kafka producer.
    Kafka(usize),
    Delta(delta::DeltaSink),
    Postgres(postgres::PostgresSink),
    Webhook(webhook::WebhookSink),
    File(file::FileSink),
}

struct Target {
    kind: OutputKind,
    describe: String,
    sink: SinkImpl,
    /// Rows of a partition with an offset below this were delivered already.
    threshold: HashMap<PartitionId, i64>,
    rows: u64,
}

/// Every sink of a stream.
pub struct Sinks {
    kafka: Option<kafka::KafkaOutput>,
    targets: Vec<Target>,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.targets.iter().map(|t| (&t.describe, t.kind.as_str()))).finish()
    }
}

impl Sinks {
    /// Connects every sink. `instance` tells processes of one stream apart (the Kafka transactional id).
    pub async fn build(config: &StreamConfig, env: &StreamEnv, instance: &str) -> Result<Sinks> {
        let mut targets = Vec::new();
        let mut kafka_routes = Vec::new();
        let exactly_once = config.delivery == crate::config::Delivery::ExactlyOnce;
        for (kind, sink) in config.outputs.all() {
            let describe = format!("{} -> {}", kind.as_str(), sink.describe());
            let built = match sink {
                SinkConfig::Kafka(k) => {
                    kafka_routes.push((kind, k.clone()));
                    SinkImpl::Kafka(kafka_routes.len() - 1)
                }
                SinkConfig::Delta { table, .. } => {
                    SinkImpl::Delta(delta::DeltaSink::open(env, &config.name, kind, table)?)
                }
                SinkConfig::Postgres { url, connection, table, .. } => {
                    let url = env.connection_url(url.as_deref(), connection.as_deref())?;
                    SinkImpl::Postgres(postgres::PostgresSink::connect(&url, &config.name, kind, table).await?)
                }
                SinkConfig::Webhook(w) => SinkImpl::Webhook(webhook::WebhookSink::new(w)?),
                SinkConfig::Ndjson { path, .. } => SinkImpl::File(file::FileSink::open(Some(&config.relative(path)))?),
                SinkConfig::Stdout => SinkImpl::File(file::FileSink::open(None)?),
            };
            targets.push(Target { kind, describe, sink: built, threshold: HashMap::new(), rows: 0 });
        }
        let kafka = if kafka_routes.is_empty() {
            None
        } else {
            let (brokers, group) = match &config.source {
                crate::config::SourceConfig::Kafka(k) => (Some(k.brokers.as_str()), Some(k.group.as_str())),
                _ => (None, None),
            };
            Some(kafka::KafkaOutput::open(&config.name, group, instance, brokers, kafka_routes, exactly_once)?)
        };
        Ok(Sinks { kafka, targets })
    }

    /// Whether a transactional Kafka producer commits the consumed offsets (exactly-once with a Kafka sink).
    pub fn transactional(&self) -> bool {
        self.kafka.as_ref().is_some_and(|k| k.transactional())
    }

    /// Sets each sink's threshold for a newly assigned partition.
    pub async fn assign(&mut self, partition: &PartitionId, committed: Option<i64>) -> Result<()> {
        for t in &mut self.targets {
            let own = match &mut t.sink {
                SinkImpl::Delta(d) => d.position(partition).await?,
                SinkImpl::Postgres(p) => p.position(partition).await?,
                _ => None,
            };
            let threshold = match (&t.sink, own) {
                (SinkImpl::Delta(_) | SinkImpl::Postgres(_), own) => own.unwrap_or(-1),
                _ => committed.unwrap_or(-1),
            };
            t.threshold.insert(partition.clone(), threshold);
        }
        Ok(())
    }

    pub fn revoke(&mut self, partition: &PartitionId) {
        for t in &mut self.targets {
            t.threshold.remove(partition);
            match &mut t.sink {
                SinkImpl::Delta(d) => d.revoke(partition),
                SinkImpl::Postgres(p) => p.revoke(partition),
                _ => {}
            }
        }
    }

    /// Drops what was written since the last commit (the batch failed): buffered rows, the open Kafka transaction.
    pub fn abort(&mut self) {
        for t in &mut self.targets {
            match &mut t.sink {
                SinkImpl::Delta(d) => d.abort(),
                SinkImpl::Postgres(p) => p.abort(),
                _ => {}
            }
        }
        if let Some(k) = &mut self.kafka {
            k.abort_open();
        }
    }

    pub fn has(&self, kind: OutputKind) -> bool {
        self.targets.iter().any(|t| t.kind == kind)
    }

    /// Hands one partition's rows of an output (with `_offset`, ascending) to every sink of that output.
    pub fn write(&mut self, kind: OutputKind, partition: &PartitionId, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let offsets = batch
            .column_by_name("_offset")
            .map(|c| c.as_primitive::<Int64Type>().clone())
            .expect("every output carries _offset");
        for t in self.targets.iter_mut().filter(|t| t.kind == kind) {
            let threshold = t.threshold.get(partition).copied().unwrap_or(-1);
            let first = offsets.values().partition_point(|&o| o < threshold);
            if first == batch.num_rows() {
                continue;
            }
            let rows = batch.slice(first, batch.num_rows() - first);
            t.rows += rows.num_rows() as u64;
            match &mut t.sink {
                SinkImpl::Kafka(route) => {
                    self.kafka.as_mut().expect("kafka routes have a producer").write(*route, &rows)?
                }
                SinkImpl::Delta(d) => d.write(partition, rows),
                SinkImpl::Postgres(p) => p.write(partition, rows),
                SinkImpl::Webhook(w) => w.write(rows),
                SinkImpl::File(f) => f.write(&rows)?,
            }
        }
        Ok(())
    }

    /// Makes the batch durable in every sink; with a transactional producer, also commits `next` (the offsets).
    /// `batch` counts the stream's batches (for the crash tests' failpoint between the sinks' commits).
    pub async fn commit(
        &mut self,
        next: &BTreeMap<PartitionId, i64>,
        consumer: Option<&Consumer>,
        batch: u64,
    ) -> Result<()> {
        for t in &mut self.targets {
            match &mut t.sink {
                SinkImpl::Kafka(_) => {}
                SinkImpl::Delta(d) => d.commit(next).await?,
                SinkImpl::Postgres(p) => p.commit(next).await?,
                SinkImpl::Webhook(w) => w.commit().await?,
                SinkImpl::File(f) => f.commit()?,
            }
        }
        if let Some(k) = &mut self.kafka {
            weir_core::failpoint::hit_at("stream_between_sink_commits", batch);
            k.commit(next, consumer)?;
        }
        Ok(())
    }

    /// Rows written per sink so far (for the summary).
    pub fn written(&self) -> Vec<(String, u64)> {
        self.targets.iter().map(|t| (t.describe.clone(), t.rows)).collect()
    }
}
