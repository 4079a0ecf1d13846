//! The project file `weir.yaml`: where the lake lives, named connections, and defaults every pipeline inherits.
//! A weir project on disk looks like a dbt project: `weir.yaml`, `pipelines/*.yaml`, `models/*.sql`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::de::from_node;
use crate::diag::{suggest, Diagnostic};
use crate::engine::{parse_engine, EngineConfig};
use crate::yaml::{self, Node};

pub const PROJECT_FILE: &str = "weir.yaml";

/// Where lake tables are stored. `raw.orders` lives at `<root>/raw/orders/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// Folder (relative to the project), `file://` URL or `s3://bucket/prefix` of the lake root.
    pub root: String,
    /// Object-store options (`endpoint`, `region`, `access_key_id`, `allow_http`...); values may be `${env:NAME}`.
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
}

/// Parquet compression codec.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Snappy,
    Zstd,
    None,
}

/// Defaults for every sink of the project; a sink may override each.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Parquet compression: `snappy` (default) or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// Rows per Parquet row group.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Rows per record batch flowing through a pipeline.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
}

fn default_row_group_rows() -> usize {
    1 << 20
}

fn default_batch_rows() -> usize {
    64 * 1024
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            compression: Compression::Snappy,
            row_group_rows: default_row_group_rows(),
            batch_rows: default_batch_rows(),
        }
    }
}

/// Where the orchestrator keeps its state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// The metadata store: a `postgres://` URL (for `weir worker` processes on several machines; the password may
    /// be `${env:NAME}`), or a SQLite file relative to the project. Default `.weir/weir.db`; `WEIR_STORE` overrides.
    #[serde(default)]
    pub store: Option<String>,
    /// Pools: a name and how many tasks that name it may run at once (across every worker sharing the store),
    /// to spare a resource such as a warehouse or a rate-limited API.
    #[serde(default)]
    pub pools: BTreeMap<String, PoolSlots>,
}

/// The slots of a pool: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct PoolSlots(pub u32);

impl TryFrom<u32> for PoolSlots {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, String> {
        if n == 0 {
            Err("a pool needs at least one slot".into())
        } else {
            Ok(PoolSlots(n))
        }
    }
}

/// A named connection. Its settings are read by the connector that uses it (`type`), with secrets as `${env:NAME}`.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub kind: String,
    pub node: Node,
}

#[derive(Debug, Clone)]
pub struct Project {
    /// Folder holding `weir.yaml`.
    pub dir: PathBuf,
    pub name: String,
    pub lake: LakeConfig,
    pub defaults: Defaults,
    pub connections: BTreeMap<String, Connection>,
    pub orchestrator: OrchestratorConfig,
    pub engine: EngineConfig,
}

/// The `.yaml`/`.yml` files directly in `dir`, sorted (none when it does not exist): a project's pipelines or
/// streams.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

impl Project {
    pub fn pipelines_dir(&self) -> PathBuf {
        self.dir.join("pipelines")
    }

    pub fn models_dir(&self) -> PathBuf {
        self.dir.join("models")
    }

    /// The lake root as a local path, resolved against the project folder.
    pub fn lake_root(&self) -> PathBuf {
        let root = Path::new(self.lake.root.strip_prefix("file://").unwrap_or(&self.lake.root));
        if root.is_absolute() {
            root.to_path_buf()
        } else {
            self.dir.join(root)
        }
    }

    /// The tasks of `pipeline` that name a pool weir.yaml does not declare (each error is at the task's `pool:` line).
    pub fn check_pools(&self, pipeline: &crate::Pipeline) -> Vec<Diagnostic> {
        let declared: Vec<&str> = self.orchestrator.pools.keys().map(String::as_str).collect();
        pipeline
            .tasks
            .iter()
            .filter_map(|t| t.pool.as_ref().map(|p| (t, p)))
            .filter(|(_, p)| !self.orchestrator.pools.contains_key(&p.name))
            .map(|(t, p)| {
                let hint = if declared.is_empty() {
                    "declare it in weir.yaml: `orchestrator: {pools: {NAME: SLOTS}}`".to_string()
                } else {
                    crate::diag::suggest(&p.name, &declared)
                };
                Diagnostic::new(
                    p.line,
                    1,
                    format!("task `{}` uses pool `{}`, which weir.yaml does not declare", t.name, p.name),
                )
                .with_hint(Some(hint))
                .in_file(&pipeline.file)
            })
            .collect()
    }

