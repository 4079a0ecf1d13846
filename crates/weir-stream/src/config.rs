//! Stream files (`streams/NAME.yaml`, or any file given to `weir stream`): where events come from, their schema and
//! event time, the lookups, windows, features, score and rules that decide each event, and where decisions go.
//!
//! ```yaml
//! version: 1
//! name: fraud
//! source: {type: kafka, brokers: "127.0.0.1:9092", topics: [payments], group: fraud-detectors}
//! schema: {transaction_id: string, card_id: string, user_id: string, amount: double, country: string, ts: timestamp}
//! event_time: {field: ts, max_out_of_orderness: 5s, allowed_lateness: 30s}
//! lookups:
//!   users: {table: ref.users, key: user_id, refresh: 5m}
//! windows:
//!   card_10m:
//!     key: card_id
//!     size: 10m
//!     aggregates: {count: "count(*)", amount_sum: "sum(amount)", countries: "count(distinct country)"}
//! features:
//!   country_mismatch: "country <> users.home_country"
//! rules:
//!   - {name: big_foreign, when: "amount > 5000 AND country_mismatch", decision: escalate, priority: 100}
//!   - {name: velocity, when: "card_10m.count > 5", decision: hold, priority: 50}
//! outputs:
//!   alerts: [{type: kafka, topic: fraud-alerts}, {type: delta, table: fraud.alerts}]
//! delivery: exactly_once
//! ```
//!
//! Like the pipeline files, this is read in two phases: [`StreamConfig::parse`] checks everything it can without IO
//! and reports every problem with its line; the runtime then builds connections from the validated config.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use weir_config::diag::{did_you_mean, suggest};
use weir_config::yaml::{self, Value};
use weir_config::{from_node, Diagnostic, Node};

const STREAM_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "source",
    "schema",
    "event_time",
    "lookups",
    "windows",
    "features",
    "score",
    "rules",
    "outputs",
    "delivery",
    "batch",
    "checkpoint",
    "feedback",
];
const OUTPUT_KINDS: &[&str] = &["decisions", "alerts", "late", "invalid"];
pub const DECISIONS: &[&str] = &["approve", "hold", "escalate"];
const FIELD_TYPES: &[&str] = &["string", "long", "int", "double", "boolean", "timestamp", "date"];

/// A validated stream.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub file: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub source: SourceConfig,
    /// The event's fields in order, with their type names (see `FIELD_TYPES`).
    pub schema: Vec<(String, String)>,
    pub event_time: EventTime,
    pub lookups: Vec<LookupConfig>,
    pub windows: Vec<WindowConfig>,
    /// Derived columns, in order; each may use the ones before it.
    pub features: Vec<Named>,
    pub score: Option<ScoreConfig>,
    pub rules: Vec<Rule>,
    pub outputs: Outputs,
    pub delivery: Delivery,
    pub batch: BatchConfig,
    /// How often window state is checkpointed (offsets are committed after every micro-batch).
    pub checkpoint_interval: Duration,
    pub feedback: Option<FeedbackConfig>,
}

