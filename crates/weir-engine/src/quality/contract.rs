//! Schema contracts: every lake table keeps the history of its schema in `_weir_schema.json` inside its folder,
//! written in the same commit as the data. Each run compares its output with the latest version, so drift between
//! two runs is seen even when nobody wrote a schema down, and the sink's `contract` says what to do about it:
//!
//! - `evolve` (default): new columns are added, widening type changes (int32 to int64, int to double, date to
//!   timestamp) are allowed, columns missing from a run read as null; any other type change fails the task.
//! - `freeze`: any change fails the task, with a diff of expected and found columns.
//! - `discard_row` / `discard_value`: the table keeps its schema and each batch is made to fit it ([`Conform`]):
//!   values are converted to the recorded types and missing columns read as null. A value that does not fit (one
//!   in a column the table does not have, or one that does not convert) sends its row to the quarantine
//!   (`discard_row`) or is left out and recorded there (`discard_value`).
//!
//! Readers (`weir sql`, models) use the latest version as the table schema, so files written before a column was
//! added or widened read with it.

use std::str::FromStr;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::{cast_with_options, filter_record_batch, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use weir_core::position::is_hidden;
use weir_core::{Error, Result};

use super::{RejectAction, Rejects};

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
    /// The history recorded beside a table's data (empty when the table has none yet).
    pub async fn load(table: &weir_lake::TableLocation) -> Result<SchemaHistory> {
        match table.read_file(SCHEMA_FILE).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                let file = table.local.as_ref().map(|d| d.join(SCHEMA_FILE));
                Error::data(
                    weir_core::error::Location { file, ..Default::default() },
                    format!("unreadable schema history {SCHEMA_FILE} of {table}: {e}"),
                )
            }),
            None => Ok(SchemaHistory::default()),
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
    let mut diff = SchemaDiff::between(&latest.columns, output);
    // A value that fits the recorded type (an all-null column read as Null, int32 into int64, int into double) is
    // converted to it: not drift.
    let fits = |new: &str, old: &str| match (DataType::from_str(new), DataType::from_str(old)) {
        (Ok(n), Ok(o)) => is_widening(&n, &o),
        _ => false,
    };
    diff.retyped.retain(|(_, old, new)| !fits(new, old));
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
        // The table keeps its schema; `Conform` fits each batch to it.
        ContractMode::DiscardRow | ContractMode::DiscardValue => Ok((diff, None)),
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
                .map(|c| match output.iter().find(|o| o.name == c.name) {
                    Some(o) if !fits(&o.data_type, &c.data_type) => o.clone(),
                    _ => c.clone(),
                })
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

/// Where a column of the conformed batch comes from.
#[derive(Debug, Clone)]
enum Slot {
    Take(usize),
    Convert(usize, DataType),
    Null(DataType),
}

/// Fits a task's batches to a table's recorded schema under the `discard_row` and `discard_value` contracts.
pub struct Conform {
    schema: SchemaRef,
    slots: Vec<Slot>,
    /// Input columns the table does not have: (index, name).
    outside: Vec<(usize, String)>,
    discard_rows: bool,
    rejects: Option<Rejects>,
    rule: String,
    version: u32,
    /// Rows quarantined and values discarded, for the summary.
    pub rows_discarded: u64,
    pub values_discarded: u64,
}

impl std::fmt::Debug for Conform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conform").field("slots", &self.slots).field("outside", &self.outside).finish()
    }
}

