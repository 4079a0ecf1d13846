"""Python functions in pipelines: a `python:` step over each batch (as pyarrow, Polars or pandas data) and a
`python:` task called with the run's context, run from Python (the same engine as the binary)."""

import json
import textwrap
from pathlib import Path

import pytest

import weir

PIPELINE = """\
version: 1
tasks:
  - name: clean
    source: {type: csv, path: landing/orders.csv}
    steps:
      - python: "cleaning:normalise"
      - python: {function: "cleaning:with_polars", input: polars}
      - python: {function: "cleaning:with_pandas", input: pandas}
      - filter: "amount > 0"
    sink: {type: lake, table: silver.orders, format: delta, mode: overwrite}
  - name: refresh
    depends_on: [clean]
    python: {callable: "jobs:refresh", params: {target: report.txt, greeting: hello}}
"""

CLEANING = '''
import pyarrow.compute as pc
import polars as pl


def normalise(batch):
    print("normalising", batch.num_rows, "rows")  # a print must not break the data stream
    index = batch.schema.get_field_index("country")
    return batch.set_column(index, "country", pc.utf8_upper(pc.utf8_trim_whitespace(batch.column("country"))))


def with_polars(frame):
    return frame.with_columns((pl.col("amount") * 2).alias("double_amount"))


def with_pandas(frame):
    frame["note"] = "seen by pandas"
    return frame


def broken(batch):
    if batch.num_rows:
        raise ValueError("amount cannot be read")
    return batch
'''

JOBS = '''
def refresh(context):
    with open(context.params["target"], "w") as f:
        f.write(f"{context.params['greeting']} {context.ds} {context.logical_date.year} {context.pipeline}")
    print("refreshed", context.ds)


def failing():
    raise RuntimeError("the dashboard is down")
'''


@pytest.fixture
def functions(project: weir.Project) -> weir.Project:
    root = Path(project.path)
    (root / "landing").mkdir()
    (root / "landing/orders.csv").write_text("order_id,country,amount\n1, de ,10.5\n2,us,-1\n3,Fr,7\n")
    (root / "pipelines/orders.yaml").write_text(PIPELINE)
    (root / "cleaning.py").write_text(textwrap.dedent(CLEANING))
    (root / "jobs.py").write_text(textwrap.dedent(JOBS))
    return project


def test_steps_and_a_task_in_python_run_in_the_pipeline(functions: weir.Project) -> None:
    result = functions.run("orders", date="2026-03-25")
    assert result["clean"].rows_read == 3 and result["clean"].rows_written == 2
    rows = functions.table("silver.orders").to_polars().sort("order_id").to_dicts()
    assert rows == [
        {"order_id": 1, "country": "DE", "amount": 10.5, "double_amount": 21.0, "note": "seen by pandas"},
        {"order_id": 3, "country": "FR", "amount": 7.0, "double_amount": 14.0, "note": "seen by pandas"},
    ]
    assert (Path(functions.path) / "report.txt").read_text() == "hello 2026-03-25 2026 orders"
    assert "refreshed 2026-03-25" in (result["refresh"].output or "")


def test_a_failing_step_names_the_step_and_the_exception(functions: weir.Project) -> None:
    path = Path(functions.path) / "pipelines/orders.yaml"
    path.write_text(PIPELINE.replace('"cleaning:normalise"', '"cleaning:broken"'))
    with pytest.raises(weir.DataError) as failed:
        functions.run("orders", date="2026-03-25", tasks=["clean"], no_retries=True)
    message = str(failed.value)
    assert "orders.yaml:6" in message and "cleaning:broken" in message and "amount cannot be read" in message


def test_a_failing_task_keeps_its_traceback_as_the_error(functions: weir.Project) -> None:
    path = Path(functions.path) / "pipelines/orders.yaml"
    path.write_text(PIPELINE.replace('callable: "jobs:refresh", params: {target: report.txt, greeting: hello}',
                                     'callable: "jobs:failing"'))
    with pytest.raises(weir.ExternalError, match="(?s)python jobs:failing.*the dashboard is down"):
        functions.run("orders", date="2026-03-25", no_retries=True)


def test_a_callable_that_is_not_module_function_is_a_config_error(functions: weir.Project) -> None:
    path = Path(functions.path) / "pipelines/orders.yaml"
    path.write_text(PIPELINE.replace('"cleaning:normalise"', '"cleaning.normalise"'))
    with pytest.raises(weir.ConfigError, match="orders.yaml:6.*not `module:function`"):
        functions.validate()


