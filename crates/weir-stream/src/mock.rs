//! librdkafka's in-memory mock cluster as a loopback Kafka-protocol server (produce, fetch, consumer groups,
//! idempotent and transactional producers), for `weir kafka-mock`: trying streams without a broker, the
//! exactly-once tests (the tansu broker the other tests use cannot commit transactions) and the benchmarks.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use weir_core::{Error, Result};

pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for MockKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKafka").field("bootstrap", &self.cluster.bootstrap_servers()).finish()
    }
}

impl MockKafka {
    pub fn start(brokers: i32, topics: &[String], partitions: i32) -> Result<MockKafka> {
        let cluster =
            MockCluster::new(brokers.max(1)).map_err(|e| Error::external("kafka mock cluster", e.to_string()))?;
        for t in topics {
            cluster
                .create_topic(t, partitions.max(1), 1)
                .map_err(|e| Error::external(format!("kafka mock topic {t}"), e.to_string()))?;
        }
        Ok(MockKafka { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
