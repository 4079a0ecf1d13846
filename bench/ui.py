"""Web UI benchmark: server time of each page with 100,000 task instances in the metadata store.

Creates a project with one 100-task pipeline, fills its SQLite store with 1,000 finished runs (100,000 task
instances, each with one attempt and a short log) straight through SQL, starts `weir serve`, and fetches every
page and a few API reads 30 times each over loopback. Reports p50 and max per page (target: under 200 ms) and the
daemon's resident memory. Peer: none (Airflow's UI needs its whole deployment seeded the same way; not measured).

Usage: python3 bench/ui.py --weir PATH [--runs 1000] [--tasks 100]
"""
import argparse
import os
import sqlite3
import subprocess
import tempfile
import time
import urllib.request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=30)
    a = ap.parse_args()
    weir = os.path.abspath(a.weir)
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "pipelines"))
        with open(os.path.join(d, "weir.yaml"), "w") as f:
            f.write("version: 1\nname: uibench\nlake:\n  root: lake\n")
        lines = ["version: 1", "owner: bench", "tags: [bench]", "tasks:"]
        for i in range(a.tasks):
            lines += [f"  - name: t{i}", '    shell: "true"'] + ([f"    depends_on: [t{i - 1}]"] if i % 10 else [])
        with open(os.path.join(d, "pipelines", "big.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run([weir, "status"], cwd=d, check=True, capture_output=True)  # creates and migrates the store
        db = sqlite3.connect(os.path.join(d, ".weir", "weir.db"))
        t0 = time.time()
        with db:
            for r in range(a.runs):
                day = time.strftime("%Y-%m-%d", time.gmtime(1700000000 + r * 86400))
                start, end = f"{day}T00:00:00.000Z", f"{day}T00:05:00.000Z"
                cur = db.execute(
                    "INSERT INTO runs (pipeline, run_id, logical_date, interval_start, interval_end, kind, state, "
                    "created_at, started_at, ended_at) VALUES ('big', ?, ?, ?, ?, 'scheduled', 'success', ?, ?, ?)",
                    (f"r{r}", day, start, f"{day}T23:59:59.999Z", start, start, end))
                run = cur.lastrowid
                db.executemany(
                    "INSERT INTO task_instances (run, task, state, try_number, max_tries, started_at, ended_at, worker) "
                    "VALUES (?, ?, 'success', 1, 1, ?, ?, 'bench')",
                    [(run, f"t{i}", start, end) for i in range(a.tasks)])
                db.executemany(
                    "INSERT INTO attempts (run, task, try_number, state, worker, started_at, ended_at, log) "
                    "VALUES (?, ?, 1, 'success', 'bench', ?, ?, ?)",
                    [(run, f"t{i}", start, end, f"attempt 1 of t{i}\nok\n") for i in range(a.tasks)])
        n = db.execute("SELECT count(*) FROM task_instances").fetchone()[0]
        last = db.execute("SELECT max(id) FROM runs").fetchone()[0]
        db.close()
        print(f"seeded {n} task instances in {time.time() - t0:.1f} s")
        p = subprocess.Popen([weir, "serve", "--bind", "127.0.0.1:0", "--parallelism", "1"], cwd=d,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=dict(os.environ, WEIR_LOG="warn"))
        base = None
        for line in p.stdout:
            if line.startswith("API at "):
                base = line.split()[2].removesuffix("/api")
                break
        pages = ["/", "/pipelines/big", f"/runs/{last}", f"/runs/{last}?task=t50", "/lake", "/quality",
                 "/api/pipelines", "/api/runs?limit=50", f"/api/runs/{last}"]
        rows = ["| page | p50 (ms) | max (ms) | bytes |", "|---|---:|---:|---:|"]
        try:
            for page in pages:
                times, size = [], 0
                for _ in range(a.repeat):
                    t = time.perf_counter()
                    with urllib.request.urlopen(base + page) as resp:
                        size = len(resp.read())
                    times.append((time.perf_counter() - t) * 1000)
                times.sort()
                rows.append(f"| `{page}` | {times[len(times) // 2]:.1f} | {times[-1]:.1f} | {size} |")
            with open(f"/proc/{p.pid}/status") as f:
                rss = next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS:"))
        finally:
            p.kill()
            p.wait()
        table = "\n".join(rows) + f"\n\n{n} task instances in {a.runs} runs; `weir serve` resident: {rss:.1f} MB"
        print(table)
        os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), exist_ok=True)
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                               f"ui-{time.strftime('%Y%m%d-%H%M%S')}.md"), "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
