"""Projects from Python: validate, run a pipeline, the results, and the errors of each."""

import subprocess
import sys

import pyarrow.compute as pc
import pytest

import weir


def test_the_daily_sales_pipeline_runs_and_reports_each_task(sales: weir.Project) -> None:
    assert "1 pipeline file" in sales.validate()
    result = sales.run("daily_sales", date="2026-03-25")
    assert [t.task for t in result.tasks] == ["ingest_orders", "clean_orders", "daily_revenue"]
    clean = result["clean_orders"]
    assert clean.table == "silver.orders" and clean.delta_version is not None
    assert 0 < clean.rows_written < clean.rows_read
    # The gold table is what the model says it is, recomputed here from the silver rows.
    silver = sales.table("silver.orders", where="date = '2026-03-25'").to_arrow()
    gold = sales.table("gold.daily_revenue").to_arrow()
    assert gold.num_rows > 0
    assert pc.sum(gold.column("orders")).as_py() == silver.num_rows
    # A re-run of the day changes nothing.
    again = sales.run("daily_sales", date="2026-03-25")
    assert again["clean_orders"].rows_written == clean.rows_written
    assert sales.table("silver.orders").to_arrow().num_rows == silver.num_rows


def test_validate_lists_every_problem_with_file_and_line(sales: weir.Project) -> None:
    pipeline = f"{sales.path}/pipelines/daily_sales.yaml"
    with open(pipeline) as f:
        text = f.read()
    with open(pipeline, "w") as f:
        f.write(text.replace("- dedupe: [transaction_id]", "- dedupe: [transaction_id]\n      - explode: [x]"))
    with pytest.raises(weir.ConfigError) as error:
        sales.validate()
    assert "daily_sales.yaml:" in str(error.value) and "explode" in str(error.value)
    with pytest.raises(weir.ConfigError, match="daily_sales.yaml:"):
        sales.run("daily_sales", date="2026-03-25")


def test_a_failed_task_raises_naming_the_task_and_the_cause(sales: weir.Project) -> None:
    with pytest.raises(weir.WeirError, match="task `ingest_orders`.*2026-01-01"):
        sales.run("daily_sales", date="2026-01-01")  # no landing file for that day
    with pytest.raises(weir.ConfigError, match="no pipeline `daily_sale`.*daily_sales"):
        sales.run("daily_sale", date="2026-03-25")


def test_the_console_script_is_the_command_line(sales: weir.Project) -> None:
    version = subprocess.run(["weir", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("weir ")
    ok = subprocess.run(["weir", "-p", sales.path, "validate"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stderr
    bad = subprocess.run(["weir", "-p", sales.path, "run", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no pipeline `nope`" in bad.stderr
    assert subprocess.run([sys.executable, "-m", "weir._cli", "--help"], capture_output=True).returncode == 0


def test_backfill_and_trigger_go_through_the_metadata_store(sales: weir.Project) -> None:
    sales.backfill("daily_sales", "2026-03-24", "2026-03-25")
    days = sales.sql("SELECT DISTINCT date FROM silver.orders ORDER BY date").to_arrow().column("date").to_pylist()
    assert [str(d) for d in days] == ["2026-03-24", "2026-03-25"]
    # A date that has a run is not run twice by accident; reprocess says so.
    with pytest.raises(weir.ConfigError, match="already has a run for 2026-03-25"):
        sales.trigger("daily_sales", date="2026-03-25", wait=True)
    day = "SELECT count(*) AS n FROM silver.orders WHERE date = '2026-03-25'"
    before = sales.sql(day).to_arrow().column("n")[0].as_py()
    sales.backfill("daily_sales", "2026-03-25", "2026-03-25", reprocess="all")
    runs = subprocess.run(["weir", "-p", sales.path, "runs", "daily_sales"], capture_output=True, text=True, check=True)
    assert "2026-03-25" in runs.stdout and "2026-03-24" in runs.stdout, runs.stdout
    assert sales.sql(day).to_arrow().column("n")[0].as_py() == before > 0  # run again, not doubled
    with pytest.raises(weir.ConfigError, match="--from"):
        sales.backfill("daily_sales", "24.03.2026", "2026-03-25")
