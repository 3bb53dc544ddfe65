"""GlyphNet: the built-in offline source model, pre-trained on the glyph corpus.

A small CNN trained to recognise the 52 Latin letters rendered by
:func:`sk_cotuning.datasets.make_glyphs` in the format of the UCI handwritten
digits (8x8, values 0..16).  Its weights ship with the package
(``glyphnet.pt``, with its training record ``glyphnet.json``), so
``CoTuningClassifier(backbone="glyphnet").fit(X_digits, y_digits)`` runs
offline.  This module also holds the script that made them::

    python -m sk_cotuning.backbones.glyphnet [--epochs 15] [--n-per-letter 300]

Generation and pre-training are deterministic for a fixed seed and take a
few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sk_cotuning.backbones._base import Backbone, Preprocessing, load_into, split_model
from sk_cotuning.backbones._weights import resolve_weights
from sk_cotuning.runtime import seeded

__all__ = ["GlyphNet", "PREPROCESSING", "WEIGHTS_FILE", "RECORD_FILE", "build", "pretrain"]

WEIGHTS_FILE = Path(__file__).with_name("glyphnet.pt")
RECORD_FILE = Path(__file__).with_name("glyphnet.json")

#: Pixel mean and standard deviation of the glyph corpus (seed 0) on the
#: [0, 1] scale (value / 16).
PREPROCESSING = Preprocessing(
    mean=(0.322,),
    std=(0.3705,),
    value_range=16.0,
    in_channels=1,
    native_size=(8, 8),
)

#: Seed of the held-out renderings that measure the source accuracy.
HELDOUT_SEED = 12345


class GlyphNet(nn.Module):
    """Three 3x3 conv layers and a 128-wide feature layer, then ``fc``.

    Notes
    -----
    - input: ``(N, 1, 8, 8)`` normalised images.
    - output: ``(N, n_classes)`` logits (52 letters).
    """

    def __init__(self, n_classes: int = 62) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(64, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 2x2
            nn.Flatten(),
            nn.Linear(512, 128),
            nn.ReLU(),
        )
        self.fc = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build(weights: Any = "DEFAULT", source_head: str | None = None, verbose: bool = False) -> Backbone:
    """The glyph model as a :class:`~sk_cotuning.backbones.Backbone`.

    Parameters
    ----------
    weights : "DEFAULT", path-like, mapping or None
        ``"DEFAULT"``: the bundled pre-trained weights; a state-dict file or
        mapping; ``None``: random initialisation (with a warning).
    source_head : str or None
        Ignored unless given, when it must be ``"fc"``.
    verbose : bool
        Unused (nothing is downloaded).
    """
    from sk_cotuning.datasets.glyphs import CHARACTERS

    model = GlyphNet(len(CHARACTERS))
    resolved = resolve_weights(weights, "glyphnet", default_file=WEIGHTS_FILE)
    if resolved.state is not None:
        load_into(model, resolved.state, "glyphnet", resolved.origin)
    features, head = split_model(model, source_head or "fc", len(CHARACTERS))
    return Backbone(features, head, list(CHARACTERS), PREPROCESSING, True, "glyphnet")


def _normalise(X: np.ndarray) -> torch.Tensor:
    """uint8 0..16 glyphs ``(N, 8, 8)`` -> normalised float ``(N, 1, 8, 8)``."""
    x = torch.as_tensor(X, dtype=torch.float32).unsqueeze(1) / PREPROCESSING.value_range
    return (x - PREPROCESSING.mean[0]) / PREPROCESSING.std[0]


def source_accuracy(model: nn.Module, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Accuracy and case-merged accuracy (``o`` and ``O`` count as one)."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(_normalise(X[i : i + 1024])).argmax(1)
                          for i in range(0, len(X), 1024)]).numpy()
    def merged(codes: np.ndarray) -> np.ndarray:  # digits 0..9, then 26 upper + 26 lower
        return np.where(codes < 10, codes, 10 + (codes - 10) % 26)

    return float(np.mean(pred == y)), float(np.mean(merged(pred) == merged(y)))


def pretrain(
    n_per_letter: int = 300,
    epochs: int = 15,
    seed: int = 0,
    weight_decay: float = 0.05,
    label_smoothing: float = 0.1,
    n_heldout_per_letter: int = 100,
    out: Path | None = WEIGHTS_FILE,
    verbose: bool = True,
) -> dict[str, Any]:
    """Generate the glyph corpus and pre-train GlyphNet on it.

    Parameters
    ----------
    n_per_letter : int, default=300
        Training renderings per letter.
    epochs : int, default=15
        Training epochs (AdamW, lr 2e-3, cosine decay, batch 128).
    seed : int, default=0
        Seeds the corpus, the initialisation and the data order.
    weight_decay : float, default=0.05
        AdamW's decoupled weight decay.  With label smoothing it keeps the
        penultimate features well conditioned for transfer (plain Adam with
        1e-4 left them at norm ~62 on digits, so a new head started with
        logits of std ~2.8 and fine-tuning lost to training from scratch).
    label_smoothing : float, default=0.1
        Label smoothing of the pre-training cross-entropy.
    n_heldout_per_letter : int, default=100
        Fresh renderings per letter (seed :data:`HELDOUT_SEED`) that measure
        the held-out accuracy.
    out : Path or None
        Where to write the state dict; its record goes beside it as JSON.
        ``None`` writes nothing.
    verbose : bool, default=True
        Print progress.

    Returns
    -------
    record : dict
        Settings, held-out accuracies, time and the weights' SHA-256.
    """
    from sk_cotuning.datasets.glyphs import make_glyphs

    start = time.perf_counter()
    X, y = make_glyphs(n_per_letter, seed=seed)
    X_test, y_test = make_glyphs(n_heldout_per_letter, seed=HELDOUT_SEED)
    if verbose:
        print(f"glyph corpus: {len(X)} training and {len(X_test)} held-out images "
              f"({time.perf_counter() - start:.1f}s)")
    generator = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = GlyphNet()
    inputs, targets = _normalise(X), torch.as_tensor(y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=weight_decay)
    steps = epochs * int(np.ceil(len(X) / 128))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for i in range(0, len(X), 128):
            idx = order[i : i + 128]
            loss = nn.functional.cross_entropy(
                model(inputs[idx]), targets[idx], label_smoothing=label_smoothing
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        if verbose and (epoch + 1) % 5 == 0:
            acc, merged = source_accuracy(model, X_test, y_test)
            print(f"epoch {epoch + 1:3d}  loss {total / len(X):.4f}  held-out accuracy "
                  f"{acc:.4f} (case-merged {merged:.4f})")
    acc, merged = source_accuracy(model, X_test, y_test)
    record = {
        "n_per_letter": n_per_letter,
        "epochs": epochs,
        "seed": seed,
        "optimizer": "AdamW(lr=2e-3)",
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "heldout_seed": HELDOUT_SEED,
        "n_heldout_per_letter": n_heldout_per_letter,
        "heldout_accuracy": round(acc, 4),
        "heldout_accuracy_case_merged": round(merged, 4),
        "seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
    }
    if out is not None:
        out = Path(out)
        torch.save(model.state_dict(), out)
        record["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
        out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    if verbose:
        print(json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pre-train the bundled GlyphNet weights.")
    parser.add_argument("--n-per-letter", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    args = parser.parse_args(argv)
    pretrain(args.n_per_letter, args.epochs, args.seed, args.weight_decay,
             args.label_smoothing, out=args.out)


if __name__ == "__main__":
    main()
