"""Successive halving over epochs: scikit-learn's HalvingGridSearchCV with resource="max_epochs"."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import HalvingGridSearchCV, HalvingRandomSearchCV, StratifiedKFold

from sk_cotuning import CoTuningClassifier, FineTuningClassifier


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:120], y[:120]


def test_halving_grid_over_epochs_trains_each_budget_with_its_own_schedule(digits):
    X, y = digits
    est = CoTuningClassifier("glyphnet", batch_size=16, verbose=0, random_state=0)
    search = HalvingGridSearchCV(
        est, {"trade_off": [0.0, 2.3], "lr": [0.003, 0.03]}, resource="max_epochs",
        min_resources=1, max_resources=4, factor=2, cv=StratifiedKFold(2), refit=True,
    ).fit(X, y)
    results = search.cv_results_
    # 4 candidates at 1 epoch, 2 at 2 epochs, 1 at 4 epochs
    assert list(np.bincount(results["iter"])) == [4, 2, 1]
    assert sorted(set(results["n_resources"])) == [1, 2, 4]
    best = search.best_estimator_
    assert best.max_epochs == 4 and len(best.history_) == 4
    # the cosine schedule spans the budget it was given: the backbone's rate decays
    # within the 4 epochs (not the default 20)
    rates = best.history_[:, "event_backbone_lr"]
    assert rates[0] > rates[-1] and rates[-1] < 0.2 * rates[0]
    # Co-Tuning prepared its relationship in the refit (trade_off > 0) or is plain
    if best.trade_off > 0:
        assert best.relationship_.relationship_.shape == (10, 62)


def test_halving_random_search_over_the_regulariser(digits):
    X, y = digits
    est = FineTuningClassifier("glyphnet", batch_size=16, verbose=0, random_state=0)
    search = HalvingRandomSearchCV(
        est, {"regularizer": [None, "co_tuning", "l2_sp"], "lr": [0.01, 0.03]},
        n_candidates=4, resource="max_epochs", min_resources=1, max_resources=3, factor=3,
        cv=StratifiedKFold(2), random_state=0,
    ).fit(X, y)
    assert search.n_resources_ == [1, 3]
    assert search.best_estimator_.max_epochs == 3
    assert search.best_score_ > 0.3  # 10 classes: chance is 0.1
