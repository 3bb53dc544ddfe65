"""The one label encoder: labels <-> indices into ``classes_``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

__all__ = ["check_classes", "check_fit_targets", "check_no_missing", "encode_labels"]


def check_fit_targets(y: Any, name: str) -> np.ndarray:
    """Validate the labels of a fit; return the classes present (sorted).

    Raises
    ------
    ValueError
        ``y`` is None, empty, not a classification target, or has one class.
    """
    if y is None:
        raise ValueError(
            f"{name} requires y to be passed, but the target y is None. Pass the labels "
            f"of X as y; a torch Dataset that yields (image, label) pairs goes in as "
            f"skorch.helper.SliceDataset(dataset) with y=np.array([label for _, label in "
            f"dataset]) (for an ImageFolder: y=np.array(dataset.targets))."
        )
    y = column_or_1d(y, warn=True)
    check_no_missing(y)
    try:
        check_classification_targets(y)
        present = np.unique(y)
    except TypeError as exc:  # e.g. a mix of strings and numbers
        raise ValueError(
            f"y mixes label types that cannot be sorted ({exc}); use labels of one type "
            f"(all strings or all numbers)."
        ) from None
    if len(present) == 0:
        raise ValueError(
            "Found array with 0 sample(s) (y is empty) while a minimum of 1 is required."
        )
    if len(present) < 2:
        raise ValueError(f"{name} needs at least 2 classes in y, got 1 class ({present[0]!r}).")
    return present


def check_classes(classes: Any, source: str = "classes") -> np.ndarray:
    """Validate the class labels given by the user (the ``classes`` parameter, or
    ``partial_fit``'s ``classes`` argument); return them as an array, in their order.

    Raises
    ------
    ValueError
        ``classes`` is not 1-D, has a missing label, fewer than 2 classes, or
        a label twice (each label is one column of ``predict_proba``).
    """
    array = np.asarray(classes)
    if array.ndim != 1:
        raise ValueError(
            f"{source} must be a 1-D list of class labels, got an array of shape {array.shape}."
        )
    check_no_missing(array)
    repeated = [label for label, count in Counter(array.tolist()).items() if count > 1]
    if repeated:
        raise ValueError(
            f"{source} lists {repeated[:5]!r} more than once; give each class label once "
            f"(each is one column of predict_proba)."
        )
    if len(array) < 2:
        raise ValueError(
            f"{source} must list every class label, at least 2, got {array.tolist()!r}; pass "
            f"None to take the classes from y."
        )
    return array


def check_no_missing(y: np.ndarray) -> None:
    """Raise ``ValueError`` naming the first indices where ``y`` is None or NaN."""
    if y.dtype == object:
        missing = [i for i, v in enumerate(y.tolist()) if v is None or v != v]
    elif y.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(y)).tolist()
    else:
        return
    if missing:
        raise ValueError(
            f"y has {len(missing)} missing label(s) (None or NaN), e.g. at index "
            f"{missing[:5]}; drop those samples or give them a label."
        )


def encode_labels(y: Any, classes: np.ndarray, n_samples: int) -> np.ndarray:
    """Indices into ``classes`` of labels ``y`` (all must be known).

    Raises
    ------
    ValueError
        ``y`` has another length than ``n_samples``, or labels not in ``classes``.
    """
    y = column_or_1d(y, warn=True)
    check_no_missing(y)
    if len(y) != n_samples:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {len(y)}]."
        )
    index = {label: i for i, label in enumerate(np.asarray(classes).tolist())}
    unknown = sorted({label for label in y.tolist() if label not in index}, key=str)
    if unknown:
        raise ValueError(
            f"y contains labels {unknown[:10]!r} that are not among the classes "
            f"{np.asarray(classes).tolist()!r} (set by `classes` or the first fit)."
        )
    return np.array([index[label] for label in y.tolist()], dtype=np.int64)
