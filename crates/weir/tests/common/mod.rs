//! Helpers shared by the black-box test files: run the real `weir` binary in a folder and read what it printed.
// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The weir binary under test: this build's, or `WEIR_TEST_BIN` (to show that a new test fails on an older build).
pub fn weir_bin() -> String {
    std::env::var("WEIR_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_weir").to_string())
}

/// The weir binary in `dir` with `args`, as every test runs it: no terminal progress, warnings only.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(weir_bin());
    c.args(args).current_dir(dir).env("CI", "true").env("WEIR_LOG", "warn");
    c
}

pub fn weir(dir: &Path, args: &[&str]) -> Output {
    output_within(command(dir, args), LONGEST_RUN)
}

/// No single weir command of a test takes this long; one that does is stuck (waiting on a service that will never
/// answer), and the test fails with what it printed instead of holding the whole suite until CI gives up.
pub const LONGEST_RUN: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `command` to its end as `Command::output` does, or kills it after `limit` and fails with what it printed.
pub fn output_within(mut command: Command, limit: std::time::Duration) -> Output {
    use std::process::Stdio;
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start the command");
    output_within_of(child, limit, &format!("{command:?}"))
}

/// The output of a started `child` (its output piped), `what` it runs, as [`output_within`].
pub fn output_within_of(mut child: std::process::Child, limit: std::time::Duration, what: &str) -> Output {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
            panic!("{what} still ran after {limit:?} and was killed; it printed:\n{printed}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() }
}

/// Starts weir in the background with its output discarded (to kill it, or to watch what it does meanwhile).
pub fn spawn(dir: &Path, args: &[&str]) -> std::process::Child {
    command(dir, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start weir")
}

/// Starts `weir serve` on `bind` and returns it with the base URL it printed (`http://127.0.0.1:PORT`).
pub fn serve(dir: &Path, bind: &str) -> (std::process::Child, String) {
    let mut child = command(dir, &["serve", "--bind", bind, "--parallelism", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start weir serve");
    let url = address_of(&mut child);
    (child, url)
}

/// The base URL a starting `weir serve` (spawned with its stdout piped) prints; its stdout is drained afterwards.
pub fn address_of(child: &mut std::process::Child) -> String {
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let url = loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).expect("read");
        assert!(n > 0, "weir serve ended before printing its address");
        if let Some(rest) = line.strip_prefix("API at ") {
            break rest.split_whitespace().next().unwrap_or_default().trim_end_matches("/api").to_string();
        }
    };
    // Keep draining stdout so the daemon never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    url
}

/// Installs the named Debian packages when their programs are missing (`.ci/install-debian`, apt as root or with
/// sudo), so that the README's `cargo test` sets up a fresh machine by itself.
pub fn install_debian(packages: &[&str]) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/install-debian");
    let status = Command::new("bash").arg(script).args(packages).status().expect("run .ci/install-debian");
    assert!(status.success(), "{script} {packages:?} failed: the tests need these Debian packages");
}

/// Where a tool the tests use lives: `$env_var` if set, else `~/.cache/weir/<dir>`. `.ci/<script>` installs it when
/// `marker` (a path inside that folder) is missing, or every time when there is no marker (the script then checks
/// what is there itself), so that the README's `cargo test` sets up a fresh machine. `need` says what needs it.
pub fn installed(env_var: &str, dir: &str, marker: Option<&str>, script: &str, need: &str) -> std::path::PathBuf {
    let home = std::env::var_os(env_var).map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/weir").join(dir)
    });
    if marker.is_none_or(|m| !home.join(m).exists()) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci").join(script);
        let status = Command::new("bash").arg(&script).status().expect("run an install script");
        assert!(status.success(), "{} failed: {need}", script.display());
    }
    home
}

/// A CA (`ca.pem`) and a certificate for `localhost` signed by it (`server.pem`, `server.key`) in `dir`, made with
/// openssl: the TLS tests' servers use them. Returns the CA file.
pub fn test_certificates(dir: &Path) -> std::path::PathBuf {
    if Command::new("openssl").arg("version").output().is_err() {
        install_debian(&["openssl"]);
    }
    let script = "set -e
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=weir test CA' 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
chmod 600 server.key
";
    let ok = Command::new("sh").arg("-c").arg(script).current_dir(dir).status().expect("openssl");
    assert!(ok.success(), "openssl could not make the test certificates");
    dir.join("ca.pem")
}

/// Runs weir with more environment variables (secrets given as `${env:..}`), at debug log level.
pub fn weir_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = command(dir, args);
    command.env("WEIR_LOG", "debug").envs(env.iter().copied());
    output_within(command, LONGEST_RUN)
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs weir, asserts success, returns its standard output.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = weir(dir, args);
    assert!(o.status.success(), "weir {args:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs weir with `WEIR_FAILPOINT=points` and asserts that it stopped there (aborted as a `kill -9` would end it),
/// not for another reason.
pub fn crashes_at(dir: &Path, args: &[&str], points: &str) {
    let mut command = command(dir, args);
    command.env("WEIR_FAILPOINT", points);
    let o = output_within(command, LONGEST_RUN);
    assert!(
        !o.status.success() && text(&o).contains("WEIR_FAILPOINT: stopping at"),
        "weir {args:?} should have stopped at a failpoint of `{points}`:\n{}",
        text(&o)
    );
}

/// Runs weir, asserts failure, returns everything it printed.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let o = weir(dir, args);
    assert!(!o.status.success(), "weir {args:?} should have failed:\n{}", text(&o));
    text(&o)
}

