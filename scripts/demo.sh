#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job: Co-Tuning vs fine-tuning on the
# UCI digits with the bundled glyph source model, offline. Extra arguments go to
# the job, e.g.  bash scripts/demo.sh --rate 2% --seeds 10
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m sk_cotuning "$@"
