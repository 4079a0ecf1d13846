#!/usr/bin/env bash
# Runs the PostgreSQL extraction benchmark: builds weir in release mode, makes sure bench/.venv has the peers
# (ConnectorX, pandas + SQLAlchemy + psycopg2) and extracts fact_orders from a local, ephemeral PostgreSQL.
# Usage: bench/run-pg.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv "connectorx, sqlalchemy, psycopg2, pandas, pyarrow" "pandas pyarrow connectorx sqlalchemy>=2 psycopg2-binary" "'connectorx', connectorx.__version__, '| pandas', pandas.__version__"
exec python3 pg.py --weir "$WEIR" "$@"
