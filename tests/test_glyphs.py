"""The glyph corpus and the bundled GlyphNet source model."""

import json

import numpy as np
import pytest
import torch

from sk_cotuning.backbones import build_backbone
from sk_cotuning.backbones.glyphnet import (
    HELDOUT_SEED,
    PREPROCESSING,
    RECORD_FILE,
    WEIGHTS_FILE,
    GlyphNet,
    source_accuracy,
)
from sk_cotuning.datasets import CHARACTERS, glyph_fonts, make_glyphs, sample_rate_indices


def test_fonts_are_the_latin_ones():
    names = [p.rsplit("/", 1)[-1] for p in glyph_fonts()]
    assert len(names) >= 20
    assert "DejaVuSans.ttf" in names and "cmr10.ttf" in names and "STIXGeneral.ttf" in names
    for excluded in ("cmex10.ttf", "cmsy10.ttf", "LastResortHE-Regular.ttf", "STIXSizOneSymReg.ttf"):
        assert excluded not in names


def test_same_seed_same_bytes_other_seed_other_bytes():
    X1, y1 = make_glyphs(n_per_letter=3, seed=7)
    X2, y2 = make_glyphs(n_per_letter=3, seed=7)
    assert X1.tobytes() == X2.tobytes() and y1.tobytes() == y2.tobytes()
    X3, _ = make_glyphs(n_per_letter=3, seed=8)
    assert X1.tobytes() != X3.tobytes()


def test_format_matches_the_uci_digits():
    from sklearn.datasets import load_digits

    X, y = make_glyphs(n_per_letter=10, seed=0)
    assert X.shape == (620, 8, 8) and X.dtype == np.uint8
    assert X.min() == 0 and X.max() == 16
    assert np.array_equal(np.bincount(y), np.full(62, 10))
    digits = load_digits().images
    # comparable ink: mean intensity within 25% of the digits'
    assert abs(X.mean() - digits.mean()) / digits.mean() < 0.25
    # glyphs fill the box's height, as the digits do
    assert ((X.sum(axis=2) > 0).sum(axis=1)).mean() > 7


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_per_letter"):
        make_glyphs(0)
    with pytest.raises(ValueError, match="No font"):
        make_glyphs(1, fonts=[])


def test_shipped_weights_reach_the_reported_accuracy():
    record = json.loads(RECORD_FILE.read_text())
    assert WEIGHTS_FILE.stat().st_size < 2 * 1024 * 1024
    model = GlyphNet()
    model.load_state_dict(torch.load(WEIGHTS_FILE, weights_only=True))
    X, y = make_glyphs(n_per_letter=20, seed=HELDOUT_SEED)
    acc, merged = source_accuracy(model, X, y)
    # 1040 fresh renderings: about 0.8 points of standard error
    assert acc >= record["heldout_accuracy"] - 0.03
    assert merged >= record["heldout_accuracy_case_merged"] - 0.02


def test_glyphnet_backbone():
    backbone = build_backbone("glyphnet")
    assert backbone.source_classes == list(CHARACTERS)
    assert backbone.source_head.out_features == 62 and backbone.preprocessing is PREPROCESSING
    with pytest.warns(UserWarning, match="random weights"):
        build_backbone("glyphnet", weights=None)
    with pytest.raises(TypeError, match="glyphnet weights"):
        build_backbone("glyphnet", weights=3)


def test_sample_rate_indices():
    y = np.repeat(np.arange(4), [10, 20, 3, 1])
    idx = sample_rate_indices(y, 0.15, random_state=0)
    assert np.bincount(y[idx]).tolist() == [2, 3, 1, 1]  # never fewer than one per class
    assert np.array_equal(idx, sample_rate_indices(y, 0.15, random_state=0))
    assert not np.array_equal(idx, sample_rate_indices(y, 0.5, random_state=1))
    assert len(sample_rate_indices(y, 1.0)) == len(y)
    with pytest.raises(ValueError, match="rate must be"):
        sample_rate_indices(y, 0)
    with pytest.raises(ValueError, match="rate must be"):
        sample_rate_indices(y, 1.5)
