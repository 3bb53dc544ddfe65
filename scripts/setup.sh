#!/usr/bin/env bash
# Create .venv (if needed) and install sk-cotuning with everything the tests,
# benchmarks and docs need. Pins for torch/torchvision live in constraints.txt.
set -euo pipefail
# pip prints harmless "Location ... is ignored" lines for this machine's local indexes.
export PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch and torchvision first, pinned: the pair that works on this platform.
.venv/bin/python -m pip install -q -c constraints.txt torch torchvision
.venv/bin/python -m pip install -q -c constraints.txt -e ".[tests,benchmarks,docs]"
.venv/bin/python -c "import sk_cotuning, torch, torchvision, skorch; print('sk-cotuning', sk_cotuning.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__, '| skorch', skorch.__version__)"
