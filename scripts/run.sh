#!/usr/bin/env bash
# Runs the whole platform locally: embedded PostgreSQL, demo clinic, simulators, Airflow UI.
# Options: --port N, --reload-demo, --no-demo. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
exec python -m ident_dev.devstack "$@"
