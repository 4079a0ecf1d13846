"""Orchestration benchmark: how much a scheduler costs per task, and how fast a finished task hands off to the next.

Three DAGs, the same for every orchestrator:
  wide   N no-op tasks with no dependencies between them
  deep   N no-op tasks in one chain (each waits for the one before): hand-off delay = start(i) - end(i-1)
  sleepy 50 tasks of `sleep 1`, five layers of ten (each layer waits for the whole layer before), 10 at once
weir runs each with `weir trigger --wait` (scheduler in the process, SQLite store); every task body records when it
ran (for weir a shell command calling `date`);
Prefect 3 runs a flow with the same graph (task runner: threads); Airflow runs `airflow dags test` (its in-process
debug path, the cheapest way Airflow runs a DAG) and, as deployed, under `airflow standalone` (scheduler, web server
and triggerer; SequentialExecutor on its default SQLite database; smaller DAGs, as each task is a process). No-op is `true` for weir (a shell task: a real process per task),
a Python function that returns for Prefect and Airflow (a PythonOperator). Airflow's `dags test` runs one task at
a time, so its `sleepy` wall time is 50 s whatever the graph allows; Prefect's wall time includes starting its
temporary API server. Also: the resident
memory of an idle `weir serve`.

Usage: python3 bench/orchestrate.py --weir PATH [--tasks 1000] [--peer-tasks 200] [--prefect VENV_PYTHON] [--airflow VENV_BIN]
(the peers run smaller wide and deep DAGs: at their speed 1,000 tasks take many minutes; overhead is per task)
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def stamp(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def weir_pipeline(kind, n):
    # Each task's body records when it ran (one `date`), as the peers' Python bodies do with time.time().
    noop = 'shell: "echo $WEIR_TASK $(date +%s.%N) >> times.txt"'
    sleepy = 'shell: "s=$(date +%s.%N); sleep 1; echo $WEIR_TASK $s $(date +%s.%N) >> times.txt"'
    lines = ["version: 1", "tasks:"]
    if kind == "wide":
        for i in range(n):
            lines += [f"  - name: t{i}", f"    {noop}"]
    elif kind == "deep":
        for i in range(n):
            lines += [f"  - name: t{i}", f"    {noop}"]
            if i:
                lines.append(f"    depends_on: [t{i - 1}]")
    else:
        for layer in range(5):
            for j in range(10):
                lines += [f"  - name: l{layer}_{j}", f"    {sleepy}"]
                if layer:
                    deps = ", ".join(f"l{layer - 1}_{k}" for k in range(10))
                    lines.append(f"    depends_on: [{deps}]")
    return "\n".join(lines) + "\n"


def run_weir(weir, kind, n):
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "pipelines"))
        with open(os.path.join(d, "weir.yaml"), "w") as f:
            f.write("version: 1\nname: bench\nlake:\n  root: lake\n")
        with open(os.path.join(d, "pipelines", f"{kind}.yaml"), "w") as f:
            f.write(weir_pipeline(kind, n))
        env = dict(os.environ, WEIR_LOG="warn")
        par = "10" if kind == "sleepy" else str(os.cpu_count() or 2)
        t0 = time.time()
        out = subprocess.run([weir, "trigger", kind, "--date", "2026-03-01", "--wait", "--parallelism", par],
                             cwd=d, env=env, capture_output=True, text=True)
        wall = time.time() - t0
        if out.returncode != 0:
            sys.exit(f"weir failed:\n{out.stdout}\n{out.stderr}")
        times = {}
        for line in open(os.path.join(d, "times.txt")):
            parts = line.split()
            times[parts[0]] = (float(parts[1]), float(parts[-1]))
        return wall, times


PREFECT_FLOW = textwrap.dedent('''
    import json, sys, time, subprocess
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner
    kind, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    times = {}
    @task
    def noop(name):
        s = time.time(); times[name] = (s, time.time())
    @task
    def sleepy(name):
        s = time.time(); time.sleep(1); times[name] = (s, time.time())
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=10 if kind == "sleepy" else 2), log_prints=False)
    def bench():
        if kind == "wide":
            futs = [noop.submit(f"t{i}") for i in range(n)]
            [f.result() for f in futs]
        elif kind == "deep":
            prev = None
            for i in range(n):
                prev = noop.submit(f"t{i}", wait_for=[prev] if prev else None)
            prev.result()
        else:
            prev = []
            for layer in range(5):
                prev = [sleepy.submit(f"l{layer}_{j}", wait_for=prev) for j in range(10)]
            [f.result() for f in prev]
    bench()
    json.dump(times, open(out, "w"))
''')


def run_prefect(python, kind, n):
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "flow.py")
        with open(script, "w") as f:
            f.write(PREFECT_FLOW)
        out = os.path.join(d, "times.json")
        env = dict(os.environ, PREFECT_HOME=os.path.join(d, "home"), PREFECT_LOGGING_LEVEL="WARNING",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        t0 = time.time()
        r = subprocess.run([python, script, kind, str(n), out], env=env, capture_output=True, text=True, cwd=d)
        wall = time.time() - t0
        if r.returncode != 0:
            print(f"prefect failed: {r.stderr[-2000:]}", file=sys.stderr)
            return None, None
        return wall, {k: tuple(v) for k, v in json.load(open(out)).items()}


AIRFLOW_DAG = textwrap.dedent('''
    import os, time, pendulum
    from airflow import DAG
    from airflow.operators.python import PythonOperator
    KIND, N, OUT = "{kind}", {n}, os.environ["BENCH_TIMES"]
    def record(name, s):
        with open(OUT, "a") as f:
            f.write(f"{{name}} {{s}} {{time.time()}}\\n")
    def noop(name):
        record(name, time.time())
    def sleepy(name):
        s = time.time(); time.sleep(1); record(name, s)
    with DAG("bench_{kind}", start_date=pendulum.datetime(2026, 3, 1, tz="UTC"), schedule=None, catchup=False) as dag:
        if KIND == "sleepy":
            prev = []
            for layer in range(5):
                cur = [PythonOperator(task_id=f"l{{layer}}_{{j}}", python_callable=sleepy, op_kwargs={{"name": f"l{{layer}}_{{j}}"}}) for j in range(10)]
                for p in prev:
                    p >> cur
                prev = cur
        else:
            prev = None
            for i in range(N):
                t = PythonOperator(task_id=f"t{{i}}", python_callable=noop, op_kwargs={{"name": f"t{{i}}"}})
                if KIND == "deep" and prev is not None:
                    prev >> t
                prev = t
''')


def airflow_home(d, kind, n, **settings):
    """An AIRFLOW_HOME in `d` with the DAG of `kind`: returns the times file its tasks write and the environment."""
    dags = os.path.join(d, "dags")
    os.makedirs(dags)
    with open(os.path.join(dags, f"bench_{kind}.py"), "w") as f:
        f.write(AIRFLOW_DAG.format(kind=kind, n=n))
    times_file = os.path.join(d, "times.txt")
    env = dict(os.environ, AIRFLOW_HOME=d, AIRFLOW__CORE__DAGS_FOLDER=dags, AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR", BENCH_TIMES=times_file, **settings)
    return times_file, env


def read_times(times_file):
    times = {}
    for line in open(times_file):
        name, s, e = line.split()
        times[name] = (float(s), float(e))
    return times


def run_airflow(bin_dir, kind, n):
    with tempfile.TemporaryDirectory() as d:
        times_file, env = airflow_home(d, kind, n)
        subprocess.run([os.path.join(bin_dir, "airflow"), "db", "migrate"], env=env, capture_output=True, check=True)
        t0 = time.time()
        r = subprocess.run([os.path.join(bin_dir, "airflow"), "dags", "test", f"bench_{kind}", "2026-03-01"],
                           env=env, capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode != 0 or not os.path.exists(times_file):
            print(f"airflow failed: {r.stderr[-2000:]}", file=sys.stderr)
            return None, None
        return wall, read_times(times_file)


def run_airflow_standalone(bin_dir, kind, n):
    """The same DAG run by `airflow standalone` (scheduler, triggerer and web server; on its default SQLite database
    Airflow forces the SequentialExecutor, a process per task). The wall time is the DAG run's own start to end as
    the scheduler recorded it, so Airflow's CLI start-up is not counted against it."""
    with tempfile.TemporaryDirectory() as d:
        times_file, env = airflow_home(d, kind, n, AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
                                       AIRFLOW__WEBSERVER__WEB_SERVER_PORT="18793",
                                       PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
        airflow = os.path.join(bin_dir, "airflow")
        log = open(os.path.join(d, "standalone.log"), "w")
        proc = subprocess.Popen([airflow, "standalone"], env=env, cwd=d, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        db = os.path.join(d, "airflow.db")

        def query(sql, *args):
            try:
                con = sqlite3.connect(db, timeout=30)
                try:
                    return con.execute(sql, args).fetchall()
                finally:
                    con.close()
            except sqlite3.Error:
                return []

        try:
            deadline = time.time() + 300
            while not query("SELECT 1 FROM dag WHERE dag_id = ? AND is_paused = 0", f"bench_{kind}"):
                if time.time() > deadline or proc.poll() is not None:
                    print(f"airflow standalone never loaded the DAG: {open(log.name).read()[-2000:]}", file=sys.stderr)
                    return None, None
                time.sleep(1)
            subprocess.run([airflow, "dags", "trigger", f"bench_{kind}"], env=env, capture_output=True, check=True)
            deadline = time.time() + 3600
            while True:
                rows = query("SELECT state, start_date, end_date FROM dag_run WHERE dag_id = ?", f"bench_{kind}")
                if rows and rows[0][0] in ("success", "failed"):
                    break
                if time.time() > deadline or proc.poll() is not None:
                    print(f"airflow standalone did not finish: {open(log.name).read()[-2000:]}", file=sys.stderr)
                    return None, None
                time.sleep(1)
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        state, start, end = rows[0]
        if state != "success" or not os.path.exists(times_file):
            print(f"airflow standalone's run ended {state}", file=sys.stderr)
            return None, None
        wall = stamp(end.replace(" ", "T")) - stamp(start.replace(" ", "T"))
        return wall, read_times(times_file)


def summarize(kind, n, wall, times):
    if wall is None:
        return None
    # Overhead per task: the wall time beyond what the task bodies need on the critical path (nothing for no-op
    # tasks, five seconds for the five sleepy layers), per task, process start included.
    count = len(times)
    row = {"wall": wall, "tasks": count}
    if kind == "deep":
        hand = [times[f"t{i}"][0] - times[f"t{i - 1}"][1] for i in range(1, n) if f"t{i}" in times and f"t{i - 1}" in times]
        row["p50"] = pct(hand, 50) * 1000
        row["p99"] = pct(hand, 99) * 1000
        row["overhead"] = wall / max(count, 1) * 1000
    elif kind == "wide":
        row["overhead"] = wall / max(count, 1) * 1000
    else:
        firsts = [min(times[f"l{l}_{j}"][0] for j in range(10)) for l in range(1, 5)]
        lasts = [max(times[f"l{l}_{j}"][1] for j in range(10)) for l in range(0, 4)]
        hand = [f - l for f, l in zip(firsts, lasts)]
        row["p50"] = pct(hand, 50) * 1000
        row["p99"] = pct(hand, 99) * 1000
        row["overhead"] = (wall - 5.0) / 50 * 1000
    return row


def idle_memory(weir):
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "pipelines"))
        with open(os.path.join(d, "weir.yaml"), "w") as f:
            f.write("version: 1\nname: bench\nlake:\n  root: lake\n")
        for kind in ("wide", "deep"):
            with open(os.path.join(d, "pipelines", f"{kind}.yaml"), "w") as f:
                f.write(weir_pipeline(kind, 1000))
        p = subprocess.Popen([weir, "serve", "--bind", "127.0.0.1:0"], cwd=d, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=dict(os.environ, WEIR_LOG="warn"))
        time.sleep(5)
        rss = 0
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
        p.kill()
        p.wait()
        return rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--prefect", help="python of a venv with prefect 3")
    ap.add_argument("--airflow", help="bin folder of a venv with apache-airflow 2")
    ap.add_argument("--peer-tasks", type=int, default=200, help="the peers' wide/deep DAG size (they are slow)")
    ap.add_argument("--standalone-tasks", type=int, default=40,
                    help="wide/deep DAG size under `airflow standalone` (a process per task: seconds each); 0 skips it")
    a = ap.parse_args()
    a.weir = os.path.abspath(a.weir)
    a.prefect = a.prefect and os.path.abspath(a.prefect)
    a.airflow = a.airflow and os.path.abspath(a.airflow)
    results = []
    for kind in ("wide", "deep", "sleepy"):
        n = a.tasks
        print(f"weir {kind} ...", flush=True)
        results.append(("weir", kind, n, summarize(kind, n, *run_weir(a.weir, kind, n))))
        m = a.peer_tasks
        if a.prefect:
            print(f"prefect {kind} ({m} tasks) ...", flush=True)
            results.append(("prefect", kind, m, summarize(kind, m, *run_prefect(a.prefect, kind, m))))
        if a.airflow:
            print(f"airflow {kind} ({m} tasks) ...", flush=True)
            results.append(("airflow", kind, m, summarize(kind, m, *run_airflow(a.airflow, kind, m))))
        if a.airflow and a.standalone_tasks:
            m = a.standalone_tasks
            print(f"airflow standalone {kind} ({m} tasks) ...", flush=True)
            results.append(("airflow-standalone", kind, m, summarize(kind, m, *run_airflow_standalone(a.airflow, kind, m))))
    lines = ["| DAG | tool | tasks | wall (s) | overhead per task (ms) | hand-off p50 (ms) | hand-off p99 (ms) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for tool, kind, n, r in results:
        if r is None:
            lines.append(f"| {kind} | {tool} | {n} | failed | | | |")
            continue
        f = lambda k: f"{r[k]:.1f}" if k in r else ""
        lines.append(f"| {kind} | {tool} | {r['tasks']} | {r['wall']:.2f} | {f('overhead')} | {f('p50')} | {f('p99')} |")
    weir_over = {k: r["overhead"] for t, k, _, r in results if t == "weir" and r}
    for tool in ("prefect", "airflow", "airflow-standalone"):
        for t, k, _, r in results:
            if t == tool and r and k in weir_over and weir_over[k] > 0:
                lines.append(f"\n{tool} / weir per-task overhead, {k}: {r['overhead'] / weir_over[k]:.1f}x")
    lines.append(f"\nidle `weir serve` with two 1,000-task pipelines: {idle_memory(a.weir):.1f} MB resident")
    table = "\n".join(lines)
    print("\n" + table)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"orchestrate-{time.strftime('%Y%m%d-%H%M%S')}.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
