//! The stream loop: poll a micro-batch, decode it, decide it, write the outputs, commit, and now and then checkpoint
//! the window state.
//!
//! The order of a micro-batch is what makes the guarantees hold:
//! 1. every output of the batch is written to its sinks (rows a sink already holds are skipped, see `sinks`);
//! 2. the sinks commit (Delta and PostgreSQL with their offsets; a transactional Kafka producer with the consumer's
//!    offsets, `send_offsets_to_transaction`); then, when no transaction holds them, the source commits the offsets;
//! 3. every `checkpoint.interval`, window state is saved with the offset it reflects: always *after* that offset was
//!    committed (a Kafka source commits without waiting, batch by batch, and `settle` waits for the commits before
//!    a checkpoint), so a checkpoint is never ahead of what the sinks hold.
//!
//! A commit refused because another process owns the partition now (fenced, see `sinks`) drops the batch: nothing
//! of it is visible, and the source starts its partitions again from their last commit.
//!
//! After a crash the partition restarts at its checkpoint and replays up to the committed offset, which rebuilds the
//! exact window state (decisions depend only on a partition's messages in order) while the sinks skip the outputs
//! they already hold; from the committed offset on, outputs are written again as new.
//!
//! The loop runs on its own thread (deciding is CPU work that must not stall the async runtime); IO to sinks and
//! checkpoints goes through the runtime handle.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::neq;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use weir_core::{Error, Result};

use crate::checkpoint::Checkpoints;
use crate::config::{OutputKind, SourceConfig, StreamConfig};
use crate::decode::{event_schema, PayloadDecoder};
use crate::env::StreamEnv;
use crate::metrics::StreamMetrics;
use crate::processor::{PartitionId, Processor};
use crate::sinks::Sinks;
use crate::sources::{generator::GeneratorSource, kafka::KafkaSource, ndjson::NdjsonSource, EventSource, Payloads};

/// How a run of a stream ends and tells processes apart.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Tells processes of one stream apart (the Kafka transactional id is `weir-STREAM-GROUP-INSTANCE`).
    pub instance: String,
    /// Stop after this many events (tests and benchmarks).
    pub max_events: Option<u64>,
    /// Stop when no event arrived for this long.
    pub idle_stop: Option<Duration>,
    /// Set from outside (Ctrl-C, `weir serve` shutting down) to stop after the current batch.
    pub stop: Arc<AtomicBool>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { instance: "0".into(), max_events: None, idle_stop: None, stop: Arc::new(AtomicBool::new(false)) }
    }
}

/// Fenced batches in a row after which the stream stops with the error instead of rewinding again.
const FENCED_IN_A_ROW: u32 = 5;

/// With `idle_stop`, how long a process waits for its first partitions (a group's rebalance after a member died
/// waits for that member's session to time out).
const UNASSIGNED_LIMIT: Duration = Duration::from_secs(120);

/// The schema of the invalid output.
pub fn invalid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("payload", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, false),
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("decided_at", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
    ]))
}

fn open_source(config: &StreamConfig, checkpoints: Arc<Checkpoints>, env: &StreamEnv) -> Result<Box<dyn EventSource>> {
    Ok(match &config.source {
        SourceConfig::Kafka(k) => Box::new(KafkaSource::open(k, checkpoints, env.runtime.clone())?),
        SourceConfig::Ndjson { path, .. } => {
            Box::new(NdjsonSource::open(path, &config.relative(path), checkpoints, env.runtime.clone())?)
        }
        SourceConfig::Generator(g) => Box::new(GeneratorSource::new(g, checkpoints, env.runtime.clone())),
    })
}

fn decoder(config: &StreamConfig, schema: SchemaRef) -> Result<PayloadDecoder> {
    match &config.source {
        SourceConfig::Kafka(k) if k.format == "avro" => {
            let path = config.relative(k.avro_schema.as_deref().unwrap_or_default());
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
            let id = if k.avro_framing.as_deref() == Some("confluent") { k.avro_schema_id } else { None };
            PayloadDecoder::avro(schema, &text, id)
                .map_err(|e| Error::config(weir_core::error::Location { file: Some(path), ..Default::default() }, e))
        }
        _ => Ok(PayloadDecoder::json(schema)),
    }
}

