"""Fine-tuning regularisers, one small module per method (tllib's idiom).

``FineTuningClassifier(regularizer=...)`` takes a name from
:data:`REGULARIZERS`, a :class:`Regularizer` instance, a list of those
(combined: ``["co_tuning", "bss"]``), or ``None`` (plain fine-tuning);
``regularizer__<param>=...`` sets its hyper-parameters and is searchable
(``regularizer__<name>__<param>`` in a combination).  See "Choosing a
method" and "Writing a regulariser" in the user guide.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from sklearn.base import clone

from sk_cotuning.regularization._base import LossTerm, Regularizer, check_declarations
from sk_cotuning.regularization.bss import BSS
from sk_cotuning.regularization.co_tuning import CoTuning, CoTuningLoss
from sk_cotuning.regularization.combined import Combined
from sk_cotuning.regularization.delta import DELTA
from sk_cotuning.regularization.l2_sp import L2SP
from sk_cotuning.regularization.lp_ft import LPFT
from sk_cotuning.regularization.lwf import LWF
from sk_cotuning.regularization.stochnorm import StochNorm

__all__ = [
    "BSS",
    "DELTA",
    "L2SP",
    "LPFT",
    "LWF",
    "REGULARIZERS",
    "Combined",
    "CoTuning",
    "CoTuningLoss",
    "LossTerm",
    "Regularizer",
    "StochNorm",
    "make_regularizer",
]

#: Regularisers available by name (read-only).
REGULARIZERS = MappingProxyType({
    cls.name: cls for cls in (CoTuning, L2SP, DELTA, BSS, LWF, StochNorm, LPFT)
})


def _one(spec: Any) -> Regularizer:
    """A fresh regulariser from a name or an instance (cloned, never modified)."""
    if isinstance(spec, str):
        if spec not in REGULARIZERS:
            raise ValueError(
                f"Unknown regularizer {spec!r}; use one of {sorted(REGULARIZERS)}, a "
                f"Regularizer instance, a list of those, or None (plain fine-tuning)."
            )
        return REGULARIZERS[spec]()
    if isinstance(spec, Regularizer):
        if type(spec).forward is Regularizer.forward:
            raise TypeError(
                f"{type(spec).__name__} does not implement forward(outputs, y): Regularizer is "
                f"the base class. Subclass it and implement forward (see 'Writing a "
                f"regulariser' in the user guide), or use a name from {sorted(REGULARIZERS)}."
            )
        check_declarations(spec)
        try:
            return clone(spec)
        except AttributeError as exc:  # get_params reads each __init__ parameter back
            raise TypeError(
                f"{type(spec).__name__} cannot be cloned ({exc}): store each __init__ "
                f"parameter under its own name (self.alpha = alpha), as scikit-learn "
                f"estimators do, so that get_params, set_params and clone work."
            ) from None
    raise TypeError(
        f"regularizer must be a name ({sorted(REGULARIZERS)}), a "
        f"sk_cotuning.regularization.Regularizer instance, a list of those, or None, "
        f"got {type(spec).__name__}."
    )


def make_regularizer(spec: Any, params: dict[str, Any]) -> Regularizer | None:
    """A fresh regulariser from ``regularizer=`` and its ``regularizer__*`` params.

    Parameters
    ----------
    spec : str, Regularizer, list or None
        A name from :data:`REGULARIZERS`, an instance (cloned, never
        modified), a list of those (a :class:`Combined`, whose parts are
        named by their ``name``), or ``None``.
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
    if isinstance(spec, (list, tuple)):
        parts = [_one(item) for item in spec]
        regularizer: Regularizer = Combined([(part.name, part) for part in parts])
    else:
        regularizer = _one(spec)
    regularizer.set_params(**params)
    regularizer.check()
    return regularizer
