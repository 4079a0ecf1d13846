#!/usr/bin/env bash
# Runs the batch benchmark: builds weir in release mode, installs the peers (pandas, Polars, DuckDB) from PyPI into
# bench/.venv, generates the data set once and compares all tools on it.  Usage: bench/run.sh [--rows N] [...]
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo build --release -p weir --manifest-path ../Cargo.toml
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q pandas polars duckdb pyarrow deltalake
fi
.venv/bin/python -c "import pandas, polars, duckdb; print('peers: pandas', pandas.__version__, '| polars', polars.__version__, '| duckdb', duckdb.__version__)"
exec python3 bench.py --weir "$CARGO_TARGET_DIR/release/weir" "$@"
