//! Source positions that travel with rows. A file source can append two hidden columns, the file and the line (or
//! record number) of each row; steps carry them through untouched, the quarantine reads them to say where a rejected
//! row came from, and sinks drop them. Hidden columns start with `_weir_`, which user columns should not.

/// The file a row was read from.
pub const SOURCE_FILE_COLUMN: &str = "_weir_source_file";
/// The row's line in a CSV or NDJSON file (one line per record; exact unless quoted fields span lines), or its
/// record number in a JSON array or Parquet file.
pub const SOURCE_LINE_COLUMN: &str = "_weir_source_line";

/// Whether a column is one of weir's hidden bookkeeping columns.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with("_weir_")
}
