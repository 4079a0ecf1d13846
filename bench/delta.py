"""The Delta Lake benchmark: writing and merging 10 million rows into a Delta table, weir against the Python
deltalake package (write_deltalake and its merge) and Polars (write_delta), on the same machine, in one run.

    python delta.py --weir PATH_TO_WEIR [--rows 10000000]

Input: the orders converted to Parquet by the batch benchmark (bench.orders, made here if missing). Jobs:
append (write all rows to a new Delta table) and merge (upsert the same rows, deduplicated on transaction_id as a
MERGE source must be, with amount + 1, so every target row is matched and updated). After each job the table is read back with the Python deltalake package and
its row count and amount total must be the same for every tool; weir's table is read by deltalake too, so the
check also proves other engines read what weir writes. Prints a markdown table and writes it to bench/results/.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

from benchlib import finish, measure, prepare

HERE = os.path.dirname(os.path.abspath(__file__))


def read_back(py, path):
    code = (
        "import json, sys, pyarrow.compute as pc; from deltalake import DeltaTable; "
        "t = DeltaTable(sys.argv[1]).to_pyarrow_table(columns=['amount']); "
        "print(json.dumps({'rows': t.num_rows, 'amount': round(pc.sum(t['amount']).as_py(), 2)}), flush=True); "
        "import os; os._exit(0)"
    )
    out = subprocess.run([py, "-c", code, path], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    py = os.path.join(HERE, ".venv", "bin", "python")
    project, _ = prepare(weir, args.data, args.rows)
    parquet = os.path.join(project, "lake", "bench", "orders")
    if not os.path.isdir(parquet):
        subprocess.run([weir, "--project", project, "run", "convert", "--date", "2026-03-25"], check=True)

    results = {}
    for job in ["append", "merge"]:
        for tool in ["weir", "deltalake", "polars"]:
            if tool == "weir":
                path = os.path.join(project, "lake", "bench", "orders_delta")
                if job == "append":
                    shutil.rmtree(path, ignore_errors=True)
                r = measure([weir, "--project", project, "run", f"delta_{job}", "--date", "2026-03-25"], must_succeed=True)
            else:
                path = os.path.join(args.data, "out", f"{tool}-delta")
                if job == "append":
                    shutil.rmtree(path, ignore_errors=True)
                r = measure([py, os.path.join(HERE, "delta_peers.py"), tool, job, parquet, path], must_succeed=True)
            r["answer"] = read_back(py, path)
            results[(job, tool)] = r
            print(f"{job:7} {tool:10} {r['seconds']:7.2f} s {r['peak_mb']:7.0f} MB  {r['answer']}", flush=True)

    lines = [
        f"{args.rows:,} rows of orders (Parquet in, Delta out); {os.cpu_count()} cores; one run each; every table read back with the Python deltalake package.",
        "",
        "| job | tool | time (s) | peak memory (MB) | weir faster by | weir memory share | rows, amount total |",
        "|---|---|---|---|---|---|---|",
    ]
    mismatches = []
    for job in ["append", "merge"]:
        base = results[(job, "weir")]
        for tool in ["weir", "deltalake", "polars"]:
            r = results[(job, tool)]
            speed = mem = ""
            if tool != "weir":
                speed = f"{r['seconds'] / base['seconds']:.2f}x"
                mem = f"{base['peak_mb'] / r['peak_mb']:.2f}"
                if r["answer"]["rows"] != base["answer"]["rows"] or abs(r["answer"]["amount"] - base["answer"]["amount"]) > 0.05:
                    mismatches.append(f"{job}: {tool} {r['answer']} vs weir {base['answer']}")
            lines.append(f"| {job} | {tool} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {speed} | {mem} | {r['answer']['rows']:,}, {r['answer']['amount']:,.2f} |")
    finish("delta", args.rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
