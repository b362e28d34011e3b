#!/usr/bin/env bash
# Install everything the test suite needs (Python venv, node packages, Debian
# chromium for browser tests) and run the whole suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
