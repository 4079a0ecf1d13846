# Shared by the bench/run-*.sh scripts: build weir in release mode, and make sure a virtualenv has the peers.
# Sourced from bench/ after `set -euo pipefail`.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
WEIR="$CARGO_TARGET_DIR/release/weir"

build_weir() {
  cargo build --release -p weir --manifest-path ../Cargo.toml
}

# peers VENV "import a, b" "pip requirement..." "python expression printing the versions"
peers() {
  local venv="$1" imports="$2" requirements="$3" versions="$4"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
  fi
  # shellcheck disable=SC2086
  "$venv/bin/python" -c "import $imports" 2>/dev/null || "$venv/bin/pip" install -q $requirements
  "$venv/bin/python" -c "import $imports; print('peers:', $versions)"
}
