//! What a running stream reports: events and decisions per second, alerts per rule, late and invalid events,
//! consumer lag per partition and decision latency, in Prometheus' text format (for `/metrics`) and as the summary
//! printed when a stream stops.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Latencies kept for quantiles (the most recent ones).
const LATENCY_WINDOW: usize = 65_536;

#[derive(Debug)]
pub struct StreamMetrics {
    pub stream: String,
    started: Instant,
    pub events: AtomicU64,
    /// Events re-processed after a restart to rebuild window state, whose outputs the sinks already held.
    pub replayed: AtomicU64,
    pub decisions: [AtomicU64; 3],
    pub late: AtomicU64,
    pub invalid: AtomicU64,
    pub batches: AtomicU64,
    pub checkpoints: AtomicU64,
    /// Batches dropped because this process no longer owned their partitions when it committed (see `sinks`).
    pub fenced: AtomicU64,
    /// Window keys that arrived on a partition while another partition held state for them (undercounted windows).
    pub split_keys: AtomicU64,
    /// Per rule: events it matched, and events it decided (the matching rule of highest priority).
    rules: Vec<(String, AtomicU64, AtomicU64)>,
    lag: Mutex<BTreeMap<String, i64>>,
    latencies: Mutex<Latencies>,
    /// From the first batch that held events to the last commit: the time the stream was busy, for a throughput
    /// that leaves out start-up and idle waiting.
    busy: Mutex<Option<(Instant, Instant)>>,
}

/// The figures of a stream at one moment (for the web UI).
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub events: u64,
    pub replayed: u64,
    /// approve, hold, escalate.
    pub decisions: [u64; 3],
    pub late: u64,
    pub invalid: u64,
    pub batches: u64,
    pub checkpoints: u64,
    pub events_per_second: f64,
    /// Per rule: (name, events matched, events decided).
    pub rules: Vec<(String, u64, u64)>,
    pub lag: Vec<(String, i64)>,
    pub latency_ms: Option<(u32, u32)>,
}

#[derive(Debug, Default)]
struct Latencies {
    ring: Vec<u32>,
    next: usize,
}

pub const DECISION_NAMES: [&str; 3] = ["approve", "hold", "escalate"];

impl StreamMetrics {
    pub fn new(stream: &str, rules: &[String]) -> StreamMetrics {
        StreamMetrics {
            stream: stream.to_string(),
            started: Instant::now(),
            events: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            decisions: Default::default(),
            late: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            split_keys: AtomicU64::new(0),
            rules: rules.iter().map(|r| (r.clone(), AtomicU64::new(0), AtomicU64::new(0))).collect(),
            lag: Mutex::new(BTreeMap::new()),
            latencies: Mutex::new(Latencies::default()),
            busy: Mutex::new(None),
        }
    }

    pub fn count_decision(&self, decision: &str, n: u64) {
        if let Some(i) = DECISION_NAMES.iter().position(|d| *d == decision) {
            self.decisions[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn count_rule(&self, index: usize, matched: u64) {
        if let Some(r) = self.rules.get(index) {
            r.1.fetch_add(matched, Ordering::Relaxed);
        }
    }

    pub fn count_decided_by(&self, rule: &str, n: u64) {
        if let Some(r) = self.rules.iter().find(|r| r.0 == rule) {
            r.2.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn set_lag(&self, partitions: Vec<(String, i64)>) {
        let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        lag.clear();
        lag.extend(partitions);
    }

    /// Records decision latencies (ms from the message's production to its decision being committed).
    pub fn record_latencies(&self, values: impl Iterator<Item = i64>) {
        let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        for v in values {
            let v = v.clamp(0, u32::MAX as i64) as u32;
            if l.ring.len() < LATENCY_WINDOW {
                l.ring.push(v);
            } else {
                let i = l.next;
                l.ring[i] = v;
            }
            l.next = (l.next + 1) % LATENCY_WINDOW;
        }
    }

    /// p50 and p99 of the recent decision latencies, in ms.
    pub fn latency_quantiles(&self) -> Option<(u32, u32)> {
        let l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if l.ring.is_empty() {
            return None;
        }
        let mut v = l.ring.clone();
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some((q(0.5), q(0.99)))
    }

    /// Marks a batch that started at `started` and has just been committed.
    pub fn record_busy(&self, started: Instant) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        *busy = Some((busy.map_or(started, |(first, _)| first), now));
    }

    /// Seconds from the first batch with events to the last commit.
    pub fn busy_seconds(&self) -> Option<f64> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).map(|(a, b)| (b - a).as_secs_f64())
    }

    pub fn elapsed_seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |o: &AtomicU64| o.load(Ordering::Relaxed);
        let events = g(&self.events);
        let rate = match self.busy_seconds() {
            Some(b) if b > 0.0 => events as f64 / b,
            _ => events as f64 / self.elapsed_seconds().max(1e-9),
        };
        MetricsSnapshot {
            events,
            replayed: g(&self.replayed),
            decisions: [g(&self.decisions[0]), g(&self.decisions[1]), g(&self.decisions[2])],
            late: g(&self.late),
            invalid: g(&self.invalid),
            batches: g(&self.batches),
            checkpoints: g(&self.checkpoints),
            events_per_second: rate,
            rules: self.rules.iter().map(|(r, m, d)| (r.clone(), g(m), g(d))).collect(),
            lag: self.lag.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(p, l)| (p.clone(), *l)).collect(),
            latency_ms: self.latency_quantiles(),
        }
    }

