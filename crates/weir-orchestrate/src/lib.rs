//! weir-orchestrate is weir's own orchestrator: schedules cut into data intervals, runs and task instances in a
//! metadata store, a state machine for trigger rules, retries with backoff, timeouts, alerts, and the loop that runs
//! it all (`weir serve`, `weir backfill`, `weir trigger`). [`executor`] runs one task the same way for `weir run`
//! and for the scheduler: data tasks through weir-engine, shell commands, HTTP calls and sensors here.

pub mod alerts;
pub mod dag;
pub mod executor;
pub mod http_call;
pub mod intervals;
pub mod ops;
pub mod python_task;
pub mod scheduler;
pub mod sensor;
pub mod shell;
pub mod store;

pub use dag::{RunState, TaskState};
pub use scheduler::{PipelineMeta, Scheduler, SchedulerOptions};
pub use store::Store;
