//! `type: kafka` sink: decisions or alerts as JSON messages on a topic. All Kafka sinks of a stream share one
//! producer, so with `delivery: exactly_once` one transaction holds a micro-batch's messages on every topic *and*
//! the consumer's offsets (`send_offsets_to_transaction`): either all become visible to `read_committed` readers,
//! or none, and a restarted stream fences the unfinished transaction of its previous life (same transactional id).
//!
//! ```yaml
//! outputs:
//!   alerts: [{type: kafka, topic: fraud-alerts, key: card_id}]
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use weir_core::{Error, Result};

use crate::config::{KafkaSinkConfig, OutputKind};
use crate::processor::PartitionId;
use crate::sources::kafka::{client_config, kafka_error, Consumer};

/// Counts failed deliveries (librdkafka reports them from its own thread).
#[derive(Default)]
pub struct DeliveryContext {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
    }
}

struct Route {
    topic: String,
    key: Option<String>,
}

pub struct KafkaOutput {
    producer: ThreadedProducer<DeliveryContext>,
    routes: Vec<Route>,
    transactional: bool,
    in_transaction: bool,
    lines: Vec<u8>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl KafkaOutput {
    pub fn open(
        stream: &str,
        group: Option<&str>,
        instance: &str,
        source_brokers: Option<&str>,
        routes: Vec<(OutputKind, KafkaSinkConfig)>,
        transactional: bool,
    ) -> Result<KafkaOutput> {
        let first = &routes[0].1;
        let brokers = first.brokers.as_deref().or(source_brokers).ok_or_else(|| {
            Error::config(
                Default::default(),
                format!("kafka sink `{}` needs `brokers` (the source is not Kafka)", first.topic),
            )
        })?;
        if routes.iter().any(|(_, r)| r.brokers.as_deref().is_some_and(|b| b != brokers)) {
            return Err(Error::config(Default::default(), "every kafka sink of a stream writes to the same cluster"));
        }
        // Defaults first, the stream file's options after (they may change any of them), idempotence last: the
        // commit waits for every delivery right away, so a long linger would only add to each batch's latency.
        let mut c = client_config(brokers, &BTreeMap::new())?;
        c.set("linger.ms", "1").set("compression.type", "lz4");
        for (k, v) in client_config(brokers, &first.options)?.config_map() {
            c.set(k, v);
        }
        c.set("enable.idempotence", "true");
        if transactional {
            c.set("transactional.id", transactional_id(stream, group, instance));
            c.set("transaction.timeout.ms", "60000");
        }
        let producer: ThreadedProducer<DeliveryContext> =
            c.create_with_context(DeliveryContext::default()).map_err(|e| kafka_error("kafka producer", e))?;
        if transactional {
            // Fences a previous process with the same id and aborts its unfinished transaction.
            producer.init_transactions(TIMEOUT).map_err(|e| kafka_error("kafka init_transactions", e))?;
        }
        let routes = routes.into_iter().map(|(_, r)| Route { topic: r.topic, key: r.key }).collect();
        Ok(KafkaOutput { producer, routes, transactional, in_transaction: false, lines: Vec::new() })
    }

    pub fn transactional(&self) -> bool {
        self.transactional
    }

    fn begin(&mut self) -> Result<()> {
        if self.transactional && !self.in_transaction {
            self.producer.begin_transaction().map_err(|e| kafka_error("kafka begin_transaction", e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    pub fn write(&mut self, route: usize, batch: &RecordBatch) -> Result<()> {
        self.begin()?;
        self.lines.clear();
        {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut self.lines);
            w.write(batch).map_err(|e| Error::engine("kafka sink json", e))?;
            w.finish().map_err(|e| Error::engine("kafka sink json", e))?;
        }
        let route = &self.routes[route];
        let keys = match &route.key {
            Some(k) => {
                let col = batch.column_by_name(k).ok_or_else(|| {
                    Error::config(
                        Default::default(),
                        format!("kafka sink `{}`: no output column `{k}` for the key", route.topic),
                    )
                })?;
                Some(cast(col, &DataType::Utf8).map_err(|e| Error::engine("kafka key", e))?)
            }
            None => None,
        };
        for (i, line) in self.lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let key = keys.as_ref().and_then(|k| {
                let s = k.as_string::<i32>();
                s.is_valid(i).then(|| s.value(i))
            });
            let mut record: BaseRecord<'_, str, [u8]> = BaseRecord::to(&route.topic).payload(line);
            if let Some(k) = key {
                record = record.key(k);
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(kafka_error(&format!("kafka produce to {}", route.topic), e)),
                }
            }
        }
        Ok(())
    }

    /// Exactly-once: commits the transaction with the consumer's offsets. At-least-once: waits for every delivery.
    pub fn commit(&mut self, next: &BTreeMap<PartitionId, i64>, consumer: Option<&Consumer>) -> Result<()> {
        if self.transactional {
            self.begin()?;
            if let Some(consumer) = consumer {
                if !next.is_empty() {
                    let mut tpl = TopicPartitionList::new();
                    for (p, o) in next {
                        tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(*o))
                            .map_err(|e| kafka_error("kafka offsets", e))?;
                    }
                    let group = consumer
                        .group_metadata()
                        .ok_or_else(|| Error::external("kafka", "the consumer has no group metadata"))?;
                    self.producer
                        .send_offsets_to_transaction(&tpl, &group, TIMEOUT)
                        .map_err(|e| self.abort(e, "send_offsets_to_transaction"))?;
                }
            }
            self.producer.commit_transaction(TIMEOUT).map_err(|e| self.abort(e, "commit_transaction"))?;
            self.in_transaction = false;
        } else {
            self.wait_for_deliveries()?;
        }
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let last = self.producer.context().last_error.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(Error::external(
                "kafka sink",
                format!("{failed} messages were not delivered: {}", last.unwrap_or_default()),
            ));
        }
        Ok(())
    }

