#!/usr/bin/env bash
# Compatibility tier by hand: jupyter_server's own tests (tests/services/kernels, sessions
# and contents of the installed version's sdist, fetched once into .venv/eda-compat/) on a
# plain server, then with eda_gateway enabled (single-user mode); prints both counts and
# durations, the tests that fail only with eda_gateway (with each error's key line) and
# how they compare with tests/compat/jupyter_server_known_differences.json.
#
#   ./scripts/compat.sh                      # plain, then eda_gateway
#   ./scripts/compat.sh eda_gateway          # one side only
#   ./scripts/compat.sh -- -k test_cull      # extra pytest arguments for the peer suite
#
# EDA_COMPAT_KEEP=<dir> keeps each run's console output, junit XML and in-process report.
# The main suite runs the eda_gateway side as tests/compat/test_jupyter_server_suite.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  source scripts/setup.sh
fi
exec .venv/bin/python tests/compat/jupyter_server_suite.py "$@"
