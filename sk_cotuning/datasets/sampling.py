"""Sampling rates: the paper's protocol of training on a fraction of each class."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["sample_rate_indices"]


def sample_rate_indices(y: Any, rate: float, random_state: Any = None) -> np.ndarray:
    """Indices of a stratified subset holding ``rate`` of every class.

    Each class keeps ``max(1, round(rate * count))`` of its samples, drawn
    without replacement, so no class disappears at low rates (Co-Tuning's
    protocol: "15% of the training set" means 15% of each category).

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    rate : float in (0, 1]
        Sampling rate.
    random_state : int, RandomState instance or None
        Seeds the draw.

    Returns
    -------
    indices : ndarray of shape (n_subset,)
        Sorted indices into ``y``.

    Examples
    --------
    >>> sample_rate_indices([0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 0.5, random_state=0).size
    5
    """
    if (
        not isinstance(rate, numbers.Real)
        or isinstance(rate, bool)
        or not 0 < rate <= 1
    ):
        raise ValueError(f"rate must be in (0, 1], got {rate!r}.")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y must be a non-empty 1-D array, got shape {y.shape}.")
    rng = check_random_state(random_state)
    _, codes = np.unique(y, return_inverse=True)
    chosen = []
    for c in range(codes.max() + 1):
        members = np.flatnonzero(codes == c)
        k = max(1, int(round(rate * len(members))))
        chosen.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))
