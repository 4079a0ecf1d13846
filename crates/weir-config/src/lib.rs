//! weir-config reads the files of a weir project — `weir.yaml`, `pipelines/*.yaml`, `models/*.sql` — into validated
//! types, reporting every problem at once with its file, line and a "did you mean" hint.
//!
//! It does no work beyond reading those files: connectors read their own settings from the spanned YAML
//! (`Component::node`) with [`from_node`], so adding one never changes this crate.

pub mod checks;
pub mod de;
pub mod diag;
pub mod duration;
pub mod engine;
pub mod orchestration;
pub mod pipeline;
pub mod project;
pub mod steps;
pub mod template;
pub mod yaml;

pub use checks::{Check, CheckKind, OnFail, Severity};
pub use de::from_node;
pub use diag::Diagnostic;
pub use orchestration::{
    Alert, AlertEvent, Every, HttpCall, PythonCall, RetryPolicy, Schedule, Sensor, SensorKind, ShellCommand,
    TriggerRule,
};
pub use pipeline::{Component, Pipeline, Task, TaskInput};
pub use project::{Compression, Defaults, Project};
pub use yaml::Node;
