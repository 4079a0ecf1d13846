//! The files of a source's checkpoint folder (`.weir/spool/...`), shared by the REST API pages
//! (`http_api`) and the database chunks (`chunk_spool`): a `state.json` that belongs to one fingerprint of the
//! request, and files written whole or not at all (temporary name, fsync, rename), so a killed run leaves either the
//! old file or the new one.

use std::path::Path;

use serde::de::DeserializeOwned;
use weir_core::{Error, Result};

/// Reads `dir/state.json` when `belongs` accepts it; otherwise (other settings, unreadable) empties the folder.
/// The folder exists afterwards.
pub(crate) fn open_state<S: DeserializeOwned>(dir: &Path, belongs: impl Fn(&S) -> bool) -> Result<Option<S>> {
    let state = match std::fs::read(dir.join("state.json")) {
        Ok(bytes) => match serde_json::from_slice::<S>(&bytes) {
            Ok(s) if belongs(&s) => Some(s),
            _ => {
                tracing::warn!(dir = %dir.display(), "the spool belongs to other settings; starting afresh");
                let _ = std::fs::remove_dir_all(dir);
                None
            }
        },
        Err(_) => None,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    Ok(state)
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("write {}", path.display()), e))
}
