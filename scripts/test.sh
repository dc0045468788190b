#!/usr/bin/env bash
# The whole test suite, lint included. Uses an embedded PostgreSQL unless
# IDENT_TEST_DB_URL names a server (tests create and drop their own databases there).
# Extra arguments go to pytest, e.g. scripts/test.sh -k migrations
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
echo "== ruff"
ruff check .
ruff format --check .
echo "== pytest"
exec python -m pytest "$@"
