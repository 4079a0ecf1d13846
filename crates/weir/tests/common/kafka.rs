//! A real Apache Kafka broker for the streaming tests, on loopback: Kafka 4 in KRaft mode (one process is both
//! broker and controller), its jars fetched from Maven Central once by `.ci/install-kafka` (the harness runs that
//! script itself when they are missing), its storage formatted in a fresh folder, started on free ports, one per
//! test binary. A watchdog stops it when the test process exits.
//!
//! Tests wait on facts, never on idle time: `wait_until_consumed` polls the group's committed offsets until they
//! reach the end of every partition.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const VERSION: &str = "4.1.1";

pub struct Broker {
    pub bootstrap: String,
    pub log: PathBuf,
}

/// The folder of Kafka's jars, installed by `.ci/install-kafka` when missing.
fn kafka_lib() -> PathBuf {
    let need = "the streaming tests need Apache Kafka";
    super::installed("WEIR_KAFKA_HOME", &format!("kafka-{VERSION}"), Some("lib/.complete"), "install-kafka", need)
        .join("lib")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `args` under a shell that kills the process (and removes `folder`) when this test process exits.
fn watched(args: &[String], log: &Path, folder: &Path) {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "{} >'{}' 2>&1 & b=$!; while [ -d /proc/{} ] && [ -d /proc/$b ]; do sleep 0.5; done; kill $b 2>/dev/null; wait $b; rm -rf '{}'",
        quoted.join(" "),
        log.display(),
        std::process::id(),
        folder.display()
    );
    Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start kafka");
}

/// The single-node broker of this test binary.
pub fn kafka() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(start)
}

fn start() -> Broker {
    let lib = kafka_lib();
    let classpath = format!("{}/*", lib.display());
    let folder = std::env::temp_dir().join(format!("weir-kafka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let (port, controller) = (free_port(), free_port());
    let properties = folder.join("server.properties");
    let template = include_str!("../../../../.ci/kafka-server.properties");
    let config = template
        .replace("{port}", &port.to_string())
        .replace("{controller}", &controller.to_string())
        .replace("{data}", &folder.join("data").display().to_string());
    std::fs::write(&properties, config).unwrap();
    // The broker's own log: warnings and errors only, into the log file next to its output.
    let log4j = folder.join("log4j2.properties");
    std::fs::write(
        &log4j,
        "rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=OUT\nappender.out.type=Console\nappender.out.name=OUT\nappender.out.layout.type=PatternLayout\nappender.out.layout.pattern=[%d] %p %m (%c)%n\n",
    )
    .unwrap();
    let java = |main: &str| -> Vec<String> {
        vec![
            "java".into(),
            "-Xms256m".into(),
            "-Xmx1g".into(),
            format!("-Dlog4j2.configurationFile={}", log4j.display()),
            "-cp".into(),
            classpath.clone(),
            main.into(),
        ]
    };
    let mut format = java("kafka.tools.StorageTool");
    format.extend(["format", "-t", "d2Vpci10ZXN0LWthZmthAA", "-c"].map(String::from));
    format.push(properties.display().to_string());
    let out = Command::new(&format[0]).args(&format[1..]).output().expect("run kafka StorageTool");
    assert!(
        out.status.success(),
        "formatting Kafka's storage failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::env::temp_dir().join(format!("weir-kafka-{}.log", std::process::id()));
    let mut run = java("kafka.Kafka");
    run.push(properties.display().to_string());
    watched(&run, &log, &folder);
    let bootstrap = format!("127.0.0.1:{port}");
    wait_for(&bootstrap, &log);
    Broker { bootstrap, log }
}

fn wait_for(bootstrap: &str, log: &Path) {
    let started = Instant::now();
    loop {
        let c: Result<BaseConsumer, _> = ClientConfig::new().set("bootstrap.servers", bootstrap).create();
        if let Ok(c) = c {
            if c.fetch_metadata(None, Duration::from_secs(2)).is_ok_and(|m| !m.brokers().is_empty()) {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "Kafka did not start within 120 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Broker {
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().expect("admin client");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let result = rt.block_on(admin.create_topics([&topic], &AdminOptions::new())).expect("create topics");
        for r in result {
            if let Err((t, e)) = r {
                assert!(format!("{e:?}").contains("TopicAlreadyExists"), "create topic {t}: {e:?}");
            }
        }
    }

    /// Produces `(key, value)` messages and waits until all are acknowledged.
    pub fn produce(&self, topic: &str, messages: &[(String, String)]) {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .create()
            .expect("producer");
        for (k, v) in messages {
            let mut record = BaseRecord::to(topic).key(k.as_str()).payload(v.as_str());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }
        producer.flush(Duration::from_secs(300)).expect("flush");
    }

    /// Every message of a topic (read_committed: only committed transactions).
    pub fn read(&self, topic: &str) -> Vec<String> {
        weir_stream::sinks::kafka::read_topic(&self.bootstrap, topic, true, Duration::from_secs(60))
            .expect("read topic")
            .into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }

    /// The end offset of each partition of `topic`.
    pub fn ends(&self, topic: &str) -> BTreeMap<i32, i64> {
        let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &self.bootstrap).create().unwrap();
        let metadata = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
        partitions
            .into_iter()
            .map(|p| (p, c.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks").1))
            .collect()
    }

    /// The offsets `group` committed for `topic`'s partitions (a partition it never committed is absent).
    pub fn committed(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in self.ends(topic).keys() {
            tpl.add_partition(topic, *p);
        }
        let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(10)) else { return BTreeMap::new() };
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// Waits until `group` has committed the end of every partition of `topic` (every message consumed and its
    /// outputs committed); after `limit`, says where each partition stands.
    pub fn wait_until_consumed(&self, group: &str, topic: &str, limit: Duration) -> Result<(), String> {
        let ends = self.ends(topic);
        let started = Instant::now();
        loop {
            let committed = self.committed(group, topic);
            if ends.iter().all(|(p, end)| committed.get(p).is_some_and(|c| c >= end)) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "group {group} did not consume {topic} within {limit:?}: committed {committed:?}, ends {ends:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
