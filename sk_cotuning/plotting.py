"""Looking at a relationship and at results: top-k tables and figures (matplotlib)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["top_source_classes", "plot_relationship", "plot_paired_accuracy"]


def _check_relationship(relationship: Any, name: str) -> np.ndarray:
    R = np.asarray(relationship, dtype=float)
    if R.ndim != 2 or 0 in R.shape:
        raise ValueError(
            f"{name}: relationship must be a 2-D (n_classes, n_source) matrix, such as "
            f"CategoryRelationship.relationship_; got shape {R.shape}."
        )
    return R


def _check_names(names: Sequence[Any] | None, n: int, what: str, name: str) -> None:
    if names is not None and len(names) != n:
        raise ValueError(
            f"{name}: {len(names)} {what} names for {n} {what} classes; pass one name per "
            f"{'row' if what == 'target' else 'column'} of the relationship (or None)."
        )


def top_source_classes(
    relationship: np.ndarray,
    source_names: Sequence[str] | None = None,
    k: int = 3,
) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable source classes of every target class.

    Parameters
    ----------
    relationship : ndarray of shape (n_classes, n_source)
        ``p(source | target)``, e.g. ``CategoryRelationship.relationship_``.
    source_names : sequence of str, default=None
        Names of the source classes; their indices when ``None``.
    k : int, default=3
        How many to list per target class.

    Returns
    -------
    top : list of list of (str, float)
        For each target class, ``k`` pairs ``(source name, probability)``,
        most probable first.
    """
    R = _check_relationship(relationship, "top_source_classes")
    _check_names(source_names, R.shape[1], "source", "top_source_classes")
    names = [str(i) for i in range(R.shape[1])] if source_names is None else list(source_names)
    order = np.argsort(-R, axis=1, kind="stable")[:, :k]
    return [[(names[j], float(R[t, j])) for j in row] for t, row in enumerate(order)]


def plot_relationship(
    relationship: np.ndarray,
    target_names: Sequence[Any] | None = None,
    source_names: Sequence[str] | None = None,
    ax: Any = None,
    annotate_top: int = 1,
):
    """Heatmap of ``p(source | target)``, one row per target class.

    Parameters
    ----------
    relationship : ndarray of shape (n_classes, n_source)
        The relationship matrix.
    target_names, source_names : sequence, default=None
        Tick labels (omitted on an axis with more than 100 classes); source
        names longer than two characters are written vertically.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when ``None``.
    annotate_top : int, default=1
        Mark the ``annotate_top`` largest entries of each row with a white
        dot (explained in the colour bar's label).

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    R = _check_relationship(relationship, "plot_relationship")
    _check_names(target_names, R.shape[0], "target", "plot_relationship")
    _check_names(source_names, R.shape[1], "source", "plot_relationship")
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2 + 0.22 * R.shape[1], 16), 1 + 0.35 * R.shape[0]))
    image = ax.imshow(R, aspect="auto", cmap="viridis", interpolation="nearest")
    label = "p(source class | target class)"
    if annotate_top > 0:
        label += ("\n• = each row's largest" if annotate_top == 1
                  else f"\n• = each row's {annotate_top} largest")
    ax.figure.colorbar(image, ax=ax, label=label)
    if target_names is not None and len(target_names) <= 100:
        ax.set_yticks(range(R.shape[0]), [str(t) for t in target_names])
    if source_names is not None and len(source_names) <= 100:
        names = [str(s) for s in source_names]
        vertical = max(map(len, names), default=0) > 2
        ax.set_xticks(range(R.shape[1]), names, fontsize=7 if len(names) > 40 else 8,
                      rotation=90 if vertical else 0)
    for t, row in enumerate(np.argsort(-R, axis=1)[:, :annotate_top]):
        for j in row:
            ax.text(j, t, "•", ha="center", va="center", color="white", fontsize=8)
    ax.set_xlabel("source class")
    ax.set_ylabel("target class")
    ax.set_title("Learned category relationship")
    return ax


def plot_paired_accuracy(accuracies: Mapping[str, Sequence[float]], ax: Any = None):
    """Accuracy of each method per seed, paired runs joined by lines.

    Parameters
    ----------
    accuracies : mapping of str to sequence of float
        Method name -> accuracy per seed (same seeds, same order).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when ``None``.

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    names = list(accuracies)
    lengths = {n: len(accuracies[n]) for n in names}
    if not names or len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(
            f"plot_paired_accuracy: every method needs one accuracy per seed, for the same "
            f"seeds; got {lengths or 'no methods'}."
        )
    values = np.array([np.asarray(accuracies[n], dtype=float) for n in names])
    x = np.arange(len(names))
    for seed_values in values.T:
        ax.plot(x, 100 * seed_values, color="0.75", marker="o", markersize=3, zorder=1)
    ax.errorbar(x, 100 * values.mean(1), yerr=100 * values.std(1), fmt="s", color="C3",
                capsize=4, zorder=2, label="mean ± std")
    ax.set_xticks(x, names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Paired runs (one line per seed)")
    # below the axes, so that it never hides a seed's point
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    return ax
