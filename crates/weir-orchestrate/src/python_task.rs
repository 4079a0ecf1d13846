//! `python:` tasks: a Python function run under the scheduler. It runs as a shell task does (its own process and
//! process group, output kept as the attempt's log, timeouts, retries, the attempt tag), through a small runner
//! (`python_task_runner.py`) that imports `module:function` and calls it with the run's context. The interpreter is
//! the one `python:` steps use (`WEIR_PYTHON`, else the active virtualenv's, else `python3`; the task's own `env`
//! may set `WEIR_PYTHON`): weir itself never links Python.

use weir_config::{PythonCall, ShellCommand};

/// The runner, passed to `python -c` through the environment (no quoting of the script in a shell command).
const RUNNER: &str = include_str!("python_task_runner.py");

/// The shell command that runs `call`.
pub fn command(call: &PythonCall) -> ShellCommand {
    let mut env = call.env.clone();
    env.insert("WEIR_PYTHON_RUNNER".into(), RUNNER.into());
    env.insert("WEIR_CALLABLE".into(), call.callable.clone());
    env.insert("WEIR_PARAMS".into(), serde_json::to_string(&call.params).unwrap_or_else(|_| "{}".into()));
    if !env.contains_key("WEIR_PYTHON") {
        let python = weir_engine::ops::python::python_interpreter();
        env.insert("WEIR_PYTHON".into(), python.to_string_lossy().into_owned());
    }
    ShellCommand {
        command: r#"exec "$WEIR_PYTHON" -c "$WEIR_PYTHON_RUNNER""#.into(),
        env,
        cwd: call.cwd.clone(),
        label: Some(format!("python {}", call.callable)),
    }
}
