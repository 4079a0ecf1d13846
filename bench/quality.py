"""The data quality benchmark: what checks cost in weir, and weir's checks against Great Expectations and Soda.

    python quality.py --weir PATH_TO_WEIR [--rows 10000000] [--repeat 2]

1. Cost inside a pipeline: the cleaning pipeline (bench/project/pipelines/clean.yaml) against the same pipeline with
   six checks on its output (clean_checked.yaml). The checks' cost is the difference; the target is under 30% of
   the cleaning run.
2. Checks alone on the cleaned table: weir's check-only task (checks.yaml) against Great Expectations on a pandas
   DataFrame and Soda Core on DuckDB over that DataFrame (quality_peers.py), each reading the same Parquet table.
Every tool's failing-row counts must agree with weir's. Each command runs `--repeat` times; the fastest run counts.
Prints a markdown table and writes it to bench/results/.
"""
import argparse
import json
import os
import subprocess

from benchlib import finish, measure, prepare

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK_KEYS = {
    "not_null(transaction_id, order_ts)": "not_null",
    "unique(transaction_id)": "unique",
    "accepted_values(currency)": "accepted_values",
    "range(amount)": "range",
    "regex(customer_name)": "regex",
    "row_count": "row_count",
}


def weir_counts(weir, project, table, task):
    out = subprocess.run([weir, "--project", project, "quality", table, "--format", "json"], stdout=subprocess.PIPE, text=True, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    rows = [r for r in rows if r["task"] == task]
    latest = max(r["run_id"] for r in rows)
    counts = {}
    for r in rows:
        if r["run_id"] == latest:
            key = CHECK_KEYS[r["check_name"]]
            counts[key] = r["rows_checked"] if key == "row_count" else r["failing_rows"]
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    project, _ = prepare(weir, args.data, args.rows)

    run = lambda p: [weir, "--project", project, "run", p, "--date", "2026-03-25"]
    clean = measure(run("clean"), args.repeat, must_succeed=True)
    print(f"weir clean            {clean['seconds']:6.2f} s {clean['peak_mb']:6.0f} MB", flush=True)
    checked = measure(run("clean_checked"), args.repeat, must_succeed=True)
    print(f"weir clean + checks   {checked['seconds']:6.2f} s {checked['peak_mb']:6.0f} MB", flush=True)
    alone = measure(run("checks"), args.repeat, must_succeed=True)
    print(f"weir checks alone     {alone['seconds']:6.2f} s {alone['peak_mb']:6.0f} MB", flush=True)
    expected = weir_counts(weir, project, "bench.clean_checked", "clean_checked")
    alone_counts = weir_counts(weir, project, "bench.clean", "checks")

    table_dir = os.path.join(project, "lake", "bench", "clean")
    py = os.path.join(HERE, ".venv-quality", "bin", "python")
    peers = {}
    for tool in ["gx", "soda"]:
        r = measure([py, os.path.join(HERE, "quality_peers.py"), tool, table_dir], args.repeat, must_succeed=True)
        r["answer"] = json.loads(r["stdout"].strip().splitlines()[-1])
        peers[tool] = r
        a = r["answer"]
        print(f"{tool:5} load {a['load_seconds']:6.2f} s, checks {a['check_seconds']:6.2f} s, total {r['seconds']:6.2f} s {r['peak_mb']:6.0f} MB", flush=True)

    cost = checked["seconds"] - clean["seconds"]
    share = cost / clean["seconds"]
    rows = expected["row_count"]
    lines = [
        f"{args.rows:,} input rows, {rows:,} rows checked (the cleaned orders); {os.cpu_count()} cores; best of {args.repeat} runs.",
        "",
        "Checks: not_null(transaction_id, order_ts), unique(transaction_id), accepted_values(currency), range(amount),",
        "regex(customer_name), row_count.",
        "",
        "| run | time (s) | peak memory (MB) | notes |",
        "|---|---|---|---|",
        f"| weir clean | {clean['seconds']:.2f} | {clean['peak_mb']:.0f} | |",
        f"| weir clean + checks | {checked['seconds']:.2f} | {checked['peak_mb']:.0f} | checks cost {cost:.2f} s = {share:.0%} of the cleaning run (target < 30%) |",
        f"| weir checks alone (reads the Parquet table) | {alone['seconds']:.2f} | {alone['peak_mb']:.0f} | |",
    ]
    mismatches = [f"weir check-only task says {k}={v}, in-pipeline checks say {expected.get(k)}" for k, v in alone_counts.items() if expected.get(k) != v]
    for tool, label in [("gx", "Great Expectations on pandas"), ("soda", "Soda Core (DuckDB over the pandas frame)")]:
        r = peers[tool]
        a = r["answer"]
        lines.append(
            f"| {label} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | load {a['load_seconds']:.2f} s + checks {a['check_seconds']:.2f} s; "
            f"weir checks alone faster by {r['seconds'] / alone['seconds']:.1f}x, memory share {alone['peak_mb'] / r['peak_mb']:.2f} |"
        )
        mismatches += [f"{tool} says {k}={a['counts'].get(k)}, weir says {v}" for k, v in expected.items() if a["counts"].get(k) != v]
    lines.append("")
    lines.append(f"Failing rows (all tools agree unless listed below): {json.dumps(expected)}")
    finish("quality", args.rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
