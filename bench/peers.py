"""The same three jobs written the way a user of each peer would write them (the handbook's code where it has one).

    python peers.py TOOL STEP CSV_GLOB OUT_DIR
    TOOL: pandas | polars | duckdb;  STEP: convert | clean | revenue | distinct

`clean` is the handbook's cleaning (dedupe by transaction_id, trim and case, dates in three formats, missing discount
filled with 0, keep completed orders); `revenue` is clean plus daily revenue by country in USD; `distinct` drops
exact duplicate rows (every column is the key, NULL equal to NULL). Each prints a JSON
line with the numbers bench.py compares across tools, so a fast wrong answer is caught.
"""
import glob
import json
import os
import sys

FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d.%m.%Y %H:%M"]
FX = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "INR": 0.012, "JPY": 0.0067, "BRL": 0.18}
TEXT = ["country", "currency", "order_status", "customer_name"]

tool, step, pattern, out = sys.argv[1:5]
os.makedirs(out, exist_ok=True)
files = sorted(glob.glob(pattern))


def report(**kw):
    print(json.dumps(kw))


if tool == "pandas":
    import pandas as pd

    df = pd.concat([pd.read_csv(f, dtype={"order_ts": "string", "customer_name": "string"}) for f in files], ignore_index=True)
    if step == "convert":
        df.to_parquet(f"{out}/orders.parquet", compression="snappy", index=False)
        report(rows=len(df))
        sys.exit(0)
    if step == "distinct":
        df = df.drop_duplicates(keep="first")
        df.to_parquet(f"{out}/distinct.parquet", compression="snappy", index=False)
        report(rows=len(df))
        sys.exit(0)
    df = df.drop_duplicates(subset=["transaction_id"], keep="first")
    for c in TEXT:
        df[c] = df[c].astype("string").str.strip()
    df["country"] = df["country"].str.upper()
    df["currency"] = df["currency"].str.upper()
    df["order_status"] = df["order_status"].str.lower()
    df["customer_name"] = df["customer_name"].str.lower()
    ts = df["order_ts"].str.strip()
    parsed = pd.to_datetime(ts, format=FORMATS[0], errors="coerce")
    for f in FORMATS[1:]:
        parsed = parsed.fillna(pd.to_datetime(ts, format=f, errors="coerce"))
    df["order_ts"] = parsed
    df["discount_amount"] = df["discount_amount"].fillna(0.0)
    df = df[df["order_status"] == "completed"]
    if step == "clean":
        df.to_parquet(f"{out}/clean.parquet", compression="snappy", index=False)
        report(rows=len(df), unparsed=int(df["order_ts"].isna().sum()))
        sys.exit(0)
    df = df.assign(order_date=df["order_ts"].dt.date, net=(df["amount"] - df["discount_amount"]) * df["currency"].map(FX))
    agg = df.groupby(["order_date", "country"], dropna=False).agg(orders=("net", "size"), revenue_usd=("net", "sum")).reset_index()
    report(groups=len(agg), orders=int(agg["orders"].sum()), revenue=round(float(agg["revenue_usd"].sum()), 2))

