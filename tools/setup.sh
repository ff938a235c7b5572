#!/usr/bin/env bash
# Set up tf-transpile on a fresh Linux machine, then run one job:
#   bash tools/setup.sh example   # convert the bundled example model for TF 1.8
#   bash tools/setup.sh test      # run the whole test suite, real TF 1.x runtimes included
# Installs: this package (non-editable, as users get it), TensorFlow only if
# neither `tensorflow` nor `tensorflow-cpu` is importable, pytest, and
# (for tests) debootstrap, which transpiler/runtimes/provision.py uses to run real TF 1.x.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TF_SPEC=${TF_SPEC:-tensorflow-cpu==2.21.0}

if ! "$PYTHON" -c "import tensorflow" >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q "$TF_SPEC"
fi
"$PYTHON" -m pip install -q --no-build-isolation . 2>/dev/null || "$PYTHON" -m pip install -q .

case "${1:-example}" in
  example)
    out=${2:-/tmp/tf-transpile-example}
    rm -rf "$out"
    tf-transpile examples/half_plus_two_tf214 "$out" --to 1.8
    tf-transpile check "$out" --to 1.8
    ;;
  test)
    "$PYTHON" -m pip install -q "pytest>=7"
    if ! command -v debootstrap >/dev/null 2>&1; then
      apt-get install -y -q debootstrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
    fi
    shift || true
    "$PYTHON" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash tools/setup.sh [example [OUT] | test [PYTEST ARGS]]" >&2
    exit 2
    ;;
esac
