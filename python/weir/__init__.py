"""weir for Python: a weir project's lake as Arrow streams, and its pipelines run from Python.

    import weir

    project = weir.Project("my-project")
    project.validate()
    result = project.run("daily_sales", date="2026-03-25")
    frame = project.table("silver.orders", columns=["order_id", "amount"]).to_polars()
    project.write("raw.refunds", refunds_frame, mode="merge", keys=["refund_id"])

The engine is the `weir` binary's own (a Rust extension module): data crosses into Python through the Arrow
PyCapsule interface, so pyarrow, Polars, pandas and DuckDB read it without a copy, batch by batch.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from weir import _native
from weir._native import ConfigError, DataError, ExternalError, WeirError

__version__ = _native.__version__

# `python:` steps and tasks run their functions in worker processes: on this interpreter, unless told otherwise.
os.environ.setdefault("WEIR_PYTHON", sys.executable)
__all__ = [
    "Project",
    "Result",
    "RunResult",
    "TaskResult",
    "CheckResult",
    "StreamResult",
    "WeirError",
    "ConfigError",
    "DataError",
    "ExternalError",
]

_WRITE_MODES = ("append", "replace_partitions", "overwrite", "merge")


@dataclass(frozen=True)
class CheckResult:
    """One data quality check of a task: `status` is passed, warned, failed or quarantined."""

    name: str
    kind: str
    line: int
    status: str
    rows_checked: int
    failing_rows: int
    observed: str
    sample: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TaskResult:
    """What one task did: rows read and written, the table and its Delta version, checks and rejects."""

    task: str
    table: str
    rows_read: int
    rows_written: int
    bytes_written: int
    files: int
    partitions: list[str]
    delta_version: int | None
    seconds: float
    checks: list[CheckResult]
    #: Rejected rows (or values) per rule: {"rule": ..., "action": "row_quarantined" | ..., "rows": n}.
    rejected: list[dict[str, Any]]
    rejects_table: str | None
    schema_changes: list[str]
    schema_version: int | None
    #: For a merge: {"inserted": n, "updated": n, "deleted": n}.
    merged: dict[str, int] | None
    #: Nothing was written: this interval's append was committed already.
    skipped: bool
    #: What a shell task printed (its tail).
    output: str | None

    @classmethod
    def _from_json(cls, data: Mapping[str, Any]) -> "TaskResult":
        values = dict(data)
        values["checks"] = [CheckResult(**c) for c in data["checks"]]
        return cls(**values)

    @property
    def rejected_rows(self) -> int:
        """Rows set aside into the table's quarantine (`<table>__rejected`)."""
        return sum(r["rows"] for r in self.rejected if r["action"] == "row_quarantined")


@dataclass(frozen=True)
class RunResult:
    """The tasks a pipeline run ran, in the order they ran."""

    pipeline: str
    date: str | None
    tasks: list[TaskResult]

    def __getitem__(self, task: str) -> TaskResult:
        for t in self.tasks:
            if t.task == task:
                return t
        raise KeyError(f"the run has no task `{task}` (it ran: {', '.join(t.task for t in self.tasks)})")

    @property
    def rows_written(self) -> int:
        return sum(t.rows_written for t in self.tasks)


@dataclass(frozen=True)
class StreamResult:
    """What a stream run did: events read, decisions by kind, late and invalid events, matches per rule, and the
    rows each output took."""

    stream: str
    events: int
    #: Events decided per decision: {"approve": n, "hold": n, "escalate": n}.
    decisions: dict[str, int]
    late: int
    invalid: int
    #: Per rule: {"rule": name, "matched": events whose `when` held, "decided": events it decided}.
    rules: list[dict[str, Any]]
    #: Rows (or messages) per output, named as in the summary (`alerts -> delta fraud.alerts`).
    written: dict[str, int]
    #: Events read again after a restart to rebuild window state (not decided twice).
    replayed: int = 0
    #: The summary `weir stream` prints.
    summary: str = ""

    @property
    def alerts(self) -> int:
        return self.decisions.get("hold", 0) + self.decisions.get("escalate", 0)


