#!/usr/bin/env bash
# Set up tf-transpile on a fresh Linux machine, then run one job:
#   bash tools/setup.sh example [OUT]   # convert the bundled example model for TF 1.8 (default OUT: /tmp/tf-transpile-example)
#   bash tools/setup.sh test [ARGS]     # run the whole test suite, real TF releases included
# Installs into a virtual environment of its own (.venv in the clone, or $TF_TRANSPILE_VENV), unless one
# is already active (a venv or a conda env): this package (non-editable, as users get it), TensorFlow
# only if neither `tensorflow` nor `tensorflow-cpu` is importable (the venv sees the system's packages),
# pytest, and (for tests, needs root) debootstrap, which transpiler/runtimes/provision.py uses to run
# real TF releases (1.4, 1.8, 1.12, 1.15 under Python 2.7 and 2.9 under Python 3.9 for the tests; about 4 GB
# with their downloads), cached in $TF_TRANSPILE_RUNTIMES (default /var/cache/tf-transpile).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TF_SPEC=${TF_SPEC:-tensorflow-cpu==2.21.0}
VENV=${TF_TRANSPILE_VENV:-.venv}

say() { echo "setup: $*" >&2; }
install_debootstrap() {
  say "installing debootstrap (needs root)"
  apt-get install -y -q debootstrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
}

if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null; then
      say "python3 has no venv module; installing python3-venv (needs root)"
      apt-get install -y -q python3-venv >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
      rm -rf "$VENV"
      "$PYTHON" -m venv --system-site-packages "$VENV"
    fi
    say "created the virtual environment $VENV"
  fi
  PYTHON="$VENV/bin/python"
fi
say "using $PYTHON"

if ! "$PYTHON" -c "import tensorflow" >/dev/null 2>&1; then
  say "installing $TF_SPEC"
  "$PYTHON" -m pip install -q "$TF_SPEC"
fi
"$PYTHON" -m pip install -q --no-build-isolation . 2>/dev/null || "$PYTHON" -m pip install -q .
BIN=$(dirname "$PYTHON")

case "${1:-example}" in
  example)
    out=${2:-/tmp/tf-transpile-example}
    if [ -z "${2:-}" ]; then rm -rf "$out"; fi   # the default OUT is ours; a given OUT is never deleted
    "$BIN/tf-transpile" examples/half_plus_two_tf214 "$out" --to 1.8
    "$BIN/tf-transpile" check "$out" --to 1.8
    # the numbers, in real TF 1.8: provision that release once (root and debootstrap), then verify
    if ! "$BIN/tf-transpile" runtimes list 2>/dev/null | grep -q "1.8.0 *installed" && [ "$(id -u)" = 0 ]; then
      command -v debootstrap >/dev/null 2>&1 || install_debootstrap
      say "installing real TF 1.8 for verify (once; about 0.5 GB, a few minutes)"
      "$BIN/tf-transpile" runtimes install 1.8 || say "could not install TF 1.8 (see above); skipping verify"
    fi
    if "$BIN/tf-transpile" runtimes list 2>/dev/null | grep -q "1.8.0 *installed"; then
      "$BIN/tf-transpile" verify examples/half_plus_two_tf214 "$out" --release 1.8
    else
      say "to see real TF 1.8 compute the same numbers (needs root): $BIN/tf-transpile runtimes install 1.8" \
          "&& $BIN/tf-transpile verify examples/half_plus_two_tf214 $out --release 1.8"
    fi
    say "the converted model is in $out; tf-transpile is $BIN/tf-transpile"
    ;;
  test)
    "$PYTHON" -m pip install -q "pytest>=7"
    command -v debootstrap >/dev/null 2>&1 || install_debootstrap
    # The tests run `python -m transpiler` from this clone hundreds of times; with PYTHONDONTWRITEBYTECODE
    # set (as on CI machines) each run would compile every module again (~0.15 s CPU each).
    "$PYTHON" -m compileall -q transpiler tests >/dev/null
    shift || true
    "$PYTHON" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash tools/setup.sh [example [OUT] | test [PYTEST ARGS]]" >&2
    exit 2
    ;;
esac