/// Builds everything a stream needs (lookups, compiled rules, sinks) on `env`: fails before reading any event when
/// a connection, a lookup or an expression is wrong.
pub struct Stream {
    config: Arc<StreamConfig>,
    env: StreamEnv,
    processor: Processor,
    decoder: PayloadDecoder,
    sinks: Sinks,
    checkpoints: Arc<Checkpoints>,
    metrics: Arc<StreamMetrics>,
    options: RunOptions,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("name", &self.config.name).field("sinks", &self.sinks).finish()
    }
}

impl Stream {
    pub fn build(config: Arc<StreamConfig>, env: StreamEnv, options: RunOptions) -> Result<Stream> {
        let schema = event_schema(&config);
        let lookups = env.runtime.block_on(crate::lookup::load_all(&config, &env, &schema))?;
        let processor = Processor::new(config.clone(), schema.clone(), lookups, env.runtime.clone())?;
        let decoder = decoder(&config, schema)?;
        let sinks = env.runtime.block_on(Sinks::build(&config, &env, &options.instance))?;
        let checkpoints = Arc::new(Checkpoints::new(
            env.checkpoints(&config.name),
            config.state_fingerprint(),
            processor.plans(),
            config.event_time.max_out_of_orderness_ms,
            config.event_time.allowed_lateness_ms,
        ));
        let metrics = Arc::new(StreamMetrics::new(&config.name, &processor.rule_names()));
        Ok(Stream { config, env, processor, decoder, sinks, checkpoints, metrics, options })
    }

    pub fn metrics(&self) -> Arc<StreamMetrics> {
        self.metrics.clone()
    }

    pub fn written(&self) -> Vec<(String, u64)> {
        self.sinks.written()
    }

