#!/usr/bin/env bash
# Runs the batch benchmark: builds weir in release mode, installs the peers (pandas, Polars, DuckDB) from PyPI into
# bench/.venv, generates the data set once and compares all tools on it.  Usage: bench/run.sh [--rows N] [...]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv "pandas, polars, duckdb" "pandas polars duckdb pyarrow deltalake" "'pandas', pandas.__version__, '| polars', polars.__version__, '| duckdb', duckdb.__version__"
exec python3 bench.py --weir "$WEIR" "$@"
