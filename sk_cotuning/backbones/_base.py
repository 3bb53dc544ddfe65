"""What a resolved backbone is, and how a classifier is split into its parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import nn

#: Attribute names searched, in order, for a model's final classifier.
HEAD_ATTRIBUTES = ("fc", "classifier", "head", "heads")

SUPPORTED_FAMILIES = (
    "ResNet/ResNeXt/Wide-ResNet/RegNet/ShuffleNet/GoogLeNet/Inception (fc), "
    "VGG/AlexNet/MobileNet/EfficientNet/ConvNeXt/MaxViT/MNASNet (classifier[-1]), "
    "DenseNet (classifier), ViT (heads.head), Swin (head)"
)


@dataclass(frozen=True)
class Preprocessing:
    """How raw images are turned into the backbone's input.

    Parameters
    ----------
    mean, std : tuple of float
        Per-channel normalisation, applied to images scaled to ``[0, 1]``.
    value_range : float, default=1.0
        The value of a "full intensity" pixel in float inputs (``1.0`` for
        torchvision models; ``16.0`` for the glyph model, the range of the
        UCI digits).  uint8 inputs always use 255.
    in_channels : int, default=3
        Channels the backbone expects; grayscale inputs are replicated, an
        alpha channel is dropped.
    crop_size, resize_size : int or None
        The weights' evaluation resize and centre-crop sizes, used for image
        files; ``None`` where the backbone has no fixed size.
    native_size : tuple of int or None
        ``(height, width)`` of a backbone with a fixed small input (the
        glyph model's 8x8); flat ``(n, h * w)`` arrays are reshaped to it.
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    value_range: float = 1.0
    in_channels: int = 3
    crop_size: int | None = None
    resize_size: int | None = None
    native_size: tuple[int, int] | None = None


@dataclass
class Backbone:
    """A pre-trained classifier split into a feature extractor and its head.

    Attributes
    ----------
    features : nn.Module
        Maps an input batch to ``(N, n_features)`` (or a tensor flattened to
        that).
    source_head : nn.Linear
        The pre-trained classifier, ``n_features -> n_source``.
    source_classes : list of str or None
        Names of the source classes, where the weights carry them.
    preprocessing : Preprocessing or None
        Input normalisation; ``None`` feeds inputs unchanged (as float32).
    convolutional : bool
        Whether ``channels_last`` memory format can help.
    """

    features: nn.Module
    source_head: nn.Linear
    source_classes: list[str] | None = None
    preprocessing: Preprocessing | None = None
    convolutional: bool = True
    name: str = field(default="custom")


def get_submodule(model: nn.Module, path: str) -> nn.Module:
    """Return the submodule at a dotted ``path`` (``"classifier.6"``)."""
    try:
        return model.get_submodule(path)
    except AttributeError as exc:
        raise ValueError(
            f"{type(model).__name__} has no submodule {path!r}; source_head must be "
            f"the dotted attribute path of its final nn.Linear classifier (e.g. 'fc' "
            f"or 'classifier.6')."
        ) from exc


def set_submodule(model: nn.Module, path: str, value: nn.Module) -> None:
    """Replace the submodule at a dotted ``path``."""
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, value)


def _last_in_sequence(module: nn.Module, path: str) -> tuple[nn.Module, str]:
    """Follow the last child through (nested) ``Sequential``/``ModuleList``s."""
    while isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module):
        name = list(module._modules)[-1]
        module = module._modules[name]
        path = f"{path}.{name}" if path else name
    return module, path


def find_head(model: nn.Module) -> str:
    """Find the dotted path of a classification model's final Linear layer.

    Looks, in order, at the attributes :data:`HEAD_ATTRIBUTES`, following
    the last child of a ``Sequential``; a model that is itself a
    ``Sequential`` ending in an ``nn.Linear`` has that layer as its head.

    Raises
    ------
    ValueError
        If no such attribute exists, or it does not end in an ``nn.Linear``.
    """
    for attr in HEAD_ATTRIBUTES:
        module = getattr(model, attr, None)
        if not isinstance(module, nn.Module):
            continue
        module, path = _last_in_sequence(module, attr)
        if isinstance(module, nn.Linear):
            return path
        raise ValueError(
            f"{type(model).__name__}.{path} is {type(module).__name__}, not an nn.Linear "
            f"classifier, so it has no source head for Co-Tuning. Supported families: "
            f"{SUPPORTED_FAMILIES}; for another model pass backbone=<nn.Module> with "
            f"source_head='<path of its final nn.Linear>'."
        )
    if isinstance(model, nn.Sequential) and len(model):
        last, path = _last_in_sequence(model, "")
        if isinstance(last, nn.Linear):
            return path
        raise ValueError(
            f"The {type(model).__name__} model ends in {type(last).__name__} (at "
            f"{path!r}), not an nn.Linear classifier, so it has no source head for "
            f"Co-Tuning: end it with its pre-trained nn.Linear, or pass "
            f"source_head='<path of that nn.Linear>'."
        )
    raise ValueError(
        f"No Linear classifier head found on {type(model).__name__} (looked for "
        f"{', '.join(HEAD_ATTRIBUTES)}, and the last layer of a Sequential). Supported "
        f"families: {SUPPORTED_FAMILIES}; for another model pass backbone=<nn.Module> "
        f"with source_head='<path of its final nn.Linear>'."
    )


def split_model(
    model: nn.Module,
    head_path: str | None,
    n_source: int | None = None,
) -> tuple[nn.Module, nn.Linear]:
    """Split ``model`` (modified in place) into features and its Linear head.

    The head is replaced by ``nn.Identity`` in ``model``, which then returns
    the penultimate features.

    Raises
    ------
    ValueError
        If the head is not an ``nn.Linear`` or has ``out_features`` other
        than ``n_source``.
    """
    path = find_head(model) if head_path is None else head_path
    head = get_submodule(model, path)
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"{type(model).__name__}.{path} is {type(head).__name__}, not an nn.Linear: "
            f"Co-Tuning needs the pre-trained source classifier. Point source_head at "
            f"the model's final nn.Linear layer."
        )
    if n_source is not None and head.out_features != n_source:
        raise ValueError(
            f"{type(model).__name__}.{path} has {head.out_features} outputs but the "
            f"weights describe {n_source} source classes."
        )
    set_submodule(model, path, nn.Identity())
    # GoogLeNet / Inception: auxiliary heads only matter for training from scratch
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for aux in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, aux):
                setattr(model, aux, None)
    return model, head


def load_into(model: nn.Module, state: Mapping[str, Any], name: str, origin: str) -> None:
    """``model.load_state_dict(state)`` with an error that says what differs."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        own = model.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mismatched = sorted(
            k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)
        )
        details = []
        if missing:
            details.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(
                f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
            )
        if mismatched:
            k = mismatched[0]
            details.append(
                f"{len(mismatched)} shape mismatch(es), e.g. {k}: file "
                f"{tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            )
        raise ValueError(
            f"The weights from {origin} do not match the {name} architecture: "
            f"{'; '.join(details) or exc}. Use weights saved from the same architecture."
        ) from exc
