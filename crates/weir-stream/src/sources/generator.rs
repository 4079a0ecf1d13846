//! `type: generator` source: the built-in payment generator (see `crate::generator`) as partition 0 of the topic
//! `generator`, producing Arrow batches directly (no decoding), for the fraud demo and the in-process benchmark.
//! It is deterministic, so it resumes at any offset like a file.
//!
//! ```yaml
//! source: {type: generator, events: 1000000, cards: 50000, fraud_rate: 0.01}
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weir_core::Result;

use super::{Assigned, Chunk, EventSource, Payloads, Polled};
use crate::checkpoint::{plan_start, Checkpoints, StartAt};
use crate::config::GeneratorConfig;
use crate::generator::PaymentGenerator;
use crate::processor::PartitionId;

#[derive(Debug)]
pub struct GeneratorSource {
    generator: PaymentGenerator,
    partition: PartitionId,
    started: bool,
    checkpoints: Arc<Checkpoints>,
    runtime: tokio::runtime::Handle,
}

impl GeneratorSource {
    pub fn new(
        config: &GeneratorConfig,
        checkpoints: Arc<Checkpoints>,
        runtime: tokio::runtime::Handle,
    ) -> GeneratorSource {
        GeneratorSource {
            generator: PaymentGenerator::new(config),
            partition: PartitionId { topic: "generator".into(), partition: 0 },
            started: false,
            checkpoints,
            runtime,
        }
    }
}

impl EventSource for GeneratorSource {
    fn poll(&mut self, max: usize, _wait: Duration) -> Result<Polled> {
        let mut polled = Polled::default();
        if !self.started {
            self.started = true;
            let positions = self.runtime.block_on(self.checkpoints.load_positions())?;
            let committed = positions.get(&self.partition.to_string()).copied();
            let restored = self.runtime.block_on(self.checkpoints.load(&self.partition))?;
            let (start, state) = plan_start(restored, committed);
            self.generator.seek(match start {
                StartAt::Offset(o) => o.max(0) as u64,
                StartAt::Beginning | StartAt::Default => 0,
            });
            polled.assigned.push(Assigned { partition: self.partition.clone(), committed, state });
        }
        let first = self.generator.position() as i64;
        match self.generator.next_batch(max) {
            Some(batch) => {
                let n = batch.num_rows();
                let now = chrono::Utc::now().timestamp_millis();
                polled.chunks.push(Chunk {
                    partition: self.partition.clone(),
                    offsets: (first..first + n as i64).collect(),
                    produced_ms: vec![now; n],
                    payloads: Payloads::Batch(batch),
                });
                polled.end = self.generator.finished();
            }
            None => polled.end = true,
        }
        Ok(polled)
    }

    fn commit(&mut self, next: &BTreeMap<PartitionId, i64>) -> Result<()> {
        let mut positions = BTreeMap::new();
        if let Some(at) = next.get(&self.partition) {
            positions.insert(self.partition.to_string(), *at);
            self.runtime.block_on(self.checkpoints.save_positions(&positions))?;
        }
        Ok(())
    }
}
