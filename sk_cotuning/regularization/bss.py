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

from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.regularization.l2_sp import _check_weight

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
    """

    terms = ("bss",)
    needs = frozenset({"features"})
    name = "bss"

    def __init__(self, trade_off: float = 0.001, k: int = 1) -> None:
        super().__init__()
        self.trade_off = trade_off
        self.k = k

    def check(self) -> None:
        _check_weight("trade_off", self.trade_off)
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise ValueError(f"k must be an int >= 1, got {self.k!r}.")

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        value = batch_spectral_shrinkage(outputs[2], self.k)
        return [LossTerm("bss", value, float(self.trade_off))]
