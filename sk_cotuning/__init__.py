"""sk-cotuning: Co-Tuning transfer learning, the scikit-learn way.

Public API
----------
CategoryRelationship
    Learns ``p(source class | target class)`` from a source model's outputs.
leep_score
    The LEEP transferability score of a source model for a target task.
"""

from sk_cotuning.relationship import CategoryRelationship, leep_score

__all__ = ["CategoryRelationship", "leep_score"]
__version__ = "0.1.0"
