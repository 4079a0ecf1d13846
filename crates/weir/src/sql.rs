//! `weir sql "SELECT ..."`: queries the lake from the terminal. Every lake table is visible as `zone.table`.

use std::path::Path;

use crate::output::print_batches;
use crate::Exit;

pub async fn sql(project_dir: &Path, query: &str, format: &str, limit: usize, as_of: Option<&str>) -> Result<(), Exit> {
    let project = crate::run::load_project(project_dir)?;
    let engine = weir_engine::Engine::for_project(&project)?;
    engine.set_as_of(as_of.map(weir_engine::session::AsOf::parse));
    let tables = engine.register_lake().await?;
    tracing::info!(tables = tables.len(), "lake tables registered");
    let batches = engine.sql_collect(query, "query").await?;
    print_batches(&batches, format, if format == "table" { limit } else { usize::MAX })?;
    Ok(())
}
