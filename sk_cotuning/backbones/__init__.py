"""Backbones: a name, a model or a factory -> features, source head, names, preprocessing.

The single entry point is :func:`build_backbone`.  ``backbone=`` may be

- a built-in name (``"glyphnet"``, offline; ``"efficientnet_lite0"`` (``_lite1``, ``_lite2``), real
  ImageNet-1k weights from a package), a torchvision classification model
  name (``"resnet50"``), or ``"timm/<name>"`` for any timm model;
- a user's own ``nn.Module``, deep-copied so the object passed in is never
  modified and every fit starts from the same weights;
- a factory: any picklable callable taking no arguments that returns an
  ``nn.Module`` (split like a user's module) or a ready :class:`Backbone`.

There is deliberately no mutable process-global registry: grid-search
workers are separate processes and rebuild everything from the estimator's
parameters, so a factory travels with the estimator instead.
"""

from __future__ import annotations

import copy
import importlib
from types import MappingProxyType
from typing import Any

from torch import nn

from sk_cotuning.backbones import _timm, _torchvision
from sk_cotuning.backbones._base import Backbone, Preprocessing, load_into, split_model
from sk_cotuning.backbones._weights import resolve_weights

__all__ = ["Backbone", "Preprocessing", "available_backbones", "build_backbone"]

#: Built-in backbones: name -> "module:function", the function taking
#: ``(weights, source_head, verbose)``.
BUILTINS = MappingProxyType({
    "glyphnet": "sk_cotuning.backbones.glyphnet:build",
    "efficientnet_lite0": "sk_cotuning.backbones.efficientnet_lite:build_lite0",
    "efficientnet_lite1": "sk_cotuning.backbones.efficientnet_lite:build_lite1",
    "efficientnet_lite2": "sk_cotuning.backbones.efficientnet_lite:build_lite2",
})


def available_backbones(include_timm: bool = True) -> list[str]:
    """Names accepted as ``backbone=``.

    Parameters
    ----------
    include_timm : bool, default=True
        Also list ``"timm/<name>"`` for every model of the installed timm (none
        when timm is not installed: ``pip install timm``).

    Returns
    -------
    names : list of str
        The built-in names (``"efficientnet_lite0"``, ``"glyphnet"``), then
        torchvision's classification models, then timm's.
    """
    names = sorted(BUILTINS) + _torchvision.classification_models()
    if include_timm:
        try:
            import timm
        except ImportError:
            return names
        names += [f"timm/{name}" for name in timm.list_models()]
    return names


def _from_module(model: nn.Module, weights: Any, source_head: str | None, name: str) -> Backbone:
    resolved = resolve_weights(weights, name, own_parameters=True)
    if resolved.state is not None:
        load_into(model, resolved.state, name, resolved.origin)
    features, head = split_model(model, source_head)
    convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return Backbone(features, head, None, None, convolutional, name)


def _unknown_name_message(name: str) -> str:
    import difflib

    known = available_backbones(include_timm=False)
    close = difflib.get_close_matches(name.replace("-", "_").lower(), known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"Unknown backbone {name!r}.{hint} Use a built-in name ('glyphnet': offline; "
        f"'efficientnet_lite0': real ImageNet weights from a package, offline), a torchvision "
        f"classification model ({', '.join(_torchvision.classification_models()[:6])}, ...; "
        f"sk_cotuning.available_backbones() lists them), 'timm/<name>' for a timm model, or "
        f"an nn.Module instance with source_head='<path of its final nn.Linear>'."
    )


def build_backbone(
    backbone: Any,
    weights: Any = "DEFAULT",
    source_head: str | None = None,
    verbose: bool = False,
) -> Backbone:
    """Resolve ``backbone`` and ``weights`` into a :class:`Backbone`.

    Parameters
    ----------
    backbone : str, nn.Module or callable
        A built-in name (``"glyphnet"``), a torchvision classification model
        name (``"resnet50"``), a model instance (deep-copied; its own
        parameters are the pre-trained state), or a factory returning an
        ``nn.Module`` or a :class:`Backbone`.
    weights : str, WeightsEnum, path-like, mapping or None, default="DEFAULT"
        See :func:`sk_cotuning.backbones._weights.resolve_weights`.  For a
        model instance or a factory's model, ``"DEFAULT"`` and ``None`` keep
        its parameters.
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
        return _from_module(copy.deepcopy(backbone), weights, source_head, type(backbone).__name__)
    if isinstance(backbone, str):
        if backbone in BUILTINS:
            module, function = BUILTINS[backbone].split(":")
            return getattr(importlib.import_module(module), function)(weights, source_head, verbose)
        if backbone.startswith(_timm.PREFIX):
            return _timm.build(backbone[len(_timm.PREFIX):], weights, source_head, verbose)
        if backbone not in _torchvision.classification_models():
            raise ValueError(_unknown_name_message(backbone))
        return _torchvision.build(backbone, weights, source_head, verbose)
    if callable(backbone):
        made = backbone()
        name = getattr(backbone, "__name__", type(backbone).__name__)
        if isinstance(made, Backbone):
            if not (isinstance(weights, str) and weights == "DEFAULT"):
                raise ValueError(
                    f"The backbone factory {name} returned a ready Backbone, so weights= "
                    f"cannot apply; load the weights inside the factory and leave "
                    f"weights='DEFAULT'."
                )
            return made
        if isinstance(made, nn.Module):
            return _from_module(made, weights, source_head, name)
        raise TypeError(
            f"The backbone factory {name} returned {type(made).__name__}; it must return "
            f"an nn.Module or a sk_cotuning.backbones.Backbone."
        )
    raise TypeError(
        f"backbone must be a model name (e.g. 'resnet50', 'glyphnet'), an nn.Module "
        f"instance or a factory returning one, got {type(backbone).__name__}."
    )
