"""Reading the lake: every library that speaks the Arrow PyCapsule interface gets the same rows."""

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import weir


def orders(n: int = 1000) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array(range(n), pa.int64()),
            "country": pa.array(["DE", "US", "FR", None][i % 4] for i in range(n)),
            "amount": pa.array([i * 0.25 for i in range(n)], pa.float64()),
        }
    )


@pytest.fixture
def lake(project: weir.Project) -> weir.Project:
    project.write("silver.orders", orders(), mode="overwrite", format="delta")
    return project


def test_pyarrow_polars_pandas_and_duckdb_read_the_same_rows(lake: weir.Project) -> None:
    expected = orders().sort_by("order_id")
    as_arrow = lake.table("silver.orders").to_arrow().sort_by("order_id")
    assert as_arrow.equals(expected)
    assert lake.table("silver.orders").to_polars().sort("order_id").equals(pl.from_arrow(expected))
    pd.testing.assert_frame_equal(
        lake.table("silver.orders").to_pandas().sort_values("order_id").reset_index(drop=True),
        expected.to_pandas(),
    )
    # DuckDB reads the stream by its capsule, as it reads any Arrow object in scope.
    result = lake.table("silver.orders")
    total = duckdb.sql("SELECT count(*), sum(amount) FROM result").fetchall()[0]
    assert total == (1000, sum(i * 0.25 for i in range(1000)))
    # And the PyCapsule interface itself, with no weir method in between.
    assert pa.table(lake.sql("SELECT * FROM silver.orders")).num_rows == 1000
    assert pl.DataFrame(lake.sql("SELECT * FROM silver.orders")).height == 1000


def test_table_takes_columns_where_and_version(lake: weir.Project) -> None:
    lake.write("silver.orders", orders(10), mode="overwrite", format="delta")
    latest = lake.table("silver.orders", columns=["order_id", "country"], where="country = 'DE'").to_arrow()
    assert latest.column_names == ["order_id", "country"]
    assert sorted(latest.column("order_id").to_pylist()) == [0, 4, 8]
    first = lake.table("silver.orders", version=0, where="order_id >= 990").to_arrow()
    assert first.num_rows == 10
    assert lake.sql("SELECT count(*) AS n FROM silver.orders", as_of=0).to_arrow().column("n")[0].as_py() == 1000


def test_results_stream_batch_by_batch(lake: weir.Project) -> None:
    batches = list(lake.sql("SELECT * FROM silver.orders"))
    assert sum(b.num_rows for b in batches) == 1000
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert lake.table("silver.orders").schema.names == ["order_id", "country", "amount"]


def test_errors_are_typed_and_name_what_is_wrong(lake: weir.Project) -> None:
    with pytest.raises(weir.DataError, match="no_such_column"):
        lake.sql("SELECT no_such_column FROM silver.orders").to_arrow()
    with pytest.raises(weir.DataError, match="silver.nope"):
        lake.table("silver.nope").to_arrow()
    with pytest.raises(weir.ConfigError, match="zone.table"):
        lake.table("orders")
    assert issubclass(weir.DataError, weir.WeirError) and issubclass(weir.WeirError, Exception)
