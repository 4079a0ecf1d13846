//! The helper binary starts a scheduler and an executor that answer a query (which also makes `cargo test
//! --workspace` build the binary that weir's `engine: ballista` tests start).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballista::prelude::SessionContextExt;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn start(args: &[String]) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_weir-test-ballista"))
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("start weir-test-ballista");
    Killed(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_and_an_executor_answer_a_query_over_parquet_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.parquet");
    let local = SessionContext::new();
    local
        .sql(&format!("COPY (SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL)) AS v(n, s)) TO '{}'", file.display()))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();

    let port = free_port();
    let host = "127.0.0.1".to_string();
    let _scheduler = start(&[
        "scheduler".into(),
        "--bind-host".into(),
        host.clone(),
        "--external-host".into(),
        host.clone(),
        "--bind-port".into(),
        port.to_string(),
    ]);
    let work = dir.path().join("executor");
    std::fs::create_dir_all(&work).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect((host.as_str(), port)).is_err() {
        assert!(Instant::now() < deadline, "the scheduler did not listen on {port} within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _executor = start(&[
        "executor".into(),
        "--scheduler-host".into(),
        host.clone(),
        "--scheduler-port".into(),
        port.to_string(),
        "--bind-host".into(),
        host.clone(),
        "--external-host".into(),
        host.clone(),
        "--bind-port".into(),
        free_port().to_string(),
        "--bind-grpc-port".into(),
        free_port().to_string(),
        "--work-dir".into(),
        work.display().to_string(),
    ]);

    let ctx = SessionContext::remote(&format!("df://{host}:{port}")).await.unwrap();
    ctx.register_parquet("t", file.to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
    let batches = ctx
        .sql("SELECT count(*) AS n, sum(n) AS total, count(s) AS named FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let shown = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    assert!(shown.contains("| 3 | 6     | 2     |"), "{shown}");
}
