from __future__ import annotations

from datetime import datetime, timedelta

from airflow.decorators import dag, task


@dag(
    dag_id="daily_orders_pipeline",
    start_date=datetime(2026, 3, 1),
    schedule="@daily",
    catchup=False,
    tags=["handbook", "data-engineering"],
)
def daily_orders_pipeline():
    """A simple ELT-style DAG using the TaskFlow API."""

    @task(retries=2, retry_delay=timedelta(minutes=1))
    def extract() -> list[dict[str, object]]:
        # In production this would pull from an API, database, or cloud storage.
        return [
            {"order_id": 1, "amount": 120.0, "status": "completed"},
            {"order_id": 2, "amount": 0.0, "status": "cancelled"},
            {"order_id": 3, "amount": 75.5, "status": "completed"},
        ]

    @task
    def transform(records: list[dict[str, object]]) -> list[dict[str, object]]:
        try:
            # Keep only business-valid rows for the downstream load step.
            return [
                record
                for record in records
                if record.get("status") == "completed" and float(record.get("amount", 0)) > 0
            ]
        except Exception as exc:
            raise RuntimeError("Transform task failed") from exc

    @task
    def load(records: list[dict[str, object]]) -> None:
        try:
            # Replace this with a Snowflake, BigQuery, or warehouse load in real code.
            print(f"Loading {len(records)} cleaned records into analytics storage")
        except Exception as exc:
            raise RuntimeError("Load task failed") from exc

    load(transform(extract()))


dag = daily_orders_pipeline()
