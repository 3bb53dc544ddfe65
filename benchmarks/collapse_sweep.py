"""Does Co-Tuning ever end far below plain fine-tuning? A lr x multiplier x trade_off sweep.

On the built-in pair (GlyphNet -> UCI digits, 5% of the training split),
every ``lr`` x ``backbone_lr_mult`` cell is fitted with plain fine-tuning and
with Co-Tuning at each ``trade_off``, on the same paired seeds (same subset,
data order and head initialisation), with every other parameter at the
estimator's defaults.  The goal: no cell where Co-Tuning ends more than 2
points below fine-tuning at the same ``lr`` and multiplier, unless
fine-tuning itself collapsed there (ended more than ``COLLAPSED`` points
below its best cell).  The old GlyphNet collapsed to ~28% at multiplier 1.0.

Usage::

    python benchmarks/collapse_sweep.py            # full sweep, ~5 minutes on 2 cores
    python benchmarks/collapse_sweep.py --quick    # CI size, results to a temporary folder

Writes ``results/collapse_sweep.json``, ``.csv`` and a heatmap ``.png``
(Co-Tuning minus fine-tuning, in points, one panel per ``trade_off``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from sk_cotuning import CoTuningClassifier
from sk_cotuning.datasets import sample_rate_indices
from sk_cotuning.jobs.digits import digits_split

HERE = Path(__file__).resolve().parent
FULL = dict(lrs=(0.003, 0.01, 0.03, 0.1), mults=(0.1, 0.3, 1.0), trade_offs=(0.5, 2.3, 5.0), seeds=2)
QUICK = dict(lrs=(0.01, 0.1), mults=(1.0,), trade_offs=(2.3,), seeds=1)
#: fine-tuning "collapsed" in a cell that ends this many points below its best cell
COLLAPSED = 20.0


def fit_score(data, idx, seed: int, **params) -> float:
    X_train, X_test, y_train, y_test = data
    clf = CoTuningClassifier("glyphnet", max_epochs=40, batch_size=16, verbose=0,
                             random_state=seed, device="cpu", **params)
    try:
        clf.fit(X_train[idx], y_train[idx])
    except FloatingPointError:  # diverged: the estimator refuses to return NaNs
        return float("nan")
    return 100 * float(clf.score(X_test, y_test))


def sweep(grid: dict, rate: float = 0.05) -> pd.DataFrame:
    data = digits_split(540)
    rows = []
    for seed in range(grid["seeds"]):
        idx = sample_rate_indices(data[2], rate, random_state=seed)
        for lr, mult in itertools.product(grid["lrs"], grid["mults"]):
            start = time.perf_counter()
            ft = fit_score(data, idx, seed, lr=lr, backbone_lr_mult=mult, trade_off=0.0)
            for t in grid["trade_offs"]:
                co = fit_score(data, idx, seed, lr=lr, backbone_lr_mult=mult, trade_off=t)
                rows.append(dict(seed=seed, lr=lr, backbone_lr_mult=mult, trade_off=t,
                                 fine_tuning=ft, cotuning=co, difference=co - ft))
            print(f"seed {seed} lr {lr:<6g} mult {mult:<4g} fine-tuning {ft:6.2f}  Co-Tuning "
                  + " ".join(f"{r['cotuning']:6.2f}" for r in rows[-len(grid['trade_offs']):])
                  + f"  ({time.perf_counter() - start:.0f}s)", flush=True)
    return pd.DataFrame(rows)


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trade_offs = sorted(summary["trade_off"].unique())
    fig, axes = plt.subplots(1, len(trade_offs), figsize=(4 * len(trade_offs), 3.4), squeeze=False)
    for k, (ax, t) in enumerate(zip(axes[0], trade_offs)):
        cell = summary[summary["trade_off"] == t].pivot(index="backbone_lr_mult", columns="lr",
                                                          values="difference")
        image = ax.imshow(cell.values, cmap="RdBu", vmin=-10, vmax=10, origin="lower")
        ax.set_xticks(range(len(cell.columns)), [f"{v:g}" for v in cell.columns])
        ax.set_yticks(range(len(cell.index)), [f"{v:g}" for v in cell.index])
        for (i, j), v in np.ndenumerate(cell.values):
            ax.text(j, i, f"{v:+.1f}", ha="center", va="center", fontsize=9)
        ax.set_xlabel("lr")
        if k == 0:
            ax.set_ylabel("backbone_lr_mult")
        ax.set_title(f"trade_off {t:g}")
    fig.colorbar(image, ax=axes[0].tolist(), label="Co-Tuning - fine-tuning (points)")
    fig.suptitle("GlyphNet -> digits, 5%: Co-Tuning minus fine-tuning (mean over seeds)")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    grid = QUICK if args.quick else FULL
    out = Path(tempfile.mkdtemp()) if args.quick else HERE / "results"
    start = time.perf_counter()
    runs = sweep(grid)
    summary = (runs.groupby(["lr", "backbone_lr_mult", "trade_off"], as_index=False)
               [["fine_tuning", "cotuning", "difference"]].mean())
    worst = summary.loc[summary["difference"].idxmin()]
    ft_collapsed = summary["fine_tuning"] < summary["fine_tuning"].max() - COLLAPSED
    failing = summary[(summary["difference"] < -2) & ~ft_collapsed]
    result = {
        "grid": grid,
        "rate": 0.05,
        "seconds": round(time.perf_counter() - start, 1),
        "worst_cell": worst.to_dict(),
        "goal_no_cell_below_minus_2": bool(failing.empty),
        "cells_below_minus_2": failing.to_dict(orient="records"),
        "cells_where_fine_tuning_collapsed": int(ft_collapsed.sum()),
        "summary": summary.to_dict(orient="records"),
    }
    runs.to_csv(out / "collapse_sweep_runs.csv", index=False)
    (out / "collapse_sweep.json").write_text(json.dumps(result, indent=2))
    plot(summary, out / "collapse_sweep.png")
    print(summary.round(2).to_string(index=False))
    print(f"worst cell: {worst.to_dict()}")
    print(f"no cell more than 2 points below fine-tuning (unless fine-tuning collapsed there): "
          f"{result['goal_no_cell_below_minus_2']}")
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