    /// Waits until every message sent so far was acknowledged (or failed). Not `flush`: on a `ThreadedProducer` it
    /// polls for events its own thread already took, so it returned only after 100 ms timeouts, every batch.
    fn wait_for_deliveries(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self.producer.in_flight_count() > 0 {
            if std::time::Instant::now() >= deadline {
                return Err(Error::external(
                    "kafka sink",
                    format!(
                        "{} messages not acknowledged within {}s",
                        self.producer.in_flight_count(),
                        TIMEOUT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// Aborts the open transaction after `e`. An error the transaction can recover from (the group moved on and
    /// refused this process's offsets: a rebalance while the batch was in flight, or a stall past the poll
    /// interval) comes back as *fenced*: nothing of the batch became visible, and the stream rebuilds its partitions
    /// from what was committed. A fatal one (another process with the same transactional id) stays an error.
    fn abort(&mut self, e: KafkaError, what: &str) -> Error {
        self.in_transaction = false;
        let fatal = matches!(&e, KafkaError::Transaction(t) if t.is_fatal());
        if !fatal {
            if let Err(abort) = self.producer.abort_transaction(TIMEOUT) {
                tracing::warn!(error = %abort, "kafka abort_transaction");
                return kafka_error(&format!("kafka {what}"), e);
            }
            return crate::fenced::error(format!("kafka {what}"), format!("{e}; the transaction was aborted"));
        }
        kafka_error(&format!("kafka {what}"), e)
    }

    /// Aborts the open transaction, if any (the batch failed elsewhere).
    pub fn abort_open(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            if let Err(e) = self.producer.abort_transaction(TIMEOUT) {
                tracing::warn!(error = %e, "kafka abort_transaction");
            }
        }
    }
}

/// `weir-STREAM-GROUP-INSTANCE`: one id per process of a deployment, the same across its restarts (a restart fences
/// its previous life's unfinished transaction). The consumer group is part of it, so that two deployments of one
/// stream file (two projects, a test and production) on one cluster never fence each other.
pub fn transactional_id(stream: &str, group: Option<&str>, instance: &str) -> String {
    match group {
        Some(g) => format!("weir-{stream}-{g}-{instance}"),
        None => format!("weir-{stream}-{instance}"),
    }
}

/// Reads every message of `topic` up to its current end (tests, the feedback report, benchmarks).
pub fn read_topic(brokers: &str, topic: &str, read_committed: bool, timeout: Duration) -> Result<Vec<Vec<u8>>> {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::message::Message;
    let consumer: BaseConsumer = client_config(brokers, &BTreeMap::new())?
        .set("group.id", format!("weir-read-{}", uuid_like()))
        .set("enable.auto.commit", "false")
        .set("isolation.level", if read_committed { "read_committed" } else { "read_uncommitted" })
        .create()
        .map_err(|e| kafka_error("kafka reader", e))?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| kafka_error("kafka metadata", e))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut tpl = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in &partitions {
        let (low, high) =
            consumer.fetch_watermarks(topic, *p, timeout).map_err(|e| kafka_error("kafka watermarks", e))?;
        if high > low {
            ends.insert(*p, high);
            tpl.add_partition_offset(topic, *p, Offset::Offset(low)).map_err(|e| kafka_error("kafka assign", e))?;
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(|e| kafka_error("kafka assign", e))?;
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let mut idle_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(m.payload().unwrap_or_default().to_vec());
                idle_since = std::time::Instant::now();
                continue;
            }
            Some(Err(e)) => tracing::debug!(error = %e, "reading topic"),
            None => {}
        }
        // Done when every partition's position reached its end (transaction markers take offsets too, so a
        // quiet second also ends the read).
        let at_end = consumer.position().is_ok_and(|pos| {
            ends.iter().all(|(p, end)| {
                pos.find_partition(topic, *p).is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
            })
        });
        if at_end || idle_since.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    Ok(out)
}

fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}
