"""The peers of the streaming benchmark: the handbook's kafka-python consumer and a confluent-kafka consumer, each
applying the same fraud rules as examples/streams/fraud.yaml, plus the same rules run in-process in pure Python.

The rules, exactly as weir decides them (crates/weir-stream/src/window.rs):
* per card, sliding windows over event time: the card's earlier on-time events (in partition order) whose time is
  in [t - size, t], plus the event itself; card_10m: count, sum(amount), count(distinct country); card_2m: count,
  max(amount);
* country_mismatch = country <> the user's home country (users.csv); null when the user is unknown;
* rules by priority: big_foreign_amount (amount > 5000 AND country_mismatch) escalate, impossible_travel
  (country_mismatch AND card_10m.countries >= 2) escalate, card_testing (card_2m.payments >= 2) hold; no match:
  approve. Alerts are the decisions that are not approve.
* an event older than its partition's largest event time - 5 s - 1 min is late and enters no window.

Each consumer prints one JSON line: events, the seconds from its first message to its last decision (alerts
flushed), the alerts (transaction id and rule), decision latency quantiles and its peak memory.
"""
import argparse
import bisect
import csv
import json
import os
import resource
import sys
import time
from datetime import datetime

TEN_MIN, TWO_MIN = 600_000, 120_000
LATE_MS = 5_000 + 60_000
# The consumers wait for fetches as weir's does (librdkafka's default is 500 ms, kafka-python's too).
FETCH_WAIT_MS = 50


def parse_ts(text):
    # "2026-03-25T00:00:01.234Z"
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


class Rules:
    """The fraud stream's windows, lookup and rules, keyed state per card, watermark per partition."""

    def __init__(self, users_csv):
        with open(users_csv) as f:
            self.home = {r["user_id"]: r["home_country"] for r in csv.DictReader(f)}
        self.cards = {}  # card -> ([ts...], [(amount, country)...]) sorted by ts
        self.max_ts = {}  # partition -> largest event time

    def decide(self, partition, e):
        """(decision, rule) for one event, or None when it is late."""
        t = parse_ts(e["ts"])
        top = self.max_ts.get(partition)
        if top is not None and t < top - LATE_MS:
            # Late for the windows (weir leaves them null), not for the rule that needs none of them.
            return self.late(e)
        ts, vals = self.cards.setdefault(e["card_id"], ([], []))
        pos = bisect.bisect_right(ts, t)
        ts.insert(pos, t)
        vals.insert(pos, (e["amount"], e["country"]))
        lo10 = bisect.bisect_left(ts, t - TEN_MIN, 0, pos + 1)
        lo2 = bisect.bisect_left(ts, t - TWO_MIN, 0, pos + 1)
        countries = len({c for _, c in vals[lo10:pos + 1]})
        payments_2m = pos + 1 - lo2
        if top is None or t > top:
            self.max_ts[partition] = top = t
        if lo10 > 64:  # evict what no on-time event can reach any more
            gone = bisect.bisect_left(ts, top - LATE_MS - TEN_MIN)
            del ts[:gone]
            del vals[:gone]
        home = self.home.get(e.get("user_id"))
        mismatch = None if home is None or e.get("country") is None else e["country"] != home
        amount = e.get("amount")
        if amount is not None and amount > 5000 and mismatch:
            return "escalate", "big_foreign_amount"
        if mismatch and countries >= 2:
            return "escalate", "impossible_travel"
        if payments_2m >= 2:
            return "hold", "card_testing"
        return "approve", None

    def late(self, e):
        home = self.home.get(e.get("user_id"))
        mismatch = None if home is None or e.get("country") is None else e["country"] != home
        amount = e.get("amount")
        if amount is not None and amount > 5000 and mismatch:
            return "escalate", "big_foreign_amount"
        return "approve", None


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quantiles(latencies):
    if not latencies:
        return None, None
    v = sorted(latencies)
    q = lambda p: v[round((len(v) - 1) * p)]
    return q(0.5), q(0.99)


def inprocess(args):
    """The rules over pre-decoded events, no broker: the in-process figure next to weir's generator source."""
    with open(os.path.join(args.data, "payments.ndjson")) as f:
        events = [json.loads(line) for line in f]
    rules = Rules(os.path.join(args.data, "users.csv"))
    start = time.perf_counter()
    cpu = time.process_time()
    alerts = []
    for e in events:
        d = rules.decide(0, e)
        if d and d[0] != "approve":
            alerts.append([e["transaction_id"], d[1]])
    seconds = time.perf_counter() - start
    print(json.dumps({"events": len(events), "seconds": seconds, "cpu_seconds": time.process_time() - cpu,
                      "alerts": alerts, "peak_mb": peak_mb()}))


