"""torchvision classification models as Co-Tuning backbones.

Weights resolve from a torchvision weights name or enum (downloaded into
``$TORCH_HOME/hub/checkpoints`` only when the user is online, or read from
there when already cached), a local state-dict file, a state dict, or
``None`` (random initialisation).
"""

from __future__ import annotations

import warnings
from typing import Any

import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from sk_cotuning.backbones._base import Backbone, Preprocessing, load_into, split_model
from sk_cotuning.backbones._weights import resolve_weights


def classification_models() -> list[str]:
    """Names of torchvision's image-classification models."""
    return torchvision.models.list_models(module=torchvision.models)


def build(name: str, weights: Any, source_head: str | None, verbose: bool = False) -> Backbone:
    """Build the torchvision model ``name`` and split it for Co-Tuning.

    Parameters
    ----------
    name : str
        A torchvision classification model (``torchvision.models.list_models``).
    weights : str, WeightsEnum, path-like, mapping or None
        ``"DEFAULT"``, a weights name (``"IMAGENET1K_V2"`` or
        ``"ResNet50_Weights.IMAGENET1K_V2"``) or enum member, a local
        state-dict file, a state dict, or ``None`` (random init, with a
        warning).
    source_head : str or None
        Path of the classifier inside the model; found by rule when ``None``.
    verbose : bool
        Show a download progress bar.
    """
    if name not in classification_models():
        raise ValueError(
            f"Unknown backbone {name!r}. Use 'glyphnet' (built in, offline), a torchvision "
            f"classification model ({', '.join(classification_models()[:8])}, ...; see "
            f"torchvision.models.list_models(module=torchvision.models)), or an nn.Module "
            f"instance with source_head='<path of its final nn.Linear>'."
        )
    builder = torchvision.models.get_model_builder(name)
    enum_type = torchvision.models.get_model_weights(name)
    resolved = resolve_weights(weights, name, enum_type=enum_type, progress=verbose)
    state, origin = resolved.state, resolved.origin
    meta_weights = resolved.enum or enum_type.DEFAULT
    # the builder adapts the architecture to the weights (e.g. ViT image size)
    arch = resolved.enum or (enum_type.DEFAULT if state is not None else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = builder(weights=None, **_arch_kwargs(arch))
    if state is not None:
        load_into(model, state, name, origin)
    categories = list(meta_weights.meta.get("categories") or []) or None
    features, head = split_model(model, source_head, None)
    if categories is not None and head.out_features != len(categories):
        categories = None  # e.g. a local file fine-tuned on other classes
    preprocessing = _preprocessing(meta_weights)
    convolutional = not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    return Backbone(features, head, categories, preprocessing, convolutional, name)


def _arch_kwargs(weights: WeightsEnum | None) -> dict[str, Any]:
    """Architecture arguments that torchvision's builders derive from weights."""
    if weights is None:
        return {}
    kwargs: dict[str, Any] = {"num_classes": len(weights.meta["categories"])}
    if "min_size" in weights.meta and type(weights).__name__.startswith("ViT"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    if type(weights).__name__ in ("GoogLeNet_Weights", "Inception_V3_Weights"):
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    return kwargs


def _preprocessing(weights: WeightsEnum) -> Preprocessing:
    transforms = weights.transforms()
    return Preprocessing(
        mean=tuple(float(m) for m in transforms.mean),
        std=tuple(float(s) for s in transforms.std),
        value_range=1.0,
        in_channels=3,
        crop_size=int(transforms.crop_size[0]),
        resize_size=int(transforms.resize_size[0]),
    )


def preprocessing(name: str) -> Preprocessing:
    """The preprocessing of ``name``'s default weights (no download)."""
    return _preprocessing(torchvision.models.get_model_weights(name).DEFAULT)
