"""Co-Tuning (You et al., NeurIPS 2020): the soft-target loss and its preparation.

:class:`CoTuningLoss` is the stateless loss in tllib's idiom;
:class:`CoTuning` is the regulariser: it learns the category relationship
``p(source class | target class)`` from the pre-trained source head on the
training split (its preparation) and adds
``trade_off * softCE(source_head(f), R[y])`` to the loss.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from torch import nn

from sk_cotuning._validation import WEIGHT, HasMethods, Interval, StrOptions
from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.relationship import CategoryRelationship
from sk_cotuning.runtime import seed_from
from sk_cotuning.transferability import leep_score

__all__ = ["DEFAULT_SOFT_TARGET_TEMPERATURE", "DEFAULT_TRADE_OFF", "CoTuning", "CoTuningLoss"]

#: Co-Tuning's defaults, in one place (CoTuningClassifier's signature reads them).
DEFAULT_TRADE_OFF = 2.3
DEFAULT_SOFT_TARGET_TEMPERATURE = "auto"


def check_relationship_spec(relationship: Any) -> None:
    """Refuse a method's name given where the relationship estimator goes, saying
    where the name belongs (the estimators' ``relationship`` and the regulariser's)."""
    if isinstance(relationship, str):
        raise ValueError(
            f"relationship={relationship!r}: relationship takes the estimator that "
            f"learns the relationship. For its method pass "
            f"relationship=CategoryRelationship(method={relationship!r}), or "
            f"relationship__method={relationship!r} (also in a grid search)."
        )


def _check_distributions(rows: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every row is a distribution (finite, >= 0, sums to 1)."""
    q = rows.detach().float()
    tolerance = 1e-2 if rows.dtype in (torch.float16, torch.bfloat16) else 1e-4
    sums = q.sum(dim=1)
    bad = ~torch.isfinite(q).all(dim=1) | (q < 0).any(dim=1) | ((sums - 1).abs() > tolerance)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"soft_targets must hold one distribution per sample (finite, non-negative, "
            f"summing to 1), but {int(bad.sum())} of {len(q)} row(s) do not: row {i} has "
            f"minimum {float(q[i].min()):.4g} and sums to {float(sums[i]):.4g}. Pass "
            f"probabilities (e.g. softmax of scores, or the relationship's rows R[y])."
        )


