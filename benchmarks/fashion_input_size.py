"""Does Co-Tuning gain more where the ImageNet head reads the garments? 64 px vs 224 px.

At 64 px (``imagenet_to_fashion.ipynb``) EfficientNet-Lite0's ImageNet head
reads upsampled 28 px Fashion-MNIST thumbnails poorly (LEEP -0.64; most of a
garment's top-3 source classes are not garments), Co-Tuning's error-rate
reduction is 7.6% at 10 images per class and 8.3% at 1% (the goal was 10%),
and a relationship with shifted rows keeps a third of its gain.  The
paper's models see 224 px.  This runs the same paired comparison at
``size`` px (default 224, the model's own input size): plain fine-tuning,
Co-Tuning and the shifted-row control at one rate (``--rate``: 10 images
per class, the default, or ``0.01``), with the same seeds, subsets, test
images and epochs as the 64 px benchmark, and **the base recipe and
weight the 64 px benchmark chose at that rate, unchanged** (read from its
``imagenet_to_fashion_tuning.csv``: cross-validation on training data; at
both rates ``lr`` 0.03, backbone at the full rate, ``trade_off`` 2.3).
Nothing is re-tuned at 224 px, for either method: this measures what the
input size changes under one recipe, not each method at its best there.

A fit at 224 px costs about 10x one at 64 px on a CPU (about 9 minutes per
fit at 10 per class, about 25 at 1%, on one core), so the run is resumable
and shared by processes like the 64 px one::

    python fashion_input_size.py --part 0/2 --threads 1 &
    python fashion_input_size.py --part 1/2 --threads 1 &
    python fashion_input_size.py --rate 0.01 --part 0/2 --threads 1 &  # and 1/2
    python fashion_input_size.py --report   # every rate on record: table, JSON, figure

Fine-tuning and Co-Tuning run on every seed first, then the control.

``--tune`` answers the question that leaves open: each method at its best at
this size. It applies the 64 px benchmark's protocol at ``size`` px (plain
fine-tuning chooses ``lr`` x ``backbone_lr_mult`` by 3-fold cross-validation
on seed 0's training subset, then Co-Tuning its ``trade_off`` from its
default and one step either side), runs the three methods under that choice,
and reuses the runs above that were fitted with the same parameters
(``results/imagenet_to_fashion_224_tuned/``; about 55 minutes of tuning on
two single-threaded processes at 10 per class)::

    python fashion_input_size.py --tune --part 0/2 --threads 1 &   # and 1/2
    python fashion_input_size.py --tune --report
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import fashion_protocol as fp

RATE = "10/class"
#: the rates this benchmark runs at (those the 64 px benchmark ran every method at)
RATES = ("10/class", 0.01)
HERE = Path(__file__).parent
OUT = HERE / "results" / "imagenet_to_fashion_224"
#: the same comparison with the base recipe and weight tuned at this size (``--tune``)
TUNED = HERE / "results" / "imagenet_to_fashion_224_tuned"
REFERENCE = HERE / "results" / "imagenet_to_fashion"


@dataclass
class SizeProtocol(fp.Protocol):
    """The 64 px protocol at another size, restricted to ``wanted`` methods."""

    wanted: tuple = (fp.FT, fp.COT)

    def methods(self, rate, seed: int) -> list[str]:
        return list(self.wanted)


def parse_rate(text: str):
    """``"10/class"`` stays a string, ``"0.01"`` becomes the sampling rate 0.01."""
    rate = text if "/" in text else float(text)
    if rate not in RATES:
        raise argparse.ArgumentTypeError(
            f"--rate must be one of {', '.join(map(str, RATES))} (the rates the 64 px "
            f"benchmark tuned every method at), got {text!r}")
    return rate


def recipe(rate, reference: Path = REFERENCE) -> tuple[dict, dict]:
    """The base recipe and Co-Tuning's weight the 64 px benchmark chose at ``rate``.

    Read from ``reference``'s tuning record (cross-validation on seed 0's
    training subset), with :func:`fashion_protocol.choose`, the rule that
    benchmark applied.
    """
    tuning = fp.load_tuning(reference)
    if len(tuning):
        tuning = tuning[tuning["rate"].astype(str) == str(rate)]
        base_rows = tuning[(tuning["stage"] == "base") & (tuning["method"] == fp.FT)]
        weight_rows = tuning[(tuning["stage"] == "weight") & (tuning["method"] == fp.COT)]
    if not len(tuning) or not len(base_rows) or not len(weight_rows):
        raise FileNotFoundError(
            f"{reference / 'imagenet_to_fashion_tuning.csv'} holds no choice for rate "
            f"{rate}: run the 64 px benchmark (fashion_protocol.py) at that rate first.")
    base = fp.choose(base_rows)
    weight = fp.choose(weight_rows)[fp._weight_key(fp.COT)]
    return base, {fp.COT: float(weight)}


def protocol(size: int = 224, seeds: int = 5, epochs: int | None = None,
             rate=RATE) -> SizeProtocol:
    """The 64 px benchmark's settings at ``size`` px (its epochs unless ``epochs``)."""
    return SizeProtocol(rates=(rate,), seeds=seeds, extra_seeds=0, control_rates=(),
                        size=size, epochs={rate: epochs or fp.Protocol().epochs[rate]})


