"""The Co-Tuning network: features -> (target logits, source logits)."""

from __future__ import annotations

import torch
from torch import nn

from sk_cotuning.backbones import Backbone, Preprocessing

__all__ = ["CoTuningNetwork", "InputNormalization", "ToFloat"]


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


class CoTuningNetwork(nn.Module):
    """Backbone features with two heads: a new target head and the source head.

    Parameters
    ----------
    backbone : Backbone
        The split pre-trained model.
    n_classes : int
        Number of target classes (rows of the relationship).
    use_source_head : bool, default=True
        When ``False`` (``trade_off=0``) the source head is not evaluated and
        the second output is an empty ``(N, 0)`` tensor: exactly plain
        fine-tuning, at its cost.

    Attributes
    ----------
    soft_targets : torch.Tensor of shape (n_classes, n_source)
        Buffer holding the category relationship, so it moves with the
        network between devices and is saved with it.

    Notes
    -----
    ``forward`` returns ``(target_logits, source_logits)``, target first, in
    training and evaluation alike: shapes ``(N, n_classes)`` and
    ``(N, n_source)``.
    """

    def __init__(self, backbone: Backbone, n_classes: int, use_source_head: bool = True) -> None:
        super().__init__()
        pre = backbone.preprocessing
        self.normalize = InputNormalization(pre) if pre is not None else ToFloat()
        self.features = backbone.features
        self.source_head = backbone.source_head
        self.target_head = nn.Linear(backbone.source_head.in_features, n_classes)
        self.use_source_head = use_source_head
        n_source = backbone.source_head.out_features
        self.register_buffer("soft_targets", torch.full((n_classes, n_source), 1.0 / n_source))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, n_features)``."""
        f = self.features(self.normalize(x))
        if isinstance(f, (tuple, list)):  # e.g. Inception's named tuples in train mode
            f = f[0]
        return torch.flatten(f, 1) if f.ndim > 2 else f

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(x)
        target = self.target_head(f)
        if self.use_source_head:
            source = self.source_head(f)
        else:
            source = f.new_empty((f.shape[0], 0))
        return target, source