class Result:
    """Rows of a query or a table as an Arrow stream: hand it to any library that reads the Arrow PyCapsule
    interface (`pyarrow.table(result)`, `polars.DataFrame(result)`, `duckdb.sql("... FROM result")`), or convert
    with `to_arrow`, `to_polars`, `to_pandas`, or iterate its batches. It can be read once: the rows are computed as
    they are read, batch by batch, never all held by weir."""

    def __init__(self, stream: Any):
        self._stream = stream

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._stream.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        return self._stream.__arrow_c_schema__()

    @property
    def schema(self) -> Any:
        """The columns, as a pyarrow schema."""
        import pyarrow

        return pyarrow.schema(self._stream)

    def to_reader(self) -> Any:
        """A `pyarrow.RecordBatchReader`: batches one at a time. Text and binary columns come as pyarrow's
        `string` and `binary` (weir's engine reads them as views, which Polars and DuckDB take as they are, but not
        every pyarrow compute function does)."""
        import pyarrow

        reader = pyarrow.RecordBatchReader.from_stream(self)
        plain = pyarrow.schema([f.with_type(_plain_type(f.type)) for f in reader.schema])
        if plain == reader.schema:
            return reader
        return pyarrow.RecordBatchReader.from_batches(plain, (b.cast(plain) for b in reader))

    def __iter__(self) -> Iterator[Any]:
        """The rows as `pyarrow.RecordBatch`es, one batch at a time."""
        return iter(self.to_reader())

    def to_arrow(self) -> Any:
        """A `pyarrow.Table` (its chunks are weir's batches, not copied)."""
        return self.to_reader().read_all()

    def to_polars(self) -> Any:
        """A Polars DataFrame, built from the batches as they arrive."""
        import polars

        return polars.DataFrame(self)

    def to_pandas(self, **kwargs: Any) -> Any:
        """A pandas DataFrame (through pyarrow; keyword arguments go to `pyarrow.Table.to_pandas`)."""
        return self.to_arrow().to_pandas(**kwargs)


def _plain_type(arrow_type: Any) -> Any:
    import pyarrow

    if arrow_type == pyarrow.string_view():
        return pyarrow.string()
    if arrow_type == pyarrow.binary_view():
        return pyarrow.binary()
    return arrow_type


def _arrow_stream(data: Any) -> Any:
    """`data` as an object with `__arrow_c_stream__`: Polars, pyarrow and pandas (2.2+) frames have it; older pandas
    and other tabular objects go through pyarrow."""
    if hasattr(data, "__arrow_c_stream__"):
        return data
    try:
        import pyarrow
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ConfigError(
            f"write: {type(data).__name__} has no Arrow stream (__arrow_c_stream__), and pyarrow is not installed"
            " to convert it"
        ) from e
    if type(data).__module__.startswith("pandas"):
        return pyarrow.Table.from_pandas(data, preserve_index=False)
    try:
        return pyarrow.table(data)
    except (TypeError, ValueError, pyarrow.ArrowInvalid) as e:
        raise ConfigError(f"write: cannot read a {type(data).__name__} as Arrow data: {e}") from e


