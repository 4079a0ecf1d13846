//! Kafka-protocol brokers for the streaming tests, on loopback: the `tansu` broker (installed by `.ci/run` with
//! `cargo install tansu`; `WEIR_TEST_TANSU` or `~/.cargo/bin/tansu`), in-memory, one per test binary; and
//! librdkafka's mock cluster (`weir kafka-mock`), which also commits transactions, for the exactly-once tests.
//! A watchdog stops each when the test process exits.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

pub struct Broker {
    pub bootstrap: String,
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WEIR_TEST_TANSU") {
        return PathBuf::from(p);
    }
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"));
    let bin = cargo_home.join("bin/tansu");
    if !bin.exists() {
        // A fresh machine: install it the way CI does (cargo install, once).
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.ci/install-tansu");
        let status = Command::new("bash").arg(script).status().expect("run .ci/install-tansu");
        assert!(status.success(), "{script} failed: the streaming tests need the tansu broker");
    }
    assert!(bin.exists(), "no tansu broker at {}", bin.display());
    bin
}

/// Runs `program args` under a shell that kills it when this test process exits.
fn watched(program: &str, args: &[String], log: &std::path::Path) -> std::process::Child {
    let quoted: Vec<String> =
        std::iter::once(program.to_string()).chain(args.iter().cloned()).map(|a| format!("'{a}'")).collect();
    let script = format!(
        "{} >'{}' 2>&1 & b=$!; while [ -d /proc/{} ] && [ -d /proc/$b ]; do sleep 0.5; done; kill $b 2>/dev/null",
        quoted.join(" "),
        log.display(),
        std::process::id()
    );
    Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start broker")
}

pub fn tansu() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("weir-tansu-{}.log", std::process::id()));
        watched(
            &tansu_bin().display().to_string(),
            &[
                "broker".into(),
                "--listener-url".into(),
                url.clone(),
                "--advertised-listener-url".into(),
                url,
                "--storage-engine".into(),
                "memory://tansu/".into(),
            ],
            &log,
        );
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for(&bootstrap, &log);
        Broker { bootstrap }
    })
}

/// A fresh mock cluster (`weir kafka-mock`) with `topics` of `partitions` each, for one test.
pub fn mock(topics: &[&str], partitions: i32) -> Broker {
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["kafka-mock", "--topics", &topics.join(","), "--partitions", &partitions.to_string()])
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start weir kafka-mock");
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let bootstrap = line.trim().strip_prefix("bootstrap.servers=").expect("the mock prints its address").to_string();
    // Stop the mock when this test process exits.
    let pid = child.id();
    Command::new("sh")
        .arg("-c")
        .arg(format!("while [ -d /proc/{} ]; do sleep 0.5; done; kill {pid} 2>/dev/null", std::process::id()))
        .spawn()
        .unwrap();
    std::mem::forget(child);
    Broker { bootstrap }
}

fn wait_for(bootstrap: &str, log: &std::path::Path) {
    let started = Instant::now();
    loop {
        let c: Result<rdkafka::consumer::BaseConsumer, _> =
            ClientConfig::new().set("bootstrap.servers", bootstrap).create();
        if let Ok(c) = c {
            if rdkafka::consumer::Consumer::fetch_metadata(&c, None, Duration::from_secs(2)).is_ok() {
                return;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the broker did not start; see {}", log.display());
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
}
