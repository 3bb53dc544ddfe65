"""The main job: Co-Tuning vs plain fine-tuning on the UCI digits, offline.

Source model: the bundled GlyphNet (62 printed characters: digits and letters).  Target: the UCI
handwritten digits (``sklearn.datasets.load_digits``), of which a small
stratified sampling rate of the training split is used for training.  Plain
fine-tuning (``trade_off=0``) and Co-Tuning run with identical settings, on
the same subset, data order and target-head initialisation for each seed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sk_cotuning.co_tuning import CoTuningClassifier
from sk_cotuning.datasets import CHARACTERS, sample_rate_indices
from sk_cotuning.plotting import (
    plot_paired_accuracy,
    plot_relationship,
    top_source_classes,
)
from sk_cotuning.regularization.co_tuning import DEFAULT_TRADE_OFF

__all__ = [
    "DemoConfig",
    "comparison_lines",
    "digits_split",
    "format_report",
    "paired_summary",
    "run_demo",
    "save_figure",
]

FINE_TUNING, CO_TUNING = "fine-tuning", "Co-Tuning"


@dataclass
class DemoConfig:
    """Settings of the main job (the command line's options).

    Attributes
    ----------
    rate : float
        Sampling rate of the digits' training split (0.05: 60 images).
    seeds : int
        Paired runs; seed ``i`` draws subset ``i`` and seeds both fits.
    epochs : int
        Training epochs of each fit.
    trade_off : float
        Co-Tuning's loss weight.
    lr : float
        Learning rate of the target head (the backbone trains at 0.1x).
    batch_size : int
        Mini-batch size.
    test_size : int
        Held-out test images of the fixed stratified split (540 of 1797).
    out : str
        Output folder for the JSON results and the figure.
    """

    rate: float = 0.05
    seeds: int = 5
    epochs: int = 40
    trade_off: float = DEFAULT_TRADE_OFF
    lr: float = 0.01  # the estimator's default: nothing hand-picked
    batch_size: int = 16
    test_size: int = 540
    out: str = "cotuning-output"
    extra: dict[str, Any] = field(default_factory=dict)


def digits_split(test_size: int = 540, random_state: int = 0):
    """The fixed stratified train/test split of the UCI digits.

    Returns
    -------
    X_train, X_test : ndarray of shape (n, 64), values 0..16
    y_train, y_test : ndarray of shape (n,)
    """
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=test_size, stratify=y, random_state=random_state)


def _classifier(config: DemoConfig, trade_off: float, seed: int) -> CoTuningClassifier:
    return CoTuningClassifier(
        "glyphnet",
        trade_off=trade_off,
        lr=config.lr,
        max_epochs=config.epochs,
        batch_size=config.batch_size,
        random_state=seed,
        verbose=0,
        device="cpu",
        **config.extra,
    )


def run_demo(config: DemoConfig | None = None, progress: Callable[[str], None] | None = print) -> dict:
    """Fit plain fine-tuning and Co-Tuning over paired seeds; save JSON and a figure.

    Parameters
    ----------
    config : DemoConfig, default=None
        Settings; the defaults when ``None``.
    progress : callable or None, default=print
        Receives a line per finished fit.

    Returns
    -------
    results : dict
        ``config``, per-method accuracies per seed, the mean relationship
        ``(10, 62)``, its top-3 source characters per digit, the summary statistics,
        and the paths written.
    """
    config = config or DemoConfig()
    say = progress or (lambda line: None)
    X_train, X_test, y_train, y_test = digits_split(config.test_size)
    acc: dict[str, list[float]] = {FINE_TUNING: [], CO_TUNING: []}
    relationships = []
    start = time.perf_counter()
    for seed in range(config.seeds):
        idx = sample_rate_indices(y_train, config.rate, random_state=seed)
        line = f"[seed {seed + 1}/{config.seeds}] {len(idx)} training images:"
        for name, trade_off in ((FINE_TUNING, 0.0), (CO_TUNING, config.trade_off)):
            clf = _classifier(config, trade_off, seed).fit(X_train[idx], y_train[idx])
            acc[name].append(float(clf.score(X_test, y_test)))
            line += f"  {name} {100 * acc[name][-1]:.2f}%"
            if trade_off > 0:
                relationships.append(clf.relationship_.relationship_)
        say(line + f"  ({time.perf_counter() - start:.0f}s)")
    R = np.mean(relationships, axis=0)
    ft, co = np.array(acc[FINE_TUNING]), np.array(acc[CO_TUNING])
    summary = paired_summary(ft, co, len(idx), time.perf_counter() - start)
    results = {
        "config": asdict(config),
        "accuracy": acc,
        "summary": summary,
        "relationship_mean": R.round(5).tolist(),
        "top3_sources": {
            str(d): [(name, round(p, 4)) for name, p in top]
            for d, top in enumerate(top_source_classes(R, CHARACTERS, k=3))
        },
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results["figure"] = str(_figure(R, acc, out / "cotuning_digits.png"))
    results["json"] = str(out / "cotuning_digits.json")
    Path(results["json"]).write_text(json.dumps(results, indent=2, default=repr) + "\n")
    return results


def paired_summary(ft: np.ndarray, co: np.ndarray, n_train: int, seconds: float) -> dict:
    """Means, standard deviations, the paired difference and the error-rate reduction.

    Parameters
    ----------
    ft, co : ndarray of shape (n_seeds,)
        Accuracies of fine-tuning and Co-Tuning, paired by seed.

    Returns
    -------
    summary : dict
        The standard deviations and the standard error are ``None`` for a
        single seed (one value has no spread; ``0`` would claim it has none).
    """
    diff = co - ft
    n = len(diff)
    return {
        "n_train": int(n_train),
        "fine_tuning_mean": float(ft.mean()),
        "fine_tuning_std": float(ft.std(ddof=1)) if n > 1 else None,
        "cotuning_mean": float(co.mean()),
        "cotuning_std": float(co.std(ddof=1)) if n > 1 else None,
        "paired_difference_mean": float(diff.mean()),
        "paired_difference_se": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "wins": int((diff > 0).sum()),
        "ties": int((diff == 0).sum()),
        "losses": int((diff < 0).sum()),
        "error_rate_reduction": float((co.mean() - ft.mean()) / (1 - ft.mean())) if ft.mean() < 1 else 0.0,
        "seconds": round(seconds, 1),
    }


def _figure(R: np.ndarray, acc: dict[str, list[float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(15, 4.2), gridspec_kw={"width_ratios": [4.2, 1]}
    )
    plot_relationship(R, target_names=range(10), source_names=CHARACTERS, ax=left)
    left.set_title("p(source character | target digit), mean over seeds")
    left.set_ylabel("target digit")
    left.set_xlabel("source character (printed)")
    plot_paired_accuracy(acc, ax=right)
    return save_figure(fig, path)


def comparison_lines(summary: dict) -> list[str]:
    """The accuracy table and the paired difference of a fine-tuning/Co-Tuning comparison."""
    s = summary

    def spread(value: float | None) -> str:
        return f" ± {100 * value:.2f}" if value is not None else " (one seed)"

    se = s["paired_difference_se"]
    return [
        f"{'method':<14}{'accuracy (%)':>22}",
        f"{FINE_TUNING:<14}{100 * s['fine_tuning_mean']:>14.2f}{spread(s['fine_tuning_std'])}",
        f"{CO_TUNING:<14}{100 * s['cotuning_mean']:>14.2f}{spread(s['cotuning_std'])}",
        "",
        f"paired difference (Co-Tuning - fine-tuning): {100 * s['paired_difference_mean']:+.2f} "
        + (f"± {100 * se:.2f} points (mean ± s.e.); " if se is not None
           else "points (one seed: no standard error); ")
        + f"wins/ties/losses {s['wins']}/{s['ties']}/{s['losses']}",
        f"error-rate reduction: {100 * s['error_rate_reduction']:.1f}%",
    ]


def save_figure(fig, path: Path) -> Path:
    """Lay out, save at 110 dpi and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_report(results: dict) -> str:
    """The printed table: accuracy per method, paired difference, top source characters."""
    s, c = results["summary"], results["config"]
    lines = [
        f"Co-Tuning vs fine-tuning on the UCI digits: {100 * c['rate']:g}% sampling rate "
        f"({s['n_train']} training images), {c['seeds']} paired seed{'s' * (c['seeds'] != 1)}, "
        f"{c['test_size']} test images",
        "",
        *comparison_lines(s),
        "",
        "top-3 printed source characters per handwritten digit (p(character | digit)):",
    ]
    for digit, top in results["top3_sources"].items():
        lines.append(f"  {digit} -> " + ", ".join(f"{name} {p:.2f}" for name, p in top))
    lines += ["", f"figure: {results['figure']}", f"results: {results['json']}",
              f"time: {s['seconds']:.0f}s"]
    return "\n".join(lines)
