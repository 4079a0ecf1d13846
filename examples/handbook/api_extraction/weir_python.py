"""The handbook's `fetch_all_pages`, with weir: the pipeline pipelines/orders_api.yaml pulls every page into the
lake (retries, bearer token, next links, resumable), and the landed records come back as a Polars frame.
Run from this folder with ORDERS_API_URL and ORDERS_API_TOKEN set."""

import polars as pl

import weir


def extract_with_weir(project: weir.Project, date: str) -> pl.DataFrame:
    run = project.run("orders_api", date=date)
    print(f"Fetched {run.tasks[0].rows_written} records from the API")
    return project.table("raw.api_orders", where=f"date = '{date}'").to_polars()


if __name__ == "__main__":
    print(extract_with_weir(weir.Project("."), "2026-03-25"))
