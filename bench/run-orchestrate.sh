#!/usr/bin/env bash
# Runs the orchestration benchmark: builds weir in release mode, makes sure bench/.venv-prefect has Prefect 3 and
# bench/.venv-airflow has Apache Airflow 2.10 (separate: their pins conflict), then times the same DAGs on each
# (Airflow twice: `airflow dags test`, and `airflow standalone` with its scheduler).
# Usage: bench/run-orchestrate.sh [--tasks N] [--peer-tasks M]
set -euo pipefail
cd "$(dirname "$0")"
. ./lib.sh
build_weir
peers .venv-prefect "prefect" "prefect>=3,<4" "'prefect', prefect.__version__"
peers .venv-airflow "airflow" "apache-airflow==2.10.5" "'airflow', airflow.__version__"
exec python3 orchestrate.py --weir "$WEIR" --prefect .venv-prefect/bin/python --airflow .venv-airflow/bin "$@"
