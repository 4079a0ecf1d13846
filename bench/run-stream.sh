#!/usr/bin/env bash
# Runs the streaming benchmark: builds weir in release mode, makes sure bench/.venv-stream has the peers
# (kafka-python, the handbook's client, and confluent-kafka) and runs bench/stream.py, which starts a real Apache
# Kafka broker (KRaft mode; .ci/install-kafka fetches it from Maven Central once, Java 17 runs it).
# Usage: bench/run-stream.sh [--events 1000000] [--rate 50000] [--rate-seconds 10] [--tools weir,confluent-kafka,kafka-python]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv-stream "kafka, confluent_kafka" "kafka-python==2.3.3 confluent-kafka==2.16.1" "'kafka-python', kafka.__version__, '| confluent-kafka', confluent_kafka.version()[0]"
exec python3 stream.py --weir "$WEIR" --python "$PWD/.venv-stream/bin/python" "$@"
