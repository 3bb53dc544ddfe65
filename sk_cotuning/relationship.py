"""The Co-Tuning category relationship ``p(source class | target class)``.

This module depends on numpy, scipy and scikit-learn only (no torch), so the
relationship can be fitted on source-model outputs computed anywhere.

References
----------
.. [1] K. You, Z. Kou, M. Long, J. Wang. "Co-Tuning for Transfer Learning".
   NeurIPS 2020.
.. [2] C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau. "LEEP: A New Measure
   to Evaluate Transferability of Learned Representations". ICML 2020.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from sk_cotuning._logistic import fit_multinomial
from sk_cotuning._validation import Interval, StrOptions, validate_params

__all__ = ["CategoryRelationship", "DEFAULT_CS"]

#: The paper's grid of inverse regularisation strengths for the reverse
#: approach: 1e4 down to 1e-4 in steps of half a decade (17 values).
DEFAULT_CS = np.logspace(4, -4, 17)

# Rows processed at a time by the direct approach: bounds the temporary
# float64 softmax buffer to ``_CHUNK_ROWS * n_source`` values.
_CHUNK_ROWS = 2048
# Smallest probability a log is taken of (keeps LEEP finite for exact zeros).
_TINY = np.finfo(np.float64).tiny
# Tolerance on "rows sum to one" for ``input="proba"``.
_PROBA_ATOL = 1e-3


def _softmax_inplace(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a float array, computed in place and returned."""
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax (stable), returning a new array."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class CategoryRelationship(TransformerMixin, BaseEstimator):
    """Learn the Co-Tuning category relationship from source-model outputs.

    Given the outputs of a pre-trained *source* classifier on the *target*
    training samples and the target labels, learn

    ``relationship_[t, s] = p(source class s | target class t)``,

    an ``(n_classes, n_source)`` matrix whose rows are probability
    distributions.  Its rows are the soft targets of the Co-Tuning loss
    (:meth:`soft_targets`).  The transformer also maps source outputs to the
    target-class posteriors they imply (:meth:`transform`) and scores a
    source model's transferability by LEEP (:meth:`score`).

    Parameters
    ----------
    method : {"direct", "reverse"}, default="direct"
        How the relationship is learned (Section 3.2 of the Co-Tuning paper).

        - ``"direct"``: row ``t`` is the mean calibrated source probability
          vector over the samples of class ``t``.
        - ``"reverse"``: a multinomial logistic regression (no intercept)
          from source probabilities to target labels gives ``p(t | s)``.  As
          in the reference implementation it is fitted on a stratified
          training part; its inverse regularisation ``C`` is chosen over
          ``Cs`` by log-loss on the held-out part, its logits are calibrated
          by a temperature fitted by negative log-likelihood on that part,
          and Bayes' rule with the source marginal (over all samples) turns
          it around: ``relationship_[t, s] ∝ p(t | s) p(s)``.  Two target
          classes get two coefficient rows (a multinomial model), never a
          single binary row.
    input : {"logits", "proba"}, default="logits"
        Whether ``X`` holds the source model's logits or its probabilities.
        Probabilities must be non-negative and sum to one per row.
    temperature : float, default=1.0
        Calibration temperature of the source model: logits are divided by it
        before the softmax (for ``input="proba"`` the probabilities are
        re-tempered as ``softmax(log(p) / temperature)``).  The reference
        implementation used a fixed ``1 / 0.8840`` scaling, fitted for
        torchvision's ImageNet ResNet-50, because that network is
        over-confident and its raw softmax puts almost all mass on one source
        class, which makes the soft targets nearly one-hot.  That constant
        does not transfer to other backbones; set this if you have calibrated
        your source model (for example by temperature scaling on held-out
        source data) or grid-search it against :meth:`score`.
    Cs : array-like of float, default=None
        Grid of inverse regularisation strengths searched by
        ``method="reverse"``.  ``None`` uses the paper's grid
        :data:`DEFAULT_CS` (``1e4`` down to ``1e-4``, 17 values).  Ignored by
        ``"direct"``.
    validation_fraction : float, default=0.2
        Fraction of each class held out to choose ``C`` and fit the logistic
        regression's calibration temperature (``method="reverse"`` only).
        Classes with a single sample cannot be split and stay in the
        training part; if no class has two samples nothing can be held out,
        and ``C`` falls back to ``1.0`` and the temperature to ``1.0`` with a
        warning.
    patience : int or None, default=3
        ``method="reverse"`` walks the ``Cs`` path from the strongest
        regularisation upwards, warm-starting each fit from the previous one,
        and stops once the held-out log-loss has not improved for
        ``patience`` consecutive values (the held-out loss along a
        regularisation path is typically unimodal).  ``None`` evaluates the
        whole grid.
    tol : float, default=1e-6
        Gradient tolerance of each logistic-regression fit (on the objective
        scaled by ``1 / (C n_samples)``).  scikit-learn's default ``1e-4``
        stops after two or three iterations on probability features, far from
        the optimum; ``1e-6`` reaches the optimum's held-out loss to about
        three decimals.
    max_iter : int, default=1000
        Maximum L-BFGS iterations of each logistic-regression fit.
    random_state : int, RandomState instance or None, default=None
        Seeds the stratified held-out split of ``method="reverse"``.

    Attributes
    ----------
    relationship_ : ndarray of shape (n_classes, n_source)
        ``p(source class | target class)``; every row is finite,
        non-negative and sums to one.
    target_given_source_ : ndarray of shape (n_source, n_classes)
        ``p(target class | source class)``; every row sums to one.  For
        ``"direct"`` it is the empirical conditional of LEEP (source classes
        that received no probability mass get the class prior); for
        ``"reverse"`` the calibrated logistic regression at one-hot inputs.
    source_marginal_ : ndarray of shape (n_source,)
        Mean calibrated source probability over the training samples,
        ``p(s)``.
    class_prior_ : ndarray of shape (n_classes,)
        Relative frequency of each class in ``y``.
    classes_ : ndarray of shape (n_classes,)
        The target labels seen in :meth:`fit`, sorted.
    n_features_in_ : int
        Number of source classes seen in :meth:`fit`.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Source class names, when ``X`` is a DataFrame with string columns.
    C_ : float
        The ``C`` chosen on the held-out part (``"reverse"`` only).
    reverse_coef_ : ndarray of shape (n_classes, n_source)
        Coefficients of the logistic regression at ``C_`` (``"reverse"``
        only); its logits for source probabilities ``p`` are
        ``p @ reverse_coef_.T``.
    calibration_temperature_ : float
        Temperature fitted to the logistic regression's held-out logits
        (``"reverse"`` only).
    path_scores_ : dict of {float: float}
        Held-out log-loss of every ``C`` evaluated (``"reverse"`` only).
    n_iter_ : int
        ``1`` for ``"direct"`` (a single pass over ``X``); for ``"reverse"``
        the L-BFGS iterations summed over the ``C`` path.

    See Also
    --------
    leep_score : The LEEP transferability score as a plain function.
    CoTuningClassifier : Fits this relationship inside its ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_cotuning import CategoryRelationship
    >>> logits = np.array([[4.0, 0.0, 0.0], [3.0, 1.0, 0.0],
    ...                    [0.0, 0.0, 5.0], [0.0, 1.0, 4.0]])
    >>> rel = CategoryRelationship().fit(logits, ["cat", "cat", "dog", "dog"])
    >>> rel.relationship_.shape
    (2, 3)
    >>> rel.relationship_.argmax(axis=1)
    array([0, 2])
    >>> rel.soft_targets(["dog"]).round(2)
    array([[0.01, 0.03, 0.96]])
    """

    def __init__(
        self,
        method: str = "direct",
        input: str = "logits",  # noqa: A002 - the name users asked for
        temperature: float = 1.0,
        Cs: Any = None,
        validation_fraction: float = 0.2,
        patience: int | None = 3,
        tol: float = 1e-6,
        max_iter: int = 1000,
        random_state: Any = None,
    ) -> None:
        self.method = method
        self.input = input
        self.temperature = temperature
        self.Cs = Cs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    # ------------------------------------------------------------------ sklearn
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    # --------------------------------------------------------------- validation
    _parameter_constraints: dict = {
        "method": [StrOptions({"direct", "reverse"})],
        "input": [StrOptions({"logits", "proba"})],
        "temperature": [Interval(numbers.Real, 0, None, closed="neither")],
        "Cs": ["array-like", None],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "patience": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def _check_params(self) -> None:
        validate_params(self._parameter_constraints, self.get_params(deep=False),
                        type(self).__name__)

    def _check_outputs(self, X: np.ndarray) -> None:
        """Check that probability inputs are probabilities."""
        if self.input != "proba":
            return
        if X.min(initial=0.0) < 0:
            raise ValueError(
                "input='proba' but X has negative values; pass probabilities, "
                "or set input='logits' if X holds raw source-model outputs."
            )
        sums = X.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > _PROBA_ATOL)
        if bad.size:
            raise ValueError(
                f"input='proba' but {bad.size} row(s) of X do not sum to 1 "
                f"(row {bad[0]} sums to {sums[bad[0]]:.6g}); pass probabilities, "
                f"or set input='logits' if X holds raw source-model outputs."
            )

    def _source_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated source probabilities of a (chunk of) X, as float64."""
        z = np.array(X, dtype=np.float64, copy=True)
        if self.input == "logits":
            if self.temperature != 1.0:
                z /= self.temperature
            return _softmax_inplace(z)
        if self.temperature != 1.0:
            with np.errstate(divide="ignore"):
                np.log(z, out=z)
            z /= self.temperature
            return _softmax_inplace(z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def _encode(self, y: Any) -> np.ndarray:
        """Map labels to indices into ``classes_``; unknown labels raise."""
        y = np.asarray(y)
        if y.ndim != 1:
            y = np.ravel(y) if (y.ndim == 2 and y.shape[1] == 1) else y
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, got an array of shape {y.shape}.")
        try:
            codes = np.searchsorted(self.classes_, y)
            codes = np.clip(codes, 0, len(self.classes_) - 1)
            known = self.classes_[codes] == y
        except TypeError as exc:
            raise ValueError(
                f"y holds labels of a type that cannot be compared with the "
                f"fitted classes_ {self.classes_.tolist()!r}."
            ) from exc
        known = np.asarray(known, dtype=bool)
        if not known.all():
            unknown = np.unique(y[~known])
            raise ValueError(
                f"y contains labels not seen in fit: {unknown[:10].tolist()!r}; "
                f"the known classes are {self.classes_.tolist()!r}."
            )
        return codes

    # ---------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any) -> "CategoryRelationship":
        """Learn the relationship from source outputs and target labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_source)
            The source model's outputs on the target training samples:
            logits (``input="logits"``) or probabilities (``input="proba"``).
        y : array-like of shape (n_samples,)
            Target labels (any hashable labels: ints, strings, ...).

        Returns
        -------
        self : CategoryRelationship
            The fitted transformer.
        """
        self._check_params()
        X, y = validate_data(
            self, X, y, dtype=[np.float64, np.float32], order="C"
        )
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"CategoryRelationship needs at least 2 classes in y, got 1 class "
                f"({self.classes_[0]!r}); a relationship over one target class is "
                f"trivial."
            )
        self._check_outputs(X)
        self.class_prior_ = np.bincount(codes, minlength=n_classes) / len(codes)
        if self.method == "direct":
            self._fit_direct(X, codes, n_classes)
        else:
            self._fit_reverse(X, codes, n_classes)
        return self

    def _fit_direct(self, X: np.ndarray, codes: np.ndarray, n_classes: int) -> None:
        """Per-class means of the calibrated source probabilities.

        One pass over ``X`` in row chunks; per-class sums come from a sparse
        ``(n_classes, chunk)`` indicator product, so no dense one-hot matrix
        is ever formed.
        """
        n, n_source = X.shape
        sums = np.zeros((n_classes, n_source))
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(start + _CHUNK_ROWS, n)
            proba = self._source_proba(X[start:stop])
            m = stop - start
            indicator = sp.csr_matrix(
                (np.ones(m), (codes[start:stop], np.arange(m))),
                shape=(n_classes, m),
            )
            sums += indicator @ proba
        counts = np.bincount(codes, minlength=n_classes).astype(np.float64)
        self.source_marginal_ = sums.sum(axis=0) / n
        self.relationship_ = sums / counts[:, None]
        # Bayes: p(t | s) = p(s | t) p(t) / p(s); empty source columns -> prior.
        joint = sums / n  # p(t, s)
        tgs = np.divide(
            joint,
            self.source_marginal_[None, :],
            out=np.repeat(self.class_prior_[:, None], n_source, axis=1),
            where=self.source_marginal_[None, :] > 0,
        )
        self.target_given_source_ = np.ascontiguousarray(tgs.T)
        self.n_iter_ = 1

    def _holdout_split(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stratified held-out split that keeps every class in the training part.

        Each class with at least two samples contributes
        ``max(1, round(validation_fraction * count))`` samples, but never all
        of them, to the held-out part; single-sample classes stay in training.
        """
        rng = check_random_state(self.random_state)
        order = rng.permutation(len(codes))
        # stable sort by class keeps the random order within each class
        order = order[np.argsort(codes[order], kind="stable")]
        counts = np.bincount(codes)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        n_val = np.where(
            counts >= 2,
            np.clip(np.rint(self.validation_fraction * counts), 1, counts - 1),
            0,
        ).astype(int)
        rank = np.arange(len(codes)) - np.repeat(starts, counts)
        is_val = rank < np.repeat(n_val, counts)
        return np.sort(order[~is_val]), np.sort(order[is_val])

    @staticmethod
    def _nll(logits: np.ndarray, codes: np.ndarray, temperature: float = 1.0) -> float:
        """Mean negative log-likelihood of ``softmax(logits / temperature)``."""
        logp = _log_softmax(logits / temperature)
        return float(-logp[np.arange(len(codes)), codes].mean())

    def _fit_reverse(self, X: np.ndarray, codes: np.ndarray, n_classes: int) -> None:
        """Logistic regression ``p(t | s)`` inverted with Bayes' rule."""
        proba = self._source_proba(X)
        self.source_marginal_ = proba.mean(axis=0)
        Cs = DEFAULT_CS if self.Cs is None else np.asarray(self.Cs, dtype=float)
        if Cs.ndim != 1 or Cs.size == 0 or not np.all(np.isfinite(Cs)) or np.any(Cs <= 0):
            raise ValueError(
                f"Cs must be a non-empty 1-D sequence of positive floats, got {self.Cs!r}."
            )
        path = np.unique(Cs)  # ascending: strongest regularisation first
        train, val = self._holdout_split(codes)
        self.path_scores_ = {}
        n_iter = 0
        if val.size == 0:
            warnings.warn(
                "No class has two samples, so nothing can be held out to choose "
                "C and the temperature of the reverse relationship; using C=1.0 "
                "and temperature 1.0. Use method='direct' or more samples.",
                UserWarning,
            )
            best_C, temperature = 1.0, 1.0
            coef, n_iter = fit_multinomial(
                proba, codes, n_classes, best_C, tol=self.tol, max_iter=self.max_iter
            )
        else:
            best_C, best_loss, coef, since_best = None, np.inf, None, 0
            current = None
            for C in path:
                current, it = fit_multinomial(
                    proba[train], codes[train], n_classes, float(C), current,
                    tol=self.tol, max_iter=self.max_iter,
                )
                n_iter += it
                loss = self._nll(proba[val] @ current.T, codes[val])
                self.path_scores_[float(C)] = loss
                if loss < best_loss - 1e-12:
                    best_C, best_loss, coef, since_best = float(C), loss, current, 0
                else:
                    since_best += 1
                    if self.patience is not None and since_best >= self.patience:
                        break
            val_logits = proba[val] @ coef.T
            temperature = float(
                np.exp(
                    minimize_scalar(
                        lambda log_t: self._nll(val_logits, codes[val], np.exp(log_t)),
                        bounds=(np.log(1e-2), np.log(1e2)),
                        method="bounded",
                    ).x
                )
            )
        self.n_iter_ = n_iter
        self.C_ = best_C
        self.calibration_temperature_ = temperature
        self.reverse_coef_ = coef
        # p(t | s): the calibrated regression at the one-hot input e_s
        tgs = _softmax_inplace(coef.T / temperature)
        self.target_given_source_ = tgs
        joint = tgs.T * self.source_marginal_[None, :]  # ∝ p(t | s) p(s)
        row_sums = joint.sum(axis=1, keepdims=True)
        self.relationship_ = np.divide(
            joint,
            row_sums,
            out=np.repeat(self.source_marginal_[None, :], n_classes, axis=0),
            where=row_sums > 0,
        )

    # ---------------------------------------------------------------- inference
    def transform(self, X: Any) -> np.ndarray:
        """Target-class posteriors implied by the source outputs alone.

        ``p(t | x) = sum_s p(t | s) p(s | x)``: LEEP's "expected empirical
        prediction".

        Parameters
        ----------
        X : array-like of shape (n_samples, n_source)
            Source-model outputs, in the same form as in :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to one; columns follow ``classes_``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        self._check_outputs(X)
        return self._source_proba(X) @ self.target_given_source_

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the columns :meth:`transform` returns, one per target class.

        Also what makes ``set_output(transform="pandas")`` work.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the source class names seen in :meth:`fit`
            (``feature_names_in_``), if any; not used otherwise.

        Returns
        -------
        feature_names_out : ndarray of str objects, shape (n_classes,)
            ``"categoryrelationship_<class>"`` for each of ``classes_``.
        """
        check_is_fitted(self)
        if input_features is not None:
            given = np.asarray(input_features, dtype=object)
            seen = getattr(self, "feature_names_in_", None)
            if len(given) != self.n_features_in_ or (
                    seen is not None and not np.array_equal(given, seen)):
                raise ValueError(
                    f"input_features should be the {self.n_features_in_} source class "
                    f"name(s) seen in fit"
                    + ("" if seen is None else f" ({seen[:5].tolist()}...)")
                    + f", got {len(given)} name(s)."
                )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}_{label}" for label in self.classes_], dtype=object)

    def soft_targets(self, y: Any) -> np.ndarray:
        """The Co-Tuning soft labels: rows of ``relationship_`` for labels ``y``.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Target labels, each one of ``classes_``.

        Returns
        -------
        targets : ndarray of shape (n_samples, n_source)
            ``relationship_[index of y_i in classes_]``; rows sum to one.

        Raises
        ------
        ValueError
            If a label is not in ``classes_``.
        """
        check_is_fitted(self)
        return self.relationship_[self._encode(y)]

    def score(self, X: Any, y: Any) -> float:
        """LEEP transferability score of the source outputs for labels ``y``.

        The mean log-likelihood ``mean_i log p(y_i | x_i)`` under the expected
        empirical predictor of :meth:`transform` (Nguyen et al., 2020); higher
        means a more transferable source model.  Probabilities that are
        exactly zero are clipped to the smallest positive float, so the score
        stays finite.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_source)
            Source-model outputs.
        y : array-like of shape (n_samples,)
            Target labels, each one of ``classes_``.

        Returns
        -------
        score : float
            Mean log-likelihood, at most 0.
        """
        proba = self.transform(X)
        codes = self._encode(y)
        if len(codes) != proba.shape[0]:
            raise ValueError(
                f"X has {proba.shape[0]} samples but y has {len(codes)}; they must match."
            )
        picked = proba[np.arange(len(codes)), codes]
        return float(np.mean(np.log(np.maximum(picked, _TINY))))


def __getattr__(name: str) -> Any:
    # leep_score moved to sk_cotuning.transferability, with the other scores
    if name == "leep_score":
        from sk_cotuning.transferability import leep_score

        return leep_score
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
