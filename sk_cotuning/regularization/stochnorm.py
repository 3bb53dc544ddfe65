"""StochNorm (Kou et al., NeurIPS 2020): stochastic normalisation of the backbone.

In training, each BatchNorm channel is normalised, at random with
probability ``p``, by the batch's statistics (usual BatchNorm), and otherwise
by the moving statistics (as at test time)::

    z = (1 - s) * z_moving + s * z_batch,   s ~ Bernoulli(p) per channel

tllib's ``StochNorm2d`` (and ``convert_model``).  Evaluation is unchanged.
Unlike tllib, the moving statistics start as the target's (see
:meth:`StochNorm.prepare`).
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch import nn

from sk_cotuning._validation import Interval
from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.regularization._pretrained import cumulative_batchnorm

__all__ = ["StochNorm"]


class _StochasticBranch:
    """Hooks on one BatchNorm module: the moving-statistics branch (pre-hook)
    and the per-channel random mix (hook)."""

    def __init__(self, owner: "StochNorm") -> None:
        self.owner = owner
        self.moving: torch.Tensor | None = None
        self.busy = False

    def before(self, module: nn.Module, args: tuple) -> None:
        if not (module.training and self.owner.training and self.owner.stochastic) or self.busy:
            return
        # the moving-statistics output, computed before this batch updates them;
        # through the module itself, so a fused activation (timm's BatchNormAct2d)
        # is applied too
        self.busy = True
        try:
            module.train(False)
            self.moving = module(*args)
        finally:
            module.train(True)
            self.busy = False

    def after(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self.busy:  # the moving-statistics pass itself
            return None
        moving, self.moving = self.moving, None
        if moving is None:
            return None
        shape = [1, output.shape[1]] + [1] * (output.ndim - 2)
        s = torch.bernoulli(torch.full(shape, float(self.owner.p), device=output.device))
        return (1 - s) * moving + s * output


class StochNorm(Regularizer):
    """Stochastic normalisation of every BatchNorm layer of the backbone.

    Adds no loss term; it changes how the backbone's BatchNorm layers
    normalise in training (forward hooks, so the network's structure and
    saved parameters are those of plain fine-tuning).

    Parameters
    ----------
    p : float, default=0.5
        Probability that a channel uses the batch's statistics in a training
        step (tllib's default); ``1.0`` is plain BatchNorm, ``0.0`` always
        the moving statistics.
    reestimate : bool, default=True
        Re-estimate the moving statistics on the training split before
        training (:meth:`prepare`).  ``False`` starts from the source's
        statistics, as tllib does.

    Notes
    -----
    Works for every ``torch.nn.modules.batchnorm._BatchNorm`` (and subclasses
    such as timm's ``BatchNormAct2d``) in the feature extractor; a backbone
    without BatchNorm gets a ``ValueError``.  The moving statistics are
    still updated by every training batch, as in tllib.

    Why re-estimate: the moving-statistics branch normalises by the stored
    statistics, which are the source data's (ImageNet's) until training has
    moved them.  With few steps they barely move -- EfficientNet-Lite0's
    TF-ported BatchNorm uses momentum 0.01, so after 80 steps 45% of each
    statistic is still ImageNet's -- and half the channels of every training
    step are then normalised for another data set.  One pass over the
    training split (no augmentation, no gradients) gives the target's
    statistics before the first step.
    """

    name = "stochnorm"
    prepared_params = frozenset({"reestimate"})

    def __init__(self, p: float = 0.5, reestimate: bool = True) -> None:
        super().__init__()
        self.p = p
        self.reestimate = reestimate
        self.stochastic = True  # off while prepare() re-estimates the statistics

    _parameter_constraints = {"p": [Interval(numbers.Real, 0, 1, closed="both")],
                              "reestimate": ["boolean"]}

    def attach(self, network: nn.Module) -> None:
        super().attach(network)
        norms = [m for m in network.features.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        if not norms:
            raise ValueError(
                "StochNorm needs BatchNorm layers with running statistics in the backbone, "
                "and this one has none; use another regularizer."
            )
        self._norms = norms
        for module in norms:
            branch = _StochasticBranch(self)
            module.register_forward_pre_hook(branch.before)
            module.register_forward_hook(branch.after)
        self.n_layers_ = len(norms)

    def prepare(self, net: Any, dataset: torch.utils.data.Dataset) -> None:
        """Re-estimate the moving statistics on the training split (if ``reestimate``).

        The pre-trained network runs once over the training split in
        training mode without gradients; each BatchNorm layer's statistics
        become the cumulative average over those batches (PyTorch's
        ``momentum=None``), then its momentum is restored.
        """
        if not self.reestimate:
            return
        network = self.network
        was_training = network.training
        self.stochastic = False
        network.train(True)
        try:
            with torch.no_grad(), cumulative_batchnorm(self._norms):
                for batch in net.get_iterator(dataset, training=False):
                    Xi, _ = unpack_data(batch)
                    network.features(network.normalize(to_tensor(Xi, device=net.device)))
        finally:
            network.train(was_training)
            self.stochastic = True

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        return []
