#!/usr/bin/env bash
# Creates .venv and installs the pinned requirements — the runtime lock requirements.txt and
# the development lock requirements-dev.txt — this checkout as an editable Airflow provider
# (pyproject.toml: Airflow finds its connection types through the entry point, the code stays
# plugins/ident_hooks) and the development package ident_dev editable beside it
# (devtools/pyproject.toml: run command, demo, simulators), whenever one of those files
# changed since the last install.
# Sourced by run.sh and test.sh; needs only Python 3.11, pip and git.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha256"
locks=("$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")
wanted="$(cat "${locks[@]}" "$ROOT/pyproject.toml" "$ROOT/devtools/pyproject.toml" \
  | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "installing pinned requirements into $VENV"
  # uv installs the same pins as plain pip, several times faster; pip is the fallback.
  if "$VENV/bin/python" -m pip install -q --disable-pip-version-check uv==0.13.9 \
      && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
        -r "${locks[0]}" -r "${locks[1]}" \
      && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
        --no-deps --no-build-isolation -e "$ROOT" -e "$ROOT/devtools"; then
    :
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      -r "${locks[0]}" -r "${locks[1]}"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      --no-deps --no-build-isolation -e "$ROOT" -e "$ROOT/devtools"
  fi
  echo "$wanted" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$ROOT/.local/run}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
