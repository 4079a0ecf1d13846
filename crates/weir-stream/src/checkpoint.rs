//! Window state and the offset it was taken at, saved together per partition, so a restarted (or newly assigned)
//! process replays from that offset and rebuilds exactly the state it had: decisions are deterministic given a
//! partition's messages in order, and outputs the sinks already hold are not written again (see `runtime`).
//!
//! Checkpoints live beside the lake (`_streams/NAME/` in the lake's storage, local or S3), one file per partition,
//! each replaced atomically. A file records a fingerprint of the windows it was made for; after the stream's windows
//! change, an old checkpoint is ignored (with a warning) and the state starts empty.

use bytes::{Buf, BufMut};
use weir_core::{Error, Result};
use weir_lake::storage::TableLocation;

use crate::processor::{PartitionId, PartitionState};
use crate::window::{decode_states, encode_states, Watermark, WindowPlan};

const MAGIC: &[u8] = b"WEIRSTATE1\n";

#[derive(Debug, Clone)]
pub struct Checkpoints {
    location: TableLocation,
    fingerprint: String,
    plans: Vec<WindowPlan>,
    out_of_orderness_ms: i64,
    allowed_lateness_ms: i64,
}

/// What a saved checkpoint holds.
#[derive(Debug)]
pub struct Restored {
    /// The offset to replay from.
    pub next_offset: i64,
    pub state: PartitionState,
}

/// A file name part made of the characters a topic or file name may hold.
fn safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

impl Checkpoints {
    pub fn new(
        location: TableLocation,
        fingerprint: String,
        plans: Vec<WindowPlan>,
        out_of_orderness_ms: i64,
        allowed_lateness_ms: i64,
    ) -> Checkpoints {
        Checkpoints { location, fingerprint, plans, out_of_orderness_ms, allowed_lateness_ms }
    }

    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    fn file(p: &PartitionId) -> String {
        format!("state-{}-{}.bin", safe(&p.topic), p.partition)
    }

    pub fn encode(&self, next_offset: i64, state: &PartitionState) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + state.windows.iter().map(|w| w.retained_events() * 24).sum::<usize>());
        out.put_slice(MAGIC);
        out.put_u32_le(self.fingerprint.len() as u32);
        out.put_slice(self.fingerprint.as_bytes());
        out.put_i64_le(next_offset);
        out.put_i64_le(state.watermark.max_event_ms);
        encode_states(&state.windows, &self.plans, &mut out);
        out
    }

    /// Reads a checkpoint; `Ok(None)` when it was made for other windows.
    pub fn decode(&self, mut bytes: &[u8]) -> std::result::Result<Option<Restored>, String> {
        if !bytes.starts_with(MAGIC) {
            return Err("not a weir stream checkpoint".into());
        }
        bytes.advance(MAGIC.len());
        if bytes.remaining() < 4 {
            return Err("truncated checkpoint".into());
        }
        let flen = bytes.get_u32_le() as usize;
        if bytes.remaining() < flen + 16 {
            return Err("truncated checkpoint".into());
        }
        let fingerprint = String::from_utf8_lossy(&bytes[..flen]).to_string();
        bytes.advance(flen);
        if fingerprint != self.fingerprint {
            return Ok(None);
        }
        let next_offset = bytes.get_i64_le();
        let max_event_ms = bytes.get_i64_le();
        let windows = decode_states(bytes, &self.plans)?;
        let mut watermark = Watermark::new(self.out_of_orderness_ms, self.allowed_lateness_ms);
        watermark.max_event_ms = max_event_ms;
        Ok(Some(Restored { next_offset, state: PartitionState { watermark, windows } }))
    }

    pub async fn save(&self, p: &PartitionId, next_offset: i64, state: &PartitionState) -> Result<()> {
        self.location.write_file(&Self::file(p), &self.encode(next_offset, state)).await
    }

    pub async fn load(&self, p: &PartitionId) -> Result<Option<Restored>> {
        let Some(bytes) = self.location.read_file(&Self::file(p)).await? else { return Ok(None) };
        match self.decode(&bytes) {
            Ok(Some(r)) => Ok(Some(r)),
            Ok(None) => {
                tracing::warn!(partition = %p, "the checkpoint was made for other windows; starting that partition's state empty");
                Ok(None)
            }
            Err(e) => Err(Error::data(
                Default::default(),
                format!(
                    "checkpoint {}/{}: {e}; delete it to start the partition's state empty",
                    self.location,
                    Self::file(p)
                ),
            )),
        }
    }

    /// Offsets of a source without a broker (file, generator): committed after every batch the sinks took.
    pub async fn load_positions(&self) -> Result<std::collections::BTreeMap<String, i64>> {
        match self.location.read_file("positions.json").await? {
            None => Ok(Default::default()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::data(Default::default(), format!("{}/positions.json: {e}", self.location))),
        }
    }

    pub async fn save_positions(&self, positions: &std::collections::BTreeMap<String, i64>) -> Result<()> {
        let bytes = serde_json::to_vec(positions).map_err(|e| Error::engine("positions", e))?;
        self.location.write_file("positions.json", &bytes).await
    }
}

/// Where a newly assigned partition starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Offset(i64),
    /// The oldest message the partition still holds: no checkpoint, but outputs were committed, so the window state
    /// is rebuilt from the start (outputs below the committed offset are not written again).
    Beginning,
    /// The source's `start` policy (a partition never read).
    Default,
}

/// Where a newly assigned partition starts, and with which state.
///
/// * A checkpoint at or before the committed offset: replay from the checkpoint (outputs below the committed offset
///   are not written again).
/// * A checkpoint after the committed offset (offsets were reset by hand): the reset wins, the state starts empty.
/// * No checkpoint but a committed offset (killed before its first checkpoint): replay from the beginning.
/// * Neither: the `start` policy, with empty state.
pub fn plan_start(restored: Option<Restored>, committed: Option<i64>) -> (StartAt, Option<PartitionState>) {
    match (restored, committed) {
        (Some(r), Some(c)) if r.next_offset > c => {
            tracing::warn!(checkpoint = r.next_offset, committed = c, "the committed offset is behind the checkpoint (offsets reset?): starting from the committed offset with empty state");
            (StartAt::Offset(c), None)
        }
        (Some(r), _) => (StartAt::Offset(r.next_offset), Some(r.state)),
        (None, Some(_)) => (StartAt::Beginning, None),
        (None, None) => (StartAt::Default, None),
    }
}
