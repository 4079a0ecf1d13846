"""The Python package against the tools a Polars user would pick instead, on a 10M-row Delta table:

- read the table into a Polars DataFrame: `weir.Project.table(...).to_polars()`, `deltalake.DeltaTable(...)
  .to_pyarrow_table()` (then `polars.from_arrow`), `polars.read_delta`;
- write a Polars DataFrame as a Delta table: `weir.Project.write(...)`, `polars.DataFrame.write_delta`,
  `deltalake.write_deltalake`;
- a Python function over every row, the same pandas function: as a weir `python:` step (Parquet file in, lake table
  out, the function on each batch in a worker process) against pandas reading the file, applying it, writing Parquet.

Each run is a fresh process (measure.py: wall time and peak memory of the whole process); the time reported is the
operation's own, printed by the process, so that import times do not count. Every reader must see the same rows and
the same sum; every writer's table is read back and checked.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

PYTHON = sys.executable

SETUP = """
import json, sys, time
import polars as pl
"""

READERS = {
    "weir": """
import weir
start = time.perf_counter()
frame = weir.Project(PROJECT).table("silver.orders").to_polars()
""",
    "deltalake to_pyarrow_table": """
from deltalake import DeltaTable
start = time.perf_counter()
frame = pl.from_arrow(DeltaTable(TABLE).to_pyarrow_table())
""",
    "polars read_delta": """
start = time.perf_counter()
frame = pl.read_delta(TABLE)
""",
}

WRITERS = {
    "weir": """
import weir
frame = pl.read_parquet(SOURCE)
start = time.perf_counter()
weir.Project(PROJECT).write("silver.written", frame, mode="overwrite", format="delta")
""",
    "polars write_delta": """
frame = pl.read_parquet(SOURCE)
start = time.perf_counter()
frame.write_delta(OUT, mode="overwrite")
""",
    "deltalake write_deltalake": """
from deltalake import write_deltalake
frame = pl.read_parquet(SOURCE)
start = time.perf_counter()
write_deltalake(OUT, frame.to_arrow(), mode="overwrite")
""",
}

STEP_FUNCTION = """
def net(frame):
    frame["net"] = (frame["amount"] * 0.8).round(2)
    frame["country"] = frame["country"].str.lower()
    return frame
"""

STEPS = {
    "weir python step": """
import weir
start = time.perf_counter()
result = weir.Project(PROJECT).run("step", date="2026-03-25")
rows = result["net"].rows_written
""",
    "pandas": """
import pandas as pd, sys
sys.path.insert(0, PROJECT)
from functions import net
start = time.perf_counter()
frame = net(pd.read_parquet(SOURCE))
frame.to_parquet(OUT)
rows = len(frame)
""",
}

STEP_PIPELINE = """version: 1
tasks:
  - name: net
    source: {type: parquet, path: SOURCE}
    steps:
      - python: {function: "functions:net", input: pandas}
    sink: {type: lake, table: silver.net, mode: overwrite}
