"""Resizing image arrays to a backbone's input size, for the jobs, benchmarks and users.

Named backbones resize image *files* through their preprocessing, but take
*arrays* at the size they are given (an ImageNet model wants about 64 px or
more; Fashion-MNIST is 28 px).  :func:`resize_images` is the one resize the
Fashion-MNIST job and the benchmarks share.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["resize_images"]


def resize_images(X: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 images to ``size x size`` (bilinear, antialiased).

    Parameters
    ----------
    X : ndarray of shape (n, H, W) or (n, C, H, W), uint8
        Grayscale images, or channels-first images.
    size : int
        The output height and width, in pixels.

    Returns
    -------
    resized : ndarray of shape (n, 1, size, size) or (n, C, size, size), uint8
        A channel axis is added to grayscale ``(n, H, W)`` input.

    Raises
    ------
    ValueError
        If ``X`` is not a 3-D or 4-D uint8 array, or ``size`` is not a
        positive integer.
    """
    import torch

    X = np.asarray(X)
    if X.dtype != np.uint8 or X.ndim not in (3, 4):
        raise ValueError(
            f"resize_images takes uint8 images of shape (n, H, W) or (n, C, H, W); got "
            f"{X.dtype} of shape {X.shape}. Convert float images with "
            f"(X * 255).round().astype(np.uint8) first."
        )
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels); got {size!r}.")
    x = torch.as_tensor(X, dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(int(size), int(size)), mode="bilinear",
                                        antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()
