"""Backbones: a name or an ``nn.Module`` -> features, source head, names, preprocessing.

The single entry point is :func:`build_backbone`.  Named backbones are the
built-in offline ``"glyphnet"`` and every torchvision classification model;
a user's own ``nn.Module`` is deep-copied, so the object passed in is never
modified and every fit starts from the same weights.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Callable, Mapping

from torch import nn

from sk_cotuning.backbones._base import (
    Backbone,
    Preprocessing,
    check_state_dict,
    load_into,
    load_state_dict_file,
    split_model,
)
from sk_cotuning.backbones import _torchvision

__all__ = [
    "Backbone",
    "Preprocessing",
    "available_backbones",
    "build_backbone",
    "preprocessing_for",
    "register_backbone",
]

# name -> (builder(weights, source_head, verbose) -> Backbone, its Preprocessing)
_REGISTRY: dict[str, tuple[Callable[[Any, str | None, bool], Backbone], Preprocessing | None]] = {}


def register_backbone(
    name: str,
    builder: Callable[[Any, str | None, bool], Backbone],
    preprocessing: Preprocessing | None = None,
) -> None:
    """Make ``builder`` available as ``backbone=name``.

    Parameters
    ----------
    name : str
        The backbone name; shadows a torchvision model of the same name.
    builder : callable
        ``builder(weights, source_head, verbose) -> Backbone``.
    preprocessing : Preprocessing or None
        What ``builder`` will report, known without building the model (input
        validation happens before the network is built).
    """
    _REGISTRY[name] = (builder, preprocessing)


def preprocessing_for(backbone: str | nn.Module) -> Preprocessing | None:
    """The input preprocessing of ``backbone``, without building it.

    ``None`` for an ``nn.Module`` instance (its inputs are used as given).
    """
    if isinstance(backbone, nn.Module):
        return None
    _load_builtins()
    if isinstance(backbone, str) and backbone in _REGISTRY:
        return _REGISTRY[backbone][1]
    if isinstance(backbone, str) and backbone in _torchvision.classification_models():
        return _torchvision.preprocessing(backbone)
    build_backbone(backbone)  # raises the informative unknown-backbone error
    return None  # pragma: no cover


def available_backbones() -> list[str]:
    """Names accepted as ``backbone=``: the registered ones, then torchvision's."""
    _load_builtins()
    return sorted(_REGISTRY) + _torchvision.classification_models()


def _load_builtins() -> None:
    if "glyphnet" not in _REGISTRY:
        try:
            from sk_cotuning.backbones import glyphnet
        except ImportError:  # pragma: no cover - the module ships with the package
            return
        register_backbone("glyphnet", glyphnet.build, glyphnet.PREPROCESSING)


def build_backbone(
    backbone: str | nn.Module,
    weights: Any = "DEFAULT",
    source_head: str | None = None,
    verbose: bool = False,
) -> Backbone:
    """Resolve ``backbone`` and ``weights`` into a :class:`Backbone`.

    Parameters
    ----------
    backbone : str or nn.Module
        A registered name (``"glyphnet"``), a torchvision classification model
        name (``"resnet50"``), or a model instance.  An instance is
        deep-copied; its own parameters are the pre-trained state.
    weights : str, WeightsEnum, path-like, mapping or None, default="DEFAULT"
        For names, see the torchvision and glyphnet builders.  For an
        instance, ``"DEFAULT"`` and ``None`` keep its parameters; a path or a
        state dict is loaded into the copy.
    source_head : str or None, default=None
        Dotted path of the final ``nn.Linear`` classifier (``"fc"``,
        ``"classifier.6"``); found by rule when ``None``.
    verbose : bool, default=False
        Show download progress.

    Returns
    -------
    Backbone
        Fresh modules, never shared with another call.
    """
    if isinstance(backbone, nn.Module):
        model = copy.deepcopy(backbone)
        if isinstance(weights, (str, os.PathLike)) and weights != "DEFAULT":
            load_into(model, load_state_dict_file(weights), type(model).__name__,
                      f"file {str(weights)!r}")
        elif isinstance(weights, Mapping):
            load_into(model, check_state_dict(weights, "the weights mapping"),
                      type(model).__name__, "the state dict")
        elif weights not in (None, "DEFAULT"):
            raise TypeError(
                f"For an nn.Module backbone, weights must be 'DEFAULT' or None (keep its "
                f"parameters), a path to a state-dict file, or a state dict; got "
                f"{type(weights).__name__}."
            )
        features, head = split_model(model, source_head)
        convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
        return Backbone(features, head, None, None, convolutional, type(model).__name__)
    if not isinstance(backbone, str):
        raise TypeError(
            f"backbone must be a model name (e.g. 'resnet50', 'glyphnet') or an nn.Module "
            f"instance, got {type(backbone).__name__}."
        )
    _load_builtins()
    if backbone in _REGISTRY:
        return _REGISTRY[backbone][0](weights, source_head, verbose)
    return _torchvision.build(backbone, weights, source_head, verbose)
