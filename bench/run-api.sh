#!/usr/bin/env bash
# Runs the REST API benchmark: builds weir in release mode, makes sure bench/.venv has the peers (requests, pandas,
# dlt) and pulls 200,000 records from a local paginated API.  Usage: bench/run-api.sh [--records N] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv "dlt, requests, pandas, pyarrow" "pandas pyarrow requests dlt[parquet]==1.31.0" "'dlt', dlt.__version__, '| requests', requests.__version__"
exec python3 api.py --weir "$WEIR" "$@"
