#!/usr/bin/env bash
# Runs the data quality benchmark: builds weir in release mode, installs Great Expectations and Soda Core (DuckDB)
# from PyPI into bench/.venv-quality (apart from bench/.venv: they pin their own pandas/duckdb), and compares.
# Usage: bench/run-quality.sh [--rows N] [--repeat K]
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo build --release -p weir --manifest-path ../Cargo.toml
if [ ! -x .venv-quality/bin/python ]; then
  python3 -m venv .venv-quality
  .venv-quality/bin/pip install -q --upgrade pip
  .venv-quality/bin/pip install -q great_expectations soda-core-duckdb pandas pyarrow
fi
.venv-quality/bin/python -c "import great_expectations as gx, soda.scan, pandas, duckdb; print('peers: great_expectations', gx.__version__, '| pandas', pandas.__version__, '| duckdb', duckdb.__version__, '(soda-core-duckdb)')"
exec python3 quality.py --weir "$CARGO_TARGET_DIR/release/weir" "$@"
