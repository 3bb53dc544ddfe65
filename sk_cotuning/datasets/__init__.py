"""Data sets and their helpers: image folders, sampling rates, the glyph corpus,
Fashion-MNIST, and resizing image arrays."""

from sk_cotuning.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist
from sk_cotuning.datasets.folders import IMAGE_EXTENSIONS, load_image_folder
from sk_cotuning.datasets.glyphs import CHARACTERS, LETTERS, glyph_fonts, make_glyphs
from sk_cotuning.datasets.resizing import resize_images
from sk_cotuning.datasets.sampling import sample_rate_indices

__all__ = [
    "CHARACTERS",
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "LETTERS",
    "glyph_fonts",
    "load_fashion_mnist",
    "load_image_folder",
    "make_glyphs",
    "resize_images",
    "sample_rate_indices",
]