class CoTuningLoss(nn.Module):
    """Soft cross-entropy of the source head against the relationship's rows.

    The second term of the Co-Tuning objective (You et al., "Co-Tuning for
    Transfer Learning", NeurIPS 2020, Eq. 5)::

        loss = mean_i  -sum_s soft_targets[i, s] * log_softmax(source_logits[i])[s]

    where ``soft_targets[i] = p(source class | y_i)`` is the row of the
    category relationship for the sample's target label.

    Parameters
    ----------
    check_targets : bool, default=True
        Check on every call that ``soft_targets`` holds distributions (finite,
        non-negative, each row summing to one) and raise ``ValueError``
        otherwise: a row that does not sum to one, or labels in place of
        rows, would give a plausible but wrong loss.  On a GPU the check
        waits for the device once per call; :class:`CoTuning` turns it off,
        its rows come from a fitted relationship.

    Notes
    -----
    - ``source_logits``: ``(N, S)``, the source head's logits, any float
      dtype (computed in float32, so the loss is correct under autocast).
    - ``soft_targets``: ``(N, S)``, non-negative rows that sum to one; zeros
      are allowed and contribute exactly zero, even where the matching
      log-probability is ``-inf``.
    - output: a scalar tensor (the batch mean).

    Examples
    --------
    >>> import torch
    >>> loss = CoTuningLoss()
    >>> logits = torch.tensor([[0.0, 0.0]])
    >>> float(loss(logits, torch.tensor([[1.0, 0.0]])))  # -log(1/2)
    0.6931471824645996
    """

    def __init__(self, check_targets: bool = True) -> None:
        super().__init__()
        self.check_targets = check_targets

    def forward(self, source_logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
        if source_logits.shape != soft_targets.shape or source_logits.ndim != 2:
            raise ValueError(
                f"source_logits {tuple(source_logits.shape)} and soft_targets "
                f"{tuple(soft_targets.shape)} must have the same shape (N, n_source): one "
                f"row of source logits and one distribution over the source classes per "
                f"sample (for labels, index the relationship's rows: R[y])."
            )
        if source_logits.shape[0] == 0:
            raise ValueError("The batch is empty (N = 0): the mean loss over no samples "
                             "is undefined.")
        if self.check_targets:
            _check_distributions(soft_targets)
        log_p = F.log_softmax(source_logits.float(), dim=1)
        q = soft_targets.to(log_p.dtype)
        # where q == 0 the term is 0 by definition, also if log_p is -inf
        terms = torch.where(q > 0, q * log_p, torch.zeros_like(log_p))
        return -terms.sum(dim=1).mean()


class CoTuning(Regularizer):
    """The Co-Tuning regulariser: the source head learns the relationship's soft labels.

    ``loss += trade_off * softCE(source_head(f), R[y])`` with
    ``R = relationship_.relationship_``, learned once per fit from the
    pre-trained source head's logits on the training split.

    Parameters
    ----------
    trade_off : float, default=2.3
        Weight of the soft-target term (``lambda`` in the paper).
    relationship : CategoryRelationship or None, default=None
        Cloned in :meth:`prepare`; ``None`` means ``CategoryRelationship()``
        (the direct method).  It must use ``input="logits"``.
    soft_target_temperature : "auto" or float, default="auto"
        The source logits are divided by it in the soft-target loss (not to
        be confused with ``CategoryRelationship(temperature=)``, which
        calibrates the source probabilities the relationship is learned
        from).  ``"auto"`` fits it in :meth:`prepare`: the value (on a log
        grid from 1/4 to 64) at which the *pre-trained* source head's soft
        cross-entropy to the relationship's rows is smallest on the training
        split, so the term starts calibrated in scale.  ``1.0`` is the
        paper's loss.  Measured on validation data with the estimators'
        gradient clipping (the user guide's "Training recipe"): on
        EfficientNet-Lite0 -> Fashion-MNIST the fitted value (about 4) beat
        1.0 on all 5 seeds, on the glyph pair (about 1.4) they are level.
        Without clipping, an over-confident source head at a high backbone
        rate made the paper's loss collapse the features; the fitted value
        prevents that too.

    Attributes
    ----------
    soft_targets : Tensor of shape (n_classes, n_source)
        Buffer: row ``t`` is ``p(source class | target class t)``; a class with
        no training sample gets the source marginal (never NaN).
    relationship_ : CategoryRelationship
        The fitted relationship (after :meth:`prepare`; not restored by
        ``load_params``, which restores ``soft_targets``).
    leep_ : float
        LEEP score of the source model on the training split.
    fitted_temperature : Tensor of shape ()
        Buffer: the temperature the loss uses (saved with the network).
    """

    terms = ("cotuning",)
    needs = frozenset({"source"})
    name = "co_tuning"
    prepares_from = frozenset({"source"})
    prepared_params = frozenset({"relationship"})

    def __init__(self, trade_off: float = DEFAULT_TRADE_OFF, relationship: Any = None,
                 soft_target_temperature: Any = DEFAULT_SOFT_TARGET_TEMPERATURE) -> None:
        super().__init__()
        self.trade_off = trade_off
        self.relationship = relationship
        self.soft_target_temperature = soft_target_temperature
        self.loss = CoTuningLoss(check_targets=False)  # rows of a fitted relationship
        self.register_buffer("soft_targets", torch.zeros(0, 0))
        self.register_buffer("fitted_temperature", torch.ones(()))

    _parameter_constraints = {
        "trade_off": [WEIGHT],
        "soft_target_temperature": [StrOptions({"auto"}),
                                    Interval(numbers.Real, 0, None, closed="neither")],
        "relationship": [HasMethods(["fit", "soft_targets"]), None],
    }

    def check(self) -> None:
        check_relationship_spec(self.relationship)
        super().check()
        rel = self.relationship
        if rel is not None and rel.get_params().get("input", "logits") != "logits":
            raise ValueError(
                "relationship must use input='logits': Co-Tuning feeds it the source "
                "head's logits."
            )

    def set_params(self, **params: Any) -> "CoTuning":
        """Set parameters; ``relationship__<param>`` on the default relationship
        (``None``) makes it an explicit ``CategoryRelationship()`` first.

        On a prepared regulariser a numeric ``soft_target_temperature``
        applies from the next step, as ``trade_off`` does; ``"auto"`` is
        fitted by the next ``fit`` (it needs the pre-trained head).
        """
        if self.relationship is None and any(k.startswith("relationship__") for k in params):
            self.relationship = CategoryRelationship()
        super().set_params(**params)
        t = params.get("soft_target_temperature")
        if (bool(self.prepared) and isinstance(t, numbers.Real) and not isinstance(t, bool)
                and np.isfinite(t) and t > 0):
            self.fitted_temperature.fill_(float(t))
        return self

    def preparation_key(self) -> dict[str, str]:
        """The relationship's parameters; and ``soft_target_temperature`` when it
        is ``"auto"`` (fitted by :meth:`prepare`; a number applies at once)."""
        rel = CategoryRelationship() if self.relationship is None else self.relationship
        key = {f"relationship__{name}": repr(value) for name, value in rel.get_params().items()}
        key["relationship"] = f"{type(rel).__module__}.{type(rel).__qualname__}"
        if isinstance(self.soft_target_temperature, str):
            key["soft_target_temperature"] = repr(self.soft_target_temperature)
        return key

    def bind(self, n_classes: int, n_source: int, n_features: int) -> None:
        self.soft_targets = torch.full((n_classes, n_source), 1.0 / n_source)

    def prepare(self, net: Any, dataset: torch.utils.data.Dataset) -> None:
        """Fit the relationship on the pre-trained source head's logits."""
        logits, codes = net.collect_outputs(dataset, "source", desc="relationship pass")
        logits = logits.astype(np.float64)
        classes = np.asarray(net.classes_)
        labels = classes[codes]
        rel = CategoryRelationship() if self.relationship is None else clone(self.relationship)
        if rel.get_params().get("random_state", 0) is None and net.random_state is not None:
            # the reverse method's held-out split: reproducible with the estimator's seed
            rel.set_params(random_state=seed_from(net.random_state))
        self.relationship_ = rel.fit(logits, labels)
        self.leep_ = leep_score(logits, labels, temperature=rel.temperature)
        table = np.empty((len(classes), logits.shape[1]))
        seen = np.isin(classes, rel.classes_)
        table[seen] = rel.soft_targets(classes[seen])
        table[~seen] = rel.source_marginal_  # a class with no sample: never NaN
        self.soft_targets.copy_(torch.as_tensor(table, dtype=torch.float32))
        if isinstance(self.soft_target_temperature, str):
            self.fitted_temperature.fill_(self._fit_temperature(logits, codes))
        else:
            self.fitted_temperature.fill_(float(self.soft_target_temperature))

    #: Candidate temperatures of ``soft_target_temperature="auto"`` (1/4 to 64, 49 values, 1 included).
    TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(64.0), 49))

    def _fit_temperature(self, logits: np.ndarray, codes: np.ndarray) -> float:
        """The grid temperature at which the pre-trained head best matches the rows."""
        z = torch.as_tensor(logits, dtype=torch.float32)
        q = self.soft_targets.cpu()[torch.as_tensor(codes)]
        losses = [float(self.loss(z / t, q)) for t in self.TEMPERATURES]
        return float(self.TEMPERATURES[int(np.argmin(losses))])

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        source = outputs[1]
        value = self.loss(source / self.fitted_temperature, self.soft_targets[y])
        return [LossTerm("cotuning", value, float(self.trade_off))]
