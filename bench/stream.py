"""The streaming benchmark: the fraud stream (examples/streams/fraud.yaml) in weir against the handbook's kafka-python
consumer and a confluent-kafka consumer applying the same rules (stream_peers.py), on the same machine in one run.

(a) In-process: weir on its built-in payment generator (Arrow in, no decoding) and on the same payments as an NDJSON
    file, against the same rules in pure Python over pre-decoded events. Events per CPU-second of the process.
(b) End to end from a real Apache Kafka broker (KRaft mode, the tests' broker, started here: kafka_broker.py): N
    payments keyed by card on --partitions partitions; each tool reads them all in its own consumer group, decides,
    and produces its alerts to its own topic. Events/s from the first message to the last decision, and peak memory;
    the broker's own CPU time is reported beside it (it shares the 2 cores).
(c) Latency at a fixed input rate: a producer paces payments at --rate events/s for --rate-seconds into a fresh topic
    per tool while the tool consumes; p50/p99 from a message's producer timestamp to its decision (weir: committed).

Every tool's alerts (transaction id and rule) must equal weir's, or the run fails.
Usage: bench/run-stream.sh [--events 1000000] [--rate 50000] [--rate-seconds 10] [--tools weir,confluent-kafka,kafka-python]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import HERE, finish
from kafka_broker import Broker

EXAMPLE = os.path.join(HERE, "..", "examples", "streams", "fraud.yaml")
PEERS = os.path.join(HERE, "stream_peers.py")


def run(cmd, wait_for=None, env=None):
    """Starts `cmd`; returns (process, stdout lines, stderr lines, ready event set when a stderr line matches)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err, ready = [], [], threading.Event()

    def pump(stream, sink, watch):
        for line in stream:
            sink.append(line)
            if watch and watch in line:
                ready.set()

    threading.Thread(target=pump, args=(p.stdout, out, None), daemon=True).start()
    threading.Thread(target=pump, args=(p.stderr, err, wait_for), daemon=True).start()
    return p, out, err, ready


