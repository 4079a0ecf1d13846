//! Check results are kept with the run, in the lake table `_weir.check_results` (one row per check per run,
//! partitioned by logical date), so `weir quality TABLE`, `weir sql` and later the web UI can show them, and a
//! `row_count` check can compare with the previous run.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use weir_core::{Error, Result, RunContext};
use weir_lake::delta::{DeltaTableWriter, DeltaWriteOptions};
use weir_lake::{Lake, ParquetTableWriter, WriteMode, WriterOptions};

use super::checks::CheckResult;
use crate::Engine;

pub const RESULTS_TABLE: &str = "_weir.check_results";

pub fn results_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("pipeline", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("check_name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("rows_checked", DataType::UInt64, false),
        Field::new("failing_rows", DataType::UInt64, false),
        Field::new("observed", DataType::Utf8, false),
        Field::new("sample", DataType::Utf8, false),
        Field::new("checked_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]))
}

/// Appends one run's results of one task: Parquet on a local lake, Delta on object storage.
pub async fn store(
    lake: &Lake,
    run: &RunContext,
    pipeline: &str,
    task: &str,
    table: &str,
    results: &[CheckResult],
) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let n = results.len();
    let text = |f: &dyn Fn(&CheckResult) -> String| -> ArrayRef {
        Arc::new(StringArray::from(results.iter().map(f).collect::<Vec<_>>()))
    };
    let now = chrono::Utc::now().timestamp_micros();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![run.run_id.as_str(); n])),
        Arc::new(StringArray::from(vec![pipeline; n])),
        Arc::new(StringArray::from(vec![task; n])),
        Arc::new(StringArray::from(vec![table; n])),
        text(&|r| r.name.clone()),
        text(&|r| r.kind.to_string()),
        text(&|r| r.severity.as_str().to_string()),
        text(&|r| r.status.as_str().to_string()),
        Arc::new(UInt64Array::from(results.iter().map(|r| r.rows_checked).collect::<Vec<_>>())),
        Arc::new(UInt64Array::from(results.iter().map(|r| r.failing_rows).collect::<Vec<_>>())),
        text(&|r| r.observed.clone()),
        text(&|r| format!("[{}]", r.sample.join(","))),
        Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
    ];
    let batch = RecordBatch::try_new(results_schema(), cols).map_err(|e| Error::engine("check results", e))?;
    let location = lake.location("_weir", "check_results");
    let Some(dir) = location.local.clone() else {
        let options = DeltaWriteOptions {
            mode: WriteMode::Append,
            partition_by: Vec::new(),
            static_partition: vec![("date".to_string(), run.ds())],
            compression: parquet::basic::Compression::SNAPPY,
            row_group_rows: 1 << 20,
            target_file_size: 128 << 20,
            app_id: format!("weir/{pipeline}/{task}/{}/checks/{}", run.ds(), run.run_id),
            replace_interval: false,
            keys: Vec::new(),
            delete_when: None,
            scd2_as_of: None,
            commit_info: Vec::new(),
        };
        let mut writer = DeltaTableWriter::open(&location, &results_schema(), options).await?;
        writer.write(&batch).await?;
        writer.commit().await?;
        return Ok(());
    };
    let options = WriterOptions {
        mode: WriteMode::Append,
        static_partition: Some(format!("date={}", run.ds())),
        wait_for_lock: Some(std::time::Duration::from_secs(60)),
        ..Default::default()
    };
    let mut writer = ParquetTableWriter::open(&dir, results_schema(), options, &run.run_id)?;
    writer.write(&batch)?;
    writer.commit()?;
    Ok(())
}

/// Rows counted by the latest earlier run of a `row_count` check on `table`.
pub async fn previous_row_count(engine: &Engine, table: &str, check: &str, run_id: &str) -> Result<Option<u64>> {
    let tables = engine.register_lake().await?;
    if !tables.iter().any(|t| t.name.to_string() == RESULTS_TABLE) {
        return Ok(None);
    }
    let q = |s: &str| s.replace('\'', "''");
    let sql = format!(
        "SELECT rows_checked FROM _weir.check_results WHERE table_name = '{}' AND check_name = '{}' AND run_id <> '{}' ORDER BY checked_at DESC LIMIT 1",
        q(table),
        q(check),
        q(run_id)
    );
    let batches = engine.sql_collect(&sql, "previous check results").await?;
    Ok(batches.iter().find(|b| b.num_rows() > 0).map(|b| {
        use arrow::array::AsArray;
        b.column(0).as_primitive::<arrow::datatypes::UInt64Type>().value(0)
    }))
}