def run(size: int, seeds: int, part: tuple[int, int], out: Path = OUT,
        epochs: int | None = None, rate=RATE, reference: Path = REFERENCE) -> None:
    """FT and Co-Tuning on every seed, then the control; resumes from ``out``'s CSV."""
    out.mkdir(parents=True, exist_ok=True)
    base, weights = recipe(rate, reference)
    proto = protocol(size, seeds, epochs, rate)
    runner = fp._Runner(proto, out, print, part)
    for wanted in ((fp.FT, fp.COT), (fp.CONTROL,)):
        proto.wanted = wanted
        runner.final(rate, base, weights, range(seeds))


def _reuse_untuned(out: Path, untuned: Path, rate, base: dict, weights: dict) -> int:
    """Copy the runs of ``untuned`` that were fitted with exactly the recipe chosen here.

    A fit is deterministic on one machine for a given thread count, so a seed
    and method already fitted at this size with the same parameters need not
    run again (the run it copies is one draw of the same recipe; on another
    machine it would differ within the seed-to-seed noise).
    Done once, atomically (the first process to get here writes the file;
    any other finds it and goes on). Returns the number of runs copied.
    """
    runs_csv = out / "imagenet_to_fashion_runs.csv"
    old = fp.load_runs(untuned)
    if runs_csv.exists() or not len(old):
        return 0
    old = old[old["rate"].astype(str) == str(rate)]
    reused = old[[json.loads(p) == fp.method_params(m, base, weights)
                  for m, p in zip(old["method"], old["params"])]]
    if not len(reused):
        return 0
    tmp = out / f".runs.{os.getpid()}.csv"
    reused.to_csv(tmp, index=False)
    try:
        os.link(tmp, runs_csv)  # atomic: fails if another process wrote it first
    except FileExistsError:
        return 0
    finally:
        tmp.unlink()
    cotuning_seeds = set(reused.loc[reused["method"] == fp.COT, "seed"])
    for f in untuned.glob(f"relationship_{str(rate).replace('/', '_')}_*.npy"):
        if int(f.stem.rsplit("_", 1)[1]) in cotuning_seeds:
            shutil.copy(f, out / f.name)
    return len(reused)


def run_tuned(size: int, seeds: int, part: tuple[int, int], out: Path = TUNED, rate=RATE,
              untuned: Path = OUT, epochs: int | None = None) -> tuple[dict, dict]:
    """The protocol's own tuning at ``size`` px, then the paired runs under its choice.

    As at 64 px: plain fine-tuning chooses the base recipe (``lr`` x
    ``backbone_lr_mult``) by 3-fold cross-validation on seed 0's subset, then
    Co-Tuning its ``trade_off`` from its default and one step either side;
    fine-tuning, Co-Tuning and the control then run on every seed with those
    choices. Runs of ``untuned`` fitted with the same parameters are reused.
    """
    out.mkdir(parents=True, exist_ok=True)
    proto = protocol(size, seeds, epochs, rate)
    runner = fp._Runner(proto, out, print, part)
    base, weights = runner.tune(rate)
    copied = _reuse_untuned(out, untuned, rate, base, weights)
    if copied:
        print(f"reused {copied} runs of {untuned.name}: fitted with the same recipe")
    for wanted in ((fp.FT, fp.COT), (fp.CONTROL,)):
        proto.wanted = wanted
        runner.final(rate, base, weights, range(seeds))
    return base, weights


