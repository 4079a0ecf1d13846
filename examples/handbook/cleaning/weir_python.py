"""The handbook's `clean_with_pandas` / `clean_with_polars`, with weir: land the raw frame, run the cleaning
pipeline (pipelines/clean_customers.yaml), read the result as a DataFrame. Run from this folder."""

import polars as pl

import weir


def clean_with_weir(project: weir.Project) -> pl.DataFrame:
    raw_df = pl.DataFrame(
        {
            "customer_name": [" Alice ", "bob", "bob", " CHARLIE "],
            "city": [" New York ", "LONDON", "LONDON", " San Francisco "],
            "sales_amount": [100.0, None, None, 250.0],
            "order_date": ["2026-03-01", "2026/03/02", "2026/03/02", "2026-03-04"],
        }
    )
    project.write("raw.customers", raw_df, mode="overwrite")
    project.run("clean_customers", date="2026-03-25")
    return project.table("silver.customers").to_polars()


if __name__ == "__main__":
    print(clean_with_weir(weir.Project(".")))
