"""Data helpers: image folders, sampling rates, and the glyph corpus."""

from sk_cotuning.datasets.folders import IMAGE_EXTENSIONS, load_image_folder
from sk_cotuning.datasets.glyphs import CHARACTERS, LETTERS, glyph_fonts, make_glyphs
from sk_cotuning.datasets.sampling import sample_rate_indices

__all__ = [
    "IMAGE_EXTENSIONS",
    "CHARACTERS",
    "LETTERS",
    "glyph_fonts",
    "load_image_folder",
    "make_glyphs",
    "sample_rate_indices",
]
