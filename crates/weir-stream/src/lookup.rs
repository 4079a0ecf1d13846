//! Enrichment tables: user or merchant context joined to each event by key, from a lake table, a PostgreSQL query or
//! a file, held in memory as Arrow columns with a hash index, and reloaded every `refresh` in the background (the
//! events being decided keep the version they started with; a failed reload keeps the previous one and is logged).

use std::sync::{Arc, RwLock};

use ahash::RandomState;
use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{cast, concat_batches, take};
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::row::{RowConverter, SortField};
use hashbrown::HashMap;
use weir_core::{Error, Result};

use crate::config::{LookupConfig, LookupFrom, StreamConfig};
use crate::env::StreamEnv;

/// One loaded version of a lookup table.
#[derive(Debug)]
pub struct LookupTable {
    /// The value columns (the key column excluded).
    values: RecordBatch,
    index: HashMap<Box<[u8]>, u32, RandomState>,
    /// Converts the event's `on` column (and the table's key, cast to its type) to comparable bytes.
    key_type: DataType,
}

impl LookupTable {
    /// Indexes `batch` by `key`, cast to `key_type` (the event field's type). A duplicated key keeps its first row.
    pub fn build(batch: &RecordBatch, key: &str, key_type: &DataType, what: &str) -> Result<LookupTable> {
        let idx = batch.schema().index_of(key).map_err(|_| {
            Error::data(
                Default::default(),
                format!("lookup {what} has no column `{key}` (it has: {})", names(&batch.schema())),
            )
        })?;
        let keys = cast(batch.column(idx), key_type)
            .map_err(|e| Error::data(Default::default(), format!("lookup {what}: key `{key}`: {e}")))?;
        let converter =
            RowConverter::new(vec![SortField::new(key_type.clone())]).map_err(|e| Error::engine("lookup key", e))?;
        let rows = converter.convert_columns(&[keys.clone()]).map_err(|e| Error::engine("lookup key", e))?;
        let mut index = HashMap::with_capacity_and_hasher(batch.num_rows(), RandomState::new());
        for i in 0..batch.num_rows() {
            if keys.is_valid(i) {
                index.entry(rows.row(i).as_ref().into()).or_insert(i as u32);
            }
        }
        let mut values = batch.clone();
        values.remove_column(idx);
        Ok(LookupTable { values, index, key_type: key_type.clone() })
    }

    pub fn schema(&self) -> SchemaRef {
        self.values.schema()
    }

    pub fn len(&self) -> usize {
        self.values.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.values.num_rows() == 0
    }

    /// The value columns for each event (null where the key has no row).
    pub fn join(&self, on: &ArrayRef) -> Result<Vec<ArrayRef>> {
        let on = cast(on, &self.key_type).map_err(|e| Error::data(Default::default(), format!("lookup key: {e}")))?;
        let converter = RowConverter::new(vec![SortField::new(self.key_type.clone())])
            .map_err(|e| Error::engine("lookup key", e))?;
        let rows = converter.convert_columns(&[on.clone()]).map_err(|e| Error::engine("lookup key", e))?;
        let indices: UInt32Array = (0..on.len())
            .map(|i| if on.is_valid(i) { self.index.get(rows.row(i).as_ref()).copied() } else { None })
            .collect();
        if self.values.num_rows() == 0 {
            return Ok(self.values.columns().iter().map(|c| new_null_array(c.data_type(), on.len())).collect());
        }
        self.values
            .columns()
            .iter()
            .map(|c| take(c, &indices, None).map_err(|e| Error::engine("lookup take", e)))
            .collect()
    }
}

fn names(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// A lookup and its current table, swapped whole by the refresher.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub config: LookupConfig,
    pub current: Arc<RwLock<Arc<LookupTable>>>,
    /// The value columns' fields (fixed at start: a reload with other columns is refused).
    pub fields: Vec<Arc<Field>>,
}

impl Lookup {
    pub fn table(&self) -> Arc<LookupTable> {
        self.current.read().map(|t| t.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Loads every lookup of `config` once (failing the start if one cannot be read) and starts their refreshers.
pub async fn load_all(config: &StreamConfig, env: &StreamEnv, event_schema: &SchemaRef) -> Result<Vec<Lookup>> {
    let mut out = Vec::new();
    for l in &config.lookups {
        let key_type = event_schema.field_with_name(&l.on).map(|f| f.data_type().clone()).unwrap_or(DataType::Utf8);
        let table = load(l, config, env, &key_type).await?;
        tracing::info!(lookup = %l.name, rows = table.len(), "lookup loaded");
        let fields: Vec<Arc<Field>> = table.schema().fields().iter().cloned().collect();
        let lookup = Lookup { config: l.clone(), current: Arc::new(RwLock::new(Arc::new(table))), fields };
        if let Some(every) = l.refresh {
            let (l, config, env, current, key_type) =
                (l.clone(), config.clone(), env.clone(), lookup.current.clone(), key_type.clone());
            let expected = lookup.fields.clone();
            let runtime = env.runtime.clone();
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match load(&l, &config, &env, &key_type).await {
                        Ok(t) if t.schema().fields().iter().cloned().collect::<Vec<_>>() == expected => {
                            tracing::info!(lookup = %l.name, rows = t.len(), "lookup refreshed");
                            if let Ok(mut w) = current.write() {
                                *w = Arc::new(t);
                            }
                        }
                        Ok(_) => tracing::warn!(lookup = %l.name, "lookup columns changed; keeping the previous version (restart the stream to take them)"),
                        Err(e) => tracing::warn!(lookup = %l.name, error = %e, "lookup refresh failed; keeping the previous version"),
                    }
                }
            });
        }
        out.push(lookup);
    }
    Ok(out)
}

