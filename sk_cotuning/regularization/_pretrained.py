"""Shared pieces of the regularisers that compare with the pre-trained model.

- :class:`FrozenCopy`: a deep copy of the pre-trained features (and source
  head), never trained, normalising as the fine-tuned network does;
- :class:`InputCapture`: keeps the (normalised) input batch of the network's
  feature extractor during training, so a regulariser can run the frozen
  copy on exactly what the fine-tuned network saw;
- :func:`stage_outputs`: the modules whose outputs are the feature maps of
  each spatial resolution (the "stages" DELTA regularises);
- :func:`linear_probe`: a multinomial logistic regression on pre-trained
  features (LP-FT's first step, DELTA's attention classifier).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["FrozenCopy", "InputCapture", "cumulative_batchnorm", "linear_probe", "stage_outputs"]


@contextmanager
def cumulative_batchnorm(norms: list) -> Iterator[None]:
    """Within the block, BatchNorm statistics restart and average every training-mode batch.

    Each layer's running statistics are reset and its momentum set to
    ``None`` (PyTorch's cumulative average), so a pass over a data set in
    training mode leaves that data set's statistics; the momenta are
    restored afterwards.  StochNorm's preparation uses it.

    Parameters
    ----------
    norms : list of torch.nn.modules.batchnorm._BatchNorm
    """
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum


class FrozenCopy(nn.Module):
    """A frozen copy of the pre-trained feature extractor (and, optionally, head).

    Its parameters never require gradients (so the optimiser never sees
    them) and it stays in evaluation mode whatever ``train()`` asks, so its
    stored BatchNorm statistics stay the pre-trained ones.  It is a submodule
    of the regulariser: saved with the network, moved with it between devices.

    A regulariser that compares the fine-tuned network with this copy on a
    *training* batch runs the copy under :meth:`batch_statistics`: the
    fine-tuned network normalises a training batch by the batch's own
    statistics, so the copy must too, or the two differ before a single step
    (on Fashion-MNIST through EfficientNet-Lite0, DELTA's distance was 2.9e5
    and LWF's KL 3.9 at step 0 with identical weights; tllib's teacher runs
    in evaluation mode).  Dropout stays off in the copy.

    Parameters
    ----------
    features : nn.Module
        The pre-trained feature extractor (copied).
    head : nn.Module or None
        The pre-trained source head (copied), for :meth:`logits`.
    """

    def __init__(self, features: nn.Module, head: nn.Module | None = None) -> None:
        super().__init__()
        self.features = copy.deepcopy(features)
        self.head = copy.deepcopy(head) if head is not None else None
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrozenCopy":
        return super().train(False)

    @contextmanager
    def batch_statistics(self, enabled: bool = True) -> Iterator["FrozenCopy"]:
        """Within the block, BatchNorm layers normalise by the batch's statistics.

        As the fine-tuned network does in training, but without updating the
        stored statistics (``track_running_stats`` is off while the block
        runs), so the copy stays the pre-trained model.

        Parameters
        ----------
        enabled : bool, default=True
            ``False`` leaves the copy in evaluation mode (for batches the
            fine-tuned network sees in evaluation mode).
        """
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(m.training, m.track_running_stats) for m in norms]
        if enabled:
            for m in norms:
                m.training, m.track_running_stats = True, False
        try:
            yield self
        finally:
            for m, (training, tracking) in zip(norms, saved):
                m.training, m.track_running_stats = training, tracking

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(N, n_features)`` of a normalised batch."""
        f = self.features(x)
        if isinstance(f, (tuple, list)):
            f = f[0]
        return torch.flatten(f, 1) if f.ndim > 2 else f

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Source logits ``(N, n_source)`` of a normalised batch."""
        return self.head(self(x))


class InputCapture:
    """Forward pre-hook that keeps the input batch of a module while training.

    Registered on the network's feature extractor, it sees the normalised
    batch (after :class:`~sk_cotuning.network.InputNormalization`).  Only
    batches seen while ``owner.training`` are kept, so prediction holds no
    reference; :meth:`pop` hands the batch over once.
    """

    def __init__(self, owner: nn.Module) -> None:
        self.owner = owner
        self.batch: torch.Tensor | None = None
        self.autocast: torch.dtype | None = None

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if self.owner.training and args:
            self.batch = args[0]
            device = self.batch.device.type
            enabled = torch.is_autocast_enabled(device)
            self.autocast = torch.get_autocast_dtype(device) if enabled else None

    def pop(self) -> torch.Tensor | None:
        batch, self.batch = self.batch, None
        return batch

    def precision(self, device: torch.device):
        """The autocast context the captured batch was computed under (for the frozen copy)."""
        return torch.autocast(device.type, dtype=self.autocast or torch.float32,
                              enabled=self.autocast is not None)


def _named_4d_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Size]]:
    """(name, output shape) of every submodule with a 4-D output, in the order they finish."""
    seen: list[tuple[str, torch.Size]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(mod, args, out, name=name):
            if isinstance(out, torch.Tensor) and out.ndim == 4:
                seen.append((name, out.shape))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def stage_outputs(model: nn.Module, x: torch.Tensor, n_layers: int = 4) -> list[tuple[str, int]]:
    """The modules whose outputs are the feature maps of each resolution (the stages).

    A forward pass on ``x`` records every submodule's 4-D output.  For each
    spatial size, the *outermost* modules producing it (fewest dots in the
    name) are the candidates, and the one that finishes last gives that
    resolution's feature map: for a ResNet ``layer1``..``layer4`` (not the
    first 1x1 convolution of the next stage, which still runs at the old
    resolution), for an EfficientNet the stage containers ``blocks.N`` and
    the final ``bn2``.  The deepest ``n_layers`` resolutions above 1x1 are
    returned, shallow to deep.

    Parameters
    ----------
    model : nn.Module
        A feature extractor.
    x : Tensor of shape (N, C, H, W)
        A normalised input batch.
    n_layers : int, default=4

    Returns
    -------
    list of (str, int)
        ``(module name, channels)``, shallow to deep.
    """
    best: dict[tuple[int, int], tuple[int, int, str, int]] = {}
    for order, (name, shape) in enumerate(_named_4d_outputs(model, x)):
        size = (int(shape[2]), int(shape[3]))
        if size[0] * size[1] <= 1:
            continue
        depth = name.count(".")
        held = best.get(size)
        if held is None or depth < held[1] or (depth == held[1] and order > held[0]):
            best[size] = (order, depth, name, int(shape[1]))
    ranked = sorted(best.values())
    return [(name, channels) for _, _, name, channels in ranked[-n_layers:]]


def linear_probe(
    features: np.ndarray, codes: np.ndarray, n_classes: int, C: float = 1.0, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on fixed features, as a linear layer.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features)
    codes : ndarray of shape (n_samples,)
        Label indices in ``range(n_classes)``.
    n_classes : int
        Classes of the head; a class without a sample gets a zero weight row
        and a bias below every other class's (it is never predicted first).
    C : float, default=1.0
        Inverse L2 strength (scikit-learn's).
    max_iter : int, default=1000

    Returns
    -------
    weight : ndarray of shape (n_classes, n_features)
    bias : ndarray of shape (n_classes,)
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    present = np.unique(codes)
    weight = np.zeros((n_classes, features.shape[1]))
    bias = np.zeros(n_classes)
    if len(present) < 2:
        raise ValueError(
            f"A linear probe needs at least two classes in the training data, got "
            f"{len(present)}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model: Any = LogisticRegression(C=C, max_iter=max_iter).fit(features, codes)
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # sklearn's binary form: one row for class present[1]
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weight[present] = coef
    bias[present] = intercept
    missing = np.setdiff1d(np.arange(n_classes), present)
    if len(missing):
        bias[missing] = intercept.min() - np.log(1e3)
    return weight, bias
