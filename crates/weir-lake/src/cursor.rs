//! Incremental cursors are committed with the data they describe, so a crash can never leave a cursor ahead of (or
//! behind) the table: in a Delta table, in the commit's metadata (`weir_cursor: {"<pipeline>/<task>": value}`); in a
//! Parquet table, in `_weir_cursor.json` inside the partition the run replaces (swapped in with its files), or
//! beside the table when the run has no fixed partition.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use weir_core::cursor::greater;
use weir_core::{Error, Result};

use crate::storage::TableLocation;

pub const CURSOR_FILE: &str = "_weir_cursor.json";
pub const CURSOR_METADATA: &str = "weir_cursor";

/// The file content recording `value` under `key`.
pub fn file_contents(key: &str, value: &str) -> Vec<u8> {
    serde_json::to_vec(&BTreeMap::from([(key, value)])).unwrap_or_default()
}

/// The cursor last committed under `key` into the table at `location`, if any.
pub async fn read(location: &TableLocation, key: &str) -> Result<Option<String>> {
    if crate::delta::exists(location).await? {
        let table = crate::delta::open(location, None).await?;
        let mut commits = table.history(None);
        while let Some(c) = commits.try_next().await.map_err(|e| Error::engine("delta history", e.to_string()))? {
            if let Some(v) = c.info.get(CURSOR_METADATA).and_then(|m| m.get(key)).and_then(|v| v.as_str()) {
                return Ok(Some(v.to_string()));
            }
        }
        return Ok(None);
    }
    let Some(dir) = &location.local else { return Ok(None) };
    let mut best: Option<String> = None;
    // `**` matches no folder too: the table's own file and every partition's.
    let pattern = format!("{}/**/{CURSOR_FILE}", dir.display());
    {
        for file in glob::glob(&pattern).map_err(|e| Error::engine("cursor", e))?.flatten() {
            let bytes = std::fs::read(&file).map_err(|e| Error::io(format!("read {}", file.display()), e))?;
            let map: BTreeMap<String, String> = serde_json::from_slice(&bytes)
                .map_err(|e| Error::data(Default::default(), format!("{}: {e}", file.display())))?;
            if let Some(v) = map.get(key) {
                if best.as_deref().is_none_or(|b| greater(v, b)) {
                    best = Some(v.clone());
                }
            }
        }
    }
    Ok(best)
}
