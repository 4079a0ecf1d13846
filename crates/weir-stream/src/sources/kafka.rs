//! `type: kafka` source, through librdkafka (crate `rdkafka`): a consumer in a group, so several `weir stream`
//! processes with the same `group` split the partitions.
//!
//! ```yaml
//! source:
//!   type: kafka
//!   brokers: "127.0.0.1:9092"
//!   topics: [payments]
//!   group: fraud-detectors
//!   start: earliest                  # a partition with no committed offset and no checkpoint
//!   options: {security.protocol: SASL_SSL, sasl.mechanisms: PLAIN, sasl.username: weir, sasl.password: "${env:KAFKA_PASSWORD}"}
//! ```
//!
//! Offsets are never committed automatically: the runtime commits a partition's next offset only after every sink
//! acknowledged the outputs before it (or a Kafka sink commits it inside its transaction). When the group assigns a
//! partition, the consumer starts it at its last checkpoint (window state and offset saved together) and hands the
//! restored state to the runtime, which replays up to the committed offset without writing again what the sinks
//! already hold. A revoked partition's state is dropped here and rebuilt the same way by its next owner.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use weir_core::{Error, Result};

use super::{Assigned, Chunk, EventSource, Payloads, Polled};
use crate::checkpoint::{plan_start, Checkpoints, StartAt};
use crate::config::KafkaSourceConfig;
use crate::processor::PartitionId;

pub type Consumer = BaseConsumer<StreamContext>;

#[derive(Debug, Default)]
struct RebalanceEvents {
    assigned: Vec<Assigned>,
    revoked: Vec<PartitionId>,
    error: Option<String>,
}

/// Callbacks of the consumer: rebalances (restore and seek) and statistics (lag).
pub struct StreamContext {
    checkpoints: Arc<Checkpoints>,
    runtime: tokio::runtime::Handle,
    events: Mutex<RebalanceEvents>,
    lag: Mutex<BTreeMap<PartitionId, i64>>,
    /// Where a partition with neither a committed offset nor a checkpoint starts.
    default_start: Offset,
}

impl ClientContext for StreamContext {
    fn stats(&self, statistics: Statistics) {
        let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        for (topic, t) in statistics.topics {
            for (p, part) in t.partitions {
                if p >= 0 && part.consumer_lag >= 0 {
                    lag.insert(PartitionId { topic: topic.as_str().into(), partition: p }, part.consumer_lag);
                }
            }
        }
    }
}

impl StreamContext {
    /// Where each partition of `tpl` starts (its checkpoint and committed offset), set into `tpl`; the restored
    /// state goes to the runtime with the next poll.
    fn plan(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> std::result::Result<(), String> {
        let committed = consumer.committed_offsets(tpl.clone(), Duration::from_secs(30)).map_err(|e| e.to_string())?;
        let mut assigned = Vec::new();
        for e in tpl.elements() {
            let p = PartitionId { topic: e.topic().into(), partition: e.partition() };
            let c = committed.find_partition(e.topic(), e.partition()).and_then(|x| match x.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            let restored = self.runtime.block_on(self.checkpoints.load(&p)).map_err(|e| e.to_string())?;
            let (start, state) = plan_start(restored, c);
            tracing::info!(partition = %p, committed = ?c, start = ?start, restored = state.is_some(), "partition assigned");
            assigned.push((p, c, start, state));
        }
        for (p, _, start, _) in &assigned {
            let offset = match start {
                StartAt::Offset(o) => Offset::Offset(*o),
                StartAt::Beginning => Offset::Beginning,
                StartAt::Default => self.default_start,
            };
            tpl.set_partition_offset(&p.topic, p.partition, offset).map_err(|e| e.to_string())?;
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        for (partition, committed, _, state) in assigned {
            events.assigned.push(Assigned { partition, committed, state });
        }
        Ok(())
    }

    fn on_assign(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
    ) -> std::result::Result<(), String> {
        self.plan(consumer, tpl)?;
        consumer.assign(tpl).map_err(|e| e.to_string())
    }
}

impl ConsumerContext for StreamContext {
    fn commit_callback(&self, result: rdkafka::error::KafkaResult<()>, _: &TopicPartitionList) {
        if let Err(e) = result {
            // At-least-once: the next commit (or the next owner's replay) covers it; `settle` fails on a lasting one.
            tracing::warn!(error = %e, "kafka offset commit (not waited for) failed");
        }
    }

    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = self.on_assign(consumer, tpl) {
                    self.events.lock().unwrap_or_else(|p| p.into_inner()).error =
                        Some(format!("partition assignment: {e}"));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<PartitionId> = tpl
                    .elements()
                    .iter()
                    .map(|e| PartitionId { topic: e.topic().into(), partition: e.partition() })
                    .collect();
                tracing::info!(partitions = ?revoked.iter().map(|p| p.to_string()).collect::<Vec<_>>(), "partitions revoked");
                self.events.lock().unwrap_or_else(|p| p.into_inner()).revoked.extend(revoked);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassign failed");
                }
            }
        }
    }
}

