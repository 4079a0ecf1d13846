//! `type: delta` sink: decisions, alerts or late events appended to a Delta table of the lake, for audit and
//! analytics. Each commit also records, as Delta application transactions, the next offset of every partition whose
//! rows it holds (`weir-stream/STREAM/OUTPUT/TOPIC/PARTITION`), so a replay after a crash skips rows already in the
//! table: the table gets each row exactly once whatever the delivery mode.
//!
//! Each commit is also conditional on those offsets being where this process last saw them (a compare-and-set on
//! the application transaction versions): a process that lost a partition to another (it stalled past the group's
//! poll interval) and wakes up cannot commit rows the new owner has written already, nor move the offset back.
//!
//! ```yaml
//! outputs:
//!   decisions: [{type: delta, table: fraud.decisions}]
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::RecordBatch;
use weir_core::{Error, Result};
use weir_lake::delta::{transaction_versions, DeltaTableWriter, DeltaWriteOptions};
use weir_lake::{TableLocation, TableName, WriteMode};

use crate::config::OutputKind;
use crate::env::StreamEnv;
use crate::processor::PartitionId;

#[derive(Debug)]
pub struct DeltaSink {
    location: TableLocation,
    table: String,
    app_prefix: String,
    buffer: Vec<RecordBatch>,
    touched: BTreeSet<PartitionId>,
    /// The next offset the table holds for each partition this process owns, as this process last saw it.
    held: HashMap<PartitionId, Option<i64>>,
}

impl DeltaSink {
    pub fn open(env: &StreamEnv, stream: &str, kind: OutputKind, table: &str) -> Result<DeltaSink> {
        let name = TableName::parse(table).map_err(|e| Error::config(Default::default(), e))?;
        Ok(DeltaSink {
            location: env.lake.table(&name),
            table: table.to_string(),
            app_prefix: format!("weir-stream/{stream}/{}", kind.as_str()),
            buffer: Vec::new(),
            touched: BTreeSet::new(),
            held: HashMap::new(),
        })
    }

    fn app_id(&self, p: &PartitionId) -> String {
        format!("{}/{}/{}", self.app_prefix, p.topic, p.partition)
    }

    /// The next offset of `p` the table already holds (read when the partition is assigned: later commits expect it).
    pub async fn position(&mut self, p: &PartitionId) -> Result<Option<i64>> {
        let held = transaction_versions(&self.location, &[self.app_id(p)]).await?.pop().flatten();
        self.held.insert(p.clone(), held);
        Ok(held)
    }

    pub fn revoke(&mut self, p: &PartitionId) {
        self.held.remove(p);
    }

    /// Drops the rows written since the last commit.
    pub fn abort(&mut self) {
        self.buffer.clear();
        self.touched.clear();
    }

    pub fn write(&mut self, p: &PartitionId, rows: RecordBatch) {
        self.touched.insert(p.clone());
        self.buffer.push(rows);
    }

    pub async fn commit(&mut self, next: &BTreeMap<PartitionId, i64>) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let schema = self.buffer[0].schema();
        let options = DeltaWriteOptions {
            mode: WriteMode::Append,
            partition_by: Vec::new(),
            static_partition: Vec::new(),
            compression: parquet::basic::Compression::ZSTD(Default::default()),
            row_group_rows: 1 << 20,
            target_file_size: 128 << 20,
            // Only the partitions' transactions: one of its own would make two processes of a group conflict.
            app_id: String::new(),
            replace_interval: false,
            keys: Vec::new(),
            delete_when: None,
            scd2_as_of: None,
            commit_info: Vec::new(),
        };
        let mut writer = DeltaTableWriter::open(&self.location, &schema, options).await?;
        for b in self.buffer.drain(..) {
            writer.write(&b).await?;
        }
        let mut moved = Vec::new();
        for p in std::mem::take(&mut self.touched) {
            if let Some(o) = next.get(&p) {
                let app_id = self.app_id(&p);
                writer.expect_transaction(&app_id, self.held.get(&p).copied().flatten());
                writer.add_transaction(&app_id, *o);
                moved.push((p, *o));
            }
        }
        let summary = writer.commit().await?;
        for (p, o) in moved {
            self.held.insert(p, Some(o));
        }
        tracing::debug!(table = %self.table, version = summary.version, rows = summary.rows, "delta sink commit");
        Ok(())
    }
}