def test_a_table_mode_step_sees_the_whole_input_once(project: weir.Project) -> None:
    root = Path(project.path)
    (root / "weir.yaml").write_text("version: 1\nname: py\nlake:\n  root: lake\ndefaults:\n  batch_rows: 100\n")
    (root / "landing").mkdir()
    lines = "\n".join(f"{i},{(i * 37) % 1000}" for i in range(1000))
    (root / "landing/orders.csv").write_text("order_id,amount\n" + lines + "\n")
    (root / "ranking.py").write_text(textwrap.dedent('''
        import pyarrow as pa

        calls = []

        def ranked(table):
            calls.append(table.num_rows)
            print("called on", table.num_rows, "rows")
            ordered = table.sort_by([("amount", "descending"), ("order_id", "ascending")])
            return ordered.append_column("rank", pa.array(range(1, ordered.num_rows + 1), pa.int64()))
    '''))
    (root / "pipelines/rank.yaml").write_text(textwrap.dedent("""\
        version: 1
        tasks:
          - name: rank
            source: {type: csv, path: landing/orders.csv}
            steps:
              - python: {function: "ranking:ranked", mode: table}
              - filter: "rank <= 3"
            sink: {type: lake, table: gold.top, mode: overwrite}
    """))
    result = project.run("rank", date="2026-03-25")
    assert (result["rank"].rows_read, result["rank"].rows_written) == (1000, 3)
    top = project.table("gold.top").to_polars().sort("rank")
    # The top three of all 1000 rows (each batch of 100 alone would give other ranks).
    assert top["amount"].to_list() == [999, 998, 997] and top["rank"].to_list() == [1, 2, 3]


def test_functions_see_only_the_users_columns_and_rejects_keep_their_lines(project: weir.Project) -> None:
    """A task that can quarantine rows carries each row's file and line in hidden columns: a function is not shown
    them, and a row it keeps in place still names its line when a later check rejects it."""
    root = Path(project.path)
    (root / "landing").mkdir()
    (root / "landing/orders.csv").write_text("order_id,amount\n1,10\n2,\n3,7\n4,\n")
    (root / "steps.py").write_text(textwrap.dedent('''
        import pyarrow.compute as pc

        def tax(batch):
            assert batch.schema.names == ["order_id", "amount"], batch.schema.names
            return batch.append_column("gross", pc.multiply(batch.column("amount"), 1.25))

        def rebuild(frame):
            assert list(frame.columns) == ["order_id", "amount", "gross"], list(frame.columns)
            return frame[["order_id", "amount", "gross"]].copy()
    '''))
    (root / "pipelines/orders.yaml").write_text(textwrap.dedent("""\
        version: 1
        tasks:
          - name: load
            source: {type: csv, path: landing/orders.csv}
            steps:
              - python: "steps:tax"
              - python: {function: "steps:rebuild", input: pandas}
            checks:
              - not_null: {columns: [amount], on_fail: quarantine}
            sink: {type: lake, table: silver.orders, mode: overwrite}
    """))
    result = project.run("orders", date="2026-03-25", no_retries=True)
    assert (result["load"].rows_written, result["load"].rejected_rows) == (2, 2)
    assert "_weir_source_line" not in project.table("silver.orders").to_arrow().schema.names
    rejects = project.sql("SELECT * FROM silver.orders__rejected ORDER BY source_line").to_arrow().to_pylist()
    assert [(json.loads(r["record"])["order_id"], r["source_line"]) for r in rejects] == [(2, 3), (4, 5)]
    assert all(r["source_file"].endswith("landing/orders.csv") for r in rejects)

    # A function that drops rows: which answer row came from which line is unknown, so rejects name none.
    (root / "steps.py").write_text((root / "steps.py").read_text().replace(
        'return frame[["order_id", "amount", "gross"]].copy()', 'return frame[frame["order_id"] != 1]'))
    result = project.run("orders", date="2026-03-25", no_retries=True)
    assert (result["load"].rows_written, result["load"].rejected_rows) == (1, 2)
    rejects = project.sql("SELECT source_line FROM silver.orders__rejected").to_arrow().to_pylist()
    assert rejects == [{"source_line": None}, {"source_line": None}]
