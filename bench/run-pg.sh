#!/usr/bin/env bash
# Runs the PostgreSQL extraction benchmark: builds weir in release mode, makes sure bench/.venv has the peers
# (ConnectorX, pandas + SQLAlchemy + psycopg2) and extracts fact_orders from a local, ephemeral PostgreSQL.
# Usage: bench/run-pg.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
cargo build --release -p weir --manifest-path ../Cargo.toml
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
.venv/bin/python -c "import connectorx, sqlalchemy, psycopg2, pandas, pyarrow" 2>/dev/null || .venv/bin/pip install -q pandas pyarrow connectorx "sqlalchemy>=2" psycopg2-binary
.venv/bin/python -c "import connectorx, pandas; print('peers: connectorx', connectorx.__version__, '| pandas', pandas.__version__)"
exec python3 pg.py --weir "$CARGO_TARGET_DIR/release/weir" "$@"
