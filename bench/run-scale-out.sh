#!/usr/bin/env bash
# Runs the scale-out benchmark: builds weir and the Ballista scheduler/executor (weir-test-ballista) in release mode,
# makes sure Sail and Apache Spark are installed (the test harness's .ci/install-sail and .ci/install-spark) and times
# the daily sales transforms here, on Sail, on Spark and on Ballista.
# Usage: bench/run-scale-out.sh [--rows N] [--engines local,sail,spark,ballista]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
# weir and the Ballista scheduler and executors in one build: one feature resolution, one DataFusion.
cargo build --release -p weir -p weir-test-ballista --manifest-path ../Cargo.toml
bash ../.ci/install-sail
bash ../.ci/install-spark
exec python3 scale_out.py --weir "$WEIR" "$@"