def reap(p, out, err, what):
    """Waits for `p`; returns (stdout text, cpu seconds, peak MB) from its own rusage."""
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    time.sleep(0.2)  # let the pumps drain
    if p.returncode != 0:
        sys.exit(f"{what} failed ({p.returncode}):\n{''.join(out)[-3000:]}\n{''.join(err)[-3000:]}")
    return "".join(out), usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def stream_file(folder, data, source, outputs, extra=""):
    """examples/streams/fraud.yaml with its source and outputs replaced, in `folder` (its lake beside it)."""
    text = open(EXAMPLE).read()
    start, end = text.index("outputs:"), text.index("checkpoint:")
    text = text[:start] + "outputs:\n" + outputs + "\n" + extra + text[end:]
    text = text.replace("source: {type: ndjson, path: payments.ndjson}", "source: " + source)
    text = text.replace("file: users.csv", f"file: {os.path.join(data, 'users.csv')}")
    text = text.replace("path: labels.ndjson", f"path: {os.path.join(data, 'labels.ndjson')}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "fraud.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def summary(stdout):
    """events, busy seconds, p50, p99 from weir's summary lines."""
    events = int(re.search(r"stream fraud: (\d+) events", stdout).group(1))
    busy = re.search(r"busy ([\d.]+)s", stdout)
    lat = re.search(r"decision latency: p50 (\d+) ms, p99 (\d+) ms", stdout)
    return events, float(busy.group(1)) if busy else None, (int(lat.group(1)), int(lat.group(2))) if lat else (None, None)


def ndjson_alerts(path):
    alerts = set()
    if os.path.exists(path):
        for line in open(path):
            if line.strip():
                v = json.loads(line)
                alerts.add((v["transaction_id"], v["rule"]))
    return alerts


def topic_alerts(python, bootstrap, topic):
    code = (
        "import json,sys\n"
        "from confluent_kafka import Consumer, TopicPartition\n"
        f"c = Consumer({{'bootstrap.servers': '{bootstrap}', 'group.id': 'bench-read', 'enable.auto.commit': False,"
        " 'isolation.level': 'read_committed'})\n"
        f"md = c.list_topics('{topic}', timeout=10).topics['{topic}']\n"
        f"parts = [TopicPartition('{topic}', p, 0) for p in md.partitions]\n"
        "ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}\n"
        "c.assign(parts)\n"
        "out = []\n"
        "import time\n"
        "idle = time.time()\n"
        "while time.time() - idle < 3:\n"
        "    for m in c.consume(1000, 0.5):\n"
        "        if not m.error():\n"
        "            v = json.loads(m.value()); out.append([v['transaction_id'], v['rule']]); idle = time.time()\n"
        "print(json.dumps(out))\n"
    )
    got = json.loads(subprocess.run([python, "-c", code], stdout=subprocess.PIPE, text=True, check=True).stdout)
    return [tuple(a) for a in got]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--python", required=True, help="a python with kafka-python and confluent-kafka")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--cards", type=int, default=5_000)
    ap.add_argument("--rate", type=int, default=50_000)
    ap.add_argument("--rate-seconds", type=int, default=10)
    ap.add_argument("--tools", default="weir,confluent-kafka,kafka-python")
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--parts", default="inprocess,throughput,latency")
    args = ap.parse_args()
    tools = args.tools.split(",")
    parts = args.parts.split(",")
    weir, py, n = os.path.abspath(args.weir), args.python, args.events
    work = tempfile.mkdtemp(prefix="weir-stream-bench-")
    data = os.path.join(HERE, "results", "stream-data", f"events{n}")
    if not os.path.exists(os.path.join(data, "payments.ndjson")):
        subprocess.run([weir, "generate-payments", data, "--events", str(n), "--cards", str(args.cards)], check=True)
    rows, mismatches = [], []
    reference = None

    def check(tool, alerts):
        nonlocal reference
        alerts = set(alerts)
        if reference is None:
            reference = alerts
            return
        if alerts != reference:
            mismatches.append(f"{tool}: {len(alerts)} alerts vs weir's {len(reference)}; "
                              f"only {tool}: {sorted(alerts - reference)[:3]}, only weir: {sorted(reference - alerts)[:3]}")

    env = dict(os.environ, WEIR_LOG="info,rdkafka=warn")
    if "inprocess" in parts:
        gen = f"{{type: generator, events: {n}, cards: {args.cards}, seed: 7, fraud_rate: 0.01, late_rate: 0.0}}"
        for label, source in [("weir (generator, Arrow in)", gen), ("weir (NDJSON file)", f"{{type: ndjson, path: {data}/payments.ndjson}}")]:
            folder = os.path.join(work, "inprocess-" + str(len(rows)))
            path = stream_file(folder, data, source, f"  alerts: [{{type: ndjson, path: {folder}/alerts.ndjson}}]")
            out, cpu, peak = reap(*run([weir, "stream", path], env=env)[:3], label)
            events, busy, _ = summary(out)
            assert events == n, out
            rows.append(("in-process", label, events, busy, events / busy, events / cpu, peak, None, None))
            check(label, ndjson_alerts(os.path.join(folder, "alerts.ndjson")))
        out, cpu, peak = reap(*run([py, PEERS, "inprocess", "--data", data])[:3], "python rules")
        r = json.loads(out)
        rows.append(("in-process", "pure Python rules (pre-decoded)", r["events"], r["seconds"], r["events"] / r["seconds"],
                     r["events"] / r["cpu_seconds"], r["peak_mb"], None, None))
        check("python", [tuple(a) for a in r["alerts"]])

    if "throughput" in parts or "latency" in parts:
        topics = ["payments"] + [f"{k}-{t}" for t in tools for k in ("alerts", "rate", "rate-alerts")]
        broker = Broker()
        bootstrap = broker.bootstrap
        subprocess.run([py, PEERS, "topics", "--bootstrap", bootstrap, "--partitions", str(args.partitions)] + topics, check=True)
        broker_cpu = lambda: broker.cpu_seconds()
        try:
            if "throughput" in parts:
                produced = json.loads(subprocess.run([py, PEERS, "produce", "--data", data, "--bootstrap", bootstrap, "--topic", "payments"],
                                                     stdout=subprocess.PIPE, text=True, check=True).stdout)
                print(f"produced {produced['sent']:,} payments in {produced['seconds']:.1f}s", flush=True)
                for tool in tools:
                    broker_before = broker_cpu()
                    if tool == "weir":
                        folder = os.path.join(work, "e2e-weir")
                        path = stream_file(folder, data, f'{{type: kafka, brokers: "{bootstrap}", topics: [payments], group: bench-weir}}',
                                           "  alerts: [{type: kafka, topic: alerts-weir}]", "batch: {max_events: 20000}\n")
                        out, cpu, peak = reap(*run([weir, "stream", path, "--until-idle", "3s"], env=env)[:3], "weir stream")
                        events, busy, _ = summary(out)
                        rows.append(("end to end", "weir", events, busy, events / busy, events / cpu, peak, None, None))
                    else:
                        out, cpu, peak = reap(*run([py, PEERS, "consume", "--client", tool, "--data", data, "--bootstrap", bootstrap,
                                                    "--topic", "payments", "--group", f"bench-{tool}", "--alerts-topic", f"alerts-{tool}",
                                                    "--expect", str(n)])[:3], tool)
                        r = json.loads(out)
                        events, busy = r["events"], r["seconds"]
                        rows.append(("end to end", tool, events, busy, events / busy, events / cpu, peak, None, None))
                    print(f"{tool}: the broker used {broker_cpu() - broker_before:.1f} CPU-seconds meanwhile", flush=True)
                    if events != n:
                        mismatches.append(f"{tool} decided {events} of {n} events")
                    check(tool + " (topic)", topic_alerts(py, bootstrap, f"alerts-{tool}"))
            if "latency" in parts:
                total = args.rate * args.rate_seconds
                for tool in tools:
                    if tool == "weir":
                        folder = os.path.join(work, "rate-weir")
                        path = stream_file(folder, data, f'{{type: kafka, brokers: "{bootstrap}", topics: [rate-weir], group: rate-weir}}',
                                           "  alerts: [{type: kafka, topic: rate-alerts-weir}]", "batch: {max_events: 20000, max_wait: 5ms}\n")
                        p, out, err, ready = run([weir, "stream", path, "--until-idle", "4s"], wait_for="partition assigned", env=env)
                    else:
                        p, out, err, ready = run([py, PEERS, "consume", "--client", tool, "--data", data, "--bootstrap", bootstrap,
                                                  "--topic", f"rate-{tool}", "--group", f"rate-{tool}", "--alerts-topic",
                                                  f"rate-alerts-{tool}", "--expect", str(total), "--idle", "4", "--latency"],
                                                 wait_for="partitions assigned")
                    if not ready.wait(60):
                        sys.exit(f"{tool} was not assigned its partitions:\n{''.join(err)[-2000:]}")
                    time.sleep(1)
                    sent = json.loads(subprocess.run([py, PEERS, "produce", "--data", data, "--bootstrap", bootstrap, "--topic", f"rate-{tool}",
                                                      "--rate", str(args.rate), "--limit", str(total), "--linger-ms", "1"],
                                                     stdout=subprocess.PIPE, text=True, check=True).stdout)
                    text, cpu, peak = reap(p, out, err, tool)
                    if tool == "weir":
                        events, busy, (p50, p99) = summary(text)
                    else:
                        r = json.loads(text)
                        events, busy, p50, p99 = r["events"], r["seconds"], r["p50_ms"], r["p99_ms"]
                    offered = sent["sent"] / sent["seconds"]
                    rows.append((f"at {offered:,.0f}/s offered", tool, events, busy, events / busy if busy else 0, events / cpu, peak, p50, p99))
        finally:
            broker.stop()
    shutil.rmtree(work, ignore_errors=True)

    head = "| part | tool | events | seconds | events/s | events per CPU-second | peak MB | p50 ms | p99 ms | weir faster by |\n|---|---|---|---|---|---|---|---|---|---|"
    lines = [head]
    weir_rate = {}
    for part, tool, events, secs, rate, per_cpu, peak, p50, p99 in rows:
        key = part if not part.startswith("at ") else "latency"
        if tool.startswith("weir") and key not in weir_rate:
            weir_rate[key] = rate
        # At a fixed input rate every tool keeps up or falls behind: latency, not events/s, is what to compare there.
        ratio = "" if tool.startswith("weir") or key not in weir_rate or not rate or key == "latency" else f"{weir_rate[key] / rate:.1f}x"
        fmt = lambda v: "" if v is None else (f"{v:.0f}" if isinstance(v, (int, float)) else str(v))
        secs = secs or 0.0
        lines.append(f"| {part} | {tool} | {events:,} | {secs:.2f} | {rate:,.0f} | {per_cpu:,.0f} | {peak:.0f} | {fmt(p50)} | {fmt(p99)} | {ratio} |")
    finish("stream", n, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
