//! Apache Spark on loopback: local Spark Connect servers (Spark's own jars from the `pyspark` package, Delta Lake's
//! from Maven Central, both installed by `.ci/install-spark`, which the harness runs when they are missing) on Java
//! 17. Spark 4.2 runs with Delta Lake's jars and reads weir's tables by path; Spark 4.3, for which Delta Lake has no
//! release yet, runs without them and is handed each table's files (weir.yaml's `delta: files`). One server of each
//! per test binary, started on first use; a watchdog stops it when the test process exits. They read lakes in local
//! folders: object storage would need Hadoop's S3 connector and the AWS SDK bundle (half a gigabyte).

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub struct Spark {
    pub port: u16,
    log: PathBuf,
}

const DELTA: &str = "io.delta:delta-spark_4.2_2.13:4.4.0";

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/weir")
}

/// Spark's folder in the virtualenv the install script put it in (`dir` under ~/.cache/weir, or `env_var`).
fn spark_home(env_var: &str, dir: &str) -> PathBuf {
    // The script checks Spark and Delta's jars itself (a second or two when both are there).
    let need = "the Spark tests need python3.11, Java 17, PyPI and Maven Central";
    super::installed(env_var, dir, None, "install-spark", need).join("lib/python3.11/site-packages/pyspark")
}

/// Apache Spark 4.2 with Delta Lake: it reads weir's Delta tables itself.
pub fn server() -> &'static Spark {
    static SERVER: OnceLock<Spark> = OnceLock::new();
    SERVER.get_or_init(|| {
        let delta = format!(
            "--conf spark.jars.ivy='{ivy}' --packages {DELTA} \
             --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
             --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
            ivy = home().join("ivy").display(),
        );
        start(&spark_home("WEIR_SPARK_VENV", "spark-venv"), &delta)
    })
}

/// Apache Spark 4.3 without Delta Lake's jars: weir hands it the Parquet files of each table's version.
pub fn without_delta() -> &'static Spark {
    static SERVER: OnceLock<Spark> = OnceLock::new();
    SERVER.get_or_init(|| start(&spark_home("WEIR_SPARK43_VENV", "spark43-venv"), ""))
}

fn start(spark_home: &std::path::Path, options: &str) -> Spark {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::env::temp_dir().join(format!("weir-spark-{}-{port}.log", std::process::id()));
    let java_home = std::env::var("JAVA_HOME").unwrap_or_else(|_| "/usr/lib/jvm/java-17-openjdk-amd64".into());
    let command = format!(
        "env JAVA_HOME='{java_home}' SPARK_HOME='{home}' '{home}/bin/spark-submit' \
         --class org.apache.spark.sql.connect.service.SparkConnectServer --name weir-test \
         --master 'local[2]' --driver-memory 2g \
         --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.connect.grpc.binding.port={port} \
         --conf spark.ui.enabled=false {options} --conf spark.sql.shuffle.partitions=4 spark-internal",
        home = spark_home.display(),
    );
    super::start_server(&command, port, &log, "Spark", Duration::from_secs(240));
    Spark { port, log }
}

impl Spark {
    pub fn remote(&self) -> String {
        format!("sc://127.0.0.1:{}", self.port)
    }

    /// What the server has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
