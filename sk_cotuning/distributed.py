"""Grid searches on a dask cluster: joblib's dask backend, with failures made clear.

scikit-learn's searches run their fits through joblib; under
``joblib.parallel_backend("dask")`` each fit is a task on a
``dask.distributed`` worker (skorch's documented recipe for one fit per GPU:
one worker per GPU, ``--nthreads 1``).  :func:`dask_backend` is that
backend, plus one thing: when the cluster loses workers mid-search, dask
raises whichever of its internal errors surfaces first (``KilledWorker``,
a cancelled future, a closed connection); :func:`dask_backend` turns all of
them into one :class:`ClusterFailure` that says what happened and what to
check.  The search then has no results (scikit-learn sets ``cv_results_``
only when every fit returned), so nothing half-done is reported.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["ClusterFailure", "dask_backend"]


class ClusterFailure(RuntimeError):
    """The dask cluster lost workers (or its connection) while fits were running."""


@contextmanager
def dask_backend(**kwargs: Any) -> Iterator[None]:
    """``joblib.parallel_backend("dask")``, with cluster failures as :class:`ClusterFailure`.

    Parameters
    ----------
    **kwargs
        Passed to ``joblib.parallel_backend`` (e.g. ``scatter=[X, y]``).

    Examples
    --------
    >>> from distributed import Client                      # doctest: +SKIP
    >>> client = Client("tcp://scheduler:8786")             # doctest: +SKIP
    >>> with dask_backend():                                # doctest: +SKIP
    ...     GridSearchCV(CoTuningClassifier("resnet50"), grid, n_jobs=-1).fit(X, y)
    """
    try:
        import joblib
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
        from distributed.comm import CommClosedError
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError(
            "Grid searches on a dask cluster need dask.distributed: "
            "pip install 'dask[distributed]' (from a clone: pip install -e '.[dask]')."
        ) from exc
    try:
        with joblib.parallel_backend("dask", **kwargs):
            yield
    except (KilledWorker, FutureCancelledError, CommClosedError) as exc:
        raise ClusterFailure(
            f"The dask cluster lost workers while the search was running "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}), so the search "
            f"stopped and reported no results. Usual causes: a worker ran out of memory "
            f"(one fit per GPU: --nthreads 1, and enough host memory per worker), CUDA "
            f"initialised before the workers forked, or a worker machine went away. "
            f"Check the workers' logs, then run the search again."
        ) from exc
