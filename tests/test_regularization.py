"""The regulariser slot: FineTuningClassifier + regularization/, and the documented example."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sk_cotuning import CoTuning, CoTuningClassifier, FineTuningClassifier, Regularizer
from sk_cotuning.network import NetworkOutput
from sk_cotuning.regularization import LossTerm, make_regularizer

PARAMS = dict(max_epochs=3, batch_size=16, lr=0.05, verbose=0, random_state=0)


class FeatureNorm(Regularizer):
    """The example of docs/user_guide/regularizers.rst, verbatim."""

    terms = ("feature_norm",)
    needs = frozenset({"features"})

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = alpha
        self.register_buffer("reference", torch.zeros(()))

    def prepare(self, net, dataset):
        features, _ = net.collect_outputs(dataset, "features")
        self.reference.fill_(float(np.linalg.norm(features, axis=1).mean()))

    def forward(self, outputs, y):
        norm = outputs.features.float().norm(dim=1).mean()
        return [LossTerm("feature_norm", (norm - self.reference) ** 2, self.alpha)]


def test_documented_example_regularizer(tiny_backbone, image_data):
    X, y = image_data
    clf = FineTuningClassifier(tiny_backbone, regularizer=FeatureNorm(),
                               regularizer__alpha=0.05, **PARAMS).fit(X, y)
    assert clf.regularizer_.alpha == 0.05 and float(clf.regularizer_.reference) > 0
    for row in clf.history:
        assert row["train_loss"] == pytest.approx(
            row["target_loss"] + 0.05 * row["feature_norm_loss"], rel=1e-5)
    # the prepared reference is the pre-trained network's mean feature norm
    fresh = FineTuningClassifier(tiny_backbone, max_epochs=0, **{k: v for k, v in PARAMS.items()
                                                                if k != "max_epochs"}).fit(X, y)
    features, _ = fresh.collect_outputs(X, "features")
    assert float(clf.regularizer_.reference) == pytest.approx(
        np.linalg.norm(features, axis=1).mean(), rel=1e-5)
    # features-only: the source head is neither evaluated nor trained
    assert clf.module_(torch.as_tensor(X[:2])).source.shape == (2, 0)


def test_named_co_tuning_equals_co_tuning_classifier(tiny_backbone, image_data):
    X, y = image_data
    generic = FineTuningClassifier(tiny_backbone, regularizer="co_tuning",
                                   regularizer__trade_off=1.5, **PARAMS).fit(X, y)
    special = CoTuningClassifier(tiny_backbone, trade_off=1.5, **PARAMS).fit(X, y)
    np.testing.assert_array_equal(generic.predict_proba(X), special.predict_proba(X))
    np.testing.assert_array_equal(generic.history[:, "cotuning_loss"],
                                  special.history[:, "cotuning_loss"])


def test_plain_fine_tuning_equals_trade_off_zero(tiny_backbone, image_data):
    X, y = image_data
    plain = FineTuningClassifier(tiny_backbone, **PARAMS).fit(X, y)
    zero = CoTuningClassifier(tiny_backbone, trade_off=0, **PARAMS).fit(X, y)
    np.testing.assert_array_equal(plain.predict_proba(X), zero.predict_proba(X))
    assert plain.regularizer_ is None and "cotuning_loss" not in plain.history[-1]
    assert zero.relationship_ is None and all(r["cotuning_loss"] == 0 for r in zero.history)


def test_co_tuning_terms_match_the_formula():
    torch.manual_seed(0)
    reg = CoTuning(trade_off=0.7)
    reg.bind(n_classes=3, n_source=5, n_features=4)
    reg.soft_targets.copy_(torch.softmax(torch.randn(3, 5), 1))
    source, y = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])
    (term,) = reg(NetworkOutput((torch.randn(8, 3), source, torch.randn(8, 4))), y)
    expected = -(reg.soft_targets[y] * torch.log_softmax(source, 1)).sum(1).mean()
    assert term.name == "cotuning" and term.weight == 0.7
    torch.testing.assert_close(term.value, expected)


def test_regularizer_params_are_sklearn_params(tiny_backbone, image_data):
    X, y = image_data
    clf = FineTuningClassifier(tiny_backbone, regularizer=CoTuning(trade_off=1.0), **PARAMS)
    params = clf.get_params()
    assert params["regularizer"].trade_off == 1.0 and params["regularizer__trade_off"] == 1.0
    cloned = clone(clf)
    assert cloned.regularizer is not clf.regularizer and cloned.regularizer.trade_off == 1.0
    grid = GridSearchCV(
        FineTuningClassifier(tiny_backbone, regularizer="co_tuning", **PARAMS),
        {"regularizer__trade_off": [0.5, 2.0]}, cv=2,
    ).fit(X, y)
    assert grid.best_estimator_.regularizer_.trade_off == grid.best_params_["regularizer__trade_off"]
    # over the slot itself: plain fine-tuning vs Co-Tuning
    grid = GridSearchCV(FineTuningClassifier(tiny_backbone, **PARAMS),
                        {"regularizer": [None, "co_tuning"]}, cv=2).fit(X, y)
    scores = grid.cv_results_["mean_test_score"]
    assert grid.best_params_ == grid.cv_results_["params"][int(np.argmax(scores))]
    assert type(grid.best_estimator_.regularizer_).__name__ == (
        "NoneType" if grid.best_params_["regularizer"] is None else "CoTuning")
    # on a fitted net, regularizer__<param> updates the live regulariser
    fitted = FineTuningClassifier(tiny_backbone, regularizer="co_tuning", **PARAMS).fit(X, y)
    fitted.set_params(regularizer__trade_off=3.0)
    assert fitted.regularizer_.trade_off == 3.0


def test_the_instance_passed_is_never_modified(tiny_backbone, image_data):
    X, y = image_data
    reg = CoTuning(trade_off=1.0)
    clf = FineTuningClassifier(tiny_backbone, regularizer=reg, **PARAMS).fit(X, y)
    assert clf.regularizer_ is not reg and not bool(reg.prepared)
    assert reg.soft_targets.shape == (0, 0) and not hasattr(reg, "relationship_")


@pytest.mark.parametrize(
    "spec, params, error, match",
    [
        ("l2_spp", {}, ValueError, "'regularizer' parameter"),
        (42, {}, ValueError, "'regularizer' parameter"),
        ("co_tuning", {"gamma": 1}, ValueError, "Invalid parameter 'gamma'.*trade_off"),
        (None, {"trade_off": 1}, ValueError, "regularizer=None"),
    ],
)
def test_bad_regularizer(tiny_backbone, image_data, spec, params, error, match):
    X, y = image_data
    kwargs = {f"regularizer__{k}": v for k, v in params.items()}
    with pytest.raises(error, match=match):
        FineTuningClassifier(tiny_backbone, regularizer=spec, **kwargs, **PARAMS).fit(X, y)


def test_make_regularizer_errors():
    with pytest.raises(ValueError, match="Unknown regularizer 'bsss'"):
        make_regularizer("bsss", {})
    with pytest.raises(TypeError, match="Regularizer instance"):
        make_regularizer(object(), {})
    with pytest.raises(TypeError, match="'relationship' parameter of CoTuning must be an object implementing 'fit' and 'soft_targets'"):
        make_regularizer("co_tuning", {"relationship": 3})
    with pytest.raises(ValueError, match="relationship__method='direct'"):  # a method's name
        make_regularizer("co_tuning", {"relationship": "direct"})


def test_over_confident_source_head_does_not_collapse_co_tuning():
    """The glyph model with its feature layer scaled x4: a source head over-confident on
    the target data. With the paper's loss (temperature 1), the backbone at the full
    rate and no gradient clipping, the first steps drive the penultimate ReLU units dead
    and Co-Tuning collapses far below plain fine-tuning. Either rescue prevents it: the
    estimator's default gradient-norm clipping, or a fitted soft-target temperature."""
    from sklearn.datasets import load_digits

    from sk_cotuning.backbones.glyphnet import WEIGHTS_FILE

    state = torch.load(WEIGHTS_FILE, weights_only=True)
    for key in ("features.12.weight", "features.12.bias"):  # Linear(512, 128) before the ReLU
        state[key] = state[key] * 4
    X, y = load_digits(return_X_y=True)
    train, test = np.arange(0, 1797, 20), np.arange(1, 1797, 3)  # 90 training images
    params = dict(weights=state, lr=0.02, backbone_lr_mult=1.0, max_epochs=20, batch_size=16,
                  verbose=0, random_state=0)
    scores = {}
    for name, kwargs in (("fine-tuning", dict(trade_off=0)),
                         ("paper loss, unclipped", dict(soft_target_temperature=1.0,
                                                        max_grad_norm=None)),
                         ("paper loss, clipped", dict(soft_target_temperature=1.0)),
                         ("fitted temperature, unclipped", dict(soft_target_temperature="auto",
                                                                max_grad_norm=None))):
        clf = CoTuningClassifier("glyphnet", **params, **kwargs).fit(X[train], y[train])
        features, _ = clf.collect_outputs(X[train], "features")
        scores[name] = (clf.score(X[test], y[test]), np.linalg.norm(features, axis=1).mean())
        if name.startswith("fitted"):
            assert float(clf.regularizer_.fitted_temperature) > 2  # it sees the over-confidence
    ft, collapsed = scores["fine-tuning"], scores["paper loss, unclipped"]
    assert collapsed[0] < ft[0] - 0.2  # the collapse, reproduced
    for rescued in ("paper loss, clipped", "fitted temperature, unclipped"):
        assert scores[rescued][0] > ft[0] - 0.1, rescued
        assert scores[rescued][1] > 2 * collapsed[1], rescued  # features stay alive


