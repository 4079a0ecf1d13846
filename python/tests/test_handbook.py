"""The handbook's Python snippets next to their weir versions (examples/handbook/): each original runs (except the
Airflow DAG, which needs Airflow), each weir version runs in Python and as YAML, and they give the same rows, or
differ where the handbook's code loses data and weir does not."""

import runpy
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import weir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "handbook"


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def copy(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(EXAMPLES / name, folder)
        monkeypatch.chdir(folder)
        return folder

    return copy


def test_parquet_vs_csv(example) -> None:
    folder = example("parquet_vs_csv")
    runpy.run_path(str(folder / "handbook.py"), run_name="__main__")  # writes data_output/orders.{csv,parquet}
    handbook = pd.read_parquet(folder / "data_output/orders.parquet")

    project = weir.Project(folder)
    project.validate()
    # YAML: the handbook's CSV landed as a typed Parquet table.
    project.run("save_orders", date="2026-03-25")
    landed = project.sql("SELECT * FROM raw.orders ORDER BY order_id").to_pandas()
    # Python: the handbook's DataFrame written straight to the lake.
    runpy.run_path(str(folder / "weir_python.py"), run_name="__main__")
    written = project.sql("SELECT * FROM raw.orders_from_python ORDER BY order_id").to_pandas()
    for frame in (landed, written):
        assert frame["order_id"].tolist() == handbook["order_id"].tolist()
        assert frame["order_total"].tolist() == handbook["order_total"].tolist()
        assert [str(t) for t in frame["order_ts"]] == [str(t) for t in handbook["order_ts"]]
    assert str(landed["order_ts"].dtype).startswith("datetime64")  # the CSV's text became timestamps again
    files = list((folder / "lake/raw/orders").rglob("*.parquet"))
    assert files and all(f.stat().st_size > 0 for f in files)


def test_cleaning_with_pandas_polars_and_weir(example) -> None:
    folder = example("cleaning")
    with_pandas = runpy.run_path(str(folder / "handbook_pandas.py"))["clean_with_pandas"]()
    with_polars = runpy.run_path(str(folder / "handbook_polars.py"))["clean_with_polars"]()
    with_weir = runpy.run_path(str(folder / "weir_python.py"))["clean_with_weir"](weir.Project(folder))

    rows = with_weir.sort("customer_name").to_dicts()
    assert [(r["customer_name"], r["city"], r["sales_amount"]) for r in rows] == [
        ("alice", "new york", 100.0),
        ("bob", "london", 175.0),  # the mean of the distinct rows' amounts, as both handbook versions fill
        ("charlie", "san francisco", 250.0),
    ]
    pandas_rows = with_pandas.sort_values("customer_name")
    assert pandas_rows["sales_amount"].tolist() == [r["sales_amount"] for r in rows]
    assert sorted(with_polars["customer_name"].to_list()) == [r["customer_name"] for r in rows]
    # Every date parses in weir, as in the handbook's Polars version; its pandas version silently turns bob's
    # `2026/03/02` into NaT (to_datetime takes the first value's format), where weir would fail the check.
    assert [str(r["order_date"]) for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-04"]
    assert [str(d) for d in with_polars.sort("customer_name")["order_date"]] == [str(r["order_date"]) for r in rows]
    bob = pandas_rows[pandas_rows["customer_name"] == "bob"]["order_date"].iloc[0]
    assert pd.isna(bob)

    # The same pipeline from the command line.
    done = subprocess.run(["weir", "run", "clean_customers", "--date", "2026-03-26"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    # A date in no known format: pandas would make it NaT and go on; weir's check fails the run and keeps the table.
    project = weir.Project(folder)
    project.write("raw.customers", pl.DataFrame({"customer_name": ["dan"], "city": ["oslo"], "sales_amount": [1.0],
                                                 "order_date": ["03-05-2026"]}), mode="overwrite")
    with pytest.raises(weir.DataError, match="order_date"):
        project.run("clean_customers", date="2026-03-25", no_retries=True)
    assert project.table("silver.customers").to_polars().height == 3


def test_taskflow_dag_as_a_pipeline(example) -> None:
    folder = example("taskflow")
    project = weir.Project(folder)
    assert "1 pipeline file" in project.validate()
    result = project.run("daily_orders", date="2026-03-25")
    assert (result["orders"].rows_read, result["orders"].rows_written) == (3, 2)
    assert "Loading 2 cleaned records into analytics storage (2026-03-25)" in (result["report"].output or "")
    # A re-run of the day replaces its rows: no duplicate business records.
    project.run("daily_orders", date="2026-03-25")
    assert sorted(project.table("silver.orders").to_polars()["order_id"].to_list()) == [1, 3]
    runpy.run_path(str(folder / "weir_python.py"), run_name="__main__")
