"""A data-parallel fit on 2 CPU processes (gloo), for tests/test_scale_out.py.

Run as ``torchrun --nproc_per_node 2 tests/helpers/distributed_fit.py OUT``:
each rank writes ``OUT/rank<r>.npz`` (its relationship, losses and
predictions); rank 0 also saves the parameters to ``OUT/params.pt``.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn

from sk_cotuning.accelerate import AcceleratedCoTuningClassifier


class TinyConvNet(nn.Module):  # the conftest's stand-in source model
    def __init__(self, n_source: int = 6, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, n_source)

    def forward(self, x):
        return self.fc(self.body(x))


def data():
    rng = np.random.default_rng(0)
    y = np.array(["cat", "dog", "eel"])[np.arange(60) % 3]
    X = rng.random((60, 3, 8, 8)).astype(np.float32) * 0.5
    for i, label in enumerate(["cat", "dog", "eel"]):
        X[y == label, i] += 0.5
    return X, y


def backbone():
    torch.manual_seed(0)
    return TinyConvNet()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    X, y = data()
    accelerator = Accelerator(cpu=True)
    clf = AcceleratedCoTuningClassifier(
        backbone(), accelerator=accelerator, max_epochs=6, batch_size=8, lr=0.05,
        verbose=0, random_state=0,
    ).fit(X, y)
    rank = accelerator.process_index
    np.savez(out / f"rank{rank}.npz",
             world=accelerator.num_processes,
             relationship=clf.relationship_.relationship_,
             losses=np.array(clf.history[:, "train_loss"]),
             proba=clf.predict_proba(X))
    clf.save_params(f_params=out / "params.pt")  # the main process writes


if __name__ == "__main__":
    main(Path(sys.argv[1]))
