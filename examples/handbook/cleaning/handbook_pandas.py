from __future__ import annotations

import pandas as pd


def clean_with_pandas() -> pd.DataFrame:
    """Clean a messy dataset using Pandas with common production-safe steps."""
    raw_df = pd.DataFrame(
        {
            "customer_name": [" Alice ", "bob", "bob", " CHARLIE "],
            "city": [" New York ", "LONDON", "LONDON", " San Francisco "],
            "sales_amount": [100.0, None, None, 250.0],
            "order_date": ["2026-03-01", "2026/03/02", "2026/03/02", "2026-03-04"],
        }
    )

    try:
        cleaned_df = raw_df.drop_duplicates().copy()

        # Fill missing numeric values with the column mean so aggregations remain usable.
        sales_mean = cleaned_df["sales_amount"].mean()
        cleaned_df["sales_amount"] = cleaned_df["sales_amount"].fillna(sales_mean)

        # Standardize strings for safer joins and group-by behavior.
        for column in ["customer_name", "city"]:
            cleaned_df[column] = (
                cleaned_df[column]
                .astype("string")
                .str.strip()
                .str.lower()
            )

        # Coerce invalid values to NaT rather than crashing the whole job.
        cleaned_df["order_date"] = pd.to_datetime(cleaned_df["order_date"], errors="coerce")

        return cleaned_df
    except Exception as exc:
        print("Pandas cleaning step failed. Inspect source schema and values.")
        raise RuntimeError("Pandas cleaning failed") from exc


if __name__ == "__main__":
    print(clean_with_pandas())
