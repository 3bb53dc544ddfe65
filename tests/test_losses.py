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


@pytest.mark.parametrize("logits, q, match", [
    (torch.zeros(3), torch.full((3,), 1 / 3), "same shape"),  # 1-D: was an IndexError
    (torch.zeros(2, 3), torch.tensor([0, 1]), "for labels, index the relationship"),
    (torch.zeros(0, 3), torch.zeros(0, 3), "empty"),  # was NaN
    (torch.zeros(2, 3), torch.ones(2, 3), "row 0 has minimum 1 and sums to 3"),  # was 3.30
    (torch.zeros(2, 3), torch.tensor([[1.5, -0.5, 0.0], [1.0, 0.0, 0.0]]), "1 of 2 row"),
    (torch.zeros(2, 3), torch.tensor([[float("nan"), 0.5, 0.5], [1.0, 0.0, 0.0]]), "row 0"),
])
def test_bad_inputs_are_clear_errors_not_numbers(logits, q, match):
    with pytest.raises(ValueError, match=match):
        CoTuningLoss()(logits, q)


def test_the_target_check_allows_low_precision_rows_and_can_be_turned_off():
    q = torch.softmax(torch.randn(8, 50), 1)
    CoTuningLoss()(torch.randn(8, 50), q.bfloat16())  # rows sum to 1 within bf16 rounding
    unchecked = CoTuningLoss(check_targets=False)(torch.zeros(1, 2), torch.tensor([[2.0, 0.0]]))
    assert unchecked.item() == pytest.approx(2 * math.log(2), rel=1e-6)
