"""What a scikit-learn or skorch user expects of the estimators' surface."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

import sk_cotuning
from sk_cotuning import CoTuningClassifier, FineTuningClassifier

FAST = dict(max_epochs=2, batch_size=16, lr=0.05, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:80], y[:80]


def test_repr_of_an_unfitted_estimator_shows_the_parameters_set():
    assert repr(CoTuningClassifier()) == "CoTuningClassifier()"
    assert repr(CoTuningClassifier("glyphnet", trade_off=1.0, max_epochs=3)) == (
        "CoTuningClassifier(backbone='glyphnet', max_epochs=3, trade_off=1.0)")
    assert repr(FineTuningClassifier("resnet18", regularizer=["co_tuning", "bss"],
                                     regularizer__bss__k=2)) == (
        "FineTuningClassifier(backbone='resnet18', regularizer=['co_tuning', 'bss'], "
        "regularizer__bss__k=2)")


@pytest.mark.parametrize("as_", [list, tuple, lambda y: [int(v) for v in y],
                                 lambda y: [str(v) for v in y]])
def test_every_array_like_y_fits(digits, as_):
    X, y = digits
    clf = CoTuningClassifier("glyphnet", **FAST).fit(X, as_(y))  # list of numpy scalars too
    assert clf.predict(X[:5]).shape == (5,) and len(clf.classes_) == 10
    clf.partial_fit(X, as_(y))


def test_a_column_vector_y_warns_once_and_fits(digits):
    from sklearn.exceptions import DataConversionWarning

    X, y = digits
    with pytest.warns(DataConversionWarning) as record:
        clf = CoTuningClassifier("glyphnet", **FAST).fit(X, y.reshape(-1, 1))
    conversions = [w for w in record if issubclass(w.category, DataConversionWarning)]
    assert len(conversions) == 1  # scikit-learn's one warning, not one per check
    assert clf.classes_.tolist() == list(range(10))
    with pytest.warns(DataConversionWarning) as record:
        clf.partial_fit(X, y.reshape(-1, 1).tolist())
    assert sum(issubclass(w.category, DataConversionWarning) for w in record) == 1


def test_the_log_columns_stay_in_place_and_name_the_backbone_rate(digits, capsys):
    X, y = digits
    CoTuningClassifier("glyphnet", **{**FAST, "verbose": 1, "max_epochs": 3}).fit(X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    header = lines[lines.index(next(line for line in lines if "epoch" in line))].split()
    assert "prepare_dur" not in header and "backbone_lr" in header and "lr" not in header
    rows = [line.split() for line in lines if line.split()[0] in ("1", "2", "3")]
    assert len(rows) == 3 and {len(r) for r in rows} == {len(header)}


def test_loss_term_is_public():
    from sk_cotuning.regularization import LossTerm

    assert sk_cotuning.LossTerm is LossTerm and "LossTerm" in sk_cotuning.__all__
    assert "LossTerm" in dir(sk_cotuning)


def test_amp_fp16_is_not_a_value_and_says_where_it_lives(digits):
    X, y = digits
    with pytest.raises(ValueError, match="amp='fp16' needs a gradient scaler.*AccelerateMixin"):
        CoTuningClassifier("glyphnet", amp="fp16", **FAST).fit(X, y)
    assert "fp16" not in str(FineTuningClassifier._parameter_constraints["amp"])


def test_the_test_suite_collects_without_the_benchmark_extras():
    # the README's install line is .[tests]; the notebooks' nbformat/nbclient come with
    # .[benchmarks]: importing the benchmark helpers must not need them
    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    code = ("import sys; sys.modules['nbformat'] = None; sys.modules['nbclient'] = None; "
            f"sys.path.insert(0, {str(benchmarks)!r}); import run_notebooks; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("params", [{"regularizer": "bss"}, {"regularizer__trade_off": 5}])
def test_co_tuning_classifier_rejects_a_regularizer_at_once(params):
    message = "fixed to Co-Tuning.*FineTuningClassifier\\(regularizer=\\[\"co_tuning\", \"bss\"\\]\\)"
    with pytest.raises(TypeError, match=message):
        CoTuningClassifier("glyphnet", **params)
    with pytest.raises(ValueError, match=message):
        CoTuningClassifier("glyphnet").set_params(**params)


def test_setting_the_regularizer_on_a_fitted_net_takes_effect_at_the_next_fit(digits):
    X, y = digits
    clf = FineTuningClassifier("glyphnet", **FAST).fit(X, y)
    clf.set_params(regularizer="bss")  # skorch raised "Something went wrong" here
    assert clf.regularizer == "bss" and clf.regularizer_ is None  # the built net is unchanged
    with pytest.raises(ValueError, match="built with none.*Call fit"):
        clf.partial_fit(X, y)
    clf.fit(X, y)
    assert type(clf.regularizer_).__name__ == "BSS" and "bss_loss" in clf.history[-1]
    # a weight on the live regulariser applies at once
    clf.set_params(regularizer__trade_off=0.5)
    assert clf.regularizer_.trade_off == 0.5
    clf.partial_fit(X, y)


def test_module_valued_parameters_can_be_assigned_as_attributes(digits):
    # sklearn users write est.param = value as often as set_params; skorch's
    # __setattr__ used to take a module assigned so for a component and raise
    from torch import nn
    from torchvision.transforms import v2

    from sk_cotuning.regularization import L2SP

    X, y = digits
    clf = FineTuningClassifier("glyphnet", weights=None, **FAST)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    clf.backbone = mlp
    clf.regularizer = L2SP(alpha=0.02)
    clf.eval_transform = v2.Identity()
    clf.fit(X, y)
    assert clf.regularizer_.alpha == 0.02 and clf._modules == ["module"]
    assert clf.get_params()["backbone"] is mlp
    clf.train_transform = nn.Identity()  # on the fitted net too, for the next fit
    clf.regularizer = None
    assert clf.fit(X, y).regularizer_ is None and clf.predict(X).shape == y.shape


@pytest.mark.parametrize("key", ["backbone__width", "train_transform__p", "eval_transform__p"])
def test_nested_keys_of_a_module_valued_parameter_are_refused(digits, key):
    X, y = digits
    clf = FineTuningClassifier("glyphnet", **FAST, **{key: 2})
    with pytest.raises(ValueError, match=f"{key}: {key.split('__')[0]} takes no nested"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")  # refused before anything was built


def test_predict_log_proba_is_the_log_of_predict_proba(digits):
    X, y = digits
    clf = CoTuningClassifier("glyphnet", **FAST).fit(X, y)
    proba = clf.predict_proba(X[:5])
    log_proba = clf.predict_log_proba(X[:5])
    assert log_proba.shape == (5, len(clf.classes_))
    np.testing.assert_allclose(np.exp(log_proba), proba, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[log_proba.argmax(1)], clf.predict(X[:5]))


def test_one_name_and_one_default_per_concept(digits):
    import inspect

    from sk_cotuning import CoTuning

    co, clf = inspect.signature(CoTuning).parameters, inspect.signature(CoTuningClassifier).parameters
    for name in ("trade_off", "soft_target_temperature"):
        assert co[name].default == clf[name].default, name
    X, y = digits
    via_slot = FineTuningClassifier("glyphnet", regularizer="co_tuning",
                                    regularizer__soft_target_temperature=2.0, **FAST).fit(X, y)
    direct = CoTuningClassifier("glyphnet", soft_target_temperature=2.0, **FAST).fit(X, y)
    assert float(via_slot.regularizer_.fitted_temperature) == float(direct.regularizer_.fitted_temperature) == 2.0
    np.testing.assert_allclose(via_slot.predict_proba(X), direct.predict_proba(X), atol=1e-6)
    # on a fitted net, the temperature applies at once, as trade_off does
    direct.set_params(soft_target_temperature=3.0, trade_off=1.0)
    reg = direct.regularizer_
    assert float(reg.fitted_temperature) == 3.0 and reg.trade_off == 1.0


def test_the_estimator_tags_say_what_it_takes():
    # scikit-learn's defaults, which the estimators rely on (no override of their own):
    # no NaN, no sparse input, one label per sample
    from sklearn.utils import get_tags

    from sk_cotuning import CategoryRelationship

    tags = get_tags(CoTuningClassifier("glyphnet"))
    assert tags.estimator_type == "classifier" and tags.requires_fit
    assert not tags.input_tags.allow_nan and not tags.input_tags.sparse
    assert not tags.classifier_tags.multi_label and tags.target_tags.required
    relationship = get_tags(CategoryRelationship())
    assert not relationship.input_tags.allow_nan and relationship.target_tags.required


def test_parameters_from_another_regularizer_do_not_fit_and_say_so(digits, tmp_path):
    X, y = digits
    clf = CoTuningClassifier("glyphnet", **FAST).fit(X, y)
    clf.save_params(f_params=tmp_path / "p.pt")
    plain = FineTuningClassifier("glyphnet", classes=clf.classes_, **FAST).initialize()
    with pytest.raises(ValueError, match="Unexpected key.*regularizer.*classes="):
        plain.load_params(f_params=tmp_path / "p.pt")
    # the same network loads them, directly on the module as through skorch
    other = CoTuningClassifier("glyphnet", classes=clf.classes_, **FAST).initialize()
    other.module_.load_state_dict(clf.module_.state_dict())
    np.testing.assert_array_equal(other.predict(X), clf.predict(X))
