"""The Co-Tuning paper's protocol on your own ImageFolder data (GPU + internet).

You et al. (NeurIPS 2020), Section 4: ResNet-50 pre-trained on ImageNet;
sampling rates 15/30/50/100% of the training set (per class); batch 48; SGD
with lr 0.01 for the new head and 0.1x for the pre-trained parts; about 9000
iterations with the learning rate divided by 10 at two thirds; test accuracy
with the centre crop and with 10 crops.  Fine-tuning (``trade_off=0``) vs
Co-Tuning (``trade_off=2.3``), paired (same subset, order and initialisation).

Usage::

    python benchmarks/paper_protocol.py --train data/cars/train --test data/cars/test
    python benchmarks/paper_protocol.py --train ... --test ... --rates 15 --seeds 3 \\
        --iterations 9000 --workers 8 --out benchmarks/results/paper_cars.json

Prints a results table and writes JSON.  (CI smoke-tests it on a tiny generated
folder with ``--weights none`` and a handful of iterations.)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sk_cotuning import CoTuningClassifier, load_image_folder, sample_rate_indices


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="ImageFolder root of the training set")
    parser.add_argument("--test", type=Path, required=True, help="ImageFolder root of the test set")
    parser.add_argument("--rates", type=float, nargs="+", default=[15, 30, 50, 100],
                        help="sampling rates in percent (default 15 30 50 100)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default="DEFAULT", help="torchvision weights, a file, or 'none'")
    parser.add_argument("--iterations", type=int, default=9000)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--trade-off", type=float, default=2.3)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path("paper_protocol.json"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    train_paths, train_labels = load_image_folder(args.train)
    test_paths, test_labels = load_image_folder(args.test)
    print(f"{len(train_paths)} training and {len(test_paths)} test images, "
          f"{len(set(train_labels))} classes; {args.backbone} ({args.weights})", flush=True)
    rows = []
    for rate in args.rates:
        for seed in range(args.seeds):
            idx = sample_rate_indices(train_labels, rate / 100, random_state=seed)
            epochs = max(1, math.ceil(args.iterations * args.batch_size / len(idx)))
            for method, trade_off in (("fine-tuning", 0.0), ("Co-Tuning", args.trade_off)):
                clf = CoTuningClassifier(
                    args.backbone, weights=weights, trade_off=trade_off, lr=args.lr,
                    backbone_lr_mult=0.1, lr_schedule="step", max_epochs=epochs,
                    batch_size=args.batch_size, device=args.device, random_state=seed,
                    verbose=0, iterator_train__num_workers=args.workers,
                    iterator_valid__num_workers=args.workers,
                )
                start = time.perf_counter()
                clf.fit(train_paths[idx], train_labels[idx])
                seconds = time.perf_counter() - start
                centre = clf.score(test_paths, test_labels)
                clf.set_params(test_time_augmentation="ten_crop")
                ten = float(np.mean(clf.predict(test_paths) == test_labels))
                rows.append({"rate": rate, "seed": seed, "method": method, "n_train": len(idx),
                             "epochs": epochs, "centre_crop": centre, "ten_crop": ten,
                             "fit_seconds": round(seconds, 1), "leep": clf.leep_})
                print(f"rate {rate:g}% seed {seed} {method:<12} centre {100 * centre:.2f}%  "
                      f"10-crop {100 * ten:.2f}%  ({seconds:.0f}s)", flush=True)
    print(f"\n{'rate':>6} {'method':<12} {'centre-crop %':>14} {'10-crop %':>10}")
    for rate in args.rates:
        for method in ("fine-tuning", "Co-Tuning"):
            sel = [r for r in rows if r["rate"] == rate and r["method"] == method]
            print(f"{rate:>5g}% {method:<12} {100 * np.mean([r['centre_crop'] for r in sel]):>14.2f} "
                  f"{100 * np.mean([r['ten_crop'] for r in sel]):>10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "settings": {k: str(v) for k, v in vars(args).items()},
        "torch": torch.__version__, "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "runs": rows,
    }, indent=2) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
