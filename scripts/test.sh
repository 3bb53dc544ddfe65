#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite, slow cases included
# (plain `pytest` skips those). Extra arguments go to pytest and win, e.g.
#   bash scripts/test.sh -m "not slow"
# Then the skorch-facing tests run again on the oldest supported skorch (see
# sk_cotuning/_skorch.py), installed beside the environment, not into it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -ra -m "slow or not slow" "$@"

OLDEST_SKORCH=1.2.0
target=".venv/skorch-$OLDEST_SKORCH"
if [ ! -d "$target/skorch" ]; then
    .venv/bin/python -m pip install --quiet --no-deps --target "$target" "skorch==$OLDEST_SKORCH" 2>&1 \
        | grep -v "is ignored: it is neither a file nor a directory" || true
fi
PYTHONPATH="$target" .venv/bin/python -c "import skorch, sys; sys.exit(skorch.__version__ != '$OLDEST_SKORCH')" \
    || { echo "could not install skorch $OLDEST_SKORCH into $target" >&2; exit 1; }
echo "--- the skorch-facing tests on skorch $OLDEST_SKORCH (the oldest supported)"
PYTHONPATH="$target" .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/test_skorch_compat.py tests/test_skorch_integration.py tests/test_api.py \
    tests/test_classifier.py tests/test_scale_out.py
