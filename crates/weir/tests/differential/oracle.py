"""The oracle of the differential test (tests/differential.rs): the same cleaning steps as its pipeline, in Polars.

Usage: oracle.py INPUT.csv WEIR_TABLE_DIR. Reads the messy CSV as text, applies the steps, reads what weir wrote
(the Parquet files of the table) and compares the two as multisets of rows. Prints the step counts as JSON on the
last line (for the Rust side to compare with weir's summary) and exits 1 with examples when the rows differ.
"""
import glob
import json
import os
import sys

import polars as pl

src, table_dir = sys.argv[1], sys.argv[2]
df = pl.read_csv(src, infer_schema=False)  # every column as text; an empty field is null, as in weir
counts = {}

n = df.height
df = df.unique(maintain_order=True, keep="first")  # dedupe: whole rows, NULL equals NULL
counts["dedupe_rows"] = n - df.height

df = df.with_columns(
    pl.col("name").str.strip_chars(" ").str.to_uppercase(),
    pl.col("city").str.strip_chars(" ").str.to_lowercase(),
)

day = pl.coalesce(
    pl.col("day").str.to_date("%Y-%m-%d", strict=False),
    pl.col("day").str.to_date("%d.%m.%Y", strict=False),
)
counts["unparsed_day"] = df.select((pl.col("day").is_not_null() & day.is_null()).sum()).item()
df = df.with_columns(day.alias("day"))

for col, dtype in (("amount", pl.Float64), ("id", pl.Int64)):
    cast = pl.col(col).cast(dtype, strict=False)
    counts[f"uncast_{col}"] = df.select((pl.col(col).is_not_null() & cast.is_null()).sum()).item()
    df = df.with_columns(cast.alias(col))

n = df.height
df = df.unique(subset=["id"], maintain_order=True, keep="first")
counts["dedupe_id"] = n - df.height

df = df.with_columns(pl.col("city").fill_null("unknown"))
n = df.height
df = df.filter(pl.col("amount").is_null() | (pl.col("amount") >= 0))
counts["filter"] = n - df.height

files = [f for f in glob.glob(os.path.join(table_dir, "**", "*.parquet"), recursive=True)]
got = pl.concat([pl.read_parquet(f) for f in files]) if files else df.clear()
got = got.select(df.columns).cast(dict(df.schema))
order = df.columns
want_rows = df.sort(order, nulls_last=True)
got_rows = got.sort(order, nulls_last=True)
if not want_rows.equals(got_rows):
    missing = want_rows.join(got_rows, on=order, how="anti", join_nulls=True)
    extra = got_rows.join(want_rows, on=order, how="anti", join_nulls=True)
    print(f"rows differ: polars {want_rows.height}, weir {got_rows.height}")
    print("in polars only:", missing.head(5).to_dicts())
    print("in weir only:", extra.head(5).to_dicts())
    sys.exit(1)
counts["rows"] = df.height
print(json.dumps(counts))