def test_soft_target_temperature_is_fitted_and_saved(tiny_backbone, image_data, tmp_path):
    X, y = image_data
    clf = CoTuningClassifier(tiny_backbone, **PARAMS).fit(X, y)
    reg = clf.regularizer_
    logits, codes = CoTuningClassifier(tiny_backbone, max_epochs=0, verbose=0, batch_size=16,
                                       random_state=0).fit(X, y).collect_outputs(X, "source")
    q = reg.soft_targets[torch.as_tensor(codes)]
    losses = [float(reg.loss(torch.as_tensor(logits) / t, q)) for t in reg.TEMPERATURES]
    assert float(reg.fitted_temperature) == pytest.approx(reg.TEMPERATURES[int(np.argmin(losses))])
    fixed = CoTuningClassifier(tiny_backbone, soft_target_temperature=1.0, **PARAMS).fit(X, y)
    assert float(fixed.regularizer_.fitted_temperature) == 1.0
    clf.save_params(f_params=tmp_path / "p.pt")
    restored = CoTuningClassifier(tiny_backbone, classes=list(clf.classes_), **PARAMS).initialize()
    restored.load_params(f_params=tmp_path / "p.pt")
    assert float(restored.regularizer_.fitted_temperature) == float(reg.fitted_temperature)
    with pytest.raises(ValueError, match="soft_target_temperature"):
        CoTuningClassifier(tiny_backbone, soft_target_temperature=0, **PARAMS).fit(X, y)
