"""The handbook's `extract_orders_in_chunks`, with weir: the pipeline pipelines/orders_db.yaml streams the last 30
days of fact_orders into a Delta table, then only the new rows on each later run. Run from this folder with
ANALYTICS_URL set (postgres://user:password@localhost:5432/analytics)."""

import datetime

import weir


def extract_with_weir(project: weir.Project, date: str) -> int:
    run = project.run("orders_db", date=date)
    for task in run.tasks:
        print(f"Wrote {task.rows_written:,} rows to {task.table} (Delta version {task.delta_version})")
    return run.rows_written


if __name__ == "__main__":
    extract_with_weir(weir.Project("."), datetime.date.today().isoformat())
