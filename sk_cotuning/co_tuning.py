"""CoTuningClassifier: a FineTuningClassifier with the Co-Tuning regulariser."""

from __future__ import annotations

import numbers
from typing import Any

from sk_cotuning._validation import HasMethods, Interval, StrOptions
from sk_cotuning.fine_tuning import FineTuningClassifier
from sk_cotuning.regularization import CoTuning
from sk_cotuning.regularization.co_tuning import (
    DEFAULT_SOFT_TARGET_TEMPERATURE,
    DEFAULT_TRADE_OFF,
    check_relationship_spec,
)
from sk_cotuning.relationship import CategoryRelationship

__all__ = ["CoTuningClassifier"]


def _reject_regularizer_params(params: dict, error: type = TypeError) -> None:
    """CoTuningClassifier's regulariser is Co-Tuning: ``regularizer*`` is not a parameter."""
    given = sorted(k for k in params if k == "regularizer" or k.startswith("regularizer__"))
    if given:
        raise error(
            f"CoTuningClassifier got {given}, but its regulariser is fixed to Co-Tuning "
            f"(set trade_off, relationship and soft_target_temperature directly). For another "
            f"method or a combination use FineTuningClassifier(regularizer=[\"co_tuning\", "
            f"\"bss\"]) with regularizer__<name>__<param>."
        )


