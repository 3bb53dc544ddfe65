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
CoTuning, CoTuningLoss, Regularizer
    The Co-Tuning regulariser, its soft-target loss, and the regulariser base class.
leep_score
    The LEEP transferability score of a source model for a target task.
available_backbones
    The names accepted as ``backbone=``.
load_image_folder, sample_rate_indices
    ``root/<class>/<image>`` trees as (paths, labels); a stratified
    sampling-rate subset.
"""

from sk_cotuning.backbones import available_backbones
from sk_cotuning.classifier import CoTuningClassifier
from sk_cotuning.datasets import load_image_folder, sample_rate_indices
from sk_cotuning.net import FineTuningClassifier
from sk_cotuning.regularization import CoTuning, CoTuningLoss, Regularizer
from sk_cotuning.relationship import CategoryRelationship, leep_score

__all__ = [
    "CategoryRelationship",
    "CoTuning",
    "CoTuningClassifier",
    "CoTuningLoss",
    "FineTuningClassifier",
    "Regularizer",
    "available_backbones",
    "leep_score",
    "load_image_folder",
    "sample_rate_indices",
]
__version__ = "0.1.0"
