//! Delta statistics of a Parquet file that another engine wrote for a table (a Ballista executor, Spark), read from
//! the file's footer: its rows, and per column its null count and bounds, so that readers skip the file on a filter
//! as they skip the files weir writes itself.
//!
//! A bound that did not hold for every row would make a reader skip rows that match, so a bound is recorded only
//! where it is certain: every row group of the file has statistics for the column, the column's type is one whose
//! Parquet order is the order readers compare in (whole numbers, dates, timestamps stored as UTC or wall-clock times
//! as the table says, text), and the value fits Delta's form (a timestamp's bounds are widened to whole
//! milliseconds, as Delta's statistics keep them; text longer than 32 characters is left out, as Delta's writers cut
//! it). Floating point columns get no bounds: Parquet's leave NaN out, which readers order above every number.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Date32Type, Int64Type, Schema, TimeUnit};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::basic::{ConvertedType, LogicalType, Type as PhysicalType};
use parquet::file::metadata::ParquetMetaData;
use parquet::schema::types::ColumnDescriptor;
use serde_json::{Map, Value};

/// Delta's writers keep text statistics to this many characters; longer bounds are not recorded.
const LONGEST_TEXT_BOUND: usize = 32;

/// The `stats` of a Delta Add action for a file with `metadata`, whose columns are `columns` (the table's data
/// columns, in the types the table stores): `numRecords`, and `minValues`, `maxValues` and `nullCount` for the
/// columns where they are certain.
pub fn delta_stats(metadata: &ParquetMetaData, columns: &Schema) -> Value {
    let groups = metadata.row_groups();
    let parquet_schema = metadata.file_metadata().schema_descr();
    let (mut mins, mut maxes, mut nulls) = (Map::new(), Map::new(), Map::new());
    for field in columns.fields() {
        // The file's column of that name (by name: another engine may write the columns in its own order).
        let Some(leaf) = parquet_schema.columns().iter().position(|c| c.path().parts() == [field.name().as_str()])
        else {
            continue;
        };
        if field.data_type().is_nested() {
            continue;
        }
        let Ok(converter) = StatisticsConverter::from_column_index(leaf, field, parquet_schema) else { continue };
        let converter = converter.with_missing_null_counts_as_zero(false);
        let null_counts = converter.row_group_null_counts(groups).ok();
        if let Some(counts) = null_counts.as_ref().filter(|c| c.null_count() == 0) {
            nulls.insert(field.name().clone(), Value::from(counts.values().iter().sum::<u64>()));
        }
        let (Ok(low), Ok(high)) = (converter.row_group_mins(groups), converter.row_group_maxes(groups)) else {
            continue;
        };
        // The row groups that bound the column; one without bounds must be all nulls, or the file's are unknown.
        let all_null =
            |g: usize| null_counts.as_ref().is_some_and(|c| c.is_valid(g) && c.value(g) == groups[g].num_rows() as u64);
        let has_bounds = |g: usize| low.is_valid(g) && high.is_valid(g);
        if !(0..groups.len()).all(|g| has_bounds(g) || all_null(g)) {
            continue;
        }
        let bounded: Vec<usize> = (0..groups.len()).filter(|&g| has_bounds(g)).collect();
        if bounded.is_empty() {
            continue;
        }
        if !orders_as_stored(field.data_type(), parquet_schema.column(leaf).as_ref()) {
            continue;
        }
        let (Some(min), Some(max)) = (bound(&low, &bounded, Side::Min), bound(&high, &bounded, Side::Max)) else {
            continue;
        };
        mins.insert(field.name().clone(), min);
        maxes.insert(field.name().clone(), max);
    }
    serde_json::json!({
        "numRecords": metadata.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Min,
    Max,
}

/// Whether the Parquet column `stored` keeps statistics in the order readers compare the table's `wanted` type in.
fn orders_as_stored(wanted: &DataType, stored: &ColumnDescriptor) -> bool {
    let logical = stored.logical_type_ref();
    let converted = stored.converted_type();
    match wanted {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            matches!(stored.physical_type(), PhysicalType::INT32 | PhysicalType::INT64)
                && match logical {
                    None => matches!(
                        converted,
                        ConvertedType::NONE
                            | ConvertedType::INT_8
                            | ConvertedType::INT_16
                            | ConvertedType::INT_32
                            | ConvertedType::INT_64
                    ),
                    Some(LogicalType::Integer(int)) => int.is_signed,
                    Some(_) => false,
                }
        }
        DataType::Date32 => {
            stored.physical_type() == PhysicalType::INT32
                && (matches!(logical, Some(LogicalType::Date)) || converted == ConvertedType::DATE)
        }
        // An INT96 timestamp's statistics are not ordered; a UTC instant must be stored as one, a wall-clock time
        // as one.
        DataType::Timestamp(_, zone) => {
            stored.physical_type() == PhysicalType::INT64
                && matches!(logical, Some(LogicalType::Timestamp(at))
                    if at.is_adjusted_to_u_t_c == zone.is_some())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            stored.physical_type() == PhysicalType::BYTE_ARRAY
                && (matches!(logical, Some(LogicalType::String)) || converted == ConvertedType::UTF8)
        }
        _ => false,
    }
}

/// The least (`Side::Min`) or greatest of the bounds of the row groups `bounded` in `bounds`, in Delta's JSON form.
fn bound(bounds: &ArrayRef, bounded: &[usize], side: Side) -> Option<Value> {
    let pick = |values: &mut dyn Iterator<Item = i64>| match side {
        Side::Min => values.min(),
        Side::Max => values.max(),
    };
    match bounds.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let wide = arrow::compute::cast(bounds, &DataType::Int64).ok()?;
            let wide = wide.as_primitive::<Int64Type>();
            pick(&mut bounded.iter().map(|&g| wide.value(g))).map(Value::from)
        }
        DataType::Date32 => {
            let days = bounds.as_primitive::<Date32Type>();
            let day = pick(&mut bounded.iter().map(|&g| days.value(g) as i64))?;
            let date = chrono::NaiveDate::from_num_days_from_ce_opt(i32::try_from(day).ok()?.checked_add(719_163)?)?;
            Some(Value::from(date.format("%Y-%m-%d").to_string()))
        }
        DataType::Timestamp(unit, zone) => {
            let ticks = arrow::compute::cast(bounds, &DataType::Int64).ok()?;
            let ticks = ticks.as_primitive::<Int64Type>();
            let tick = pick(&mut bounded.iter().map(|&g| ticks.value(g)))?;
            let per_milli: i64 = match unit {
                TimeUnit::Second => return timestamp_text(tick.checked_mul(1000)?, zone.is_some()),
                TimeUnit::Millisecond => 1,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1_000_000,
            };
            // Delta keeps milliseconds: the lower bound rounds down, the upper one up, so both still hold.
            let millis = match side {
                Side::Min => tick.div_euclid(per_milli),
                Side::Max => tick.div_euclid(per_milli) + i64::from(tick.rem_euclid(per_milli) != 0),
            };
            timestamp_text(millis, zone.is_some())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(bounds, &DataType::Utf8).ok()?;
            let text = text.as_string::<i32>();
            let values = bounded.iter().map(|&g| text.value(g));
            let chosen = match side {
                Side::Min => values.min(),
                Side::Max => values.max(),
            }?;
            (chosen.chars().count() <= LONGEST_TEXT_BOUND).then(|| Value::from(chosen))
        }
        _ => None,
    }
}

/// A timestamp bound as Delta's statistics write it: a UTC instant as `2026-03-25T10:15:00.250Z`, a wall-clock time
/// as `2026-03-25 10:15:00.250` (the fraction left out when it is zero).
fn timestamp_text(millis: i64, utc: bool) -> Option<Value> {
    let at = chrono::DateTime::from_timestamp_millis(millis)?.naive_utc();
    let format = match (utc, millis.rem_euclid(1000) == 0) {
        (true, true) => "%Y-%m-%dT%H:%M:%SZ",
        (true, false) => "%Y-%m-%dT%H:%M:%S%.3fZ",
        (false, true) => "%Y-%m-%d %H:%M:%S",
        (false, false) => "%Y-%m-%d %H:%M:%S%.3f",
    };
    Some(Value::from(at.format(format).to_string()))
}
