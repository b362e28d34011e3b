#!/usr/bin/env bash
# Install what the test suite needs (scripts/setup.sh) and run it.
#   scripts/test.sh [unit|e2e|browser|compat|all] [pytest args...]   (all by default)
# unit: in process, no server processes; e2e: real servers (marked e2e); browser: tests/browser;
# compat: jupyter_server's own suite and jupyter-mcp-server against eda_gateway (tests/compat).
set -euo pipefail
cd "$(dirname "$0")/.."
tier=all
case "${1:-}" in unit|e2e|browser|compat|all) tier=$1; shift ;; esac
source scripts/setup.sh
case "$tier" in
  unit) set -- -m "not e2e and not browser and not compat" tests "$@" ;;
  e2e) set -- -m "e2e and not browser and not compat" tests "$@" ;;
  browser) set -- tests/browser "$@" ;;
  compat) set -- tests/compat "$@" ;;
esac
# The whole suite and the e2e tier spend most of their time waiting for servers and kernels:
# four pytest-xdist workers keep this 2-core machine busy (one process left ~60% idle). A
# module is one unit of work; the timing-sensitive tests share one worker (tests/conftest.py).
# EDA_TEST_WORKERS=0 runs in one process.
workers=${EDA_TEST_WORKERS:-4}
if [ "$workers" != 0 ] && { [ "$tier" = all ] || [ "$tier" = e2e ]; }; then
  set -- -n "$workers" --dist loadgroup "$@"
fi
exec .venv/bin/python -m pytest "$@"
