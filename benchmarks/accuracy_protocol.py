"""The accuracy-vs-sampling-rate protocol behind ``accuracy_vs_sampling_rate.ipynb``.

Source: the bundled GlyphNet (52 letters).  Target: the UCI digits.  For every
sampling rate, split and seed, all methods see the same training subset, data
order and target-head initialisation (``random_state=seed``); fine-tuning's
``lr`` and Co-Tuning's ``trade_off`` are each chosen by ``GridSearchCV`` on the
training subset only, with the same number of candidates; the test split is
touched once per fit.

Kept as a module so the notebook stays readable and the pieces are testable.
``QUICK=1`` in the environment (``SK_COTUNING_QUICK=1``) shrinks everything for CI.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sk_cotuning import CategoryRelationship, CoTuningClassifier, sample_rate_indices
from sk_cotuning.jobs.digits import digits_split

QUICK = os.environ.get("SK_COTUNING_QUICK", "0") == "1"

METHODS = (
    "scratch",
    "fine-tuning",
    "Co-Tuning (direct)",
    "Co-Tuning (reverse)",
    "control: shifted rows",
    "control: uniform",
)


class ShiftedRelationship(CategoryRelationship):
    """Control: each target class gets the next class's relationship row."""

    def fit(self, X, y):
        super().fit(X, y)
        self.relationship_ = np.roll(self.relationship_, 1, axis=0)
        return self


class UniformRelationship(CategoryRelationship):
    """Control: every row uniform over the source classes (no class information)."""

    def fit(self, X, y):
        super().fit(X, y)
        self.relationship_ = np.full_like(self.relationship_, 1.0 / self.relationship_.shape[1])
        return self


@dataclass
class Protocol:
    """What the benchmark runs; ``Protocol.quick()`` is the CI-sized version."""

    rates: tuple[float, ...] = (0.02, 0.05, 0.10, 0.15, 0.30, 1.0)
    seeds_low: int = 10  # seeds at rates <= 10%
    seeds_high: int = 5  # seeds above
    n_splits: int = 3  # stratified train/test splits; seed s uses split s % n_splits
    test_size: int = 540
    steps: int = 200  # training iterations per fit (epochs follow from the subset size)
    batch_size: int = 16
    cotuning_lr: float = 0.01  # the estimator default; Co-Tuning tunes trade_off instead
    lr_grid: tuple[float, ...] = (0.01, 0.02, 0.05)  # fine-tuning's candidates
    trade_off_grid: tuple[float, ...] = (1.0, 2.3, 5.0)  # Co-Tuning's candidates
    cv: int = 2

    @classmethod
    def quick(cls) -> "Protocol":
        return cls(rates=(0.05, 1.0), seeds_low=1, seeds_high=1, n_splits=1, steps=20,
                   lr_grid=(0.02, 0.05), trade_off_grid=(1.0, 2.3))

    def seeds(self, rate: float) -> int:
        return self.seeds_low if rate <= 0.10 else self.seeds_high


def splits(protocol: Protocol):
    """The fixed stratified train/test splits of the digits (split 0 is the main job's)."""
    return [digits_split(protocol.test_size, random_state=s) for s in range(protocol.n_splits)]


def _clf(protocol: Protocol, n_train: int, seed: int, **params) -> CoTuningClassifier:
    epochs = max(1, math.ceil(protocol.steps * protocol.batch_size / n_train))
    params.setdefault("lr", protocol.cotuning_lr)
    return CoTuningClassifier("glyphnet", max_epochs=epochs, batch_size=protocol.batch_size,
                              random_state=seed, verbose=0, device="cpu", **params)


