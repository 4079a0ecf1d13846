#!/usr/bin/env bash
# Runs the Delta Lake benchmark: builds weir in release mode, makes sure bench/.venv has the peers (the Python
# deltalake package and Polars) and compares append and merge of the orders.  Usage: bench/run-delta.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo build --release -p weir --manifest-path ../Cargo.toml
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/python -c "import deltalake, polars" 2>/dev/null || .venv/bin/pip install -q pandas polars duckdb pyarrow deltalake
.venv/bin/python -c "import deltalake, polars; print('peers: deltalake', deltalake.__version__, '| polars', polars.__version__)"
exec python3 delta.py --weir "$CARGO_TARGET_DIR/release/weir" "$@"
