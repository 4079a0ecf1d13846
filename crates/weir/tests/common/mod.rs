//! Helpers shared by the black-box test files: run the real `weir` binary in a folder and read what it printed.
// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env("CI", "true")
        .env("WEIR_LOG", "warn")
        .output()
        .expect("run weir")
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
