//! weir-orchestrate is weir's own orchestrator: schedules cut into data intervals, runs and task instances in a
//! metadata store, a state machine for trigger rules, retries with backoff, timeouts, alerts, and the loop that runs
//! it all (`weir serve`, `weir backfill`, `weir trigger`). Tasks are the pipeline tasks weir-engine runs, plus shell
//! commands.

pub mod alerts;
pub mod dag;
pub mod intervals;
pub mod ops;
pub mod scheduler;
pub mod store;

pub use dag::{RunState, TaskState};
pub use scheduler::{PipelineMeta, Scheduler, SchedulerOptions};
pub use store::Store;
