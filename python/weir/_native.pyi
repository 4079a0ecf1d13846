"""Type stubs of weir's extension module (the Python API is `weir.Project`; these are its building blocks)."""

from typing import Any

__version__: str

class WeirError(Exception):
    """Base class of every error weir raises."""

class ConfigError(WeirError):
    """Invalid configuration or usage: weir.yaml, a pipeline, a table name, an argument (the CLI's exit code 2)."""

class DataError(WeirError):
    """Data that cannot be read, converted or committed as declared, a failed check, or SQL that does not run."""

class ExternalError(WeirError):
    """A system outside weir failed: a database, object storage, an HTTP service, a shell command, a timeout."""

def cli(argv: list[str]) -> int: ...
def validate(project: str) -> str: ...
def run(
    project: str,
    pipeline: str,
    date: str | None = None,
    tasks: list[str] = ...,
    full_refresh: bool = False,
    no_retries: bool = False,
) -> str: ...
def trigger(project: str, pipeline: str, date: str | None = None, wait: bool = False) -> None: ...
def backfill(
    project: str,
    pipeline: str,
    start: str,
    end: str,
    reprocess: str = "none",
    max_active: int = 2,
    dry_run: bool = False,
) -> None: ...
def stream(
    project: str,
    file: str,
    until_idle: str | None = None,
    max_events: int | None = None,
    instance: str | None = None,
) -> str: ...
def query(project: str, sql: str, as_of: str | None = None) -> Any:
    """An Arrow stream (`__arrow_c_stream__`) of the query's rows."""

def write(project: str, data: Any, sink: str, checks: str) -> str: ...