def consume(args):
    rules = Rules(os.path.join(args.data, "users.csv"))
    alerts, latencies = [], []
    first = None
    n = 0
    idle_since = time.monotonic()

    def handle(partition, value, ts_ms, produce):
        nonlocal n
        e = json.loads(value)
        d = rules.decide(partition, e)
        n += 1
        if d and d[0] != "approve":
            alerts.append([e["transaction_id"], d[1]])
            produce(json.dumps({"transaction_id": e["transaction_id"], "card_id": e["card_id"], "decision": d[0],
                                "rule": d[1]}).encode())
        if args.latency:
            latencies.append(time.time() * 1000 - ts_ms)

    if args.client == "kafka-python":
        # The handbook's consumer: auto-commit, a JSON deserializer per message.
        from kafka import KafkaConsumer, KafkaProducer
        consumer = KafkaConsumer(args.topic, bootstrap_servers=[args.bootstrap], auto_offset_reset="earliest",
                                 enable_auto_commit=True, group_id=args.group, fetch_max_wait_ms=FETCH_WAIT_MS)
        producer = KafkaProducer(bootstrap_servers=[args.bootstrap])
        produce = lambda b: producer.send(args.alerts_topic, b)
        announced = False
        while n < args.expect:
            batch = consumer.poll(timeout_ms=200)
            if not announced and consumer.assignment():
                print("partitions assigned", file=sys.stderr, flush=True)
                announced = True
                idle_since = time.monotonic()  # idle counts from the assignment, as weir's --until-idle does
            if not batch:
                if time.monotonic() - idle_since > args.idle:
                    break
                continue
            idle_since = time.monotonic()
            for tp, messages in batch.items():
                for m in messages:
                    if first is None:
                        first = time.perf_counter()
                    handle(tp.partition, m.value, m.timestamp, produce)
        producer.flush()
        consumer.close()
    else:
        from confluent_kafka import Consumer, Producer
        consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": True,
                             "fetch.wait.max.ms": FETCH_WAIT_MS})
        def on_assign(c, ps):
            nonlocal idle_since
            idle_since = time.monotonic()  # idle counts from the assignment, as weir's --until-idle does
            print("partitions assigned", file=sys.stderr, flush=True)

        consumer.subscribe([args.topic], on_assign=on_assign)
        producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 5})

        def produce(b):
            while True:
                try:
                    producer.produce(args.alerts_topic, b)
                    return
                except BufferError:
                    producer.poll(0.01)

        while n < args.expect:
            messages = consumer.consume(num_messages=1000, timeout=0.2)
            if not messages:
                if time.monotonic() - idle_since > args.idle:
                    break
                continue
            idle_since = time.monotonic()
            for m in messages:
                if m.error():
                    continue
                if first is None:
                    first = time.perf_counter()
                handle(m.partition(), m.value(), m.timestamp()[1], produce)
            producer.poll(0)
        producer.flush()
        consumer.close()
    seconds = time.perf_counter() - first if first else 0.0
    p50, p99 = quantiles(latencies)
    print(json.dumps({"events": n, "seconds": seconds, "alerts": alerts, "p50_ms": p50, "p99_ms": p99,
                      "cpu_seconds": time.process_time(), "peak_mb": peak_mb()}))


def produce_file(args):
    """Produces payments.ndjson keyed by card (a card's events stay in one partition, in order); with --rate, paced
    at that many events per second."""
    from confluent_kafka import Producer
    # Idempotent: a retried batch (a partition whose leader was still being elected) keeps its order, so every tool
    # reads a card's payments in the file's order.
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": args.linger_ms,
                         "queue.buffering.max.messages": 1_000_000, "enable.idempotence": True})
    sent = 0
    start = time.perf_counter()
    with open(os.path.join(args.data, "payments.ndjson"), "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            card = line[line.index(b'"card_id":"') + 11:]
            card = card[:card.index(b'"')]
            while True:
                try:
                    producer.produce(args.topic, line, key=card)
                    break
                except BufferError:
                    producer.poll(0.005)
            sent += 1
            if args.rate and sent % 500 == 0:
                producer.poll(0)
                ahead = sent / args.rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
            if args.limit and sent >= args.limit:
                break
    producer.flush(120)
    print(json.dumps({"sent": sent, "seconds": time.perf_counter() - start}))


def create_topics(args):
    """Creates topics of `--partitions` partitions (waits until the broker has them)."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(n, num_partitions=args.partitions, replication_factor=1) for n in args.names])
    for name, f in futures.items():
        f.result(60)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    a = sub.add_parser("inprocess")
    a.add_argument("--data", required=True)
    c = sub.add_parser("consume")
    c.add_argument("--client", choices=["kafka-python", "confluent-kafka"], required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--alerts-topic", required=True)
    c.add_argument("--expect", type=int, required=True)
    c.add_argument("--idle", type=float, default=10.0)
    c.add_argument("--latency", action="store_true")
    r = sub.add_parser("produce")
    r.add_argument("--data", required=True)
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--rate", type=float, default=0)
    r.add_argument("--limit", type=int, default=0)
    r.add_argument("--linger-ms", type=int, default=5)
    t = sub.add_parser("topics")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--partitions", type=int, required=True)
    t.add_argument("names", nargs="+")
    args = p.parse_args()
    {"inprocess": inprocess, "consume": consume, "produce": produce_file, "topics": create_topics}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
