"""Transferability scores: how well a pre-trained model suits a target task, before training.

Plain functions on a model's outputs over the target training data and the
target labels, higher is better, each checking its inputs alike (a clear
error naming the score for NaN outputs, a shape mismatch, one class, missing
labels, or a continuous y, which would make every value a class):

- :func:`logme_score` (You et al., ICML 2021): the log marginal likelihood of
  the labels under a Bayesian linear model on the *features*, its prior and
  noise precisions set by evidence maximisation, averaged over classes and
  samples;
- :func:`h_score` (Bao et al., ICIP 2019): how much of the features'
  variance lies between the class means, ``tr(cov(f)^-1 cov(E[f | y]))``;
  :func:`regularized_h_score` (Ibrahim et al., 2022) the same with a
  Ledoit-Wolf shrunk ``cov(f)``, which does not saturate when the features
  outnumber the samples;
- :func:`nce_score` (Tran et al., ICCV 2019): the negative conditional
  entropy ``-H(Y | Z)`` of the target label given the source model's
  predicted class;
- :func:`leep_score` (Nguyen et al., ICML 2020): the log-likelihood of the
  target labels under the source model's *probabilities* mapped through the
  empirical ``p(y | z)``.

numpy and scipy only (no torch); :func:`sk_cotuning.ranking.rank_backbones`
runs candidate models and scores them with these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import type_of_target

from sk_cotuning._labels import check_no_missing
from sk_cotuning.relationship import CategoryRelationship

__all__ = ["h_score", "leep_score", "logme_score", "nce_score", "regularized_h_score"]


def _check_labels(y: Any, n: int, name: str) -> tuple[np.ndarray, int]:
    """Label indices ``0..K-1`` for ``y`` (any labels), and K >= 2."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(
            f"{name}: y must be 1-D with one label per sample ({n}); got shape {y.shape}."
        )
    try:
        check_no_missing(y)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):  # e.g. continuous: every value its own class
        raise ValueError(
            f"{name}: y must hold class labels, but its values look {kind} (e.g. "
            f"{y[:3].tolist()}); a transferability score here measures how well a model "
            f"separates classes. Pass the class of each sample."
        )
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"{name}: y has {len(classes)} class; a transferability score compares how well "
            f"a model separates classes, so it needs at least 2."
        )
    return codes, len(classes)


