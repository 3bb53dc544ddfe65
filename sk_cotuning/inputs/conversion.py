"""Inputs of any kind -> torch Datasets of raw samples, with the checks on scale, shape and files.

Three kinds of input:

- **arrays**: ``(n, C, H, W)`` float or uint8, ``(n, H, W, C)`` images,
  grayscale ``(n, H, W)``, flat ``(n, h * w)`` arrays for a backbone with a
  fixed small input (the glyph model), and plain ``(n, n_features)`` arrays
  for a user's own non-image network.  Arrays stay in their dtype (uint8
  images travel as uint8); the network normalises them on its device.
- **image files**: a 1-D array or list of paths (str or ``pathlib.Path``),
  decoded lazily per item (so in DataLoader workers) with Pillow and
  converted to the backbone's channels.
- **datasets**: skorch's ``SliceDataset`` over a torch ``Dataset`` whose
  samples are PIL images or unnormalised image tensors.

Datasets here yield raw samples; :func:`sk_cotuning.inputs.transforms.default_transforms`
gives the per-kind train/eval transforms that the classifier applies on top (the
train one only to training batches).  Transforms must not normalise: they
end in uint8 or ``[0, 1]`` float tensors, and the network normalises.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import Dataset, Subset

from sk_cotuning.backbones import Preprocessing

__all__ = [
    "ArrayDataset",
    "ImageFileDataset",
    "SampleDataset",
    "TransformedDataset",
    "ViewsDataset",
    "as_tensor_input",
    "dataset_labels",
    "is_path_list",
    "make_dataset",
]

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

    kind = "array"

    def __init__(self, X: torch.Tensor, y: np.ndarray | None = None) -> None:
        self.X = X
        self.y = None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | int]:
        return self.X[i], (self.y[i] if self.y is not None else 0)


class ImageFileDataset(Dataset):
    """Image files decoded lazily with Pillow, one per item.

    Parameters
    ----------
    paths : sequence of str
        Image files (checked to exist by :func:`make_dataset`).
    y : ndarray of shape (n_samples,) or None
        Label indices; items carry ``0`` when ``None``.
    mode : {"RGB", "L"}
        Pillow mode the images are converted to (grayscale and RGBA files
        become RGB for a 3-channel backbone; anything becomes "L" for a
        1-channel one).

    Raises
    ------
    ValueError
        On item access, for a file Pillow cannot decode; the message names
        the file.
    """

    kind = "image"

    def __init__(self, paths: Sequence[str], y: np.ndarray | None = None, mode: str = "RGB") -> None:
        self.paths = list(paths)
        self.y = None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as img:
                img = _to_8bit(img).convert(self.mode)  # decodes fully
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise ValueError(
                f"Cannot read image file {path!r} ({type(exc).__name__}: {exc}); remove or "
                f"replace the file."
            ) from exc
        return img, (self.y[i] if self.y is not None else 0)


def _to_8bit(img: Any) -> Any:
    """16-bit and 32-bit integer/float images scaled to 8 bits (Pillow would clip them)."""
    from PIL import Image

    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    arr = np.asarray(img, dtype=np.float64)
    top = float(arr.max()) if arr.size else 0.0
    if img.mode.startswith("I;16"):
        full = 65535.0
    elif img.mode == "F":
        full = 1.0 if top <= 1.0 else (255.0 if top <= 255.0 else 65535.0)
    else:  # "I": Pillow's mode for many 16-bit PNGs
        full = 255.0 if top <= 255.0 else 65535.0
    return Image.fromarray(np.clip(np.round(arr / full * 255.0), 0, 255).astype(np.uint8), "L")


class SampleDataset(Dataset):
    """Samples of an indexable collection (a skorch ``SliceDataset``) with labels.

    Parameters
    ----------
    samples : sequence
        ``samples[i]`` is one raw sample (a PIL image or an image tensor).
    y : ndarray of shape (n_samples,) or None
        Label indices; items carry ``0`` when ``None``.
    """

    kind = "image"

    def __init__(self, samples: Sequence[Any], y: np.ndarray | None = None) -> None:
        self.samples = samples
        self.y = None if y is None else torch.as_tensor(np.asarray(y), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        sample = self.samples[int(i)]
        if isinstance(sample, torch.Tensor) and sample.dtype != torch.uint8:
            lo, hi = float(sample.min()), float(sample.max())
            if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1 + 1e-6:
                raise ValueError(
                    f"Sample {int(i)} of the dataset is a float tensor with values in "
                    f"[{lo:.4g}, {hi:.4g}]; dataset samples must be PIL images, uint8 "
                    f"tensors or float tensors in [0, 1], not mean/std-normalised: drop "
                    f"Normalize from the dataset's transform (the network normalises)."
                )
        return sample, (self.y[i] if self.y is not None else 0)


def dataset_kind(dataset: Dataset) -> str | None:
    """``"array"``, ``"image"`` or ``None`` (unknown), looking through Subsets."""
    while isinstance(dataset, (Subset, TransformedDataset)):
        dataset = dataset.dataset
    return getattr(dataset, "kind", None)


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


class ViewsDataset(TransformedDataset):
    """Samples as ``{"views": transform(x)}``: the network's keyword for test-time views
    (a stack ``(V, C, H, W)`` per sample), which it averages."""

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        x, y = self.dataset[i]
        return {"views": self.transform(x)}, y


def _reshape_hint() -> str:
    return (
        "Reshape your data either using array.reshape(-1, 1) if your data has a single "
        "feature or array.reshape(1, -1) if it contains a single sample."
    )


def _as_array(X: Any) -> torch.Tensor:
    """Any array-like as a CPU tensor, with clear errors for what is not numeric."""
    if sp.issparse(X):
        raise TypeError(
            "Sparse input is not supported: the estimator expects dense image arrays; "
            "convert with X.toarray()."
        )
    if isinstance(X, torch.Tensor):
        return X.detach().cpu()
    try:
        a = np.asarray(X)
    except ValueError as exc:  # numpy: "inhomogeneous shape" for ragged lists
        raise ValueError(
            f"X could not be read as one array ({exc}). A list of images must hold images "
            f"of one shape: resize them first, or pass a list of image file paths (any "
            f"sizes; the eval transform resizes them)."
        ) from None
    if a.dtype.kind in "USV":
        raise TypeError(
            f"X has non-numeric dtype {a.dtype}; pass numeric image arrays, or a 1-D "
            f"array/list of image file paths."
        )
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"X has dtype object with non-numeric entries ({exc}); pass numeric image "
                f"arrays, or a 1-D array/list of image file paths."
            ) from exc
    if a.dtype.kind == "c":
        raise ValueError("Complex data not supported: pass real-valued images (uint8 or float).")
    if not a.flags.writeable:  # e.g. read-only memmaps; torch needs writable memory
        a = a.copy()
    return torch.from_numpy(np.ascontiguousarray(a))


def _check_shape(t: torch.Tensor) -> None:
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
    if t.ndim == 3 and t.shape[2] in (3, 4) and min(t.shape[0], t.shape[1]) >= 8:
        raise ValueError(
            f"X of shape {tuple(t.shape)} looks like one (H, W, C) colour image, not "
            f"{t.shape[0]} grayscale images of {t.shape[1]}x{t.shape[2]} pixels. Pass a "
            f"batch: X[None] (shape (1, H, W, C)) for a single image."
        )


def _read_scale(t: torch.Tensor, declared: float, what: str) -> float:
    """The intensity range that ``t``'s values are in: 1, ``declared`` or 255.

    Decided by the model's declared range and the data's actual range, never by
    the dtype alone; a reading that differs from the declared range is said in
    a warning.  uint8 data at 0..255 is the natural case and silent.
    """
    lo, hi = float(t.min()), float(t.max())
    if lo < 0:
        raise ValueError(
            f"{what} has values in [{lo:.4g}, {hi:.4g}]: negative values mean mean/std-"
            f"normalised data, but the network normalises itself. Pass uint8 images "
            f"(0..255) or floats in [0, 1]{'' if declared == 1 else f' or [0, {declared:g}]'}."
        )
    candidates = sorted({1.0, float(declared), 255.0})
    scale = next((c for c in candidates if hi <= c * (1 + 1e-6)), None)
    if scale is None:
        raise ValueError(
            f"{what} has values up to {hi:.4g}, above 255: pass uint8 images (0..255) or "
            f"floats in [0, 1] (16-bit images: divide by 65535)."
        )
    natural = scale == declared or (t.dtype == torch.uint8 and scale == 255.0)
    if t.dtype == torch.uint8 and scale < 255.0 and declared == 1.0 and hi > 0:
        warnings.warn(
            f"{what} is uint8 with values only in [0, {hi:g}], so it reads as almost "
            f"black 0..255 images. If these are 0/1 masks or 0..{hi:g} levels, rescale "
            f"them to 0..255 (or floats in [0, 1]).",
            UserWarning,
            stacklevel=5,
        )
        return 255.0
    if not natural:
        warnings.warn(
            f"{what} has values in [{lo:.4g}, {hi:.4g}], read as intensities in "
            f"[0, {scale:g}]; the model takes [0, {declared:g}], so they are rescaled. "
            f"Pass data in [0, {declared:g}] (or uint8 0..255) to silence this.",
            UserWarning,
            stacklevel=5,
        )
    return scale


def as_tensor_input(
    X: Any, preprocessing: Preprocessing | None, convert_images: bool = True
) -> torch.Tensor:
    """Validate an array input and return it as a tensor in the network's layout.

    Parameters
    ----------
    X : array-like or torch.Tensor
        See the module docstring for the accepted layouts.
    preprocessing : Preprocessing or None
        The backbone's preprocessing; ``None`` for a user's own network.
    convert_images : bool, default=True
        For a user's own network: image arrays (3-D, or 4-D with a channel axis
        of 1, 3 or 4 first or last) become float32 ``(n, C, H, W)`` in
        ``[0, 1]``, as for named backbones; 2-D arrays (tabular features) pass
        through as float32.  ``False`` passes every input through as float32.

    Returns
    -------
    torch.Tensor
        ``(n, C, H, W)`` uint8 or float32 for image backbones (uint8 only for
        0..255 data, which the network scales on its device); float32 of the
        input's shape otherwise.

    Raises
    ------
    TypeError
        For sparse matrices and non-numeric arrays.
    ValueError
        For empty, ragged, non-finite, out-of-range or wrongly shaped inputs.
    """
    t = _as_array(X)
    _check_shape(t)
    if t.dtype != torch.uint8:
        t = t.to(torch.float32)
        if not bool(torch.isfinite(t).all()):
            raise ValueError("Input X contains NaN or infinity; remove or impute those values.")
    if preprocessing is None:
        if not convert_images or t.ndim == 2 or not _is_image_layout(t):
            return t.float()
        t = _to_nchw(t, None)
        scale = _read_scale(t, 1.0, "X")
        return t.float() / scale
    t = _to_nchw(t, preprocessing)
    native = preprocessing.native_size
    if native is not None and tuple(t.shape[-2:]) != tuple(native):
        raise ValueError(
            f"The backbone takes {native[0]}x{native[1]} images, got {t.shape[-2]}x"
            f"{t.shape[-1]} (X of shape {tuple(X.shape) if hasattr(X, 'shape') else '?'}). "
            f"Resize the images to {native[0]}x{native[1]} first, or pass them as image "
            f"files, which the eval transform resizes."
        )
    declared = float(preprocessing.value_range)
    scale = _read_scale(t, declared, "X")
    if t.dtype == torch.uint8 and scale == 255.0:
        return t  # travels as uint8, scaled on the device
    t = t.float()
    return t if scale == declared else t * (declared / scale)


def _is_image_layout(t: torch.Tensor) -> bool:
    if t.ndim == 3:
        return True
    return t.ndim == 4 and (t.shape[1] in _CHANNELS or t.shape[3] in _CHANNELS)


def _to_nchw(t: torch.Tensor, pre: Preprocessing | None) -> torch.Tensor:
    if t.ndim == 2:
        if pre is not None and pre.native_size is not None:
            h, w = pre.native_size
            if t.shape[1] == h * w:
                return t.reshape(len(t), 1, h, w)
            if t.shape[1] == h * w * pre.in_channels:
                return t.reshape(len(t), pre.in_channels, h, w)
        raise ValueError(
            f"Got a 2-D array of shape {tuple(t.shape)}, but the backbone expects images: "
            f"(n, C, H, W), (n, H, W, C) or grayscale (n, H, W)"
            + (f", or flat (n, {pre.native_size[0] * pre.native_size[1]})"
               if pre is not None and pre.native_size else "")
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


def is_path_list(X: Any) -> bool:
    """Whether ``X`` is a 1-D list/tuple/array of file paths (str or PathLike)."""
    if isinstance(X, (str, os.PathLike)):
        return False
    if isinstance(X, np.ndarray):
        if X.ndim != 1 or X.dtype.kind not in "OU":
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    return len(X) > 0 and all(isinstance(x, (str, os.PathLike)) for x in X)


def _is_sample_collection(X: Any) -> bool:
    from skorch.helper import SliceDataset

    return isinstance(X, SliceDataset)


def check_paths(X: Sequence[Any]) -> list[str]:
    """Paths as strings; every one must be an existing file.

    Raises
    ------
    FileNotFoundError
        Naming the missing files (up to five) and how many there are.
    """
    paths = [os.fspath(p) for p in X]
    folders = [p for p in paths if os.path.isdir(p)]
    if folders:
        raise ValueError(
            f"{len(folders)} of {len(paths)} path(s) are folders, not image files, e.g. "
            f"{folders[:5]!r}. Pass the files inside; for a root/<class>/<image> tree, "
            f"paths, labels = sk_cotuning.load_image_folder(root)."
        )
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} image file(s) do not exist, e.g. "
            f"{missing[:5]!r}. Fix the paths (relative paths are resolved from the "
            f"working directory {os.getcwd()!r})."
        )
    return paths


def make_dataset(
    X: Any,
    y: np.ndarray | None,
    preprocessing: Preprocessing | None,
    convert_images: bool = True,
) -> Dataset:
    """The raw-sample Dataset for any supported input.

    Parameters
    ----------
    X : array-like, list of paths, or SliceDataset
        See the module docstring.
    y : ndarray of shape (n_samples,) or None
        Label indices.
    preprocessing : Preprocessing or None
        The backbone's preprocessing.
    convert_images : bool, default=True
        See :func:`as_tensor_input`.

    Returns
    -------
    Dataset
        An :class:`ArrayDataset`, :class:`ImageFileDataset` or
        :class:`SampleDataset`.
    """
    if _is_sample_collection(X):
        if len(X) == 0:
            raise ValueError("X is an empty dataset; at least 1 sample is required.")
        return SampleDataset(X, y)
    if isinstance(X, Dataset) and not isinstance(X, (np.ndarray, torch.Tensor)):
        raise TypeError(
            f"X is a torch Dataset ({type(X).__name__}); wrap it as "
            f"skorch.helper.SliceDataset(dataset) and pass the labels as y (for an "
            f"ImageFolder: y=np.array(dataset.targets)), so scikit-learn can split it."
        )
    if is_path_list(X):
        mode = "L" if preprocessing is not None and preprocessing.in_channels == 1 else "RGB"
        return ImageFileDataset(check_paths(X), y, mode)
    return ArrayDataset(as_tensor_input(X, preprocessing, convert_images), y)


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Label indices of one of this module's datasets, looking through Subsets.

    Raises
    ------
    ValueError
        If the dataset carries no labels.
    """
    indices = None
    while isinstance(dataset, (Subset, TransformedDataset)):
        if isinstance(dataset, Subset):
            sub = np.asarray(dataset.indices)
            indices = sub if indices is None else sub[indices]
        dataset = dataset.dataset
    y = getattr(dataset, "y", None)
    if y is None:
        raise ValueError(f"{type(dataset).__name__} carries no labels.")
    y = np.asarray(y)
    return y if indices is None else y[indices]