    /// Reads and validates `DIR/weir.yaml`, reporting every problem.
    pub fn load(dir: &Path) -> Result<Project, Vec<Diagnostic>> {
        let file = dir.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            vec![Diagnostic::new(1, 1, format!("cannot read project file: {e}"))
                .with_hint(Some("run `weir init DIR` to create a project, or pass --project DIR".into()))
                .in_file(&file)]
        })?;
        Self::parse(dir, &text).map_err(|ds| ds.into_iter().map(|d| d.in_file(&file)).collect())
    }

    pub fn parse(dir: &Path, text: &str) -> Result<Project, Vec<Diagnostic>> {
        let root = yaml::parse(text).map_err(|d| vec![d])?;
        let mut diags = Vec::new();
        const KEYS: &[&str] = &["version", "name", "lake", "defaults", "connections", "orchestrator", "engine"];
        let Some(entries) = root.as_map() else {
            return Err(vec![Diagnostic::at(&root, "weir.yaml must be a mapping with `version`, `name` and `lake`")]);
        };
        for (k, _) in entries {
            let key = k.as_str().unwrap_or("");
            if !KEYS.contains(&key) {
                diags.push(
                    Diagnostic::at(k, format!("unknown key `{key}` in weir.yaml")).with_hint(Some(suggest(key, KEYS))),
                );
            }
        }
        check_version(&root, &mut diags);
        let name = root
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let lake = match root.get("lake") {
            Some(node) => from_node::<LakeConfig>(node, &[]).map_err(|d| diags.extend(d)).ok(),
            None => Some(LakeConfig { root: "lake".into(), storage: BTreeMap::new() }),
        };
        let defaults = match root.get("defaults") {
            Some(node) => from_node::<Defaults>(node, &[]).map_err(|d| diags.extend(d)).ok(),
            None => Some(Defaults::default()),
        };
        let orchestrator = match root.get("orchestrator") {
            Some(node) => from_node::<OrchestratorConfig>(node, &[]).map_err(|d| diags.extend(d)).ok(),
            None => Some(OrchestratorConfig::default()),
        };
        let engine = root.get("engine").map(|n| parse_engine(n, &mut diags)).unwrap_or_default();
        let mut connections = BTreeMap::new();
        if let Some(node) = root.get("connections") {
            match node.as_map() {
                Some(entries) => {
                    for (k, v) in entries {
                        let cname = k.as_str().unwrap_or("").to_string();
                        match v.get("type").and_then(|t| t.as_str()) {
                            Some(kind) => {
                                connections.insert(
                                    cname.clone(),
                                    Connection { name: cname, kind: kind.to_string(), node: v.clone() },
                                );
                            }
                            None => diags.push(Diagnostic::at(v, format!("connection `{cname}` needs a `type`"))),
                        }
                    }
                }
                None if matches!(node.value, crate::yaml::Value::Null) => {}
                None => diags.push(Diagnostic::at(node, "`connections` must map names to connection settings")),
            }
        }
        match (lake, defaults, orchestrator) {
            (Some(lake), Some(defaults), Some(orchestrator)) if diags.is_empty() => {
                Ok(Project { dir: dir.to_path_buf(), name, lake, defaults, connections, orchestrator, engine })
            }
            _ => Err(diags),
        }
    }
}

/// Every file carries `version: 1` so that a future format can be told apart.
pub(crate) fn check_version(root: &Node, diags: &mut Vec<Diagnostic>) {
    match root.get("version") {
        None => diags.push(Diagnostic::at(root, "missing `version: 1` at the top of the file")),
        Some(v) if v.as_str() == Some("1") => {}
        Some(v) => diags.push(Diagnostic::at(
            v,
            format!("unsupported version `{}`: this weir reads version 1", v.as_str().unwrap_or("?")),
        )),
    }
}

/// Resolves `${env:NAME}` (an environment variable) and `${file:PATH}` (a secrets file, such as a mounted
/// Kubernetes or Docker secret; its content without the trailing newline) references. Only `build()` steps call
/// this, never validation, so secrets stay out of `weir validate` output.
pub fn resolve_env(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    loop {
        let env = rest.find("${env:");
        let file = rest.find("${file:");
        let (start, len, from_file) = match (env, file) {
            (Some(e), Some(f)) if f < e => (f, 7, true),
            (Some(e), _) => (e, 6, false),
            (None, Some(f)) => (f, 7, true),
            (None, None) => break,
        };
        out.push_str(&rest[..start]);
        let after = &rest[start + len..];
        let end = after.find('}').ok_or_else(|| "unterminated `${` reference".to_string())?;
        let name = &after[..end];
        let v = if from_file {
            std::fs::read_to_string(name)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("secrets file `{name}`: {e}"))?
        } else {
            std::env::var(name).map_err(|_| format!("environment variable `{name}` is not set"))?
        };
        out.push_str(&v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_project_and_reports_all_problems() {
        let p = Project::parse(Path::new("/p"), "version: 1\nname: shop\nlake:\n  root: lake\n").unwrap();
        assert_eq!(p.lake_root(), PathBuf::from("/p/lake"));
        assert_eq!(p.defaults.compression, Compression::Snappy);

        let errs =
            Project::parse(Path::new("/p"), "version: 2\nlaek: {}\ndefaults:\n  compresion: zstd\n").unwrap_err();
        let text = errs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        assert!(text.contains("unsupported version `2`"), "{text}");
        assert!(text.contains("unknown key `laek`") && text.contains("did you mean `lake`?"), "{text}");
        assert!(text.contains("4:3: unknown key `compresion`"), "{text}");
    }

    #[test]
    fn env_references_resolve() {
        std::env::set_var("WEIR_TEST_SECRET", "s3cr3t");
        assert_eq!(resolve_env("postgres://u:${env:WEIR_TEST_SECRET}@h/db").unwrap(), "postgres://u:s3cr3t@h/db");
        assert!(resolve_env("${env:WEIR_TEST_MISSING_VAR}").unwrap_err().contains("WEIR_TEST_MISSING_VAR"));
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token");
        std::fs::write(&secret, "t0k3n\n").unwrap();
        let text = format!("Bearer ${{file:{}}} as ${{env:WEIR_TEST_SECRET}}", secret.display());
        assert_eq!(resolve_env(&text).unwrap(), "Bearer t0k3n as s3cr3t");
        assert!(resolve_env("${file:/no/such/secret}").unwrap_err().contains("/no/such/secret"));
    }
}
