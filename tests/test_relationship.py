"""Tests of CategoryRelationship and leep_score."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import softmax
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_cotuning import CategoryRelationship, leep_score


def reference_direct(X, y, temperature=1.0):
    """The seed's reference: R[i] = mean(softmax(X / T)[y == i], axis=0)."""
    classes = np.unique(y)
    p = softmax(X / temperature, axis=1)
    return np.stack([p[y == c].mean(axis=0) for c in classes])


@parametrize_with_checks(
    [CategoryRelationship(), CategoryRelationship(method="reverse")]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------- direct
def test_direct_matches_reference_function():
    rng = np.random.default_rng(0)
    X = rng.normal(scale=3, size=(5000, 40))  # > one chunk of rows
    y = rng.integers(0, 7, size=5000)
    for t in (1.0, 0.5, 1 / 0.8840):
        rel = CategoryRelationship(temperature=t).fit(X, y)
        np.testing.assert_allclose(rel.relationship_, reference_direct(X, y, t), rtol=1e-12)


def test_direct_hand_computed():
    # probabilities given directly, so the means are checkable by eye
    P = np.array([[0.5, 0.5, 0.0], [0.7, 0.1, 0.2], [0.0, 0.0, 1.0], [0.2, 0.2, 0.6]])
    rel = CategoryRelationship(input="proba").fit(P, ["a", "a", "b", "b"])
    np.testing.assert_allclose(rel.relationship_, [[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(rel.source_marginal_, [0.35, 0.2, 0.45])
    np.testing.assert_allclose(rel.class_prior_, [0.5, 0.5])
    # p(t|s) = p(s|t) p(t) / p(s)
    np.testing.assert_allclose(
        rel.target_given_source_, [[0.6 / 0.7, 0.1 / 0.7], [0.75, 0.25], [0.1 / 0.9, 0.8 / 0.9]]
    )
    np.testing.assert_allclose(rel.soft_targets(["b", "a"]), [[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])


def test_leep_hand_computed():
    P = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    y = np.array([0, 0, 1, 1])
    # joint p(t, s) = 1/n sum_i P[i, s] [y_i = t]
    joint = np.array([[1.7, 0.3], [0.4, 1.6]]) / 4
    ps = joint.sum(0)
    tgs = joint / ps  # p(t | s), columns over s
    eep = P @ tgs.T
    expected = np.mean(np.log(eep[np.arange(4), y]))
    assert leep_score(P, y, input="proba") == pytest.approx(expected, rel=1e-12)
    assert leep_score(P, y, input="proba") == pytest.approx(-0.34262, abs=1e-4)
    rel = CategoryRelationship(input="proba").fit(P, y)
    np.testing.assert_allclose(rel.transform(P), eep)
    # logits path: the same after log
    assert leep_score(np.log(P), y) == pytest.approx(expected, rel=1e-10)


def test_zero_source_columns_give_prior_and_finite_scores():
    P = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = [0, 0, 1]
    rel = CategoryRelationship(input="proba").fit(P, y)
    assert np.all(np.isfinite(rel.relationship_))
    np.testing.assert_allclose(rel.target_given_source_[2], rel.class_prior_)
    # a sample whose probability for its class is exactly 0 still scores finitely
    assert np.isfinite(rel.score(P, [1, 0, 0]))


# -------------------------------------------------------------------- reverse
def test_reverse_two_classes_hand_computed():
    # Source proba on 2 source classes, mostly (not perfectly) separating.
    P = np.array([[0.9, 0.1]] * 40 + [[0.3, 0.7]] * 10 + [[0.2, 0.8]] * 40 + [[0.6, 0.4]] * 10)
    y = np.array([0] * 50 + [1] * 50)
    rel = CategoryRelationship(method="reverse", input="proba", random_state=0, tol=1e-10)
    rel.fit(P, y)
    coef = rel.reverse_coef_
    assert coef.shape == (2, 2)  # two rows, not sklearn's single binary row
    # A 2-class multinomial model with C equals a binary one with C_b = 2C and
    # w = coef[1] - coef[0], fitted on the same (training) part.
    train, _ = rel._holdout_split(y)
    binary = LogisticRegression(C=2 * rel.C_, fit_intercept=False, tol=1e-12, max_iter=10_000)
    binary.fit(P[train], y[train])
    np.testing.assert_allclose(coef[1] - coef[0], binary.coef_[0], rtol=1e-3, atol=1e-4)
    # p(t=1 | s) = sigmoid(w_s / T); p(s) = mean source probability
    p1 = 1 / (1 + np.exp(-binary.coef_[0] / rel.calibration_temperature_))
    tgs = np.column_stack([1 - p1, p1])
    np.testing.assert_allclose(rel.target_given_source_, tgs, rtol=1e-3)
    ps = P.mean(axis=0)
    np.testing.assert_allclose(rel.source_marginal_, ps)
    joint = tgs.T * ps
    np.testing.assert_allclose(rel.relationship_, joint / joint.sum(1, keepdims=True), rtol=1e-3)
    assert rel.relationship_[0, 0] > 0.5 and rel.relationship_[1, 1] > 0.5


def test_reverse_recovers_planted_relationship():
    rng = np.random.default_rng(0)
    n_source, n_classes, n = 30, 6, 600
    planted = rng.permutation(n_source)[:n_classes]  # target t is mostly source s(t)
    y = rng.integers(0, n_classes, size=n)
    logits = rng.normal(size=(n, n_source))
    logits[np.arange(n), planted[y]] += 3.0
    for method in ("direct", "reverse"):
        rel = CategoryRelationship(method=method, random_state=0).fit(logits, y)
        np.testing.assert_array_equal(rel.relationship_.argmax(axis=1), planted)
    assert rel.C_ in rel.path_scores_
    assert rel.path_scores_[rel.C_] == min(rel.path_scores_.values())


def test_reverse_warm_path_matches_full_grid_choice():
    rng = np.random.default_rng(1)
    n_source, n_classes, n = 20, 4, 300
    y = rng.integers(0, n_classes, size=n)
    logits = rng.normal(size=(n, n_source))
    logits[np.arange(n), y] += 1.5
    early = CategoryRelationship(method="reverse", random_state=0).fit(logits, y)
    full = CategoryRelationship(method="reverse", patience=None, random_state=0).fit(logits, y)
    assert len(full.path_scores_) == 17
    assert early.C_ == full.C_


def test_reverse_tiny_classes():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(9, 5))
    y = [0, 0, 0, 0, 1, 1, 1, 1, 2]  # class 2 has a single sample: never held out
    rel = CategoryRelationship(method="reverse", random_state=0)
    train, val = rel._holdout_split(np.array(y))
    assert 8 not in val and set(np.array(y)[train]) == {0, 1, 2}
    rel.fit(logits, y)
    assert np.all(np.isfinite(rel.relationship_))
    np.testing.assert_allclose(rel.relationship_.sum(1), 1)
    # no class can be split: falls back with a warning, still valid
    with pytest.warns(UserWarning, match="nothing can be held out"):
        rel = CategoryRelationship(method="reverse").fit(logits[:3], [0, 1, 2])
    assert rel.C_ == 1.0
    np.testing.assert_allclose(rel.relationship_.sum(1), 1)


# ------------------------------------------------------------------ properties
def _logits_and_labels():
    return st.integers(2, 5).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, st.tuples(st.integers(k, 30), st.integers(1, 8)),
                   elements=st.floats(-20, 20)),
            st.just(k),
            st.integers(0, 2**31 - 1),
        )
    )


def _labels(n, k, seed):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(k), rng.integers(0, k, size=n - k)])
    return rng.permutation(y)


