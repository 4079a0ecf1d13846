//! The `lake` source: reads a lake table by name, optionally only some partitions or rows. weir-engine runs it as a
//! DataFusion query, so partition filters prune folders and predicates are pushed into the Parquet scan.
//!
//! ```yaml
//! source:
//!   type: lake
//!   table: raw.orders
//!   where: "date = '{{ ds }}'"
//! ```

use serde::Deserialize;
use weir_config::{from_node, Diagnostic, Node};

use crate::catalog::TableName;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSourceConfig {
    /// Table name as `zone.table`.
    pub table: String,
    /// SQL condition on the table's columns (partition columns included).
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
    /// Columns to read (default: all).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

impl LakeSourceConfig {
    pub fn parse(node: &Node) -> Result<LakeSourceConfig, Vec<Diagnostic>> {
        let cfg: LakeSourceConfig = from_node(node, &["type"])?;
        TableName::parse(&cfg.table).map_err(|e| vec![Diagnostic::at(node.get("table").unwrap_or(node), e)])?;
        Ok(cfg)
    }

    /// The query that reads this source.
    pub fn sql(&self) -> String {
        let quote = |c: &str| format!("\"{}\"", c.replace('"', "\"\""));
        let cols = match &self.columns {
            Some(c) if !c.is_empty() => c.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            _ => "*".to_string(),
        };
        match &self.condition {
            Some(w) => format!("SELECT {cols} FROM {} WHERE {w}", self.table),
            None => format!("SELECT {cols} FROM {}", self.table),
        }
    }
}