def run_subset(protocol: Protocol, X_train, y_train, X_test, y_test, rate: float,
               seed: int) -> list[dict]:
    """All methods on one training subset; a record per method."""
    idx = sample_rate_indices(y_train, rate, random_state=seed)
    Xs, ys = X_train[idx], y_train[idx]
    cv = StratifiedKFold(protocol.cv, shuffle=True, random_state=seed)
    records = []

    def score(name, clf, params):
        start = time.perf_counter()
        clf.fit(Xs, ys)
        records.append({"rate": rate, "seed": seed, "n_train": len(idx), "method": name,
                        "accuracy": float(clf.score(X_test, y_test)), "params": params,
                        "seconds": round(time.perf_counter() - start, 2)})

    ft = GridSearchCV(_clf(protocol, len(idx), seed, trade_off=0.0),
                      {"lr": list(protocol.lr_grid)}, cv=cv, refit=False).fit(Xs, ys)
    co = GridSearchCV(_clf(protocol, len(idx), seed),
                      {"trade_off": list(protocol.trade_off_grid)}, cv=cv, refit=False).fit(Xs, ys)
    lr, trade_off = ft.best_params_["lr"], co.best_params_["trade_off"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # weights=None warns, as it should
        score("scratch", _clf(protocol, len(idx), seed, weights=None, trade_off=0.0, lr=lr),
              {"lr": lr})
    score("fine-tuning", _clf(protocol, len(idx), seed, trade_off=0.0, lr=lr), {"lr": lr})
    score("Co-Tuning (direct)", _clf(protocol, len(idx), seed, trade_off=trade_off),
          {"trade_off": trade_off})
    score("Co-Tuning (reverse)", _clf(protocol, len(idx), seed, trade_off=trade_off,
                                      relationship=CategoryRelationship(method="reverse",
                                                                        random_state=seed)),
          {"trade_off": trade_off})
    score("control: shifted rows", _clf(protocol, len(idx), seed, trade_off=trade_off,
                                         relationship=ShiftedRelationship()),
          {"trade_off": trade_off})
    score("control: uniform", _clf(protocol, len(idx), seed, trade_off=trade_off,
                                   relationship=UniformRelationship()),
          {"trade_off": trade_off})
    return records


def run(protocol: Protocol, progress: Callable[[str], None] | None = print) -> pd.DataFrame:
    """Every rate, seed and method; one row per fit."""
    data = splits(protocol)
    rows = []
    start = time.perf_counter()
    for rate in protocol.rates:
        for seed in range(protocol.seeds(rate)):
            split = seed % protocol.n_splits
            X_train, X_test, y_train, y_test = data[split]
            for record in run_subset(protocol, X_train, y_train, X_test, y_test, rate, seed):
                rows.append({**record, "split": split})
            if progress:
                done = {r["method"]: r["accuracy"] for r in rows[-len(METHODS):]}
                progress(f"rate {100 * rate:5.1f}%  seed {seed}: "
                         f"FT {100 * done['fine-tuning']:.2f}  "
                         f"CoT {100 * done['Co-Tuning (direct)']:.2f}  "
                         f"({time.perf_counter() - start:.0f}s)")
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per rate: mean ± std per method, the paired differences, wins, error reduction."""
    out = []
    for rate, group in runs.groupby("rate"):
        wide = group.pivot_table(index="seed", columns="method", values="accuracy")
        row = {"rate": rate, "n_train": int(group["n_train"].iloc[0]), "seeds": len(wide)}
        for m in METHODS:
            row[f"{m} mean"] = 100 * wide[m].mean()
            row[f"{m} std"] = 100 * wide[m].std(ddof=1) if len(wide) > 1 else 0.0
        diff = 100 * (wide["Co-Tuning (direct)"] - wide["fine-tuning"])
        row["CoT-FT mean"] = diff.mean()
        row["CoT-FT se"] = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        row["wins"], row["ties"], row["losses"] = (
            int((diff > 0).sum()), int((diff == 0).sum()), int((diff < 0).sum()))
        shifted = 100 * (wide["control: shifted rows"] - wide["fine-tuning"])
        row["shifted-FT mean"] = shifted.mean()
        row["reverse-FT mean"] = (100 * (wide["Co-Tuning (reverse)"] - wide["fine-tuning"])).mean()
        ft_err = 100 - row["fine-tuning mean"]
        row["error-rate reduction %"] = (
            100 * row["CoT-FT mean"] / ft_err if ft_err > 0 else 0.0)
        out.append(row)
    return pd.DataFrame(out)


def plot(summary: pd.DataFrame, path=None):
    """Accuracy vs sampling rate, one line per method (the paper's figure)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = 100 * summary["rate"]
    for i, m in enumerate(METHODS):
        style = "--" if m.startswith("control") or m == "scratch" else "-"
        ax.errorbar(x, summary[f"{m} mean"], yerr=summary[f"{m} std"], label=m, marker="o",
                    linestyle=style, capsize=3, color=f"C{i}")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}%" for v in x])
    ax.set_xlabel("sampling rate of the digits' training split")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_title("GlyphNet (letters) -> UCI digits")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def settings(protocol: Protocol) -> dict:
    return {**asdict(protocol), "quick": QUICK}
