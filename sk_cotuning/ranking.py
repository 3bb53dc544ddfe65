"""Ranking candidate backbones on the target data before fine-tuning any of them.

:func:`rank_backbones` runs each candidate once over the training data (its
own preprocessing, batched, on the estimators' device and precision policy),
collects its penultimate features and source-head logits, scores them with
:mod:`sk_cotuning.transferability`, and returns a table sorted by one score.
"""

from __future__ import annotations

import numbers
import time
import warnings
from typing import Any, Callable, Mapping

import numpy as np

from sk_cotuning.transferability import (
    h_score,
    leep_score,
    logme_score,
    nce_score,
    regularized_h_score,
)

__all__ = ["SCORES", "BackboneRanking", "rank_backbones"]

#: score name -> (function, the network output it reads)
SCORES: Mapping[str, tuple[Callable, str]] = {
    "logme": (logme_score, "features"),
    "leep": (leep_score, "source"),
    "nce": (nce_score, "source"),
    "h_score": (h_score, "features"),
    "regularized_h_score": (regularized_h_score, "features"),
}


class BackboneRanking(dict):
    """Column name -> list of values, one row per candidate, best first.

    Columns: ``candidate``, one per score, ``seconds`` (building the model,
    the pass over the data and scoring) and ``error`` (``None``, or why the
    candidate could not be scored; its scores are NaN).  ``pandas.DataFrame
    (ranking)`` makes a data frame; ``print(ranking)`` a table.
    """

    @property
    def best(self) -> str:
        """The top candidate's name."""
        return self["candidate"][0]

    def rows(self) -> list[dict]:
        """The rows, as dicts."""
        return [dict(zip(self, values)) for values in zip(*self.values())]

    def __str__(self) -> str:
        from tabulate import tabulate

        return tabulate(self.rows(), headers="keys", floatfmt=".4g")


def _label(candidate: Any, index: int) -> str:
    """``"resnet50"``; a dict's other parameters in brackets (``"resnet50
    (weights=None)"``), so that one architecture with two sets of weights gets
    two names; a module or factory its class or function name and position."""
    backbone = candidate.get("backbone") if isinstance(candidate, Mapping) else candidate
    if isinstance(backbone, str):
        name = backbone
    else:
        name = f"{getattr(backbone, '__name__', None) or type(backbone).__name__} #{index}"
    if isinstance(candidate, Mapping):
        rest = ", ".join(f"{key}={value!r}" for key, value in candidate.items()
                         if key != "backbone")
        name = f"{name} ({rest})" if rest else name
    return name


def _check_candidates(candidates: Any) -> list[tuple[str, dict]]:
    if isinstance(candidates, Mapping):
        items = list(candidates.items())
    elif isinstance(candidates, (list, tuple)):
        items = [(_label(c, i), c) for i, c in enumerate(candidates)]
    else:
        raise TypeError(
            f"candidates must be a list of backbones (anything backbone= accepts, or dicts "
            f"of estimator parameters such as {{'backbone': 'resnet18', 'weights': None}}) "
            f"or a dict name -> such a candidate; got {type(candidates).__name__}."
        )
    if not items:
        raise ValueError("candidates is empty: give at least one backbone to rank.")
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError(
            f"Two candidates share a name ({names}); pass a dict name -> candidate."
        )
    return [(name, dict(spec) if isinstance(spec, Mapping) else {"backbone": spec})
            for name, spec in items]