    /// The Prometheus exposition of this stream alone (see [`prometheus_text`]).
    pub fn prometheus(&self, out: &mut String) {
        out.push_str(&prometheus_text(&[self]));
    }

    /// The summary printed when a stream stops.
    pub fn summary(&self) -> String {
        let g = |o: &AtomicU64| o.load(Ordering::Relaxed);
        let secs = self.elapsed_seconds();
        let events = g(&self.events);
        let mut out = format!(
            "stream {}: {} events in {:.2}s ({:.0} events/s)",
            self.stream,
            events,
            secs,
            events as f64 / secs.max(1e-9)
        );
        if let Some(busy) = self.busy_seconds().filter(|b| *b > 0.0 && events > 0) {
            let _ = write!(out, "; busy {busy:.2}s ({:.0} events/s)", events as f64 / busy);
        }
        let replayed = g(&self.replayed);
        if replayed > 0 {
            let _ = write!(out, ", {replayed} replayed to rebuild state");
        }
        let fenced = g(&self.fenced);
        if fenced > 0 {
            let _ = write!(out, ", {fenced} batches fenced (their partitions had moved) and decided again");
        }
        let _ = write!(
            out,
            "\n  decisions: {} approve, {} hold, {} escalate; {} late, {} invalid",
            g(&self.decisions[0]),
            g(&self.decisions[1]),
            g(&self.decisions[2]),
            g(&self.late),
            g(&self.invalid)
        );
        if let Some((p50, p99)) = self.latency_quantiles() {
            let _ = write!(out, "\n  decision latency: p50 {p50} ms, p99 {p99} ms");
        }
        for (r, m, d) in &self.rules {
            let _ = write!(out, "\n  rule {r}: matched {}, decided {}", g(m), g(d));
        }
        let split = g(&self.split_keys);
        if split > 0 {
            let _ = write!(
                out,
                "\n  warning: {split} window keys arrived on more than one partition; windows are kept per partition, so their aggregates undercount: produce the topic keyed by the window's key"
            );
        }
        let lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        if !lag.is_empty() {
            let parts: Vec<String> = lag.iter().map(|(p, l)| format!("{p} {l}")).collect();
            let _ = write!(out, "\n  consumer lag: {}", parts.join(", "));
        }
        out
    }
}

/// A metric family of the exposition: its name, help, type, and how one stream writes its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Samples,
}

enum Samples {
    /// One sample per stream: this counter, labelled with the stream.
    Counter(fn(&StreamMetrics) -> &AtomicU64),
    /// Written by the function, given the stream's escaped name (more labels, gauges, quantiles).
    Custom(fn(&StreamMetrics, &str, &mut String)),
}

fn counter(m: &AtomicU64) -> u64 {
    m.load(Ordering::Relaxed)
}