@settings(max_examples=40, deadline=None)
@given(_logits_and_labels(), st.sampled_from(["direct", "reverse"]))
def test_rows_are_distributions(data, method):
    X, k, seed = data
    y = _labels(len(X), k, seed)
    rel = CategoryRelationship(method=method, random_state=0, Cs=[0.1, 1, 10]).fit(X, y)
    R = rel.relationship_
    assert R.shape == (k, X.shape[1])
    assert np.all(np.isfinite(R)) and np.all(R >= 0)
    np.testing.assert_allclose(R.sum(axis=1), 1, atol=1e-9)
    T = rel.transform(X)
    assert T.shape == (len(X), k)
    np.testing.assert_allclose(T.sum(axis=1), 1, atol=1e-9)
    assert np.isfinite(rel.score(X, y))


@settings(max_examples=40, deadline=None)
@given(_logits_and_labels())
def test_permuting_labels_permutes_rows(data):
    X, k, seed = data
    y = _labels(len(X), k, seed)
    perm = np.random.default_rng(seed).permutation(k)
    R = CategoryRelationship().fit(X, y).relationship_
    R_perm = CategoryRelationship().fit(X, perm[y]).relationship_
    np.testing.assert_allclose(R_perm[perm], R, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(_logits_and_labels())
def test_duplicating_samples_leaves_direct_unchanged(data):
    X, k, seed = data
    y = _labels(len(X), k, seed)
    R = CategoryRelationship().fit(X, y).relationship_
    R2 = CategoryRelationship().fit(np.vstack([X, X]), np.concatenate([y, y])).relationship_
    np.testing.assert_allclose(R2, R, atol=1e-12)


# -------------------------------------------------------------- sklearn usage
def test_grid_search_over_method_and_temperature_by_leep():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=120)
    X = rng.normal(size=(120, 10))
    X[np.arange(120), y] += 2
    grid = GridSearchCV(
        CategoryRelationship(random_state=0),
        {"method": ["direct", "reverse"], "temperature": [0.5, 1.0, 2.0]},
        cv=3,
    ).fit(X, y)
    assert set(grid.best_params_) == {"method", "temperature"}
    assert np.isfinite(grid.best_score_) and grid.best_score_ < 0


