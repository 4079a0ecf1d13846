//! A real, ephemeral MariaDB for the tests: `mariadb-install-db` into a temporary folder and `mariadbd` on a free
//! loopback port (the Debian `mariadb-server` package, which the harness installs
//! with `.ci/install-debian` when it is missing). One server per test binary,
//! started on first use; a watchdog stops it and removes its folder when the test process exits.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Maria {
    pub port: u16,
    /// The CA that signed the server's certificate (a TLS-only server).
    ca: Option<std::path::PathBuf>,
}

fn binary(name: &str) -> String {
    if !std::path::Path::new("/usr/sbin/mariadbd").exists() {
        super::install_debian(&["mariadb-server"]);
    }
    for dir in ["/usr/sbin", "/usr/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!("`{name}` not found although the Debian `mariadb-server` package is installed")
}

pub fn server() -> &'static Maria {
    static SERVER: OnceLock<Maria> = OnceLock::new();
    SERVER.get_or_init(|| start(false))
}

/// A second server that accepts TLS connections only (`require_secure_transport`), with a certificate for
/// `localhost` signed by a CA of its own ([`Maria::ca_file`]).
pub fn tls_server() -> &'static Maria {
    static SERVER: OnceLock<Maria> = OnceLock::new();
    SERVER.get_or_init(|| start(true))
}

fn start(tls: bool) -> Maria {
    {
        let dir = tempfile::Builder::new().prefix("weir-maria").tempdir().unwrap().keep();
        let data = dir.join("data");
        let user = if Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false) {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_default()
        };
        let install = Command::new(binary("mariadb-install-db"))
            .args(["--no-defaults", &format!("--datadir={}", data.display()), &format!("--user={user}")])
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .unwrap();
        assert!(install.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&install.stderr));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let ca = tls.then(|| super::test_certificates(&dir));
        let tls_flags = match &ca {
            // With the grant tables on: skipping them also skips the transport check.
            Some(_) => format!(
                "--ssl-ca='{d}/ca.pem' --ssl-cert='{d}/server.pem' --ssl-key='{d}/server.key' --require-secure-transport=ON",
                d = dir.display()
            ),
            None => "--skip-grant-tables".to_string(),
        };
        let script = format!(
            "'{}' --no-defaults --datadir='{}' --user={user} --port={port} --bind-address=127.0.0.1 --socket='{}/sock' --skip-log-bin {tls_flags} >'{}/server.log' 2>&1 & m=$!; while [ -d /proc/{} ]; do sleep 1; done; kill $m; wait $m; rm -rf '{}'",
            binary("mariadbd"),
            data.display(),
            dir.display(),
            dir.display(),
            std::process::id(),
            dir.display()
        );
        Command::new("sh").args(["-c", &script]).spawn().expect("start mariadbd");
        let started = Instant::now();
        let maria = Maria { port, ca };
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && maria.sql("SELECT 1").is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "mariadbd did not start; see {}/server.log",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        maria
    }
}

impl Maria {
    /// The CA file of a TLS server.
    pub fn ca_file(&self) -> &std::path::Path {
        self.ca.as_deref().expect("a TLS server")
    }

    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL with the mariadb client; returns its tab-separated output.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        let tls: &[&str] = if self.ca.is_some() { &["--ssl", "--skip-ssl-verify-server-cert"] } else { &[] };
        let out = Command::new(binary("mariadb"))
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "-u",
                "root",
                "-N",
                "-B",
                "-e",
                sql,
            ])
            .args(tls)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}
