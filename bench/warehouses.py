"""The warehouse load benchmark: the same N-row sales table (date, text, bigint, decimal(12,2), timestamptz), read
from one Parquet file, loaded into Snowflake's emulator (fakesnow) and BigQuery's (bqemulator) by weir and by the
tool a user would pick instead: the Snowflake Python connector doing what its `write_pandas` does (a pandas
DataFrame to Parquet, `PUT`, `COPY INTO`; fakesnow 0.12 refuses write_pandas' own COPY statement), and the BigQuery
client's `load_table_from_dataframe`. The emulators are not the services: read the numbers as client-side cost (time to
hand the rows over, and the loading process's peak memory), not as warehouse speed.

    python warehouses.py --weir PATH_TO_WEIR [--rows 10000000]

Each load is checked by counting the rows and summing the amounts in the emulator. Redshift has no emulator and is
not measured.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

from benchlib import finish, free_port, measure

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.expanduser("~/.cache/weir")
# The emulators run from the tests' virtualenvs; the peers (and the checks) from the benchmark's own.
SNOW = os.path.join(CACHE, "fakesnow-venv", "bin")
BQ = os.path.join(CACHE, "bigquery-venv", "bin")
PEERS = os.path.join(HERE, ".venv-warehouses", "bin")



def start(cmd, port, log):
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{cmd[0]} did not start; see {log}")


SNOW_CONNECT = """
import snowflake.connector
conn = snowflake.connector.connect(user="bench", password="bench", account="bench", host="127.0.0.1", port={port},
    protocol="http", database="BENCH", schema="SALES")
"""

BQ_CONNECT = """
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
client = bigquery.Client(project="bench", credentials=AnonymousCredentials(),
    client_options=ClientOptions(api_endpoint="http://127.0.0.1:{port}"))
"""


def python(bin_dir, code):
    out = subprocess.run([os.path.join(bin_dir, "python"), "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(out.stderr)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--data", default=os.path.join(HERE, "data", "warehouses"))
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    os.makedirs(args.data, exist_ok=True)
    source = os.path.join(args.data, f"sales-{args.rows}.parquet")
    if not os.path.exists(source):
        print(f"writing {args.rows:,} rows to {source} ...", flush=True)
        python(PEERS, f"""
import decimal, pyarrow as pa, pyarrow.parquet as pq, numpy as np
n = {args.rows}
i = np.arange(n, dtype=np.int64)
countries = np.array(["DE", "FR", "US", "BR", "IN", "JP", "GB", "ES"])
t = pa.table({{
    "order_date": pa.array((np.datetime64("2026-03-01") + (i % 28)).astype("datetime64[D]")),
    "country": pa.array(countries[i % 8]),
    "customer_id": pa.array(i % 50000),
    "amount": pa.array([decimal.Decimal(c).scaleb(-2) for c in ((i % 99991) * 137).tolist()], pa.decimal128(12, 2)),
    "created_at": pa.array((np.datetime64("2026-03-01T00:00:00", "us") + i * 1000000).astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC")),
}})
pq.write_table(t, "{source}", row_group_size=1 << 20)
""")
    expected = python(PEERS, f"""
import pyarrow.parquet as pq, pyarrow.compute as pc
t = pq.read_table("{source}", columns=["amount"])
print(t.num_rows, pc.sum(t["amount"]).as_py())
""")

    snow_port, bq_port = free_port(), free_port()
    servers = [
        start([os.path.join(SNOW, "fakesnow"), "-s", "--host", "127.0.0.1", "-p", str(snow_port)], snow_port,
              os.path.join(args.data, "fakesnow.log")),
        start([os.path.join(BQ, "bqemulator"), "start", "--rest-host", "127.0.0.1", "--rest-port", str(bq_port),
               "--grpc-port", "0", "--project", "bench", "--log-level", "warning"], bq_port,
              os.path.join(args.data, "bqemulator.log")),
    ]
    results = {}
    try:
        python(PEERS, SNOW_CONNECT.format(port=snow_port) +
               "conn.cursor().execute('CREATE DATABASE IF NOT EXISTS BENCH'); conn.cursor().execute('CREATE SCHEMA IF NOT EXISTS BENCH.SALES')")
        python(PEERS, BQ_CONNECT.format(port=bq_port) + "client.create_dataset('bench.sales', exists_ok=True)")
        project = os.path.join(args.data, "project")
        shutil.rmtree(project, ignore_errors=True)
        os.makedirs(os.path.join(project, "pipelines"))
        with open(os.path.join(project, "weir.yaml"), "w") as f:
            f.write("version: 1\nname: bench\nlake:\n  root: lake\nconnections:\n"
                    f"  snow: {{type: snowflake, account: bench, user: bench, password: bench, database: BENCH, schema: SALES, url: \"http://127.0.0.1:{snow_port}\"}}\n"
                    f"  bq: {{type: bigquery, project: bench, url: \"http://127.0.0.1:{bq_port}\"}}\n")
        for name, sink in [("snowflake", "{type: snowflake, connection: snow, table: sales.weir, mode: replace}"),
                           ("bigquery", "{type: bigquery, connection: bq, table: sales.weir, mode: replace}")]:
            with open(os.path.join(project, "pipelines", f"{name}.yaml"), "w") as f:
                f.write(f"version: 1\ntasks:\n  - name: load\n    source: {{type: parquet, path: \"{source}\"}}\n    sink: {sink}\n")

        peers = {
            # write_pandas' own COPY (a transformation reading `'@stage'`) is refused by fakesnow 0.12, so the peer
            # does what write_pandas does, through the same connector: the DataFrame to Parquet, PUT, COPY INTO.
            "snowflake": (PEERS, SNOW_CONNECT + """
import os, tempfile, pyarrow as pa, pyarrow.parquet as pq
df = pq.read_table("{source}").to_pandas()
df.columns = [c.upper() for c in df.columns]
cur = conn.cursor()
cur.execute("CREATE OR REPLACE TABLE PEER (ORDER_DATE DATE, COUNTRY VARCHAR, CUSTOMER_ID NUMBER(38,0), "
            "AMOUNT NUMBER(12,2), CREATED_AT TIMESTAMP_TZ(6))")
cur.execute("CREATE TEMPORARY STAGE PEER_STAGE")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "file0.parquet")
    df.to_parquet(path, compression="snappy")
    cur.execute(f"PUT 'file://{{path}}' @PEER_STAGE AUTO_COMPRESS=FALSE")
