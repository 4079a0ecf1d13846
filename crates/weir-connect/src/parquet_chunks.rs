//! Rows as Parquet files of a bounded size, built in memory: how the warehouse sinks stage a load (Snowflake's `PUT`,
//! BigQuery's load jobs) while the task streams, holding at most one file at a time.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use weir_core::{Error, Result};

/// The size of a staged file unless a sink's `file_mb` says otherwise: warehouses load files of tens to hundreds of MB
/// fastest, and a load holds one file in memory at a time.
pub fn default_file_mb() -> usize {
    64
}

pub struct ParquetChunks {
    schema: SchemaRef,
    writer: Option<ArrowWriter<Vec<u8>>>,
    file_bytes: usize,
    /// Rows written so far.
    pub rows: u64,
    /// Files handed out so far.
    pub files: usize,
}

impl ParquetChunks {
    /// Files of about `file_mb` MB (Snappy-compressed) with `schema`.
    pub fn new(schema: SchemaRef, file_mb: usize) -> ParquetChunks {
        ParquetChunks { schema, writer: None, file_bytes: file_mb.max(1) * 1024 * 1024, rows: 0, files: 0 }
    }

    /// Adds a batch; returns a finished file once the open one reached its size.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<Option<Vec<u8>>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            None => {
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                self.writer.insert(
                    ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props))
                        .map_err(|e| Error::engine("parquet", e))?,
                )
            }
        };
        writer.write(batch).map_err(|e| Error::engine("parquet", e))?;
        self.rows += batch.num_rows() as u64;
        if writer.bytes_written() + writer.in_progress_size() >= self.file_bytes {
            return self.finish();
        }
        Ok(None)
    }

    /// Closes the open file, if any rows are in it, and returns it.
    pub fn finish(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(writer) = self.writer.take() else { return Ok(None) };
        self.files += 1;
        writer.into_inner().map(Some).map_err(|e| Error::engine("parquet", e))
    }
}

/// `batch` as a warehouse's staged files hold it: each column cast where `casts` says (to a type the warehouse reads),
/// under `schema`'s names.
pub fn staged_batch(batch: &RecordBatch, schema: &SchemaRef, casts: &[Option<DataType>]) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(casts)
        .map(|(c, cast)| match cast {
            Some(t) => arrow::compute::cast(c, t).map_err(|e| Error::engine("parquet", e)),
            None => Ok(c.clone()),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| Error::engine("parquet", e))
}
