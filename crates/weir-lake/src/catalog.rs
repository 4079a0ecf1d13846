//! Finding lake tables by name. A table `zone.name` is the folder `<lake root>/zone/name/`; its Hive partition
//! columns are read off the folder names, so a table written by Spark or DuckDB in the same layout is found too. A
//! folder with a `_delta_log` is a Delta table, read through its log. On object storage the same layout is listed
//! through the store (only Delta tables live there).

use std::path::{Path, PathBuf};

use weir_core::Result;

use crate::storage::{Lake, TableLocation};

pub use crate::table_name::TableName;

#[derive(Debug, Clone)]
pub struct LakeTable {
    pub name: TableName,
    pub location: TableLocation,
    /// Hive partition columns, outermost first (Parquet tables; a Delta table's are in its log).
    pub partition_columns: Vec<String>,
    /// One data file, to read the schema from (Parquet tables).
    pub sample_file: Option<PathBuf>,
    pub format: crate::TableFormat,
}

fn visible(entry: &std::fs::DirEntry) -> bool {
    let name = entry.file_name();
    let name = name.to_string_lossy();
    !name.starts_with('.') && !name.starts_with('_')
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).filter(|e| visible(e) && e.path().is_dir()).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The first Parquet file under `dir` (depth-first, sorted), and the partition columns on the way to it.
fn first_file(dir: &Path, partitions: &mut Vec<String>, delta: bool) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).filter(visible).map(|e| e.path()).collect();
    entries.sort();
    if let Some(f) = entries.iter().find(|p| p.is_file() && p.extension().is_some_and(|e| e == "parquet")) {
        return Some(f.clone());
    }
    for sub in entries.iter().filter(|p| p.is_dir()) {
        let name = sub.file_name()?.to_string_lossy().into_owned();
        match name.split_once('=') {
            Some((col, _)) => {
                partitions.push(col.to_string());
                if let Some(f) = first_file(sub, partitions, delta) {
                    return Some(f);
                }
                partitions.pop();
            }
            // A Delta log may name files in any folder (a remote engine's `date=.../weir-<id>/`); `_delta_log` and
            // other underscored folders are not `visible`.
            None if delta => {
                if let Some(f) = first_file(sub, partitions, delta) {
                    return Some(f);
                }
            }
            None => {}
        }
    }
    None
}

/// Every table of the lake: on a local lake, the folders that hold at least one Parquet file; on object storage,
/// the Delta tables.
pub async fn list_tables(lake: &Lake) -> Result<Vec<LakeTable>> {
    match lake.local_root() {
        Some(root) => Ok(list_local_tables(root)),
        None => list_remote_tables(lake).await,
    }
}

async fn list_remote_tables(lake: &Lake) -> Result<Vec<LakeTable>> {
    let (_, store) = lake.bucket_store()?;
    let failed = |e: object_store::Error| crate::storage::storage_error(lake.url(), e);
    let root = lake.root_path();
    let last = |p: &object_store::path::Path| p.parts().next_back().map(|s| s.as_ref().to_string()).unwrap_or_default();
    let mut out = Vec::new();
    let mut zones = store.list_with_delimiter(Some(&root)).await.map_err(failed)?.common_prefixes;
    zones.sort();
    for zone in zones {
        let zone_name = last(&zone);
        if zone_name.starts_with('.') || (zone_name.starts_with('_') && zone_name != "_weir") {
            continue;
        }
        let mut tables = store.list_with_delimiter(Some(&zone)).await.map_err(failed)?.common_prefixes;
        tables.sort();
        for table in tables {
            let Ok(name) = TableName::parse(&format!("{zone_name}.{}", last(&table))) else { continue };
            let log = table.clone().join("_delta_log");
            let has_log = !store.list_with_delimiter(Some(&log)).await.map_err(failed)?.objects.is_empty();
            if has_log {
                out.push(LakeTable {
                    location: lake.table(&name),
                    name,
                    partition_columns: Vec::new(),
                    sample_file: None,
                    format: crate::TableFormat::Delta,
                });
            }
        }
    }
    Ok(out)
}

/// The tables of a local lake (see [`list_tables`]).
pub fn list_local_tables(lake_root: &Path) -> Vec<LakeTable> {
    let mut out = Vec::new();
    // `_weir` holds weir's own tables (check results); hidden from folder listings, still queryable by name.
    let mut zones = subdirs(lake_root);
    let meta = lake_root.join("_weir");
    if meta.is_dir() {
        zones.push(meta);
    }
    for zone_dir in zones {
        for table_dir in subdirs(&zone_dir) {
            let zone = zone_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let name = table_dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let Ok(tn) = TableName::parse(&format!("{zone}.{name}")) else { continue };
            let mut partitions = Vec::new();
            let delta = crate::delta::is_delta_table(&table_dir);
            let sample_file = first_file(&table_dir, &mut partitions, delta);
            // A Delta table is a table from its first commit, with or without files (no rows).
            if sample_file.is_some() || delta {
                let format = if delta { crate::TableFormat::Delta } else { crate::TableFormat::Parquet };
                out.push(LakeTable {
                    name: tn,
                    location: TableLocation::local(&table_dir),
                    partition_columns: partitions,
                    sample_file,
                    format,
                });
            }
        }
    }
    out
}

/// What a table's readers see: its version (Delta), files, bytes and partition columns; for Delta, those of its
/// current version.
#[derive(Debug, Clone)]
pub struct TableShape {
    pub version: Option<u64>,
    pub files: usize,
    pub bytes: u64,
    pub partition_columns: Vec<String>,
}

/// The [`TableShape`] of a table, read from its Delta log or by listing its Parquet files.
pub async fn shape(t: &LakeTable) -> Result<TableShape> {
    use futures::TryStreamExt;
    match t.format {
        crate::TableFormat::Delta => {
            let failed = |e: deltalake::DeltaTableError| weir_core::Error::engine(t.name.to_string(), e);
            let table = crate::delta::open(&t.location, None).await?;
            let snapshot = table.snapshot().map_err(failed)?;
            let files: Vec<_> =
                snapshot.snapshot().file_views(table.log_store().as_ref(), None).try_collect().await.map_err(failed)?;
            let bytes = files.iter().map(|f| f.size() as u64).sum();
            let partition_columns = snapshot.metadata().partition_columns().to_vec();
            Ok(TableShape { version: table.version(), files: files.len(), bytes, partition_columns })
        }
        crate::TableFormat::Parquet => {
            let mut files = 0;
            let mut bytes = 0;
            let pattern = format!("{}/**/*.parquet", t.location.local_dir("a Parquet table")?.display());
            for p in glob::glob(&pattern).into_iter().flatten().flatten() {
                if p.components().any(|c| c.as_os_str().to_string_lossy().starts_with('_')) {
                    continue;
                }
                files += 1;
                bytes += p.metadata().map(|m| m.len()).unwrap_or(0);
            }
            Ok(TableShape { version: None, files, bytes, partition_columns: t.partition_columns.clone() })
        }
    }
}
