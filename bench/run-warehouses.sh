#!/usr/bin/env bash
# Runs the warehouse load benchmark: builds weir in release mode, installs the emulators the tests use
# (.ci/install-fakesnow, .ci/install-bigquery), the peers into bench/.venv-warehouses (the Snowflake connector's
# `write_pandas`, the BigQuery client's `load_table_from_dataframe`, with pandas and pyarrow), and loads the same
# Parquet file into both emulators with each tool.
# Usage: bench/run-warehouses.sh [--rows N]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
bash ../.ci/install-fakesnow
bash ../.ci/install-bigquery
peers .venv-warehouses "snowflake.connector.pandas_tools, google.cloud.bigquery, pandas, pyarrow, numpy" \
  "snowflake-connector-python[pandas]==4.8.1 google-cloud-bigquery==3.47.0 pandas pyarrow numpy" \
  "'snowflake-connector-python', snowflake.connector.__version__, '| google-cloud-bigquery', google.cloud.bigquery.__version__, '| pandas', pandas.__version__"
exec python3 warehouses.py --weir "$WEIR" "$@"
