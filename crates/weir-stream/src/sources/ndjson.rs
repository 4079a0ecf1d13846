//! `type: ndjson` source: newline-delimited JSON events from a file (`path: payments.ndjson`) or standard input
//! (`path: "-"`), the embedded default that needs no broker. The file is partition 0 of a "topic" named after it;
//! a message's offset is its line number (from 0), so a restarted stream resumes at the line after the last one its
//! sinks acknowledged. Standard input cannot be re-read: a stream on stdin starts at its first line.
//!
//! ```yaml
//! source: {type: ndjson, path: landing/payments.ndjson}
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_core::{Error, Result};

use super::{Assigned, Chunk, EventSource, Payloads, Polled};
use crate::checkpoint::{plan_start, Checkpoints, StartAt};
use crate::processor::PartitionId;

pub struct NdjsonSource {
    path: String,
    reader: Option<Box<dyn BufRead + Send>>,
    partition: PartitionId,
    next_line: i64,
    started: bool,
    checkpoints: Arc<Checkpoints>,
    runtime: tokio::runtime::Handle,
    line: Vec<u8>,
}

impl std::fmt::Debug for NdjsonSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonSource").field("path", &self.path).field("next_line", &self.next_line).finish()
    }
}

impl NdjsonSource {
    /// `path` as written (`-` for stdin), `resolved` the file to open.
    pub fn open(
        path: &str,
        resolved: &std::path::Path,
        checkpoints: Arc<Checkpoints>,
        runtime: tokio::runtime::Handle,
    ) -> Result<NdjsonSource> {
        let reader: Box<dyn BufRead + Send> = if path == "-" {
            Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
        } else {
            let f = std::fs::File::open(resolved).map_err(|e| Error::io(format!("open {}", resolved.display()), e))?;
            Box::new(BufReader::with_capacity(1 << 20, f)) as Box<dyn BufRead + Send>
        };
        let topic = if path == "-" {
            "stdin".to_string()
        } else {
            resolved.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| path.to_string())
        };
        Ok(NdjsonSource {
            path: path.to_string(),
            reader: Some(reader),
            partition: PartitionId { topic: topic.into(), partition: 0 },
            next_line: 0,
            started: false,
            checkpoints,
            runtime,
            line: Vec::new(),
        })
    }

    fn positions_key(&self) -> String {
        self.partition.to_string()
    }

    /// Restores the partition's checkpoint and skips to where it starts.
    fn assign(&mut self) -> Result<Assigned> {
        let positions = self.runtime.block_on(self.checkpoints.load_positions())?;
        let committed = positions.get(&self.positions_key()).copied();
        let restored = self.runtime.block_on(self.checkpoints.load(&self.partition))?;
        let (start, state) = plan_start(restored, committed);
        let start = match start {
            StartAt::Offset(o) => o,
            StartAt::Beginning | StartAt::Default => 0,
        };
        if start > 0 && self.path == "-" {
            tracing::warn!("standard input cannot be re-read: starting at its first line, with empty state");
            return Ok(Assigned { partition: self.partition.clone(), committed: None, state: None });
        }
        let reader = self.reader.as_mut().expect("open");
        while self.next_line < start {
            self.line.clear();
            let n =
                reader.read_until(b'\n', &mut self.line).map_err(|e| Error::io(format!("read {}", self.path), e))?;
            if n == 0 {
                break;
            }
            self.next_line += 1;
        }
        Ok(Assigned { partition: self.partition.clone(), committed, state })
    }
}

impl EventSource for NdjsonSource {
    fn poll(&mut self, max: usize, _wait: Duration) -> Result<Polled> {
        let mut polled = Polled::default();
        if !self.started {
            self.started = true;
            polled.assigned.push(self.assign()?);
        }
        let Some(reader) = self.reader.as_mut() else {
            polled.end = true;
            return Ok(polled);
        };
        let now = chrono::Utc::now().timestamp_millis();
        let mut data = Vec::with_capacity(max * 160);
        let mut bounds = Vec::with_capacity(max);
        let mut offsets = Vec::with_capacity(max);
        let started = Instant::now();
        while offsets.len() < max {
            let start = data.len();
            let n = reader.read_until(b'\n', &mut data).map_err(|e| Error::io(format!("read {}", self.path), e))?;
            if n == 0 {
                self.reader = None;
                polled.end = true;
                break;
            }
            let line = self.next_line;
            self.next_line += 1;
            let end = data.len();
            // Blank lines take a line number but carry no event.
            if data[start..end].iter().all(|b| b.is_ascii_whitespace()) {
                data.truncate(start);
                continue;
            }
            bounds.push((start, end));
            offsets.push(line);
            // Standard input may be a live pipe: hand over what arrived rather than wait for a full batch.
            if self.path == "-" && started.elapsed() > Duration::from_millis(50) {
                break;
            }
        }
        if !offsets.is_empty() {
            let produced_ms = vec![now; offsets.len()];
            polled.chunks.push(Chunk {
                partition: self.partition.clone(),
                offsets,
                produced_ms,
                payloads: Payloads::Raw { data, bounds },
            });
        }
        Ok(polled)
    }

    fn commit(&mut self, next: &BTreeMap<crate::processor::PartitionId, i64>) -> Result<()> {
        if self.path == "-" {
            return Ok(());
        }
        // Lines consumed without an event (blank ones) count too: the position is the next line to read.
        let mut positions = BTreeMap::new();
        let at = next.get(&self.partition).copied().unwrap_or(self.next_line);
        positions.insert(self.positions_key(), at);
        self.runtime.block_on(self.checkpoints.save_positions(&positions))
    }
}

/// Reads a whole small file of NDJSON into lines (labels files and tests).
pub fn read_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect())
}
