#!/usr/bin/env bash
# Create .venv (if needed) and install sk-cotuning with everything the tests,
# benchmarks and docs need. Pins for torch/torchvision live in constraints.txt.
set -euo pipefail
export PIP_DISABLE_PIP_VERSION_CHECK=1
# This machine's pip configuration lists local package indexes, most of them empty;
# pip prints a harmless "Location ... is ignored" line for each. Filtered out here.
quiet_pip() {
  "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch and torchvision first, pinned: the pair that works on this platform.
quiet_pip .venv/bin/python -m pip install -q -c constraints.txt torch torchvision
quiet_pip .venv/bin/python -m pip install -q -c constraints.txt -e ".[tests,benchmarks,docs]"
# Real target data for the Fashion-MNIST job and its tests: Debian's package, where apt
# exists and we are root (elsewhere: load_fashion_mnist(download=True) or data_home=).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "note: could not install dataset-fashion-mnist; the Fashion-MNIST job needs its files"
fi
.venv/bin/python -c "import sk_cotuning, torch, torchvision, skorch; print('sk-cotuning', sk_cotuning.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__, '| skorch', skorch.__version__)"
