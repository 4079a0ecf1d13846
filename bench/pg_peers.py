"""The peers of the PostgreSQL extraction benchmark, one per process:

    python pg_peers.py connectorx|pandas|psql URL OUT_DIR [PSQL_BIN]

connectorx: `read_sql(..., return_type="arrow")` (the whole table in Arrow) then `pyarrow.parquet.write_table`.
pandas: the handbook's `extract_orders_in_chunks` (SQLAlchemy + psycopg2, `read_sql_query(chunksize=100_000)`, each
chunk written to Parquet at once). psql: `\\copy ... TO file (FORMAT csv)`, the physical floor of getting the rows out.
"""
import os
import subprocess
import sys

QUERY = "SELECT order_id, customer_id, order_total, order_status, created_at FROM fact_orders"


def connectorx(url, out):
    import connectorx as cx
    import pyarrow.parquet as pq

    table = cx.read_sql(url, QUERY, return_type="arrow")
    pq.write_table(table, os.path.join(out, "orders.parquet"), compression="snappy")


def pandas(url, out):
    # The handbook's extract_orders_in_chunks, with this database's URL.
    from pathlib import Path

    import pandas as pd
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgres://", "postgresql+psycopg2://"), pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            for chunk_number, chunk_df in enumerate(pd.read_sql_query(text(QUERY), connection, chunksize=100_000), start=1):
                output_path = Path(out) / f"orders_chunk_{chunk_number:03d}.parquet"
                chunk_df.to_parquet(output_path, index=False, compression="snappy")
    finally:
        engine.dispose()


def psql(url, out, psql_bin):
    path = os.path.join(out, "orders.csv")
    subprocess.run([psql_bin, url, "-XAtq", "-c", f"\\copy ({QUERY}) TO '{path}' (FORMAT csv)"], check=True)


if __name__ == "__main__":
    tool, url, out = sys.argv[1:4]
    if tool == "psql":
        psql(url, out, sys.argv[4])
    else:
        {"connectorx": connectorx, "pandas": pandas}[tool](url, out)
