"""The glyph corpus: Latin letters rendered like the UCI handwritten digits.

The UCI digits in :func:`sklearn.datasets.load_digits` are 32x32 binary
bitmaps, each scaled to the full height of the box, reduced by counting the
set pixels of 4x4 blocks into 8x8 images with values 0..16.  This module
renders the 52 letters ``A-Z a-z`` from the TrueType fonts that ship with
matplotlib (DejaVu, STIX, Computer Modern) in exactly that format, with
random rotation, scale, aspect, translation and stroke width, so that a
source model pre-trained on letters shares its input format with the digits
while its label space does not overlap theirs.

Everything is deterministic for a fixed seed (and matplotlib's bundled
FreeType), and needs no network.
"""

from __future__ import annotations

import os
import string
from functools import lru_cache

import matplotlib
import numpy as np
from matplotlib.ft2font import FT2Font
from scipy import ndimage

__all__ = ["CHARACTERS", "LETTERS", "glyph_fonts", "make_glyphs"]

#: The 52 Latin letters, in order.
LETTERS: tuple[str, ...] = tuple(string.ascii_uppercase + string.ascii_lowercase)

#: The glyph model's 62 source classes: the printed digits, then the letters.
#: Printed digits make the built-in pair a real printed -> handwritten domain
#: shift (the UCI digits are handwriting), with related classes (printed "0",
#: "O", "o" for a handwritten 0) for the relationship to find.
CHARACTERS: tuple[str, ...] = tuple(string.digits) + LETTERS

# Fonts that map the Latin code points to something other than letters.
_NOT_LATIN = {
    "LastResortHE-Regular.ttf": "placeholder boxes",
    "cmex10.ttf": "math-extension symbols",
    "cmsy10.ttf": "math symbols",
}
_BOX = 32  # the UCI digits' bitmap size
_BLOCK = 4  # reduced by 4x4 blocks to 8x8
_RENDER_PT = 64  # rasterisation size before the random affine map


def glyph_fonts() -> list[str]:
    """Paths of matplotlib's bundled fonts that have all 52 Latin letters.

    Fonts without glyphs at the Latin code points (the STIX size variants,
    the non-Unicode STIX fonts, the Display fonts) and those that put other
    shapes there (:data:`_NOT_LATIN`) are skipped.

    Returns
    -------
    paths : list of str
        Sorted font file paths (22 with matplotlib 3.x).
    """
    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    paths = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".ttf") or name in _NOT_LATIN:
            continue
        font = FT2Font(os.path.join(folder, name))
        if all(font.get_char_index(ord(c)) != 0 for c in CHARACTERS):
            paths.append(os.path.join(folder, name))
    return paths


@lru_cache(maxsize=None)
def _master(path: str, char: str) -> np.ndarray:
    """The glyph rasterised large, cropped to its ink, as float in [0, 1]."""
    font = FT2Font(path)
    font.set_size(_RENDER_PT, 72)
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    img = np.asarray(font.get_image(), dtype=np.float64) / 255.0
    rows, cols = np.nonzero(img > 0.5)
    return np.ascontiguousarray(img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])


def _render(master: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random 32x32 binary rendering of a master glyph."""
    h, w = master.shape
    angle = np.deg2rad(rng.uniform(-12, 12))
    aspect = np.exp(rng.uniform(-0.15, 0.15))
    # like the digits: the glyph's height fills the box, unless it is too wide
    fill = rng.uniform(0.85, 1.0) * _BOX
    scale = min(fill / h, fill / (w * aspect))  # output px per master px (vertical)
    sy, sx = scale, scale * aspect
    c, s = np.cos(angle), np.sin(angle)
    # output = R @ S @ (input - centre_in) + centre_out; invert for affine_transform
    forward = np.array([[c, -s], [s, c]]) @ np.diag([sy, sx])
    inverse = np.linalg.inv(forward)
    centre_out = np.array([_BOX / 2, _BOX / 2]) + rng.uniform(-1.5, 1.5, size=2) - 0.5
    centre_in = np.array([h / 2, w / 2]) - 0.5
    offset = centre_in - inverse @ centre_out
    # anti-alias when shrinking: blur the master to the output resolution
    smooth = ndimage.gaussian_filter(master, sigma=0.5 / scale)
    out = ndimage.affine_transform(smooth, inverse, offset=offset, output_shape=(_BOX, _BOX),
                                   order=1, mode="constant", cval=0.0)
    bitmap = out > 0.5
    # stroke width: thicken until the ink density drawn for this sample is reached
    target = rng.uniform(0.16, 0.32)
    for _ in range(6):
        if bitmap.mean() >= target:
            break
        bitmap = ndimage.binary_dilation(bitmap)
    return bitmap


def _reduce(bitmap: np.ndarray) -> np.ndarray:
    """32x32 binary -> 8x8 counts of set pixels per 4x4 block (0..16)."""
    n = _BOX // _BLOCK
    return bitmap.reshape(n, _BLOCK, n, _BLOCK).sum(axis=(1, 3)).astype(np.uint8)


def make_glyphs(
    n_per_letter: int = 300,
    seed: int = 0,
    fonts: list[str] | None = None,
    characters: tuple[str, ...] = CHARACTERS,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the glyph corpus in the UCI digits' format.

    Parameters
    ----------
    n_per_letter : int, default=300
        Renderings of each character, spread evenly over the fonts.
    seed : int, default=0
        Seed of the random rotation, scale, aspect, translation and stroke
        width; the same seed gives the same bytes.
    fonts : list of str or None
        Font files; :func:`glyph_fonts` when ``None``.
    characters : tuple of str, default=CHARACTERS
        The classes to render (:data:`CHARACTERS`: printed digits and letters).

    Returns
    -------
    X : ndarray of shape (len(characters) * n_per_letter, 8, 8), dtype uint8
        Images with values 0..16, like ``load_digits().images``.
    y : ndarray of shape (len(characters) * n_per_letter,), dtype int64
        Indices into ``characters``.

    Examples
    --------
    >>> X, y = make_glyphs(n_per_letter=2, seed=0)
    >>> X.shape, int(X.max()) <= 16
    ((124, 8, 8), True)
    """
    if n_per_letter < 1:
        raise ValueError(f"n_per_letter must be a positive int, got {n_per_letter!r}.")
    fonts = glyph_fonts() if fonts is None else list(fonts)
    if not fonts:
        raise ValueError("No font with the 52 Latin letters was found.")
    rng = np.random.default_rng(seed)
    X = np.empty((len(characters) * n_per_letter, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(len(characters)), n_per_letter)
    for k, char in enumerate(characters):
        for j in range(n_per_letter):
            master = _master(fonts[j % len(fonts)], char)
            X[k * n_per_letter + j] = _reduce(_render(master, rng))
    return X, y
