#!/usr/bin/env bash
# Mythril (SMT-based symbolic EVM) in a virtualenv of its own: its pinned dependencies
# clash with chainml's.  Used by chainml.ledger.audit.symbolic.
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${1:-.venv-mythril}
MYTHRIL_VERSION=0.24.8
if [ -x "$VENV/bin/myth" ] && "$VENV/bin/myth" version 2>/dev/null | grep -q "v$MYTHRIL_VERSION"; then
  exit 0
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "mythril==$MYTHRIL_VERSION"
"$VENV/bin/myth" version
