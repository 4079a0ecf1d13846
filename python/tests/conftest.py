"""Fixtures: an empty project (weir.yaml and a local lake) and the demo's daily sales project with one day landed."""

import subprocess
import sys
from pathlib import Path

import pytest

import weir


@pytest.fixture
def project(tmp_path: Path) -> weir.Project:
    (tmp_path / "weir.yaml").write_text("version: 1\nname: py\nlake:\n  root: lake\n")
    (tmp_path / "pipelines").mkdir()
    return weir.Project(tmp_path)


@pytest.fixture(scope="session")
def sales_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`weir demo --generate-only`: the daily sales project with two days of messy orders, through the console
    script of the installed package."""
    directory = tmp_path_factory.mktemp("sales") / "demo"
    subprocess.run(
        [sys.executable, "-m", "weir._cli", "demo", "--dir", str(directory), "--rows", "20000", "--days", "2",
         "--generate-only", "--fraud-events", "0"],
        check=True,
    )
    return directory


@pytest.fixture
def sales(sales_landing: Path, tmp_path: Path) -> weir.Project:
    """A fresh copy of the landed project per test."""
    import shutil

    copy = tmp_path / "sales"
    shutil.copytree(sales_landing, copy)
    return weir.Project(copy)


def _server(variable: str, what: str) -> str:
    """A server the Rust harness started for this run (crates/weir/tests/python.rs); without it, the test is skipped
    when pytest runs alone and fails when the harness said it started one (WEIR_TEST_SERVERS_REQUIRED)."""
    import os

    value = os.environ.get(variable)
    if value:
        return value
    message = f"{variable} is not set: {what} is started by `cargo test --workspace --test python`"
    if os.environ.get("WEIR_TEST_SERVERS_REQUIRED"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> str:
    """postgres://user@127.0.0.1:port/db of a real PostgreSQL server."""
    return _server("WEIR_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture
def kafka_bootstrap() -> str:
    """host:port of a real Apache Kafka broker (KRaft mode)."""
    return _server("WEIR_TEST_KAFKA_BOOTSTRAP", "Apache Kafka")
