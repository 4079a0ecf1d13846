#!/usr/bin/env bash
# Runs the scale-out benchmark: builds weir in release mode, makes sure Sail and Apache Spark are installed (the test
# harness's .ci/install-sail and .ci/install-spark) and times the daily sales transforms here, on Sail and on Spark.
# Usage: bench/run-scale-out.sh [--rows N] [--engines local,sail,spark]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
bash ../.ci/install-sail
bash ../.ci/install-spark
exec python3 scale_out.py --weir "$WEIR" "$@"
