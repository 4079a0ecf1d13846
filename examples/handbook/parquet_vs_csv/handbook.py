from pathlib import Path

import pandas as pd


def save_orders_dataset() -> None:
    """Save the same dataset as CSV and Parquet to show the production-safe default."""
    output_dir = Path("./data_output")
    output_dir.mkdir(parents=True, exist_ok=True)

    orders_df = pd.DataFrame(
        {
            "order_id": [1001, 1002, 1003, 1004],
            "customer_id": [501, 502, 501, 503],
            "order_total": [125.50, 88.10, 42.99, 310.75],
            "currency": ["USD", "USD", "USD", "USD"],
            "order_ts": pd.to_datetime(
                [
                    "2026-03-25 10:15:00",
                    "2026-03-25 11:05:00",
                    "2026-03-26 08:43:00",
                    "2026-03-26 17:20:00",
                ]
            ),
        }
    )

    try:
        # CSV is easy to inspect, but usually inefficient for analytics workloads.
        orders_df.to_csv(output_dir / "orders.csv", index=False)

        # Parquet stores typed columns and compresses efficiently.
        # Snappy is a common production default because it balances speed and compression.
        orders_df.to_parquet(
            output_dir / "orders.parquet",
            index=False,
            compression="snappy",
            engine="pyarrow",
        )

        print("Saved CSV and Parquet versions to ./data_output")
    except ImportError as exc:
        print("Missing optional dependency. Install pyarrow to write Parquet files.")
        print(f"Details: {exc}")
    except OSError as exc:
        print("File write failed. Check directory permissions and available disk space.")
        print(f"Details: {exc}")


if __name__ == "__main__":
    save_orders_dataset()
