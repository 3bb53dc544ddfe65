"""Peak memory of fit on image files: 500 vs 5000 images (not a test; run by hand).

Each size runs in a fresh subprocess that fits CoTuningClassifier for one epoch
(relationship pass + training) on generated 224x224 JPEG files with a small
torchvision backbone (shufflenet_v2_x0_5, weights=None: nothing is downloaded),
decoding in 2 DataLoader workers, and reports its peak resident set size.
Goal: peak memory grows by less than 10% from 500 to 5000 images, because
files are decoded lazily, per batch.

Usage::

    python benchmarks/memory_image_files.py [--sizes 500 5000] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_images(root: Path, n: int, n_classes: int = 10, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n_classes, 3))
    for i in range(n):
        c = i % n_classes
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(base[c] + rng.normal(0, 40, size=(224, 224, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=85)


def child(root: str) -> None:
    """Fit one epoch on the folder and print a JSON line with the peak RSS."""
    warnings.simplefilter("ignore")
    import torch

    from sk_cotuning import CoTuningClassifier, load_image_folder

    torch.set_num_threads(2)
    paths, labels = load_image_folder(root)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    CoTuningClassifier(
        "shufflenet_v2_x0_5", weights=None, max_epochs=1, batch_size=32, verbose=0,
        random_state=0, iterator_train__num_workers=2, iterator_valid__num_workers=2,
    ).fit(paths, labels)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "n_images": len(paths),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_fit_mb": rss_before / 1024,
        "peak_rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "seconds": seconds,
    }))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            root = Path(tmp) / f"n{n}"
            t0 = time.perf_counter()
            make_images(root, n)
            print(f"generated {n} images in {time.perf_counter() - t0:.0f}s", flush=True)
            out = subprocess.run([sys.executable, __file__, "--child", str(root)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print(f"\n{'images':>7} {'peak RSS (MB)':>14} {'workers peak (MB)':>18} {'fit (s)':>8}")
    for r in rows:
        print(f"{r['n_images']:>7} {r['peak_rss_mb']:>14.0f} {r['peak_rss_workers_mb']:>18.0f} "
              f"{r['seconds']:>8.1f}")
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
    print(f"\npeak RSS growth from {rows[0]['n_images']} to {rows[-1]['n_images']} images: "
          f"{100 * growth:+.1f}% (goal < +10%)")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "growth": growth, "platform": platform.platform(),
              "backbone": "shufflenet_v2_x0_5", "batch_size": 32, "num_workers": 2}
    path = args.out / "memory_image_files.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
