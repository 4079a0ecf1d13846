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

/// Prints every diagnostic and returns the exit for invalid configuration.
pub fn report_diagnostics(diags: &[weir_config::Diagnostic]) -> crate::Exit {
    for d in diags {
        eprintln!("{d}");
    }
    crate::exit(2, anyhow::anyhow!("{} problem{} found", diags.len(), if diags.len() == 1 { "" } else { "s" }))
}
