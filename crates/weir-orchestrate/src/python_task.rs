//! `python:` tasks: a Python function run under the scheduler. It runs as a shell task does (its own process and
//! process group, output kept as the attempt's log, timeouts, retries, the attempt tag), through a small runner
//! (`python_task_runner.py`) that imports `module:function` and calls it with the run's context. The interpreter is
//! `WEIR_PYTHON`, else the active virtualenv's (`VIRTUAL_ENV`), else `python3`: weir itself never links Python.

use weir_config::{PythonCall, ShellCommand};

/// The runner, passed to `python -c` through the environment (no quoting of the script in a shell command).
const RUNNER: &str = include_str!("python_task_runner.py");

/// The shell command that runs `call`.
pub fn command(call: &PythonCall) -> ShellCommand {
    let mut env = call.env.clone();
    env.insert("WEIR_PYTHON_RUNNER".into(), RUNNER.into());
    env.insert("WEIR_CALLABLE".into(), call.callable.clone());
    env.insert("WEIR_PARAMS".into(), serde_json::to_string(&call.params).unwrap_or_else(|_| "{}".into()));
    ShellCommand {
        command: r#"exec "${WEIR_PYTHON:-${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/}python3}" -c "$WEIR_PYTHON_RUNNER""#.into(),
        env,
        cwd: call.cwd.clone(),
        label: Some(format!("python {}", call.callable)),
    }
}
