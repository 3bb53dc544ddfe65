"""LWF (Li & Hoiem, ECCV 2016 / TPAMI 2017): learning without forgetting.

The source head keeps answering like the pre-trained model:
``loss += trade_off * KL(softmax(z0 / T) || softmax(z / T))`` (batch mean),
with ``z`` the fine-tuned source head's logits and ``z0`` the pre-trained
model's on the same (augmented) batch; tllib's
``KnowledgeDistillationLoss`` and ``lwf.py`` defaults.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sk_cotuning._validation import WEIGHT, Interval
from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.regularization._pretrained import FrozenCopy, InputCapture

__all__ = ["LWF", "distillation_loss"]


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch.

    Parameters
    ----------
    student, teacher : Tensor of shape (N, S)
        Logits (computed in float32).
    T : float, default=1.0
        Temperature.

    Returns
    -------
    Tensor
        A scalar.
    """
    log_p = F.log_softmax(student.float() / T, dim=-1)
    q = F.softmax(teacher.float() / T, dim=-1)
    return F.kl_div(log_p, q, reduction="batchmean")


class LWF(Regularizer):
    """Learning without forgetting: distil the pre-trained source head into the fine-tuned one.

    The teacher is a frozen copy of the pre-trained backbone and source head,
    run (without gradients) on each training batch as the fine-tuned network
    saw it, so the teacher's answers follow the data augmentation (tllib
    records them once, on one augmented pass).  It costs one extra forward
    pass per step.

    Parameters
    ----------
    trade_off : float, default=4.0
        Weight of the distillation term (tllib's default).
    T : float, default=3.0
        Distillation temperature (tllib's default).

    Attributes
    ----------
    teacher : FrozenCopy
        The pre-trained features and source head (frozen, evaluation mode).

    Notes
    -----
    The source head stays frozen at its pre-trained weights (as in tllib,
    whose optimiser never sees it): the term moves the backbone only, so it
    keeps the backbone's features answering like the pre-trained model's.
    The teacher normalises a training batch by the batch's statistics, as the
    fine-tuned network does (:meth:`FrozenCopy.batch_statistics`), so the
    term is 0 before the first step; tllib's teacher answers in evaluation
    mode.  The term is computed on training batches only (``valid_lwf_loss``
    is not logged).
    """

    terms = ("lwf",)
    needs = frozenset({"source"})
    trains_source_head = False
    name = "lwf"

    def __init__(self, trade_off: float = 4.0, T: float = 3.0) -> None:  # noqa: N803 - tllib's name
        super().__init__()
        self.trade_off = trade_off
        self.T = T
        self.teacher: nn.Module | None = None

    _parameter_constraints = {"trade_off": [WEIGHT],
                              "T": [Interval(numbers.Real, 0, None, closed="neither")]}

    def attach(self, network: nn.Module) -> None:
        super().attach(network)
        self.teacher = FrozenCopy(network.features, network.source_head)
        self._capture = InputCapture(self)
        network.features.register_forward_pre_hook(self._capture)

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        x = self._capture.pop()
        if x is None:  # not a training batch: the term is not computed
            return []
        with torch.no_grad(), self._capture.precision(x.device), self.teacher.batch_statistics():
            teacher = self.teacher.logits(x)
        value = distillation_loss(outputs[1], teacher, float(self.T))
        return [LossTerm("lwf", value, float(self.trade_off))]
