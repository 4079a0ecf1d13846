#!/usr/bin/env bash
# Runs the data quality benchmark: builds weir in release mode, installs Great Expectations and Soda Core (DuckDB)
# from PyPI into bench/.venv-quality (apart from bench/.venv: they pin their own pandas/duckdb), and compares.
# Usage: bench/run-quality.sh [--rows N] [--repeat K]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv-quality "great_expectations as gx, soda.scan, pandas, duckdb" "great_expectations soda-core-duckdb pandas pyarrow" "'great_expectations', gx.__version__, '| pandas', pandas.__version__, '| duckdb', duckdb.__version__, '(soda-core-duckdb)'"
exec python3 quality.py --weir "$WEIR" "$@"
