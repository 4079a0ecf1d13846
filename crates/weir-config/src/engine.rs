//! Where a task's SQL runs: weir.yaml's `engine:` (this process's DataFusion, a Spark Connect engine, a Ballista
//! cluster) and a task's own `engine:` choice. A leaf module: the project file and the pipeline files both hold these.

use serde::Deserialize;

use crate::de::from_node;
use crate::diag::{suggest, Diagnostic};
use crate::yaml::Node;

/// `engine:` in weir.yaml: where the SQL of model and `sql:` tasks runs. `local` (the default) is this process's
/// DataFusion; `{spark: {url: "sc://host:15002", token: ...}}` a Spark Connect engine (Spark, Databricks, Sail) and
/// `{ballista: {url: "df://host:50050"}}` a Ballista scheduler. A declared engine is used by every task it can run
/// unless the task says `engine: local`; `default: local` keeps tasks here unless they name the engine, and with both
/// engines declared `default:` says which one tasks go to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineConfig {
    pub spark: Option<SparkEngine>,
    pub ballista: Option<BallistaEngine>,
    /// Where SQL tasks without an `engine:` of their own run (when the engine can run them).
    pub default: EngineKind,
}

/// A Spark Connect engine: its URL (`sc://host:port`, with `;use_ssl=true` and the other parameters Spark's clients
/// take) and an optional bearer token (`${env:...}` or `${file:...}`, resolved when a task connects).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparkEngine {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    /// How the engine reads the lake's Delta tables.
    #[serde(default)]
    pub delta: DeltaReads,
}

/// How a Spark Connect engine reads the lake's Delta tables: `engine` (the default) by their paths with its own Delta
/// reader (Databricks, Sail, Spark started with Delta Lake's jars); `files`: weir reads each table's log and hands the
/// engine the Parquet files of the version, with their partition values (a Spark without a Delta Lake release for
/// its version, such as Apache Spark 4.3 today). Either way the engine reads one committed version of the table.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeltaReads {
    #[default]
    Engine,
    Files,
}

/// A Ballista cluster: its scheduler's URL (`df://host:50050`). Its executors read the lake with their own
/// credentials or with the lake's `lake.storage` options, which weir sends with each query.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BallistaEngine {
    pub url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineBlock {
    #[serde(default)]
    spark: Option<SparkEngine>,
    #[serde(default)]
    ballista: Option<BallistaEngine>,
    #[serde(default)]
    default: Option<String>,
}

pub(crate) fn parse_engine(node: &Node, diags: &mut Vec<Diagnostic>) -> EngineConfig {
    if node.as_str() == Some("local") {
        return EngineConfig::default();
    }
    let block = match from_node::<EngineBlock>(node, &[]) {
        Ok(b) => b,
        Err(d) => {
            diags.extend(d);
            return EngineConfig::default();
        }
    };
    let at = |k: &str| node.get(k).unwrap_or(node);
    let urls = [
        block.spark.as_ref().map(|s| (EngineKind::Spark, s.url.as_str())),
        block.ballista.as_ref().map(|b| (EngineKind::Ballista, b.url.as_str())),
    ];
    for (kind, url) in urls.into_iter().flatten() {
        let scheme = kind.url_scheme();
        if !url.starts_with(scheme) && !url.contains("${") {
            diags.push(Diagnostic::at(
                at(kind.name()),
                format!("engine {}: `{url}` is not a {} URL ({scheme}host:port)", kind.name(), kind.protocol()),
            ));
        }
    }
    let declared: Vec<EngineKind> = urls.iter().flatten().map(|(k, _)| *k).collect();
    let default = match block.default.as_deref() {
        None if declared.len() > 1 => {
            diags.push(Diagnostic::at(
                node,
                "engine: both spark and ballista are declared; say where tasks go with `default: spark`, `default: ballista` or `default: local`",
            ));
            EngineKind::Local
        }
        None => declared.first().copied().unwrap_or(EngineKind::Local),
        Some(name) if EngineKind::parse(name).is_some_and(|k| k == EngineKind::Local || declared.contains(&k)) => {
            EngineKind::parse(name).unwrap_or_default()
        }
        Some(other) => {
            let names: Vec<&str> =
                std::iter::once("local").chain(declared.iter().map(|k| k.name())).collect::<Vec<_>>();
            diags.push(
                Diagnostic::at(at("default"), format!("engine default `{other}` is not `local` or a declared engine"))
                    .with_hint(Some(suggest(other, &names))),
            );
            EngineKind::Local
        }
    };
    EngineConfig { spark: block.spark, ballista: block.ballista, default }
}

/// Where a task's SQL runs: `local` (this process's DataFusion), `spark` (weir.yaml's Spark Connect engine) or
/// `ballista` (weir.yaml's Ballista cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    #[default]
    Local,
    Spark,
    Ballista,
}

