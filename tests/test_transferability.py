"""Transferability scores against their papers' definitions, computed independently."""

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from sk_cotuning.transferability import (
    h_score,
    leep_score,
    logme_score,
    nce_score,
    regularized_h_score,
)


def random_task(n=40, d=5, k=3, seed=0, signal=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = rng.normal(size=(k, d))
    return signal * centres[y] + rng.normal(size=(n, d)), y


def max_log_evidence(F, target, starts=((0.0, 0.0),)):
    """The evidence maximised numerically, straight from the model's definition:
    target ~ N(0, I / beta + F F^T / alpha), from each start (log alpha, log beta)."""
    n = len(F)

    def negative(log_params):
        alpha, beta = np.exp(np.clip(log_params, -60.0, 60.0))
        cov = np.eye(n) / beta + F @ F.T / alpha
        return -multivariate_normal(np.zeros(n), cov, allow_singular=False).logpdf(target)

    return max(-minimize(negative, x0=np.array(x0), method="Nelder-Mead",
                         options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000}).fun
               for x0 in starts)


def test_logme_is_the_maximum_evidence_of_its_definition():
    F, y = random_task()
    expected = np.mean([max_log_evidence(F, (y == k).astype(float)) / len(F) for k in range(3)])
    assert logme_score(F, y) == pytest.approx(expected, rel=1e-6, abs=1e-8)


def test_logme_with_more_features_than_samples():
    F, y = random_task(n=12, d=30, k=2, seed=1)
    expected = np.mean([max_log_evidence(F, (y == k).astype(float)) / len(F) for k in range(2)])
    assert logme_score(F, y) == pytest.approx(expected, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_logme_when_the_labels_lie_in_the_span_of_the_features(seed):
    # 30 samples, 100 features: every one-hot column is fitted exactly, and the
    # evidence can be largest in the noise-free limit (beta -> infinity), where
    # the paper's fixed-point iteration diverged and the score was NaN
    F, y = random_task(n=30, d=100, k=3, seed=seed)
    starts = [(a, b) for a in (0.0, 5.0) for b in (0.0, 10.0, 25.0)]
    expected = np.mean([max_log_evidence(F, (y == k).astype(float), starts) / len(F)
                        for k in range(3)])
    score = logme_score(F, y)
    assert np.isfinite(score)
    assert score == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_logme_on_rank_deficient_features_at_any_scale(scale):
    rng = np.random.default_rng(7)
    y = np.arange(16) % 2
    F = scale * rng.normal(size=(16, 1)) @ np.ones((1, 6))  # rank 1, six equal columns
    starts = [(a + 2 * np.log(scale), b) for a in (-5.0, 0.0, 5.0) for b in (-2.0, 0.0, 5.0)]
    expected = np.mean([max_log_evidence(F, (y == k).astype(float), starts) / 16
                        for k in range(2)])
    assert logme_score(F, y) == pytest.approx(expected, rel=1e-6)


def reference_logme(F, y):
    """A transcription of the paper's Algorithm 1 with explicit matrices (no SVD
    shortcuts): A = alpha I + beta F^T F, m = beta A^-1 F^T y."""
    n, d = F.shape
    scores = []
    for k in np.unique(y):
        t = (y == k).astype(float)
        alpha, beta = 1.0, 1.0
        eig = np.linalg.eigvalsh(F.T @ F)
        for _ in range(200):
            A = alpha * np.eye(d) + beta * F.T @ F
            m = beta * np.linalg.solve(A, F.T @ t)
            gamma = np.sum(beta * eig / (alpha + beta * eig))
            alpha, beta = gamma / (m @ m), (n - gamma) / np.sum((F @ m - t) ** 2)
        A = alpha * np.eye(d) + beta * F.T @ F
        m = beta * np.linalg.solve(A, F.T @ t)
        evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                    - beta / 2 * np.sum((F @ m - t) ** 2) - alpha / 2 * m @ m
                    - np.linalg.slogdet(A)[1] / 2)
        scores.append(evidence / n)
    return np.mean(scores)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logme_matches_a_transcription_of_the_algorithm(seed):
    F, y = random_task(n=60, d=8, k=4, seed=seed)
    assert logme_score(F, y) == pytest.approx(reference_logme(F, y), rel=1e-6)


def test_logme_ranks_informative_features_above_noise():
    good, y = random_task(signal=3.0, seed=3)
    noise = np.random.default_rng(3).normal(size=good.shape)
    assert logme_score(good, y) > logme_score(noise, y)


def test_h_score_in_one_dimension_is_the_between_class_variance_share():
    f = np.array([0.0, 1.0, 2.0, 5.0, 6.0, 7.0])
    y = np.array([0, 0, 0, 1, 1, 1])
    # class means 1 and 6: g = [1, 1, 1, 6, 6, 6]; var(g) / var(f) (both ddof 1)
    g = np.array([1.0, 1, 1, 6, 6, 6])
    assert h_score(f[:, None], y) == pytest.approx(np.var(g, ddof=1) / np.var(f, ddof=1))


