#!/usr/bin/env bash
# Runs the REST API benchmark: builds weir in release mode, makes sure bench/.venv has the peers (requests, pandas,
# dlt) and pulls 200,000 records from a local paginated API.  Usage: bench/run-api.sh [--records N] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo build --release -p weir --manifest-path ../Cargo.toml
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/python -c "import dlt, requests, pandas, pyarrow" 2>/dev/null || .venv/bin/pip install -q pandas pyarrow requests "dlt[parquet]==1.31.0"
.venv/bin/python -c "import dlt, requests; print('peers: dlt', dlt.__version__, '| requests', requests.__version__)"
exec python3 api.py --weir "$CARGO_TARGET_DIR/release/weir" "$@"
