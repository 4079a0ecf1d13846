//! `weir check connections`: connects to every connection of weir.yaml and to the lake, and says which answer, so
//! a wrong password or an unreachable host shows up before a pipeline runs at 3 a.m.

use std::path::Path;

use anyhow::anyhow;

use crate::{exit, Exit};

pub async fn connections(project_dir: &Path) -> Result<(), Exit> {
    let project = crate::run::load_project(project_dir)?;
    let mut failed = 0;
    let lake = weir_lake::Lake::for_project(&project)?;
    match weir_lake::list_tables(&lake).await {
        Ok(tables) => println!("  ✓ lake           {lake} ({} tables)", tables.len()),
        Err(e) => {
            failed += 1;
            println!("  ✗ lake           {lake}: {e}");
        }
    }
    for (name, connection) in &project.connections {
        let outcome = match connection.kind.as_str() {
            "postgres" => match weir_connect::connection::connection_url(connection) {
                Ok(url) => match weir_connect::postgres::connect(&url).await {
                    Ok(client) => client
                        .query_one("SELECT current_database()::text, split_part(version(), ' ', 2)", &[])
                        .await
                        .map(|row| {
                            format!("database {}, PostgreSQL {}", row.get::<_, String>(0), row.get::<_, String>(1))
                        })
                        .map_err(|e| weir_connect::postgres::pg_error(&e)),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            },
            "mysql" => match weir_connect::connection::connection_url(connection) {
                Ok(url) => weir_connect::mysql::ping(&url).await,
                Err(e) => Err(e.to_string()),
            },
            other => Err(format!("connection type `{other}` cannot be checked (known: postgres, mysql)")),
        };
        match outcome {
            Ok(what) => println!("  ✓ {name:<14} {what}"),
            Err(e) => {
                failed += 1;
                println!("  ✗ {name:<14} {e}");
            }
        }
    }
    if failed > 0 {
        return Err(exit(1, anyhow!("{failed} connection(s) failed")));
    }
    Ok(())
}
