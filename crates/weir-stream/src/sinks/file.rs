//! `type: ndjson` sink (rows appended to a file as JSON lines, flushed and synced at every commit) and `type: stdout`
//! (JSON lines on standard output, for a terminal or a pipe). Both are at-least-once: a crash between the write and
//! the offset commit repeats those lines after the restart.
//!
//! ```yaml
//! outputs:
//!   late: [{type: ndjson, path: out/late.ndjson}]
//!   alerts: [{type: stdout}]
//! ```

use std::io::Write;
use std::path::Path;

use arrow::array::RecordBatch;
use weir_core::{Error, Result};

pub struct FileSink {
    file: Option<std::fs::File>,
    path: Option<std::path::PathBuf>,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink").field("path", &self.path).finish()
    }
}

impl FileSink {
    /// A file to append to (created with its folders), or standard output for `None`.
    pub fn open(path: Option<&Path>) -> Result<FileSink> {
        let file = match path {
            Some(p) => {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                }
                Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(p)
                        .map_err(|e| Error::io(format!("open {}", p.display()), e))?,
                )
            }
            None => None,
        };
        Ok(FileSink { file, path: path.map(Path::to_path_buf), buffer: Vec::new() })
    }

    pub fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut self.buffer);
        w.write(rows).map_err(|e| Error::engine("ndjson sink", e))?;
        w.finish().map_err(|e| Error::engine("ndjson sink", e))
    }

    pub fn commit(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        match &mut self.file {
            Some(f) => {
                let what = || format!("write {}", self.path.as_deref().unwrap_or(Path::new("?")).display());
                f.write_all(&self.buffer).map_err(|e| Error::io(what(), e))?;
                f.sync_data().map_err(|e| Error::io(what(), e))?;
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.buffer).and_then(|_| out.flush()).map_err(|e| Error::io("write stdout", e))?;
            }
        }
        self.buffer.clear();
        Ok(())
    }
}
