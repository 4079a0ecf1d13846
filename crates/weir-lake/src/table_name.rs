//! The name of a lake table, `zone.table`: parsed and checked once, turned into a folder or a URL by the storage
//! layer. A leaf module: the catalog, the storage and the sink settings all name tables.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub zone: String,
    pub name: String,
}

impl TableName {
    pub fn parse(s: &str) -> Result<TableName, String> {
        let valid =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        match s.split_once('.') {
            Some((zone, name)) if valid(zone) && valid(name) => {
                Ok(TableName { zone: zone.to_string(), name: name.to_string() })
            }
            _ => Err(format!(
                "table name `{s}` must be `zone.table` in lower case letters, digits and `_`, such as `raw.orders`"
            )),
        }
    }

    pub fn dir(&self, lake_root: &Path) -> PathBuf {
        lake_root.join(&self.zone).join(&self.name)
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.zone, self.name)
    }
}
