//! Data quality: checks on a task's output, schema contracts with drift detection, and the quarantine that keeps
//! every rejected row. The task runner wires them in: steps, then checks, then the sink, which commits only when no
//! `error` check failed and the contract holds.

pub mod checks;
pub mod contract;
pub mod rejects;
pub mod results;

pub use checks::{CheckResult, CheckSet, CheckSql, CheckStatus};
pub use contract::{ContractMode, SchemaDiff, SchemaHistory};
pub use rejects::{RejectAction, RejectTarget, Rejects};
