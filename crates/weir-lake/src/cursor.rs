//! Incremental cursors are committed with the data they describe, so a crash can never leave a cursor ahead of (or
//! behind) the table: in a Delta table, in the commit's metadata (`weir_cursor: {"<pipeline>/<task>": …}`); in a
//! Parquet table, in `_weir_cursor.json` inside the partition the run replaces (swapped in with its files), or
//! beside the table when the run has no fixed partition.
//!
//! Each record is the window the run read, `(after, to]`, and the partition it replaced: so a re-run of an interval
//! that was committed before (a retry after the commit, `weir clear`, a backfill) reads that interval's window again
//! and reproduces its rows, instead of reading only what is past the newest cursor (nothing) and replacing the
//! interval's partition with it. A new interval reads past the newest cursor of all.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::cursor::{greater, CursorWindow};
use weir_core::{Error, Result};

use crate::storage::TableLocation;

pub const CURSOR_FILE: &str = "_weir_cursor.json";
pub const CURSOR_METADATA: &str = "weir_cursor";

/// What one run committed for a cursor: it read the rows with `after < cursor <= to`, into `partition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRecord {
    /// The highest value read (or `after`, when the run read nothing).
    pub to: String,
    /// Where the run started: the newest cursor before it (None: from the source's `initial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The fixed partition the run replaced (`date=2026-03-25`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

impl CursorRecord {
    /// A record as stored: an object, or (before windows were kept) the bare cursor value.
    fn from_json(v: &Value) -> Option<CursorRecord> {
        match v {
            Value::String(s) => Some(CursorRecord { to: s.clone(), after: None, partition: None }),
            other => serde_json::from_value(other.clone()).ok(),
        }
    }
}

/// What the table holds for a cursor key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The highest cursor committed by any run.
    pub newest: Option<String>,
    /// The record of the run that last committed the partition being run now, if one did.
    pub this_partition: Option<CursorRecord>,
}

impl Committed {
    /// The window a run of `partition` reads: the same window again when that partition was committed before (up to
    /// its old end when later runs read past it, so no row lands in two partitions), else past the newest cursor.
    pub fn window(&self) -> CursorWindow {
        match &self.this_partition {
            Some(r) => {
                let later = self.newest.as_deref().is_some_and(|n| greater(n, &r.to));
                CursorWindow { after: r.after.clone(), up_to: later.then(|| r.to.clone()) }
            }
            None => CursorWindow { after: self.newest.clone(), up_to: None },
        }
    }

    fn add(&mut self, record: CursorRecord, partition: Option<&str>) {
        if self.newest.as_deref().is_none_or(|n| greater(&record.to, n)) {
            self.newest = Some(record.to.clone());
        }
        if self.this_partition.is_none() && partition.is_some() && record.partition.as_deref() == partition {
            self.this_partition = Some(record);
        }
    }
}

/// The file content recording `record` under `key`.
pub fn file_contents(key: &str, record: &CursorRecord) -> Vec<u8> {
    serde_json::to_vec(&BTreeMap::from([(key, record)])).unwrap_or_default()
}

/// The commit metadata value recording `record` under `key` (Delta).
pub fn metadata_value(key: &str, record: &CursorRecord) -> Value {
    serde_json::json!({ key: record })
}

/// What was committed under `key` into the table at `location`; `partition` is the fixed partition being run now.
pub async fn read(location: &TableLocation, key: &str, partition: Option<&str>) -> Result<Committed> {
    let mut committed = Committed::default();
    if crate::delta::exists(location).await? {
        let table = crate::delta::open(location, None).await?;
        // Newest commit first: the first record of a partition is its latest.
        let mut commits = table.history(None);
        while let Some(c) = commits.try_next().await.map_err(|e| Error::engine("delta history", e.to_string()))? {
            if let Some(r) = c.info.get(CURSOR_METADATA).and_then(|m| m.get(key)).and_then(CursorRecord::from_json) {
                committed.add(r, partition);
            }
        }
        return Ok(committed);
    }
    let Some(dir) = &location.local else { return Ok(committed) };
    // `**` matches no folder too: the table's own file and every partition's.
    let pattern = format!("{}/**/{CURSOR_FILE}", dir.display());
    for file in glob::glob(&pattern).map_err(|e| Error::engine("cursor", e))?.flatten() {
        let bytes = std::fs::read(&file).map_err(|e| Error::io(format!("read {}", file.display()), e))?;
        let map: BTreeMap<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::data(Default::default(), format!("{}: {e}", file.display())))?;
        if let Some(r) = map.get(key).and_then(CursorRecord::from_json) {
            committed.add(r, partition);
        }
    }
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(after: Option<&str>, to: &str, partition: &str) -> CursorRecord {
        CursorRecord { to: to.into(), after: after.map(Into::into), partition: Some(partition.into()) }
    }

    #[test]
    fn a_rerun_reads_its_own_window_and_a_new_interval_reads_past_the_newest() {
        let mut c = Committed::default();
        c.add(record(None, "50", "date=1"), Some("date=1"));
        c.add(record(Some("50"), "61", "date=2"), Some("date=1"));
        assert_eq!(c.window(), CursorWindow { after: None, up_to: Some("50".into()) });
        let mut latest = Committed::default();
        latest.add(record(Some("50"), "61", "date=2"), Some("date=2"));
        latest.add(record(None, "50", "date=1"), Some("date=2"));
        assert_eq!(latest.window(), CursorWindow { after: Some("50".into()), up_to: None });
        let mut fresh = Committed::default();
        fresh.add(record(None, "50", "date=1"), Some("date=3"));
        assert_eq!(fresh.window(), CursorWindow { after: Some("50".into()), up_to: None });
    }

    #[test]
    fn records_written_before_windows_read_as_their_cursor() {
        let r = CursorRecord::from_json(&Value::String("7".into())).unwrap();
        assert_eq!((r.to.as_str(), r.after, r.partition), ("7", None, None));
    }
}
