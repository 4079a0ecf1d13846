//! A real Azure Blob Storage on loopback for the tests: Azurite (`azurite-blob`, installed into
//! `~/.cache/weir/azurite` by `.ci/install-azurite` on first use). One server per test binary, started on first use;
//! a watchdog stops it when the test process exits. Requests of the harness itself (create the container, list
//! blobs) are signed with the emulator's well-known account key by a few lines of python3.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published development key (not a secret).
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const CONTAINER: &str = "weir-test";

pub struct Azurite {
    pub port: u16,
    _data: tempfile::TempDir,
}

fn azurite_binary() -> PathBuf {
    let bin = "node_modules/.bin/azurite-blob";
    let need = "the Azure tests need node and npm";
    super::installed("WEIR_AZURITE_HOME", "azurite", Some(bin), "install-azurite", need).join(bin)
}

pub fn server() -> &'static Azurite {
    static SERVER: OnceLock<Azurite> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = tempfile::tempdir().unwrap();
        let script = format!(
            "'{}' --blobHost 127.0.0.1 --blobPort {port} --location '{}' --silent >/dev/null 2>&1 & m=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
            azurite_binary().display(),
            data.path().display(),
            std::process::id()
        );
        Command::new("sh").args(["-c", &script]).spawn().expect("start sh");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "Azurite did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let server = Azurite { port, _data: data };
        // Azurite accepts connections a little before it serves requests.
        loop {
            let (status, body) = server.request("PUT", "", &[("restype", "container")]);
            if status == 201 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "create container: {status} {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    })
}

impl Azurite {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// A SharedKey-signed request on the test container (`path` below it), with query parameters.
    pub fn request(&self, method: &str, path: &str, query: &[(&str, &str)]) -> (u16, String) {
        const SIGN: &str = r#"
import base64, hashlib, hmac, sys, urllib.parse, urllib.request
from email.utils import formatdate
port, account, key, method, resource = sys.argv[1:6]
query = dict(a.split("=", 1) for a in sys.argv[6:])
headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
canon = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
canon += f"/{account}/{account}/{resource}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
to_sign = method + "\n" * 12 + canon
sig = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
url = f"http://127.0.0.1:{port}/{account}/{urllib.parse.quote(resource)}?" + urllib.parse.urlencode(query)
req = urllib.request.Request(url, method=method, headers={**headers, "Authorization": f"SharedKey {account}:{sig}", "Content-Length": "0"})
try:
    r = urllib.request.urlopen(req)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"#;
        let resource = if path.is_empty() { CONTAINER.to_string() } else { format!("{CONTAINER}/{path}") };
        let mut args: Vec<String> = vec![self.port.to_string(), ACCOUNT.into(), KEY.into(), method.into(), resource];
        args.extend(query.iter().map(|(k, v)| format!("{k}={v}")));
        let out = Command::new("python3").arg("-c").arg(SIGN).args(&args).output().expect("run python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
        (status.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Whether any blob's name starts with `prefix`.
    pub fn any_under(&self, prefix: &str) -> bool {
        let (_, body) = self.request(
            "GET",
            "",
            &[("restype", "container"), ("comp", "list"), ("prefix", prefix), ("maxresults", "1")],
        );
        body.contains("<Name>")
    }
}
