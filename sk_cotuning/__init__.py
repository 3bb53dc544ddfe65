"""sk-cotuning: Co-Tuning transfer learning, the scikit-learn way.

Public API
----------
FineTuningClassifier
    Fine-tunes a pre-trained backbone (a skorch classifier) with an optional
    regulariser from :mod:`sk_cotuning.regularization`.
CoTuningClassifier
    FineTuningClassifier with Co-Tuning.
CategoryRelationship
    Learns ``p(source class | target class)`` from a source model's outputs.
CoTuning, CoTuningLoss, Regularizer, LossTerm
    The Co-Tuning regulariser, its soft-target loss, the regulariser base class
    and the named loss term a regulariser returns.
leep_score, logme_score, nce_score, h_score, regularized_h_score
    Transferability scores of a pre-trained model for a target task
    (:mod:`sk_cotuning.transferability`).
rank_backbones
    Score candidate backbones on the target data before fine-tuning any.
available_backbones
    The names accepted as ``backbone=``.
load_image_folder, sample_rate_indices
    ``root/<class>/<image>`` trees as (paths, labels); a stratified
    sampling-rate subset.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562), so that ``python -m sk_cotuning --help`` and
# ``import sk_cotuning`` do not pay for torch until an estimator is needed.
_PUBLIC = {
    "CategoryRelationship": "sk_cotuning.relationship",
    "CoTuning": "sk_cotuning.regularization",
    "CoTuningClassifier": "sk_cotuning.co_tuning",
    "CoTuningLoss": "sk_cotuning.regularization",
    "FineTuningClassifier": "sk_cotuning.fine_tuning",
    "LossTerm": "sk_cotuning.regularization",
    "Regularizer": "sk_cotuning.regularization",
    "available_backbones": "sk_cotuning.backbones",
    "h_score": "sk_cotuning.transferability",
    "leep_score": "sk_cotuning.transferability",
    "load_image_folder": "sk_cotuning.datasets",
    "logme_score": "sk_cotuning.transferability",
    "nce_score": "sk_cotuning.transferability",
    "rank_backbones": "sk_cotuning.ranking",
    "regularized_h_score": "sk_cotuning.transferability",
    "sample_rate_indices": "sk_cotuning.datasets",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'sk_cotuning' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


__all__ = [
    "CategoryRelationship",
    "CoTuning",
    "CoTuningClassifier",
    "CoTuningLoss",
    "FineTuningClassifier",
    "LossTerm",
    "Regularizer",
    "available_backbones",
    "h_score",
    "leep_score",
    "load_image_folder",
    "logme_score",
    "nce_score",
    "rank_backbones",
    "regularized_h_score",
    "sample_rate_indices",
]
__version__ = "0.1.0"