fn offsets(next: &BTreeMap<PartitionId, i64>) -> Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in next {
        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*o))
            .map_err(|e| kafka_error("kafka commit", e))?;
    }
    Ok(tpl)
}

/// Errors that say this consumer is no longer the group's member it was (a rebalance moved its partitions).
fn lost_the_group(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId
    )
}

/// librdkafka properties (and the brokers) with `${env:...}` resolved; errors name the property, never its value.
pub fn client_config(brokers: &str, options: &BTreeMap<String, String>) -> Result<ClientConfig> {
    let mut c = ClientConfig::new();
    let brokers = weir_config::project::resolve_env(brokers)
        .map_err(|e| Error::config(Default::default(), format!("kafka brokers: {e}")))?;
    c.set("bootstrap.servers", brokers);
    for (k, v) in options {
        let v = weir_config::project::resolve_env(v)
            .map_err(|e| Error::config(Default::default(), format!("kafka option `{k}`: {e}")))?;
        c.set(k, v);
    }
    Ok(c)
}

pub fn kafka_error(what: &str, e: KafkaError) -> Error {
    Error::external(what.to_string(), e.to_string())
}

pub struct KafkaSource {
    consumer: Consumer,
    config: KafkaSourceConfig,
    /// Offsets committed without waiting since the last `settle`.
    unsettled: BTreeMap<PartitionId, i64>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").field("topics", &self.config.topics).field("group", &self.config.group).finish()
    }
}

impl KafkaSource {
    pub fn open(
        config: &KafkaSourceConfig,
        checkpoints: Arc<Checkpoints>,
        runtime: tokio::runtime::Handle,
    ) -> Result<KafkaSource> {
        let mut c = client_config(&config.brokers, &BTreeMap::new())?;
        c.set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", &config.start)
            .set("isolation.level", "read_committed")
            .set("statistics.interval.ms", "1000")
            .set("fetch.wait.max.ms", "50")
            // librdkafka waits this long before fetching again for a partition whose local queue was full (1 s by
            // default): a stream that drains its queue in a few batches then sat idle most of each second
            // (128,000 events/s end to end on the benchmark; 315,000 with 10 ms).
            .set("fetch.queue.backoff.ms", "10")
            .set("session.timeout.ms", "10000")
            .set("partition.assignment.strategy", "range,roundrobin");
        // The stream file's options come last: they may override any of the above.
        for (k, v) in client_config(&config.brokers, &config.options)?.config_map() {
            c.set(k, v);
        }
        let context = StreamContext {
            checkpoints,
            runtime,
            events: Mutex::new(RebalanceEvents::default()),
            lag: Mutex::new(BTreeMap::new()),
            default_start: if config.start == "latest" { Offset::End } else { Offset::Beginning },
        };
        let consumer: Consumer = c.create_with_context(context).map_err(|e| kafka_error("kafka consumer", e))?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).map_err(|e| kafka_error("kafka subscribe", e))?;
        Ok(KafkaSource { consumer, config: config.clone(), unsettled: BTreeMap::new() })
    }

    fn take_events(&self, polled: &mut Polled, building: &mut BTreeMap<PartitionId, Chunk>) -> Result<()> {
        let mut events = self.consumer.context().events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = events.error.take() {
            return Err(Error::external("kafka", e));
        }
        for p in events.revoked.drain(..) {
            // Messages of a lost partition are left to its next owner (nothing of them was committed).
            building.remove(&p);
            polled.chunks.retain(|c| c.partition != p);
            // Assigned and lost within one poll: the runtime must not install it after removing it.
            polled.assigned.retain(|a| a.partition != p);
            polled.revoked.push(p);
        }
        polled.assigned.append(&mut events.assigned);
        Ok(())
    }
}

