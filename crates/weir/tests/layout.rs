//! The layout promises of `docs/ARCHITECTURE.md`, checked on the source tree: the crates form layers and each one
//! depends only on crates below it, and inside a crate no two files import each other, directly or round a loop (a
//! type living in the wrong file shows up as such a loop). A new crate must be given its layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each crate's layer: a crate may depend on crates of lower layers only.
const LAYERS: &[(&str, u32)] = &[
    ("weir-core", 0),
    ("weir-config", 1),
    ("weir-connect", 2),
    ("weir-lake", 2),
    ("weir-engine", 3),
    ("weir-orchestrate", 4),
    ("weir-stream", 4),
    ("weir-server", 5),
    ("weir", 6),
    // The Ballista scheduler and executor of the tests: no weir crate, not part of the binary.
    ("weir-test-ballista", 0),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The workspace crates `krate` depends on (normal dependencies, not dev-dependencies).
fn weir_dependencies(krate: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]" {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            if name.starts_with("weir") && !name.is_empty() {
                deps.push(name.to_string());
            }
        }
    }
    deps
}

#[test]
fn every_crate_depends_only_on_crates_below_it() {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    for krate in crates() {
        let Some(&mine) = layer.get(krate.as_str()) else {
            problems.push(format!("crate `{krate}` has no layer: add it to LAYERS and to docs/ARCHITECTURE.md"));
            continue;
        };
        for dep in weir_dependencies(&krate) {
            match layer.get(dep.as_str()) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => {
                    problems.push(format!("`{krate}` (layer {mine}) depends on `{dep}` (layer {theirs}), not below it"))
                }
                None => problems.push(format!("`{krate}` depends on `{dep}`, which has no layer")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The module path of a source file inside its crate (`ops::dedupe`), `crate` for the root.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => "crate".to_string(),
        [rest @ .., last] if last == "mod" => rest.join("::"),
        all => all.join("::"),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules of its crate that a file names as `crate::module...` outside comments and its tests.
fn imports(text: &str, modules: &BTreeSet<String>, me: &str) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let path: String = code[i + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == ':')
            .collect();
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        // The longest prefix that is a module of the crate.
        if let Some(module) = (1..=parts.len()).rev().map(|k| parts[..k].join("::")).find(|m| modules.contains(m)) {
            if module != me {
                found.insert(module);
            }
        }
    }
    found
}

/// The loops of a directed graph (strongly connected components with more than one node).
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for next in graph.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|k| (k, reach(k))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for (node, from_node) in &reachable {
        if !from_node.contains(*node) {
            continue;
        }
        let mut component: Vec<String> =
            from_node.iter().filter(|other| reachable[other].contains(*node)).cloned().collect();
        component.sort();
        if !out.contains(&component) {
            out.push(component);
        }
    }
    out
}

#[test]
fn no_two_files_of_a_crate_import_each_other() {
    let mut problems = Vec::new();
    for krate in crates() {
        let src = workspace().join("crates").join(&krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
        let mut graph = BTreeMap::new();
        for file in &files {
            let me = module_of(&src, file);
            if me == "crate" {
                continue; // the root declares and re-exports every module
            }
            let text = std::fs::read_to_string(file).unwrap();
            let mut used = imports(&text, &modules, &me);
            used.remove("crate");
            graph.insert(me, used);
        }
        for cycle in loops(&graph) {
            problems.push(format!("{krate}: the files of {} import each other", cycle.join(", ")));
        }
    }
    assert!(problems.is_empty(), "{}\n(move the shared type into a leaf module both can import)", problems.join("\n"));
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
            .collect();
    assert_eq!(loops(&graph), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
    let modules: BTreeSet<String> = ["ops", "ops::dedupe", "task"].into_iter().map(str::to_string).collect();
    let found = imports("use crate::ops::dedupe::KeySet; // crate::task\nfn f() { crate::task::run() }", &modules, "x");
    assert_eq!(found, ["ops::dedupe", "task"].into_iter().map(str::to_string).collect());
}