def _check_matrix(X: Any, name: str, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(
            f"{name}: {what} must be a 2-D array (n_samples >= 2, n_columns >= 1); got "
            f"shape {X.shape}."
        )
    if not np.isfinite(X).all():
        raise ValueError(
            f"{name}: {what} contain NaN or infinity ({int((~np.isfinite(X)).sum())} "
            f"values): the model diverged or its inputs were not finite. Score finite outputs."
        )
    return X


def logme_score(features: Any, y: Any) -> float:
    """LogME: the maximum log evidence of the labels given the features.

    For each class ``k`` the one-hot column ``y_k`` is modelled as
    ``y_k = F w + e`` with prior ``w ~ N(0, I / alpha)`` and noise
    ``e ~ N(0, I / beta)``, so ``y_k ~ N(0, F F^T / alpha + I / beta)``; the
    score is the largest log density that ``alpha`` and ``beta`` reach,
    divided by ``n_samples`` and averaged over classes (You et al., "LogME:
    Practical Assessment of Pre-trained Models for Transfer Learning", ICML
    2021).  Computed from one SVD of ``F``: for each ratio
    ``lambda = alpha / beta`` the best ``alpha`` is closed-form, and the
    remaining one-dimensional maximum over ``lambda`` is found on a grid
    and refined.  With no more samples than features (the usual case when
    labels are scarce) the labels can lie in the span of ``F``, and the
    supremum may be the noise-free limit ``beta -> infinity``: it is
    returned as the finite limit it is, where the paper's fixed-point
    iteration (which this matches wherever it converges) diverges, and
    the reference code stops at a bound set by its ``1e-5`` guard.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        A model's penultimate features on the target training data.
    y : array-like of shape (n_samples,)
        Target labels (at least two classes).

    Returns
    -------
    score : float
        Mean log evidence per sample; higher means more transferable.
        Comparable across models on the same target data.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 50)
    >>> good = y[:, None] + 0.1 * rng.normal(size=(100, 4))
    >>> bad = rng.normal(size=(100, 4))
    >>> bool(logme_score(good, y) > logme_score(bad, y))
    True
    """
    F = _check_matrix(features, "logme_score", "features")
    codes, n_classes = _check_labels(y, len(F), "logme_score")
    n = len(F)
    u, s, _ = np.linalg.svd(F, full_matrices=False)
    sigma = s**2  # the nonzero eigenvalues of F F^T (up to min(n, d) of them)
    kept = sigma > sigma.max(initial=0.0) * max(F.shape) * np.finfo(np.float64).eps
    sigma, u = sigma[kept], u[:, kept]
    total = 0.0
    for k in range(n_classes):
        target = (codes == k).astype(np.float64)
        z2 = (u.T @ target) ** 2  # the labels in the basis of F's left singular vectors
        # |y|^2 outside F's column space (none when F spans all n dimensions)
        outside = 0.0 if len(sigma) == n else max(float(target @ target - z2.sum()), 0.0)
        total += _max_log_evidence(sigma, z2, outside, float(target @ target), n) / n
    return float(total / n_classes)


def _max_log_evidence(sigma: np.ndarray, z2: np.ndarray, outside: float, norm2: float,
                      n: int) -> float:
    """``max over alpha, beta of log N(y; 0, F F^T / alpha + I / beta)``.

    In the eigenbasis of ``F F^T`` (eigenvalues ``sigma``, squared label
    coordinates ``z2``; ``outside`` the labels' squared norm in the null
    space, of dimension ``n - len(sigma)``) and with ``lambda = alpha /
    beta``, the best ``alpha`` is ``n / Q(lambda)``, ``Q = sum z2 / (sigma +
    lambda) + outside / lambda``, which leaves a function of ``lambda``
    alone.  Its maximum is sought on a grid of ``log lambda``, refined by
    bounded Brent, and compared with both limits: ``lambda -> 0`` (no
    noise; finite only when ``F`` spans all ``n`` dimensions) and
    ``lambda -> infinity`` (features ignored: pure noise).
    """
    from scipy.optimize import minimize_scalar

    r = len(sigma)
    constant = -0.5 * n * (np.log(2 * np.pi) + 1.0)

    def profile(log_lam: np.ndarray) -> np.ndarray:
        lam = np.exp(np.atleast_1d(log_lam))[:, None]
        q = (z2 / (sigma + lam)).sum(axis=1) + outside / lam[:, 0]
        return (-0.5 * np.log(sigma + lam).sum(axis=1) - 0.5 * (n - r) * np.log(lam[:, 0])
                + 0.5 * n * np.log(n / q))

    candidates = [-0.5 * n * np.log(norm2 / n)]  # lambda -> infinity
    if r == n:  # lambda -> 0: the labels are fitted without noise
        candidates.append(-0.5 * np.log(sigma).sum() + 0.5 * n * np.log(n / (z2 / sigma).sum()))
    if r:
        top = np.log(sigma.max())
        grid = np.arange(top - 36.0, top + 12.0, 0.25)  # down to ~1e-16 of the top eigenvalue
        values = profile(grid)
        best = int(np.nanargmax(values))
        lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
        refined = minimize_scalar(lambda x: -profile(x)[0], bounds=(lo, hi), method="bounded",
                                  options={"xatol": 1e-10})
        candidates += [values[best], -refined.fun]
    return float(max(candidates) + constant)


def h_score(features: Any, y: Any) -> float:
    """H-score: the share of the features' variance that separates the classes.

    ``tr(pinv(cov(f)) @ cov(g))`` with ``g`` each sample's class-mean feature
    (Bao et al., "An Information-Theoretic Approach to Transferability in Task
    Transfer Learning", ICIP 2019).  It lies in ``[0, min(n_features,
    n_classes - 1)]``.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        A model's penultimate features on the target training data.
    y : array-like of shape (n_samples,)
        Target labels (at least two classes).

    Returns
    -------
    score : float
        Higher means more transferable.

    Notes
    -----
    With many features and few samples ``cov(f)`` is singular and its
    pseudo-inverse makes the score large for any model; compare models on
    the same data, and prefer :func:`logme_score` when ``n_features``
    approaches ``n_samples``.
    """
    F = _check_matrix(features, "h_score", "features")
    codes, n_classes = _check_labels(y, len(F), "h_score")
    # cov(f) = C^T C / (n - 1) with C = U S V^T; cov(g) = G^T G / (n - 1) with G in
    # the span of V: tr(pinv(cov f) cov g) = sum over v of |G v|^2 / s^2
    _, s, spread = _class_mean_spectrum(F, codes, n_classes)
    return _weighted_trace(spread, s**2)


def regularized_h_score(features: Any, y: Any) -> float:
    """The H-score with a Ledoit-Wolf shrunk feature covariance (``H_alpha``).

    ``tr(cov_alpha(f)^-1 (1 - alpha) cov(g))``, ``g`` each sample's
    class-mean feature, ``cov_alpha(f) = (1 - alpha) cov(f) + alpha mu I``
    the Ledoit-Wolf estimate (``mu`` the mean variance, ``alpha`` its
    shrinkage intensity), as proposed by Ibrahim, Ponomareva & Mazumder,
    "Newer is not always better: Rethinking transferability metrics, their
    peculiarities, stability and performance" (ECML PKDD 2022), and defined
    in tllib's ``regularized_h_score`` (whose normalisations it follows:
    scikit-learn's ``LedoitWolf`` covariance, ``1 / n``; ``cov(g)`` with
    ``1 / (n - 1)``).  Where :func:`h_score` saturates at ``n_classes - 1``
    for every model because the features outnumber the samples, the
    shrinkage keeps models apart.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        A model's penultimate features on the target training data.
    y : array-like of shape (n_samples,)
        Target labels (at least two classes).

    Returns
    -------
    score : float
        Higher means more transferable; between 0 and ``(n_classes - 1) n /
        (n - 1)`` (the two normalisations above).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1], 10)
    >>> good = y[:, None] + 0.3 * rng.normal(size=(20, 50))  # 50 features, 20 samples
    >>> bad = rng.normal(size=(20, 50))
    >>> round(h_score(good, y), 6) == round(h_score(bad, y), 6) == 1.0  # saturated
    True
    >>> bool(regularized_h_score(good, y) > regularized_h_score(bad, y))
    True
    """
    from sklearn.covariance import ledoit_wolf_shrinkage

    F = _check_matrix(features, "regularized_h_score", "features")
    codes, n_classes = _check_labels(y, len(F), "regularized_h_score")
    n, d = F.shape
    centred, s, spread = _class_mean_spectrum(F, codes, n_classes)
    alpha = float(ledoit_wolf_shrinkage(centred, assume_centered=True))
    # cov(f) = C^T C / n with C = U S V^T: cov_alpha(f) has eigenvalues
    # (1 - alpha) s^2 / n + alpha mu along V and alpha mu across it, where the
    # class means (averages of rows of C) have no component; cov(g) = G^T G / (n - 1)
    eigen = (1 - alpha) * s**2 / n + alpha * float(np.sum(s**2)) / (n * d)
    return (1 - alpha) * _weighted_trace(spread, eigen) / (n - 1)


def _class_mean_spectrum(F: np.ndarray, codes: np.ndarray, n_classes: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What both H-scores need, from one thin SVD of the centred features ``C``.

    Returns ``C``, its singular values ``s``, and for each right singular
    vector ``v`` the spread ``|G v|^2`` of ``G``, each sample's centred class
    mean (which lies in the span of those vectors).  The SVD costs
    ``O(n d min(n, d))``, not the ``O(d^3)`` of inverting a ``d x d`` covariance.
    """
    centred = F - F.mean(axis=0)
    means = np.stack([centred[codes == k].mean(axis=0) for k in range(n_classes)])
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    return centred, s, np.sum((means[codes] @ vt.T) ** 2, axis=0)


def _weighted_trace(spread: np.ndarray, eigen: np.ndarray) -> float:
    """``sum spread / eigen`` over the non-negligible eigenvalues (a pseudo-inverse)."""
    if not eigen.size or eigen.max() <= 0:
        return 0.0
    keep = eigen > 1e-15 * eigen.max()
    return float(np.sum(spread[keep] / eigen[keep]))


def nce_score(source_outputs: Any, y: Any, *, input: str = "logits") -> float:  # noqa: A002
    """NCE: the negative conditional entropy of the target label given the source class.

    ``-H(Y | Z) = sum_{z, y} P(z, y) log P(y | z)``, with ``Z`` the source
    model's predicted class (the argmax of its outputs) and the empirical
    joint distribution over the target data (Tran et al., "Transferability
    and Hardness of Supervised Classification Tasks", ICCV 2019).

    Parameters
    ----------
    source_outputs : array-like of shape (n_samples, n_source) or (n_samples,)
        The source model's outputs on the target data, or its predicted
        source classes (integers).
    y : array-like of shape (n_samples,)
        Target labels (at least two classes).
    input : {"logits", "proba", "labels"}, default="logits"
        What ``source_outputs`` holds; logits and probabilities are reduced
        to their argmax.

    Returns
    -------
    score : float
        At most 0; 0 when the source class determines the target label.

    Examples
    --------
    >>> round(nce_score([0, 0, 1, 1], ["a", "a", "b", "b"], input="labels"), 6)
    0.0
    """
    if input not in ("logits", "proba", "labels"):
        raise ValueError(
            f"nce_score: input must be 'logits', 'proba' or 'labels'; got {input!r}."
        )
    if input == "labels":
        z = np.asarray(source_outputs)
        if z.ndim != 1:
            raise ValueError(f"nce_score: with input='labels', source_outputs must be 1-D; "
                             f"got shape {z.shape}.")
    else:
        z = _check_matrix(source_outputs, "nce_score", "source_outputs").argmax(axis=1)
    codes, n_classes = _check_labels(y, len(z), "nce_score")
    _, z_codes = np.unique(z, return_inverse=True)
    joint = np.zeros((z_codes.max() + 1, n_classes))
    np.add.at(joint, (z_codes, codes), 1.0)
    joint /= joint.sum()
    p_z = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / p_z), 0.0)
    return float(terms.sum())


def leep_score(
    source_outputs: Any,
    y: Any,
    *,
    input: str = "logits",  # noqa: A002
    temperature: float = 1.0,
) -> float:
    """LEEP transferability score of a source model for a target task.

    Fits the direct :class:`CategoryRelationship` on ``(source_outputs, y)``
    and returns its :meth:`~CategoryRelationship.score` on the same data, as
    defined by Nguyen et al. (ICML 2020).  Use it to rank candidate
    backbones before training: higher is more transferable.

    Parameters
    ----------
    source_outputs : array-like of shape (n_samples, n_source)
        The source model's outputs on the target samples.
    y : array-like of shape (n_samples,)
        Target labels.
    input : {"logits", "proba"}, default="logits"
        Whether ``source_outputs`` are logits or probabilities.
    temperature : float, default=1.0
        Calibration temperature applied to the logits.

    Returns
    -------
    score : float
        The LEEP score, at most 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_cotuning import leep_score
    >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    >>> round(leep_score(proba, [0, 0, 1, 1], input="proba"), 4)
    -0.3426
    """
    outputs = _check_matrix(source_outputs, "leep_score", "source_outputs")
    _check_labels(y, len(outputs), "leep_score")
    rel = CategoryRelationship(method="direct", input=input, temperature=temperature)
    return rel.fit(outputs, y).score(outputs, y)
