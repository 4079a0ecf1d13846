"""weir against pandas, Polars and DuckDB on the same messy data set, same machine, one run.

    python bench.py --weir PATH_TO_WEIR [--rows 10000000] [--tools weir,polars,duckdb,pandas] [--steps convert,clean,revenue]

Steps: (a) convert: CSV to snappy Parquet; (b) clean: the handbook's cleaning steps to Parquet; (c) revenue: cleaning
plus daily revenue by country in USD; (d) distinct: whole-row dedupe to Parquet (not run by default). Every tool's answer is checked against weir's (row counts, unparsed dates,
revenue totals): a fast wrong answer fails the benchmark. Prints a markdown table with wall time, peak memory and the
ratios, and writes it to bench/results/.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

from benchlib import finish, measure, prepare

HERE = os.path.dirname(os.path.abspath(__file__))


def weir_sql(weir, project, query):
    out = subprocess.run([weir, "--project", project, "sql", query, "--format", "json"], stdout=subprocess.PIPE, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--tools", default="weir,polars,duckdb,pandas")
    ap.add_argument("--steps", default="convert,clean,revenue")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    project, landing = prepare(weir, args.data, args.rows)
    csv_bytes = sum(os.path.getsize(os.path.join(landing, f)) for f in os.listdir(landing))
    pattern = os.path.join(landing, "*.csv")
    tools = args.tools.split(",")
    results = {}
    for step in args.steps.split(","):
        for tool in tools:
            out_dir = os.path.join(args.data, "out", f"{tool}-{step}")
            shutil.rmtree(out_dir, ignore_errors=True)
            if tool == "weir":
                r = measure([weir, "--project", project, "run", step, "--date", "2026-03-25"])
            else:
                py = os.path.join(HERE, ".venv", "bin", "python")
                r = measure([py, os.path.join(HERE, "peers.py"), tool, step, pattern, out_dir])
            if not r["ok"]:
                print(f"{tool} {step} FAILED:\n{r['stderr']}", file=sys.stderr)
                results[(step, tool)] = None
                continue
            if tool == "weir":
                if step == "convert":
                    answer = {"rows": weir_sql(weir, project, "SELECT count(*) AS n FROM bench.orders")[0]["n"]}
                elif step == "distinct":
                    answer = {"rows": weir_sql(weir, project, "SELECT count(*) AS n FROM bench.deduped")[0]["n"]}
                elif step == "clean":
                    row = weir_sql(weir, project, "SELECT count(*) AS n, count(*) - count(order_ts) AS u FROM bench.clean")[0]
                    answer = {"rows": row["n"], "unparsed": row["u"]}
                else:
                    row = weir_sql(weir, project, "SELECT count(*) AS g, sum(orders) AS o, round(sum(revenue_usd), 2) AS r FROM bench.daily_revenue")[0]
                    answer = {"groups": row["g"], "orders": row["o"], "revenue": row["r"]}
            else:
                answer = json.loads(r["stdout"].strip().splitlines()[-1])
            r["answer"] = answer
            results[(step, tool)] = r
            print(f"{step:8} {tool:7} {r['seconds']:7.2f} s {r['peak_mb']:8.0f} MB  {answer}", flush=True)

    lines = [
        f"{args.rows:,} rows, {csv_bytes / 1e6:.0f} MB of CSV in 5 daily files; {os.cpu_count()} cores; one run each.",
        "",
        "| step | tool | time (s) | peak memory (MB) | weir faster by | weir memory share | answer |",
        "|---|---|---|---|---|---|---|",
    ]
    mismatches = []
    for step in args.steps.split(","):
        base = results.get((step, "weir"))
        for tool in tools:
            r = results.get((step, tool))
            if r is None:
                lines.append(f"| {step} | {tool} | failed | | | | |")
                continue
            speed = mem = ""
            if base and tool != "weir":
                speed = f"{r['seconds'] / base['seconds']:.2f}x"
                mem = f"{base['peak_mb'] / r['peak_mb']:.2f}"
                for k, v in base["answer"].items():
                    other = r["answer"].get(k)
                    same = abs(float(other) - float(v)) <= 0.01 * max(1.0, abs(float(v))) * 1e-6 + 0.011 if k == "revenue" else other == v
                    if not same:
                        mismatches.append(f"{step}: {tool} says {k}={other}, weir says {v}")
            lines.append(f"| {step} | {tool} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {speed} | {mem} | {r['answer']} |")
    finish("batch", args.rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