    /// Runs until the source ends, `max_events`, `idle_stop` or the stop flag.
    pub fn run(&mut self) -> Result<()> {
        let mut source = open_source(&self.config, self.checkpoints.clone(), &self.env)?;
        let rt = self.env.runtime.clone();
        let batch = self.config.batch;
        let mut committed: HashMap<PartitionId, i64> = HashMap::new();
        let mut positions: HashMap<PartitionId, i64> = HashMap::new();
        let mut last_checkpoint = Instant::now();
        let mut last_event = Instant::now();
        let mut dirty = false;
        let mut checkpoints = 0u64;
        let mut assigned_once = false;
        let mut fenced_in_a_row = 0;
        let mut seen: u64 = 0;
        let invalid_schema = invalid_schema();
        loop {
            if self.options.stop.load(Ordering::Relaxed) {
                break;
            }
            let mut max = batch.max_events;
            if let Some(limit) = self.options.max_events {
                max = max.min(limit.saturating_sub(seen) as usize);
                if max == 0 {
                    break;
                }
            }
            let poll_started = Instant::now();
            let polled = source.poll(max, batch.max_wait)?;
            let polled_in = poll_started.elapsed();
            for p in &polled.revoked {
                self.processor.remove(p);
                self.sinks.revoke(p);
                committed.remove(p);
                positions.remove(p);
            }
            if !polled.assigned.is_empty() {
                // `idle_stop` counts from the last event or assignment: joining a group can wait for the session
                // of a member that died to time out.
                last_event = Instant::now();
                assigned_once = true;
            }
            for a in polled.assigned {
                let state = a.state.unwrap_or_else(|| self.processor.new_state());
                self.processor.install(a.partition.clone(), state);
                rt.block_on(self.sinks.assign(&a.partition, a.committed))?;
                if let Some(c) = a.committed {
                    committed.insert(a.partition.clone(), c);
                }
            }
            if polled.chunks.is_empty() {
                if polled.end {
                    break;
                }
                if let Some(idle) = self.options.idle_stop {
                    if assigned_once && last_event.elapsed() >= idle {
                        break;
                    }
                    if !assigned_once && last_event.elapsed() >= idle.max(UNASSIGNED_LIMIT) {
                        tracing::warn!(
                            waited_s = last_event.elapsed().as_secs(),
                            "no partition was assigned to this process; stopping"
                        );
                        break;
                    }
                }
                self.set_lag(source.as_ref());
                continue;
            }
            last_event = Instant::now();
            let batch_started = last_event;
            let batch_number = self.metrics.batches.load(Ordering::Relaxed) + 1;
            let now_ms = chrono::Utc::now().timestamp_millis();
            let mut next: BTreeMap<PartitionId, i64> = BTreeMap::new();
            let mut produced: Vec<i64> = Vec::new();
            // Counted into the metrics once the batch is committed (a fenced batch is decided again later).
            let mut counts = BatchCounts::default();
            for chunk in &polled.chunks {
                let p = &chunk.partition;
                let replay_below = committed.get(p).copied().unwrap_or(-1);
                let n = chunk.offsets.len() as u64;
                seen += n;
                let replayed = chunk.offsets.iter().filter(|&&o| o < replay_below).count() as u64;
                counts.events += n - replayed;
                counts.replayed += replayed;
                produced.extend(
                    chunk.offsets.iter().zip(&chunk.produced_ms).filter(|(o, _)| **o >= replay_below).map(|(_, t)| *t),
                );
                let (events, kept, bad) = match &chunk.payloads {
                    Payloads::Raw { .. } => self.decoder.decode(&chunk.payloads.slices()),
                    Payloads::Batch(b) => (b.clone(), (0..b.num_rows()).collect(), Vec::new()),
                };
                let kept_offsets: Vec<i64> = kept.iter().map(|&i| chunk.offsets[i]).collect();
                let kept_produced: Vec<i64> =
                    kept.iter().map(|&i| chunk.produced_ms.get(i).copied().unwrap_or(now_ms)).collect();
                let decided = self.processor.process(p, &events, &kept_offsets, &kept_produced, now_ms)?;

                // Invalid: undecodable messages and events without an event time, in offset order.
                let slices = chunk.payloads.slices();
                let mut invalid: Vec<(i64, Option<String>, String)> = bad
                    .iter()
                    .map(|b| {
                        (
                            chunk.offsets[b.index],
                            slices.get(b.index).map(|s| String::from_utf8_lossy(s).to_string()),
                            b.error.clone(),
                        )
                    })
                    .collect();
                for &row in &decided.missing_time {
                    let message = kept[row];
                    invalid.push((
                        chunk.offsets[message],
                        slices.get(message).map(|s| String::from_utf8_lossy(s).to_string()),
                        format!("no event time (`{}` is missing or null)", self.config.event_time.field),
                    ));
                }
                for &(row, event_ms, message_ms) in &decided.from_the_future {
                    let message = kept[row];
                    let at = |ms: i64| {
                        chrono::DateTime::from_timestamp_millis(ms)
                            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                            .unwrap_or_else(|| ms.to_string())
                    };
                    invalid.push((
                        chunk.offsets[message],
                        slices.get(message).map(|s| String::from_utf8_lossy(s).to_string()),
                        format!(
                            "event time {} is ahead of the message's own time {} by more than max_future_skew ({} ms): it would move the watermark past every later event",
                            at(event_ms),
                            at(message_ms),
                            self.config.event_time.max_future_skew_ms
                        ),
                    ));
                }
                invalid.sort_by_key(|r| r.0);
                let fresh_invalid = invalid.iter().filter(|r| r.0 >= replay_below).count() as u64;
                counts.invalid += fresh_invalid;
                if fresh_invalid > 0 && !self.sinks.has(OutputKind::Invalid) {
                    for r in invalid.iter().filter(|r| r.0 >= replay_below).take(3) {
                        tracing::warn!(partition = %p, offset = r.0, error = %r.2, "invalid message (no `invalid` output is configured: it is only counted and logged)");
                    }
                }
                if !invalid.is_empty() {
                    let n = invalid.len();
                    let cols: Vec<ArrayRef> = vec![
                        Arc::new(StringArray::from(invalid.iter().map(|r| r.1.clone()).collect::<Vec<_>>())),
                        Arc::new(StringArray::from(invalid.iter().map(|r| r.2.clone()).collect::<Vec<_>>())),
                        Arc::new(StringArray::from(vec![p.topic.as_ref(); n])),
                        Arc::new(Int32Array::from(vec![p.partition; n])),
                        Arc::new(Int64Array::from(invalid.iter().map(|r| r.0).collect::<Vec<_>>())),
                        Arc::new(TimestampMillisecondArray::from(vec![now_ms; n]).with_timezone("UTC")),
                    ];
                    let b = RecordBatch::try_new(invalid_schema.clone(), cols)
                        .map_err(|e| Error::engine("invalid batch", e))?;
                    self.sinks.write(OutputKind::Invalid, p, &b)?;
                }

                // Metrics count what is new (not the replay of what the sinks already hold).
                let fresh = fresh_rows(&decided.decisions, replay_below);
                counts.late += fresh_rows(&decided.late, replay_below).num_rows() as u64;
                counts.decided.push((fresh, decided.matched.clone(), replayed > 0));

                self.sinks.write(OutputKind::Decisions, p, &decided.decisions)?;
                if self.sinks.has(OutputKind::Alerts) {
                    let decision = decided.decisions.column_by_name("decision").expect("decision column");
                    let mask =
                        neq(decision, &StringArray::new_scalar("approve")).map_err(|e| Error::engine("alerts", e))?;
                    let alerts =
                        filter_record_batch(&decided.decisions, &mask).map_err(|e| Error::engine("alerts", e))?;
                    self.sinks.write(OutputKind::Alerts, p, &alerts)?;
                }
                self.sinks.write(OutputKind::Late, p, &decided.late)?;
                if let Some(last) = chunk.offsets.last() {
                    // A replay commits where the partition stood, never behind it: moving the committed offset
                    // back would make the sinks that rely on it deliver again after the next restart.
                    next.insert(p.clone(), (last + 1).max(replay_below));
                    positions.insert(p.clone(), last + 1);
                }
            }
            // Fault injection for the crash tests: this batch's outputs are written and nothing is committed.
            weir_core::failpoint::hit_at("stream_before_commit", batch_number);
            weir_core::failpoint::stall_at("stream_stall_before_commit", batch_number);
            let decided_in = batch_started.elapsed();
            let offsets_in = match self.commit(&next, source.as_mut(), batch_number) {
                Ok(took) => took,
                Err(e) => {
                    // A refusal that keeps coming back is not a moved partition but a broker that refuses everything:
                    // the stream stops with it (and a supervisor restarts it with backoff).
                    fenced_in_a_row += 1;
                    if fenced_in_a_row > FENCED_IN_A_ROW {
                        return Err(e);
                    }
                    // Nothing of the batch is visible.
                    self.rewind_after_fenced(e, source.as_mut(), "batch fenced: the batch is dropped")?;
                    positions.clear();
                    dirty = false;
                    continue;
                }
            };
            fenced_in_a_row = 0;
            let sinks_in = batch_started.elapsed() - decided_in;
            weir_core::failpoint::hit_at("stream_after_commit", batch_number);
            self.metrics.events.fetch_add(counts.events, Ordering::Relaxed);
            self.metrics.replayed.fetch_add(counts.replayed, Ordering::Relaxed);
            self.metrics.invalid.fetch_add(counts.invalid, Ordering::Relaxed);
            self.metrics.late.fetch_add(counts.late, Ordering::Relaxed);
            for (fresh, matched, partly_replayed) in &counts.decided {
                self.count(fresh, matched, *partly_replayed);
            }
            tracing::debug!(
                events = polled.chunks.iter().map(|c| c.offsets.len()).sum::<usize>(),
                poll_ms = polled_in.as_millis() as u64,
                decide_ms = decided_in.as_millis() as u64,
                sinks_ms = (sinks_in - offsets_in).as_millis() as u64,
                offsets_ms = offsets_in.as_millis() as u64,
                after_ms = (batch_started.elapsed() - decided_in - sinks_in).as_millis() as u64,
                "batch"
            );
            self.metrics.split_keys.store(self.processor.split_keys(), Ordering::Relaxed);
            let done = chrono::Utc::now().timestamp_millis();
            self.metrics.record_latencies(produced.iter().map(|t| done - t));
            self.metrics.batches.fetch_add(1, Ordering::Relaxed);
            self.metrics.record_busy(batch_started);
            dirty = true;
            // The first checkpoint comes right after the first commit: until a partition has one, a restart must
            // rebuild its state from the partition's beginning.
            if checkpoints == 0 || last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                // The offsets are committed without waiting, batch by batch; a checkpoint waits for them first.
                if let Err(e) = source.settle() {
                    self.rewind_after_fenced(e, source.as_mut(), "offset commit refused")?;
                    positions.clear();
                    dirty = false;
                    continue;
                }
                checkpoints += 1;
                self.checkpoint(&positions)?;
                last_checkpoint = Instant::now();
                dirty = false;
                self.set_lag(source.as_ref());
            }
            if polled.end {
                break;
            }
        }
        source.settle()?;
        if dirty {
            self.checkpoint(&positions)?;
        }
        self.set_lag(source.as_ref());
        Ok(())
    }

    /// Commits a batch: the sinks (a transactional Kafka producer commits the consumed offsets inside its
    /// transaction, and nowhere else), then the source's offsets when no transaction holds them.
    /// After a commit refused because this process no longer owns its partitions as it did (`crate::fenced`): the
    /// source starts every partition it holds again from what was committed (reported revoked and assigned with the
    /// next poll). Any other error, or a source that cannot rewind, comes back as it is.
    fn rewind_after_fenced(&mut self, e: Error, source: &mut dyn EventSource, what: &str) -> Result<()> {
        if !crate::fenced::is_fenced(&e) || !source.rewind()? {
            return Err(e);
        }
        tracing::warn!(error = %e, "{what}: this process no longer owns its partitions as it did; they start again from their last commit");
        self.metrics.fenced.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Returns how long the source's offset commit took (zero inside a transaction).
    fn commit(
        &mut self,
        next: &BTreeMap<PartitionId, i64>,
        source: &mut dyn EventSource,
        batch: u64,
    ) -> Result<Duration> {
        let result = self.env.runtime.block_on(self.sinks.commit(next, source.kafka_consumer(), batch));
        if let Err(e) = result {
            self.sinks.abort();
            return Err(e);
        }
        let started = Instant::now();
        if !self.sinks.transactional() {
            source.commit(next)?;
        }
        Ok(started.elapsed())
    }

    fn set_lag(&self, source: &dyn EventSource) {
        let lag = source.lag();
        if !lag.is_empty() {
            self.metrics.set_lag(lag.into_iter().map(|(p, l)| (p.to_string(), l)).collect());
        }
    }

    fn count(&self, decisions: &RecordBatch, matched: &[u64], partly_replayed: bool) {
        let d = decisions.column_by_name("decision").expect("decision").as_string::<i32>();
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for v in d.iter().flatten() {
            *counts.entry(v).or_default() += 1;
        }
        for (k, v) in counts {
            self.metrics.count_decision(k, v);
        }
        let r = decisions.column_by_name("rule").expect("rule").as_string::<i32>();
        let mut by_rule: HashMap<&str, u64> = HashMap::new();
        for v in r.iter().flatten() {
            *by_rule.entry(v).or_default() += 1;
        }
        for (k, v) in by_rule {
            self.metrics.count_decided_by(k, v);
        }
        if partly_replayed {
            // Matches of a partly replayed batch are recounted from the fresh rows.
            let m = decisions.column_by_name("matched_rules").expect("matched").as_string::<i32>();
            for (i, name) in self.processor.rule_names().iter().enumerate() {
                let n = m.iter().flatten().filter(|s| s.split(',').any(|x| x == name)).count() as u64;
                self.metrics.count_rule(i, n);
            }
        } else {
            for (i, n) in matched.iter().enumerate() {
                self.metrics.count_rule(i, *n);
            }
        }
    }

    fn checkpoint(&mut self, positions: &HashMap<PartitionId, i64>) -> Result<()> {
        self.processor.evict();
        let number = self.metrics.checkpoints.load(Ordering::Relaxed) + 1;
        for (i, (p, next)) in positions.iter().enumerate() {
            if i == 1 {
                // Fault injection: some partitions' state saved, the others' not.
                weir_core::failpoint::hit_at("stream_mid_checkpoint", number);
            }
            if let Some(state) = self.processor.state(p) {
                self.env.runtime.block_on(self.checkpoints.save(p, *next, state))?;
            }
        }
        self.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What a batch adds to the metrics, counted once it is committed.
#[derive(Default)]
struct BatchCounts {
    events: u64,
    replayed: u64,
    invalid: u64,
    late: u64,
    /// Each partition's new decisions, its rules' match counts and whether part of it was a replay.
    decided: Vec<(RecordBatch, Vec<u64>, bool)>,
}

/// The rows of an output at or after `offset` (outputs are in offset order).
fn fresh_rows(batch: &RecordBatch, offset: i64) -> RecordBatch {
    if offset < 0 || batch.num_rows() == 0 {
        return batch.clone();
    }
    let offsets = batch.column_by_name("_offset").expect("_offset").as_primitive::<Int64Type>();
    let first = offsets.values().partition_point(|&o| o < offset);
    batch.slice(first, batch.num_rows() - first)
}

/// Runs `config` on `env` until it ends, on the calling thread; returns the stream's summary lines.
pub fn run_stream(
    config: Arc<StreamConfig>,
    env: StreamEnv,
    options: RunOptions,
) -> Result<(Arc<StreamMetrics>, Vec<(String, u64)>)> {
    let mut stream = Stream::build(config, env, options)?;
    let metrics = stream.metrics();
    stream.run()?;
    Ok((metrics, stream.written()))
}