def source_top3(out: Path, rate=RATE) -> dict[str, list[str]] | None:
    """The mean relationship's top-3 ImageNet classes per garment at ``rate``."""
    from sk_cotuning.backbones._timm import imagenet_classes
    from sk_cotuning.plotting import top_source_classes

    R = fp.mean_relationship(out, rate)
    if R is None:
        return None
    names = imagenet_classes(R.shape[1])
    return {garment: [f"{name} {p:.2f}" for name, p in tops]
            for garment, tops in zip(fp.FASHION_MNIST_CLASSES,
                                     top_source_classes(R, names, k=3))}


def leep_by_size(sizes: tuple[int, ...], seeds: int, rate=RATE) -> dict[str, list[float]]:
    """LEEP of the pre-trained ImageNet head on each seed's training subset, per size:
    how well the head reads the garments (``rank_backbones``, no training)."""
    from sk_cotuning import rank_backbones

    X_pool, y_pool = fp.load_fashion_mnist("train")
    scores: dict[str, list[float]] = {}
    for size in sizes:
        for seed in range(seeds):
            idx = fp.subset(y_pool, rate, seed)
            ranking = rank_backbones(["efficientnet_lite0"], fp.resize(X_pool[idx], size),
                                     y_pool[idx], scores="leep", device="cpu", verbose=0)
            scores.setdefault(f"{size} px", []).append(float(ranking["leep"][0]))
    return scores


def _rates_on_record(runs: pd.DataFrame) -> list:
    """The rates of ``RATES`` that ``runs`` holds, in ``RATES``' order."""
    held = set(runs["rate"].astype(str)) if len(runs) else set()
    return [rate for rate in RATES if str(rate) in held]


def _at(runs: pd.DataFrame, rate) -> pd.DataFrame:
    if not len(runs):
        return runs
    return runs[(runs["rate"].astype(str) == str(rate))
                & runs["method"].isin([fp.FT, fp.COT, fp.CONTROL])]


def _lead(runs: pd.DataFrame, a: str, b: str) -> dict:
    """Paired difference ``a - b`` in points: mean, s.e., seeds, wins, losses."""
    wide = runs.pivot_table(index="seed", columns="method", values="accuracy")
    if not {a, b} <= set(wide):
        return {}
    lead = fp._paired(wide, a, b)
    return {"mean": float(lead.mean()),
            "se": float(lead.std(ddof=1) / np.sqrt(len(lead))) if len(lead) > 1 else None,
            "seeds": int(len(lead)), "wins": int((lead > 0).sum()), "losses": int((lead < 0).sum())}


