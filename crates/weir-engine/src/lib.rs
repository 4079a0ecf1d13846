//! weir-engine is where data is transformed: DataFusion glue (a session that sees lake tables by name), cleaning
//! steps compiled into streaming batch operators, SQL models, and the task runner that drives one task from its
//! source through its steps into its sink.

pub mod ballista;
pub mod ops;
pub mod plan;
pub mod quality;
pub mod remote_steps;
pub mod session;
pub mod spark_connect;
pub mod task;

pub use session::Engine;
pub use task::{Progress, TaskReport, TaskRunner};
