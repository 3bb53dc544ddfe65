"""sk-cotuning: Co-Tuning transfer learning, the scikit-learn way.

Public API
----------
CoTuningClassifier
    Fine-tunes a pre-trained backbone with Co-Tuning (a skorch classifier).
CategoryRelationship
    Learns ``p(source class | target class)`` from a source model's outputs.
CoTuningLoss
    The soft-target loss of the source head (a torch module).
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
from sk_cotuning.losses import CoTuningLoss
from sk_cotuning.relationship import CategoryRelationship, leep_score

__all__ = [
    "CategoryRelationship",
    "CoTuningClassifier",
    "CoTuningLoss",
    "available_backbones",
    "leep_score",
    "load_image_folder",
    "sample_rate_indices",
]
__version__ = "0.1.0"
