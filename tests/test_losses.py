import math

import pytest
import torch

from sk_cotuning import CoTuningLoss


def test_hand_computed_value():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    q = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    z = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    first = -(0.2 * (1 - z) + 0.3 * (2 - z) + 0.5 * (3 - z))
    second = math.log(3)
    assert CoTuningLoss()(logits, q).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_zero_targets_contribute_nothing_even_against_minus_inf():
    logits = torch.tensor([[0.0, -float("inf")]])
    q = torch.tensor([[1.0, 0.0]])
    loss = CoTuningLoss()(logits, q)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0)


def test_gradient_is_softmax_minus_target():
    logits = torch.tensor([[0.5, -0.5, 1.0]], requires_grad=True)
    q = torch.tensor([[0.1, 0.1, 0.8]])
    CoTuningLoss()(logits, q).backward()
    torch.testing.assert_close(logits.grad, torch.softmax(logits.detach(), 1) - q)


def test_float32_under_autocast():
    logits = torch.randn(4, 7)
    q = torch.softmax(torch.randn(4, 7), 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = CoTuningLoss()(logits.bfloat16(), q)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(CoTuningLoss()(logits, q).item(), rel=2e-2)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        CoTuningLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
