"""What the benchmark scripts share: the data set and project, timing a command in a fresh process, and writing the
result table to bench/results/."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    """A TCP port free on loopback now, for a server the benchmark starts."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def prepare(weir, data, rows):
    """The project folder for `rows` rows: generated once (5 daily CSV files), with bench/project's pipelines and
    models copied in. Returns (project, landing)."""
    project = os.path.join(data, f"rows{rows}")
    landing = os.path.join(project, "landing", "orders")
    if not os.path.isdir(landing) or len(os.listdir(landing)) != 5:
        print(f"generating {rows:,} rows into {landing} ...", flush=True)
        subprocess.run([weir, "demo", "--generate-only", "--rows", str(rows), "--days", "5", "--dir", project], check=True)
    for sub in ["weir.yaml", "pipelines", "models"]:
        src, dst = os.path.join(HERE, "project", sub), os.path.join(project, sub)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy(src, dst)
    return project, landing


def measure(cmd, repeat=1, must_succeed=False):
    """Wall time and peak memory of `cmd` (measure.py, a fresh process per run); the fastest of `repeat` runs."""
    best = None
    for _ in range(repeat):
        out = subprocess.run([sys.executable, os.path.join(HERE, "measure.py"), *cmd], stdout=subprocess.PIPE, text=True, check=True)
        r = json.loads(out.stdout)
        if not r["ok"]:
            if must_succeed:
                sys.exit(f"{' '.join(cmd)} failed:\n{r['stderr']}")
            return r
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    return best


def finish(kind, rows, table, mismatches):
    """Prints the table (and any answers that differ), writes it to bench/results/, exits non-zero on a mismatch."""
    print()
    print(table)
    text = table + "\n"
    if mismatches:
        text += "\nANSWERS DIFFER:\n" + "\n".join(mismatches) + "\n"
        print("\nANSWERS DIFFER:\n" + "\n".join(mismatches))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"{kind}-{rows}-{time.strftime('%Y%m%d-%H%M%S')}.md"), "w") as f:
        f.write(text)
    sys.exit(1 if mismatches else 0)
