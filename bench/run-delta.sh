#!/usr/bin/env bash
# Runs the Delta Lake benchmark: builds weir in release mode, makes sure bench/.venv has the peers (the Python
# deltalake package and Polars) and compares append and merge of the orders.  Usage: bench/run-delta.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv "deltalake, polars" "pandas polars duckdb pyarrow deltalake" "'deltalake', deltalake.__version__, '| polars', polars.__version__"
exec python3 delta.py --weir "$WEIR" "$@"