/// The single value printed by `weir sql --format csv` for a one-cell query.
pub fn scalar(dir: &Path, query: &str) -> String {
    let out = ok(dir, &["sql", query, "--format", "csv"]);
    out.lines().nth(1).unwrap_or_default().to_string()
}

/// A temporary project named `name` with its lake in `lake/` and the given files (path, contents).
pub fn project(name: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("weir.yaml"), format!("version: 1\nname: {name}\nlake:\n  root: lake\n")).unwrap();
    for (path, body) in files {
        let p = tmp.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    tmp
}

/// Starts `command` (a shell command line) in the background, its output in `log`, under a watchdog that stops it
/// once this test process is gone (statics are never dropped), and waits until it accepts connections on `port`.
pub fn start_server(command: &str, port: u16, log: &Path, what: &str, within: std::time::Duration) {
    let script = format!(
        "{command} >'{}' 2>&1 & m=$!; while kill -0 {} 2>/dev/null; do sleep 1; done; kill $m",
        log.display(),
        std::process::id()
    );
    Command::new("sh").args(["-c", &script]).spawn().expect("start sh");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < within,
            "{what} did not start; its log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A Python function `text(v)` that prints a value read by a warehouse's own Python client in the canonical form the
/// warehouse tests compare: NULL as `NULL`, decimals without trailing zeros, floats as their shortest repr (whole ones
/// without `.0`, as PostgreSQL prints them), booleans `true`/`false`, timestamps with microseconds (with a time zone:
/// in UTC, marked `Z`), binary as hex.
pub const PY_CANONICAL: &str = r#"
import datetime, decimal
def text(v):
    if v is None: return "NULL"
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, float): return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, decimal.Decimal): return format(v.normalize(), "f")
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            return v.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + "Z"
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(v, (bytes, bytearray)): return v.hex()
    return str(v)
"#;

/// `examples/daily_sales` (weir.yaml, pipeline and model, unchanged) in a fresh folder, with two days of the demo's
/// messy orders (2026-03-24 and 2026-03-25, 20,000 rows) in its landing folder.
pub fn daily_sales_example() -> tempfile::TempDir {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/daily_sales");
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    for file in ["weir.yaml", "pipelines/daily_sales.yaml", "models/daily_revenue.sql"] {
        std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    ok(data.path(), &["demo", "--dir", ".", "--generate-only", "--rows", "20000", "--days", "2"]);
    std::fs::create_dir_all(dir.join("landing")).unwrap();
    std::fs::rename(data.path().join("landing/orders"), dir.join("landing/orders")).unwrap();
    project
}

pub mod azure;
pub mod ballista;
pub mod bigquery;
pub mod fraud;
pub mod http;
pub mod kafka;
pub mod mysql;
pub mod pg;
pub mod s3;
pub mod sail;
pub mod snowflake;
pub mod spark;

/// Where a test project's lake lives: the suites that matter run on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `lake/` in the project folder.
    Local,
    /// A fresh prefix of the test bucket on the loopback S3 server.
    S3,
    /// A fresh prefix of the test container on a loopback Azurite.
    Azure,
}

pub struct TestProject {
    pub tmp: tempfile::TempDir,
    backend: Backend,
    /// The lake root's key prefix in the bucket (S3).
    prefix: String,
}

impl TestProject {
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Whether the lake holds this object or folder (`silver/orders/_delta_log/00000000000000000001.json`).
    pub fn has(&self, rel: &str) -> bool {
        match self.backend {
            Backend::Local => self.dir().join("lake").join(rel).exists(),
            Backend::S3 => s3::server().any_under(&format!("{}/{rel}", self.prefix)),
            Backend::Azure => azure::server().any_under(&format!("{}/{rel}", self.prefix)),
        }
    }
}

impl Backend {
    /// A temporary project named `name` with the given files (path, contents), its lake on this backend.
    pub fn project(self, name: &str, files: &[(&str, &str)]) -> TestProject {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tmp = project(name, files);
        let mut prefix = String::new();
        if self == Backend::S3 {
            let server = s3::server();
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            prefix = format!("{name}-{}-{n}/lake", std::process::id());
            let yaml = format!(
                "version: 1\nname: {name}\nlake:\n  root: s3://{}/{prefix}\n  storage:\n    endpoint: {}\n    allow_http: true\n    region: us-east-1\n    access_key_id: test\n    secret_access_key: test\n",
                s3::BUCKET,
                server.endpoint()
            );
            std::fs::write(tmp.path().join("weir.yaml"), yaml).unwrap();
        }
        if self == Backend::Azure {
            let server = azure::server();
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            prefix = format!("{name}-{}-{n}/lake", std::process::id());
            let yaml = format!(
                "version: 1\nname: {name}\nlake:\n  root: az://{}/{prefix}\n  storage:\n    account_name: {}\n    access_key: \"{}\"\n    endpoint: \"{}\"\n    allow_http: true\n",
                azure::CONTAINER,
                azure::ACCOUNT,
                azure::KEY,
                server.endpoint()
            );
            std::fs::write(tmp.path().join("weir.yaml"), yaml).unwrap();
        }
        TestProject { tmp, backend: self, prefix }
    }
}

/// Runs weir with its output discarded and returns whether it succeeded and its peak resident memory in bytes
/// (the kernel's `ru_maxrss` for that one child, from `wait4`).
#[allow(unsafe_code)] // wait4 has no safe wrapper in std
pub fn weir_peak_memory(dir: &Path, args: &[&str]) -> (bool, u64) {
    let child = spawn(dir, args);
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for the kernel to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unwaited child; status and usage point to live locals.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t, "wait4 failed");
    (libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, usage.ru_maxrss as u64 * 1024)
}
