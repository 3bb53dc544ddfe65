"""Execute the benchmark notebooks headless (nbclient), in place.

Usage::

    python benchmarks/run_notebooks.py                       # full runs, outputs saved in the notebooks
    python benchmarks/run_notebooks.py --quick NOTEBOOK ...  # CI size, into a copy (nothing committed changes)

The notebooks read ``SK_COTUNING_QUICK`` (set by ``--quick``); in quick mode
they write their results to a temporary folder instead of ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("accuracy_vs_sampling_rate.ipynb", "speed.ipynb", "imagenet_to_fashion.ipynb")


def execute(path: Path, quick: bool, out: Path | None = None, timeout: int | None = None) -> Path:
    """Run every cell of ``path`` with the benchmarks folder as working directory."""
    import nbformat  # the [benchmarks] extra: imported here, so importing this module is free
    from nbclient import NotebookClient

    os.environ["SK_COTUNING_QUICK"] = "1" if quick else "0"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    target = out or path
    nbformat.write(nb, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS))
    parser.add_argument("--quick", action="store_true", help="CI size; the notebook file is not modified")
    parser.add_argument("--out", type=Path, default=None, help="folder for executed copies")
    args = parser.parse_args(argv)
    for name in args.notebooks:
        path = (HERE / name) if not Path(name).exists() else Path(name)
        out = None
        if args.quick or args.out:
            folder = args.out or Path(os.environ.get("TMPDIR", "/tmp"))
            folder.mkdir(parents=True, exist_ok=True)
            out = folder / path.name
        start = time.perf_counter()
        target = execute(path, args.quick, out)
        print(f"executed {path.name} -> {target} ({time.perf_counter() - start:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
