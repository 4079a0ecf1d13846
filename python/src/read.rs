//! Reading the lake from Python: a query's rows as an Arrow stream that pulls one batch from DataFusion each time
//! the consumer (pyarrow, Polars, pandas through pyarrow, DuckDB) asks, so a table larger than memory can be read
//! batch by batch and a whole table is never held twice.

use std::path::Path;

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use futures::stream::BoxStream;
use futures::StreamExt;
use pyo3::PyResult;
use weir_engine::session::AsOf;
use weir_engine::Engine;

/// A running query over the lake.
pub struct LakeQuery {
    schema: SchemaRef,
    batches: BoxStream<'static, weir_core::Result<RecordBatch>>,
    /// The session the query runs in, alive until the last batch is read.
    _engine: Engine,
}

impl LakeQuery {
    /// Registers the lake's tables (at `as_of`, a Delta version or time) and starts `sql`.
    pub async fn start(project_dir: &Path, sql: &str, as_of: Option<&str>) -> PyResult<LakeQuery> {
        let project = weir::run::load_project(project_dir).map_err(crate::exit_error)?;
        let engine = Engine::for_project(&project).map_err(crate::core_error)?;
        engine.set_as_of(as_of.map(AsOf::parse));
        engine.register_lake().await.map_err(crate::core_error)?;
        let stream = engine.sql_stream(sql, "query").await.map_err(crate::core_error)?;
        Ok(LakeQuery { schema: stream.schema, batches: stream.batches, _engine: engine })
    }
}

impl Iterator for LakeQuery {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        // The consumer's thread waits for the next batch; DataFusion computes it on the runtime's threads.
        crate::runtime().block_on(self.batches.next()).map(|b| b.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for LakeQuery {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