"""

STEP_DONE = """
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": rows}))
"""

READ_DONE = """
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": frame.height, "check": round(frame["amount"].sum(), 2)}))
"""

WRITE_DONE = """
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds}))
"""


def run(script, **names):
    header = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    r = benchlib.measure([PYTHON, "-c", header + SETUP + textwrap.dedent(script)], must_succeed=True)
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return inner, r["peak_mb"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    rows = args.rows
    data = os.path.join(benchlib.HERE, "data", f"python-{rows}")
    project = os.path.join(data, "project")
    table = os.path.join(project, "lake", "silver", "orders")
    source = os.path.join(data, "orders.parquet")
    if not os.path.exists(source):
        os.makedirs(data, exist_ok=True)
        print(f"generating {rows:,} rows ...", flush=True)
        subprocess.run([PYTHON, "-c", textwrap.dedent(f"""
            import numpy as np, polars as pl
            rng = np.random.default_rng(7)
            n = {rows}
            pl.DataFrame({{
                "order_id": np.arange(n, dtype=np.int64),
                "customer_id": rng.integers(0, 1_000_000, n),
                "country": rng.choice(["DE", "US", "FR", "GB", "JP"], n),
                "amount": np.round(rng.uniform(1, 500, n), 2),
                "order_ts": pl.datetime_range(pl.datetime(2026, 3, 1), pl.datetime(2026, 3, 25), eager=True,
                                              interval="1s").sample(n, with_replacement=True, seed=7),
            }}).write_parquet({source!r})
            """)], check=True)
    shutil.rmtree(project, ignore_errors=True)
    os.makedirs(project)
    with open(os.path.join(project, "weir.yaml"), "w") as f:
        f.write("version: 1\nname: bench\nlake:\n  root: lake\n")
    subprocess.run([PYTHON, "-c", f"import polars as pl; pl.read_parquet({source!r}).write_delta({table!r})"], check=True)

    lines = [f"| {rows:,} rows | tool | seconds | peak MB | weir faster by |", "|---|---|---:|---:|---:|"]
    mismatches = []
    results = {}
    for name, script in READERS.items():
        inner, peak = run(script + READ_DONE, PROJECT=project, TABLE=table)
        results[name] = (inner, peak)
        print(f"read  {name:28} {inner['seconds']:7.2f} s {peak:7.0f} MB", flush=True)
    expected = results["polars read_delta"][0]
    for name, (inner, peak) in results.items():
        if (inner["rows"], inner["check"]) != (expected["rows"], expected["check"]):
            mismatches.append(f"read {name}: {inner['rows']} rows, sum {inner['check']} (polars: {expected})")
        ratio = "" if name == "weir" else f"{inner['seconds'] / results['weir'][0]['seconds']:.2f}x"
        lines.append(f"| read into Polars | {name} | {inner['seconds']:.2f} | {peak:.0f} | {ratio} |")
    writes = {}
    for name, script in WRITERS.items():
        out = os.path.join(data, "written", name.replace(" ", "_"))
        shutil.rmtree(out, ignore_errors=True)
        inner, peak = run(script + WRITE_DONE, PROJECT=project, SOURCE=source, OUT=out)
        writes[name] = (inner, peak)
        print(f"write {name:28} {inner['seconds']:7.2f} s {peak:7.0f} MB", flush=True)
        path = os.path.join(project, "lake", "silver", "written") if name == "weir" else out
        check = subprocess.run([PYTHON, "-c", f"import polars as pl; f = pl.read_delta({path!r}); "
                                f"print(f.height, round(f['amount'].sum(), 2))"],
                               capture_output=True, text=True, check=True).stdout.split()
        if (int(check[0]), float(check[1])) != (expected["rows"], expected["check"]):
            mismatches.append(f"write {name}: read back {check} (expected {expected})")
    for name, (inner, peak) in writes.items():
        ratio = "" if name == "weir" else f"{inner['seconds'] / writes['weir'][0]['seconds']:.2f}x"
        lines.append(f"| write a Polars frame as Delta | {name} | {inner['seconds']:.2f} | {peak:.0f} | {ratio} |")
    with open(os.path.join(project, "functions.py"), "w") as f:
        f.write(STEP_FUNCTION)
    os.makedirs(os.path.join(project, "pipelines"), exist_ok=True)
    with open(os.path.join(project, "pipelines", "step.yaml"), "w") as f:
        f.write(STEP_PIPELINE.replace("SOURCE", source))
    steps = {}
    for name, script in STEPS.items():
        out = os.path.join(data, "net.parquet")
        inner, peak = run(script + STEP_DONE, PROJECT=project, SOURCE=source, OUT=out)
        steps[name] = (inner, peak)
        print(f"step  {name:28} {inner['seconds']:7.2f} s {peak:7.0f} MB", flush=True)
        if inner["rows"] != expected["rows"]:
            mismatches.append(f"step {name}: {inner['rows']} rows")
    for name, (inner, peak) in steps.items():
        ratio = "" if name.startswith("weir") else f"{inner['seconds'] / steps['weir python step'][0]['seconds']:.2f}x"
        lines.append(f"| a pandas function over every row | {name} | {inner['seconds']:.2f} | {peak:.0f} | {ratio} |")
    benchlib.finish("python", rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
