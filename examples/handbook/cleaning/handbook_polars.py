from __future__ import annotations

import polars as pl


def clean_with_polars() -> pl.DataFrame:
    """Apply the same cleaning logic with Polars for better performance on larger local workloads."""
    raw_df = pl.DataFrame(
        {
            "customer_name": [" Alice ", "bob", "bob", " CHARLIE "],
            "city": [" New York ", "LONDON", "LONDON", " San Francisco "],
            "sales_amount": [100.0, None, None, 250.0],
            "order_date": ["2026-03-01", "2026/03/02", "2026/03/02", "2026-03-04"],
        }
    )

    try:
        mean_sales = raw_df.select(pl.col("sales_amount").mean()).item()

        cleaned_df = (
            raw_df
            .unique()
            .with_columns(
                [
                    pl.col("sales_amount").fill_null(mean_sales),
                    pl.col("customer_name").str.strip_chars().str.to_lowercase(),
                    pl.col("city").str.strip_chars().str.to_lowercase(),
                    pl.col("order_date").str.strptime(pl.Date, strict=False),
                ]
            )
        )

        return cleaned_df
    except Exception as exc:
        print("Polars cleaning step failed. Verify data types and date formats.")
        raise RuntimeError("Polars cleaning failed") from exc


if __name__ == "__main__":
    print(clean_with_polars())


