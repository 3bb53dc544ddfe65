"""The ``device`` parameter: ``"auto"`` resolved in one place, lazily.

skorch reads ``net.device`` wherever it moves tensors or modules (building
the network, ``infer``, ``get_loss``, ``load_params``, unpickling).  The
mixin makes that attribute the *resolved* device (``"auto"`` -> ``"cuda"``
when available, else ``"cpu"``; ``None`` kept: leave the network where it
is), while ``get_params()["device"]`` keeps the value the user set, so
``clone``, grid searches and pickles carry ``"auto"`` to the next machine.
Resolution happens on use, never in ``__init__`` (no CUDA initialisation in
a process that will fork grid-search workers).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["AutoDeviceMixin", "check_device", "resolve_device"]


def resolve_device(device: Any) -> Any:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other values unchanged."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_device(device: Any) -> None:
    if device is None or isinstance(device, torch.device):
        return
    if isinstance(device, str):
        if device == "auto":
            return
        try:
            resolved = torch.device(device)
        except RuntimeError:
            pass
        else:
            if resolved.type == "cuda" and not torch.cuda.is_available():
                raise ValueError(
                    f"device={device!r}, but CUDA is not available on this machine (no "
                    f"NVIDIA driver or GPU, or a CPU-only torch). device='auto' uses CUDA "
                    f"where it exists and the CPU elsewhere."
                )
            return
    raise ValueError(
        f"device must be 'auto', None (leave the network where it is), or a torch device "
        f"such as 'cpu' or 'cuda:0'; got {device!r}."
    )



class AutoDeviceMixin:
    """Resolve ``device="auto"`` for skorch, keep the user's value as the parameter."""

    @property
    def device(self) -> Any:
        """The device skorch works on: the ``device`` parameter with ``"auto"`` resolved.

        ``get_params()["device"]`` keeps the value the user set.
        """
        return resolve_device(self.__dict__.get("_device_param", "auto"))

    @device.setter
    def device(self, value: Any) -> None:
        self.__dict__["_device_param"] = value

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_"; our bookkeeping
        # (_params_to_validate, _device_param) starts with "_".
        names = [n for n in super()._get_param_names() if not n.startswith("_")]
        return sorted(set(names) | {"device"})

    def get_params(self, deep: bool = True, **kwargs: Any) -> dict[str, Any]:
        params = super().get_params(deep=deep, **kwargs)
        params["device"] = self.__dict__.get("_device_param", "auto")
        return params

    def load_params(self, *args: Any, **kwargs: Any) -> None:
        """skorch's ``load_params``; ``device="auto"`` stays ``"auto"``.

        skorch (1.4) replaces ``net.device`` with the map location it chose;
        for ``"auto"`` that is what ``"auto"`` resolves to anyway.
        """
        requested = self.__dict__.get("_device_param", "auto")
        super().load_params(*args, **kwargs)
        if isinstance(requested, str) and requested == "auto":
            self.device = requested

    def __setstate__(self, state: dict) -> None:
        requested = state.pop("_device_param", "auto")
        state["device"] = resolve_device(requested)  # skorch maps tensors there
        super().__setstate__(state)
        mapped = self.__dict__.pop("device")  # skorch's choice (CPU if CUDA is gone)
        self.device = requested if isinstance(requested, str) and requested == "auto" else mapped
        if getattr(self, "initialized_", False):
            self.device_ = str(resolve_device(mapped) or self.device_)

