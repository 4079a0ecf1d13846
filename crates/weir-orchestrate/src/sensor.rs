//! `sensor:` tasks: wait until a file lands, a lake partition holds rows, or a table's newest row is recent enough,
//! looking every `poke_interval`, and fail after `timeout` saying what was still missing. Downstream tasks then
//! start on data that is there, instead of on a cron guess.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use weir_config::{Sensor, SensorKind};
use weir_core::{Error, Result};

use weir_engine::Engine;

/// Pokes until the sensor's condition holds; returns what it saw, for the attempt's log.
pub async fn wait(engine: &Engine, project_dir: &Path, task: &str, sensor: &Sensor) -> Result<String> {
    let started = Instant::now();
    let mut pokes = 0u64;
    loop {
        pokes += 1;
        let (ready, state) = poke(engine, project_dir, &sensor.kind).await?;
        if ready {
            return Ok(format!("{state} (poke {pokes}, after {:.1} s)\n", started.elapsed().as_secs_f64()));
        }
        let elapsed = started.elapsed();
        if elapsed >= sensor.timeout {
            return Err(Error::external(
                format!("task `{task}`: sensor"),
                format!("timed out after {} pokes in {:.0} s: {state}", pokes, elapsed.as_secs_f64()),
            ));
        }
        tracing::debug!(task, %state, "sensor waits");
        // The last poke happens at the timeout itself.
        tokio::time::sleep(sensor.poke_interval.min(sensor.timeout - elapsed)).await;
    }
}

/// Whether the condition holds now, and what was seen.
async fn poke(engine: &Engine, project_dir: &Path, kind: &SensorKind) -> Result<(bool, String)> {
    match kind {
        SensorKind::File(pattern) => {
            let full = project_dir.join(pattern);
            let found = glob::glob(&full.to_string_lossy())
                .map_err(|e| Error::config(Default::default(), format!("sensor file `{pattern}`: {e}")))?
                .flatten()
                .next();
            Ok(match found {
                Some(f) => (true, format!("{} is there", f.display())),
                None => (false, format!("no file {}", full.display())),
            })
        }
        SensorKind::Partition { table, partition } => {
            if !table_exists(engine, table).await? {
                return Ok((false, format!("table {table} does not exist yet")));
            }
            let mut predicates = Vec::new();
            for pair in partition.split('/').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Error::config(
                        Default::default(),
                        format!("sensor partition `{partition}`: use key=value[/key=value]"),
                    )
                })?;
                predicates.push(format!("\"{}\" = '{}'", k.replace('"', "\"\""), v.replace('\'', "''")));
            }
            let sql =
                format!("SELECT count(*) FROM (SELECT 1 FROM {table} WHERE {} LIMIT 1)", predicates.join(" AND "));
            let batches = engine.sql_collect(&sql, &format!("sensor on {table}")).await?;
            let rows = batches
                .first()
                .filter(|b| b.num_rows() > 0)
                .and_then(|b| b.column(0).as_primitive_opt::<arrow::datatypes::Int64Type>().map(|a| a.value(0)))
                .unwrap_or(0);
            Ok(if rows > 0 {
                (true, format!("{table} has rows in {partition}"))
            } else {
                (false, format!("{table} has no rows in {partition} yet"))
            })
        }
        SensorKind::Fresh { table, column, max_age } => {
            if !table_exists(engine, table).await? {
                return Ok((false, format!("table {table} does not exist yet")));
            }
            let sql = format!("SELECT max(\"{}\") FROM {table}", column.replace('"', "\"\""));
            let batches = engine.sql_collect(&sql, &format!("sensor on {table}")).await?;
            let newest = match batches.first().filter(|b| b.num_rows() > 0) {
                Some(b) => {
                    let ts = arrow::compute::cast(b.column(0), &DataType::Timestamp(TimeUnit::Microsecond, None))
                        .map_err(|e| Error::config(Default::default(), format!("sensor column `{column}`: {e}")))?;
                    let ts = ts.as_primitive::<TimestampMicrosecondType>();
                    (!ts.is_null(0)).then(|| ts.value(0))
                }
                None => None,
            };
            let Some(newest) = newest.and_then(chrono::DateTime::from_timestamp_micros) else {
                return Ok((false, format!("{table} has no {column} yet")));
            };
            let age = (chrono::Utc::now() - newest).to_std().unwrap_or(Duration::ZERO);
            let text = format!(
                "{table}.{column} is {:.0} s old (newest {newest}, max {} s)",
                age.as_secs_f64(),
                max_age.as_secs()
            );
            Ok((age <= *max_age, text))
        }
    }
}

async fn table_exists(engine: &Engine, table: &str) -> Result<bool> {
    let tables = engine.register_lake().await?;
    Ok(tables.iter().any(|t| t.name.to_string() == table))
}
