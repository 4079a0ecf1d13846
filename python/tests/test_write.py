"""Writing to the lake from Python: any Arrow-stream object, every mode, and a pipeline sink's contract, checks and
quarantine."""

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import weir


def count(project: weir.Project, table: str) -> int:
    return project.sql(f"SELECT count(*) AS n FROM {table}").to_arrow().column("n")[0].as_py()


def test_polars_pandas_pyarrow_and_a_batch_generator_are_written(project: weir.Project) -> None:
    project.write("raw.events", pl.DataFrame({"id": [1, 2], "kind": ["a", "b"]}), format="delta")
    project.write("raw.events", pd.DataFrame({"id": [3], "kind": ["c"]}), format="delta")
    project.write("raw.events", pa.table({"id": [4], "kind": ["d"]}), format="delta")
    schema = pa.schema([("id", pa.int64()), ("kind", pa.string())])

    def batches():
        for start in range(5, 105, 10):
            yield pa.record_batch([pa.array(range(start, start + 10)), pa.array(["e"] * 10)], schema=schema)

    result = project.write("raw.events", pa.RecordBatchReader.from_batches(schema, batches()), format="delta")
    assert result.rows_written == 100 and result.table == "raw.events"
    ids = sorted(project.table("raw.events", columns=["id"]).to_arrow().column("id").to_pylist())
    assert ids == list(range(1, 105))


def test_modes_rerun_as_documented(project: weir.Project) -> None:
    first = pl.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"]})
    project.write("silver.t", first, mode="overwrite", format="delta")
    project.write("silver.t", first, mode="overwrite", format="delta")
    assert count(project, "silver.t") == 3
    project.write("silver.t", first, mode="append", format="delta")
    assert count(project, "silver.t") == 6
    project.write("silver.t", first, mode="overwrite", format="delta")
    merged = project.write(
        "silver.t", pl.DataFrame({"id": [3, 4], "v": ["C", "d"]}), mode="merge", keys=["id"], format="delta"
    )
    assert merged.merged == {"inserted": 1, "updated": 1, "deleted": 0}
    again = project.write(
        "silver.t", pl.DataFrame({"id": [3, 4], "v": ["C", "d"]}), mode="merge", keys=["id"], format="delta"
    )
    assert again.merged is not None and again.merged["inserted"] == 0
    rows = project.table("silver.t").to_polars().sort("id")
    assert rows.to_dicts() == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "C"}, {"id": 4, "v": "d"}]
    assert merged.delta_version is not None and again.delta_version == merged.delta_version + 1


def test_replace_partitions_replaces_only_the_days_written(project: weir.Project) -> None:
    days = pl.DataFrame({"day": ["2026-03-24", "2026-03-25"], "n": [1, 2]})
    project.write("silver.days", days, mode="replace_partitions", partition_by=["day"], format="delta")
    project.write(
        "silver.days",
        pl.DataFrame({"day": ["2026-03-25"], "n": [20]}),
        mode="replace_partitions",
        partition_by=["day"],
        format="delta",
    )
    rows = project.table("silver.days").to_polars().sort("day")
    assert rows.select("n").to_series().to_list() == [1, 20]


def test_checks_quarantine_and_fail_as_in_a_pipeline(project: weir.Project) -> None:
    frame = pl.DataFrame({"id": [1, None, 3], "amount": [1.0, 2.0, -5.0]})
    result = project.write(
        "silver.pay",
        frame,
        mode="overwrite",
        format="delta",
        checks=[{"not_null": {"columns": ["id"], "on_fail": "quarantine"}}],
    )
    assert result.rows_written == 2 and result.rejected_rows == 1
    assert [c.status for c in result.checks] == ["quarantined"]
    assert count(project, "silver.pay__rejected") == 1

    with pytest.raises(weir.DataError, match="nothing was committed") as failed:
        project.write(
            "silver.pay", frame, mode="overwrite", format="delta", checks=[{"range": {"column": "amount", "min": 0}}]
        )
    assert "range" in str(failed.value) and "amount" in str(failed.value)
    assert count(project, "silver.pay") == 2  # the failed write left the table as it was


def test_a_frozen_contract_refuses_a_new_column(project: weir.Project) -> None:
    project.write("silver.c", pl.DataFrame({"id": [1]}), mode="overwrite", format="delta", contract="freeze")
    with pytest.raises(weir.DataError, match="extra"):
        project.write(
            "silver.c", pl.DataFrame({"id": [2], "extra": ["x"]}), mode="overwrite", format="delta", contract="freeze"
        )
    assert count(project, "silver.c") == 1


def test_bad_arguments_raise_config_errors_naming_them(project: weir.Project) -> None:
    with pytest.raises(weir.ConfigError, match="mode `upsert`"):
        project.write("silver.x", pl.DataFrame({"id": [1]}), mode="upsert")
    with pytest.raises(weir.ConfigError, match="keys"):
        project.write("silver.x", pl.DataFrame({"id": [1]}), mode="merge", format="delta")
    with pytest.raises(weir.ConfigError, match="wrong_setting"):
        project.write("silver.x", pl.DataFrame({"id": [1]}), wrong_setting=1)
    with pytest.raises(weir.ConfigError, match="weir.yaml"):
        weir.Project("/nonexistent").write("silver.x", pl.DataFrame({"id": [1]}))


def test_errors_name_the_write_call_not_an_internal_pipeline(project: weir.Project) -> None:
    frame = pl.DataFrame({"id": [1, 2]})
    with pytest.raises(weir.ConfigError) as bad_format:
        project.write("silver.x", frame, format="csv")
    with pytest.raises(weir.ConfigError) as bad_name:
        project.write("orders", frame)
    with pytest.raises(weir.DataError) as bad_check:
        project.write("silver.x", frame, checks=[{"not_null": {"columns": ["missing"]}}])
    for failed in (bad_format, bad_name, bad_check):
        message = str(failed.value)
        assert message.startswith("write(") and "write-0" not in message and ":1:" not in message, message
    assert 'write("silver.x"): unknown value `csv` for table format' in str(bad_format.value)
    assert "table name `orders` must be `zone.table`" in str(bad_name.value)
    assert "no column `missing`" in str(bad_check.value)
