"""The quality benchmark's checks written for Great Expectations and for Soda, the tools a pandas user would pick.

    python quality_peers.py TOOL PARQUET_DIR
    TOOL: gx (Great Expectations on a pandas DataFrame) | soda (Soda Core on DuckDB over the same DataFrame)

Both read the cleaned table that weir wrote (Parquet) into pandas first, as a pandas pipeline holds its data, then
run the same six checks as bench/project/pipelines/checks.yaml. Prints one JSON line: load and check seconds and
the failing row count of each check, which bench/quality.py compares with weir's.
"""
import json
import sys
import time

tool, parquet_dir = sys.argv[1:3]
CURRENCIES = ["USD", "EUR", "GBP"]
NAME_RE = "^[a-z]+ [a-z]+$"

import pandas as pd

t0 = time.perf_counter()
df = pd.read_parquet(parquet_dir)
t1 = time.perf_counter()
counts = {}

if tool == "gx":
    import logging

    import great_expectations as gx

    logging.disable(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    batch = (
        ctx.data_sources.add_pandas("bench")
        .add_dataframe_asset("orders")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name="orders"))
    e = gx.expectations
    checks = [
        ("not_null:transaction_id", e.ExpectColumnValuesToNotBeNull(column="transaction_id")),
        ("not_null:order_ts", e.ExpectColumnValuesToNotBeNull(column="order_ts")),
        ("unique", e.ExpectColumnValuesToBeUnique(column="transaction_id")),
        ("accepted_values", e.ExpectColumnValuesToBeInSet(column="currency", value_set=CURRENCIES)),
        ("range", e.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=5000)),
        ("regex", e.ExpectColumnValuesToMatchRegex(column="customer_name", regex=NAME_RE)),
        ("row_count", e.ExpectTableRowCountToBeBetween(min_value=1)),
    ]
    for _, x in checks:
        suite.add_expectation(x)
    result = batch.validate(suite, result_format="SUMMARY")
    by_type = {}
    for r in result.results:
        cfg = r.expectation_config
        key = (cfg.type, cfg.kwargs.get("column"))
        by_type[key] = r.result.get("unexpected_count", r.result.get("observed_value"))
    for name, x in checks:
        counts[name] = by_type[(x.expectation_type, getattr(x, "column", None))]
elif tool == "soda":
    import duckdb
    from soda.scan import Scan

    # duckdb 1.0 (the release soda-core-duckdb pins) reads object columns, not pandas 3's `str` dtype.
    frame = df.astype({c: object for c in df.columns if str(df[c].dtype) in ("str", "string")})
    con = duckdb.connect()
    con.register("orders", frame)
    scan = Scan()
    scan.set_data_source_name("duckdb")
    scan.add_duckdb_connection(con)
    scan.add_sodacl_yaml_str(
        f"""
checks for orders:
  - missing_count(transaction_id) = 0
  - missing_count(order_ts) = 0
  - duplicate_count(transaction_id) = 0
  - invalid_count(currency) = 0:
      valid values: {json.dumps(CURRENCIES)}
  - invalid_count(amount) = 0:
      valid min: 0
      valid max: 5000
  - invalid_count(customer_name) = 0:
      valid regex: {NAME_RE}
  - row_count > 0
"""
    )
    scan.execute()
    names = {
        "missing_count(transaction_id) = 0": "not_null:transaction_id",
        "missing_count(order_ts) = 0": "not_null:order_ts",
        "duplicate_count(transaction_id) = 0": "unique",
        "invalid_count(currency) = 0": "accepted_values",
        "invalid_count(amount) = 0": "range",
        "invalid_count(customer_name) = 0": "regex",
        "row_count > 0": "row_count",
    }
    for c in scan._checks:
        counts[names[c.name]] = c.check_value
else:
    sys.exit(f"unknown tool {tool}")
t2 = time.perf_counter()
counts["not_null"] = counts.pop("not_null:transaction_id") + counts.pop("not_null:order_ts")
print(json.dumps({"load_seconds": t1 - t0, "check_seconds": t2 - t1, "counts": counts}))
