//! Printing record batches for people (a table) and for programs (CSV, NDJSON).

use std::io::Write;

use arrow::array::RecordBatch;
use weir_core::{Error, Result};

pub fn print_batches(batches: &[RecordBatch], format: &str, limit: usize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| Error::io("write to stdout", e);
    match format {
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for b in batches {
                w.write(b).map_err(|e| Error::engine("write csv", e))?;
            }
        }
        "json" => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                w.write(b).map_err(|e| Error::engine("write json", e))?;
            }
            w.finish().map_err(|e| Error::engine("write json", e))?;
        }
        _ => {
            let total: usize = batches.iter().map(|b| b.num_rows()).sum();
            let mut shown = Vec::new();
            let mut left = limit;
            for b in batches {
                if left == 0 {
                    break;
                }
                let n = b.num_rows().min(left);
                shown.push(b.slice(0, n));
                left -= n;
            }
            let table =
                arrow::util::pretty::pretty_format_batches(&shown).map_err(|e| Error::engine("format table", e))?;
            writeln!(out, "{table}").map_err(io)?;
            if total > limit {
                writeln!(out, "({limit} of {total} rows shown; use --limit or --format csv)").map_err(io)?;
            } else {
                writeln!(out, "({total} rows)").map_err(io)?;
            }
        }
    }
    Ok(())
}

pub use weir_core::thousands;

/// The exit for invalid configuration, carrying every diagnostic: the command line prints each on its own line
/// before the summary, the Python package puts them in its `ConfigError`.
pub fn report_diagnostics(diags: &[weir_config::Diagnostic]) -> crate::Exit {
    crate::exit(2, anyhow::Error::new(Diagnostics(diags.to_vec())))
}

/// Problems found in a project's files, each with its file and line.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<weir_config::Diagnostic>);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} found", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}
