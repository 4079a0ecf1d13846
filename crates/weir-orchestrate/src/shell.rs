//! `shell:` tasks: a command run by `sh -c` in the project folder, with the run's date and ids in its environment.
//! Its output is kept (the last 64 KiB) as the attempt's log. The command runs in its own process group, and the
//! whole group is killed when the task is dropped (a timeout, a cancelled run), so no grandchild outlives it.
//!
//! A process group survives a `kill -9` of weir itself, so every process of an attempt carries `WEIR_ATTEMPT`
//! (`<run id>/<task>`) in its environment: a scheduler that finds the attempt lost kills what is left of it
//! ([`kill_attempt`]) before it queues the task again, so two attempts never run at once.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use tokio::io::AsyncReadExt;
use weir_config::ShellCommand;
use weir_core::{Error, Result, RunContext};

/// Output kept per command (its tail).
const KEEP_BYTES: usize = 64 * 1024;

/// What a finished command left.
#[derive(Debug, Clone)]
pub struct ShellOutcome {
    /// stdout then stderr (their last 64 KiB each).
    pub output: String,
    pub elapsed: std::time::Duration,
}

impl ShellOutcome {
    /// The task report of a shell task: its output, no rows.
    pub fn into_report(self, task: &str) -> weir_engine::TaskReport {
        weir_engine::TaskReport {
            task: task.to_string(),
            elapsed: self.elapsed,
            output: Some(self.output),
            ..Default::default()
        }
    }
}

/// Kills the process group when dropped before the command ended.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    #[allow(unsafe_code)] // kill(2) on our own process group; std has no wrapper for groups
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: plain syscall with integer arguments; a stale group id only makes it fail with ESRCH.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}

/// The environment variable that tags every process of a shell task's attempt.
pub const ATTEMPT_ENV: &str = "WEIR_ATTEMPT";

fn attempt_tag(run_id: &str, task: &str) -> String {
    format!("{run_id}/{task}")
}

/// Kills every process on this host that carries the tag of `task` of run `run_id` (with its process group), and
/// waits up to 10 seconds for them to be gone. Returns how many there were.
#[allow(unsafe_code)] // kill(2) on process groups; std has no wrapper for groups
pub async fn kill_attempt(run_id: &str, task: &str) -> usize {
    let wanted = format!("{ATTEMPT_ENV}={}", attempt_tag(run_id, task)).into_bytes();
    let tagged = || -> Vec<libc::pid_t> {
        let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == wanted.as_slice()))
            })
            .collect()
    };
    let found = tagged();
    for pid in &found {
        // SAFETY: plain syscalls with integer arguments; a pid that is gone only makes them fail.
        unsafe {
            let group = libc::getpgid(*pid);
            if group > 1 {
                libc::kill(-group, libc::SIGKILL);
            }
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !found.is_empty() && Instant::now() < deadline && !tagged().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    found.len()
}

/// Output as it comes, stdout and stderr interleaved (the last `KEEP_BYTES`-odd bytes), for a live log tail.
pub type LiveOutput = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// Everything `r` gives until it ends, keeping only the last `KEEP_BYTES`-odd bytes; each chunk is also appended to
/// `live`.
async fn tail<R: tokio::io::AsyncRead + Unpin>(r: Option<R>, live: Option<&LiveOutput>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(mut r) = r {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if let Some(live) = live {
                let mut live = live.lock().unwrap_or_else(|p| p.into_inner());
                live.extend_from_slice(&chunk[..n]);
                if live.len() > 2 * KEEP_BYTES {
                    let cut = live.len() - KEEP_BYTES;
                    live.drain(..cut);
                }
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > 2 * KEEP_BYTES {
                buf.drain(..buf.len() - KEEP_BYTES);
            }
        }
    }
    buf
}

/// Runs `cmd` for `run` of `pipeline`/`task`; fails with the exit status and the output's tail. Output is also
/// copied to `live` as it comes, when given.
pub async fn run_shell(
    project_dir: &Path,
    pipeline: &str,
    task: &str,
    run: &RunContext,
    cmd: &ShellCommand,
    live: Option<&LiveOutput>,
) -> Result<ShellOutcome> {
    let started = Instant::now();
    let cwd = match &cmd.cwd {
        Some(c) => project_dir.join(c),
        None => project_dir.to_path_buf(),
    };
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd.command)
        .current_dir(&cwd)
        .env("WEIR_PIPELINE", pipeline)
        .env("WEIR_TASK", task)
        .env("WEIR_DS", run.ds())
        .env("WEIR_RUN_ID", &run.run_id)
        .env(ATTEMPT_ENV, attempt_tag(&run.run_id, task))
        .env("WEIR_DATA_INTERVAL_START", run.data_interval_start.format("%Y-%m-%dT%H:%M:%S").to_string())
        .env("WEIR_DATA_INTERVAL_END", run.data_interval_end.format("%Y-%m-%dT%H:%M:%S").to_string())
        .envs(&cmd.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("task `{task}`: start `sh -c` in {}", cwd.display()), e))?;
    let mut guard = GroupGuard(child.id());
    let (stdout, stderr, status) =
        tokio::join!(tail(child.stdout.take(), live), tail(child.stderr.take(), live), child.wait());
    let status = status.map_err(|e| Error::io(format!("task `{task}`: wait for the command"), e))?;
    guard.0 = None; // ended by itself
    let keep = |b: &[u8]| String::from_utf8_lossy(&b[b.len().saturating_sub(KEEP_BYTES)..]).into_owned();
    let mut output = keep(&stdout);
    if !stderr.is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&keep(&stderr));
    }
    if status.success() {
        return Ok(ShellOutcome { output, elapsed: started.elapsed() });
    }
    let how = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    };
    let last: Vec<&str> = output.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
    Err(Error::external(
        format!("task `{task}`: `{}` {how}", cmd.label.as_deref().unwrap_or(cmd.command.trim())),
        if last.is_empty() { "no output".to_string() } else { last.join("\n") },
    ))
}
