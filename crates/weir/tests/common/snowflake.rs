//! A Snowflake emulator on loopback for the tests: fakesnow's server mode (`~/.cache/weir/fakesnow-venv`, installed
//! by `.ci/install-fakesnow` on first use), which speaks the driver protocol on DuckDB. One server per test binary,
//! started on first use; a watchdog stops it when the test process exits. Tables are read back through Snowflake's
//! own Python connector, an independent client of the same protocol.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

pub struct Fakesnow {
    pub port: u16,
}

fn venv() -> PathBuf {
    let need = "the Snowflake tests need python3 and PyPI to install fakesnow";
    super::installed("WEIR_FAKESNOW_VENV", "fakesnow-venv", Some("bin/fakesnow"), "install-fakesnow", need)
}

/// The emulator of this test process, started on first call, with the database `WEIR` and its schema `MARTS`.
pub fn server() -> &'static Fakesnow {
    static SERVER: OnceLock<Fakesnow> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let fakesnow = venv().join("bin/fakesnow");
        let log = std::env::temp_dir().join(format!("fakesnow-{port}.log"));
        let command = format!("'{}' -s --host 127.0.0.1 -p {port}", fakesnow.display());
        super::start_server(&command, port, &log, "fakesnow", Duration::from_secs(60));
        let server = Fakesnow { port };
        server.query("CREATE DATABASE IF NOT EXISTS WEIR");
        server.query("CREATE SCHEMA IF NOT EXISTS WEIR.MARTS");
        server
    })
}

/// Prints each row of a query as `a|b|c` (see [`super::PY_CANONICAL`]).
const READER: &str = r#"
import sys, snowflake.connector
conn = snowflake.connector.connect(user="reader", password="reader", account="weir", host="127.0.0.1",
    port=int(sys.argv[1]), protocol="http", database="WEIR", schema="MARTS")
cur = conn.cursor()
try:
    cur.execute(sys.argv[2])
except Exception as e:
    print(f"ERROR {e}", file=sys.stderr); sys.exit(3)
for row in cur.fetchall():
    print("|".join(text(v) for v in row))
"#;

impl Fakesnow {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The rows of `sql`, one line each (see [`READER`]), or the error Snowflake's connector raised.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(venv().join("bin/python"))
            .args(["-c", &format!("{}{READER}", super::PY_CANONICAL), &self.port.to_string(), sql])
            .output()
            .expect("run python");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
