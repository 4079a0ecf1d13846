"""The handbook's daily sales pseudo-flow (handbook_pseudo.py: PySpark on Databricks, S3 in, Snowflake out) made
runnable in Polars on one machine: its four steps (dropDuplicates, keep completed orders, fill missing discounts,
sum net revenue by date and country), plus what the raw orders need before those steps mean anything (the
handbook's Module 3: padded mixed-case text, timestamps in several formats, amounts in five currencies)."""

import polars as pl

FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d.%m.%Y %H:%M"]
USD_RATES = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "INR": 0.012, "JPY": 0.0067, "BRL": 0.18}


def daily_sales_with_polars(raw_csv: str, execution_date: str) -> pl.DataFrame:
    raw_df = pl.read_csv(raw_csv, infer_schema=False)  # every column as text, as it landed
    order_ts = pl.col("order_ts").str.strip_chars()
    cleaned_df = (
        raw_df.unique(subset=["transaction_id"], keep="first", maintain_order=True)  # 1. dropDuplicates
        .with_columns(
            pl.col("country").str.strip_chars().str.to_uppercase(),
            pl.col("currency").str.strip_chars().str.to_uppercase(),
            pl.col("order_status").str.strip_chars().str.to_lowercase(),
            pl.coalesce([order_ts.str.strptime(pl.Datetime, f, strict=False) for f in FORMATS]).alias("order_ts"),
            pl.col("amount").cast(pl.Float64),
            pl.col("discount_amount").cast(pl.Float64).fill_null(0.0),  # 3. fillna({"discount_amount": 0.0})
        )
        .filter(pl.col("order_status") == "completed")  # 2. filter("order_status = 'completed'")
        .with_columns(net_revenue=pl.col("amount") - pl.col("discount_amount"))
    )
    rates = pl.DataFrame({"currency": list(USD_RATES), "usd_rate": list(USD_RATES.values())})
    return (  # 4. groupBy("order_date", "country").sum("net_revenue"), in USD
        cleaned_df.join(rates, on="currency", how="left")
        .group_by("country")
        .agg(orders=pl.len(), revenue_usd=(pl.col("net_revenue") * pl.col("usd_rate")).sum().round(2))
        .with_columns(order_date=pl.lit(execution_date).str.to_date())
        .select("order_date", "country", "orders", "revenue_usd")
        .sort("revenue_usd", descending=True, nulls_last=True)
    )


if __name__ == "__main__":
    print(daily_sales_with_polars("landing/orders/2026-03-25.csv", "2026-03-25"))
