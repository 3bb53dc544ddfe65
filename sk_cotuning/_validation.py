"""The one parameter-validation idiom: scikit-learn's declarative constraints.

The estimators, :class:`~sk_cotuning.CategoryRelationship` and every
regulariser declare ``_parameter_constraints`` (scikit-learn's ``Interval``,
``StrOptions``, types, ``None``, ...; an ``Interval`` rejects NaN and
infinity) and check them with :func:`validate_params`: in ``fit``, or when an
estimator builds a regulariser.  scikit-learn's validation module is private
API; this is the one place the package imports its checker.
"""

from __future__ import annotations

import numbers
from typing import Any

from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = ["HasMethods", "Interval", "StrOptions", "WEIGHT", "validate_params"]

#: A loss weight: a finite float >= 0.
WEIGHT = Interval(numbers.Real, 0, None, closed="left")


def validate_params(constraints: dict, params: dict[str, Any], caller: str) -> None:
    """Check ``params`` against ``constraints``; raise ``ValueError``/``TypeError``.

    Parameters
    ----------
    constraints : dict
        Parameter name -> list of scikit-learn constraints.
    params : dict
        Parameter name -> value; every constrained name must be present.
    caller : str
        The class name the error messages give.
    """
    validate_parameter_constraints(constraints, params, caller_name=caller)
