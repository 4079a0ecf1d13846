"""A single-node Apache Kafka broker (KRaft mode) on loopback for the streaming benchmark: the same broker the tests
run on, installed from Maven Central by .ci/install-kafka, in a fresh folder with free ports, stopped by `stop()`.
The broker gets the same JVM settings as in the tests; on 2 cores it shares the machine with the tool measured."""
import os
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "4.1.1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self):
        subprocess.run(["bash", os.path.join(HERE, "..", ".ci", "install-kafka")], check=True)
        home = os.environ.get("WEIR_KAFKA_HOME", os.path.expanduser(f"~/.cache/weir/kafka-{VERSION}"))
        classpath = os.path.join(home, "lib", "*")
        self.folder = tempfile.mkdtemp(prefix="weir-bench-kafka-")
        port, controller = free_port(), free_port()
        props = os.path.join(self.folder, "server.properties")
        with open(os.path.join(HERE, "..", ".ci", "kafka-server.properties")) as f:
            config = f.read().replace("{port}", str(port)).replace("{controller}", str(controller))
        with open(props, "w") as f:
            f.write(config.replace("{data}", os.path.join(self.folder, "data")))
        log4j = os.path.join(self.folder, "log4j2.properties")
        with open(log4j, "w") as f:
            f.write("rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=OUT\nappender.out.type=Console\n"
                    "appender.out.name=OUT\nappender.out.layout.type=PatternLayout\nappender.out.layout.pattern=%p %m%n\n")
        java = ["java", "-Xms512m", "-Xmx1g", f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        subprocess.run(java + ["kafka.tools.StorageTool", "format", "-t", "d2Vpci10ZXN0LWthZmthAA", "-c", props],
                       check=True, stdout=subprocess.DEVNULL)
        self.log = open(os.path.join(self.folder, "broker.log"), "w")
        self.process = subprocess.Popen(java + ["kafka.Kafka", props], stdout=self.log, stderr=subprocess.STDOUT)
        self.bootstrap = f"127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise SystemExit(f"Kafka did not start; see {self.log.name}")
                time.sleep(0.2)

    def cpu_seconds(self):
        """CPU time the broker used so far (from /proc)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        subprocess.run(["rm", "-rf", self.folder])
