//! Sail on loopback: a Spark Connect server written in Rust (`pysail` from PyPI, installed with PySpark's Spark
//! Connect client by `.ci/install-sail`, which the harness runs when they are missing). One server per test binary,
//! reading and writing the test S3 server (moto) with the same settings as weir; a watchdog stops it when the test
//! process exits. Queries go through PySpark's own client, as a Spark user's would.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub struct Sail {
    pub port: u16,
    venv: PathBuf,
}

fn venv() -> PathBuf {
    let need = "the scale-out tests need python3 and PyPI to install Sail";
    super::installed("WEIR_SAIL_VENV", "sail-venv", Some("bin/sail"), "install-sail", need)
}

/// The server of this test process, on the test S3 server's lake.
pub fn server() -> &'static Sail {
    static SERVER: OnceLock<Sail> = OnceLock::new();
    SERVER.get_or_init(|| {
        let venv = venv();
        let s3 = super::s3::server();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::env::temp_dir().join(format!("weir-sail-{}.log", std::process::id()));
        let command = format!(
            "env AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ENDPOINT_URL='{}' AWS_ALLOW_HTTP=true '{}' spark server --ip 127.0.0.1 --port {port}",
            s3.endpoint(),
            venv.join("bin/sail").display()
        );
        super::start_server(&command, port, &log, "Sail", Duration::from_secs(60));
        Sail { port, venv }
    })
}

/// Registers each (`zone.table`, location) as a Delta table and prints every row of the query as a JSON list of
/// canonical texts (`super::PY_CANONICAL`).
const QUERY: &str = r#"
import json, sys
from pyspark.sql import SparkSession
remote, tables, query = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
spark = SparkSession.builder.remote(remote).getOrCreate()
for name, location in tables.items():
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {name.split('.')[0]}")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION '{location}'")
for row in spark.sql(query).collect():
    print(json.dumps([text(v) for v in row]))
"#;

impl Sail {
    pub fn remote(&self) -> String {
        format!("sc://127.0.0.1:{}", self.port)
    }

    /// The rows of `query` run by Sail, each as its values' canonical texts joined by `,`; `tables` are the lake
    /// tables it reads, registered by location.
    pub fn rows(&self, tables: &[(&str, String)], query: &str) -> Vec<String> {
        let tables: serde_json::Map<String, serde_json::Value> =
            tables.iter().map(|(name, location)| (name.to_string(), location.clone().into())).collect();
        // A script file: PySpark looks for its installation from the script's path, which `python -c` has not.
        let script = tempfile::Builder::new().suffix(".py").tempfile().expect("temp file");
        std::fs::write(script.path(), format!("{}{QUERY}", super::PY_CANONICAL)).expect("write the query script");
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-W", "ignore"])
            .arg(script.path())
            .arg(self.remote())
            .arg(serde_json::Value::Object(tables).to_string())
            .arg(query)
            .output()
            .expect("run the Spark Connect client");
        assert!(
            out.status.success(),
            "Sail query failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let values: Vec<String> = serde_json::from_str(line).expect("a JSON row");
                values.join(",")
            })
            .collect()
    }
}
