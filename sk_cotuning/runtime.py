"""Where a fit runs: the device, the precision, the memory layout, and seeding.

- ``device="auto"``: skorch reads ``net.device`` as its working device
  wherever it moves tensors or modules (building the network and the
  criterion, ``infer``, ``load_params``, unpickling, the scoring cache), so
  :class:`AutoDeviceMixin` makes that attribute the *resolved* device
  (``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; ``None`` kept:
  leave the network where it is), while ``get_params()["device"]`` and
  :attr:`~AutoDeviceMixin.requested_device` keep the value the user set, so
  ``clone``, grid searches and pickles carry ``"auto"`` to the next machine.
  Resolution happens on use, never in ``__init__`` (no CUDA initialisation
  in a process that will fork grid-search workers); the device a fit ran on
  is the fitted attribute ``device_``.
- :func:`resolve_runtime`: the device, autocast dtype and channels-last
  choice of one fit, from the parameters.
- :func:`seeded` and :func:`seed_from`: the one seeding idiom, used by the
  estimators, the regularisers and the bundled model's training;
  :func:`torch_threads`: the CPU thread count of a block (the jobs' ``--threads``).
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from sk_cotuning._skorch import store_raw

__all__ = ["AutoDeviceMixin", "ResolvedDevice", "Runtime", "check_device", "resolve_device",
           "resolve_runtime", "seed_from", "seeded", "torch_threads"]


def resolve_device(device: Any) -> Any:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other values unchanged."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_device(device: Any) -> None:
    """Raise a ``ValueError`` that says what to pass for an unusable ``device``."""
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


@dataclass(frozen=True)
class Runtime:
    """How one fit computes: ``device`` (a string), ``amp_dtype`` (autocast
    dtype or ``None``), ``channels_last`` (bool)."""

    device: str
    amp_dtype: torch.dtype | None
    channels_last: bool


def resolve_runtime(device: str, amp: Any, channels_last: Any, accelerated: bool = False) -> Runtime:
    """The device, precision and memory layout of a fit.

    Parameters
    ----------
    device : str
        The resolved device the fit computes on.
    amp : {"auto", "bf16"}, bool or None
        ``"auto"``/``True``: bf16 autocast on a CUDA device that supports it;
        ``"bf16"``: always; ``False``/``None``: never.
    channels_last : {"auto"} or bool
        ``"auto"``: on CUDA only.
    accelerated : bool, default=False
        Under an ``Accelerator`` its ``mixed_precision`` decides: no autocast here.
    """
    on_cuda = torch.device(device).type == "cuda"
    if amp is True or (isinstance(amp, str) and amp == "auto"):
        amp = "bf16" if on_cuda and torch.cuda.is_bf16_supported() else None
    if accelerated:
        amp = None
    use_cl = channels_last is True or (isinstance(channels_last, str) and on_cuda)
    return Runtime(device, torch.bfloat16 if amp == "bf16" else None, bool(use_cl))


def seed_from(random_state: Any) -> int | None:
    """An int seed from ``random_state`` (an int, a ``RandomState``, or ``None``)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(random_state.randint(0, 2**31 - 1))


@contextmanager
def seeded(random_state: Any) -> Iterator[None]:
    """Run the block under a forked torch RNG seeded from ``random_state``.

    ``None`` runs it unseeded.  The global torch RNG (and the current CUDA
    device's) is restored afterwards.
    """
    seed = seed_from(random_state)
    if seed is None:
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Compute with ``threads`` CPU threads inside the block (``None``: unchanged).

    Floating-point sums run in another order with another thread count, so a
    training run repeats exactly on one machine for a given count, not across
    counts (nor across machines whose CPUs pick other kernels).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ResolvedDevice(str):
    """What ``device="auto"`` resolved to (``"cuda"`` or ``"cpu"``), as ``net.device``
    reads it: a ``str`` that torch takes as a device, and that, assigned back to
    ``net.device``, keeps the parameter ``"auto"``."""

    __slots__ = ()


class AutoDeviceMixin:
    """Resolve ``device="auto"`` for skorch; keep the user's value as the parameter."""

    @property
    def device(self) -> Any:
        """The device skorch works on: the ``device`` parameter with ``"auto"`` resolved.

        ``get_params()["device"]`` and :attr:`requested_device` keep the value
        the user set; ``device_`` is the device a fit ran on.
        """
        requested = self.requested_device
        if isinstance(requested, str) and requested == "auto":
            return ResolvedDevice(resolve_device(requested))
        return requested

    @device.setter
    def device(self, value: Any) -> None:
        # net.device = net.device keeps the parameter: skorch's load_params
        # (1.2-1.4) writes back the device it read when the map location agrees
        # with it, which for "auto" would otherwise replace the parameter
        store_raw(self, "device", "auto" if isinstance(value, ResolvedDevice) else value)

    @property
    def requested_device(self) -> Any:
        """The ``device`` parameter as the user set it (e.g. ``"auto"``)."""
        return vars(self).get("device", "auto")

    def get_params(self, deep: bool = True, **kwargs: Any) -> dict[str, Any]:
        """skorch's parameters, sorted as scikit-learn's are, with ``device`` as set
        (not resolved), and without skorch's private bookkeeping
        (``_params_to_validate``)."""
        params = super().get_params(deep=deep, **kwargs)
        params["device"] = self.requested_device
        return {key: params[key] for key in sorted(params) if not key.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        # skorch (1.2-1.4) maps the pickled tensors to state["device"]: give it
        # the resolved device, then keep "auto" as the parameter
        requested = state.get("device", "auto")
        state["device"] = resolve_device(requested)
        super().__setstate__(state)
        mapped = vars(self).get("device")  # skorch's choice (the CPU if CUDA is gone)
        auto = isinstance(requested, str) and requested == "auto"
        self.device = requested if auto else mapped
        if getattr(self, "initialized_", False):
            self.device_ = str(resolve_device(mapped) or self.device_)
            self._landed_on(self.device_)

    def _landed_on(self, device: str) -> None:
        """Adapt what follows the device (autocast) after unpickling onto ``device``."""