cur.execute("COPY INTO PEER FROM @PEER_STAGE FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
"""),
            "bigquery": (PEERS, BQ_CONNECT + """
import pyarrow.parquet as pq
df = pq.read_table("{source}").to_pandas()
job = client.load_table_from_dataframe(df, "bench.sales.peer",
    job_config=bigquery.LoadJobConfig(write_disposition="WRITE_TRUNCATE"))
job.result()
"""),
        }
        checks = {
            "snowflake": (PEERS, SNOW_CONNECT + "cur = conn.cursor(); cur.execute('SELECT count(*), sum(amount) FROM BENCH.SALES.{table}'); n, s = cur.fetchone(); print(n, s)"),
            "bigquery": (PEERS, BQ_CONNECT + "r = list(client.query('SELECT count(*), sum(amount) FROM sales.{table}').result())[0]; print(r[0], r[1])"),
        }
        for warehouse, port in [("snowflake", snow_port), ("bigquery", bq_port)]:
            for tool in ["weir", "peer"]:
                if tool == "weir":
                    r = measure([weir, "--project", project, "run", warehouse, "--date", "2026-03-25"], must_succeed=True)
                    table = "WEIR" if warehouse == "snowflake" else "weir"
                    label = "weir"
                else:
                    bin_dir, code = peers[warehouse]
                    script = os.path.join(args.data, f"{warehouse}_peer.py")
                    with open(script, "w") as f:
                        f.write(code.format(port=port, source=source))
                    r = measure([os.path.join(bin_dir, "python"), script], must_succeed=True)
                    table = "PEER" if warehouse == "snowflake" else "peer"
                    label = "connector (pandas, PUT, COPY)" if warehouse == "snowflake" else "load_table_from_dataframe"
                bin_dir, code = checks[warehouse]
                r["answer"] = python(bin_dir, code.format(port=port, table=table))
                results[(warehouse, label)] = r
                print(f"{warehouse} {label}: {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB, {r['answer']}", flush=True)
    finally:
        for s in servers:
            s.terminate()
            s.wait()

    lines = [
        f"Warehouse loads: {args.rows:,} rows (date, text, bigint, decimal(12,2), timestamptz) from one Parquet file, into the emulators (one run, this machine; client-side cost only)",
        "",
        "| warehouse | tool | seconds | rows/s | peak MB | weir faster by |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (warehouse, label), r in results.items():
        w = results[(warehouse, "weir")]
        ratio = "" if label == "weir" else f"{r['seconds'] / w['seconds']:.2f}x"
        lines.append(f"| {warehouse} | {label} | {r['seconds']:.2f} | {args.rows / r['seconds']:,.0f} | {r['peak_mb']:.0f} | {ratio} |")

    def same(answer):
        n, total = answer.split()
        want_n, want_total = expected.split()
        return int(n) == int(want_n) and abs(float(total) - float(want_total)) < 0.005

    mismatches = [f"{w} {t}: {r['answer']} (expected {expected})" for (w, t), r in results.items() if not same(r["answer"])]
    finish("warehouses", args.rows, "\n".join(lines), mismatches)


if __name__ == "__main__":
    main()
