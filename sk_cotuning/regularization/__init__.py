"""Fine-tuning regularisers, one small module per method (tllib's idiom).

``FineTuningClassifier(regularizer=...)`` takes a name from
:data:`REGULARIZERS`, a :class:`Regularizer` instance, or ``None`` (plain
fine-tuning); ``regularizer__<param>=...`` sets its hyper-parameters and is
searchable.  See "Writing a regulariser" in the user guide.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from sklearn.base import clone

from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.regularization.co_tuning import CoTuning, CoTuningLoss

__all__ = ["REGULARIZERS", "CoTuning", "CoTuningLoss", "LossTerm", "Regularizer", "make_regularizer"]

#: Regularisers available by name (read-only).
REGULARIZERS = MappingProxyType({"co_tuning": CoTuning})


def make_regularizer(spec: Any, params: dict[str, Any]) -> Regularizer | None:
    """A fresh regulariser from ``regularizer=`` and its ``regularizer__*`` params.

    Parameters
    ----------
    spec : str, Regularizer or None
        A name from :data:`REGULARIZERS`, an instance (cloned, never
        modified), or ``None``.
    params : dict
        Hyper-parameters, applied with ``set_params``.

    Returns
    -------
    Regularizer or None
    """
    if spec is None:
        if params:
            raise ValueError(
                f"regularizer__* parameters {sorted(params)} were given but "
                f"regularizer=None; name a regularizer or drop them."
            )
        return None
    if isinstance(spec, str):
        if spec not in REGULARIZERS:
            raise ValueError(
                f"Unknown regularizer {spec!r}; use one of {sorted(REGULARIZERS)}, a "
                f"Regularizer instance, or None (plain fine-tuning)."
            )
        regularizer = REGULARIZERS[spec]()
    elif isinstance(spec, Regularizer):
        regularizer = clone(spec)
    else:
        raise TypeError(
            f"regularizer must be a name ({sorted(REGULARIZERS)}), a "
            f"sk_cotuning.regularization.Regularizer instance or None, got "
            f"{type(spec).__name__}."
        )
    regularizer.set_params(**params)
    regularizer.check()
    return regularizer
