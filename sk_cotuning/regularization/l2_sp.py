"""L2-SP (Li, Grandvalet & Davoine, ICML 2018): stay near the starting point.

``loss += alpha * 0.5 * ||w - w0||^2  +  beta * 0.5 * ||w_head||^2``, with
``w`` the backbone's parameters, ``w0`` their pre-trained values (the
starting point) and ``w_head`` the new target head's parameters; tllib's
``SPRegularization`` and ``L2Regularization``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sk_cotuning._validation import WEIGHT
from sk_cotuning.regularization._base import LossTerm, Regularizer

__all__ = ["L2SP", "head_l2", "starting_point_distance"]


def starting_point_distance(params: list[torch.Tensor], start: torch.Tensor) -> torch.Tensor:
    """``0.5 * ||w - w0||^2`` over ``params`` flattened in order, in float32 (a scalar).

    Parameters
    ----------
    params : list of Tensor
        The current parameters.
    start : Tensor of shape (sum of their sizes,)
        Their starting point, flattened and concatenated in the same order
        (one tensor: one subtraction instead of one per parameter).
    """
    flat = torch.cat([p.float().reshape(-1) for p in params])
    return 0.5 * (flat - start.float()).pow(2).sum()


def head_l2(head: nn.Module) -> torch.Tensor:
    """``0.5 * ||w||^2`` over a head's parameters (weight and bias), a scalar."""
    return sum(0.5 * p.float().pow(2).sum() for p in head.parameters())


class L2SP(Regularizer):
    """L2-SP: penalise the distance of the backbone from its pre-trained weights.

    Parameters
    ----------
    alpha : float, default=0.01
        Weight of ``0.5 * ||w - w0||^2`` over the backbone's parameters
        (tllib's ``--trade-off-backbone`` default).
    beta : float, default=0.01
        Weight of ``0.5 * ||w_head||^2`` over the new target head's
        parameters (``--trade-off-head``).

    Attributes
    ----------
    start : Tensor of shape (n_backbone_parameters,)
        Buffer: the backbone's pre-trained parameters, flattened in
        ``parameters()`` order, taken when the network is built (so saved and
        reloaded with it; it doubles the backbone's memory, as in tllib).

    Notes
    -----
    The estimator's default SGD weight decay becomes 0 with this method
    (:attr:`weight_decay`), since ``||w - w0||^2`` replaces ``||w||^2``;
    pass ``optimizer__weight_decay`` to set one anyway.
    """

    terms = ("l2_sp", "head_l2")
    name = "l2_sp"
    weight_decay = 0.0

    def __init__(self, alpha: float = 0.01, beta: float = 0.01) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.register_buffer("start", torch.zeros(0))

    _parameter_constraints = {"alpha": [WEIGHT], "beta": [WEIGHT]}

    def attach(self, network: nn.Module) -> None:
        super().attach(network)
        self.start = torch.cat([p.detach().reshape(-1) for p in network.features.parameters()])

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        params = list(self.network.features.parameters())
        return [
            LossTerm("l2_sp", starting_point_distance(params, self.start), float(self.alpha)),
            LossTerm("head_l2", head_l2(self.network.target_head), float(self.beta)),
        ]