def rank_backbones(
    candidates: Any,
    X: Any,
    y: Any,
    *,
    scores: tuple[str, ...] = ("logme", "leep", "nce", "h_score"),
    sort_by: str | None = None,
    batch_size: int = 64,
    device: Any = "auto",
    amp: Any = "auto",
    random_state: Any = None,
    verbose: int = 1,
) -> BackboneRanking:
    """Score candidate pre-trained backbones on the target training data, best first.

    Each candidate is built as :class:`~sk_cotuning.FineTuningClassifier`
    builds it (same ``backbone``/``weights`` handling, preprocessing, device
    and precision), run once over ``X`` in evaluation mode, and scored from
    its pooled features (LogME, H-score) and source-head logits (LEEP, NCE).
    No candidate is trained.

    Parameters
    ----------
    candidates : list or dict
        Each candidate is anything ``backbone=`` accepts (a name such as
        ``"resnet50"`` or ``"timm/convnext_tiny"``, an ``nn.Module``, a
        factory), or a dict of estimator parameters for it
        (``{"backbone": ..., "weights": ..., "source_head": ...}``).  A dict
        ``{name: candidate}`` names them; otherwise names are derived.
    X : array-like, list of paths, or SliceDataset
        The target training inputs, as for ``fit``.
    y : array-like of shape (n_samples,)
        Their labels (at least two classes).
    scores : str or tuple of str, default=("logme", "leep", "nce", "h_score")
        Which scores to compute (keys of :data:`SCORES`; also
        ``"regularized_h_score"``, which did not rank this package's
        benchmark zoo: see the user guide).  One name computes one score.
    sort_by : str or None, default=None
        The score that orders the table (higher first); ``None``: ``"logme"``
        when it is computed, else the first of ``scores``.  LogME had the best
        published agreement with fine-tuned accuracy; see the user guide
        ("Choosing a backbone and settings") for this package's measurement.
    batch_size : int, default=64
        Batch size of the pass over ``X``.
    device, amp
        As in :class:`~sk_cotuning.FineTuningClassifier`.
    random_state : int, RandomState or None, default=None
        Seeds what is random in building a candidate (random weights,
        ``weights=None``), so a ranking repeats.
    verbose : int, default=1
        ``1``: print one line per candidate as it finishes; ``2``: also a
        progress bar over each candidate's batches (for long passes).

    Returns
    -------
    ranking : BackboneRanking
        One row per candidate, sorted by ``sort_by`` (failed candidates last,
        with the reason in ``error``).

    Raises
    ------
    ValueError
        For an empty candidate list, unknown score names, ``y`` with fewer
        than two classes or not matching ``X``, or when no candidate could be
        scored.  A candidate that fails to build or to run is reported in
        the table and by a warning, and the others are still scored.
    """
    from sk_cotuning._labels import check_fit_targets
    from sk_cotuning._validation import validate_params
    from sk_cotuning.fine_tuning import FineTuningClassifier
    from sk_cotuning.network import unwrap
    from sk_cotuning.runtime import check_device, seeded

    items = _check_candidates(candidates)
    scores = (scores,) if isinstance(scores, str) else tuple(scores)
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ValueError(f"Unknown score(s) {unknown or '(none given)'}; choose from "
                         f"{sorted(SCORES)}.")
    if sort_by is None:
        sort_by = "logme" if "logme" in scores else scores[0]
    if sort_by not in scores:
        raise ValueError(f"sort_by={sort_by!r} is not among the scores computed {scores}.")
    # what every candidate shares is checked once, here, not reported per candidate
    shared = {"batch_size": batch_size, "amp": amp}
    validate_params({k: FineTuningClassifier._parameter_constraints[k] for k in shared},
                    shared, "rank_backbones")
    check_device(device)
    if isinstance(verbose, bool) or not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise ValueError(f"verbose must be an int >= 0 (0, 1 or 2), got {verbose!r}.")
    y = np.asarray(y)
    classes = check_fit_targets(y, "rank_backbones")
    if len(classes) < 2:
        raise ValueError("y has a single class: ranking needs at least 2 classes.")
    try:
        n = len(X)
    except TypeError:
        n = None
    if n is not None and n != len(y):
        raise ValueError(f"X has {n} samples but y has {len(y)}.")
    fields = tuple(sorted({SCORES[s][1] for s in scores}))
    rows = []
    for index, (name, params) in enumerate(items, 1):
        start = time.perf_counter()
        row: dict[str, Any] = {"candidate": name}
        try:
            net = FineTuningClassifier(
                **params, classes=classes, batch_size=batch_size, device=device, amp=amp,
                max_epochs=0, verbose=int(verbose >= 2),
            )
            with seeded(random_state):
                net.initialize()
            unwrap(net.module_).use_source_head = "source" in fields
            outputs, _ = net._collect(fields, X, desc=name if verbose >= 2 else None)
            for score in scores:
                function, field = SCORES[score]
                row[score] = float(function(outputs[field], y))
                if not np.isfinite(row[score]):  # never a silent NaN in the table
                    raise FloatingPointError(f"{score} came out {row[score]} on its outputs")
            row["error"] = None
        except Exception as exc:  # noqa: BLE001 - reported per candidate, the rest still run
            for score in scores:
                row[score] = float("nan")
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            warnings.warn(f"rank_backbones: candidate {name!r} could not be scored "
                          f"({row['error']}); the others still are.", UserWarning, stacklevel=2)
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if verbose:
            shown = ", ".join(f"{s}={row[s]:.4g}" for s in scores)
            print(f"[{index}/{len(items)}] {name}: {shown} ({row['seconds']:.1f}s)"
                  + (f" -- {row['error']}" if row["error"] else ""), flush=True)
    if all(row["error"] for row in rows):
        raise ValueError(
            "No candidate could be scored: " + "; ".join(f"{r['candidate']}: {r['error']}"
                                                        for r in rows)
        )
    rows.sort(key=lambda r: (r["error"] is not None, -np.nan_to_num(r[sort_by], nan=-np.inf)))
    columns = ["candidate", *scores, "seconds", "error"]
    return BackboneRanking({column: [row[column] for row in rows] for column in columns})