def test_pipeline_transform_then_classifier():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=150)
    X = rng.normal(size=(150, 10))
    X[np.arange(150), y] += 3
    pipe = make_pipeline(CategoryRelationship(), LogisticRegression()).fit(X, y)
    assert pipe.score(X, y) > 0.8


def test_string_labels_and_unknown_label_errors():
    X = np.random.default_rng(0).normal(size=(6, 4))
    rel = CategoryRelationship().fit(X, ["b", "a", "c", "a", "b", "c"])
    assert rel.classes_.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="not seen in fit.*'zebra'"):
        rel.soft_targets(["a", "zebra"])
    with pytest.raises(ValueError, match="not seen in fit"):
        rel.score(X[:1], ["zebra"])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "X, y, kwargs, match",
    [
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1], {}, "NaN"),
        (np.array([[np.inf, 1.0], [0.0, 1.0]]), [0, 1], {}, "infinity"),
        (np.zeros(4), [0, 1, 0, 1], {}, "2D array"),
        (np.zeros((2, 2, 2)), [0, 1], {}, "dim"),
        (np.zeros((4, 3)), [0, 0, 0, 0], {}, "at least 2 classes"),
        (np.array([[1.2, -0.2], [0.5, 0.5]]), [0, 1], {"input": "proba"}, "negative"),
        (np.array([[0.2, 0.2], [0.5, 0.5]]), [0, 1], {"input": "proba"}, "do not sum to 1"),
        (np.zeros((4, 3)), [0, 1, 0], {}, "inconsistent numbers of samples"),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"method": "inverse"}, "'method' parameter of CategoryRelationship must be a str among"),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"input": "probs"}, "'input' parameter of CategoryRelationship must be a str among"),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"temperature": 0}, "'temperature' parameter of CategoryRelationship must be a float in the range"),
        (np.zeros((4, 3)), [0, 1, 0, 1], {"method": "reverse", "Cs": [-1]}, "Cs must be"),
    ],
)
def test_bad_input_raises_value_error(X, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CategoryRelationship(**kwargs).fit(X, y)


def test_transform_checks_feature_count():
    rel = CategoryRelationship().fit(np.zeros((4, 3)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="3 features"):
        rel.transform(np.zeros((2, 5)))


def test_feature_names_out_name_the_target_classes_and_enable_pandas_output():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 4))
    y = np.array(["cat", "dog", "emu"])[np.arange(30) % 3]
    X = pd.DataFrame(logits, columns=["s0", "s1", "s2", "s3"])
    rel = CategoryRelationship().set_output(transform="pandas").fit(X, y)
    names = ["categoryrelationship_cat", "categoryrelationship_dog", "categoryrelationship_emu"]
    assert rel.get_feature_names_out().tolist() == names
    assert rel.get_feature_names_out(["s0", "s1", "s2", "s3"]).tolist() == names
    out = rel.transform(X)
    assert list(out.columns) == names
    expected = softmax(logits, axis=1) @ rel.target_given_source_
    np.testing.assert_allclose(out.to_numpy(), expected)
    with pytest.raises(ValueError, match="4 source class name"):
        rel.get_feature_names_out(["a", "b"])
