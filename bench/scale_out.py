"""Scale-out benchmark: what it costs to run the daily sales transforms on a remote engine instead of here.

The same pipeline (`bench/scale_out/pipelines/scale.yaml`: the cleaning steps over a lake table, then the revenue
model) runs with weir.yaml's `engine:` set to local, to Sail (`sail spark server`), to Apache Spark 4.2 with Delta
4.4 (a local Spark Connect server on Java 17), to Apache Spark 4.3 without Delta (`spark43`: weir hands it each
table's Parquet files, weir.yaml's `delta: files`) and to Ballista 55 (a scheduler and two executors of
`weir-test-ballista`; Ballista runs SQL, so the cleaning stays here and only the model goes there). Each engine
is started fresh for its run, on this machine, so that its peak memory is its own. For Ballista, each executor's
log (debug level) gives the rows and bytes of the stage outputs it wrote: how the work split. Answers are compared with the local run's (silver row count, every gold row; the
revenue within a cent, since its floating point sum depends on the order rows are added in).

On one 2-core machine an engine cannot be faster than weir's own process: the numbers are what the remote path
costs (planning, the counts and reject queries, Arrow batches over gRPC), from which the README extrapolates.

Usage: python3 scale_out.py --weir WEIR [--rows 10000000] [--engines local,sail,spark,spark43,ballista]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import benchlib

HOME = os.path.expanduser("~/.cache/weir")
SAIL = os.path.join(HOME, "sail-venv", "bin", "sail")
SPARK_HOME = os.path.join(HOME, "spark-venv", "lib", "python3.11", "site-packages", "pyspark")
SPARK43_HOME = os.path.join(HOME, "spark43-venv", "lib", "python3.11", "site-packages", "pyspark")
DELTA = "io.delta:delta-spark_4.2_2.13:4.4.0"
JAVA_HOME = os.environ.get("JAVA_HOME", "/usr/lib/jvm/java-17-openjdk-amd64")


def project_for(weir, rows):
    """bench/data/scale-out-ROWS: the landed CSV of `rows` rows (benchlib's data set) and scale_out's pipelines."""
    source, landing = benchlib.prepare(weir, os.path.join(benchlib.HERE, "data"), rows)
    project = os.path.join(benchlib.HERE, "data", f"scale-out-{rows}")
    os.makedirs(os.path.join(project, "landing"), exist_ok=True)
    link = os.path.join(project, "landing", "orders")
    if not os.path.exists(link):
        os.symlink(landing, link)
    for sub in ["pipelines", "models"]:
        shutil.copytree(os.path.join(benchlib.HERE, "scale_out", sub), os.path.join(project, sub), dirs_exist_ok=True)
    return project


def settings(project, engine_url, files=False):
    text = "version: 1\nname: scale_out\nlake:\n  root: lake\n"
    if engine_url:
        kind = "ballista" if engine_url.startswith("df://") else "spark"
        delta = ", delta: files" if files else ""
        text += f'engine: {{{kind}: {{url: "{engine_url}"{delta}}}}}\n'
    with open(os.path.join(project, "weir.yaml"), "w") as f:
        f.write(text)


def wait_for(port, proc, what, log, within=300):
    import socket
    start = time.time()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() - start > within:
                sys.exit(f"{what} did not start:\n{open(log).read()[-3000:]}")
            time.sleep(0.5)


def start_ballista(weir):
    """A scheduler and two executors of weir-test-ballista (built beside weir), with pull-staged scheduling as the
    README advises; returns (processes, url, logs)."""
    binary = os.path.join(os.path.dirname(weir), "weir-test-ballista")
    data = os.path.join(benchlib.HERE, "data")
    port = benchlib.free_port()
    env = dict(os.environ, RUST_LOG="warn,ballista_executor=debug")
    logs = [os.path.join(data, f"ballista-{name}.log") for name in ["scheduler", "executor-0", "executor-1"]]
    procs = [subprocess.Popen([binary, "scheduler", "--bind-host", "127.0.0.1", "--external-host", "127.0.0.1",
                               "--bind-port", str(port), "--scheduler-policy", "pull-staged"],
                              stdout=open(logs[0], "w"), stderr=subprocess.STDOUT, env=env)]
    wait_for(port, procs[0], "the Ballista scheduler", logs[0])
    for i in range(2):
        work = os.path.join(data, f"ballista-executor-{i}")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        flight = benchlib.free_port()
        procs.append(subprocess.Popen(
            [binary, "executor", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port), "--bind-host",
             "127.0.0.1", "--external-host", "127.0.0.1", "--bind-port", str(flight), "--bind-grpc-port",
             str(benchlib.free_port()), "--work-dir", work, "--vcores", "2", "--task-scheduling-policy", "pull-staged"],
            stdout=open(logs[i + 1], "w"), stderr=subprocess.STDOUT, env=env))
        wait_for(flight, procs[-1], "a Ballista executor", logs[i + 1])
    return procs, f"df://127.0.0.1:{port}", logs


def work_split(logs):
    """Per executor: tasks run, and the rows and bytes of the stage outputs they wrote (from their debug logs)."""
    import re
    split = []
    for log in logs[1:]:
        text = open(log).read()
        split.append({"tasks": len(re.findall(r"Finished task", text)),
                      "rows": sum(int(n) for n in re.findall(r"num_rows: (\d+)", text)),
                      "bytes": sum(int(n) for n in re.findall(r"num_bytes: (\d+)", text))})
    return split


def start(engine):
    """Starts the engine's server; returns (process, url)."""
    port = benchlib.free_port()
    log = os.path.join(benchlib.HERE, "data", f"{engine}-server.log")
    out = open(log, "w")
    if engine == "sail":
        proc = subprocess.Popen([SAIL, "spark", "server", "--ip", "127.0.0.1", "--port", str(port)], stdout=out, stderr=out)
    else:
        home = SPARK43_HOME if engine == "spark43" else SPARK_HOME
        delta = [] if engine == "spark43" else [
            "--conf", f"spark.jars.ivy={HOME}/ivy", "--packages", DELTA,
            "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
            "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"]
        env = dict(os.environ, JAVA_HOME=JAVA_HOME, SPARK_HOME=home)
        proc = subprocess.Popen(
            [os.path.join(home, "bin", "spark-submit"), "--class",
             "org.apache.spark.sql.connect.service.SparkConnectServer", "--master", "local[2]", "--driver-memory", "6g",
             "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", f"spark.connect.grpc.binding.port={port}",
             "--conf", "spark.ui.enabled=false", *delta, "spark-internal"], stdout=out, stderr=out, env=env)
    wait_for(port, proc, engine, log)
    return proc, f"sc://127.0.0.1:{port}"


def peak_mb(proc):
    """The server's peak resident memory so far (VmHWM), in MB."""
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def answers(weir, project):
    def query(sql):
        out = subprocess.run([weir, "sql", sql, "-f", "csv"], cwd=project, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[1:]
    silver = query("SELECT count(*) FROM silver.orders")
    gold = query("SELECT order_date, country, orders, revenue_usd, orders_without_timestamp FROM gold.revenue_by_country ORDER BY 1, 2")
    return silver, gold


def same(local, other):
    """Differences between two runs' answers (empty when equal; revenue within a cent)."""
    (ls, lg), (os_, og) = local, other
    problems = []
    if ls != os_:
        problems.append(f"silver rows {os_} vs {ls}")
    if len(lg) != len(og):
        problems.append(f"{len(og)} gold rows vs {len(lg)}")
    for a, b in zip(lg, og):
        a, b = a.split(","), b.split(",")
        if a[:3] + a[4:] != b[:3] + b[4:] or abs(float(a[3]) - float(b[3])) > 0.011:
            problems.append(f"gold {b} vs {a}")
    return problems[:5]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--engines", default="local,sail,spark")
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    project = project_for(weir, args.rows)
    settings(project, None)
    lake = os.path.join(project, "lake")
    shutil.rmtree(lake, ignore_errors=True)
    print("landing the raw zone ...", flush=True)
    ingest = benchlib.measure([weir, "--project", project, "run", "scale_ingest", "--date", "2026-03-25"], must_succeed=True)
    print(f"  ingest: {ingest['seconds']:.1f} s, {ingest['peak_mb']:.0f} MB", flush=True)

    results, local, mismatches, split = [], None, [], None
    for engine in args.engines.split(","):
        procs, url, logs = [], None, None
        if engine == "ballista":
            procs, url, logs = start_ballista(weir)
        elif engine != "local":
            proc, url = start(engine)
            procs = [proc]
        try:
            settings(project, url, files=engine == "spark43")
            row = {"engine": engine}
            for task in ["clean", "revenue"]:
                r = benchlib.measure([weir, "--project", project, "run", "scale", "--date", "2026-03-25", "--task", task], must_succeed=True)
                row[task] = r
                where = "here" if engine == "ballista" and task == "clean" else engine
                print(f"  {engine} {task} ({where}): {r['seconds']:.1f} s, weir {r['peak_mb']:.0f} MB", flush=True)
            row["server_mb"] = sum(peak_mb(p) for p in procs)
            if logs:
                split = work_split(logs)
            got = answers(weir, project)
            if local is None:
                local = got
            mismatches += [f"{engine}: {p}" for p in same(local, got)]
            results.append(row)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=60)

    base = {t: results[0][t]["seconds"] for t in ["clean", "revenue"]}
    lines = [f"{args.rows:,} rows of raw orders (Delta, text columns), {int(local[0][0]):,} cleaned rows, "
             f"{len(local[1])} gold rows; engines on this machine (2 cores)", "",
             "| engine | task | time (s) | weir peak (MB) | engine peak (MB) | vs local |", "|---|---|---|---|---|---|"]
    for row in results:
        for task in ["clean", "revenue"]:
            r = row[task]
            lines.append(f"| {row['engine']} | {task} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | "
                         f"{row['server_mb']:.0f} | {r['seconds'] / base[task]:.2f}x |")
    lines += ["", "Per million raw rows (clean) and per million cleaned rows (revenue):"]
    cleaned = int(local[0][0]) / 1e6
    for row in results:
        lines.append(f"- {row['engine']}: clean {row['clean']['seconds'] / (args.rows / 1e6):.3f} s, "
                     f"revenue {row['revenue']['seconds'] / cleaned:.3f} s")
    if split:
        lines += ["", "Ballista (the revenue model; the cleaning ran here): stage outputs written per executor:"]
        for i, e in enumerate(split):
            lines.append(f"- executor {i}: {e['tasks']} tasks, {e['rows']:,} rows, {e['bytes'] / 1e6:.1f} MB")
    benchlib.finish("scale-out", args.rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
