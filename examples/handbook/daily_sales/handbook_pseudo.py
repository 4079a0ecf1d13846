# Pseudo-flow for the daily sales pipeline

def daily_sales_pipeline(execution_date: str) -> None:
    raw_path = f"s3://company-raw/transactions/date={execution_date}/"

    # 1. Read raw data from the lake.
    raw_df = spark.read.parquet(raw_path)

    # 2. Apply business cleaning rules.
    cleaned_df = (
        raw_df
        .dropDuplicates(["transaction_id"])
        .filter("order_status = 'completed'")
        .fillna({"discount_amount": 0.0})
    )

    # 3. Aggregate for BI consumption.
    agg_df = cleaned_df.groupBy("order_date", "country").sum("net_revenue")

    # 4. Write curated results to Snowflake.
    write_dataframe_to_snowflake(agg_df, table_name="daily_sales_metrics")