def test_h_score_matches_its_definition_and_range():
    F, y = random_task(n=80, d=6, k=4, seed=4, signal=2.0)
    G = np.stack([F[y == k].mean(0) for k in range(4)])[y]
    expected = np.trace(np.linalg.inv(np.cov(F.T)) @ np.cov(G.T))
    assert h_score(F, y) == pytest.approx(expected, rel=1e-9)
    assert 0 <= h_score(F, y) <= 3  # at most n_classes - 1


def test_h_score_with_more_features_than_samples_uses_the_pseudo_inverse():
    F, y = random_task(n=20, d=50, k=3, seed=5)
    G = np.stack([F[y == k].mean(0) for k in range(3)])[y]
    expected = np.trace(np.linalg.pinv(np.cov(F.T), rcond=1e-15, hermitian=True) @ np.cov(G.T))
    assert h_score(F, y) == pytest.approx(expected, rel=1e-6)
    assert h_score(F, y) == pytest.approx(2.0, rel=1e-6)  # saturated: n_classes - 1


def tllib_regularized_h_score(F, y):
    """tllib's definition with explicit matrices: scikit-learn's Ledoit-Wolf estimate of
    cov(f), its shrinkage alpha, and (1 - alpha) cov(g) (ddof 1), through a pseudo-inverse."""
    from sklearn.covariance import LedoitWolf

    f = F - F.mean(axis=0, keepdims=True)
    estimate = LedoitWolf(assume_centered=False).fit(f)
    g = np.zeros_like(f)
    for k in np.unique(y):
        g[y == k] = f[y == k].mean(axis=0)
    covg = np.cov(g, rowvar=False)
    return np.trace(np.linalg.pinv(estimate.covariance_, rcond=1e-15)
                    @ ((1 - estimate.shrinkage_) * covg))


@pytest.mark.parametrize("n, d, k", [(100, 20, 4), (30, 100, 3), (200, 5, 2)])
def test_regularized_h_score_matches_its_definition(n, d, k):
    F, y = random_task(n=n, d=d, k=k, seed=n)
    assert regularized_h_score(F, y) == pytest.approx(tllib_regularized_h_score(F, y), rel=1e-9)


def test_regularized_h_score_keeps_apart_what_h_score_saturates():
    # 40 features, 20 samples: the plain score is at its maximum (k - 1) for every model
    informative, y = random_task(n=20, d=40, k=2, seed=8, signal=2.0)
    noise = np.random.default_rng(8).normal(size=informative.shape)
    assert h_score(informative, y) == pytest.approx(1.0) == h_score(noise, y)
    assert regularized_h_score(informative, y) > 2 * regularized_h_score(noise, y)


def test_nce_by_hand():
    z = [0, 0, 0, 1]
    y = ["a", "a", "b", "b"]
    # P(z=0) = 3/4 with p(a|0) = 2/3, p(b|0) = 1/3; z=1 determines b
    expected = 0.75 * (2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))
    assert nce_score(z, y, input="labels") == pytest.approx(expected)
    logits = np.eye(2)[z] * 5.0  # argmax gives the same source classes
    assert nce_score(logits, y) == pytest.approx(expected)
    assert nce_score(np.eye(2)[z], y, input="proba") == pytest.approx(expected)


def test_nce_is_zero_when_the_source_class_decides():
    assert nce_score([3, 3, 7, 7, 9], [0, 0, 1, 1, 1], input="labels") == 0.0


def test_leep_lives_with_the_other_scores_and_the_old_path_still_works():
    from sk_cotuning import relationship, transferability

    assert leep_score is transferability.leep_score is relationship.leep_score
    with pytest.raises(AttributeError, match="no attribute 'leep'"):
        relationship.leep


@pytest.mark.parametrize("score", [logme_score, h_score, regularized_h_score, nce_score,
                                   leep_score])
def test_one_class_nan_and_shape_errors(score):
    # every score names itself and says what was wrong (leep_score used to pass
    # CategoryRelationship's message, with scikit-learn's advice to try
    # HistGradientBoostingClassifier, through)
    F, y = random_task()
    name = score.__name__
    with pytest.raises(ValueError, match=f"{name}: y has 1 class"):
        score(F, np.zeros(len(F), int))
    bad = F.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=f"{name}: .* contain NaN or infinity"):
        score(bad, y)
    with pytest.raises(ValueError, match=f"{name}: y must be 1-D with one label per sample"):
        score(F, y[:-1])
    # a regression target made every value its own class and returned a score
    with pytest.raises(ValueError, match=f"{name}: y must hold class labels.*continuous"):
        score(F, np.random.default_rng(0).normal(size=len(F)))
    with pytest.raises(ValueError, match=f"{name}: y has 1 missing label"):
        score(F, np.r_[np.nan, y[1:].astype(float)])
