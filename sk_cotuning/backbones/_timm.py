"""timm models as backbones: ``backbone="timm/<model name>"`` (optional extra ``[timm]``).

The source head is a deep copy of ``get_classifier()`` taken *before*
``reset_classifier(0)`` (which then makes ``forward`` return the pooled
pre-logit features, i.e. ``forward_head(pre_logits=True)``); the input
preprocessing comes from ``timm.data.resolve_data_config`` (input size, crop
percentage, mean and std).  Weights: ``"DEFAULT"`` is timm's pretrained tag
(downloaded from the Hugging Face hub when online, or read from its cache), a
local state-dict file or a state dict, or ``None`` (random, with a warning).
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from sk_cotuning.backbones._base import Backbone, Preprocessing, load_into
from sk_cotuning.backbones._weights import resolve_weights

__all__ = ["PREFIX", "build", "import_timm", "imagenet_classes", "preprocessing_of"]

#: The name prefix that selects timm (no torchvision model name contains "/").
PREFIX = "timm/"


def import_timm() -> Any:
    """``import timm``, or an ImportError naming the extra to install."""
    try:
        import timm
    except ImportError:
        raise ImportError(
            "timm backbones need the timm package: pip install timm (from a clone: "
            "pip install -e '.[timm]')."
        ) from None
    return timm


def imagenet_classes(n_outputs: int) -> list[str] | None:
    """ImageNet-1k class names (torchvision's list, offline) for a 1000-way head."""
    if n_outputs != 1000:
        return None
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def preprocessing_of(config: dict) -> Preprocessing:
    """A :class:`Preprocessing` from timm's resolved data config."""
    crop = int(config["input_size"][-1])
    crop_pct = float(config.get("crop_pct") or 0.875)
    return Preprocessing(
        mean=tuple(float(m) for m in config["mean"]),
        std=tuple(float(s) for s in config["std"]),
        value_range=1.0,
        in_channels=int(config["input_size"][0]),
        crop_size=crop,
        resize_size=int(round(crop / crop_pct)),
    )


def split_timm(model: nn.Module, name: str, source_classes: list[str] | None = None) -> Backbone:
    """Split a timm classifier: source head copied before the reset, features after."""
    timm = import_timm()
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"timm model {name!r} has a {type(head).__name__} classifier, not an nn.Linear, "
            f"so it has no source head for Co-Tuning; choose a model with a linear head."
        )
    source_head = copy.deepcopy(head)  # before reset_classifier empties it
    config = timm.data.resolve_data_config({}, model=model)
    model.reset_classifier(0)  # forward() now returns the pooled pre-logit features
    classes = source_classes if source_classes is not None else imagenet_classes(
        source_head.out_features)
    convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return Backbone(model, source_head, classes, preprocessing_of(config), convolutional,
                    PREFIX + name)


def build(name: str, weights: Any, source_head: str | None, verbose: bool = False) -> Backbone:
    """Build the timm model ``name`` (without the ``timm/`` prefix) for fine-tuning."""
    timm = import_timm()
    if source_head is not None:
        raise ValueError("source_head does not apply to timm backbones: the head is "
                         "get_classifier().")
    if name not in timm.list_models(pretrained=False) and name not in timm.list_models():
        known = timm.list_models(f"*{name.split('.')[0][:6]}*")[:8]
        raise ValueError(
            f"Unknown timm model {name!r}; see timm.list_models(). Close names: {known}."
        )
    if isinstance(weights, str) and weights == "DEFAULT":
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as exc:  # offline with nothing cached, a model without weights
            raise OSError(
                f"Could not load timm's pretrained weights for {name!r} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else exc}). Online, timm downloads "
                f"them from the Hugging Face hub into its cache (HF_HOME); offline, copy that "
                f"cache from a machine with internet access, or pass weights='/path/to/"
                f"state_dict.pth' saved with torch.save(model.state_dict(), path)."
            ) from exc
        return split_timm(model, name)
    resolved = resolve_weights(weights, PREFIX + name)
    model = timm.create_model(name, pretrained=False)
    if resolved.state is not None:
        load_into(model, resolved.state, PREFIX + name, resolved.origin)
    return split_timm(model, name)
