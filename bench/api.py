"""The REST API benchmark: 200,000 records in pages of 100 with 20 ms latency per request (api_server.py on
loopback), pulled into Parquet by weir and by the tools a user would pick instead, on the same machine, in one run.

    python api.py --weir PATH_TO_WEIR [--records 200000] [--concurrency 8]

Contenders: weir following the `next` URLs one page after another (what the API allows without knowing more),
weir with page numbers and `concurrency` pages in flight, the handbook's requests-based `fetch_all_pages` written
to Parquet with pandas, and dlt's rest_api source into its filesystem destination as Parquet. Every output is read
back (row count, distinct order ids, sum of order_total) and must agree. Reports records/s and peak memory, and
writes the table to bench/results/.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

from benchlib import finish, free_port, measure

HERE = os.path.dirname(os.path.abspath(__file__))

PIPELINE = """version: 1
tasks:
  - name: orders
    source:
      type: http_api
      url: "{url}"
      auth: {{type: bearer, token: "token"}}
      records: results
      paginate: {paginate}
      concurrency: {concurrency}
    sink: {{type: lake, table: raw.api_orders, partition: "date={{{{ ds }}}}"}}
"""



def read_back(py, files):
    code = (
        "import json, sys, pyarrow.parquet as pq, pyarrow as pa, pyarrow.compute as pc; "
        "t = pa.concat_tables([pq.read_table(f, columns=['order_id', 'order_total']) for f in sys.argv[1:]]); "
        "print(json.dumps({'rows': t.num_rows, 'ids': len(pc.unique(t['order_id'])), "
        "'total': round(pc.sum(t['order_total']).as_py(), 2)}))"
    )
    out = subprocess.run([py, "-c", code, *files], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--data", default=os.path.join(HERE, "data", "api"))
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    py = os.path.join(HERE, ".venv", "bin", "python")
    port = free_port()
    server = subprocess.Popen([py, os.path.join(HERE, "api_server.py"), str(port), "--records", str(args.records)],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    url = f"http://127.0.0.1:{port}/orders"
    results = {}
    try:
        jobs = [
            ("weir (next URL, sequential)", "weir", "{type: next_url, path: next}", 1),
            (f"weir (page numbers, {args.concurrency} in flight)", "weir", "{type: page, size: 100}", args.concurrency),
            ("handbook fetch_all_pages + pandas", "handbook", None, None),
            ("dlt rest_api (filesystem, parquet)", "dlt", None, None),
        ]
        for name, tool, paginate, conc in jobs:
            out = os.path.join(args.data, tool if tool != "weir" else f"weir{conc}")
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            if tool == "weir":
                with open(os.path.join(out, "weir.yaml"), "w") as f:
                    f.write("version: 1\nname: api\nlake:\n  root: lake\n")
                os.makedirs(os.path.join(out, "pipelines"))
                with open(os.path.join(out, "pipelines", "api.yaml"), "w") as f:
                    f.write(PIPELINE.format(url=url, paginate=paginate, concurrency=conc))
                r = measure([weir, "--project", out, "run", "api", "--date", "2026-03-25"], must_succeed=True)
                files = glob.glob(os.path.join(out, "lake", "raw", "api_orders", "**", "*.parquet"), recursive=True)
            else:
                r = measure([py, os.path.join(HERE, "api_peers.py"), tool, url, out], must_succeed=True)
                files = [f for f in glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True) if "_dlt" not in os.path.basename(f)]
            r["answer"] = read_back(py, files)
            results[name] = r
            print(f"{name}: {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB, {r['answer']}", flush=True)
    finally:
        server.kill()

    base = results["handbook fetch_all_pages + pandas"]
    lines = [
        f"REST API: {args.records:,} records, pages of 100, 20 ms latency per request, into Parquet (one run, this machine)",
        "",
        "| tool | seconds | records/s | peak MB | vs handbook |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['seconds']:.2f} | {args.records / r['seconds']:,.0f} | {r['peak_mb']:.0f} | {base['seconds'] / r['seconds']:.1f}x |"
        )
    expected = {"rows": args.records, "ids": args.records}
    mismatches = [f"{n}: {r['answer']}" for n, r in results.items()
                  if {k: r["answer"][k] for k in expected} != expected or r["answer"]["total"] != base["answer"]["total"]]
    finish("api", args.records, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
