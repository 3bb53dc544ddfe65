"""Choosing a backbone and settings on a real pair: do the scores rank a real zoo, does halving pay?

Target: Fashion-MNIST at 10 images per class (seeds 0..``seeds``-1, each its
own stratified draw), ``test_size`` stratified test images.

1. **Zoo ranking.**  Candidates: EfficientNet-Lite0/1/2 (ImageNet-1k, at
   64 px; Lite0 also at 96 px), GlyphNet (printed characters at 8x8 px: an
   unrelated source), and randomly initialised Lite0 and Lite2 (negative
   controls).  Ground truth: each candidate's test accuracy after plain
   fine-tuning under one fixed recipe (the fashion benchmark's base recipe at
   10/class: ``lr`` 0.03, the backbone at the full rate, 20 epochs), per
   seed.  Every transferability score is computed by ``rank_backbones`` on
   the same training images, and compared with the accuracies by weighted
   Kendall's tau (``scipy.stats.weightedtau``, hyperbolic weights, as in the
   SFDA/NLEEP tables), per seed, on the mean over seeds; the time to score
   all candidates is compared with the time to fine-tune them all.
2. **Halving vs the full grid.**  Co-Tuning on Lite0 at 64 px, ``trade_off``
   in {0, 1, 2.3} x ``lr`` in {0.01, 0.03, 0.1} (9 candidates), the same
   stratified 3-fold CV: ``GridSearchCV`` at 20 epochs, and
   ``HalvingGridSearchCV`` over ``max_epochs`` (factor 3, up to 18 epochs).
   Each search's refitted choice is tested; compute is the training epochs
   summed over every fit (refit included) and the wall time.
3. **Every candidate tested** (the ``oracle`` stage, for the report only: no
   search may see it).  Each of the grid's candidates fitted as the grid's
   refit is (all training images, ``grid_epochs``) and tested, per seed, so
   that each search's choice can be read against the best and the worst
   setting on the same draw: how much the choice costs (its regret), and
   whether the grid's cross-validation picks well at all.

Every job is appended to a CSV as it finishes, so the run resumes, and
``--part i/n`` shares it between processes.  ``SK_COTUNING_QUICK=1``
shrinks everything for CI.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import weightedtau
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    ParameterGrid,
    StratifiedKFold,
    train_test_split,
)

from sk_cotuning import CoTuningClassifier, FineTuningClassifier, rank_backbones
from sk_cotuning.datasets import load_fashion_mnist, resize_images, sample_rate_indices
from sk_cotuning.ranking import SCORES

QUICK = os.environ.get("SK_COTUNING_QUICK", "0") == "1"
OUT = Path(__file__).parent / "results" / "choosing"


@dataclass
class Settings:
    """What the benchmark runs; ``Settings.quick()`` is the CI-sized version."""

    #: name -> (backbone, weights, input size in px)
    zoo: dict = field(default_factory=lambda: {
        "Lite0 @64": ("efficientnet_lite0", "DEFAULT", 64),
        "Lite0 @96": ("efficientnet_lite0", "DEFAULT", 96),
        "Lite1 @64": ("efficientnet_lite1", "DEFAULT", 64),
        "Lite2 @64": ("efficientnet_lite2", "DEFAULT", 64),
        "GlyphNet @8": ("glyphnet", "DEFAULT", 8),
        "random Lite0 @64": ("efficientnet_lite0", None, 64),
        "random Lite2 @64": ("efficientnet_lite2", None, 64),
    })
    per_class: int = 10
    seeds: int = 3
    test_size: int = 2000
    recipe: dict = field(default_factory=lambda: dict(lr=0.03, backbone_lr_mult=1.0,
                                                      max_epochs=20, batch_size=32))
    grid: dict = field(default_factory=lambda: {"trade_off": [0.0, 1.0, 2.3],
                                                "lr": [0.01, 0.03, 0.1]})
    grid_epochs: int = 20
    halving_factor: int = 3
    halving_min_epochs: int = 2
    folds: int = 3

    @classmethod
    def quick(cls) -> "Settings":
        return cls(zoo={"GlyphNet @8": ("glyphnet", "DEFAULT", 8),
                        "random GlyphNet @8": ("glyphnet", None, 8)},
                   per_class=4, seeds=1, test_size=100,
                   recipe=dict(lr=0.03, backbone_lr_mult=1.0, max_epochs=2, batch_size=8),
                   grid={"trade_off": [0.0, 2.3], "lr": [0.03]}, grid_epochs=2,
                   halving_factor=2, halving_min_epochs=1, folds=2)


def inputs(X: np.ndarray, backbone: str, size: int) -> np.ndarray:
    """Fashion-MNIST images as the candidate takes them (GlyphNet: 8x8 on its 0..16 scale)."""
    resized = resize_images(X, size)
    if backbone == "glyphnet":
        return resized.astype(np.float32) * (16.0 / 255.0)
    return resized


class Run:
    def __init__(self, settings: Settings, out: Path, part: tuple[int, int] = (0, 1)):
        self.s, self.out, self.part = settings, out, part
        out.mkdir(parents=True, exist_ok=True)
        X_pool, self.y_pool = load_fashion_mnist("train")
        self.X_pool = X_pool
        X_test, y_test = load_fashion_mnist("test")
        _, self.X_test, _, self.y_test = train_test_split(
            X_test, y_test, test_size=settings.test_size, stratify=y_test, random_state=0)

    def train(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rate = self.s.per_class / np.bincount(self.y_pool).min()
        idx = sample_rate_indices(self.y_pool, rate, random_state=seed)
        return self.X_pool[idx], self.y_pool[idx]

    def _append(self, name: str, row: dict) -> None:
        path = self.out / f"{name}.csv"
        pd.DataFrame([row]).to_csv(path, mode="a", header=not path.exists(), index=False)

    def _pending(self, name: str, key: str, kinds: list) -> list[tuple]:
        """This process's share of the (kind, seed) jobs not yet in ``<name>.csv``."""
        path = self.out / f"{name}.csv"
        done = pd.read_csv(path) if path.exists() else pd.DataFrame()
        have = set(zip(done.get(key, []), done.get("seed", [])))
        jobs = [(kind, seed) for seed in range(self.s.seeds) for kind in kinds]
        i, n = self.part
        return [job for job in jobs[i::n] if job not in have]

    def _fit_and_test(self, clf, X: np.ndarray, y: np.ndarray,
                      X_test: np.ndarray) -> tuple[float, float]:
        """Fit ``clf`` (its warnings about random weights or few steps silenced) and score it
        on the test images: (accuracy, seconds of fitting)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            start = time.perf_counter()
            clf.fit(X, y)
            seconds = time.perf_counter() - start
        return clf.score(X_test, self.y_test), seconds

    def finetune_jobs(self) -> None:
        for candidate, seed in self._pending("finetuned", "candidate", list(self.s.zoo)):
            backbone, weights, size = self.s.zoo[candidate]
            X, y = self.train(seed)
            clf = FineTuningClassifier(backbone, weights=weights, random_state=seed, verbose=0,
                                       device="cpu", iterator_valid__batch_size=256,
                                       **self.s.recipe)
            accuracy, seconds = self._fit_and_test(clf, inputs(X, backbone, size), y,
                                                   inputs(self.X_test, backbone, size))
            self._append("finetuned", dict(candidate=candidate, seed=seed, accuracy=accuracy,
                                           fit_seconds=seconds))
            print(f"fine-tuned {candidate} seed {seed}: {100 * accuracy:.2f}% ({seconds:.0f}s)",
                  flush=True)

    def score_jobs(self) -> None:
        for candidate, seed in self._pending("scores", "candidate", list(self.s.zoo)):
            backbone, weights, size = self.s.zoo[candidate]
            X, y = self.train(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                ranking = rank_backbones({candidate: {"backbone": backbone, "weights": weights}},
                                         inputs(X, backbone, size), y, scores=tuple(SCORES),
                                         device="cpu", random_state=seed, verbose=0)
            row = ranking.rows()[0]
            if row["error"]:
                raise RuntimeError(f"{candidate}: {row['error']}")
            self._append("scores", dict(seed=seed, **{k: v for k, v in row.items()
                                                      if k != "error"}))
            print(f"scored {candidate} seed {seed}: " + ", ".join(
                f"{k}={row[k]:.4g}" for k in SCORES) + f" ({row['seconds']:.1f}s)", flush=True)

    def lite0_data(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A seed's training images and labels, and the test images, as Lite0 @64 takes them."""
        X, y = self.train(seed)
        return (inputs(X, "efficientnet_lite0", 64), y,
                inputs(self.X_test, "efficientnet_lite0", 64))

    def cotuning(self, seed: int, **params) -> CoTuningClassifier:
        """The searches' estimator: Co-Tuning on Lite0, the backbone at the full rate."""
        return CoTuningClassifier("efficientnet_lite0", backbone_lr_mult=1.0,
                                  batch_size=self.s.recipe["batch_size"], device="cpu",
                                  iterator_valid__batch_size=256, verbose=0,
                                  random_state=seed, **params)

    def search_jobs(self) -> None:
        for kind, seed in self._pending("searches", "search", ["grid", "halving"]):
            X, y, X_test = self.lite0_data(seed)
            base = self.cotuning(seed)
            cv = StratifiedKFold(self.s.folds, shuffle=True, random_state=seed)
            if kind == "grid":
                search = GridSearchCV(base.set_params(max_epochs=self.s.grid_epochs),
                                      self.s.grid, cv=cv)
            else:
                search = HalvingGridSearchCV(
                    base, self.s.grid, resource="max_epochs", factor=self.s.halving_factor,
                    min_resources=self.s.halving_min_epochs, max_resources=self.s.grid_epochs,
                    cv=cv, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # few-step warnings in round 1
                start = time.perf_counter()
                search.fit(X, y)
                seconds = time.perf_counter() - start
            results = search.cv_results_
            if kind == "grid":
                epochs = len(results["params"]) * self.s.folds * self.s.grid_epochs
            else:
                epochs = int(np.sum(results["n_resources"])) * self.s.folds
            epochs += search.best_estimator_.max_epochs  # the refit
            best = {k: v for k, v in search.best_params_.items() if k != "max_epochs"}
            accuracy = search.best_estimator_.score(X_test, self.y_test)
            self._append("searches", dict(search=kind, seed=seed, choice=json.dumps(best),
                                          refit_epochs=search.best_estimator_.max_epochs,
                                          cv_score=search.best_score_, accuracy=accuracy,
                                          epochs=epochs, seconds=seconds))
            print(f"{kind} seed {seed}: chose {best} -> {100 * accuracy:.2f}% "
                  f"({epochs} epochs, {seconds:.0f}s)", flush=True)

    def oracle_jobs(self) -> None:
        """Every grid candidate refitted on a seed's training images and tested."""
        candidates = [json.dumps(params, sort_keys=True) for params in ParameterGrid(self.s.grid)]
        for choice, seed in self._pending("oracle", "choice", candidates):
            X, y, X_test = self.lite0_data(seed)
            clf = self.cotuning(seed, max_epochs=self.s.grid_epochs, **json.loads(choice))
            accuracy, seconds = self._fit_and_test(clf, X, y, X_test)
            self._append("oracle", dict(choice=choice, seed=seed, accuracy=accuracy,
                                        seconds=seconds))
            print(f"oracle seed {seed}: {choice} -> {100 * accuracy:.2f}% ({seconds:.0f}s)",
                  flush=True)


def choice_regret(searches: pd.DataFrame, oracle: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the best, median and worst candidate's test accuracy, and for each
    search the setting it chose, read in the same table: its accuracy, its
    shortfall from the best (regret, in points) and its rank (1: the best).

    The chosen setting is scored by its oracle fit (all training images,
    ``grid_epochs``, the oracle's run), not by the search's own refit, so that
    every setting is compared under one budget and on one machine: a run
    repeats exactly only on one machine, and halving refits at its last
    round's epochs.
    """
    rows = []
    for seed, group in oracle.groupby("seed"):
        accuracy = 100 * group.set_index("choice")["accuracy"]
        row = dict(seed=seed, candidates=len(group), best=accuracy.max(),
                   best_choice=accuracy.idxmax(), median=accuracy.median(),
                   worst=accuracy.min())
        for _, search in searches[searches["seed"] == seed].iterrows():
            chosen = json.dumps(json.loads(search["choice"]), sort_keys=True)
            if chosen not in accuracy.index:
                continue
            kind = search["search"]
            row[f"{kind}_choice"] = chosen
            row[f"{kind}_accuracy"] = accuracy[chosen]
            row[f"{kind}_regret"] = accuracy.max() - accuracy[chosen]
            row[f"{kind}_rank"] = int((accuracy > accuracy[chosen]).sum()) + 1
        rows.append(row)
    return pd.DataFrame(rows)


def scored(scores: pd.DataFrame) -> list[str]:
    """The scores a results table holds, in :data:`SCORES`' order (older runs lack the
    ones added since)."""
    return [score for score in SCORES if score in scores.columns]


def rank_agreement(scores: pd.DataFrame, finetuned: pd.DataFrame) -> pd.DataFrame:
    """Weighted Kendall's tau between each score and fine-tuned accuracy, per seed and on
    the means over seeds."""
    rows = []
    merged = scores.merge(finetuned, on=["candidate", "seed"])
    for score in scored(scores):
        taus = [weightedtau(g[score], g["accuracy"]).statistic
                for _, g in merged.groupby("seed") if len(g) >= 2]
        means = merged.groupby("candidate")[[score, "accuracy"]].mean()
        rows.append(dict(score=score, tau_mean_over_seeds=weightedtau(
            means[score], means["accuracy"]).statistic,
            tau_per_seed_mean=np.mean(taus) if taus else np.nan,
            tau_per_seed_min=np.min(taus) if taus else np.nan, seeds=len(taus)))
    return pd.DataFrame(rows)


def report(out: Path = OUT) -> dict:
    """Tables and a figure from what has run; also saved as JSON and PNG."""
    finetuned = pd.read_csv(out / "finetuned.csv")
    scores = pd.read_csv(out / "scores.csv")
    searches = pd.read_csv(out / "searches.csv") if (out / "searches.csv").exists() else None
    accuracy = finetuned.groupby("candidate").agg(accuracy=("accuracy", "mean"),
                                                  accuracy_std=("accuracy", "std"),
                                                  fit_seconds=("fit_seconds", "mean"))
    mean_scores = scores.groupby("candidate")[[*scored(scores), "seconds"]].mean()
    table = accuracy.join(mean_scores).sort_values("accuracy", ascending=False)
    agreement = rank_agreement(scores, finetuned)
    cost = scores["seconds"].sum() / finetuned["fit_seconds"].sum()
    result = {"zoo": table.reset_index().to_dict("records"),
              "agreement": agreement.to_dict("records"),
              "score_cost_fraction": cost}
    print(table.round(4).to_string())
    print(agreement.round(3).to_string(index=False))
    print(f"scoring every candidate took {100 * cost:.2f}% of the time to fine-tune them all")
    if searches is not None and len(searches):
        paired = searches.pivot(index="seed", columns="search",
                                values=["accuracy", "epochs", "seconds"])
        result["searches"] = searches.to_dict("records")
        print(searches.to_string(index=False))
        if {"grid", "halving"} <= set(searches["search"]):
            gap = (paired["accuracy"]["halving"] - paired["accuracy"]["grid"]) * 100
            result["halving_minus_grid_points"] = gap.dropna().tolist()
            result["halving_compute_fraction_epochs"] = float(
                (paired["epochs"]["halving"] / paired["epochs"]["grid"]).mean())
            result["halving_compute_fraction_seconds"] = float(
                (paired["seconds"]["halving"] / paired["seconds"]["grid"]).mean())
            print(f"halving minus grid (points): {gap.round(2).tolist()}; compute: "
                  f"{result['halving_compute_fraction_epochs']:.2f}x the epochs, "
                  f"{result['halving_compute_fraction_seconds']:.2f}x the wall time")
    oracle_csv, regret = out / "oracle.csv", None
    if searches is not None and len(searches) and oracle_csv.exists():
        regret = choice_regret(searches, pd.read_csv(oracle_csv))
        result["every_candidate_tested"] = regret.to_dict("records")
        print("every candidate tested (%): best, median, worst; each search's choice, "
              "its accuracy, regret (best minus it) and rank among the candidates")
        print(regret.round(2).drop(columns=[c for c in regret if c.endswith("choice")])
              .to_string(index=False))
    (out / "choosing.json").write_text(json.dumps(result, indent=2, default=float))
    plot(table, agreement, out / "choosing.png", searches, regret)
    return result


def plot(table: pd.DataFrame, agreement: pd.DataFrame, path: Path,
         searches: pd.DataFrame | None = None, regret: pd.DataFrame | None = None) -> None:
    """Each score against fine-tuned accuracy (one marker per candidate, in a legend);
    with the searches, a last panel: each search's test accuracy per seed and its compute,
    and (with ``regret``) the range of every candidate's accuracy on that seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(agreement["score"])
    panels = len(names) + (searches is not None and len(searches) > 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.8))
    taus = agreement.set_index("score")["tau_mean_over_seeds"]
    markers = "osD^v<>P*X"
    for ax, score in zip(axes, names):
        for i, (name, row) in enumerate(table.iterrows()):
            ax.scatter(row[score], 100 * row["accuracy"], marker=markers[i % len(markers)],
                       label=name, s=40)
        ax.set_xlabel(f"{score} (before training)")
        ax.set_title(f"weighted tau {taus[score]:.2f}")
    axes[0].set_ylabel("fine-tuned test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    if panels > len(names):
        ax = axes[-1]
        for kind, marker in (("grid", "o"), ("halving", "s")):
            rows = searches[searches["search"] == kind].sort_values("seed")
            label = (f"{kind} ({int(rows['epochs'].mean())} epochs, "
                     f"{rows['seconds'].mean() / 60:.1f} min)")
            if regret is not None and f"{kind}_accuracy" in regret:
                # every setting read from the oracle run: one budget, one machine
                ax.plot(regret["seed"], regret[f"{kind}_accuracy"], marker=marker, label=label)
            else:
                ax.plot(rows["seed"], 100 * rows["accuracy"], marker=marker, label=label)
        if regret is not None:
            ax.vlines(regret["seed"], regret["worst"], regret["best"], color="0.75", lw=6,
                      label="every setting (worst to best)", zorder=0)
            ax.set_ylabel("test accuracy of the chosen setting (%),\nevery setting fitted "
                          "the same way")
        else:
            ax.set_ylabel("test accuracy of the search's choice (%)")
        ax.set_xlabel("seed (its own 10/class draw)")
        ax.set_title("Co-Tuning on Lite0: trade_off x lr")
        ax.set_xticks(sorted(searches["seed"].unique()))
        ax.legend(fontsize=7)
    fig.suptitle("Fashion-MNIST, 10 images per class: transferability scores vs fine-tuned "
                 "accuracy (mean of seeds), and successive halving vs the full grid")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--part", default="0/1", help="i/n: take every n-th job from the i-th")
    parser.add_argument("--stages", nargs="*", default=["scores", "finetune", "search", "oracle"],
                        choices=["scores", "finetune", "search", "oracle"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report", action="store_true", help="only print and save the report")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.report:
        settings = Settings.quick() if QUICK else Settings()
        run = Run(settings, args.out, tuple(int(v) for v in args.part.split("/")))
        (args.out / "settings.json").write_text(json.dumps(asdict(settings), indent=2, default=str))
        for stage in args.stages:
            {"scores": run.score_jobs, "finetune": run.finetune_jobs,
             "search": run.search_jobs, "oracle": run.oracle_jobs}[stage]()
    report(args.out)