/// A name, its SQL text and the line it was written on (for errors about the expression).
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub sql: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum SourceConfig {
    Kafka(KafkaSourceConfig),
    /// Newline-delimited JSON from a file (`-`: standard input).
    Ndjson {
        path: String,
        line: usize,
    },
    /// The built-in payment generator (the fraud demo and the benchmarks).
    Generator(GeneratorConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// `host:port[,host:port...]`, or `${env:KAFKA_BROKERS}`.
    pub brokers: String,
    pub topics: Vec<String>,
    /// The consumer group: processes with the same group split the partitions.
    pub group: String,
    /// Where a partition with no committed offset and no checkpoint starts: `earliest` or `latest`.
    #[serde(default = "default_start")]
    pub start: String,
    /// `json` (one JSON object per message) or `avro`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Avro: the writer schema file (`.avsc`, relative to the stream file).
    #[serde(default)]
    pub avro_schema: Option<String>,
    /// Avro: `confluent` (magic byte and schema id, as Schema Registry serializers write) or `single_object`.
    #[serde(default)]
    pub avro_framing: Option<String>,
    /// Avro with `confluent` framing: the registry id of `avro_schema`.
    #[serde(default)]
    pub avro_schema_id: Option<u32>,
    /// librdkafka properties, for SASL and TLS (`security.protocol`, `sasl.mechanisms`, `sasl.username`,
    /// `sasl.password: ${env:KAFKA_PASSWORD}`, `ssl.ca.location`...). Values may be `${env:...}`.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

fn default_start() -> String {
    "earliest".into()
}
fn default_format() -> String {
    "json".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Events to generate (the stream ends after them).
    pub events: u64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Distinct cards (and users).
    #[serde(default = "default_cards")]
    pub cards: u64,
    /// Share of events that are fraud.
    #[serde(default = "default_fraud_rate")]
    pub fraud_rate: f64,
    /// Share of events delivered late (outside the allowed lateness).
    #[serde(default)]
    pub late_rate: f64,
}

fn default_seed() -> u64 {
    42
}
fn default_cards() -> u64 {
    5_000
}
fn default_fraud_rate() -> f64 {
    0.01
}

#[derive(Debug, Clone)]
pub struct EventTime {
    pub field: String,
    pub max_out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    /// How far an event time may be ahead of its message's own time (the broker's timestamp, or when it was
    /// read) before the event is invalid: one event dated next year must not move the watermark.
    pub max_future_skew_ms: i64,
}

/// `max_future_skew` when the file does not set it.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone)]
pub struct LookupConfig {
    pub name: String,
    /// The event field matched against the lookup's key column.
    pub on: String,
    /// The lookup's key column.
    pub key: String,
    pub from: LookupFrom,
    pub refresh: Option<Duration>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum LookupFrom {
    /// A lake table (`zone.table`).
    Lake(String),
    /// A query on PostgreSQL (`url` or a weir.yaml `connection`).
    Postgres { url: Option<String>, connection: Option<String>, query: String },
    /// A CSV or NDJSON file (relative to the stream file).
    File(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The `size` of event time up to and including each event (`RANGE BETWEEN size PRECEDING AND CURRENT ROW`).
    Sliding,
    /// Fixed, non-overlapping buckets of `size` aligned on the epoch; each event sees its bucket up to itself.
    Tumbling,
}

#[derive(Debug, Clone)]
pub struct WindowConfig {
    pub name: String,
    pub key: String,
    pub kind: WindowKind,
    pub size_ms: i64,
    pub aggregates: Vec<Aggregate>,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    Count,
    Sum,
    Avg,
    Max,
    Min,
    CountDistinct,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub name: String,
    pub func: AggFunc,
    /// The argument's SQL (`None` for `count(*)`).
    pub arg: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub enum ScoreConfig {
    /// A SQL expression (a weighted sum of features, say).
    Expression(Named),
    /// A model served over HTTP: weir POSTs `{"instances": [{field: value...}...]}` and reads `{"scores": [...]}`.
    Http(HttpScore),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpScore {
    pub url: String,
    /// The columns sent for each event.
    pub fields: Vec<String>,
    /// Per request; a model that does not answer in time fails the batch (and the stream retries it).
    #[serde(default = "default_http_timeout")]
    pub timeout: String,
    /// Headers, such as `Authorization: "Bearer ${env:MODEL_TOKEN}"`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

fn default_http_timeout() -> String {
    "2s".into()
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub when: String,
    pub decision: String,
    /// The matching rule with the highest priority decides; equal priorities go to the rule written first.
    pub priority: i64,
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Outputs {
    pub decisions: Vec<SinkConfig>,
    pub alerts: Vec<SinkConfig>,
    pub late: Vec<SinkConfig>,
    pub invalid: Vec<SinkConfig>,
}

impl Outputs {
    pub fn all(&self) -> impl Iterator<Item = (OutputKind, &SinkConfig)> {
        self.decisions
            .iter()
            .map(|s| (OutputKind::Decisions, s))
            .chain(self.alerts.iter().map(|s| (OutputKind::Alerts, s)))
            .chain(self.late.iter().map(|s| (OutputKind::Late, s)))
            .chain(self.invalid.iter().map(|s| (OutputKind::Invalid, s)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// Every decided event.
    Decisions,
    /// Decided events whose decision is not `approve`.
    Alerts,
    /// Events older than the watermark minus the allowed lateness.
    Late,
    /// Messages that could not be decoded, or lack their event time.
    Invalid,
}

impl OutputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::Decisions => "decisions",
            OutputKind::Alerts => "alerts",
            OutputKind::Late => "late",
            OutputKind::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone)]
pub enum SinkConfig {
    Kafka(KafkaSinkConfig),
    Delta { table: String, line: usize },
    Postgres { url: Option<String>, connection: Option<String>, table: String, line: usize },
    Webhook(WebhookConfig),
    Ndjson { path: String, line: usize },
    Stdout,
}

impl SinkConfig {
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::Kafka(k) => format!("kafka topic {}", k.topic),
            SinkConfig::Delta { table, .. } => format!("delta table {table}"),
            SinkConfig::Postgres { table, .. } => format!("postgres table {table}"),
            SinkConfig::Webhook(w) => format!("webhook {}", w.url),
            SinkConfig::Ndjson { path, .. } => format!("file {path}"),
            SinkConfig::Stdout => "stdout".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub topic: String,
    /// Default: the source's brokers.
    #[serde(default)]
    pub brokers: Option<String>,
    /// The column used as the message key (default: none).
    #[serde(default)]
    pub key: Option<String>,
    /// librdkafka producer properties (SASL, TLS...).
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_http_timeout")]
    pub timeout: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Offsets are committed only after every sink acknowledged the batch: nothing is lost, a crash may repeat the
    /// last batch to sinks that cannot deduplicate.
    AtLeastOnce,
    /// Kafka sinks write in a transaction that also commits the consumed offsets; Delta and PostgreSQL sinks record
    /// the offsets they hold in the same commit as the rows, so a replay skips what they already have.
    ExactlyOnce,
}

impl Delivery {
    /// As written in a stream file.
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtLeastOnce => "at_least_once",
            Delivery::ExactlyOnce => "exactly_once",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub max_events: usize,
    pub max_wait: Duration,
}

#[derive(Debug, Clone)]
pub struct FeedbackConfig {
    /// Where labels come from: a Kafka topic (the source's brokers) or an NDJSON file.
    pub labels: LabelsFrom,
    /// The event field that identifies an event in both the alerts and the labels.
    pub id: String,
    /// The label field: `fraud`, `chargeback` (positives) or `false_positive`, `legit` (negatives).
    pub label: String,
}

#[derive(Debug, Clone)]
pub enum LabelsFrom {
    Kafka { topic: String },
    Ndjson { path: String },
}

/// A duration setting ([`weir_config::duration`]'s syntax: `500ms`, `30s`, `10m`, `1h`) in milliseconds.
pub fn parse_millis(text: &str) -> Result<i64, String> {
    let d = weir_config::duration::parse(text)?;
    i64::try_from(d.as_millis()).map_err(|_| format!("`{text}` is too long a duration"))
}

fn duration_at(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<i64> {
    match parse_millis(node.as_str().unwrap_or_default()) {
        Ok(v) => Some(v),
        Err(e) => {
            diags.push(Diagnostic::at(node, e));
            None
        }
    }
}

fn check_keys(node: &Node, allowed: &[&str], what: &str, diags: &mut Vec<Diagnostic>) {
    for (k, _) in node.as_map().unwrap_or_default() {
        let key = k.as_str().unwrap_or_default();
        if !allowed.contains(&key) {
            diags.push(
                Diagnostic::at(k, format!("unknown key `{key}` in {what}"))
                    .with_hint(did_you_mean(key, allowed.iter().copied())),
            );
        }
    }
}

fn str_at<'a>(node: &'a Node, key: &str, what: &str, diags: &mut Vec<Diagnostic>) -> Option<&'a str> {
    match node.get(key) {
        Some(v) => match v.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s),
            _ => {
                diags.push(Diagnostic::at(v, format!("`{key}` of {what} must be a non-empty text")));
                None
            }
        },
        None => {
            diags.push(Diagnostic::at(node, format!("{what} needs `{key}`")));
            None
        }
    }
}

/// The entries of a mapping in the order written: (key, value node).
fn entries<'a>(node: &'a Node, what: &str, diags: &mut Vec<Diagnostic>) -> Vec<(&'a str, &'a Node, &'a Node)> {
    match &node.value {
        Value::Map(es) => es.iter().map(|(k, v)| (k.as_str().unwrap_or_default(), k, v)).collect(),
        Value::Null => Vec::new(),
        _ => {
            diags.push(Diagnostic::at(node, format!("`{what}` must be a mapping of name: value")));
            Vec::new()
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl StreamConfig {
    /// Reads and validates a stream file, reporting every problem with its file and line.
    pub fn load(file: &Path) -> Result<StreamConfig, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| vec![Diagnostic::new(1, 1, format!("cannot read stream file: {e}")).in_file(file)])?;
        Self::parse(file, &text).map_err(|ds| ds.into_iter().map(|d| d.in_file(file)).collect())
    }

    pub fn parse(file: &Path, text: &str) -> Result<StreamConfig, Vec<Diagnostic>> {
        let root = yaml::parse(text).map_err(|d| vec![d])?;
        let mut diags = Vec::new();
        if root.as_map().is_none() {
            return Err(vec![Diagnostic::at(&root, "a stream file is a mapping with `name`, `source` and `rules`")]);
        }
        check_keys(&root, STREAM_KEYS, "the stream", &mut diags);
        match root.get("version").and_then(|v| v.as_str()) {
            Some("1") | None => {}
            Some(v) => diags.push(Diagnostic::at(
                root.get("version").unwrap_or(&root),
                format!("unsupported version `{v}`: this weir reads version 1"),
            )),
        }
        let name = str_at(&root, "name", "the stream", &mut diags).unwrap_or_default().to_string();
        if !name.is_empty() && !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            diags.push(Diagnostic::at(
                root.get("name").unwrap_or(&root),
                format!("stream name `{name}` may hold only letters, digits, `_` and `-`"),
            ));
        }
        let description = root.get("description").and_then(|d| d.as_str()).map(str::to_string);

        let source = match root.get("source") {
            Some(s) => parse_source(s, &mut diags),
            None => {
                diags.push(Diagnostic::at(&root, "the stream needs a `source`"));
                None
            }
        };

        let mut schema = Vec::new();
        match root.get("schema") {
            Some(s) => {
                for (field, key, v) in entries(s, "schema", &mut diags) {
                    let t = v.as_str().unwrap_or_default().to_ascii_lowercase();
                    if !FIELD_TYPES.contains(&t.as_str()) {
                        diags.push(
                            Diagnostic::at(v, format!("field `{field}`: unknown type `{t}`"))
                                .with_hint(Some(suggest(&t, FIELD_TYPES))),
                        );
                    }
                    if !is_identifier(field) {
                        diags.push(Diagnostic::at(key, format!("field name `{field}` must be an identifier")));
                    }
                    schema.push((field.to_string(), t));
                }
            }
            None => diags.push(Diagnostic::at(&root, "the stream needs a `schema`: the event's fields and types")),
        }
        let fields: HashSet<&str> = schema.iter().map(|(f, _)| f.as_str()).collect();
        let field_check = |node: &Node, field: &str, what: &str, diags: &mut Vec<Diagnostic>| {
            if !fields.contains(field) {
                diags.push(
                    Diagnostic::at(node, format!("{what} `{field}` is not a field of the schema"))
                        .with_hint(did_you_mean(field, fields.iter().copied())),
                );
            }
        };

        let event_time = match root.get("event_time") {
            Some(n) => {
                check_keys(
                    n,
                    &["field", "max_out_of_orderness", "allowed_lateness", "max_future_skew"],
                    "event_time",
                    &mut diags,
                );
                let field = str_at(n, "field", "event_time", &mut diags).unwrap_or_default().to_string();
                if !field.is_empty() {
                    field_check(n.get("field").unwrap_or(n), &field, "event_time field", &mut diags);
                    if let Some((_, t)) = schema.iter().find(|(f, _)| f == &field) {
                        if !["timestamp", "long", "date"].contains(&t.as_str()) {
                            diags.push(Diagnostic::at(
                                n.get("field").unwrap_or(n),
                                format!("the event time field `{field}` is a {t}; declare it `timestamp` (RFC 3339 text or epoch milliseconds) or `long` (epoch milliseconds)"),
                            ));
                        }
                    }
                }
                let ooo = n.get("max_out_of_orderness").and_then(|v| duration_at(v, &mut diags)).unwrap_or(0);
                let late = n.get("allowed_lateness").and_then(|v| duration_at(v, &mut diags)).unwrap_or(0);
                let skew = n
                    .get("max_future_skew")
                    .and_then(|v| duration_at(v, &mut diags))
                    .unwrap_or(DEFAULT_MAX_FUTURE_SKEW_MS);
                EventTime { field, max_out_of_orderness_ms: ooo, allowed_lateness_ms: late, max_future_skew_ms: skew }
            }
            None => {
                diags.push(Diagnostic::at(
                    &root,
                    "the stream needs `event_time: {field: ...}`: windows and lateness are in event time",
                ));
                EventTime {
                    field: String::new(),
                    max_out_of_orderness_ms: 0,
                    allowed_lateness_ms: 0,
                    max_future_skew_ms: DEFAULT_MAX_FUTURE_SKEW_MS,
                }
            }
        };

        let mut names: HashSet<String> = schema.iter().map(|(f, _)| f.clone()).collect();
        let mut lookups = Vec::new();
        if let Some(n) = root.get("lookups") {
            for (lname, key, body) in entries(n, "lookups", &mut diags) {
                if let Some(l) = parse_lookup(lname, key, body, &mut diags) {
                    field_check(body.get("on").or(body.get("key")).unwrap_or(body), &l.on, "lookup field", &mut diags);
                    if !names.insert(l.name.clone()) {
                        diags.push(Diagnostic::at(key, format!("`{lname}` is already the name of a field")));
                    }
                    lookups.push(l);
                }
            }
        }
        let mut windows = Vec::new();
        if let Some(n) = root.get("windows") {
            for (wname, key, body) in entries(n, "windows", &mut diags) {
                if let Some(w) = parse_window(wname, key, body, &mut diags) {
                    field_check(body.get("key").unwrap_or(body), &w.key, "window key", &mut diags);
                    if !names.insert(w.name.clone()) {
                        diags.push(Diagnostic::at(key, format!("`{wname}` is already the name of a field or lookup")));
                    }
                    windows.push(w);
                }
            }
        }
        let mut features = Vec::new();
        if let Some(n) = root.get("features") {
            for (fname, key, v) in entries(n, "features", &mut diags) {
                let sql = v.as_str().unwrap_or_default().to_string();
                if sql.trim().is_empty() {
                    diags.push(Diagnostic::at(v, format!("feature `{fname}` needs a SQL expression")));
                }
                if !is_identifier(fname) {
                    diags.push(Diagnostic::at(key, format!("feature name `{fname}` must be an identifier")));
                }
                if !names.insert(fname.to_string()) {
                    diags.push(Diagnostic::at(
                        key,
                        format!("feature `{fname}` has the name of a field, window or another feature"),
                    ));
                }
                features.push(Named { name: fname.to_string(), sql, line: v.line });
            }
        }
        let score = root.get("score").and_then(|n| parse_score(n, &mut diags));

        let mut rules = Vec::new();
        match root.get("rules").map(|r| (r, r.as_seq())) {
            Some((_, Some(items))) => {
                let mut seen = HashSet::new();
                for item in items {
                    if let Some(rule) = parse_rule(item, &mut diags) {
                        if !seen.insert(rule.name.clone()) {
                            diags.push(Diagnostic::at(item, format!("two rules are named `{}`", rule.name)));
                        }
                        rules.push(rule);
                    }
                }
            }
            Some((r, None)) => diags.push(Diagnostic::at(r, "`rules` is a list of {name, when, decision, priority}")),
            None => diags.push(Diagnostic::at(&root, "the stream needs `rules`")),
        }

        let mut outputs = Outputs::default();
        if let Some(n) = root.get("outputs") {
            check_keys(n, OUTPUT_KINDS, "outputs", &mut diags);
            let read = |kind: &str, diags: &mut Vec<Diagnostic>| -> Vec<SinkConfig> {
                match n.get(kind) {
                    None => Vec::new(),
                    Some(v) => match &v.value {
                        Value::Seq(items) => items.iter().filter_map(|i| parse_sink(i, diags)).collect(),
                        Value::Map(_) => parse_sink(v, diags).into_iter().collect(),
                        _ => {
                            diags.push(Diagnostic::at(v, format!("`outputs.{kind}` is a sink or a list of sinks")));
                            Vec::new()
                        }
                    },
                }
            };
            outputs.decisions = read("decisions", &mut diags);
            outputs.alerts = read("alerts", &mut diags);
            outputs.late = read("late", &mut diags);
            outputs.invalid = read("invalid", &mut diags);
        }

        let delivery = match root.get("delivery") {
            None => Delivery::AtLeastOnce,
            Some(v) => match v.as_str() {
                Some("at_least_once") => Delivery::AtLeastOnce,
                Some("exactly_once") => Delivery::ExactlyOnce,
                other => {
                    diags.push(
                        Diagnostic::at(v, format!("unknown delivery `{}`", other.unwrap_or("?")))
                            .with_hint(Some("at_least_once or exactly_once".into())),
                    );
                    Delivery::AtLeastOnce
                }
            },
        };
        if delivery == Delivery::ExactlyOnce {
            for (kind, sink) in outputs.all() {
                if matches!(sink, SinkConfig::Webhook(_) | SinkConfig::Ndjson { .. } | SinkConfig::Stdout) {
                    diags.push(Diagnostic::new(
                        root.get("delivery").map(|d| d.line).unwrap_or(1),
                        1,
                        format!(
                            "`delivery: exactly_once` cannot hold for outputs.{}: {} has no transaction; use kafka, delta or postgres there, or at_least_once",
                            kind.as_str(),
                            sink.describe()
                        ),
                    ));
                }
            }
        }

        let mut batch = BatchConfig { max_events: 10_000, max_wait: Duration::from_millis(20) };
        if let Some(n) = root.get("batch") {
            check_keys(n, &["max_events", "max_wait"], "batch", &mut diags);
            if let Some(v) = n.get("max_events") {
                match v.as_str().and_then(|s| s.parse::<usize>().ok()) {
                    Some(m) if m > 0 => batch.max_events = m,
                    _ => diags.push(Diagnostic::at(v, "`max_events` must be a positive number")),
                }
            }
            if let Some(ms) = n.get("max_wait").and_then(|v| duration_at(v, &mut diags)) {
                batch.max_wait = Duration::from_millis(ms.max(1) as u64);
            }
        }
        let mut checkpoint_interval = Duration::from_secs(10);
        if let Some(n) = root.get("checkpoint") {
            check_keys(n, &["interval"], "checkpoint", &mut diags);
            if let Some(ms) = n.get("interval").and_then(|v| duration_at(v, &mut diags)) {
                checkpoint_interval = Duration::from_millis(ms.max(1) as u64);
            }
        }
        let feedback = root.get("feedback").and_then(|n| parse_feedback(n, &mut diags));
        if let Some(f) = &feedback {
            field_check(root.get("feedback").unwrap_or(&root), &f.id, "feedback id", &mut diags);
        }

        match source {
            Some(source) if diags.is_empty() => Ok(StreamConfig {
                file: file.to_path_buf(),
                name,
                description,
                source,
                schema,
                event_time,
                lookups,
                windows,
                features,
                score,
                rules,
                outputs,
                delivery,
                batch,
                checkpoint_interval,
                feedback,
            }),
            _ => Err(diags),
        }
    }

    /// A path written in the stream file, relative to the file's folder.
    pub fn relative(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.file.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// A fingerprint of what window state depends on: a checkpoint written under other windows is not reused.
    pub fn state_fingerprint(&self) -> String {
        let mut parts = vec![format!("{}:{}", self.event_time.field, self.event_time.allowed_lateness_ms)];
        for w in &self.windows {
            parts.push(format!("{}|{}|{:?}|{}", w.name, w.key, w.kind, w.size_ms));
            for a in &w.aggregates {
                parts.push(format!("{}={:?}({})", a.name, a.func, a.arg.as_deref().unwrap_or("*")));
            }
        }
        parts.join(";")
    }
}

fn parse_source(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<SourceConfig> {
    let kind = node.get("type").and_then(|t| t.as_str()).unwrap_or_default();
    match kind {
        "kafka" => match from_node::<KafkaSourceConfig>(node, &["type"]) {
            Ok(k) => {
                if !["earliest", "latest"].contains(&k.start.as_str()) {
                    diags.push(Diagnostic::at(node.get("start").unwrap_or(node), "`start` is `earliest` or `latest`"));
                }
                match k.format.as_str() {
                    "json" => {}
                    "avro" => {
                        if k.avro_schema.is_none() {
                            diags.push(Diagnostic::at(node, "`format: avro` needs `avro_schema: FILE.avsc`"));
                        }
                        match k.avro_framing.as_deref() {
                            Some("confluent") if k.avro_schema_id.is_none() => diags.push(Diagnostic::at(
                                node,
                                "`avro_framing: confluent` needs `avro_schema_id` (the schema's registry id)",
                            )),
                            Some("confluent") | Some("single_object") => {}
                            _ => diags.push(Diagnostic::at(
                                node.get("avro_framing").unwrap_or(node),
                                "`avro_framing` is `confluent` or `single_object`",
                            )),
                        }
                    }
                    other => diags.push(Diagnostic::at(
                        node.get("format").unwrap_or(node),
                        format!("unknown format `{other}`: json or avro"),
                    )),
                }
                if k.topics.is_empty() {
                    diags.push(Diagnostic::at(node, "`topics` needs at least one topic"));
                }
                Some(SourceConfig::Kafka(k))
            }
            Err(ds) => {
                diags.extend(ds);
                None
            }
        },
        "ndjson" => {
            check_keys(node, &["type", "path"], "an ndjson source", diags);
            let path = str_at(node, "path", "an ndjson source", diags)?;
            Some(SourceConfig::Ndjson { path: path.to_string(), line: node.line })
        }
        "generator" => match from_node::<GeneratorConfig>(node, &["type"]) {
            Ok(g) => {
                if !(0.0..=1.0).contains(&g.fraud_rate) || !(0.0..=1.0).contains(&g.late_rate) || g.cards == 0 {
                    diags.push(Diagnostic::at(node, "`fraud_rate` and `late_rate` are shares (0 to 1); `cards` > 0"));
                }
                Some(SourceConfig::Generator(g))
            }
            Err(ds) => {
                diags.extend(ds);
                None
            }
        },
        other => {
            diags.push(
                Diagnostic::at(node.get("type").unwrap_or(node), format!("unknown source type `{other}`"))
                    .with_hint(Some("kafka, ndjson or generator".into())),
            );
            None
        }
    }
}

fn parse_lookup(name: &str, key_node: &Node, body: &Node, diags: &mut Vec<Diagnostic>) -> Option<LookupConfig> {
    check_keys(body, &["table", "postgres", "file", "key", "on", "refresh"], "a lookup", diags);
    if !is_identifier(name) {
        diags.push(Diagnostic::at(key_node, format!("lookup name `{name}` must be an identifier")));
    }
    let key = str_at(body, "key", "a lookup", diags)?.to_string();
    let on = body.get("on").and_then(|o| o.as_str()).map(str::to_string).unwrap_or_else(|| key.clone());
    let refresh = body.get("refresh").and_then(|v| duration_at(v, diags)).map(|ms| Duration::from_millis(ms as u64));
    let from = match (body.get("table"), body.get("postgres"), body.get("file")) {
        (Some(t), None, None) => LookupFrom::Lake(t.as_str().unwrap_or_default().to_string()),
        (None, Some(p), None) => {
            check_keys(p, &["url", "connection", "query"], "a postgres lookup", diags);
            let query = str_at(p, "query", "a postgres lookup", diags)?.to_string();
            let url = p.get("url").and_then(|v| v.as_str()).map(str::to_string);
            let connection = p.get("connection").and_then(|v| v.as_str()).map(str::to_string);
            if url.is_some() == connection.is_some() {
                diags.push(Diagnostic::at(p, "give either `url` or `connection` (a weir.yaml connection)"));
            }
            LookupFrom::Postgres { url, connection, query }
        }
        (None, None, Some(f)) => LookupFrom::File(f.as_str().unwrap_or_default().to_string()),
        _ => {
            diags.push(Diagnostic::at(
                body,
                format!("lookup `{name}` needs one of `table` (a lake table), `postgres: {{query}}` or `file`"),
            ));
            return None;
        }
    };
    Some(LookupConfig { name: name.to_string(), on, key, from, refresh, line: key_node.line })
}

fn parse_window(name: &str, key_node: &Node, body: &Node, diags: &mut Vec<Diagnostic>) -> Option<WindowConfig> {
    check_keys(body, &["key", "size", "type", "aggregates"], "a window", diags);
    if !is_identifier(name) {
        diags.push(Diagnostic::at(key_node, format!("window name `{name}` must be an identifier")));
    }
    let key = str_at(body, "key", "a window", diags)?.to_string();
    let size_ms = match body.get("size") {
        // A bad size is reported; go on to report the rest of the window too.
        Some(v) => duration_at(v, diags).unwrap_or(1),
        None => {
            diags.push(Diagnostic::at(body, "a window needs `size` (such as `10m`)"));
            1
        }
    };
    if size_ms <= 0 {
        diags.push(Diagnostic::at(body.get("size").unwrap_or(body), "a window's size must be longer than zero"));
    }
    let kind = match body.get("type").and_then(|t| t.as_str()) {
        None | Some("sliding") => WindowKind::Sliding,
        Some("tumbling") => WindowKind::Tumbling,
        Some(other) => {
            diags.push(Diagnostic::at(
                body.get("type").unwrap_or(body),
                format!("unknown window type `{other}`: sliding or tumbling"),
            ));
            WindowKind::Sliding
        }
    };
    let mut aggregates = Vec::new();
    match body.get("aggregates") {
        Some(a) => {
            for (aname, k, v) in entries(a, "aggregates", diags) {
                if !is_identifier(aname) {
                    diags.push(Diagnostic::at(k, format!("aggregate name `{aname}` must be an identifier")));
                }
                match parse_aggregate(v.as_str().unwrap_or_default()) {
                    Ok((func, arg)) => aggregates.push(Aggregate { name: aname.to_string(), func, arg, line: v.line }),
                    Err(e) => diags.push(Diagnostic::at(v, e)),
                }
            }
        }
        None => diags.push(Diagnostic::at(body, "a window needs `aggregates`, such as `{count: \"count(*)\"}`")),
    }
    Some(WindowConfig { name: name.to_string(), key, kind, size_ms, aggregates, line: key_node.line })
}

/// `count(*)`, `count(x)`, `sum(x)`, `avg(x)`, `max(x)`, `min(x)`, `count(distinct x)`.
pub fn parse_aggregate(text: &str) -> Result<(AggFunc, Option<String>), String> {
    let t = text.trim();
    let bad = || {
        format!("`{t}` is not an aggregate: count(*), count(x), sum(x), avg(x), max(x), min(x) or count(distinct x)")
    };
    let open = t.find('(').ok_or_else(bad)?;
    if !t.ends_with(')') {
        return Err(bad());
    }
    let func = t[..open].trim().to_ascii_lowercase();
    let arg = t[open + 1..t.len() - 1].trim();
    if arg.is_empty() {
        return Err(bad());
    }
    let lower = arg.to_ascii_lowercase();
    let (func, arg) = match func.as_str() {
        "count" if arg == "*" => (AggFunc::Count, None),
        "count" if lower.starts_with("distinct ") => (AggFunc::CountDistinct, Some(arg[9..].trim().to_string())),
        "count" => (AggFunc::Count, Some(arg.to_string())),
        "sum" => (AggFunc::Sum, Some(arg.to_string())),
        "avg" => (AggFunc::Avg, Some(arg.to_string())),
        "max" => (AggFunc::Max, Some(arg.to_string())),
        "min" => (AggFunc::Min, Some(arg.to_string())),
        _ => return Err(bad()),
    };
    Ok((func, arg))
}

fn parse_score(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<ScoreConfig> {
    check_keys(node, &["expression", "http"], "score", diags);
    match (node.get("expression"), node.get("http")) {
        (Some(e), None) => {
            Some(ScoreConfig::Expression(Named { name: "score".into(), sql: e.as_str()?.to_string(), line: e.line }))
        }
        (None, Some(h)) => match from_node::<HttpScore>(h, &[]) {
            Ok(http) => {
                if let Err(e) = parse_millis(&http.timeout) {
                    diags.push(Diagnostic::at(h.get("timeout").unwrap_or(h), e));
                }
                Some(ScoreConfig::Http(http))
            }
            Err(ds) => {
                diags.extend(ds);
                None
            }
        },
        _ => {
            diags.push(Diagnostic::at(node, "`score` takes either `expression: SQL` or `http: {url, fields}`"));
            None
        }
    }
}

fn parse_rule(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<Rule> {
    check_keys(node, &["name", "when", "decision", "priority"], "a rule", diags);
    let name = str_at(node, "name", "a rule", diags)?.to_string();
    let when = str_at(node, "when", &format!("rule `{name}`"), diags)?.to_string();
    let decision = str_at(node, "decision", &format!("rule `{name}`"), diags)?.to_string();
    if !DECISIONS.contains(&decision.as_str()) {
        diags.push(
            Diagnostic::at(
                node.get("decision").unwrap_or(node),
                format!("rule `{name}`: unknown decision `{decision}`"),
            )
            .with_hint(Some(suggest(&decision, DECISIONS))),
        );
    }
    let priority = match node.get("priority") {
        None => 0,
        Some(p) => match p.as_str().and_then(|s| s.parse::<i64>().ok()) {
            Some(v) => v,
            None => {
                diags.push(Diagnostic::at(p, "`priority` is a whole number (higher wins)"));
                0
            }
        },
    };
    Some(Rule { name, when, decision, priority, line: node.line })
}

fn parse_sink(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<SinkConfig> {
    let kind = node.get("type").and_then(|t| t.as_str()).unwrap_or_default();
    let table_ok = |t: &str| {
        let parts: Vec<&str> = t.split('.').collect();
        parts.len() <= 2 && parts.iter().all(|p| is_identifier(p))
    };
    match kind {
        "kafka" => match from_node::<KafkaSinkConfig>(node, &["type"]) {
            Ok(k) => Some(SinkConfig::Kafka(k)),
            Err(ds) => {
                diags.extend(ds);
                None
            }
        },
        "delta" => {
            check_keys(node, &["type", "table"], "a delta sink", diags);
            let table = str_at(node, "table", "a delta sink", diags)?.to_string();
            if !table.contains('.') || !table_ok(&table) {
                diags.push(Diagnostic::at(
                    node.get("table").unwrap_or(node),
                    format!("`{table}` is not a lake table `zone.table`"),
                ));
            }
            Some(SinkConfig::Delta { table, line: node.line })
        }
        "postgres" => {
            check_keys(node, &["type", "url", "connection", "table"], "a postgres sink", diags);
            let table = str_at(node, "table", "a postgres sink", diags)?.to_string();
            if !table_ok(&table) {
                diags.push(Diagnostic::at(
                    node.get("table").unwrap_or(node),
                    format!("`{table}` is not `schema.table`"),
                ));
            }
            let url = node.get("url").and_then(|v| v.as_str()).map(str::to_string);
            let connection = node.get("connection").and_then(|v| v.as_str()).map(str::to_string);
            if url.is_some() == connection.is_some() {
                diags.push(Diagnostic::at(node, "give either `url` or `connection` (a weir.yaml connection)"));
            }
            Some(SinkConfig::Postgres { url, connection, table, line: node.line })
        }
        "webhook" => match from_node::<WebhookConfig>(node, &["type"]) {
            Ok(w) => {
                if let Err(e) = parse_millis(&w.timeout) {
                    diags.push(Diagnostic::at(node.get("timeout").unwrap_or(node), e));
                }
                Some(SinkConfig::Webhook(w))
            }
            Err(ds) => {
                diags.extend(ds);
                None
            }
        },
        "ndjson" => {
            check_keys(node, &["type", "path"], "an ndjson sink", diags);
            let path = str_at(node, "path", "an ndjson sink", diags)?;
            Some(SinkConfig::Ndjson { path: path.to_string(), line: node.line })
        }
        "stdout" => {
            check_keys(node, &["type"], "a stdout sink", diags);
            Some(SinkConfig::Stdout)
        }
        other => {
            diags.push(
                Diagnostic::at(node.get("type").unwrap_or(node), format!("unknown sink type `{other}`"))
                    .with_hint(Some("kafka, delta, postgres, webhook, ndjson or stdout".into())),
            );
            None
        }
    }
}

fn parse_feedback(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<FeedbackConfig> {
    check_keys(node, &["topic", "path", "id", "label"], "feedback", diags);
    let labels = match (node.get("topic").and_then(|t| t.as_str()), node.get("path").and_then(|p| p.as_str())) {
        (Some(t), None) => LabelsFrom::Kafka { topic: t.to_string() },
        (None, Some(p)) => LabelsFrom::Ndjson { path: p.to_string() },
        _ => {
            diags.push(Diagnostic::at(node, "`feedback` reads labels from either `topic` (Kafka) or `path` (NDJSON)"));
            return None;
        }
    };
    let id = node.get("id").and_then(|v| v.as_str()).unwrap_or("transaction_id").to_string();
    let label = node.get("label").and_then(|v| v.as_str()).unwrap_or("label").to_string();
    Some(FeedbackConfig { labels, id, label })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/streams/fraud.yaml");

    #[test]
    fn the_example_stream_parses() {
        let s = StreamConfig::parse(Path::new("fraud.yaml"), EXAMPLE).unwrap();
        assert_eq!(s.name, "fraud");
        assert!(!s.rules.is_empty() && !s.windows.is_empty());
    }

    #[test]
    fn the_module_doc_example_parses() {
        let doc: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.strip_prefix("//! ").unwrap_or(l.trim_start_matches("//!")).to_string() + "\n")
            .collect();
        let s = StreamConfig::parse(Path::new("doc.yaml"), &doc).unwrap();
        assert_eq!(s.delivery, Delivery::ExactlyOnce);
        assert_eq!(s.windows[0].aggregates[2].func, AggFunc::CountDistinct);
        assert_eq!(s.windows[0].aggregates[2].arg.as_deref(), Some("country"));
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "version: 1\nname: s\nsourse: {}\nschema: {a: strng, ts: timestamp}\nevent_time: {field: t}\nwindows:\n  w: {key: b, size: 10x, aggregates: {n: \"median(a)\"}}\nrules:\n  - {name: r, when: \"a > 1\", decision: block}\n";
        let errs = StreamConfig::parse(Path::new("s.yaml"), text).unwrap_err();
        let all = errs.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
        for want in [
            "3:1: unknown key `sourse`",
            "did you mean `source`",
            "unknown type `strng`",
            "event_time field `t` is not a field",
            "window key `b` is not a field",
            "`10x`: unknown unit `x`",
            "`median(a)` is not an aggregate",
            "unknown decision `block`",
            "the stream needs a `source`",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
    }

    #[test]
    fn exactly_once_refuses_sinks_without_transactions() {
        let text = "name: s\nsource: {type: ndjson, path: x}\nschema: {ts: timestamp}\nevent_time: {field: ts}\nrules: []\noutputs:\n  alerts: [{type: webhook, url: \"http://x\"}]\ndelivery: exactly_once\n";
        let errs = StreamConfig::parse(Path::new("s.yaml"), text).unwrap_err();
        assert!(errs[0].message.contains("webhook http://x has no transaction"), "{errs:?}");
    }

    #[test]
    fn durations_and_aggregates() {
        assert_eq!(parse_millis("250ms").unwrap(), 250);
        assert_eq!(parse_millis("10m").unwrap(), 600_000);
        assert!(parse_millis("ten").is_err());
        assert_eq!(parse_aggregate("COUNT( * )").unwrap(), (AggFunc::Count, None));
        assert_eq!(parse_aggregate("sum(amount * 2)").unwrap(), (AggFunc::Sum, Some("amount * 2".into())));
        assert_eq!(
            parse_aggregate("count(DISTINCT country)").unwrap(),
            (AggFunc::CountDistinct, Some("country".into()))
        );
        assert!(parse_aggregate("sum()").is_err());
    }
}