class CoTuningClassifier(FineTuningClassifier):
    """Co-Tuning transfer learning as a scikit-learn classifier.

    Fine-tunes a pre-trained backbone with a new *target head* while keeping
    its pre-trained classifier as a *source head*, trained on soft targets
    from the learned category relationship ``p(source class | target
    class)`` (You et al., "Co-Tuning for Transfer Learning", NeurIPS 2020)::

        loss = CE(target_head(f), y) + trade_off * softCE(source_head(f), R[y])

    It is :class:`~sk_cotuning.FineTuningClassifier` with the
    :class:`~sk_cotuning.regularization.CoTuning` regulariser, whose two
    hyper-parameters are top-level parameters here.  The relationship is
    learned in ``fit``, from the pre-trained source head, on that fit's
    training split only (so each cross-validation fold learns its own), and
    survives a ``Checkpoint`` resume unchanged.

    Parameters
    ----------
    backbone, weights, source_head
        As in :class:`~sk_cotuning.FineTuningClassifier` (default backbone
        ``"resnet50"``).
    trade_off : float, default=2.3
        Weight of the Co-Tuning term.  ``0`` is exactly plain fine-tuning: no
        relationship pass, the source head is neither evaluated nor trained.
    relationship : CategoryRelationship or None, default=None
        The relationship estimator, cloned in ``fit``; ``None`` means
        ``CategoryRelationship()`` (the direct method).  Searchable as
        ``relationship__method`` etc.  It must use ``input="logits"``.
    soft_target_temperature : "auto" or float, default="auto"
        The source logits are divided by it in the Co-Tuning term (the
        regulariser's parameter of the same name: ``regularizer__
        soft_target_temperature`` with ``FineTuningClassifier``).  ``"auto"``
        fits it once, from the pre-trained source head on the training split
        (the value at which its soft cross-entropy to the relationship is
        smallest); ``1.0`` is the paper's loss.  Chosen on validation data:
        see :class:`~sk_cotuning.CoTuning` and the user guide's "Training
        recipe".
    **kwargs
        Every other parameter of :class:`~sk_cotuning.FineTuningClassifier`
        (``lr``, ``backbone_lr_mult``, ``max_epochs``, ``device``, ...) and
        skorch's (``optimizer__*``, ``callbacks``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    relationship_ : CategoryRelationship or None
        The relationship fitted on this fit's training data (``None`` when
        ``trade_off=0``, or after ``load_params``, which restores the
        matrix in ``regularizer_.soft_targets`` but not this estimator);
        ``relationship_.relationship_`` is the ``(n_classes, n_source)``
        matrix.
    leep_ : float or None
        LEEP score of the source model on the training data.
    regularizer_ : CoTuning or None
        The regulariser inside the network; ``regularizer_.soft_targets`` is
        the relationship as a tensor.
    source_classes_, preprocessing_, n_features_in_, device_, module_, history_
        As in :class:`~sk_cotuning.FineTuningClassifier`; ``history_`` has
        ``target_loss`` and ``cotuning_loss`` per epoch.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_cotuning import CoTuningClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = CoTuningClassifier(backbone="glyphnet", max_epochs=2, verbose=0,
    ...                          random_state=0).fit(X[:200], y[:200])
    >>> clf.predict_proba(X[:3]).shape
    (3, 10)
    """

    _parameter_constraints: dict = {
        **{k: v for k, v in FineTuningClassifier._parameter_constraints.items()
           if k != "regularizer"},
        "trade_off": [Interval(numbers.Real, 0, None, closed="left")],
        "relationship": [HasMethods(["fit", "soft_targets"]), None],
        "soft_target_temperature": [StrOptions({"auto"}), Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        backbone: Any = "resnet50",
        weights: Any = "DEFAULT",
        *,
        source_head: str | None = None,
        trade_off: float = DEFAULT_TRADE_OFF,
        relationship: Any = None,
        soft_target_temperature: Any = DEFAULT_SOFT_TARGET_TEMPERATURE,
        **kwargs: Any,
    ) -> None:
        _reject_regularizer_params(kwargs)
        super().__init__(backbone, weights, source_head=source_head, **kwargs)
        del self.regularizer  # fixed to Co-Tuning: not a parameter here
        self.trade_off = trade_off
        self.relationship = relationship
        self.soft_target_temperature = soft_target_temperature

    def _check_params(self) -> None:
        check_relationship_spec(self.relationship)  # before the generic constraint's message
        super()._check_params()

    def _make_regularizer(self) -> CoTuning | None:
        if self.trade_off == 0:  # exactly plain fine-tuning, at its cost
            return None
        regularizer = CoTuning(trade_off=self.trade_off, relationship=self.relationship,
                               soft_target_temperature=self.soft_target_temperature)
        regularizer.check()
        return regularizer

    def _loss_term_names(self) -> tuple[str, ...]:
        return CoTuning.terms

    @property
    def relationship_(self) -> CategoryRelationship | None:
        """The relationship fitted in the last fresh ``fit``."""
        return getattr(self.regularizer_, "relationship_", None)

    @property
    def leep_(self) -> float | None:
        """LEEP score of the source model on the training split."""
        return getattr(self.regularizer_, "leep_", None)

    def _route_params(self, params: dict) -> dict:
        """``set_params``: ``relationship__<param>`` goes to the ``relationship``.

        ``relationship`` is created as ``CategoryRelationship()`` when it is
        ``None`` (the default, made explicit to be tuned), so grid searches
        can tune ``relationship__method`` etc.  On a fitted net ``trade_off``
        and a numeric ``soft_target_temperature`` apply from the next step
        on (``"auto"`` is fitted by the next ``fit``); a ``trade_off`` on a
        net built with ``trade_off=0`` (no regulariser) needs a new ``fit``.
        """
        _reject_regularizer_params(params, error=ValueError)
        nested = {
            key[len("relationship__"):]: params.pop(key)
            for key in list(params)
            if key.startswith("relationship__")
        }
        if "relationship" in params:
            self.relationship = params.pop("relationship")
        if nested:
            if self.relationship is None:
                self.relationship = CategoryRelationship()
            self.relationship.set_params(**nested)
        live = {key: params.pop(key) for key in ("trade_off", "soft_target_temperature")
                if key in params}
        for key, value in live.items():
            setattr(self, key, value)
        if live and getattr(self, "initialized_", False) and self.regularizer_ is not None:
            self.regularizer_.set_params(**live)  # from the next step (see CoTuning.set_params)
        return super()._route_params(params)
