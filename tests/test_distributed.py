"""Scale-out with dask: grid searches and cross-validation on a local cluster."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate

from sk_cotuning import CategoryRelationship, CoTuningClassifier

distributed = pytest.importorskip("distributed")

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
from distributed_fit import backbone, data  # noqa: E402

PARAMS = dict(max_epochs=3, batch_size=16, lr=0.05, verbose=0, random_state=0)



@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def _estimator():
    return CoTuningClassifier(backbone(), device="cpu", **PARAMS)


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_equals_one_process(dask_client):

    X, y = data()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    grid = {"trade_off": [0.0, 2.3]}
    serial = GridSearchCV(_estimator(), grid, cv=cv, n_jobs=1).fit(X, y)
    from sk_cotuning.distributed import dask_backend

    with dask_backend():
        # more jobs than the 2 workers: dask queues them
        remote = GridSearchCV(_estimator(), grid, cv=cv, n_jobs=8).fit(X, y)
    for key in [k for k in serial.cv_results_ if k.startswith("split") or k == "mean_test_score"]:
        np.testing.assert_array_equal(remote.cv_results_[key], serial.cv_results_[key], err_msg=key)
    assert remote.best_params_ == serial.best_params_


@pytest.mark.slow
def test_each_fold_learns_its_relationship_from_its_own_training_part(dask_client):

    X, y = data()
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    from sk_cotuning.distributed import dask_backend

    with dask_backend():
        out = cross_validate(_estimator(), X, y, cv=cv, return_estimator=True, n_jobs=3)
    pre = clone(_estimator()).set_params(classes=np.unique(y)).initialize()
    for (train, _), fitted in zip(cv.split(X, y), out["estimator"]):
        logits, codes = pre.collect_outputs(pre.get_dataset(X[train], y[train]), "source")
        expected = CategoryRelationship().fit(logits.astype(np.float64), y[train])
        np.testing.assert_allclose(fitted.relationship_.relationship_, expected.relationship_,
                                   atol=1e-6)


class _DiesInAWorker:
    """A backbone factory that kills the dask worker process running it."""

    def __call__(self):
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # not in a worker: build normally
            return backbone()
        os._exit(1)


@pytest.mark.slow
def test_a_cluster_that_dies_mid_search_raises_and_reports_nothing(dask_client):
    import dask

    from sk_cotuning.distributed import ClusterFailure, dask_backend

    X, y = data()
    search = GridSearchCV(CoTuningClassifier(_DiesInAWorker(), device="cpu", **PARAMS),
                          {"trade_off": [0.0, 2.3]}, cv=2, n_jobs=2)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with pytest.raises(ClusterFailure, match="lost workers while the search was running"):
            with dask_backend():
                search.fit(X, y)
    assert not hasattr(search, "cv_results_") and not hasattr(search, "best_estimator_")
    dask_client.wait_for_workers(2, timeout=60)  # the nannies restart them
