"""The handbook's `save_orders_dataset`, with weir: the same DataFrame written to the lake as Parquet (Snappy), then
read back with its types. Run from this folder: `python weir_python.py`."""

import pandas as pd

import weir


def save_orders_dataset(project: weir.Project) -> weir.TaskResult:
    orders_df = pd.DataFrame(
        {
            "order_id": [1001, 1002, 1003, 1004],
            "customer_id": [501, 502, 501, 503],
            "order_total": [125.50, 88.10, 42.99, 310.75],
            "currency": ["USD", "USD", "USD", "USD"],
            "order_ts": pd.to_datetime(
                ["2026-03-25 10:15:00", "2026-03-25 11:05:00", "2026-03-26 08:43:00", "2026-03-26 17:20:00"]
            ),
        }
    )
    # One atomic commit; a failure raises weir.WeirError with what went wrong (no half-written file).
    return project.write("raw.orders_from_python", orders_df, mode="overwrite", compression="snappy")


if __name__ == "__main__":
    project = weir.Project(".")
    result = save_orders_dataset(project)
    print(f"wrote {result.rows_written} rows to {result.table} ({result.files} Parquet file)")
    print(project.sql("SELECT * FROM raw.orders_from_python ORDER BY order_id").to_pandas())