def report(out: Path = OUT, reference: Path = REFERENCE, size: int = 224) -> pd.DataFrame:
    """Both sizes side by side at every rate run at ``size`` px (paired within a size).

    ``out`` holds the runs at ``size`` px, ``reference`` the 64 px benchmark's.
    Prints the table and saves ``input_size_summary.csv``, ``input_size.json``
    (the recipes, the table, Co-Tuning's lead over the control, LEEP and the
    relationship's top ImageNet classes per rate) and ``input_size.png``.
    """
    label = f"{size} px"
    runs_size, runs_64 = fp.load_runs(out), fp.load_runs(reference)
    rates = _rates_on_record(runs_size)
    if not rates:
        raise FileNotFoundError(f"No runs at {label} on record in {out}: run this script first.")
    rows, extra = [], {"Co-Tuning vs control (points)": {}, "LEEP of the pre-trained head": {},
                       f"top-3 ImageNet classes per garment at {label}": {}}
    recipes = {}
    for rate in rates:
        base, weights = recipe(rate, reference)
        recipes[str(rate)] = {"base": base, "weights": weights,
                              "epochs": fp.Protocol().epochs[rate]}
        leads = {}
        for label_, runs in (("64 px", _at(runs_64, rate)), (label, _at(runs_size, rate))):
            if not len(runs):
                continue
            rows.append(fp.summarise(runs).assign(size=label_))
            lead = _lead(runs, fp.COT, fp.CONTROL)  # what the right rows add over shifted ones
            if lead:
                leads[label_] = lead
        extra["Co-Tuning vs control (points)"][str(rate)] = leads
        seeds = int(_at(runs_size, rate)["seed"].nunique())
        leep = leep_by_size((64, size), seeds, rate)
        extra["LEEP of the pre-trained head"][str(rate)] = {
            k: {"mean": float(np.mean(v)), "per seed": [round(x, 3) for x in v]}
            for k, v in leep.items()}
        extra[f"top-3 ImageNet classes per garment at {label}"][str(rate)] = source_top3(out, rate)
    table = pd.concat(rows, ignore_index=True)
    shown = table[["rate", "size", "method", "seeds", "mean", "std", "diff vs FT", "se", "wins",
                   "ties", "losses", "error-rate reduction %", "epoch cost vs FT"]]
    with pd.option_context("display.width", 170, "display.precision", 2):
        print(shown.to_string(index=False))
    out.mkdir(parents=True, exist_ok=True)
    shown.to_csv(out / "input_size_summary.csv", index=False)
    (out / "input_size.json").write_text(json.dumps(
        {"protocol": {"rates": recipes, "sizes": [64, size],
                      "note": "the 64 px benchmark's choices at each rate, not re-tuned"},
         "summary": shown.to_dict(orient="records"), **extra}, indent=1, default=str))
    for key, value in extra.items():
        print(f"\n{key}:")
        print(json.dumps(value, indent=1))
    _plot([("64 px", runs_64), (label, runs_size)], rates, out / "input_size.png",
          "EfficientNet-Lite0 (ImageNet) -> Fashion-MNIST: one recipe at two sizes")
    return shown


