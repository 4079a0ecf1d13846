#!/usr/bin/env bash
# Runs the Python package benchmark: builds the extension in release mode with maturin into bench/.venv-python
# (with Polars, deltalake, pyarrow and pandas, the peers), then reads and writes a 10M-row Delta table through weir,
# `deltalake` and Polars, each in a fresh process.
# Usage: bench/run-python.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
peers .venv-python "maturin, polars, deltalake, pyarrow, pandas" \
  "maturin==1.16.0 polars==2.1.0 deltalake==1.6.6 pyarrow==26.0.1 pandas==3.1.1" \
  "'polars', polars.__version__, '| deltalake', deltalake.__version__, '| pyarrow', pyarrow.__version__"
VIRTUAL_ENV="$PWD/.venv-python" .venv-python/bin/maturin develop --release --locked --manifest-path ../python/Cargo.toml
exec .venv-python/bin/python python_package.py "$@"