impl EngineKind {
    pub const ALL: [EngineKind; 3] = [EngineKind::Local, EngineKind::Spark, EngineKind::Ballista];
    pub const NAMES: &'static [&'static str] = &["local", "spark", "ballista"];

    pub fn parse(name: &str) -> Option<EngineKind> {
        EngineKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Why this engine's workers cannot read a lake whose root (as weir.yaml writes it, or its URL) is `root`, or
    /// None if they can: Ballista's executors have S3 and local-folder stores only. What Spark reads depends on the
    /// connectors and jars it was started with, which weir cannot see from here.
    pub fn cannot_read_lake(self, root: &str) -> Option<&'static str> {
        let scheme = root.split_once("://").map(|(scheme, _)| scheme);
        match self {
            EngineKind::Ballista if !matches!(scheme, None | Some("s3" | "file")) => {
                Some("its executors read S3 and local folders only")
            }
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Local => "local",
            EngineKind::Spark => "spark",
            EngineKind::Ballista => "ballista",
        }
    }

    fn url_scheme(self) -> &'static str {
        match self {
            EngineKind::Spark => "sc://",
            EngineKind::Ballista => "df://",
            EngineKind::Local => "",
        }
    }

    fn protocol(self) -> &'static str {
        match self {
            EngineKind::Spark => "Spark Connect",
            EngineKind::Ballista => "Ballista scheduler",
            EngineKind::Local => "local",
        }
    }
}

/// A task's `engine:` and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskEngine {
    pub kind: EngineKind,
    pub line: usize,
}

/// A remote engine weir.yaml declares, as a task uses it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RemoteEngine<'p> {
    Spark(&'p SparkEngine),
    Ballista(&'p BallistaEngine),
}

impl RemoteEngine<'_> {
    pub fn kind(&self) -> EngineKind {
        match self {
            RemoteEngine::Spark(_) => EngineKind::Spark,
            RemoteEngine::Ballista(_) => EngineKind::Ballista,
        }
    }

    /// The URL as written (it may still hold `${env:...}`).
    pub fn url(&self) -> &str {
        match self {
            RemoteEngine::Spark(s) => &s.url,
            RemoteEngine::Ballista(b) => &b.url,
        }
    }
}

impl EngineConfig {
    /// The declared engine of `kind`, if weir.yaml declares it.
    pub fn remote(&self, kind: EngineKind) -> Option<RemoteEngine<'_>> {
        match kind {
            EngineKind::Local => None,
            EngineKind::Spark => self.spark.as_ref().map(RemoteEngine::Spark),
            EngineKind::Ballista => self.ballista.as_ref().map(RemoteEngine::Ballista),
        }
    }

    /// Every declared remote engine.
    pub fn declared(&self) -> Vec<RemoteEngine<'_>> {
        EngineKind::ALL.into_iter().filter_map(|k| self.remote(k)).collect()
    }
}

/// Whether an engine runs on this machine (`sc://localhost`, `df://127.0.0.1:50050`, `[::1]`), where it can read a
/// lake in a local folder; `None` while the URL is still a `${env:...}` reference.
pub fn on_this_machine(url: &str) -> Option<bool> {
    if url.contains("${") {
        return None;
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let address = rest.split([';', '/']).next().unwrap_or_default();
    let host = match address.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => address.rsplit_once(':').map_or(address, |(h, _)| h),
    };
    Some(host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (EngineConfig, Vec<String>) {
        let node = crate::yaml::parse(text).unwrap();
        let mut diags = Vec::new();
        let config = parse_engine(&node, &mut diags);
        (config, diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn loopback_engines_are_on_this_machine() {
        assert_eq!(on_this_machine("sc://127.0.0.1:15002"), Some(true));
        assert_eq!(on_this_machine("sc://localhost/;use_ssl=false"), Some(true));
        assert_eq!(on_this_machine("sc://[::1]:15002"), Some(true));
        assert_eq!(on_this_machine("df://localhost:50050"), Some(true));
        assert_eq!(on_this_machine("sc://spark.internal:15002"), Some(false));
        assert_eq!(on_this_machine("df://ballista.internal:50050"), Some(false));
        assert_eq!(on_this_machine("sc://127.example.com:15002"), Some(false));
        assert_eq!(on_this_machine("${env:SPARK_URL}"), None);
    }

    #[test]
    fn one_declared_engine_is_the_default_and_two_need_a_choice() {
        let (c, d) = parse("ballista: {url: 'df://h:50050'}");
        assert_eq!((c.default, d.len()), (EngineKind::Ballista, 0));
        let (c, d) = parse("{spark: {url: 'sc://h'}, ballista: {url: 'df://h:50050'}, default: ballista}");
        assert_eq!((c.default, d.len(), c.spark.is_some()), (EngineKind::Ballista, 0, true));
        let (c, d) = parse("{spark: {url: 'sc://h'}, ballista: {url: 'df://h:50050'}}");
        assert_eq!(c.default, EngineKind::Local);
        assert!(d[0].contains("say where tasks go"), "{d:?}");
        let (_, d) = parse("{ballista: {url: 'sc://h:50050'}}");
        assert!(d[0].contains("not a Ballista scheduler URL (df://host:port)"), "{d:?}");
        let (_, d) = parse("{ballista: {url: 'df://h:50050'}, default: spark}");
        assert!(d[0].contains("engine default `spark` is not `local` or a declared engine"), "{d:?}");
    }

    #[test]
    fn a_spark_engine_reads_delta_itself_unless_told_to_take_the_files() {
        let (c, d) = parse("spark: {url: 'sc://h'}");
        assert_eq!((c.spark.unwrap().delta, d.len()), (DeltaReads::Engine, 0));
        let (c, d) = parse("spark: {url: 'sc://h', delta: files}");
        assert_eq!((c.spark.unwrap().delta, d.len()), (DeltaReads::Files, 0));
        let (_, d) = parse("spark: {url: 'sc://h', delta: parquet}");
        assert!(d.iter().any(|d| d.contains("parquet") && d.contains("files")), "{d:?}");
    }
}
