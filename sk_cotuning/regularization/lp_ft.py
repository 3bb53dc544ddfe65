"""LP-FT (Kumar et al., ICLR 2022): linear probing, then fine-tuning.

The new target head starts as a logistic regression fitted on the
pre-trained (frozen) features of the training split, instead of at random;
then the whole network is fine-tuned.  A random head's large early
gradients distort the pre-trained features before the head is any good;
a probed head does not.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from sk_cotuning._validation import Interval
from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.regularization._pretrained import linear_probe

__all__ = ["LPFT"]


class LPFT(Regularizer):
    """Linear probing then fine-tuning: the target head starts as a fitted linear probe.

    Adds no loss term.  Its preparation (once, on the training split, from
    the pre-trained network, in evaluation mode without augmentation, as the
    paper's L-BFGS probe) fits a multinomial logistic regression on the
    pooled features and copies it into the target head.

    Parameters
    ----------
    C : float, default=1.0
        Inverse L2 strength of the probe (scikit-learn's ``LogisticRegression``).
    max_iter : int, default=1000
        L-BFGS iterations of the probe.

    Attributes
    ----------
    probe_accuracy_ : float
        Training accuracy of the probe (after :meth:`prepare`).
    """

    name = "lp_ft"
    prepares_from = frozenset({"features"})
    prepared_params = frozenset({"C", "max_iter"})

    def __init__(self, C: float = 1.0, max_iter: int = 1000) -> None:  # noqa: N803 - sklearn's name
        super().__init__()
        self.C = C
        self.max_iter = max_iter

    _parameter_constraints = {"C": [Interval(numbers.Real, 0, None, closed="neither")],
                              "max_iter": [Interval(numbers.Integral, 1, None, closed="left")]}

    def prepare(self, net: Any, dataset: torch.utils.data.Dataset) -> None:
        """Fit the probe on the pre-trained features and copy it into the target head."""
        features, codes = net.collect_outputs(dataset, "features", desc="linear probe")
        weight, bias = linear_probe(features, codes, len(net.classes_), C=self.C,
                                    max_iter=self.max_iter)
        self.probe_accuracy_ = float(((features @ weight.T + bias).argmax(1) == codes).mean())
        head = self.network.target_head
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
            head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        return []