const FAMILIES: &[Family] = &[
    Family {
        name: "weir_stream_events_total",
        help: "Events read by the stream.",
        kind: "counter",
        samples: Samples::Counter(|m| &m.events),
    },
    Family {
        name: "weir_stream_replayed_events_total",
        help: "Events re-read after a restart to rebuild window state.",
        kind: "counter",
        samples: Samples::Counter(|m| &m.replayed),
    },
    Family {
        name: "weir_stream_fenced_batches_total",
        help: "Batches dropped because another process owned their partitions by the time they were committed.",
        kind: "counter",
        samples: Samples::Counter(|m| &m.fenced),
    },
    Family {
        name: "weir_stream_split_window_keys_total",
        help: "Window keys that arrived on a partition while another partition held state for them (their windows undercount: key the topic by the window's key).",
        kind: "counter",
        samples: Samples::Counter(|m| &m.split_keys),
    },
    Family {
        name: "weir_stream_decisions_total",
        help: "Decided events by decision.",
        kind: "counter",
        samples: Samples::Custom(|m, s, out| {
            for (i, d) in DECISION_NAMES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "weir_stream_decisions_total{{stream=\"{s}\",decision=\"{d}\"}} {}",
                    counter(&m.decisions[i])
                );
            }
        }),
    },
    Family {
        name: "weir_stream_rule_matches_total",
        help: "Events each rule matched.",
        kind: "counter",
        samples: Samples::Custom(|m, s, out| {
            for (r, matched, _) in &m.rules {
                let _ =
                    writeln!(out, "weir_stream_rule_matches_total{{stream=\"{s}\",rule=\"{r}\"}} {}", counter(matched));
            }
        }),
    },
    Family {
        name: "weir_stream_alerts_total",
        help: "Alerts each rule decided (it had the highest priority among the matches).",
        kind: "counter",
        samples: Samples::Custom(|m, s, out| {
            for (r, _, decided) in &m.rules {
                let _ = writeln!(out, "weir_stream_alerts_total{{stream=\"{s}\",rule=\"{r}\"}} {}", counter(decided));
            }
        }),
    },
    Family {
        name: "weir_stream_late_events_total",
        help: "Events behind the watermark beyond the allowed lateness (sent to the late output).",
        kind: "counter",
        samples: Samples::Counter(|m| &m.late),
    },
    Family {
        name: "weir_stream_invalid_events_total",
        help: "Messages that could not be decoded (sent to the invalid output).",
        kind: "counter",
        samples: Samples::Counter(|m| &m.invalid),
    },
    Family {
        name: "weir_stream_events_per_second",
        help: "Events per second since the stream started.",
        kind: "gauge",
        samples: Samples::Custom(|m, s, out| {
            let rate = counter(&m.events) as f64 / m.elapsed_seconds().max(1e-9);
            let _ = writeln!(out, "weir_stream_events_per_second{{stream=\"{s}\"}} {rate:.1}");
        }),
    },
    Family {
        name: "weir_stream_consumer_lag",
        help: "Messages behind the end of each partition.",
        kind: "gauge",
        samples: Samples::Custom(|m, s, out| {
            for (p, l) in m.lag.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let _ = writeln!(out, "weir_stream_consumer_lag{{stream=\"{s}\",partition=\"{p}\"}} {l}");
            }
        }),
    },
    Family {
        name: "weir_stream_decision_latency_ms",
        help: "Time from a message's production to its committed decision.",
        kind: "summary",
        samples: Samples::Custom(|m, s, out| {
            if let Some((p50, p99)) = m.latency_quantiles() {
                let _ = writeln!(out, "weir_stream_decision_latency_ms{{stream=\"{s}\",quantile=\"0.5\"}} {p50}");
                let _ = writeln!(out, "weir_stream_decision_latency_ms{{stream=\"{s}\",quantile=\"0.99\"}} {p99}");
            }
        }),
    },
    Family {
        name: "weir_stream_checkpoints_total",
        help: "Window state checkpoints written.",
        kind: "counter",
        samples: Samples::Counter(|m| &m.checkpoints),
    },
];

/// Prometheus' text exposition of several streams: each family's `# HELP` and `# TYPE` once, followed by the
/// samples of every stream (strict parsers refuse a family declared twice or samples of one family split up).
pub fn prometheus_text<M: std::ops::Deref<Target = StreamMetrics>>(streams: &[M]) -> String {
    let mut out = String::new();
    for f in FAMILIES {
        let mut samples = String::new();
        for m in streams {
            let stream = escape_label(&m.stream);
            match f.samples {
                Samples::Counter(value) => {
                    let _ = writeln!(samples, "{}{{stream=\"{stream}\"}} {}", f.name, counter(value(m)));
                }
                Samples::Custom(write) => write(m, &stream, &mut samples),
            }
        }
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} {}", f.name, f.help, f.name, f.kind);
        out.push_str(&samples);
    }
    out
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_family() {
        let m = StreamMetrics::new("fraud", &["big".into(), "fast".into()]);
        m.events.fetch_add(10, Ordering::Relaxed);
        m.count_decision("hold", 2);
        m.count_rule(1, 2);
        m.count_decided_by("fast", 2);
        m.set_lag(vec![("payments[0]".into(), 5)]);
        m.record_latencies([3, 1, 2, 100].into_iter());
        let mut text = String::new();
        m.prometheus(&mut text);
        for want in [
            "weir_stream_events_total{stream=\"fraud\"} 10",
            "weir_stream_decisions_total{stream=\"fraud\",decision=\"hold\"} 2",
            "weir_stream_rule_matches_total{stream=\"fraud\",rule=\"fast\"} 2",
            "weir_stream_alerts_total{stream=\"fraud\",rule=\"big\"} 0",
            "weir_stream_consumer_lag{stream=\"fraud\",partition=\"payments[0]\"} 5",
            "weir_stream_decision_latency_ms{stream=\"fraud\",quantile=\"0.99\"} 100",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
        assert_eq!(m.latency_quantiles(), Some((3, 100)));
    }
}
