//! The registry of batch connectors: which [`BatchSource`] or [`BatchSink`] a `type:` names. It is the one place
//! that lists every connector of this crate ([`Registry::builtin`]); a program or a test may add its own
//! ([`Registry::with_source`]): the tests of `weir-engine` add a toy source from a single test file this way.

use weir_config::{Component, Diagnostic};

use crate::connector::{BatchSink, BatchSource, SinkKind, SourceKind};

/// The connectors a pipeline may name, by `type:`.
#[derive(Clone)]
pub struct Registry {
    sources: Vec<SourceKind>,
    sinks: Vec<SinkKind>,
}

impl Registry {
    /// Every connector of this crate: one line each.
    pub fn builtin() -> Registry {
        Registry { sources: Vec::new(), sinks: Vec::new() }
            .with_source(crate::file::CSV)
            .with_source(crate::file::JSON)
            .with_source(crate::file::NDJSON)
            .with_source(crate::file::PARQUET)
            .with_source(crate::http_api::SOURCE)
            .with_source(crate::postgres::SOURCE)
            .with_source(crate::mysql::SOURCE)
            .with_source(crate::sqlite::SOURCE)
            .with_sink(crate::postgres_sink::SINK)
            .with_sink(crate::sqlite::SINK)
            .with_sink(crate::snowflake::SINK)
            .with_sink(crate::bigquery::SINK)
            .with_sink(crate::redshift::SINK)
    }

    /// The registry with one more source kind (replacing one of the same name).
    pub fn with_source(mut self, kind: SourceKind) -> Registry {
        self.sources.retain(|k| k.name != kind.name);
        self.sources.push(kind);
        self
    }

    /// The registry with one more sink kind (replacing one of the same name).
    pub fn with_sink(mut self, kind: SinkKind) -> Registry {
        self.sinks.retain(|k| k.name != kind.name);
        self.sinks.push(kind);
        self
    }

    pub fn source_kinds(&self) -> Vec<&'static str> {
        self.sources.iter().map(|k| k.name).collect()
    }

    pub fn sink_kinds(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|k| k.name).collect()
    }

    /// Reads a `source:` block; an unknown `type` lists the known ones (with `also`, kinds handled elsewhere).
    pub fn source(
        &self,
        component: &Component,
        also: &[&'static str],
    ) -> std::result::Result<Box<dyn BatchSource>, Vec<Diagnostic>> {
        match self.sources.iter().find(|k| k.name == component.kind) {
            Some(kind) => (kind.parse)(&component.node),
            None => Err(unknown("source", component, self.source_kinds(), also)),
        }
    }

    /// Reads a `sink:` block; an unknown `type` lists the known ones (with `also`, kinds handled elsewhere).
    pub fn sink(
        &self,
        component: &Component,
        also: &[&'static str],
    ) -> std::result::Result<Box<dyn BatchSink>, Vec<Diagnostic>> {
        match self.sinks.iter().find(|k| k.name == component.kind) {
            Some(kind) => (kind.parse)(&component.node),
            None => Err(unknown("sink", component, self.sink_kinds(), also)),
        }
    }
}

fn unknown(what: &str, component: &Component, mut kinds: Vec<&'static str>, also: &[&'static str]) -> Vec<Diagnostic> {
    kinds.extend_from_slice(also);
    let node = component.node.get("type").unwrap_or(&component.node);
    vec![Diagnostic::at(node, format!("unknown {what} type `{}`", component.kind))
        .with_hint(Some(weir_config::diag::suggest(&component.kind, &kinds)))]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The YAML examples in the module docs of the connectors, as a user would copy them.
    const DOCUMENTED: &[(&str, &str)] = &[
        ("file.rs", include_str!("file.rs")),
        ("http_api.rs", include_str!("http_api.rs")),
        ("postgres.rs", include_str!("postgres.rs")),
        ("mysql.rs", include_str!("mysql.rs")),
        ("sqlite.rs", include_str!("sqlite.rs")),
        ("postgres_sink.rs", include_str!("postgres_sink.rs")),
        ("snowflake.rs", include_str!("snowflake.rs")),
        ("bigquery.rs", include_str!("bigquery.rs")),
        ("redshift.rs", include_str!("redshift.rs")),
    ];

    fn doc_example(source: &str) -> String {
        let doc: Vec<&str> =
            source.lines().take_while(|l| l.starts_with("//!")).map(|l| l.trim_start_matches("//!")).collect();
        let start = doc.iter().position(|l| l.trim() == "```yaml").expect("a yaml example") + 1;
        let end = start + doc[start..].iter().position(|l| l.trim() == "```").expect("the example's end");
        doc[start..end].iter().map(|l| l.strip_prefix(' ').unwrap_or(l)).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_connector_parses_the_example_in_its_module_doc() {
        let registry = Registry::builtin();
        let mut seen = Vec::new();
        for (file, text) in DOCUMENTED {
            let example = doc_example(text);
            let root = weir_config::yaml::parse(&example).unwrap_or_else(|d| panic!("{file}: {d}\n{example}"));
            for (key, node) in root.as_map().unwrap_or_default() {
                let kind = node.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_string();
                let component = Component { kind: kind.clone(), node: node.clone() };
                let parsed = match key.as_str() {
                    Some("source") => registry.source(&component, &[]).map(|s| s.kind().to_string()),
                    Some("sink") => registry.sink(&component, &[]).map(|s| s.kind().to_string()),
                    other => panic!("{file}: unexpected key {other:?}"),
                };
                let text = parsed
                    .map_err(|d| format!("{file}: {}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")));
                assert_eq!(text, Ok(kind.clone()), "{file}");
                seen.push(kind);
            }
        }
        for kind in ["csv", "http_api", "postgres", "mysql", "sqlite", "snowflake", "bigquery", "redshift"] {
            assert!(seen.iter().any(|k| k == kind), "no documented example of `{kind}`");
        }
    }

    #[test]
    fn an_unknown_type_lists_the_known_ones() {
        let node = weir_config::yaml::parse("{type: csvv, path: x}").unwrap();
        let component = Component { kind: "csvv".into(), node };
        let err = Registry::builtin().source(&component, &["lake"]).unwrap_err();
        let text = err[0].to_string();
        assert!(text.contains("unknown source type `csvv`") && text.contains("csv"), "{text}");
    }
}
