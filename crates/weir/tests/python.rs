//! The Python package (`python/`): installed with `pip install ./python` (maturin's PEP 517 backend) into a virtualenv
//! (`.ci/install-python` makes it on first use) and tested with pytest (`python/tests`), so that `cargo test --workspace` runs the Python suite too.
//!
//! The extension is built in the workspace's target folder with the same profile and features as this test build
//! (`python/check-build-reuse` checks the features), so the wheel's build compiles the extension crate and PyO3 and reuses
//! everything else, DataFusion included.
//!
//! The handbook's snippets that talk to servers (chunked database extraction, the Kafka fraud consumer) get a real
//! PostgreSQL and a real Kafka broker from this harness, as the Rust tests do, named to pytest in
//! `WEIR_TEST_POSTGRES_URL` and `WEIR_TEST_KAFKA_BOOTSTRAP`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace folder")
}

fn venv() -> PathBuf {
    match std::env::var_os("WEIR_PYTHON_VENV") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/weir/python-venv"),
    }
}

/// Makes the virtualenv once per test binary (its tests run at once).
fn install_python() -> PathBuf {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        run("install the Python test environment", Command::new("bash").arg(workspace().join(".ci/install-python")));
        *done = true;
    }
    venv()
}

fn run(what: &str, command: &mut Command) {
    let status = command.status().unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(status.success(), "{what} failed: {status}");
}

/// The variables cargo sets for a test process, as opposed to the user's own (CARGO_HOME, CARGO_TARGET_DIR, ...).
fn is_set_by_cargo_for_tests(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "CARGO_MAKEFLAGS",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

#[test]
fn the_python_package_passes_its_tests() {
    let root = workspace();
    let venv = install_python();
    run(
        "compare the extension's features with the workspace's",
        &mut Command::new(root.join("python/check-build-reuse")),
    );
    // The test build's own target folder: the wheel is built after this test binary was, when cargo has released it.
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    // What a user types, `pip install ./python` (maturin's PEP 517 backend builds the wheel), with the test build's
    // profile instead of release so that it reuses what this build compiled; `--no-build-isolation` takes maturin
    // from the virtualenv instead of downloading it into a throwaway one.
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args(["install", "--quiet", "--disable-pip-version-check", "--no-build-isolation", "--force-reinstall"])
        .args(["--no-deps"])
        .arg(root.join("python"))
        .env("MATURIN_PEP517_ARGS", "--profile dev --locked")
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default()))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root.join("python"));
    // Cargo gives this test process the variables of the `weir` package (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, ...).
    // Passed on, the inner cargo would see them as changed inputs of build scripts that watch them (ring's), rerun
    // those, and rebuild everything above them (DataFusion included), twice: once here, once in the next test build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_set_by_cargo_for_tests(&name) {
            install.env_remove(name.as_ref());
        }
    }
    run("pip install ./python", &mut install);
    // The wheel, not the source folder: the package and the `weir` command from site-packages and the venv's bin.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let installed = Command::new(venv.join("bin/python"))
        .args(["-c", "import weir; print(weir.__file__, weir.__version__)"])
        .current_dir(elsewhere.path())
        .output()
        .expect("run python");
    let installed = String::from_utf8_lossy(&installed.stdout);
    assert!(installed.contains("site-packages/weir/__init__.py"), "weir is not installed from the wheel: {installed}");
    let version = Command::new(venv.join("bin/weir")).arg("--version").output().expect("the weir console script");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("weir "), "weir --version: {version:?}");
    let postgres = common::pg::server();
    let database = postgres.database("handbook");
    let kafka = common::kafka::kafka();
    run(
        "pytest python/tests",
        Command::new(venv.join("bin/python"))
            // -P, and `python/tests` as the working folder (which the tests' own `python -m weir._cli` subprocesses
            // put on sys.path): the source folder `python/` is never on sys.path, so `import weir` is the installed
            // wheel's, as on a fresh clone, where `python/weir` has no compiled extension.
            .args(["-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "."])
            .env("WEIR_TEST_POSTGRES_URL", postgres.url(&database))
            .env("WEIR_TEST_KAFKA_BOOTSTRAP", &kafka.bootstrap)
            .env("WEIR_TEST_SERVERS_REQUIRED", "1")
            .env("VIRTUAL_ENV", &venv)
            .env("PATH", format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default()))
            .current_dir(root.join("python/tests")),
    );
}

/// The binary does not link Python: a `python:` step and a `python:` task run on the interpreter `WEIR_PYTHON` names
/// (here the test virtualenv's, which has pyarrow), in worker processes.
#[test]
fn the_binary_runs_python_steps_and_tasks_on_the_interpreter_it_is_given() {
    let python = install_python().join("bin/python");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("pipelines")).expect("pipelines");
    std::fs::write(root.join("weir.yaml"), "version: 1\nname: py\nlake:\n  root: lake\n").expect("weir.yaml");
    std::fs::write(root.join("orders.csv"), "order_id,amount\n1,10\n2,20\n3,30\n").expect("csv");
    std::fs::write(
        root.join("pipelines/orders.yaml"),
        "version: 1\ntasks:\n  - name: load\n    source: {type: csv, path: orders.csv}\n    steps:\n      - python: \"steps:add_tax\"\n    sink: {type: lake, table: silver.orders}\n  - name: notify\n    depends_on: [load]\n    python: {callable: \"steps:notify\", params: {channel: ops}}\n",
    )
    .expect("pipeline");
    std::fs::write(
        root.join("steps.py"),
        "import pyarrow.compute as pc\n\ndef add_tax(batch):\n    return batch.append_column('gross', pc.multiply(batch.column('amount'), 1.25))\n\ndef notify(context):\n    print('sent to', context.params['channel'], 'for', context.ds)\n",
    )
    .expect("steps.py");
    let weir = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("-p")
            .arg(root)
            .args(args)
            .env("WEIR_PYTHON", &python)
            .env_remove("VIRTUAL_ENV")
            .output()
            .expect("run weir");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "weir {args:?} failed:\n{text}");
        text
    };
    let ran = weir(&["run", "orders", "--date", "2026-03-25"]);
    assert!(ran.contains("sent to ops for 2026-03-25"), "{ran}");
    let rows = weir(&["sql", "SELECT sum(gross) AS g FROM silver.orders", "-f", "csv"]);
    assert!(rows.contains("75"), "{rows}");
}
