#!/usr/bin/env bash
# The whole test suite, lint included. Uses an embedded PostgreSQL unless
# IDENT_TEST_DB_URL names a server (tests create and drop their own databases there).
# Extra arguments go to pytest, e.g. scripts/test.sh -k migrations
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
# The leads inbox's browser test drives Debian's Chromium; install it where it is missing.
# Without root or apt-get the test skips and says why; under CI (root) it must run.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (for the browser test)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
      >/dev/null || echo "could not install chromium; the browser test cannot run"
  else
    echo "chromium not found and cannot be installed here; the browser test will skip"
  fi
fi
echo "== ruff"
ruff check .
ruff format --check .
echo "== pytest"
exec python -m pytest "$@"
