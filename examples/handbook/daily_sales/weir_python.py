"""The handbook's daily sales pipeline with weir, from Python: the pipeline (examples/daily_sales: land the raw day,
clean it, aggregate revenue by country in USD, publish to Snowflake; or `weir demo --generate-only`'s local copy of
it) runs for one day, and the day's revenue comes back as a Polars frame. Run from a project folder."""

import polars as pl

import weir


def daily_sales_with_weir(project: weir.Project, execution_date: str) -> pl.DataFrame:
    run = project.run("daily_sales", date=execution_date)
    for task in run.tasks:
        print(f"{task.task}: {task.rows_read:,} rows read, {task.rows_written:,} written to {task.table}")
    return project.table("gold.daily_revenue", where=f"date = '{execution_date}'").to_polars().drop("date")


if __name__ == "__main__":
    print(daily_sales_with_weir(weir.Project("."), "2026-03-25"))
