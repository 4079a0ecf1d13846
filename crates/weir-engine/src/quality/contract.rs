//! Schema contracts: every lake table keeps the history of its schema in `_weir_schema.json` inside its folder,
//! written in the same commit as the data. Each run compares its output with the latest version, so drift between
//! two runs is seen even when nobody wrote a schema down, and the sink's `contract` says what to do about it:
//!
//! - `evolve` (default): new columns are added, widening type changes (int32 to int64, int to double, date to
//!   timestamp) are allowed, columns missing from a run read as null; any other type change fails the task.
//! - `freeze`: any change fails the task, with a diff of expected and found columns.
//!
//! Readers (`weir sql`, models) use the latest version as the table schema, so files written before a column was
//! added or widened read with it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use weir_core::position::is_hidden;
use weir_core::{Error, Result};

pub const SCHEMA_FILE: &str = "_weir_schema.json";

pub use weir_lake::SchemaContract as ContractMode;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub version: u32,
    pub run_id: String,
    pub recorded_at: String,
    pub columns: Vec<ColumnDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SchemaHistory {
    pub versions: Vec<SchemaVersion>,
}

impl SchemaHistory {
    pub fn load(table_dir: &Path) -> Result<SchemaHistory> {
        let path = table_dir.join(SCHEMA_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                Error::data(
                    weir_core::error::Location { file: Some(path.clone()), ..Default::default() },
                    format!("unreadable schema history: {e}"),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SchemaHistory::default()),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    pub fn latest(&self) -> Option<&SchemaVersion> {
        self.versions.last()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}

/// The columns of a schema, hidden ones left out.
pub fn columns_of(schema: &Schema) -> Vec<ColumnDef> {
    schema
        .fields()
        .iter()
        .filter(|f| !is_hidden(f.name()))
        .map(|f| ColumnDef { name: f.name().clone(), data_type: f.data_type().to_string() })
        .collect()
}

/// The latest version as an Arrow schema, for readers.
pub fn arrow_schema(version: &SchemaVersion) -> Option<SchemaRef> {
    let fields: Option<Vec<Field>> = version
        .columns
        .iter()
        .map(|c| DataType::from_str(&c.data_type).ok().map(|t| Field::new(&c.name, t, true)))
        .collect();
    fields.map(|f| Arc::new(Schema::new(f)))
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchemaDiff {
    pub added: Vec<ColumnDef>,
    pub removed: Vec<ColumnDef>,
    /// (column, old type, new type)
    pub retyped: Vec<(String, String, String)>,
    /// (old name, new name): a removed and an added column of the same type at the same position.
    pub renamed: Vec<(String, String)>,
}

impl SchemaDiff {
    pub fn between(old: &[ColumnDef], new: &[ColumnDef]) -> SchemaDiff {
        let mut d = SchemaDiff::default();
        for c in new {
            match old.iter().find(|o| o.name == c.name) {
                None => d.added.push(c.clone()),
                Some(o) if o.data_type != c.data_type => {
                    d.retyped.push((c.name.clone(), o.data_type.clone(), c.data_type.clone()))
                }
                Some(_) => {}
            }
        }
        d.removed = old.iter().filter(|o| !new.iter().any(|c| c.name == o.name)).cloned().collect();
        // A column that left and one that arrived at the same place with the same type look like a rename.
        let mut renamed = Vec::new();
        d.removed.retain(|r| {
            let pos_old = old.iter().position(|o| o.name == r.name);
            let twin = d
                .added
                .iter()
                .position(|a| a.data_type == r.data_type && new.iter().position(|c| c.name == a.name) == pos_old);
            match twin {
                Some(i) => {
                    renamed.push((r.name.clone(), d.added.remove(i).name));
                    false
                }
                None => true,
            }
        });
        d.renamed = renamed;
        d
    }

    pub fn is_empty(&self) -> bool {
        *self == SchemaDiff::default()
    }

    /// One line per change: `+ coupon_code: Utf8`, `- legacy_flag: Boolean`, `~ amount: Int64 -> Utf8`,
    /// `? cust_id -> customer_id (renamed?)`.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(self.added.iter().map(|c| format!("+ {}: {} (added)", c.name, c.data_type)));
        out.extend(self.removed.iter().map(|c| format!("- {}: {} (removed)", c.name, c.data_type)));
        out.extend(self.retyped.iter().map(|(c, a, b)| format!("~ {c}: {a} -> {b} (retyped)")));
        out.extend(self.renamed.iter().map(|(a, b)| format!("? {a} -> {b} (looks renamed: same type and place)")));
        out
    }
}

/// Whether values of `from` fit in `to` without loss, so old files can be read with the new type.
pub fn is_widening(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 => Some(2),
        Int32 => Some(3),
        Int64 => Some(4),
        _ => None,
    };
    let urank = |t: &DataType| match t {
        UInt8 => Some(1),
        UInt16 => Some(2),
        UInt32 => Some(3),
        UInt64 => Some(4),
        _ => None,
    };
    match (from, to) {
        (Null, _) => true,
        (a, b) if rank(a).is_some() && rank(b).is_some() => rank(a) < rank(b),
        (a, b) if urank(a).is_some() && urank(b).is_some() => urank(a) < urank(b),
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64) => true,
        (Float16 | Float32, Float64) => true,
        (Date32, Timestamp(_, None)) => true,
        (Utf8, LargeUtf8 | Utf8View) => true,
        _ => false,
    }
}

/// What a run's output does to the contract: the new version to store (if any), or an error.
pub fn enforce(
    table: &str,
    mode: ContractMode,
    history: &SchemaHistory,
    output: &[ColumnDef],
    run_id: &str,
) -> Result<(SchemaDiff, Option<SchemaVersion>)> {
    let Some(latest) = history.latest() else {
        let first = SchemaVersion {
            version: 1,
            run_id: run_id.to_string(),
            recorded_at: chrono::Utc::now().to_rfc3339(),
            columns: output.to_vec(),
        };
        return Ok((SchemaDiff::default(), Some(first)));
    };
    let diff = SchemaDiff::between(&latest.columns, output);
    if diff.is_empty() {
        return Ok((diff, None));
    }
    let table_of = |d: &SchemaDiff| {
        let mut text = format!("schema of {table} changed (contract version {}):\n", latest.version);
        text.push_str("  expected: ");
        text.push_str(
            &latest.columns.iter().map(|c| format!("{} {}", c.name, c.data_type)).collect::<Vec<_>>().join(", "),
        );
        text.push_str("\n  found:    ");
        text.push_str(&output.iter().map(|c| format!("{} {}", c.name, c.data_type)).collect::<Vec<_>>().join(", "));
        for l in d.lines() {
            text.push_str("\n  ");
            text.push_str(&l);
        }
        text
    };
    match mode {
        ContractMode::Freeze => Err(Error::data(
            Default::default(),
            format!("{}\nthe sink's contract is `freeze`: no change is allowed", table_of(&diff)),
        )),
        ContractMode::Evolve => {
            let narrowing: Vec<&(String, String, String)> = diff
                .retyped
                .iter()
                .filter(|(_, a, b)| match (DataType::from_str(a), DataType::from_str(b)) {
                    (Ok(a), Ok(b)) => !is_widening(&a, &b),
                    _ => true,
                })
                .collect();
            if !narrowing.is_empty() {
                return Err(Error::data(
                    Default::default(),
                    format!(
                        "{}\nthe sink's contract is `evolve`, which allows new columns and widening types only; {} cannot be read as the new type. Cast it back in a step, or rewrite the table with `mode: overwrite`",
                        table_of(&diff),
                        narrowing.iter().map(|(c, a, b)| format!("`{c}` ({a} -> {b})")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            // Keep every known column (with its widened type), then the new ones.
            let mut columns: Vec<ColumnDef> = latest
                .columns
                .iter()
                .map(|c| output.iter().find(|o| o.name == c.name).cloned().unwrap_or_else(|| c.clone()))
                .collect();
            columns.extend(output.iter().filter(|o| !latest.columns.iter().any(|c| c.name == o.name)).cloned());
            let changed = columns != latest.columns;
            let next = changed.then(|| SchemaVersion {
                version: latest.version + 1,
                run_id: run_id.to_string(),
                recorded_at: chrono::Utc::now().to_rfc3339(),
                columns,
            });
            Ok((diff, next))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(spec: &[(&str, &str)]) -> Vec<ColumnDef> {
        spec.iter().map(|(n, t)| ColumnDef { name: n.to_string(), data_type: t.to_string() }).collect()
    }

    fn history(spec: &[(&str, &str)]) -> SchemaHistory {
        SchemaHistory {
            versions: vec![SchemaVersion {
                version: 1,
                run_id: "r0".into(),
                recorded_at: String::new(),
                columns: cols(spec),
            }],
        }
    }

    #[test]
    fn diff_names_added_removed_retyped_and_renamed_looking_columns() {
        let d = SchemaDiff::between(
            &cols(&[("id", "Int64"), ("cust_id", "Int64"), ("amount", "Float64"), ("flag", "Boolean")]),
            &cols(&[("id", "Int32"), ("customer_id", "Int64"), ("amount", "Float64"), ("coupon", "Utf8")]),
        );
        assert_eq!(d.retyped, vec![("id".to_string(), "Int64".to_string(), "Int32".to_string())]);
        assert_eq!(d.renamed, vec![("cust_id".to_string(), "customer_id".to_string())]);
        assert_eq!(d.added, cols(&[("coupon", "Utf8")]));
        assert_eq!(d.removed, cols(&[("flag", "Boolean")]));
    }

    #[test]
    fn evolve_adds_and_widens_but_rejects_narrowing_and_freeze_rejects_all() {
        let h = history(&[("id", "Int32"), ("amount", "Float64")]);
        let (_, next) = enforce(
            "t.x",
            ContractMode::Evolve,
            &h,
            &cols(&[("id", "Int64"), ("amount", "Float64"), ("c", "Utf8")]),
            "r1",
        )
        .unwrap();
        let next = next.unwrap();
        assert_eq!(next.version, 2);
        assert_eq!(next.columns, cols(&[("id", "Int64"), ("amount", "Float64"), ("c", "Utf8")]));
        let err = enforce("t.x", ContractMode::Evolve, &h, &cols(&[("id", "Utf8"), ("amount", "Float64")]), "r1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`id` (Int32 -> Utf8)"), "{err}");
        let err = enforce("t.x", ContractMode::Freeze, &h, &cols(&[("id", "Int32")]), "r1").unwrap_err().to_string();
        assert!(
            err.contains("- amount: Float64 (removed)") && err.contains("expected: id Int32, amount Float64"),
            "{err}"
        );
        let (_, same) =
            enforce("t.x", ContractMode::Freeze, &h, &cols(&[("id", "Int32"), ("amount", "Float64")]), "r1").unwrap();
        assert!(same.is_none());
    }
}