def _plot(panels: list[tuple[str, pd.DataFrame]], rates: list, path: Path, title: str) -> None:
    """Per-seed paired accuracies, fine-tuning vs Co-Tuning (and the control): one row per
    rate, one column per ``(label, runs)`` panel, one accuracy scale per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rates), len(panels), figsize=(5 * len(panels), 4 * len(rates)),
                             squeeze=False)
    for row, rate in zip(axes, rates):
        for ax, (label_, runs) in zip(row, panels):
            runs = _at(runs, rate)
            wide = 100 * runs.pivot_table(index="seed", columns="method", values="accuracy")
            methods = [m for m in (fp.FT, fp.COT, fp.CONTROL) if m in wide]
            for seed, values in wide[methods].iterrows():
                ax.plot(range(len(methods)), values.to_numpy(), marker="o", alpha=0.6,
                        label=f"seed {seed}")
            ax.set_xticks(range(len(methods)), methods, fontsize=8)
            n_train = int(runs["n_train"].iloc[0]) if len(runs) else 0
            ax.set_title(f"{label_}, {fp.rate_label(str(rate), n_train)}", fontsize=10)
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
        low = min(ax.get_ylim()[0] for ax in row)  # one scale per rate: the level shift shows
        high = max(ax.get_ylim()[1] for ax in row)
        for ax in row:
            ax.set_ylim(low, high)
        row[-1].legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cv_table(tuning: pd.DataFrame, rate) -> pd.DataFrame:
    """Mean 3-fold CV accuracy (%) per candidate of each tuning stage at ``rate``."""
    tuning = tuning[tuning["rate"].astype(str) == str(rate)]
    tuning = tuning[(tuning["method"] == fp.FT) | (tuning["method"] == fp.COT)]
    rows = []
    for (stage, method), group in tuning.groupby(["stage", "method"], sort=False):
        for params, score in fp.cv_scores(group).items():
            rows.append({"stage": stage, "method": method,
                         "candidate": fp._short(json.loads(params), stage),
                         "cv accuracy %": 100 * score,
                         "folds": int((group["params"] == params).sum())})
    return pd.DataFrame(rows)


def report_tuned(out: Path = TUNED, untuned: Path = OUT, reference: Path = REFERENCE,
                 size: int = 224, rate=RATE) -> pd.DataFrame:
    """The runs under the recipe tuned at ``size`` px, beside the same size under the 64 px
    recipe and 64 px itself; the cross-validation scores of both sizes' candidates.

    Prints the tables and saves ``tuned_summary.csv``, ``tuned_cv.csv``,
    ``tuned.json`` and ``tuned.png`` in ``out``.
    """
    tuning = fp.load_tuning(out)
    runs = fp.load_runs(out)
    if not len(runs) or not len(_at(runs, rate)):
        raise FileNotFoundError(f"No tuned runs at {size} px on record in {out}: "
                                f"run this script with --tune first.")
    chosen, weights = recipe(rate, out)
    weight = weights[fp.COT]
    base64, weights64 = recipe(rate, reference)
    cv = pd.concat([cv_table(tuning, rate).assign(size=f"{size} px"),
                    cv_table(fp.load_tuning(reference), rate).assign(size="64 px")],
                   ignore_index=True)
    panels = [("64 px, tuned at 64 px", _at(fp.load_runs(reference), rate)),
              (f"{size} px, the 64 px recipe", _at(fp.load_runs(untuned), rate)),
              (f"{size} px, tuned at {size} px", _at(runs, rate))]
    panels = [(label, r) for label, r in panels if len(r)]
    table = pd.concat([fp.summarise(r).assign(setting=label) for label, r in panels],
                      ignore_index=True)
    shown = table[["setting", "method", "seeds", "mean", "std", "diff vs FT", "se", "wins",
                   "ties", "losses", "error-rate reduction %", "epoch cost vs FT"]]
    leads = {label: _lead(r, fp.COT, fp.CONTROL) for label, r in panels}
    with pd.option_context("display.width", 170, "display.precision", 2):
        print(f"Cross-validation on seed 0's subset ({rate}), mean accuracy over 3 folds:")
        print(cv.to_string(index=False))
        print(f"\nChosen at {size} px: {chosen}, trade_off {weight} "
              f"(at 64 px: {base64}, trade_off {weights64[fp.COT]})\n")
        print(shown.to_string(index=False))
    print("\nCo-Tuning vs control (points):")
    print(json.dumps(leads, indent=1))
    shown.to_csv(out / "tuned_summary.csv", index=False)
    cv.to_csv(out / "tuned_cv.csv", index=False)
    (out / "tuned.json").write_text(json.dumps(
        {"rate": str(rate), "size": size,
         "chosen": {f"{size} px": {"base": chosen, "trade_off": weight},
                    "64 px": {"base": base64, "trade_off": weights64[fp.COT]}},
         "cross-validation": cv.to_dict(orient="records"),
         "summary": shown.to_dict(orient="records"),
         "Co-Tuning vs control (points)": leads}, indent=1, default=str))
    _plot(panels, [rate], out / "tuned.png",
          f"EfficientNet-Lite0 (ImageNet) -> Fashion-MNIST: tuned at {size} px or at 64 px")
    return shown


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rate", type=parse_rate, default=RATE,
                        help=f"one of {', '.join(map(str, RATES))} (default {RATE})")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--part", default="0/1", help="i/n: this process's share")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--tune", action="store_true",
                        help="tune the base recipe and Co-Tuning's weight at this size first "
                             f"(results in {TUNED.relative_to(HERE)})")
    parser.add_argument("--report", action="store_true", help="only summarise what is on record")
    args = parser.parse_args()
    if args.report:
        report_tuned(size=args.size) if args.tune else report(size=args.size)
    else:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        i, n = (int(v) for v in args.part.split("/"))
        if args.tune:
            run_tuned(args.size, args.seeds, (i, n), rate=args.rate)
        else:
            run(args.size, args.seeds, (i, n), rate=args.rate)
