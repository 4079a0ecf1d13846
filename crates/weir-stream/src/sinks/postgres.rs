//! `type: postgres` sink: outputs inserted into a PostgreSQL table (created from the output's columns when missing),
//! in one transaction per micro-batch that also upserts the next offset of each partition into
//! `weir_stream_offsets`, so rows are written exactly once: a replay skips offsets the table already has.
//! The offset moves only from where this process last saw it (a compare-and-set in the same transaction): a
//! process that lost a partition to another and wakes up later rolls back instead of writing the rows twice.
//!
//! ```yaml
//! outputs:
//!   alerts: [{type: postgres, connection: warehouse, table: fraud.alerts}]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema};
use weir_core::{Error, Result};

use crate::config::OutputKind;
use crate::processor::PartitionId;

pub struct PostgresSink {
    client: tokio_postgres::Client,
    stream: String,
    sink: String,
    table: String,
    buffer: Vec<RecordBatch>,
    touched: BTreeSet<PartitionId>,
    /// The next offset the table holds for each partition this process owns, as this process last saw it.
    held: HashMap<PartitionId, Option<i64>>,
    created: bool,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink").field("table", &self.table).finish()
    }
}

fn quote(ident: &str) -> String {
    weir_connect::connection::quote_ident(ident)
}

fn qualified(table: &str) -> String {
    table.split('.').map(quote).collect::<Vec<_>>().join(".")
}

fn pg_error(what: &str, e: tokio_postgres::Error) -> Error {
    Error::external(what.to_string(), weir_connect::postgres::pg_error(&e))
}

fn column_type(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "integer",
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint",
        DataType::Float32 | DataType::Float64 => "double precision",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Date32 | DataType::Date64 => "date",
        _ => "text",
    }
}

impl PostgresSink {
    pub async fn connect(url: &str, stream: &str, kind: OutputKind, table: &str) -> Result<PostgresSink> {
        let client = weir_connect::postgres::connect(url).await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS weir_stream_offsets (stream text, sink text, topic text, partition integer, next_offset bigint NOT NULL, PRIMARY KEY (stream, sink, topic, partition))",
            )
            .await
            .map_err(|e| pg_error("postgres sink: create weir_stream_offsets", e))?;
        Ok(PostgresSink {
            client,
            stream: stream.to_string(),
            sink: format!("{}:{table}", kind.as_str()),
            table: table.to_string(),
            buffer: Vec::new(),
            touched: BTreeSet::new(),
            held: HashMap::new(),
            created: false,
        })
    }

    pub fn revoke(&mut self, p: &PartitionId) {
        self.held.remove(p);
    }

    /// Drops the rows written since the last commit.
    pub fn abort(&mut self) {
        self.buffer.clear();
        self.touched.clear();
    }

    /// The next offset of `p` the table holds (read when the partition is assigned: later commits expect it).
    pub async fn position(&mut self, p: &PartitionId) -> Result<Option<i64>> {
        let row = self
            .client
            .query_opt(
                "SELECT next_offset FROM weir_stream_offsets WHERE stream = $1 AND sink = $2 AND topic = $3 AND partition = $4",
                &[&self.stream, &self.sink, &p.topic.as_ref(), &p.partition],
            )
            .await
            .map_err(|e| pg_error("postgres sink: read offsets", e))?;
        let held = row.map(|r| r.get::<_, i64>(0));
        self.held.insert(p.clone(), held);
        Ok(held)
    }

    pub fn write(&mut self, p: &PartitionId, rows: RecordBatch) {
        self.touched.insert(p.clone());
        self.buffer.push(rows);
    }

    fn create_sql(&self, schema: &Schema) -> String {
        let cols: Vec<String> =
            schema.fields().iter().map(|f| format!("{} {}", quote(f.name()), column_type(f.data_type()))).collect();
        let mut sql = String::new();
        if let Some((schema_name, _)) = self.table.split_once('.') {
            sql.push_str(&format!("CREATE SCHEMA IF NOT EXISTS {};\n", quote(schema_name)));
        }
        sql.push_str(&format!("CREATE TABLE IF NOT EXISTS {} ({})", qualified(&self.table), cols.join(", ")));
        sql
    }

    pub async fn commit(&mut self, next: &BTreeMap<PartitionId, i64>) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let what = format!("postgres sink {}", self.table);
        if !self.created {
            let sql = self.create_sql(&self.buffer[0].schema());
            self.client.batch_execute(&sql).await.map_err(|e| pg_error(&what, e))?;
            self.created = true;
        }
        let mut json = Vec::new();
        {
            let mut w = arrow::json::ArrayWriter::new(&mut json);
            for b in &self.buffer {
                w.write(b).map_err(|e| Error::engine("postgres sink json", e))?;
            }
            w.finish().map_err(|e| Error::engine("postgres sink json", e))?;
        }
        let json = String::from_utf8(json).map_err(|e| Error::engine("postgres sink json", e))?;
        let table = qualified(&self.table);
        let tx = self.client.transaction().await.map_err(|e| pg_error(&what, e))?;
        tx.execute(
            &format!("INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, $1::text::json)"),
            &[&json],
        )
        .await
        .map_err(|e| pg_error(&what, e))?;
        let mut moved = Vec::new();
        for p in &self.touched {
            let Some(o) = next.get(p) else { continue };
            let expected = self.held.get(p).copied().flatten();
            let topic: &str = p.topic.as_ref();
            let changed = match &expected {
                None => {
                    tx.execute(
                        "INSERT INTO weir_stream_offsets VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream, sink, topic, partition) DO NOTHING",
                        &[&self.stream, &self.sink, &topic, &p.partition, o],
                    )
                    .await
                }
                Some(e) => {
                    tx.execute(
                        "UPDATE weir_stream_offsets SET next_offset = $5 WHERE stream = $1 AND sink = $2 AND topic = $3 AND partition = $4 AND next_offset = $6",
                        &[&self.stream, &self.sink, &topic, &p.partition, o, e],
                    )
                    .await
                }
            }
            .map_err(|e| pg_error(&what, e))?;
            if changed != 1 {
                // Rolled back when `tx` drops: none of this batch's rows land.
                return Err(crate::fenced::error(
                    what,
                    format!(
                        "partition {p} of weir_stream_offsets moved past {} (another process owns it now)",
                        expected.map(|e| e.to_string()).unwrap_or_else(|| "unset".into())
                    ),
                ));
            }
            moved.push((p.clone(), *o));
        }
        tx.commit().await.map_err(|e| pg_error(&what, e))?;
        for (p, o) in moved {
            self.held.insert(p, Some(o));
        }
        self.buffer.clear();
        self.touched.clear();
        Ok(())
    }
}
