//! `weir table ...`: what the lake holds, table by table; a Delta table's commits, and its maintenance (optimize,
//! vacuum, restore).

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use weir_lake::{list_tables, LakeTable, TableFormat};

use crate::output::print_batches;
use crate::{exit, Exit};

fn text_batch(columns: &[&str], rows: Vec<Vec<String>>) -> Result<RecordBatch, Exit> {
    let schema =
        Arc::new(Schema::new(columns.iter().map(|c| Field::new(*c, DataType::Utf8, false)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| Arc::new(StringArray::from(rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>())) as ArrayRef)
        .collect();
    RecordBatch::try_new(schema, arrays).map_err(|e| exit(1, anyhow!(e)))
}

async fn shape_of(t: &LakeTable) -> Result<weir_lake::TableShape, Exit> {
    Ok(weir_lake::shape(t).await?)
}

/// Options of the maintenance actions.
#[derive(Debug, Default)]
pub struct Maintenance {
    pub version: Option<u64>,
    pub retain_hours: Option<u64>,
    pub dry_run: bool,
    pub zorder: Vec<String>,
    pub target_size_mb: Option<u64>,
}

pub async fn table(
    project_dir: &Path,
    action: &str,
    name: Option<&str>,
    format: &str,
    options: Maintenance,
) -> Result<(), Exit> {
    let project = crate::run::load_project(project_dir)?;
    let lake = weir_lake::Lake::for_project(&project)?;
    let tables = list_tables(&lake).await?;
    if action == "list" {
        let mut rows = Vec::new();
        for t in &tables {
            let shape = shape_of(t).await?;
            rows.push(vec![
                t.name.to_string(),
                t.format.as_str().to_string(),
                shape.version.map(|v| v.to_string()).unwrap_or_default(),
                shape.partition_columns.join(", "),
                shape.files.to_string(),
                indicatif::HumanBytes(shape.bytes).to_string(),
            ]);
        }
        let batch = text_batch(&["table", "format", "version", "partitioned_by", "files", "size"], rows)?;
        return print_batches(&[batch], format, usize::MAX).map_err(Exit::from);
    }
    let name =
        name.ok_or_else(|| exit(2, anyhow!("`weir table {action}` needs a table name, such as silver.orders")))?;
    let Some(t) = tables.iter().find(|t| t.name.to_string() == name) else {
        let known: Vec<String> = tables.iter().map(|t| t.name.to_string()).collect();
        let hint = weir_config::diag::did_you_mean(name, known.iter().map(String::as_str)).unwrap_or_default();
        return Err(exit(1, anyhow!("no lake table `{name}` {hint}")));
    };
    match action {
        "describe" => {
            let engine = weir_engine::Engine::for_project(&project)?;
            engine.register_lake().await?;
            let batches = engine.sql_collect(&format!("DESCRIBE {name}"), "describe").await?;
            print_batches(&batches, format, usize::MAX)?;
            let shape = shape_of(t).await?;
            if format == "table" {
                println!("format: {}", t.format.as_str());
                println!("location: {}", t.location);
                if let Some(v) = shape.version {
                    println!("version: {v}");
                }
                let parts = &shape.partition_columns;
                println!("partitioned by: {}", if parts.is_empty() { "-".into() } else { parts.join(", ") });
                println!("files: {}, size: {}", shape.files, indicatif::HumanBytes(shape.bytes));
            }
            Ok(())
        }
        _ if t.format != TableFormat::Delta => Err(exit(
            1,
            anyhow!("`{name}` is a Parquet table; `{action}` needs a Delta table (`format: delta` on its sink)"),
        )),
        "optimize" => {
            let target = options.target_size_mb.map(|mb| mb << 20);
            let s = weir_lake::delta::optimize(&t.location, target, options.zorder).await?;
            println!("{name}: {} files compacted into {} (version {})", s.files_removed, s.files_added, s.version);
            Ok(())
        }
        "vacuum" => {
            let deleted = weir_lake::delta::vacuum(&t.location, options.retain_hours, options.dry_run).await?;
            let verb = if options.dry_run { "would delete" } else { "deleted" };
            println!("{name}: {verb} {} unreferenced files", deleted.len());
            for f in deleted.iter().take(20) {
                println!("  {f}");
            }
            Ok(())
        }
        "restore" => {
            let version =
                options.version.ok_or_else(|| exit(2, anyhow!("`weir table restore {name}` needs `--version N`")))?;
            let (new_version, restored, removed) = weir_lake::delta::restore(&t.location, version).await?;
            println!(
                "{name}: restored version {version} as version {new_version} ({restored} files back, {removed} removed)"
            );
            Ok(())
        }
        "history" => {
            let entries = weir_lake::delta::history(&t.location, None).await?;
            let rows = entries
                .into_iter()
                .map(|e| {
                    let when = e
                        .timestamp
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default();
                    vec![e.version.to_string(), when, e.operation, e.parameters, e.app]
                })
                .collect();
            let batch = text_batch(&["version", "timestamp", "operation", "parameters", "rows"], rows)?;
            print_batches(&[batch], format, usize::MAX).map_err(Exit::from)
        }
        other => Err(exit(2, anyhow!("unknown table action `{other}`"))),
    }
}