elif tool == "polars":
    import polars as pl

    lf = pl.scan_csv(files, schema_overrides={"order_ts": pl.Utf8})
    if step == "convert":
        lf.sink_parquet(f"{out}/orders.parquet", compression="snappy")
        report(rows=pl.scan_parquet(f"{out}/orders.parquet").select(pl.len()).collect().item())
        sys.exit(0)
    if step == "distinct":
        lf.unique(keep="first", maintain_order=True).sink_parquet(f"{out}/distinct.parquet", compression="snappy")
        report(rows=pl.scan_parquet(f"{out}/distinct.parquet").select(pl.len()).collect().item())
        sys.exit(0)
    ts = pl.col("order_ts").str.strip_chars()
    lf = (
        lf.unique(subset=["transaction_id"], keep="first", maintain_order=True)
        .with_columns(
            pl.col("country").str.strip_chars().str.to_uppercase(),
            pl.col("currency").str.strip_chars().str.to_uppercase(),
            pl.col("order_status").str.strip_chars().str.to_lowercase(),
            pl.col("customer_name").str.strip_chars().str.to_lowercase(),
            pl.coalesce([ts.str.strptime(pl.Datetime, f, strict=False) for f in FORMATS]).alias("order_ts"),
            pl.col("discount_amount").fill_null(0.0),
        )
        .filter(pl.col("order_status") == "completed")
    )
    if step == "clean":
        lf.sink_parquet(f"{out}/clean.parquet", compression="snappy")
        c = pl.scan_parquet(f"{out}/clean.parquet").select(pl.len(), pl.col("order_ts").null_count()).collect()
        report(rows=c.item(0, 0), unparsed=c.item(0, 1))
        sys.exit(0)
    fx = pl.DataFrame({"currency": list(FX), "usd_rate": list(FX.values())}).lazy()
    agg = (
        lf.join(fx, on="currency", how="left")
        .with_columns(order_date=pl.col("order_ts").dt.date(), net=(pl.col("amount") - pl.col("discount_amount")) * pl.col("usd_rate"))
        .group_by("order_date", "country")
        .agg(orders=pl.len(), revenue_usd=pl.col("net").sum())
        .collect()
    )
    report(groups=agg.height, orders=int(agg["orders"].sum()), revenue=round(float(agg["revenue_usd"].sum()), 2))

elif tool == "duckdb":
    import duckdb

    con = duckdb.connect()
    src = f"read_csv({files!r}, types={{'order_ts': 'VARCHAR'}})"
    if step == "convert":
        con.execute(f"COPY (SELECT * FROM {src}) TO '{out}/orders.parquet' (FORMAT parquet, COMPRESSION snappy)")
        report(rows=con.execute(f"SELECT count(*) FROM '{out}/orders.parquet'").fetchone()[0])
        sys.exit(0)
    if step == "distinct":
        con.execute(f"COPY (SELECT DISTINCT * FROM {src}) TO '{out}/distinct.parquet' (FORMAT parquet, COMPRESSION snappy)")
        report(rows=con.execute(f"SELECT count(*) FROM '{out}/distinct.parquet'").fetchone()[0])
        sys.exit(0)
    parse = ", ".join(f"try_strptime(trim(order_ts), '{f}')" for f in FORMATS)
    clean = f"""
        SELECT transaction_id, coalesce({parse}) AS order_ts, upper(trim(country)) AS country,
               upper(trim(currency)) AS currency, amount, coalesce(discount_amount, 0.0) AS discount_amount,
               lower(trim(order_status)) AS order_status, lower(trim(customer_name)) AS customer_name
        FROM (SELECT DISTINCT ON (transaction_id) * FROM {src})
        WHERE lower(trim(order_status)) = 'completed'"""
    if step == "clean":
        con.execute(f"COPY ({clean}) TO '{out}/clean.parquet' (FORMAT parquet, COMPRESSION snappy)")
        r = con.execute(f"SELECT count(*), count(*) - count(order_ts) FROM '{out}/clean.parquet'").fetchone()
        report(rows=r[0], unparsed=r[1])
        sys.exit(0)
    values = ", ".join(f"('{k}', {v})" for k, v in FX.items())
    r = con.execute(f"""
        WITH fx(currency, usd_rate) AS (VALUES {values}), c AS ({clean})
        SELECT count(*), sum(orders), round(sum(revenue_usd), 2) FROM (
          SELECT CAST(order_ts AS DATE) AS order_date, country, count(*) AS orders,
                 sum((amount - discount_amount) * usd_rate) AS revenue_usd
          FROM c LEFT JOIN fx USING (currency) GROUP BY 1, 2)""").fetchone()
    report(groups=r[0], orders=int(r[1]), revenue=float(r[2]))
