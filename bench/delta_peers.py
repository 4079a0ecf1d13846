"""The Delta benchmark's jobs written for the Python deltalake package and for Polars.

    python delta_peers.py TOOL JOB PARQUET_DIR DELTA_DIR
    TOOL: deltalake | polars;  JOB: append (write the orders to a new Delta table) | merge (upsert the orders,
    deduplicated on transaction_id, with amount + 1, into that table)

Prints one JSON line with the table's row count and amount total after the job, for bench/delta.py to compare.
"""
import json
import os
import sys

tool, job, parquet_dir, delta_dir = sys.argv[1:5]

if tool == "deltalake":
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from deltalake import DeltaTable, write_deltalake

    source = ds.dataset(parquet_dir, format="parquet")
    if job == "append":
        # A RecordBatchReader streams the input instead of loading it whole.
        write_deltalake(delta_dir, source.scanner().to_reader(), mode="overwrite")
    else:
        import pyarrow as pa

        # A MERGE source must match each target row once: duplicates are dropped first (first one kept).
        table = source.to_table()
        table = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
        first = table.group_by("transaction_id", use_threads=False).aggregate([("_i", "min")])["_i_min"]
        table = table.take(pc.take(first, pc.sort_indices(first))).drop_columns(["_i"])
        table = table.set_column(table.schema.get_field_index("amount"), "amount", pc.add(table["amount"], 1))
        (
            DeltaTable(delta_dir)
            .merge(source=table, predicate="t.transaction_id = s.transaction_id", source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
elif tool == "polars":
    import polars as pl

    df = pl.read_parquet(f"{parquet_dir}/**/*.parquet")
    if job == "append":
        df.write_delta(delta_dir, mode="overwrite")
    else:
        df = df.unique(subset=["transaction_id"], keep="first", maintain_order=True).with_columns(pl.col("amount") + 1)
        (
            df.write_delta(
                delta_dir,
                mode="merge",
                delta_merge_options={"predicate": "t.transaction_id = s.transaction_id", "source_alias": "s", "target_alias": "t"},
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
else:
    sys.exit(f"unknown tool {tool}")

from deltalake import DeltaTable
import pyarrow.compute as pc

t = DeltaTable(delta_dir).to_pyarrow_table(columns=["amount"])
print(json.dumps({"rows": t.num_rows, "amount": round(pc.sum(t["amount"]).as_py(), 2)}), flush=True)
# The deltalake package sometimes aborts in interpreter teardown ("terminate called without an active exception")
# after its work is done; leave without the teardown so that is not counted as a failed job.
os._exit(0)
