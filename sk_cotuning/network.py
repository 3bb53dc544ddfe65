"""The fine-tuning network: raw batch -> (target logits, source logits, features).

It normalises raw batches on the device, applies the fit's memory layout and
autocast, and turns a layer's shape error into a ``ValueError`` that says
which input the backbone takes (and saved parameters that do not fit it into
one that says why).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sk_cotuning.backbones import Backbone, Preprocessing

__all__ = [
    "FineTuningNetwork",
    "InputNormalization",
    "NetworkOutput",
    "ToFloat",
    "plain_name",
    "target_probabilities",
    "unwrap",
]

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / accelerate, torch.compile


_SHAPE_ERRORS = ("shape", "size", "channels", "Expected", "dimension", "mat1 and mat2")


def is_shape_error(exc: Exception) -> bool:
    """An error from a layer that got an input of the wrong shape (not OOM etc.).

    A ``RuntimeError`` from torch, or the ``AssertionError`` timm's fixed-size
    models (ViT's patch embedding) raise for another input size.
    """
    text = str(exc)
    if isinstance(exc, AssertionError):
        return "match model" in text or "Input height" in text or "Input width" in text
    if any(k in text for k in ("out of memory", "device", "CUDA", "cuDNN")):
        return False  # resource and placement errors pass through unchanged
    return any(k in text for k in _SHAPE_ERRORS)


class InputNormalization(nn.Module):
    """Scale, adapt channels and normalise raw image batches on the device.

    Doing this inside the network lets uint8 batches travel to the GPU (a
    quarter of float32's bytes) and be normalised there.

    Notes
    -----
    - input: ``(N, C, H, W)``, uint8 (``0..255``) or float
      (``0..value_range``); ``C`` of 1 is replicated, a 4th (alpha) channel
      dropped, 3 channels averaged for a 1-channel backbone.
    - output: ``(N, in_channels, H, W)`` float32, ``(x / range - mean) / std``.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        c = preprocessing.in_channels
        self.in_channels = c
        self.value_range = float(preprocessing.value_range)
        self.register_buffer("mean", torch.tensor(preprocessing.mean[:c]).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(preprocessing.std[:c]).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 255.0 if x.dtype == torch.uint8 else self.value_range
        x = x.float() / scale
        channels = x.shape[1]
        if channels == 4 and self.in_channels == 3:
            x = x[:, :3]
        elif channels == 1 and self.in_channels > 1:
            x = x.expand(-1, self.in_channels, -1, -1)
        elif channels in (3, 4) and self.in_channels == 1:
            x = x[:, :3].mean(dim=1, keepdim=True)
        return (x - self.mean) / self.std


class ToFloat(nn.Module):
    """Input adapter of a custom network: uint8 images to ``[0, 1]``, else float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class NetworkOutput(tuple):
    """The network's outputs, target logits first: ``(target, source, features)``.

    A tuple, so skorch takes ``output[0]`` (the target logits) for
    ``predict_proba`` and concatenates batches element-wise; the fields are
    also readable by name.

    Attributes
    ----------
    target : Tensor of shape (N, n_classes)
        Logits of the new target head.
    source : Tensor of shape (N, n_source) or (N, 0)
        Logits of the pre-trained source head; empty when no regulariser
        needs them (plain fine-tuning never evaluates the source head).
    features : Tensor of shape (N, n_features)
        The pooled penultimate features both heads read.
    """

    __slots__ = ()
    FIELDS = ("target", "source", "features")

    def __new__(cls, iterable):
        values = tuple(iterable)
        if len(values) != 3:
            raise ValueError(f"NetworkOutput takes {cls.FIELDS}, got {len(values)} values.")
        return super().__new__(cls, values)

    target = property(lambda self: self[0])
    source = property(lambda self: self[1])
    features = property(lambda self: self[2])


class FineTuningNetwork(nn.Module):
    """Backbone features, a new target head, the kept source head and the regulariser.

    Parameters
    ----------
    backbone : Backbone
        The split pre-trained model.
    n_classes : int
        Number of target classes.
    regularizer : nn.Module or None, default=None
        Held here so that its prepared state (e.g. Co-Tuning's relationship)
        and any learnable parameters travel with the network: saved by
        ``save_params(f_params=...)`` and ``Checkpoint``, moved between
        devices, broadcast under data-parallel training.  ``forward`` does
        not call it; the estimator's ``get_loss`` does.
    use_source_head : bool, default=False
        Evaluate the source head in ``forward``.  ``False`` (plain
        fine-tuning) returns an empty ``(N, 0)`` source output, at plain
        fine-tuning's cost.

    Notes
    -----
    ``forward`` returns a :class:`NetworkOutput` ``(target, source,
    features)`` in training and evaluation alike.
    """

    def __init__(
        self,
        backbone: Backbone,
        n_classes: int,
        regularizer: nn.Module | None = None,
        use_source_head: bool = False,
        *,
        channels_last: bool = False,
        amp_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        pre = backbone.preprocessing
        self.input_size = getattr(pre, "crop_size", None)
        self.channels_last = channels_last
        self.amp_dtype = amp_dtype
        self.normalize = InputNormalization(pre) if pre is not None else ToFloat()
        self.features = backbone.features
        self.source_head = backbone.source_head
        self.target_head = nn.Linear(backbone.source_head.in_features, n_classes)
        self.regularizer = regularizer
        self.use_source_head = use_source_head
        if regularizer is not None and hasattr(regularizer, "attach"):
            regularizer.attach(self)  # e.g. a frozen pre-trained copy, forward hooks
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``, with a ``ValueError`` that says what does not match.

        Parameters saved from a network with other classes, another backbone
        or another regulariser (skorch's ``load_params``, a ``Checkpoint``)
        do not fit this one; torch's ``RuntimeError`` lists tensors, not what
        to do.
        """
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as exc:
            text = str(exc)
            if not any(key in text for key in ("size mismatch", "Missing key", "Unexpected key")):
                raise
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else lines[0]
            if len(detail) > 300:
                detail = detail[:300] + " ..."
            raise ValueError(
                f"The saved parameters do not fit this network ({detail}): they were saved "
                f"from a network with other classes, another backbone or another regulariser. "
                f"Build the estimator with the same backbone, regularizer and classes= (this "
                f"network has {self.target_head.out_features} classes) as the one that was "
                f"saved."
            ) from None

    @property
    def n_source(self) -> int:
        """Number of source classes (outputs of the source head)."""
        return int(self.source_head.out_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, n_features)`` of a raw input batch."""
        f = self.features(self.normalize(x))
        if isinstance(f, (tuple, list)):  # e.g. Inception's named tuples in train mode
            f = f[0]
        return torch.flatten(f, 1) if f.ndim > 2 else f

    def forward(self, x: torch.Tensor | None = None, *, views: torch.Tensor | None = None
                ) -> NetworkOutput:
        """The outputs for a raw batch, in the fit's memory layout and precision.

        Parameters
        ----------
        x : Tensor of shape (N, ...)
            A raw batch (images ``(N, C, H, W)``, uint8 or float).
        views : Tensor of shape (N, V, ...), keyword only
            Instead of ``x``: ``V`` test-time views of each of ``N`` samples
            (the estimator's ``test_time_augmentation``).  The outputs are
            averaged over the views: target and source as the log of the
            mean probability (so a softmax of them is the mean probability),
            features as the mean.

        Raises
        ------
        ValueError
            In evaluation mode, when the target outputs are not finite (the
            parameters are NaN or infinite, e.g. loaded from a diverged run).
        """
        if views is not None:
            return self._average_views(views)
        outputs = self._forward(x)
        if not self.training:
            _refuse_non_finite(outputs[0])
        return outputs

    def _average_views(self, views: torch.Tensor) -> NetworkOutput:
        n, v = views.shape[:2]
        target, source, features = (
            t.reshape(n, v, *t.shape[1:]) for t in self.forward(views.flatten(0, 1)))
        source = _mean_log_proba(source) if source.shape[-1] else source[:, 0]
        return NetworkOutput((_mean_log_proba(target), source, features.float().mean(1)))

    def _forward(self, x: torch.Tensor) -> NetworkOutput:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            if self.amp_dtype is None:
                return self._outputs(x)
            with torch.autocast(x.device.type, dtype=self.amp_dtype):
                return self._outputs(x)
        except (RuntimeError, AssertionError) as exc:
            if not is_shape_error(exc):
                raise
            size = self.input_size
            needs = (f" This backbone was built for {size}x{size} px inputs: resize array "
                     f"inputs to that size (image files are resized for you by its "
                     f"preprocessing)." if size and isinstance(exc, AssertionError) else "")
            raise ValueError(
                f"The network could not process a batch of shape {tuple(x.shape)} "
                f"({str(exc).splitlines()[0]}).{needs} Check that X has the layout and size "
                f"the backbone takes; for your own network, images reach it as float32 "
                f"(n, C, H, W) in [0, 1] (convert_image_arrays=False passes arrays "
                f"unchanged)."
            ) from exc

    def _outputs(self, x: torch.Tensor) -> NetworkOutput:
        f = self.embed(x)
        target = self.target_head(f)
        source = self.source_head(f) if self.use_source_head else f.new_empty((f.shape[0], 0))
        return NetworkOutput((target, source, f))


def _mean_log_proba(logits: torch.Tensor) -> torch.Tensor:
    """``(N, V, K)`` logits of ``V`` views -> ``(N, K)`` log of their mean probability."""
    return torch.logsumexp(logits.float().log_softmax(-1), 1) - math.log(logits.shape[1])


@torch.compiler.disable  # a data-dependent check: run eagerly, not traced by torch.compile
def _refuse_non_finite(target: torch.Tensor) -> None:
    if not bool(torch.isfinite(target).all()):
        raise ValueError(
            "The network's outputs are not finite (NaN or infinity): its parameters are not "
            "finite, e.g. loaded from a diverged run. Refit with a lower lr."
        )


def target_probabilities(target_logits: torch.Tensor) -> torch.Tensor:
    """Softmax of the target logits in float32 (the default ``predict_nonlinearity``).

    skorch hands ``predict_proba``'s nonlinearity the first network output,
    the target logits ``(N, n_classes)``.
    """
    return torch.softmax(target_logits.float(), dim=-1)


def plain_name(name: str) -> str:
    """A parameter name without the prefixes that wrappers add."""
    while name.startswith(_WRAPPER_PREFIXES):
        name = name.split(".", 1)[1]
    return name


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside DDP/accelerate and torch.compile wrappers."""
    while not isinstance(module, FineTuningNetwork):
        inner = getattr(module, "module", None) or getattr(module, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            break
        module = inner
    return module
