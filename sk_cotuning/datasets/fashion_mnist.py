"""Fashion-MNIST (Zalando; 60k/10k 28x28 grayscale garments, 10 classes) from its idx files.

Found, in order, in ``data_home`` (the four ``*-idx?-ubyte[.gz]`` files, or
torchvision's ``FashionMNIST/raw`` layout below it), in ``$SK_COTUNING_DATA``,
and in Debian's package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``).  With ``download=True`` the files are
fetched through ``torchvision.datasets.FashionMNIST`` (needs internet).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["FASHION_MNIST_CLASSES", "load_fashion_mnist", "read_idx"]

#: The 10 classes, in label order.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (optionally gzipped) of unsigned bytes.

    Raises
    ------
    ValueError
        For a file that is not an idx file of uint8 data, or is truncated.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # missing, truncated, corrupted bytes
        raise ValueError(
            f"Cannot read idx file {str(path)!r} ({type(exc).__name__}: {exc}): the file is "
            f"damaged or not gzip data. Delete it and download it again "
            f"(load_fashion_mnist(download=True)) or reinstall dataset-fashion-mnist."
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{str(path)!r} is not an idx file of unsigned bytes (bad header).")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(
            f"{str(path)!r} holds {body.size} values, its header says {dims}: truncated?"
        )
    return body.reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem,
                      folder / "FashionMNIST" / "raw" / f"{stem}.gz",
                      folder / "FashionMNIST" / "raw" / stem):
        if candidate.is_file():
            return candidate
    return None


def load_fashion_mnist(
    split: str = "train",
    data_home: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images and labels.

    Parameters
    ----------
    split : {"train", "test"}, default="train"
        The 60,000 training or 10,000 test images.
    data_home : path-like or None
        Folder with the idx files (or torchvision's ``FashionMNIST/raw``
        below it); with ``download=True``, where they are downloaded.
    download : bool, default=False
        Fetch the files through torchvision when they are not found.

    Returns
    -------
    X : ndarray of shape (n, 28, 28), dtype uint8
        Light garments on a dark background, 0..255.
    y : ndarray of shape (n,), dtype int64
        Indices into :data:`FASHION_MNIST_CLASSES`.

    Raises
    ------
    FileNotFoundError
        Naming the folders searched and the three ways to get the files; or
        naming ``data_home`` when it is not a folder (without ``download``: a
        typo there would otherwise load another copy of the data in silence).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    if data_home is not None and not download and not Path(data_home).is_dir():
        raise FileNotFoundError(
            f"data_home {str(data_home)!r} is not a folder. Pass the folder that holds the "
            f"Fashion-MNIST idx files, leave data_home unset to use $SK_COTUNING_DATA or "
            f"Debian's dataset-fashion-mnist, or pass download=True to fetch them there."
        )
    folders = [Path(p) for p in (data_home, os.environ.get("SK_COTUNING_DATA")) if p]
    folders.append(DEBIAN_DIR)
    images_stem, labels_stem = _FILES[split]
    for folder in folders:
        images, labels = _find(folder, images_stem), _find(folder, labels_stem)
        if images is not None and labels is not None:
            X, y = read_idx(images), read_idx(labels).astype(np.int64)
            if len(X) != len(y):
                raise ValueError(f"{images} has {len(X)} images but {labels} {len(y)} labels.")
            return X, y
    if download:
        import torchvision

        root = Path(data_home) if data_home else Path.home() / ".cache" / "sk_cotuning"
        torchvision.datasets.FashionMNIST(str(root), train=split == "train", download=True)
        return load_fashion_mnist(split, root, download=False)
    raise FileNotFoundError(
        f"Fashion-MNIST idx files ({images_stem}[.gz], {labels_stem}[.gz]) were not found in "
        f"{[str(f) for f in folders]}. Install Debian's package (apt-get install "
        f"dataset-fashion-mnist), pass download=True (torchvision fetches them; needs "
        f"internet), or pass data_home= a folder that holds them."
    )
