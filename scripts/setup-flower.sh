#!/usr/bin/env bash
# Flower (flwr), only for the secure-aggregation benchmark's same-run comparison with its
# SecAgg+: a virtualenv of its own, so its dependencies never meet chainml's.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${1:-.venv-flower}
FLOWER_VERSION=1.42.0
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import flwr, sys; sys.exit(flwr.__version__ != '$FLOWER_VERSION')" 2>/dev/null; then
  exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "flwr==$FLOWER_VERSION"
