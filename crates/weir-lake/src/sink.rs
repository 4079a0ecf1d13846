//! The `lake` sink: writes a task's output as Parquet into a lake table.
//!
//! ```yaml
//! sink:
//!   type: lake
//!   table: raw.orders
//!   partition: "date={{ ds }}"      # or partition_by: [order_date]
//!   mode: replace_partitions        # overwrite | append
//!   compression: zstd
//!   contract: freeze                # evolve (default) | freeze | discard_row | discard_value
//!   format: delta                   # parquet (default) | delta
//!   # mode: merge, keys: [order_id], delete_when: "source.status = 'deleted'"   (Delta: upsert)
//!   # history: scd2                                    (merge: keep every version, valid_from/valid_to/is_current)
//! ```

use serde::Deserialize;
use weir_config::{from_node, Compression, Diagnostic, Node};

use crate::partition::parse_static;
use crate::table_name::TableName;

/// How a write relates to what the table already holds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Replace the partitions this run writes, keep the others: re-running a date never duplicates it. An
    /// unpartitioned table is replaced whole.
    #[default]
    ReplacePartitions,
    /// Replace the whole table.
    Overwrite,
    /// Add new files next to the existing ones.
    Append,
    /// Upsert on `keys` (Delta tables): matching rows are updated (or deleted by `delete_when`), others inserted.
    Merge,
}

/// How a lake table is stored.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// Parquet files under Hive partitions, swapped in atomically (the raw zone's default).
    #[default]
    Parquet,
    /// A Delta Lake table: a transaction log, versions and time travel.
    Delta,
}

impl TableFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        }
    }
}

/// What a change of the output's schema against the table's recorded schema does (see weir-engine's `contract`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchemaContract {
    /// New columns are added and types may widen; anything else fails the task.
    #[default]
    Evolve,
    /// Any change fails the task with a diff.
    Freeze,
    /// The table keeps its schema; rows that do not fit it (a value in a new column, a value that does not
    /// convert to the column's type) go to the quarantine.
    DiscardRow,
    /// The table keeps its schema; values that do not fit it become null (new columns are left out), and each
    /// goes to the quarantine.
    DiscardValue,
}

impl SchemaContract {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaContract::Evolve => "evolve",
            SchemaContract::Freeze => "freeze",
            SchemaContract::DiscardRow => "discard_row",
            SchemaContract::DiscardValue => "discard_value",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSinkConfig {
    /// Table name as `zone.table` (`raw.orders`, `silver.orders`, `gold.daily_revenue`).
    pub table: String,
    /// A fixed Hive partition for all rows of this run, such as `date={{ ds }}`.
    #[serde(default)]
    pub partition: Option<String>,
    /// Columns whose values choose the partition of each row (stored in the folder names, not in the files).
    #[serde(default)]
    pub partition_by: Option<Vec<String>>,
    /// `replace_partitions` (default), `overwrite` or `append`.
    #[serde(default)]
    pub mode: WriteMode,
    /// Parquet compression; default from `weir.yaml`.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Rows per row group; default from `weir.yaml`.
    #[serde(default)]
    pub row_group_rows: Option<usize>,
    /// Start a new file after this many rows.
    #[serde(default)]
    pub max_file_rows: Option<usize>,
    /// Start a new file after about this many bytes.
    #[serde(default)]
    pub max_file_bytes: Option<usize>,
    /// `evolve` (default), `freeze`, `discard_row` or `discard_value`: what a schema change against the table's
    /// recorded schema does.
    #[serde(default)]
    pub contract: SchemaContract,
    /// `parquet` (default) or `delta`.
    #[serde(default)]
    pub format: TableFormat,
    /// `mode: merge`: the columns that identify a row.
    #[serde(default)]
    pub keys: Option<Vec<String>>,
    /// `mode: merge`: a matched target row is deleted when this holds (SQL over `source.` columns), and such a
    /// source row is never inserted.
    #[serde(default)]
    pub delete_when: Option<String>,
    /// `mode: merge`: `scd2` keeps every version of a row (slowly changing dimension type 2) instead of updating it.
    #[serde(default)]
    pub history: MergeHistory,
}

/// What a merge does with the previous values of a changed row.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MergeHistory {
    /// Overwrite them (SCD type 1).
    #[default]
    None,
    /// Keep them: the current version is closed (`valid_to` = the run's date, `is_current` = false) and the new
    /// values are inserted as the current version (`valid_from` = the run's date). A `delete_when` row closes the
    /// current version without a new one.
    Scd2,
}

/// The columns `history: scd2` adds to a merged table.
pub const SCD2_COLUMNS: [&str; 3] = ["valid_from", "valid_to", "is_current"];

impl LakeSinkConfig {
    pub fn parse(node: &Node) -> Result<LakeSinkConfig, Vec<Diagnostic>> {
        let cfg: LakeSinkConfig = from_node(node, &["type"])?;
        let mut diags = Vec::new();
        let at = |key: &str| node.get(key).unwrap_or(node);
        if let Err(e) = TableName::parse(&cfg.table) {
            diags.push(Diagnostic::at(at("table"), e));
        }
        if let Some(p) = &cfg.partition {
            if let Err(e) = parse_static(p) {
                diags.push(Diagnostic::at(at("partition"), e));
            }
        }
        if cfg.partition.is_some() && cfg.partition_by.is_some() {
            diags.push(Diagnostic::at(
                node,
                "give either `partition` (fixed) or `partition_by` (from columns), not both",
            ));
        }
        if cfg.mode == WriteMode::Merge {
            if cfg.format != TableFormat::Delta {
                diags.push(Diagnostic::at(at("mode"), "`mode: merge` needs a Delta table: add `format: delta`"));
            }
            if cfg.keys.as_ref().is_none_or(|k| k.is_empty()) {
                diags.push(Diagnostic::at(at("mode"), "`mode: merge` needs `keys: [column, ...]` to match rows on"));
            }
        } else if cfg.keys.is_some() || cfg.delete_when.is_some() || cfg.history != MergeHistory::None {
            diags.push(Diagnostic::at(at("keys"), "`keys`, `delete_when` and `history` apply to `mode: merge` only"));
        }
        if cfg.row_group_rows == Some(0) || cfg.max_file_rows == Some(0) || cfg.max_file_bytes == Some(0) {
            diags.push(Diagnostic::at(node, "row and byte limits must be greater than zero"));
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }
}