async fn load(l: &LookupConfig, config: &StreamConfig, env: &StreamEnv, key_type: &DataType) -> Result<LookupTable> {
    let what = format!("`{}`", l.name);
    let batches: Vec<RecordBatch> = match &l.from {
        LookupFrom::Lake(table) => {
            let engine = weir_engine::Engine::new(&env.lake)?;
            engine.register_lake().await?;
            engine.sql_collect(&format!("SELECT * FROM {table}"), &format!("lookup {what}")).await?
        }
        LookupFrom::Postgres { url, connection, query } => {
            let url = env.connection_url(url.as_deref(), connection.as_deref())?;
            let source = weir_connect::postgres::PostgresSourceConfig {
                connection: None,
                url: None,
                table: None,
                query: Some(query.clone()),
                partition_on: None,
                incremental: None,
            };
            use futures::TryStreamExt;
            let stream = source.read(&url, 65_536, Default::default(), None).await?;
            stream.batches.try_collect().await?
        }
        LookupFrom::File(path) => {
            let path = config.relative(path);
            read_file(&path)?
        }
    };
    let Some(first) = batches.first() else {
        return Err(Error::data(Default::default(), format!("lookup {what} returned no rows and no schema")));
    };
    let batch = concat_batches(&first.schema(), &batches).map_err(|e| Error::engine("lookup concat", e))?;
    LookupTable::build(&batch, &l.key, key_type, &what)
}

/// A CSV (header row, types inferred) or NDJSON lookup file.
fn read_file(path: &std::path::Path) -> Result<Vec<RecordBatch>> {
    use std::io::Seek;
    let at = |e: String| {
        Error::data(
            weir_core::error::Location { file: Some(path.to_path_buf()), ..Default::default() },
            format!("lookup file: {e}"),
        )
    };
    let mut file = std::fs::File::open(path).map_err(|e| at(e.to_string()))?;
    let is_json = path.extension().is_some_and(|e| e == "json" || e == "ndjson" || e == "jsonl");
    let mut reader = std::io::BufReader::new(&mut file);
    let schema = if is_json {
        arrow::json::reader::infer_json_schema_from_seekable(&mut reader, Some(10_000))
            .map_err(|e| at(e.to_string()))?
            .0
    } else {
        arrow::csv::reader::Format::default()
            .with_header(true)
            .infer_schema(&mut reader, Some(10_000))
            .map_err(|e| at(e.to_string()))?
            .0
    };
    reader.rewind().map_err(|e| at(e.to_string()))?;
    let schema = Arc::new(schema);
    let batches: std::result::Result<Vec<RecordBatch>, _> = if is_json {
        arrow::json::ReaderBuilder::new(schema).build(reader).map_err(|e| at(e.to_string()))?.collect()
    } else {
        arrow::csv::ReaderBuilder::new(schema).with_header(true).build(reader).map_err(|e| at(e.to_string()))?.collect()
    };
    batches.map_err(|e| at(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::Schema;

    #[test]
    fn joins_by_key_with_nulls_for_missing_keys() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("user_id", DataType::Int64, true),
                Field::new("home", DataType::Utf8, true),
            ])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 2])), Arc::new(StringArray::from(vec!["US", "DE", "FR"]))],
        )
        .unwrap();
        // The event carries the id as text: the table's key is cast to it.
        let t = LookupTable::build(&batch, "user_id", &DataType::Utf8, "users").unwrap();
        let on: ArrayRef = Arc::new(StringArray::from(vec![Some("2"), Some("9"), None, Some("1")]));
        let cols = t.join(&on).unwrap();
        let home = cols[0].as_string::<i32>();
        assert_eq!(home.iter().collect::<Vec<_>>(), vec![Some("DE"), None, None, Some("US")]);
        let err = LookupTable::build(&batch, "id", &DataType::Utf8, "users").unwrap_err().to_string();
        assert!(err.contains("no column `id`") && err.contains("user_id, home"), "{err}");
    }
}
