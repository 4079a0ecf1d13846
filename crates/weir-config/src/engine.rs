//! Where a task's SQL runs: weir.yaml's `engine:` (this process's DataFusion, or a Spark Connect engine) and a
//! task's own `engine:` choice. A leaf module: the project file and the pipeline files both hold these.

use serde::Deserialize;

use crate::de::from_node;
use crate::diag::{suggest, Diagnostic};
use crate::yaml::Node;

/// `engine:` in weir.yaml: where the SQL of model and `sql:` tasks runs. `local` (the default) is this process's
/// DataFusion; `{spark: {url: "sc://host:15002", token: ...}}` a Spark Connect engine (Spark, Databricks, Sail),
/// used by every SQL task unless it says `engine: local`, or only by tasks that say `engine: spark` when weir.yaml
/// adds `default: local`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineConfig {
    pub spark: Option<SparkEngine>,
    /// SQL tasks without an `engine:` of their own run on `spark`.
    pub spark_by_default: bool,
}

/// A Spark Connect engine: its URL (`sc://host:port`, with `;use_ssl=true` and the other parameters Spark's clients
/// take) and an optional bearer token (`${env:...}` or `${file:...}`, resolved when a task connects).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SparkEngine {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineBlock {
    #[serde(default)]
    spark: Option<SparkEngine>,
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
    if let Some(spark) = &block.spark {
        if !spark.url.starts_with("sc://") && !spark.url.contains("${") {
            diags.push(Diagnostic::at(
                at("spark"),
                format!("engine spark: `{}` is not a Spark Connect URL (sc://host:port)", spark.url),
            ));
        }
    }
    let spark_by_default = match block.default.as_deref() {
        None => block.spark.is_some(),
        Some("local") => false,
        Some("spark") if block.spark.is_some() => true,
        Some(other) => {
            diags.push(
                Diagnostic::at(at("default"), format!("engine default `{other}` is not `local` or a declared engine"))
                    .with_hint(Some(suggest(other, &["local", "spark"]))),
            );
            false
        }
    };
    EngineConfig { spark: block.spark, spark_by_default }
}

/// Where a task's SQL runs: `local` (this process's DataFusion) or `spark` (weir.yaml's Spark Connect engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Local,
    Spark,
}

/// A task's `engine:` and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskEngine {
    pub kind: EngineKind,
    pub line: usize,
}

impl SparkEngine {
    /// Whether the engine runs on this machine (`sc://localhost`, `127.0.0.1`, `[::1]`), where it can read a lake in a
    /// local folder; `None` while the URL is still a `${env:...}` reference.
    pub fn on_this_machine(url: &str) -> Option<bool> {
        if url.contains("${") {
            return None;
        }
        let rest = url.strip_prefix("sc://").unwrap_or(url);
        let address = rest.split([';', '/']).next().unwrap_or_default();
        let host = match address.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => address.rsplit_once(':').map_or(address, |(h, _)| h),
        };
        Some(
            host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_engines_are_on_this_machine() {
        assert_eq!(SparkEngine::on_this_machine("sc://127.0.0.1:15002"), Some(true));
        assert_eq!(SparkEngine::on_this_machine("sc://localhost/;use_ssl=false"), Some(true));
        assert_eq!(SparkEngine::on_this_machine("sc://[::1]:15002"), Some(true));
        assert_eq!(SparkEngine::on_this_machine("sc://spark.internal:15002"), Some(false));
        assert_eq!(SparkEngine::on_this_machine("sc://127.example.com:15002"), Some(false));
        assert_eq!(SparkEngine::on_this_machine("${env:SPARK_URL}"), None);
    }
}
