"""Which training recipe should the estimators default to?  Candidates measured on validation data.

Co-Tuning's ``soft_target_temperature="auto"`` (the old default) weakens the
method on the real pair (it fits T = 4.49 on EfficientNet-Lite0 ->
Fashion-MNIST), while the paper's loss (T = 1) is unstable at the learning
rate plain fine-tuning chose.  This probe measures the candidate recipes
(gradient-norm clipping for every method, the temperature, BatchNorm
statistics, DELTA's weight on its per-element distance) on both pairs, on
*validation* data only:

- the real pair: EfficientNet-Lite0 (ImageNet-1k) -> Fashion-MNIST at 10
  images per class, 64 px, the base recipe ``lr`` 0.03 with the backbone at
  the full rate, 20 epochs, batch 32; each seed draws its own subset and
  every candidate trains on it with the same data order and head
  initialisation; accuracy on ``VALIDATION`` images drawn from the rest of
  the *training* split (disjoint from every subset; the test split is never
  read here);
- the glyph pair: GlyphNet -> UCI digits at 5% of the fixed training split,
  validated on the rest of that training split.

Every fit is appended to ``results/recipe_probe_runs.csv`` as it finishes, so
the probe resumes, and two processes can share it (``--part 0/2``,
``--part 1/2``).  ``--summary`` prints the table and writes
``results/recipe_probe.json``.

    python benchmarks/recipe_probe.py --pair fashion --part 0/2
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sk_cotuning import CategoryRelationship, FineTuningClassifier, sample_rate_indices
from sk_cotuning.regularization import DELTA, CoTuning

HERE = Path(__file__).resolve().parent
RUNS = HERE / "results" / "recipe_probe_runs.csv"
VALIDATION = 2000

#: candidate -> (regularizer factory or None, max_grad_norm)
CANDIDATES = {
    "fine-tuning": (None, None),
    "fine-tuning + clip 5": (None, 5.0),
    "Co-Tuning T=auto": (lambda: CoTuning(soft_target_temperature="auto"), None),
    "Co-Tuning T=auto + clip 5": (lambda: CoTuning(soft_target_temperature="auto"), 5.0),
    "Co-Tuning T=1": (lambda: CoTuning(soft_target_temperature=1.0), None),
    "Co-Tuning T=1 + clip 5": (lambda: CoTuning(soft_target_temperature=1.0), 5.0),
    "Co-Tuning T=2 + clip 5": (lambda: CoTuning(soft_target_temperature=2.0), 5.0),
    # the relationship's method at the estimators' defaults (clipping at 5 included)
    "Co-Tuning direct (default) + clip 5": (lambda: CoTuning(), 5.0),
    "Co-Tuning reverse + clip 5": (
        lambda: CoTuning(relationship=CategoryRelationship(method="reverse")), 5.0),
    # DELTA's weight on its per-element (mean) distance: which order of magnitude
    **{f"DELTA alpha={a:g} + clip 5": ((lambda a=a: DELTA(alpha=a)), 5.0)
       for a in (0.001, 0.003, 0.01, 0.1, 1.0, 10.0)},
}
#: the candidates a run takes unless --candidates names others
DEFAULT_CANDIDATES = [c for c in CANDIDATES if not c.startswith("DELTA")]


def fashion_data(seed: int, per_class: int = 10, size: int = 64):
    from sk_cotuning.datasets import load_fashion_mnist
    from sk_cotuning.datasets import resize_images as _resize

    X_pool, y_pool = load_fashion_mnist("train")
    rng = np.random.RandomState(12345)
    # validation images: a fixed draw from the training split, never in any subset
    val = rng.choice(len(y_pool), VALIDATION, replace=False)
    rest = np.setdiff1d(np.arange(len(y_pool)), val)
    idx = rest[sample_rate_indices(y_pool[rest], per_class / np.bincount(y_pool[rest]).min(),
                                   random_state=seed)]
    return (_resize(X_pool[idx], size), y_pool[idx], _resize(X_pool[val], size), y_pool[val])


def glyph_data(seed: int, rate: float = 0.05):
    from sk_cotuning.jobs.digits import digits_split

    X_train, _, y_train, _ = digits_split(540)  # the test part is never read here
    idx = sample_rate_indices(y_train, rate, random_state=seed)
    val = np.setdiff1d(np.arange(len(y_train)), idx)
    return X_train[idx], y_train[idx], X_train[val], y_train[val]


PAIRS = {
    "fashion": dict(backbone="efficientnet_lite0", data=fashion_data, lr=0.03,
                    backbone_lr_mult=1.0, max_epochs=20, batch_size=32),
    "glyph": dict(backbone="glyphnet", data=glyph_data, lr=0.03, backbone_lr_mult=1.0,
                  max_epochs=40, batch_size=16),
}


def recalibrate_batchnorm(clf, X, y):
    """Re-estimate the backbone's BatchNorm statistics on (X, y), after training.

    A candidate for every method alike: EfficientNet-Lite0's TF-ported
    BatchNorm layers move their statistics with momentum 0.01, so after ~80
    steps about half of each is still ImageNet's.  One pass over the training
    images (no augmentation) in train mode with a cumulative average gives the
    target's population statistics.
    """
    from skorch.dataset import unpack_data

    from sk_cotuning.regularization._pretrained import cumulative_batchnorm

    norms = [m for m in clf.module_.features.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    clf.module_.train()
    with torch.no_grad(), cumulative_batchnorm(norms):
        for batch in clf.get_iterator(clf.get_dataset(X, y), training=False):
            Xi, _ = unpack_data(batch)
            clf.module_(torch.as_tensor(Xi))
    clf.module_.eval()
    return clf


def fit_one(pair: str, candidate: str, seed: int, data) -> dict:
    spec = PAIRS[pair]
    make, clip = CANDIDATES[candidate]
    clf = FineTuningClassifier(spec["backbone"], regularizer=make() if make else None,
                               lr=spec["lr"], backbone_lr_mult=spec["backbone_lr_mult"],
                               max_epochs=spec["max_epochs"], batch_size=spec["batch_size"],
                               max_grad_norm=clip, iterator_valid__batch_size=256,
                               random_state=seed, verbose=0, device="cpu")
    X, y, X_val, y_val = data
    t0 = time.perf_counter()
    try:
        clf.fit(X, y)
        acc = 100 * float(clf.score(X_val, y_val))
    except FloatingPointError:
        acc = float("nan")
    reg = clf.regularizer_ if clf.initialized_ else None
    temperature = float(getattr(reg, "fitted_temperature", float("nan")))
    recal = 100 * float(recalibrate_batchnorm(clf, X, y).score(X_val, y_val)) \
        if np.isfinite(acc) else float("nan")
    return {"pair": pair, "candidate": candidate, "seed": seed, "val_accuracy": acc,
            "val_accuracy_bn_recalibrated": recal, "fitted_T": temperature, "seconds": round(time.perf_counter() - t0, 1),
            "threads": torch.get_num_threads()}


def run(pair: str, seeds: list[int], part: tuple[int, int], candidates: list[str]) -> None:
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, c) for seed in seeds for c in candidates]
    jobs = jobs[part[0]::part[1]]
    cache: dict[int, tuple] = {}
    for seed, candidate in jobs:
        done = pd.read_csv(RUNS) if RUNS.exists() else pd.DataFrame()
        if len(done) and ((done["pair"] == pair) & (done["seed"] == seed)
                          & (done["candidate"] == candidate)).any():
            continue
        if seed not in cache:
            cache = {seed: PAIRS[pair]["data"](seed)}
        row = fit_one(pair, candidate, seed, cache[seed])
        pd.DataFrame([row]).to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False)
        print(f"{pair} seed {seed} {candidate:<28} {row['val_accuracy']:6.2f}%  "
              f"T={row['fitted_T']:.2f}  ({row['seconds']:.0f}s)", flush=True)


def summary() -> pd.DataFrame:
    runs = pd.read_csv(RUNS)
    rows = []
    for (pair, candidate), g in runs.groupby(["pair", "candidate"], sort=False):
        # like with like: clipped candidates against clipped fine-tuning, on the same seeds
        reference = "fine-tuning + clip 5" if "clip" in candidate else "fine-tuning"
        ft = runs[(runs["pair"] == pair) & (runs["candidate"] == reference)].set_index("seed")
        diff = g.set_index("seed")["val_accuracy"] - ft["val_accuracy"]
        diff = diff.dropna()
        rows.append({"pair": pair, "candidate": candidate, "seeds": len(g),
                     "mean": g["val_accuracy"].mean(), "std": g["val_accuracy"].std(ddof=1),
                     "min": g["val_accuracy"].min(),
                     "mean, BN recalibrated": g["val_accuracy_bn_recalibrated"].mean(),
                     "vs fine-tuning": diff.mean(), "paired seeds": len(diff),
                     "reference": reference,
                     "se": diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan,
                     "fitted_T": g["fitted_T"].mean()})
    table = pd.DataFrame(rows)
    (HERE / "results" / "recipe_probe.json").write_text(
        json.dumps(table.to_dict(orient="records"), indent=2) + "\n")
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), default="fashion")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--part", default="0/1", help="i/n: run every n-th job from the i-th")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--candidates", nargs="*", default=DEFAULT_CANDIDATES,
                        choices=list(CANDIDATES), metavar="NAME")
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    if args.summary:
        print(summary().round(2).to_string(index=False))
    else:
        torch.set_num_threads(args.threads)
        warnings.filterwarnings("ignore", category=UserWarning)
        i, n = (int(v) for v in args.part.split("/"))
        run(args.pair, args.seeds, (i, n), args.candidates)
