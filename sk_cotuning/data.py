"""Inputs -> torch Datasets.

Array inputs: ``(n, C, H, W)`` float or uint8, ``(n, H, W, C)`` images,
grayscale ``(n, H, W)``, flat ``(n, h * w)`` arrays for a backbone with a fixed
small input (the glyph model), and plain ``(n, n_features)`` arrays for a
user's own non-image network.  Arrays stay in their dtype (uint8 images
travel as uint8); the network normalises them on its device.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset

from sk_cotuning.backbones import Preprocessing

__all__ = ["ArrayDataset", "TransformedDataset", "as_tensor_input"]

_CHANNELS = (1, 3, 4)


class ArrayDataset(Dataset):
    """Samples of an in-memory tensor with optional integer labels.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, ...)
        One sample per row (an image ``(C, H, W)`` or a feature vector).
    y : ndarray of shape (n_samples,) or None
        Label indices; items carry ``0`` when ``None``.
    """

    def __init__(self, X: torch.Tensor, y: np.ndarray | None = None) -> None:
        self.X = X
        self.y = None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | int]:
        return self.X[i], (self.y[i] if self.y is not None else 0)


class TransformedDataset(Dataset):
    """Apply ``transform`` to the input of every ``(x, y)`` item of ``dataset``."""

    def __init__(self, dataset: Dataset, transform: Callable[[Any], Any]) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x, y = self.dataset[i]
        return self.transform(x), y


def _reshape_hint() -> str:
    return (
        "Reshape your data either using array.reshape(-1, 1) if your data has a single "
        "feature or array.reshape(1, -1) if it contains a single sample."
    )


def as_tensor_input(X: Any, preprocessing: Preprocessing | None) -> torch.Tensor:
    """Validate an array input and return it as a tensor in the network's layout.

    Parameters
    ----------
    X : array-like or torch.Tensor
        See the module docstring for the accepted layouts.
    preprocessing : Preprocessing or None
        The backbone's preprocessing; ``None`` for a user's own network, whose
        inputs only need to be numeric and finite (any shape with a sample
        axis first).

    Returns
    -------
    torch.Tensor
        ``(n, C, H, W)`` uint8 or float32 for image backbones (a view where
        possible); float32 of the input's shape otherwise.

    Raises
    ------
    TypeError
        For sparse matrices and non-numeric arrays.
    ValueError
        For empty, non-finite, out-of-range or wrongly shaped inputs.
    """
    if sp.issparse(X):
        raise TypeError(
            "Sparse input is not supported: CoTuningClassifier expects dense image "
            "arrays; convert with X.toarray()."
        )
    if isinstance(X, torch.Tensor):
        t = X.detach().cpu()
    else:
        a = np.asarray(X)
        if a.dtype.kind in "USV":
            raise TypeError(
                f"X has non-numeric dtype {a.dtype}; pass numeric image arrays, or a "
                f"1-D array/list of image file paths."
            )
        if a.dtype == object:
            try:
                a = a.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"X has dtype object with non-numeric entries ({exc}); pass numeric "
                    f"image arrays, or a 1-D array/list of image file paths."
                ) from exc
        if not a.flags.writeable:  # e.g. read-only memmaps; torch needs writable memory
            a = a.copy()
        t = torch.from_numpy(np.ascontiguousarray(a))
    if t.is_complex():
        raise ValueError("Complex data not supported: pass real-valued images (uint8 or float).")
    if t.dtype == torch.bool:
        raise TypeError(f"X has dtype {t.dtype}; pass real-valued images (uint8 or float).")
    if t.ndim == 0:
        raise ValueError(f"Expected an array of samples, got a scalar. {_reshape_hint()}")
    if t.ndim == 1:
        raise ValueError(
            f"Expected 2D array, got 1D array instead:\narray={t.numpy()}.\n{_reshape_hint()}"
        )
    if t.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={tuple(t.shape)}) while a minimum of 1 "
            f"is required."
        )
    if t.numel() == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(t.shape)}) while a minimum of 1 "
            f"is required."
        )
    if t.dtype != torch.uint8:
        t = t.to(torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ValueError("Input X contains NaN or infinity; remove or impute those values.")
    if preprocessing is None:
        return t.float()
    t = _to_nchw(t, preprocessing)
    if t.dtype != torch.uint8:
        lo, hi = float(t.min()), float(t.max())
        top = preprocessing.value_range
        if lo < 0 or hi > top * (1 + 1e-6):
            raise ValueError(
                f"Float images must have values in [0, {top:g}] (got [{lo:.4g}, {hi:.4g}]); "
                f"the backbone normalises them itself. Pass uint8 images (0..255) or scale "
                f"floats to [0, {top:g}]; do not pass mean/std-normalised arrays."
            )
    return t


def _to_nchw(t: torch.Tensor, pre: Preprocessing) -> torch.Tensor:
    if t.ndim == 2:
        if pre.native_size is not None:
            h, w = pre.native_size
            if t.shape[1] == h * w:
                return t.reshape(len(t), 1, h, w)
            if t.shape[1] == h * w * pre.in_channels:
                return t.reshape(len(t), pre.in_channels, h, w)
        raise ValueError(
            f"Got a 2-D array of shape {tuple(t.shape)}, but the backbone expects images: "
            f"(n, C, H, W), (n, H, W, C) or grayscale (n, H, W)"
            + (f", or flat (n, {pre.native_size[0] * pre.native_size[1]})" if pre.native_size else "")
            + "."
        )
    if t.ndim == 3:
        return t.unsqueeze(1)
    if t.ndim == 4:
        first, last = t.shape[1] in _CHANNELS, t.shape[3] in _CHANNELS
        if t.dtype == torch.uint8 and last:
            return t.permute(0, 3, 1, 2)
        if first:
            return t
        if last:
            return t.permute(0, 3, 1, 2)
        raise ValueError(
            f"Cannot tell the channel axis of images of shape {tuple(t.shape)}: expected "
            f"(n, C, H, W) or (n, H, W, C) with C in {_CHANNELS}."
        )
    raise ValueError(
        f"Expected images of 3 or 4 dimensions, got an array of shape {tuple(t.shape)}."
    )
