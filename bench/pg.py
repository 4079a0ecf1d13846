"""The PostgreSQL extraction benchmark: a 10-million-row `fact_orders` table (the handbook's columns) in a local,
ephemeral PostgreSQL, extracted into Parquet by weir, ConnectorX (+ pyarrow), the handbook's pandas chunks, and
`psql \\copy` to a CSV file (the physical floor), on the same machine, in one run.

    python pg.py --weir PATH_TO_WEIR [--rows 10000000]

The cluster lives in bench/data/pg (created once with initdb from the Debian postgresql package, the table loaded
once) and is started on a free port for the run. Every output is read back: row count and order_total sum must agree.
Reports rows/s and peak memory, and writes the table to bench/results/.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time

from benchlib import finish, free_port, measure

HERE = os.path.dirname(os.path.abspath(__file__))


def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        sys.exit("no PostgreSQL server under /usr/lib/postgresql: install the postgresql package")
    return os.path.dirname(found[-1])


def as_owner(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--partitions", type=int, default=2, help="connections of weir's partition_on run")
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    py = os.path.join(HERE, ".venv", "bin", "python")
    bindir = pg_bin()
    cluster = os.path.join(args.data, "pg", "cluster")
    if not os.path.isdir(cluster):
        os.makedirs(cluster)
        if os.geteuid() == 0:
            shutil.chown(os.path.dirname(cluster), "postgres")
            shutil.chown(cluster, "postgres")
        subprocess.run(as_owner([f"{bindir}/initdb", "-D", cluster, "-U", "weir", "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen(as_owner([f"{bindir}/postgres", "-D", cluster, "-p", str(port), "-k", "/tmp",
                                        "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=256MB"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgres://weir@127.0.0.1:{port}/postgres"
    psql = os.path.join(bindir, "psql")
    try:
        for _ in range(100):
            if subprocess.run([psql, url, "-XAtqc", "SELECT 1"], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        have = subprocess.run([psql, url, "-XAtqc", "SELECT count(*) FROM fact_orders"], capture_output=True, text=True)
        if have.returncode != 0 or int(have.stdout.strip() or 0) != args.rows:
            print(f"loading {args.rows:,} rows into fact_orders ...", flush=True)
            subprocess.run([psql, url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", f"""
                DROP TABLE IF EXISTS fact_orders;
                CREATE TABLE fact_orders (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL,
                    order_total numeric(12,2), order_status text NOT NULL, created_at timestamptz NOT NULL);
                INSERT INTO fact_orders SELECT g, g % 50000, round((g % 99991) * 1.37, 2),
                    (ARRAY['completed','pending','cancelled','refunded'])[1 + g % 4],
                    timestamptz '2026-01-01' + (g % 7776000) * interval '1 second'
                FROM generate_series(1, {args.rows}) g;""", "-c", "VACUUM ANALYZE fact_orders"], check=True)
        expected_total = subprocess.run([psql, url, "-XAtqc", "SELECT sum(order_total) FROM fact_orders"],
                                        capture_output=True, text=True, check=True).stdout.strip()

        results = {}
        out_root = os.path.join(args.data, "pg", "out")
        for name in ["weir", f"weir (partition_on, {args.partitions} connections)", "connectorx", "pandas", "psql"]:
            out = os.path.join(out_root, name.split(" ")[0] + ("-parallel" if "partition_on" in name else ""))
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            if name.startswith("weir"):
                parallel = f", partition_on: {{column: order_id, partitions: {args.partitions}}}" if "partition_on" in name else ""
                with open(os.path.join(out, "weir.yaml"), "w") as f:
                    f.write(f"version: 1\nname: pg\nlake:\n  root: lake\nconnections:\n  shop: {{type: postgres, url: \"{url}\"}}\n")
                os.makedirs(os.path.join(out, "pipelines"))
                with open(os.path.join(out, "pipelines", "extract.yaml"), "w") as f:
                    f.write("version: 1\ntasks:\n  - name: orders\n    source: {type: postgres, connection: shop, query: "
                            "\"SELECT order_id, customer_id, order_total, order_status, created_at FROM fact_orders\"" + parallel + "}\n"
                            "    sink: {type: lake, table: raw.fact_orders}\n")
                r = measure([weir, "--project", out, "run", "extract", "--date", "2026-03-25"], must_succeed=True)
            elif name == "psql":
                r = measure([py, os.path.join(HERE, "pg_peers.py"), "psql", url, out, psql], must_succeed=True)
            else:
                r = measure([py, os.path.join(HERE, "pg_peers.py"), name, url, out], must_succeed=True)
            if name == "psql":
                with open(os.path.join(out, "orders.csv")) as f:
                    r["answer"] = {"rows": sum(1 for _ in f), "total": expected_total}
            else:
                files = glob.glob(os.path.join(out, "**", "*.parquet"), recursive=True)
                code = ("import json, sys, pyarrow.parquet as pq, pyarrow as pa, pyarrow.compute as pc, decimal; "
                        "t = pa.concat_tables([pq.read_table(f, columns=['order_total']).cast(pa.schema([('order_total', pa.decimal128(20, 2))])) for f in sys.argv[1:]]); "
                        "print(json.dumps({'rows': t.num_rows, 'total': str(pc.sum(t['order_total']).as_py())}))")
                r["answer"] = json.loads(subprocess.run([py, "-c", code, *files], capture_output=True, text=True, check=True).stdout)
            results[name] = r
            print(f"{name}: {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB, {r['answer']}", flush=True)
    finally:
        server.terminate()
        server.wait()

    w = results["weir"]
    lines = [
        f"PostgreSQL extraction: fact_orders, {args.rows:,} rows (bigint, bigint, numeric(12,2), text, timestamptz) into Parquet (one run, this machine)",
        "",
        "| tool | seconds | rows/s | peak MB | weir faster by |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        ratio = "" if name == "weir" else f"{r['seconds'] / w['seconds']:.2f}x"
        lines.append(f"| {name} | {r['seconds']:.2f} | {args.rows / r['seconds']:,.0f} | {r['peak_mb']:.0f} | {ratio} |")
    mismatches = [f"{n}: {r['answer']} (expected {args.rows} rows, total {expected_total})" for n, r in results.items()
                  if r["answer"]["rows"] != args.rows or str(r["answer"]["total"]) != expected_total]
    finish("pg", args.rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
