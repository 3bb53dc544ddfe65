"""DELTA (Li et al., ICLR 2019): keep the feature maps that matter near the pre-trained ones.

``loss += alpha * sum_l sum_c a_lc * mean_{n,h,w} (FM_lc(w, x) - FM_lc(w0, x))^2
        + beta * 0.5 * ||w_head||^2``

over the feature maps ``FM_l`` of a few layers of the fine-tuned (``w``) and
the frozen pre-trained (``w0``) backbone, on the same batch; ``a_l`` is the
channel attention (summing to one per layer), learned once from the
pre-trained model on the target data: how much a linear classifier on the
pre-trained features loses when a channel is removed.  tllib's
``AttentionBehavioralRegularization`` sums over the batch and weighs each
layer by its channel count, ``sum_l 0.5 * sum_{n,c} C_l * a_lc *
||FM_lc(w, x_n) - FM_lc(w0, x_n)||^2 / (H_l W_l)``; it is kept as
``reduction="sum"``.  The default ``reduction="mean"`` takes the mean per
element instead, so one weight serves every backbone, batch size and input
size.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch import nn

from sk_cotuning._validation import WEIGHT, Interval, StrOptions
from sk_cotuning.regularization._base import LossTerm, Regularizer
from sk_cotuning.regularization._pretrained import (
    FrozenCopy,
    InputCapture,
    linear_probe,
    stage_outputs,
)
from sk_cotuning.regularization.l2_sp import head_l2

__all__ = ["DELTA", "attention_feature_distance", "normalize_attention"]


def attention_feature_distance(
    student: list[torch.Tensor], teacher: list[torch.Tensor], attention: list[torch.Tensor],
    reduction: str = "mean",
) -> torch.Tensor:
    """DELTA's attention-weighted feature-map distance.

    Parameters
    ----------
    student, teacher : list of Tensor of shape (N, C_l, H_l, W_l)
        Feature maps of the fine-tuned and the pre-trained model (the
        teacher's are treated as constants).
    attention : list of Tensor of shape (C_l,)
        Channel attention per layer (each sums to one).
    reduction : {"mean", "sum"}, default="mean"
        ``"mean"``: ``sum_l sum_c a_lc * mean_{n,h,w} (s - t)^2``, the
        attention-weighted mean squared difference per element, summed over
        the layers -- the same scale for any batch size, channel count and
        input size.  ``"sum"``: tllib's
        ``sum_l 0.5 * sum_{n,c} C_l * a_lc * ||s_nc - t_nc||^2 / (H_l W_l)``,
        which grows with the batch size and the channels (``"sum"`` equals
        ``"mean"`` times ``0.5 * N * C_l`` per layer).

    Returns
    -------
    Tensor
        A scalar.
    """
    total = student[0].new_zeros((), dtype=torch.float32)
    for s, t, a in zip(student, teacher, attention):
        n, c, h, w = s.shape
        d = (s.float() - t.detach().float()).reshape(n, c, h * w).pow(2).mean(dim=2)  # (N, C)
        if reduction == "sum":
            total = total + 0.5 * (c * a.float().view(1, c) * d).sum()
        else:
            total = total + (a.float().view(1, c) * d).sum() / n
    return total


def normalize_attention(scores: np.ndarray) -> np.ndarray:
    """tllib's normalisation: z-scores across channels, then ``softmax(z / 5)``."""
    scores = np.asarray(scores, dtype=np.float64)
    std = scores.std()
    z = (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    e = np.exp(z / 5 - (z / 5).max())
    return e / e.sum()


class _MapCapture:
    """Forward hook keeping a layer's output in ``store[key]`` while ``active()``."""

    def __init__(self, store: dict, key: int, owner: "DELTA", teacher: bool) -> None:
        self.store, self.key, self.owner, self.teacher = store, key, owner, teacher

    def __call__(self, module: nn.Module, args: tuple, output: Any) -> None:
        if (self.owner._teacher_pass if self.teacher else self.owner.training):
            self.store[self.key] = output[0] if isinstance(output, (tuple, list)) else output


class _ZeroChannel:
    """Forward hook replacing one channel of a layer's output by zeros."""

    def __init__(self, channel: int) -> None:
        self.channel = channel

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[:, self.channel] = 0
        return output


class DELTA(Regularizer):
    """DELTA: attention-weighted feature-map distance to the pre-trained backbone.

    Parameters
    ----------
    alpha : float, default=0.01
        Weight of the feature-map distance.  With ``reduction="mean"`` the
        distance is a mean squared difference per feature-map element, the
        same scale for any backbone.  The default was chosen on validation
        data (EfficientNet-Lite0 -> Fashion-MNIST, 10 images per class: of
        0.001, 0.003, 0.01, 0.1 and 1, the values 0.003 and 0.01 did best,
        1 cost 13 points; ``benchmarks/recipe_probe.py``).  tllib's
        ``--trade-off-backbone`` is also 0.01, but on its summed distance
        (``reduction="sum"``), a weight about 1000 times larger here.
    beta : float, default=0.01
        Weight of ``0.5 * ||w_head||^2`` on the new target head.
    attention : {"taylor", "removal", "uniform"}, default="taylor"
        How the channel attention is learned, once, from the pre-trained
        model: a linear probe (multinomial logistic regression) is fitted on
        the pre-trained features of the training split, and each channel's
        score is the rise in the probe's loss when the channel is removed --
        ``"removal"`` measures it by zeroing each channel in turn (the
        paper's procedure: one forward pass per channel and batch, slow for
        wide layers), ``"taylor"`` estimates it to first order from one
        backward pass (``-sum(grad * activation)``, Molchanov et al. 2017).
        Scores are normalised as tllib does (z-score, ``softmax(z / 5)``).
        ``"uniform"`` gives every channel ``1 / C`` (no attention).
    layers : list of str or None, default=None
        Names of the backbone's modules (relative to its feature extractor)
        whose outputs are regularised.  ``None`` chooses, by a forward pass
        on one training batch, the module that produces the last feature
        map of each of the 4 deepest spatial resolutions (for a ResNet,
        ``layer1``..``layer4``).
    attention_batches : int or None, default=None
        Use at most this many batches of the training split for the
        attention (``None``: all).
    C : float, default=1.0
        Inverse L2 strength of the attention's linear probe.
    reduction : {"mean", "sum"}, default="mean"
        How the distance is reduced (see :func:`attention_feature_distance`):
        ``"mean"`` per element, ``"sum"`` tllib's sum over the batch and
        channels (its size grows with batch size x channels: about 1e5 on
        EfficientNet-Lite0's stages, so tllib's ``alpha`` there is a
        different weight on every backbone).

    Attributes
    ----------
    teacher : FrozenCopy
        The pre-trained feature extractor (frozen, evaluation mode).
    attention : Tensor of shape (sum of the layers' channels,)
        Buffer: the channel attention, layer after layer.
    layers_ : list of (str, int)
        The regularised modules and their channels (saved with the network).

    Notes
    -----
    One extra forward pass (without gradients) through the frozen copy per
    training step, normalising by the batch's statistics as the fine-tuned
    network does (:meth:`FrozenCopy.batch_statistics`), so the distance is 0
    before the first step; tllib runs the copy in evaluation mode, which on
    a target whose statistics differ from the source's makes the term
    thousands of times the classification loss at step 0.  The feature term
    is computed on training batches only (``valid_delta_loss`` is not
    logged).  The
    default SGD weight decay becomes 0 (:attr:`weight_decay`), as in tllib.
    """

    terms = ("delta", "head_l2")
    name = "delta"
    prepares_from = frozenset({"features"})
    prepared_params = frozenset({"attention", "layers", "attention_batches", "C"})
    weight_decay = 0.0

    def __init__(self, alpha: float = 0.01, beta: float = 0.01, attention: str = "taylor",
                 layers: Any = None, attention_batches: Any = None, C: float = 1.0,  # noqa: N803
                 reduction: str = "mean") -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.attention = attention
        self.layers = layers
        self.attention_batches = attention_batches
        self.C = C
        self.reduction = reduction
        self.teacher: nn.Module | None = None
        self.register_buffer("channel_attention", torch.zeros(0))
        self.layers_: list[tuple[str, int]] = []
        self._handles: list = []
        self._student_maps: dict[int, torch.Tensor] = {}
        self._teacher_maps: dict[int, torch.Tensor] = {}
        self._teacher_pass = False

    # ---------------------------------------------------------------- params
    _parameter_constraints = {
        "alpha": [WEIGHT],
        "beta": [WEIGHT],
        "attention": [StrOptions({"taylor", "removal", "uniform"})],
        "layers": [list, tuple, None],
        "attention_batches": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "C": [Interval(numbers.Real, 0, None, closed="neither")],
        "reduction": [StrOptions({"mean", "sum"})],
    }

    def check(self) -> None:
        super().check()
        layers = self.layers
        if layers is not None and (not layers or not all(isinstance(n, str) for n in layers)):
            raise ValueError(
                f"The 'layers' parameter of DELTA must be None or a non-empty list of module "
                f"names. Got {layers!r} instead."
            )

    # ------------------------------------------------------------- structure
    def attach(self, network: nn.Module) -> None:
        super().attach(network)
        self.teacher = FrozenCopy(network.features)
        self._capture = InputCapture(self)
        network.features.register_forward_pre_hook(self._capture)

    def _hook_layers(self, layers: list[tuple[str, int]]) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.layers_ = [(str(n), int(c)) for n, c in layers]
        student, teacher = self.network.features, self.teacher.features
        for key, (name, _) in enumerate(self.layers_):
            try:
                s_layer, t_layer = student.get_submodule(name), teacher.get_submodule(name)
            except AttributeError:
                raise ValueError(
                    f"DELTA: the backbone has no module {name!r}; layers must name modules of "
                    f"its feature extractor, e.g. one of {[n for n, _ in student.named_modules()][1:8]}."
                ) from None
            self._handles.append(s_layer.register_forward_hook(
                _MapCapture(self._student_maps, key, self, teacher=False)))
            self._handles.append(t_layer.register_forward_hook(
                _MapCapture(self._teacher_maps, key, self, teacher=True)))

    def get_extra_state(self) -> dict:
        return {"layers": [list(layer) for layer in self.layers_]}

    def set_extra_state(self, state: Any) -> None:
        layers = [tuple(layer) for layer in state.get("layers", [])]
        if layers:
            self._hook_layers(layers)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "channel_attention")
        if saved is not None and saved.shape != self.channel_attention.shape:
            # the layers (so the size) are chosen in prepare: take the saved size
            self.channel_attention = torch.zeros_like(saved, device=self.channel_attention.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------- preparation
    def _batches(self, net: Any, dataset: Any):
        """Normalised training batches ``(x, codes)``, at most ``attention_batches``."""
        normalize = self.network.normalize
        for i, batch in enumerate(net.get_iterator(dataset, training=False)):
            if self.attention_batches is not None and i >= self.attention_batches:
                break
            Xi, yi = unpack_data(batch)
            x = normalize(to_tensor(Xi, device=net.device))
            yield x, torch.as_tensor(yi, device=x.device).long().reshape(-1)

    def prepare(self, net: Any, dataset: torch.utils.data.Dataset) -> None:
        """Choose the layers (if not given) and learn the channel attention."""
        x0, _ = next(self._batches(net, dataset))
        if self.layers is None:
            layers = stage_outputs(self.teacher.features, x0)
            if not layers:
                raise ValueError(
                    "DELTA found no feature maps (4-D outputs) in this backbone; it regularises "
                    "convolutional feature maps. Use another regularizer (e.g. 'l2_sp')."
                )
        else:
            found = {name: None for name in self.layers}
            self._hook_layers([(name, 0) for name in self.layers])  # validates the names
            self._teacher_pass = True
            try:
                with torch.no_grad():
                    self.teacher(x0)
            finally:
                self._teacher_pass = False
            maps = dict(self._teacher_maps)
            self._teacher_maps.clear()
            for key, name in enumerate(self.layers):
                fm = maps.get(key)
                if fm is None or fm.ndim != 4:
                    raise ValueError(f"DELTA: layer {name!r} does not output a feature map (N, C, H, W).")
                found[name] = int(fm.shape[1])
            layers = list(found.items())
        self._hook_layers(layers)
        sizes = [c for _, c in layers]
        if self.attention == "uniform":
            scores = [np.full(c, 1.0 / c) for c in sizes]
        else:
            scores = [normalize_attention(s) for s in self._channel_scores(net, dataset, sizes)]
        self.channel_attention = torch.as_tensor(
            np.concatenate(scores), dtype=torch.float32, device=self.channel_attention.device)

    def _channel_scores(self, net: Any, dataset: Any, sizes: list[int]) -> list[np.ndarray]:
        """Mean rise of the linear probe's loss when each channel is removed."""
        features, codes = net.collect_outputs(dataset, "features", desc="DELTA attention probe")
        weight, bias = linear_probe(features, codes, len(net.classes_), C=self.C)
        device = self.channel_attention.device
        weight = torch.as_tensor(weight, dtype=torch.float32, device=device)
        bias = torch.as_tensor(bias, dtype=torch.float32, device=device)
        totals = [torch.zeros(c, dtype=torch.float64, device=device) for c in sizes]
        count = torch.zeros((), dtype=torch.float64, device=device)

        def probe_loss(x, y):
            return F.cross_entropy(self.teacher(x).float() @ weight.T + bias, y, reduction="sum")

        for x, y in self._batches(net, dataset):
            count += len(y)
            if self.attention == "taylor":
                self._teacher_pass = True
                try:
                    with torch.enable_grad():
                        loss = probe_loss(x.detach().requires_grad_(True), y)
                        maps = [self._teacher_maps[k] for k in range(len(sizes))]
                        grads = torch.autograd.grad(loss, maps)
                finally:
                    self._teacher_pass = False
                    self._teacher_maps.clear()
                for total, a, g in zip(totals, maps, grads):
                    total -= (a.detach() * g).sum(dim=(0, 2, 3)).double()
            else:
                with torch.no_grad():
                    base = probe_loss(x, y)
                    for total, (name, c) in zip(totals, self.layers_):
                        layer = self.teacher.features.get_submodule(name)
                        for j in range(c):
                            handle = layer.register_forward_hook(_ZeroChannel(j))
                            try:
                                total[j] += (probe_loss(x, y) - base).double()
                            finally:
                                handle.remove()
        accelerator = getattr(net, "accelerator", None)
        if accelerator is not None:  # every rank: the whole training split
            totals = [accelerator.reduce(t, "sum") for t in totals]
            count = accelerator.reduce(count, "sum")
        return [(t / count).cpu().numpy() for t in totals]

    # ------------------------------------------------------------------ loss
    def _zero(self, outputs: Any) -> torch.Tensor:
        return outputs[0].new_zeros((), dtype=torch.float32)

    def forward(self, outputs: Any, y: torch.Tensor) -> list[LossTerm]:
        x = self._capture.pop()
        student = [self._student_maps.get(k) for k in range(len(self.layers_))]
        self._student_maps.clear()
        head = LossTerm("head_l2", head_l2(self.network.target_head), float(self.beta))
        if x is None:  # not a training batch: the feature term is not computed
            return [head]
        if not self.layers_ or any(s is None for s in student):
            return [LossTerm("delta", self._zero(outputs), float(self.alpha)), head]
        self._teacher_pass = True
        try:
            with torch.no_grad(), self._capture.precision(x.device), \
                    self.teacher.batch_statistics():
                self.teacher(x)
            teacher = [self._teacher_maps[k] for k in range(len(self.layers_))]
        finally:
            self._teacher_pass = False
            self._teacher_maps.clear()
        attention = torch.split(self.channel_attention, [c for _, c in self.layers_])
        value = attention_feature_distance(student, teacher, list(attention), self.reduction)
        return [LossTerm("delta", value, float(self.alpha)), head]