class Project:
    """A weir project: the folder that holds weir.yaml, its pipelines, models and lake."""

    def __init__(self, path: str | os.PathLike[str] = "."):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"weir.Project({self.path!r})"

    def validate(self) -> str:
        """Checks weir.yaml, every pipeline, model and stream file. Returns what is valid; raises `ConfigError`
        listing every problem with its file and line."""
        return _native.validate(self.path)

    def run(
        self,
        pipeline: str,
        date: str | None = None,
        tasks: Sequence[str] = (),
        full_refresh: bool = False,
        no_retries: bool = False,
    ) -> RunResult:
        """Runs a pipeline for one interval (`date`: YYYY-MM-DD, or YYYY-MM-DDTHH:MM for a sub-daily schedule;
        default: the newest ended interval), its tasks in dependency order, as `weir run` does. Raises the first
        failed task's error after the independent tasks ran."""
        reports = json.loads(
            _native.run(self.path, pipeline, date, list(tasks), full_refresh, no_retries)
        )
        return RunResult(pipeline, date, [TaskResult._from_json(r) for r in reports])

    def trigger(self, pipeline: str, date: str | None = None, wait: bool = False) -> None:
        """Queues a manual run in the metadata store for `weir serve` to run (or runs it here with `wait`)."""
        _native.trigger(self.path, pipeline, date, wait)

    def backfill(
        self,
        pipeline: str,
        start: str,
        end: str,
        reprocess: str = "none",
        max_active: int = 2,
        dry_run: bool = False,
    ) -> None:
        """Runs the pipeline for every date from `start` to `end` (inclusive) here, as `weir backfill` does;
        `reprocess`: none, failed or all (dates that already have a run)."""
        _native.backfill(self.path, pipeline, start, end, reprocess, max_active, dry_run)

    def stream(
        self,
        file: str | os.PathLike[str],
        until_idle: str | None = None,
        max_events: int | None = None,
        instance: str | None = None,
    ) -> StreamResult:
        """Runs a stream file (`streams/fraud.yaml`, relative to the project) as `weir stream` does, until its
        source ends (a file), `max_events` events, no event for `until_idle` (`30s`), or Ctrl-C; each stop
        finishes the batch, commits and checkpoints, so the next call resumes where this one stopped."""
        figures = json.loads(_native.stream(self.path, os.fspath(file), until_idle, max_events, instance))
        return StreamResult(**figures)

    def sql(self, query: str, as_of: str | int | None = None) -> Result:
        """Runs SQL over the lake (tables are `zone.table`); `as_of` reads Delta tables at a version (3) or time
        ("2026-03-25T10:00:00Z")."""
        return Result(_native.query(self.path, query, None if as_of is None else str(as_of)))

    def table(
        self,
        name: str,
        version: int | None = None,
        columns: Sequence[str] | None = None,
        where: str | None = None,
    ) -> Result:
        """A lake table's rows (`silver.orders`), at a Delta `version`, only `columns`, filtered by a SQL `where`."""
        zone, sep, table = name.partition(".")
        if not sep or not zone or not table or "." in table:
            raise ConfigError(f"table `{name}`: name it as zone.table (raw.orders, silver.orders)")
        select = "*" if columns is None else ", ".join(_quote(c) for c in columns)
        if columns is not None and not columns:
            raise ConfigError(f"table `{name}`: columns is empty; leave it out to read every column")
        query = f"SELECT {select} FROM {_quote(zone)}.{_quote(table)}"
        if where:
            query += f" WHERE {where}"
        return Result(_native.query(self.path, query, None if version is None else str(version)))

    def write(
        self,
        table: str,
        data: Any,
        mode: str = "append",
        keys: Sequence[str] | None = None,
        partition_by: Sequence[str] | None = None,
        partition: str | None = None,
        format: str | None = None,
        contract: str | None = None,
        checks: Sequence[Mapping[str, Any]] = (),
        **sink: Any,
    ) -> TaskResult:
        """Writes `data` (a Polars, pandas or pyarrow frame, a pyarrow reader, anything with `__arrow_c_stream__`)
        to a lake table with a pipeline lake sink's guarantees: the schema `contract`, `checks` (as in a pipeline,
        e.g. `{"not_null": ["id"], "on_fail": "quarantine"}`), the quarantine, one atomic commit.

        `mode`: append, replace_partitions, overwrite or merge (on `keys`, Delta); `format`: parquet or delta
        (default: the zone's); other keyword arguments are further lake sink settings (`delete_when`, ...)."""
        if mode not in _WRITE_MODES:
            raise ConfigError(f"write: mode `{mode}` is not one of {', '.join(_WRITE_MODES)}")
        block: dict[str, Any] = {"type": "lake", "table": table, "mode": mode}
        for key, value in (
            ("keys", keys),
            ("partition_by", partition_by),
            ("partition", partition),
            ("format", format),
            ("contract", contract),
        ):
            if value is not None:
                block[key] = list(value) if isinstance(value, (list, tuple)) else value
        block.update(sink)
        report = _native.write(self.path, _arrow_stream(data), json.dumps(block), json.dumps(list(checks)))
        return TaskResult._from_json(json.loads(report)[0])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
