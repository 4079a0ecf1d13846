//! A real S3-compatible server on loopback for the tests: moto's server mode (`moto_server` in
//! `~/.cache/weir/s3-venv`, installed there by `.ci/install-moto` on first use, or named by `WEIR_TEST_MOTO`). One
//! server per test binary, started on first use; a watchdog stops it when the test process exits.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BUCKET: &str = "weir-test";

pub struct S3Server {
    pub port: u16,
}

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_TEST_MOTO") {
        return PathBuf::from(p);
    }
    let need = "the S3 tests need python3 and PyPI to install moto";
    super::installed("WEIR_S3_VENV", "s3-venv", Some("bin/moto_server"), "install-moto", need).join("bin/moto_server")
}

/// The server of this test process, started (and its bucket created) on first call.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let moto = moto_binary();
        // The watchdog kills the server once this test process is gone (statics are never dropped).
        let script = format!(
            "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
            moto.display(),
            std::process::id()
        );
        std::process::Command::new("sh").args(["-c", &script]).spawn().expect("start sh");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the S3 test server did not start: is `{}` installed? `.ci/run` installs it (pip install 'moto[server]')",
                moto.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let server = S3Server { port };
        let (status, body) = server.request("PUT", &format!("/{BUCKET}"));
        assert!(status == 200, "create bucket: {status} {body}");
        server
    })
}

impl S3Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A bare HTTP/1.1 request (moto does not check signatures); returns the status and body.
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
    }

    /// Downloads the object `key` of the test bucket into `to` with boto3 (a signed request: moto refuses a bare
    /// GET of an object).
    pub fn download(&self, key: &str, to: &Path) {
        self.download_from(BUCKET, key, to)
    }

    /// Downloads the object `key` of `bucket` into `to` (see [`S3Server::download`]).
    pub fn download_from(&self, bucket: &str, key: &str, to: &Path) {
        let python = moto_binary().with_file_name("python");
        let code = "import boto3, sys\nboto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test').download_file(sys.argv[2], sys.argv[3], sys.argv[4])";
        let out = std::process::Command::new(python)
            .args(["-c", code, &self.endpoint(), bucket, key, &to.display().to_string()])
            .output()
            .unwrap();
        assert!(out.status.success(), "download {key}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The keys of the objects under `prefix` in the test bucket.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        let (_, body) = self.request("GET", &format!("/{BUCKET}?list-type=2&prefix={prefix}"));
        body.split("<Key>").skip(1).filter_map(|k| k.split("</Key>").next()).map(str::to_string).collect()
    }

    /// Whether any object's key starts with `prefix` (an object, or a folder of objects).
    pub fn any_under(&self, prefix: &str) -> bool {
        let (_, body) = self.request("GET", &format!("/{BUCKET}?list-type=2&max-keys=1&prefix={prefix}"));
        body.contains("<Key>")
    }
}