impl EventSource for KafkaSource {
    fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled> {
        let mut polled = Polled::default();
        let mut building: BTreeMap<PartitionId, Chunk> = BTreeMap::new();
        let deadline = Instant::now() + wait;
        let mut count = 0;
        while count < max {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.consumer.poll(left);
            self.take_events(&mut polled, &mut building)?;
            match message {
                None => {
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                Some(Err(e)) => {
                    // Transient broker errors are retried by librdkafka; report and carry on.
                    tracing::warn!(error = %e, "kafka consumer");
                    if Instant::now() >= deadline {
                        break;
                    }
                }
                Some(Ok(m)) => {
                    let p = PartitionId { topic: m.topic().into(), partition: m.partition() };
                    let chunk = building.entry(p.clone()).or_insert_with(|| Chunk {
                        partition: p,
                        offsets: Vec::new(),
                        produced_ms: Vec::new(),
                        payloads: Payloads::Raw { data: Vec::new(), bounds: Vec::new() },
                    });
                    chunk.offsets.push(m.offset());
                    chunk
                        .produced_ms
                        .push(m.timestamp().to_millis().unwrap_or_else(|| chrono::Utc::now().timestamp_millis()));
                    if let Payloads::Raw { data, bounds } = &mut chunk.payloads {
                        let start = data.len();
                        data.extend_from_slice(m.payload().unwrap_or_default());
                        bounds.push((start, data.len()));
                    }
                    count += 1;
                }
            }
        }
        polled.chunks.extend(building.into_values());
        Ok(polled)
    }

    /// Sends the commit without waiting for it (a synchronous commit took 8.5 ms of each 60 ms batch on the
    /// benchmark); `settle` commits the same offsets synchronously before a checkpoint. A commit lost in between
    /// (a crash, a rebalance) only makes the next owner replay from the previous one: at-least-once.
    fn commit(&mut self, next: &BTreeMap<PartitionId, i64>) -> Result<()> {
        if next.is_empty() {
            return Ok(());
        }
        let tpl = offsets(next)?;
        self.unsettled.extend(next.iter().map(|(p, o)| (p.clone(), *o)));
        self.consumer.commit(&tpl, CommitMode::Async).map_err(|e| kafka_error("kafka offset commit", e))
    }

    fn settle(&mut self) -> Result<()> {
        if self.unsettled.is_empty() {
            return Ok(());
        }
        // Only partitions still held: a revoked one belongs to its next owner.
        let held = self.consumer.assignment().map_err(|e| kafka_error("kafka assignment", e))?;
        let unsettled = std::mem::take(&mut self.unsettled);
        let next: BTreeMap<PartitionId, i64> =
            unsettled.into_iter().filter(|(p, _)| held.find_partition(&p.topic, p.partition).is_some()).collect();
        if next.is_empty() {
            return Ok(());
        }
        let tpl = offsets(&next)?;
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => Ok(()),
            // The group moved on while the batch was in flight: its new owner starts from the last commit.
            Err(e) if e.rdkafka_error_code().is_some_and(lost_the_group) => {
                Err(crate::fenced::error("kafka offset commit", e))
            }
            Err(e) => Err(kafka_error("kafka offset commit", e)),
        }
    }

    fn rewind(&mut self) -> Result<bool> {
        let mut tpl = self.consumer.assignment().map_err(|e| kafka_error("kafka assignment", e))?;
        if tpl.count() == 0 {
            return Ok(true);
        }
        let revoked: Vec<PartitionId> =
            tpl.elements().iter().map(|e| PartitionId { topic: e.topic().into(), partition: e.partition() }).collect();
        self.consumer.context().events.lock().unwrap_or_else(|p| p.into_inner()).revoked.extend(revoked);
        self.consumer.context().plan(&self.consumer, &mut tpl).map_err(|e| Error::external("kafka rewind", e))?;
        self.consumer.seek_partitions(tpl, Duration::from_secs(30)).map_err(|e| kafka_error("kafka seek", e))?;
        Ok(true)
    }

    fn kafka_consumer(&self) -> Option<&Consumer> {
        Some(&self.consumer)
    }

    fn lag(&self) -> Vec<(PartitionId, i64)> {
        let lag = self.consumer.context().lag.lock().unwrap_or_else(|p| p.into_inner());
        lag.iter().map(|(p, l)| (p.clone(), *l)).collect()
    }
}