impl Conform {
    /// The plan that fits `input` to `target` (the contract version this run writes: the latest, or the one
    /// `enforce` made), or None when nothing has to change. Under `evolve` this only converts values to types they
    /// fit and fills columns a run lacks with nulls; under the discarding contracts it also sets aside what does not
    /// fit. `passthrough` columns (partition columns, which are not in the files' schema) and hidden columns are
    /// kept as they are.
    pub fn plan(
        mode: ContractMode,
        target: Option<&SchemaVersion>,
        input: &SchemaRef,
        passthrough: &[String],
        rejects: Option<Rejects>,
    ) -> Result<Option<Conform>> {
        let discard_rows = mode == ContractMode::DiscardRow;
        let Some(latest) = target else { return Ok(None) };
        let mut fields = Vec::new();
        let mut slots = Vec::new();
        for c in &latest.columns {
            let ty = DataType::from_str(&c.data_type).map_err(|e| {
                Error::data(Default::default(), format!("recorded type `{}` of `{}`: {e}", c.data_type, c.name))
            })?;
            let slot = match input.index_of(&c.name) {
                Ok(i) if input.field(i).data_type() == &ty => Slot::Take(i),
                Ok(i) => Slot::Convert(i, ty.clone()),
                Err(_) => Slot::Null(ty.clone()),
            };
            fields.push(Field::new(&c.name, ty, true));
            slots.push(slot);
        }
        let mut outside = Vec::new();
        for (i, f) in input.fields().iter().enumerate() {
            let known = latest.columns.iter().any(|c| &c.name == f.name());
            if known {
                continue;
            }
            if is_hidden(f.name()) || passthrough.contains(f.name()) {
                fields.push(f.as_ref().clone());
                slots.push(Slot::Take(i));
            } else {
                outside.push((i, f.name().clone()));
            }
        }
        let identity = outside.is_empty()
            && slots.len() == input.fields().len()
            && slots.iter().enumerate().all(|(k, s)| matches!(s, Slot::Take(i) if *i == k));
        if identity {
            return Ok(None);
        }
        Ok(Some(Conform {
            schema: Arc::new(Schema::new(fields)),
            slots,
            outside,
            discard_rows,
            rejects,
            rule: format!("contract {}", mode.as_str()),
            version: latest.version,
            rows_discarded: 0,
            values_discarded: 0,
        }))
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn reject(&mut self, batch: &RecordBatch, mask: &BooleanArray, reason: &str, column: &str) -> Result<()> {
        let action = match (self.discard_rows, self.outside.iter().any(|(_, c)| c == column)) {
            (true, _) => RejectAction::RowQuarantined,
            (false, true) => RejectAction::ValueDiscarded,
            (false, false) => RejectAction::ValueNulled,
        };
        if let Some(r) = &self.rejects {
            r.record(batch, mask, &self.rule, reason, Some(column), action)?;
        }
        Ok(())
    }

    pub fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let err = |e| Error::engine("schema contract", e);
        let mut dropped: Option<BooleanArray> = None;
        let mark = |mask: &BooleanArray, dropped: &mut Option<BooleanArray>| -> Result<()> {
            *dropped = Some(match dropped.take() {
                None => mask.clone(),
                Some(d) => arrow::compute::or(&d, mask).map_err(err)?,
            });
            Ok(())
        };
        for (i, name) in self.outside.clone() {
            let col = batch.column(i);
            if col.null_count() == col.len() {
                continue;
            }
            let mask = arrow::compute::is_not_null(col).map_err(err)?;
            let reason = format!("column `{name}` is not in the table's schema (version {})", self.version);
            self.reject(&batch, &mask, &reason, &name)?;
            let hits = mask.true_count() as u64;
            if self.discard_rows {
                mark(&mask, &mut dropped)?;
            } else {
                self.values_discarded += hits;
            }
        }
        let options = CastOptions { safe: true, ..Default::default() };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.slots.len());
        for (k, slot) in self.slots.clone().iter().enumerate() {
            let col = match slot {
                Slot::Take(i) => batch.column(*i).clone(),
                Slot::Null(t) => new_null_array(t, n),
                Slot::Convert(i, t) => {
                    let src = batch.column(*i);
                    let out = cast_with_options(src, t, &options).map_err(|e| {
                        Error::data(
                            Default::default(),
                            format!(
                                "column `{}`: {} cannot be converted to {t}, its type in the table's schema: {e}",
                                self.schema.field(k).name(),
                                src.data_type()
                            ),
                        )
                    })?;
                    let exact = crate::ops::converted_exactly(src, &out)?;
                    if exact.iter().any(|e| !e) {
                        let mask: BooleanArray = exact.iter().map(|e| Some(!e)).collect();
                        let name = self.schema.field(k).name().clone();
                        let reason =
                            format!("value does not convert exactly to {t}, the column's type in the table's schema");
                        self.reject(&batch, &mask, &reason, &name)?;
                        if self.discard_rows {
                            mark(&mask, &mut dropped)?;
                            out
                        } else {
                            self.values_discarded += mask.true_count() as u64;
                            // The value is left out, not stored changed.
                            arrow::compute::nullif(&out, &mask).map_err(err)?
                        }
                    } else {
                        out
                    }
                }
            };
            columns.push(col);
        }
        let out = RecordBatch::try_new(self.schema.clone(), columns).map_err(err)?;
        match dropped {
            Some(d) if d.true_count() > 0 => {
                self.rows_discarded += d.true_count() as u64;
                let keep = arrow::compute::not(&d).map_err(err)?;
                filter_record_batch(&out, &keep).map_err(err)
            }
            _ => Ok(out),
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
