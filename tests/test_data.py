"""Array inputs: layouts, dtypes and their errors; on-device normalisation."""

import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sk_cotuning.backbones import Preprocessing
from sk_cotuning.inputs.conversion import ArrayDataset, TransformedDataset, as_tensor_input
from sk_cotuning.network import InputNormalization

RGB = Preprocessing()
GLYPH = Preprocessing(mean=(0.5,), std=(0.5,), value_range=16.0, in_channels=1, native_size=(8, 8))


def test_layouts_become_nchw():
    rng = np.random.default_rng(0)
    nchw = rng.random((4, 3, 5, 6)).astype(np.float32)
    assert as_tensor_input(nchw, RGB).shape == (4, 3, 5, 6)
    nhwc = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
    out = as_tensor_input(nhwc, RGB)
    assert out.shape == (4, 3, 5, 6)
    torch.testing.assert_close(out, torch.from_numpy(nchw))
    gray = rng.random((4, 5, 6))
    assert as_tensor_input(gray, RGB).shape == (4, 1, 5, 6)
    u8 = (rng.random((4, 5, 6, 3)) * 255).astype(np.uint8)
    out = as_tensor_input(u8, RGB)
    assert out.dtype == torch.uint8 and out.shape == (4, 3, 5, 6)
    assert as_tensor_input(torch.from_numpy(nchw), RGB).shape == (4, 3, 5, 6)


def test_flat_digits_reshape_to_native_size():
    flat = np.arange(2 * 64, dtype=float).reshape(2, 64) % 17
    out = as_tensor_input(flat, GLYPH)
    assert out.shape == (2, 1, 8, 8)
    torch.testing.assert_close(out[1, 0, 0], torch.tensor(flat[1, :8], dtype=torch.float32))


@pytest.mark.parametrize(
    "X, pre, error, match",
    [
        (np.zeros((0, 3, 4, 4)), RGB, ValueError, "0 sample"),
        (np.zeros((3, 0)), None, ValueError, "0 feature"),
        (np.ones((2, 2), dtype=complex), None, ValueError, "Complex data not supported"),
        (np.array([[1.0, {"a": 1}]], dtype=object), None, TypeError, "non-numeric entries"),
        (np.zeros(5), RGB, ValueError, "Expected 2D array, got 1D"),
        (np.zeros((3, 10)), RGB, ValueError, "expects images"),
        (np.zeros((3, 5, 5, 5)), RGB, ValueError, "channel axis"),
        (np.zeros((2, 3, 4, 4, 1)), RGB, ValueError, "3 or 4 dimensions"),
        (np.full((2, 3, 4, 4), np.nan), RGB, ValueError, "NaN or infinity"),
        (np.full((2, 3, 4, 4), 300.0), RGB, ValueError, r"values up to 300.*above 255"),
        (np.full((2, 64), 20000.0), GLYPH, ValueError, r"above 255"),
        (-np.ones((2, 3, 4, 4)), RGB, ValueError, "mean/std-normalised"),
        (sp.csr_matrix(np.eye(3)), None, TypeError, "Sparse input is not supported"),
        (np.array([["a", "b"]]), RGB, TypeError, "non-numeric"),
        (np.zeros((2, 3, 4, 4), dtype=bool), RGB, TypeError, "real-valued"),
    ],
)
def test_bad_inputs(X, pre, error, match):
    with pytest.raises(error, match=match):
        as_tensor_input(X, pre)


def test_custom_network_inputs_pass_through_as_float32():
    X = np.arange(12, dtype=np.int64).reshape(3, 4) - 5
    out = as_tensor_input(X, None)
    assert out.dtype == torch.float32 and out.shape == (3, 4)


def test_read_only_arrays_are_accepted():
    X = np.zeros((2, 3, 4, 4), dtype=np.float32)
    X.setflags(write=False)
    assert as_tensor_input(X, RGB).shape == (2, 3, 4, 4)


def test_input_normalization():
    norm = InputNormalization(RGB)
    u8 = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)  # gray -> replicated
    out = norm(u8)
    expected = (1.0 - torch.tensor(RGB.mean)) / torch.tensor(RGB.std)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    rgba = torch.zeros(1, 4, 2, 2)
    assert norm(rgba).shape == (1, 3, 2, 2)
    glyph = InputNormalization(GLYPH)
    out = glyph(torch.full((1, 1, 2, 2), 16.0))
    torch.testing.assert_close(out, torch.ones(1, 1, 2, 2))  # (1 - 0.5) / 0.5
    assert glyph(torch.zeros(1, 3, 2, 2)).shape == (1, 1, 2, 2)


def test_datasets():
    ds = ArrayDataset(torch.arange(6.0).reshape(3, 2), np.array([2, 0, 1]))
    assert len(ds) == 3
    x, y = ds[1]
    assert x.tolist() == [2.0, 3.0] and int(y) == 0
    assert ArrayDataset(torch.zeros(2, 2))[0][1] == 0
    doubled = TransformedDataset(ds, lambda x: 2 * x)
    assert doubled[2][0].tolist() == [8.0, 10.0] and len(doubled) == 3


@pytest.mark.parametrize(
    "X, pre, expected, warns",
    [
        # the model's declared range and the data's actual range decide, never the dtype alone
        (np.full((2, 3, 4, 4), 0.5), RGB, 0.5, None),
        (np.full((2, 3, 4, 4), 200, dtype=np.uint8), RGB, 200, None),  # uint8, scaled on device
        (np.full((2, 3, 4, 4), 128.0), RGB, 128 / 255, "read as intensities in \\[0, 255\\]"),
        (np.full((2, 64), 8, dtype=np.uint8), GLYPH, 8.0, None),  # uint8 digits are 0..16
        (np.full((2, 64), 8.0), GLYPH, 8.0, None),
        (np.full((2, 64), 0.5), GLYPH, 8.0, "read as intensities in \\[0, 1\\]"),
        (np.full((2, 64), 128, dtype=np.uint8), GLYPH, 128, None),  # 0..255 images
        (np.full((2, 64), 128.0), GLYPH, 128 * 16 / 255, "in \\[0, 255\\]"),
        (np.ones((2, 3, 4, 4), dtype=np.uint8), RGB, 1, "almost black"),
    ],
)
def test_scale_is_decided_by_model_and_data_range(X, pre, expected, warns):
    import warnings as _warnings

    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        t = as_tensor_input(X, pre)
    messages = [str(w.message) for w in caught]
    if warns is None:
        assert not messages
    else:
        assert any(re.search(warns, m) for m in messages), messages
    assert float(t.flatten()[0]) == pytest.approx(expected, rel=1e-6)
