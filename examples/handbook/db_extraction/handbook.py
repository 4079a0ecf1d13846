from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine


def build_engine() -> Engine:
    """Build a SQLAlchemy engine. Swap the URL for your real database."""
    connection_url = "postgresql+psycopg2://user:password@localhost:5432/analytics"
    return create_engine(connection_url, pool_pre_ping=True)


def extract_orders_in_chunks(output_dir: str = "./db_extract") -> None:
    """Read rows in chunks so the job does not exhaust memory on large tables."""
    query = text(
        """
        SELECT order_id, customer_id, order_total, order_status, created_at
        FROM fact_orders
        WHERE created_at >= CURRENT_DATE - INTERVAL '30 days'
        ORDER BY created_at
        """
    )

    Path(output_dir).mkdir(parents=True, exist_ok=True)
    engine = build_engine()

    try:
        with engine.connect() as connection:
            for chunk_number, chunk_df in enumerate(
                pd.read_sql_query(query, connection, chunksize=100_000),
                start=1,
            ):
                output_path = Path(output_dir) / f"orders_chunk_{chunk_number:03d}.parquet"

                # Writing each chunk immediately prevents one huge in-memory dataframe.
                chunk_df.to_parquet(output_path, index=False, compression="snappy")
                print(f"Wrote {len(chunk_df):,} rows to {output_path}")
    except Exception as exc:
        print("Database extraction failed. Check connectivity, credentials, and SQL syntax.")
        raise RuntimeError("Chunked database extraction failed") from exc
    finally:
        engine.dispose()


if __name__ == "__main__":
    extract_orders_in_chunks()
