//! A real, ephemeral PostgreSQL for the tests: `initdb` into a temporary folder and `postgres` on a free loopback
//! port, from the Debian `postgresql` package (`/usr/lib/postgresql/<version>/bin`, or `WEIR_PG_BIN`). One cluster
//! per test binary, started on first use; a watchdog (which polls /proc, since it may not signal the test process)
//! stops it when the test process exits. As root (CI
//! containers), the cluster runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Pg {
    pub port: u16,
    _dir: tempfile::TempDir,
    bin: PathBuf,
    /// The CA that signed the server's certificate (a TLS-only cluster).
    ca: Option<PathBuf>,
}

fn bin_dir() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_PG_BIN") {
        return PathBuf::from(p);
    }
    if glob_dirs("/usr/lib/postgresql").is_empty() {
        super::install_debian(&["postgresql"]);
    }
    let mut found: Vec<PathBuf> = glob_dirs("/usr/lib/postgresql");
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no PostgreSQL server under /usr/lib/postgresql: install the `postgresql` package"))
}

fn glob_dirs(root: &str) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// `script` (written to `dir/name.sh`) run by sh as the cluster's owner.
fn as_owner(dir: &std::path::Path, name: &str, script: &str) -> Command {
    let file = dir.join(format!("{name}.sh"));
    std::fs::write(&file, script).unwrap();
    let mut c;
    if is_root() {
        c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh"]).arg(&file);
    } else {
        c = Command::new("sh");
        c.arg(&file);
    }
    c
}

pub fn server() -> &'static Pg {
    static SERVER: OnceLock<Pg> = OnceLock::new();
    SERVER.get_or_init(|| start(false))
}

/// A second cluster that accepts TLS connections only (`hostssl`), with a certificate for `localhost` signed by a
/// CA of its own ([`Pg::ca_file`]).
pub fn tls_server() -> &'static Pg {
    static SERVER: OnceLock<Pg> = OnceLock::new();
    SERVER.get_or_init(|| start(true))
}

/// The test certificates (see [`super::test_certificates`]), owned by whoever runs the cluster.
fn certificates(dir: &std::path::Path) -> PathBuf {
    let ca = super::test_certificates(dir);
    if is_root() {
        Command::new("chown").args(["postgres", "server.key", "server.pem"]).current_dir(dir).status().unwrap();
    }
    ca
}

fn start(tls: bool) -> Pg {
    {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("weir-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            Command::new("chown").args(["-R", "postgres", &dir.path().display().to_string()]).status().unwrap();
        }
        let init = as_owner(
            dir.path(),
            "initdb",
            &format!(
                "'{}' -D '{}' -U weir --auth=trust -E UTF8 --no-sync >'{}/initdb.log' 2>&1",
                bin.join("initdb").display(),
                data.display(),
                dir.path().display()
            ),
        )
        .status()
        .unwrap();
        assert!(init.success(), "initdb failed; see {}/initdb.log", dir.path().display());
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut postgres = format!(
            "'{}' -D '{}' -p {port} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            bin.join("postgres").display(),
            data.display(),
            dir.path().display()
        );
        let ca = tls.then(|| {
            let ca = certificates(dir.path());
            // TCP connections must be encrypted; the local socket (the cluster's own tools) stays open.
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
                .unwrap();
            let d = dir.path().display();
            postgres
                .push_str(&format!(" -c ssl=on -c ssl_cert_file='{d}/server.pem' -c ssl_key_file='{d}/server.key'"));
            ca
        });
        let script = format!(
            "{postgres} >'{}/postgres.log' 2>&1 & m=$!; while [ -d /proc/{} ]; do sleep 1; done; kill -INT $m; wait $m; rm -rf '{}'",
            dir.path().display(),
            std::process::id(),
            dir.path().display()
        );
        as_owner(dir.path(), "postgres", &script).spawn().expect("start postgres");
        let started = Instant::now();
        let pg = Pg { port, _dir: dir, bin, ca };
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && pg.psql("postgres", "SELECT 1").is_ok() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "postgres did not start; see its postgres.log");
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }
}

impl Pg {
    /// The CA file of a TLS cluster.
    pub fn ca_file(&self) -> &std::path::Path {
        self.ca.as_deref().expect("a TLS cluster")
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://weir@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with psql (`-v ON_ERROR_STOP=1`); returns the unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .env("PGSSLMODE", if self.ca.is_some() { "require" } else { "prefer" })
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "weir",
                "-d",
                db,
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A fresh database for one test.
    pub fn database(&self, name: &str) -> String {
        self.psql("postgres", &format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        self.psql("postgres", &format!("CREATE DATABASE {name}")).unwrap();
        name.to_string()
    }
}
