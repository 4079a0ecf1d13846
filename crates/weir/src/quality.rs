//! `weir quality TABLE` shows the stored check results of a table (latest run by default), and `weir schema
//! diff|show TABLE` its recorded schema versions and the drift between them.

use std::path::Path;

use anyhow::anyhow;
use weir_engine::quality::contract::{SchemaDiff, SchemaHistory};
use weir_engine::quality::results::RESULTS_TABLE;

use crate::output::print_batches;
use crate::{exit, Exit};

pub async fn quality(project_dir: &Path, table: &str, all_runs: bool, format: &str) -> Result<(), Exit> {
    let project = crate::run::load_project(project_dir)?;
    let engine = weir_engine::Engine::for_project(&project)?;
    let tables = engine.register_lake().await?;
    if !tables.iter().any(|t| t.name.to_string() == RESULTS_TABLE) {
        return Err(exit(1, anyhow!("no check results yet: run a pipeline whose tasks have `checks`")));
    }
    let t = table.replace('\'', "''");
    let latest = if all_runs {
        String::new()
    } else {
        format!(
            " AND run_id = (SELECT run_id FROM _weir.check_results WHERE table_name = '{t}' ORDER BY checked_at DESC LIMIT 1)"
        )
    };
    let sql = format!(
        "SELECT date, run_id, task, check_name, severity, status, failing_rows, rows_checked, observed, sample \
         FROM _weir.check_results WHERE table_name = '{t}'{latest} ORDER BY checked_at DESC, check_name"
    );
    let batches = engine.sql_collect(&sql, "check results").await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(exit(1, anyhow!("no check results for table `{table}`")));
    }
    print_batches(&batches, format, usize::MAX)?;
    Ok(())
}

pub async fn schema(
    project_dir: &Path,
    action: &str,
    table: &str,
    from: Option<u32>,
    to: Option<u32>,
) -> Result<(), Exit> {
    let project = crate::run::load_project(project_dir)?;
    let name = weir_lake::TableName::parse(table).map_err(|e| exit(2, anyhow!(e)))?;
    let lake = weir_lake::Lake::for_project(&project)?;
    let history = SchemaHistory::load(&lake.table(&name)).await?;
    if history.versions.is_empty() {
        return Err(exit(1, anyhow!("table `{table}` has no recorded schema (it has not been written by weir yet)")));
    }
    let version = |v: u32| {
        history
            .versions
            .iter()
            .find(|s| s.version == v)
            .ok_or_else(|| exit(2, anyhow!("table `{table}` has schema versions 1 to {}", history.versions.len())))
    };
    match action {
        "show" => {
            let v = match to {
                Some(v) => version(v)?,
                None => history.latest().ok_or_else(|| exit(1, anyhow!("no versions")))?,
            };
            println!("{table}: schema version {} (run {}, {})", v.version, v.run_id, v.recorded_at);
            for c in &v.columns {
                println!("  {:<28} {}", c.name, c.data_type);
            }
        }
        _ => {
            let newest = history.versions.len() as u32;
            let to_v = to.unwrap_or(newest);
            let from_v = from.unwrap_or(to_v.saturating_sub(1).max(1));
            let (a, b) = (version(from_v)?, version(to_v)?);
            let diff = SchemaDiff::between(&a.columns, &b.columns);
            println!("{table}: schema version {} -> {} ({})", a.version, b.version, b.recorded_at);
            if diff.is_empty() {
                println!("  no changes");
            }
            for l in diff.lines() {
                println!("  {l}");
            }
        }
    }
    Ok(())
}
