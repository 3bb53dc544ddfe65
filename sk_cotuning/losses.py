"""The Co-Tuning soft-target loss (torch only, stateless)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CoTuningLoss"]


class CoTuningLoss(nn.Module):
    """Soft cross-entropy of the source head against the relationship's rows.

    The second term of the Co-Tuning objective (You et al., "Co-Tuning for
    Transfer Learning", NeurIPS 2020, Eq. 5)::

        loss = mean_i  -sum_s soft_targets[i, s] * log_softmax(source_logits[i])[s]

    where ``soft_targets[i] = p(source class | y_i)`` is the row of the
    category relationship for the sample's target label.

    Notes
    -----
    - ``source_logits``: ``(N, S)``, the source head's logits, any float
      dtype (computed in float32, so the loss is correct under autocast).
    - ``soft_targets``: ``(N, S)``, non-negative rows that sum to one; zeros
      are allowed and contribute exactly zero, even where the matching
      log-probability is ``-inf``.
    - output: a scalar tensor (the batch mean).

    Examples
    --------
    >>> import torch
    >>> loss = CoTuningLoss()
    >>> logits = torch.tensor([[0.0, 0.0]])
    >>> float(loss(logits, torch.tensor([[1.0, 0.0]])))  # -log(1/2)
    0.6931471824645996
    """

    def forward(self, source_logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
        if source_logits.shape != soft_targets.shape:
            raise ValueError(
                f"source_logits {tuple(source_logits.shape)} and soft_targets "
                f"{tuple(soft_targets.shape)} must have the same shape (N, n_source)."
            )
        log_p = F.log_softmax(source_logits.float(), dim=1)
        q = soft_targets.to(log_p.dtype)
        # where q == 0 the term is 0 by definition, also if log_p is -inf
        terms = torch.where(q > 0, q * log_p, torch.zeros_like(log_p))
        return -terms.sum(dim=1).mean()
