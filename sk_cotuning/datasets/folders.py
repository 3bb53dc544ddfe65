"""Image folders: ``root/<class>/<image>`` trees as (paths, labels) arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

#: File extensions read as images (torchvision's ImageFolder list).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def load_image_folder(
    root: str | os.PathLike,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
) -> tuple[np.ndarray, np.ndarray]:
    """List an ImageFolder-style tree as file paths and class labels.

    Every sub-folder of ``root`` is a class (hidden folders are skipped);
    image files anywhere below it, by extension, are its samples.  Nothing
    is decoded, so this is instant for large trees, and the result can be
    split, sampled and passed to ``CoTuningClassifier.fit`` like any array.

    Parameters
    ----------
    root : str or path-like
        The folder holding one sub-folder per class.
    extensions : tuple of str, default=IMAGE_EXTENSIONS
        Lower-case file extensions to include.

    Returns
    -------
    paths : ndarray of shape (n_images,), dtype object
        File paths (str), sorted by class, then by path.
    labels : ndarray of shape (n_images,)
        The class (sub-folder name) of each file.

    Raises
    ------
    FileNotFoundError
        If ``root`` is not a folder.
    ValueError
        If it holds no class folder with images.

    Examples
    --------
    >>> paths, labels = load_image_folder("data/cars/train")  # doctest: +SKIP
    >>> idx = sample_rate_indices(labels, 0.15, random_state=0)  # doctest: +SKIP
    >>> clf.fit(paths[idx], labels[idx])  # doctest: +SKIP
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"{str(root)!r} is not a folder; pass the folder that holds one sub-folder "
            f"per class (root/<class>/<image>)."
        )
    paths: list[str] = []
    labels: list[str] = []
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    for name in classes:
        files = sorted(
            str(f) for f in (root / name).rglob("*")
            if f.is_file() and f.suffix.lower() in extensions
        )
        paths += files
        labels += [name] * len(files)
    if not paths:
        raise ValueError(
            f"No image files ({', '.join(extensions)}) found in class folders under "
            f"{str(root)!r}; expected root/<class>/<image>."
        )
    return np.array(paths, dtype=object), np.array(labels)
