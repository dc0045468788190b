#!/usr/bin/env bash
# The whole test suite, lint included. Uses an embedded PostgreSQL unless
# IDENT_TEST_DB_URL names a server (tests create and drop their own databases there).
# Extra arguments go to pytest, e.g. scripts/test.sh -k migrations
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
# Debian packages some tests drive; each is installed where it is missing. Without root or
# apt-get those tests skip and say why; under CI (root) they must run.
#   chromium        the leads inbox's browser test
#   redis-server    the broker of the Celery executor test (tests/dags/test_celery_executor.py)
#   docker-compose  `docker-compose config` validates docker-compose.yaml
#   nodejs, npm     Express's body-parser as a receiver of gzipped schedules
#                   (tests/schedule/test_gzip_receiver.py; the packages come from npm)
apt_updated=no
install_missing() {  # install_missing <command> <package> <what it is for>
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing $2 (for $3)"
    if [ "$apt_updated" = no ]; then
      apt-get update -qq >/dev/null && apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null \
      || echo "could not install $2; $3 cannot run"
  else
    echo "$1 not found and cannot be installed here; $3 will skip"
  fi
}
install_missing chromium chromium "the browser test"
install_missing redis-server redis-server "the Celery executor test"
install_missing docker-compose docker-compose "the docker-compose config check"
install_missing node nodejs "the gzip receiver test"
install_missing npm npm "the gzip receiver test"
echo "== ruff"
ruff check .
ruff format --check .
echo "== pytest"
exec python -m pytest "$@"
