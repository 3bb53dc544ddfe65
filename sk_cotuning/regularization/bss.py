"""BSS (Chen et al., NeurIPS 2019): batch spectral shrinkage.

``loss += trade_off * sum_{i=1..k} sigma_{-i}^2``, the squares of the ``k``
smallest singular values of the batch's feature matrix; tllib's
``BatchSpectralShrinkage``.  Small singular directions are where
fine-tuning on little data stores what does not transfer.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from sk_cotuning._validation import WEIGHT, Interval
from sk_cotuning.regularization._base import LossTerm, Regularizer

__all__ = ["BSS", "batch_spectral_shrinkage"]


def batch_spectral_shrinkage(features: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Sum of the squared ``k`` smallest singular values of ``features``.

    Parameters
    ----------
    features : Tensor of shape (N, D)
        Computed in float32 (also under autocast).
    k : int, default=1
        At most ``min(N, D)`` values are penalised.

    Returns
    -------
    Tensor
        A scalar.
    """
    sigma = torch.linalg.svdvals(features.float())  # descending
    k = min(int(k), sigma.shape[0])
    return sigma[sigma.shape[0] - k:].pow(2).sum()


class BSS(Regularizer):
    """Batch spectral shrinkage on the pooled features.

    Parameters
    ----------
    trade_off : float, default=0.001
        Weight of the term (tllib's default).
    k : int, default=1
        Number of smallest singular values penalised.

    Notes
    -----
    The term skips a training batch smaller than the largest one seen so far
    in the fit (the short last batch of an epoch): the smallest singular
    value of a few samples is much larger than a full batch's (4 of 100
    images at batch size 32: 4.4x on EfficientNet-Lite0), so it would be
    penalised far harder.  tllib drops that batch altogether
    (``drop_last=True``); here its samples still train the classification
    loss.
    """

    terms = ("bss",)
    needs = frozenset({"features"})
    name = "bss"

    def __init__(self, trade_off: float = 0.001, k: int = 1) -> None:
        super().__init__()
        self.trade_off = trade_off
        self.k = k
        self._full_batch = 0

    _parameter_constraints = {"trade_off": [WEIGHT],
                              "k": [Interval(numbers.Integral, 1, None, closed="left")]}

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        features = outputs[2]
        n = features.shape[0]
        if self.training:
            self._full_batch = max(self._full_batch, n)
            if n < self._full_batch:  # the short last batch of an epoch
                return [LossTerm("bss", features.new_zeros((), dtype=torch.float32),
                                 float(self.trade_off))]
        if not torch.isfinite(features).all():  # diverged: no SVD of inf/NaN
            return [LossTerm("bss", features.new_full((), float("nan"), dtype=torch.float32),
                             float(self.trade_off))]
        value = batch_spectral_shrinkage(features, self.k)
        return [LossTerm("bss", value, float(self.trade_off))]
