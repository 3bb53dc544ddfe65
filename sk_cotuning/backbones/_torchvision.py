"""torchvision classification models as Co-Tuning backbones.

Weights resolve from a torchvision weights name or enum (downloaded into
``$TORCH_HOME/hub/checkpoints`` only when the user is online, or read from
there when already cached), a local state-dict file, a state dict, or
``None`` (random initialisation).
"""

from __future__ import annotations

import os
import urllib.error
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from sk_cotuning.backbones._base import (
    Backbone,
    Preprocessing,
    check_state_dict,
    load_into,
    load_state_dict_file,
    split_model,
)


def classification_models() -> list[str]:
    """Names of torchvision's image-classification models."""
    return torchvision.models.list_models(module=torchvision.models)


def expected_checkpoint(weights: WeightsEnum) -> Path:
    """Where torch.hub caches (and looks for) the file of ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def _weights_enum(name: str, weights: Any) -> WeightsEnum | None:
    """Resolve ``weights`` to a torchvision enum member, or None if it is not one."""
    enum = torchvision.models.get_model_weights(name)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum):
            raise ValueError(
                f"weights={weights} belong to another architecture than {name!r}; "
                f"use one of {[w.name for w in enum]} or 'DEFAULT'."
            )
        return weights
    if isinstance(weights, str):
        key = weights.split(".")[-1] if weights.startswith(enum.__name__ + ".") else weights
        if key == "DEFAULT":
            return enum.DEFAULT
        if key in enum.__members__:
            return enum[key]
    return None


def _download(weights: WeightsEnum, progress: bool) -> Mapping[str, Any]:
    target = expected_checkpoint(weights)
    try:
        return torch.hub.load_state_dict_from_url(
            weights.url, progress=progress, check_hash=True, weights_only=True
        )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise OSError(
            f"Could not download the {weights} weights ({type(exc).__name__}: {exc}). "
            f"Offline, torchvision looks for the file {str(target)!r} (set TORCH_HOME to "
            f"change the folder); copy {os.path.basename(weights.url)} there from a machine "
            f"with internet access, or pass weights='/path/to/state_dict.pth' to load a "
            f"local file instead."
        ) from exc


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
    default = torchvision.models.get_model_weights(name).DEFAULT
    enum_member = _weights_enum(name, weights)
    if enum_member is not None:
        state: Mapping[str, Any] | None = _download(enum_member, verbose)
        meta_weights = enum_member
        origin = str(enum_member)
        # the builder adapts the architecture to the weights (e.g. ViT image size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = builder(weights=None, **_arch_kwargs(enum_member))
    else:
        meta_weights = default
        if weights is None:
            warnings.warn(
                f"weights=None: {name} starts from random weights, so its source head "
                f"carries no knowledge and the Co-Tuning term only regularises noise. "
                f"Co-Tuning needs a pre-trained source model; pass weights='DEFAULT' "
                f"or a local file.",
                UserWarning,
                stacklevel=3,
            )
            state, origin = None, "None"
        elif isinstance(weights, (str, os.PathLike)):
            state, origin = load_state_dict_file(weights), f"file {str(weights)!r}"
        elif isinstance(weights, Mapping):
            state, origin = check_state_dict(weights, "the weights mapping"), "the state dict"
        else:
            raise TypeError(
                f"weights must be 'DEFAULT', a torchvision weights name or enum, a path "
                f"to a state-dict file, a state dict, or None; got {type(weights).__name__}."
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = builder(weights=None, **_arch_kwargs(default if state is not None else None))
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
