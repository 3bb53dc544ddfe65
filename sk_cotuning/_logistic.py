"""A warm-startable multinomial logistic regression for the reverse relationship.

Private helper of :mod:`sk_cotuning.relationship` (numpy/scipy only).

Why not :class:`sklearn.linear_model.LogisticRegression`: the reverse approach
fits a regularisation path over 17 values of ``C`` on *probability* features,
whose entries are mostly around ``1 / n_source``.  On such small features the
mean-loss gradient is tiny, so scikit-learn's default ``tol`` stops L-BFGS
after two or three iterations far from the optimum, and a tight ``tol`` makes
each of its float64 iterations cost about twice what this float32 objective
does.  This solver minimises exactly scikit-learn's multinomial objective
(no intercept),

    C * sum_i -log softmax(W x_i)[y_i] + 0.5 * ||W||_F^2,

scaled by ``1 / (C n)`` for numerical range, with a plain L-BFGS, and takes
the previous solution of the path as its starting point.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np


def fit_multinomial(
    X: np.ndarray,
    codes: np.ndarray,
    n_classes: int,
    C: float,
    coef_init: np.ndarray | None = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> tuple[np.ndarray, int]:
    """Fit an L2-regularised multinomial logistic regression without intercept.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features (here: source-class probabilities).
    codes : ndarray of shape (n_samples,)
        Integer class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes (every class has one coefficient row, also for two
        classes).
    C : float
        Inverse regularisation strength, as in scikit-learn.
    coef_init : ndarray of shape (n_classes, n_features), default=None
        Starting point (a warm start); zeros when ``None``.
    tol : float, default=1e-6
        L-BFGS stops when the largest gradient component of the scaled
        objective falls below ``tol`` (scipy's ``pgtol``, scikit-learn's
        ``tol`` for ``lbfgs``).
    max_iter : int, default=1000
        Maximum L-BFGS iterations.

    Returns
    -------
    coef : ndarray of shape (n_classes, n_features)
        Coefficients; class logits are ``X @ coef.T``.
    n_iter : int
        L-BFGS iterations run.
    """
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    n, d = Xf.shape
    rows = np.arange(n)
    lam = 1.0 / (C * n)
    w0 = (
        np.zeros(n_classes * d)
        if coef_init is None
        else np.asarray(coef_init, dtype=np.float64).ravel()
    )

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        W = w.reshape(n_classes, d)
        Z = Xf @ W.T.astype(np.float32)
        Z -= Z.max(axis=1, keepdims=True)
        picked = Z[rows, codes]
        # exp(-80) is still a normal float32; below it, denormals would make
        # the products below many times slower, for a change of < 1e-34.
        np.maximum(Z, -80.0, out=Z)
        E = np.exp(Z)
        s = E.sum(axis=1)
        loss = float(np.mean(np.log(s) - picked))
        E /= s[:, None]
        E[rows, codes] -= 1.0
        E /= n
        grad = (E.T @ Xf).astype(np.float64) + lam * W
        return loss + 0.5 * lam * float(w @ w), grad.ravel()

    w, n_iter = lbfgs(objective, w0, tol=tol, max_iter=max_iter)
    return w.reshape(n_classes, d), n_iter


def lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    tol: float = 1e-6,
    max_iter: int = 1000,
    memory: int = 10,
) -> tuple[np.ndarray, int]:
    """Unconstrained L-BFGS with a backtracking (Armijo) line search.

    scipy's L-BFGS-B spends about as long on its own bookkeeping per
    iteration as this objective takes to evaluate at 100k parameters; plain
    two-loop L-BFGS needs a few vector operations.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (value, gradient)``.
    x0 : ndarray of shape (n_params,)
        Starting point.
    tol : float, default=1e-6
        Stop when ``max(abs(gradient)) <= tol``.
    max_iter : int, default=1000
        Maximum iterations.
    memory : int, default=10
        Number of correction pairs kept.

    Returns
    -------
    x : ndarray of shape (n_params,)
        The minimiser found.
    n_iter : int
        Iterations run.
    """
    x = np.array(x0, dtype=np.float64)
    f, g = fun(x)
    history: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=memory)
    n_iter = 0
    while n_iter < max_iter and np.max(np.abs(g)) > tol:
        n_iter += 1
        # two-loop recursion: d = -H g
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(history):
            a = rho * (s @ q)
            q -= a * y
            alphas.append(a)
        if history:
            s, y, _ = history[-1]
            q *= (s @ y) / (y @ y)
        else:
            q /= max(1.0, np.linalg.norm(g))
        for (s, y, rho), a in zip(history, reversed(alphas)):
            q += s * (a - rho * (y @ q))
        d = -q
        slope = g @ d
        if slope >= 0:  # not a descent direction: restart from steepest descent
            history.clear()
            d = -g / max(1.0, np.linalg.norm(g))
            slope = g @ d
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, y = x_new - x, g_new - g
        sy = s @ y
        if sy > 1e-12 * (y @ y):
            history.append((s, y, 1.0 / sy))
        decrease = f - f_new
        x, f, g = x_new, f_new, g_new
        if 0 <= decrease <= 1e-12 * max(abs(f), 1.0):
            break
    return x, n_iter
