//! Where events come from: Kafka (through librdkafka), an NDJSON file or standard input, or the built-in payment
//! generator. Each source hands the runtime micro-batches of messages per partition, tells it which partitions it
//! was given or lost, and commits the offsets the sinks have acknowledged.

pub mod generator;
pub mod kafka;
pub mod ndjson;

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::RecordBatch;
use weir_core::Result;

use crate::processor::{PartitionId, PartitionState};

/// The messages of one partition in a micro-batch, in offset order.
#[derive(Debug)]
pub struct Chunk {
    pub partition: PartitionId,
    pub offsets: Vec<i64>,
    /// When each message was produced (milliseconds since the epoch; the broker's timestamp, or when it was read).
    pub produced_ms: Vec<i64>,
    pub payloads: Payloads,
}

#[derive(Debug)]
pub enum Payloads {
    /// Raw message bytes: `data[bounds[i].0..bounds[i].1]` is message `i`.
    Raw { data: Vec<u8>, bounds: Vec<(usize, usize)> },
    /// Already columnar (the generator).
    Batch(RecordBatch),
}

impl Payloads {
    pub fn slices(&self) -> Vec<&[u8]> {
        match self {
            Payloads::Raw { data, bounds } => bounds.iter().map(|&(a, b)| &data[a..b]).collect(),
            Payloads::Batch(_) => Vec::new(),
        }
    }
}

/// A partition given to this process, with where it starts.
#[derive(Debug)]
pub struct Assigned {
    pub partition: PartitionId,
    /// The offset the source committed (outputs below it were delivered already).
    pub committed: Option<i64>,
    /// The state restored from the checkpoint the source seeked to (None: start empty).
    pub state: Option<PartitionState>,
}

#[derive(Debug, Default)]
pub struct Polled {
    pub chunks: Vec<Chunk>,
    pub assigned: Vec<Assigned>,
    pub revoked: Vec<PartitionId>,
    /// A bounded source has nothing more.
    pub end: bool,
}

impl Polled {
    pub fn events(&self) -> usize {
        self.chunks.iter().map(|c| c.offsets.len()).sum()
    }
}

pub trait EventSource: Send {
    /// Up to `max` messages, waiting at most `wait` for the first ones.
    fn poll(&mut self, max: usize, wait: Duration) -> Result<Polled>;
    /// Commits the next offset of each partition (every output before it was acknowledged); it may return before
    /// the commit is durable (see `settle`).
    fn commit(&mut self, next: &BTreeMap<PartitionId, i64>) -> Result<()>;
    /// Waits until every offset passed to `commit` is durable (before a checkpoint, and at the end of a run).
    fn settle(&mut self) -> Result<()> {
        Ok(())
    }
    /// The Kafka consumer, for sinks that commit offsets inside a transaction.
    fn kafka_consumer(&self) -> Option<&kafka::Consumer> {
        None
    }
    /// Messages behind the end of each partition, when known.
    fn lag(&self) -> Vec<(PartitionId, i64)> {
        Vec::new()
    }
    /// Starts every partition this process holds again from what was committed (its checkpoint and committed
    /// offset), as if it had just been assigned: the next `poll` reports them revoked and assigned again. After a
    /// fenced commit the batch in flight is gone and the state built from it must go too. False: this source
    /// cannot (the stream then stops with the error).
    fn rewind(&mut self) -> Result<bool> {
        Ok(false)
    }
}
