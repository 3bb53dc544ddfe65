#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, slow cases included
# (plain `pytest` skips those). Extra arguments go to pytest and win, e.g.
#   bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra -m "slow or not slow" "$@"
