//! A BigQuery emulator on loopback for the tests: bqemulator (`~/.cache/weir/bigquery-venv`, installed by
//! `.ci/install-bigquery` on first use), which serves BigQuery's REST API on DuckDB. One server per test binary,
//! started on first use with the project `weir-test` and its dataset `marts`; a watchdog stops it when the test
//! process exits. Tables are read back through Google's own `google-cloud-bigquery` client.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub const PROJECT: &str = "weir-test";

pub struct BqEmulator {
    pub port: u16,
}

fn venv() -> PathBuf {
    let need = "the BigQuery tests need python3 and PyPI to install bqemulator";
    super::installed("WEIR_BIGQUERY_VENV", "bigquery-venv", None, "install-bigquery", need)
}

/// The emulator of this test process, started on first call.
pub fn server() -> &'static BqEmulator {
    static SERVER: OnceLock<BqEmulator> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bin = venv().join("bin/bqemulator");
        let log = std::env::temp_dir().join(format!("bqemulator-{port}.log"));
        let command = format!(
            "'{}' start --rest-host 127.0.0.1 --rest-port {port} --grpc-port 0 --project {PROJECT} --log-level warning",
            bin.display()
        );
        super::start_server(&command, port, &log, "bqemulator", Duration::from_secs(90));
        let server = BqEmulator { port };
        server.python(&format!("client.create_dataset('{PROJECT}.marts', exists_ok=True)"));
        server
    })
}

/// Connects Google's client to the emulator, without credentials.
const CLIENT: &str = r#"
import sys
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
client = bigquery.Client(project="weir-test", credentials=AnonymousCredentials(),
    client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{sys.argv[1]}"))
"#;

impl BqEmulator {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn python(&self, code: &str) -> String {
        let program = format!("{}{CLIENT}{code}", super::PY_CANONICAL);
        let out =
            Command::new(venv().join("bin/python")).args(["-c", &program, &self.port.to_string()]).output().unwrap();
        assert!(out.status.success(), "{code}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// The rows of `sql`, one line each, `|`-separated in the canonical form (see [`super::PY_CANONICAL`]).
    pub fn query(&self, sql: &str) -> String {
        let code =
            format!("for row in client.query({sql:?}).result():\n    print('|'.join(text(v) for v in row.values()))\n");
        self.python(&code)
    }
}
