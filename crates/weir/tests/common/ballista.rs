//! A Ballista cluster on loopback: one scheduler and its executors, each a process of `weir-test-ballista` (the
//! workspace's helper crate, which `cargo test --workspace` builds beside this test). The executors read the test S3
//! server with the settings weir sends with each query (`lake.storage`), not with credentials of their own. A
//! watchdog stops every process once the test process is gone; a test may kill an executor (`kill -9`) on purpose.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

pub struct Cluster {
    pub port: u16,
    /// Each executor's pid file.
    executors: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The helper binary, built by `cargo test --workspace` into the target folder this test binary runs from.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps").join("weir-test-ballista");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test --workspace` builds it (crates/weir-test-ballista)",
        bin.display()
    );
    bin
}

/// Starts `args` of the helper under a watchdog (which stops it once this test process is gone), its pid in
/// `pid_file`, its output in `log` (warnings, and what the scheduler does with jobs), and waits until it listens on
/// `port`.
fn start(args: &str, pid_file: &std::path::Path, log: &std::path::Path, port: u16, what: &str) {
    let script = format!(
        "RUST_LOG=warn,ballista_scheduler::scheduler_server=info '{}' {args} >'{}' 2>&1 & m=$!; echo $m >'{}'; while kill -0 {} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
        binary().display(),
        log.display(),
        pid_file.display(),
        std::process::id()
    );
    std::process::Command::new("sh").args(["-c", &script]).spawn().expect("start sh");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what} did not start; its log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and `executors` executors, each with two task slots. Executors that stop answering are declared lost
/// after a few seconds (not Ballista's default three minutes), so a test of a lost executor ends quickly.
pub fn start_cluster(executors: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    start(
        &format!(
            "scheduler --bind-host 127.0.0.1 --external-host 127.0.0.1 --bind-port {port} \
             --executor-timeout-seconds 6 --expire-dead-executor-interval-seconds 2 \
             --no-executors-grace-period-seconds 10 --scheduler-policy pull-staged"
        ),
        &dir.path().join("scheduler.pid"),
        &dir.path().join("scheduler.log"),
        port,
        "the Ballista scheduler",
    );
    let mut pids = Vec::new();
    for i in 0..executors {
        let (flight, grpc) = (free_port(), free_port());
        let work = dir.path().join(format!("executor-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let pid = dir.path().join(format!("executor-{i}.pid"));
        start(
            &format!(
                "executor --scheduler-host 127.0.0.1 --scheduler-port {port} --bind-host 127.0.0.1 \
                 --external-host 127.0.0.1 --bind-port {flight} --bind-grpc-port {grpc} --work-dir '{}' \
                 --vcores 2 --executor-heartbeat-interval-seconds 1 --task-scheduling-policy pull-staged",
                work.display()
            ),
            &pid,
            &dir.path().join(format!("executor-{i}.log")),
            flight,
            "a Ballista executor",
        );
        pids.push(pid);
    }
    Cluster { port, executors: pids, dir }
}

impl Cluster {
    pub fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.port)
    }

    /// Kills executor `i` as a crash would (`kill -9`).
    pub fn kill_executor(&self, i: usize) {
        let pid = std::fs::read_to_string(&self.executors[i]).expect("the executor's pid file");
        let killed = std::process::Command::new("kill").args(["-9", pid.trim()]).status().expect("run kill");
        assert!(killed.success(), "kill -9 {pid}");
    }

    /// Files each executor's work folder holds (the shuffle output of the stages it ran).
    pub fn files_per_executor(&self) -> Vec<usize> {
        (0..self.executors.len())
            .map(|i| {
                let pattern = format!("{}/executor-{i}/**/*", self.dir.path().display());
                glob::glob(&pattern).map(|g| g.flatten().filter(|p| p.is_file()).count()).unwrap_or(0)
            })
            .collect()
    }

    /// Everything the scheduler and the executors logged, for a failure message.
    pub fn logs(&self) -> String {
        let pattern = format!("{}/*.log", self.dir.path().display());
        glob::glob(&pattern)
            .map(|g| {
                g.flatten()
                    .map(|p| format!("== {}\n{}", p.display(), std::fs::read_to_string(&p).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }
}
