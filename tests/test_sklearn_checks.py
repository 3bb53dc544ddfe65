"""scikit-learn's estimator checks on every public estimator, small configurations."""

from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from sk_cotuning import CategoryRelationship, CoTuningClassifier, FineTuningClassifier
from sk_cotuning.backbones import Backbone


def tiny_mlp():
    """A tabular 'pre-trained' network: sklearn's checks feed 2-D arrays of any width.

    A factory (a module-level function) keeps the parameter hashable: a module
    instance hashes differently from its deepcopy, which
    check_estimators_overwrite_params compares.
    """
    features = nn.Sequential(nn.LazyLinear(16), nn.ReLU())
    return Backbone(features, nn.Linear(16, 5), None, None, False, "tiny-mlp")


SMALL = dict(lr=0.1, backbone_lr_mult=1.0, max_epochs=20, batch_size=32, verbose=0, random_state=0)

EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_, virtual_params_, "
        "prefixes_ and cuda_dependent_attributes_ by design, and keeps extra skorch "
        "parameters (iterator_train__shuffle) as attributes"
    ),
}


def expected_failed(estimator):
    return EXPECTED_FAILED_CHECKS if not isinstance(estimator, CategoryRelationship) else {}


@parametrize_with_checks(
    [
        CoTuningClassifier(tiny_mlp, trade_off=0.5, **SMALL),
        FineTuningClassifier(tiny_mlp, **SMALL),
        FineTuningClassifier(tiny_mlp, regularizer="co_tuning", regularizer__trade_off=0.5, **SMALL),
    ],
    expected_failed_checks=expected_failed,
)
def test_sklearn_checks(estimator, check):
    check(estimator)
