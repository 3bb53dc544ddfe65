"""CoTuningClassifier: the estimator contract, the loss, the optimiser, persistence."""

import copy
import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from skorch.dataset import ValidSplit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sk_cotuning import CategoryRelationship, CoTuningClassifier



def make_clf(backbone, **kwargs):
    params = dict(max_epochs=3, batch_size=16, lr=0.05, verbose=0, random_state=0)
    params.update(kwargs)
    return CoTuningClassifier(backbone, **params)


def test_fit_predict_proba_and_labels(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone).fit(X, y)
    assert clf.classes_.tolist() == ["cat", "dog", "eel"]
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    pred = clf.predict(X)
    assert set(pred) <= {"cat", "dog", "eel"}
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(1)])
    assert clf.score(X, y) == np.mean(pred == y)
    R = clf.relationship_.relationship_
    assert R.shape == (3, 6)
    np.testing.assert_allclose(R.sum(1), 1)
    np.testing.assert_allclose(clf.regularizer_.soft_targets.numpy(), R, rtol=1e-6)
    assert np.isfinite(clf.leep_) and clf.leep_ < 0
    assert clf.source_classes_ is None


def test_forward_returns_target_first_in_train_and_eval(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, max_epochs=1).fit(X, y)
    x = torch.as_tensor(X[:4])
    for mode in (True, False):
        clf.module_.train(mode)
        target, source, features = clf.module_(x)
        assert target.shape == (4, 3) and source.shape == (4, 6) and features.shape == (4, 8)


def test_history_records_both_loss_terms(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, trade_off=1.7).fit(X, y)
    for row in clf.history:
        assert row["train_loss"] == pytest.approx(
            row["target_loss"] + 1.7 * row["cotuning_loss"], rel=1e-5
        )
        assert row["cotuning_loss"] > 0


def test_loss_matches_hand_computation(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, max_epochs=1, trade_off=0.5).fit(X, y)
    codes = np.searchsorted(clf.classes_, y[:8])
    with torch.no_grad():
        clf.module_.eval()
        target, source, features = clf.module_(torch.as_tensor(X[:8]))
        loss = clf.get_loss((target, source, features), codes, training=True)
        valid_loss = clf.get_loss((target, source, features), codes, training=False)
    R = torch.as_tensor(clf.relationship_.soft_targets(y[:8]), dtype=torch.float32)
    ce = torch.nn.functional.cross_entropy(target, torch.as_tensor(codes))
    soft = -(R * torch.log_softmax(source, 1)).sum(1).mean()
    assert loss.item() == pytest.approx((ce + 0.5 * soft).item(), rel=1e-5)
    # on validation batches the loss is the target criterion alone
    assert valid_loss.item() == pytest.approx(ce.item(), rel=1e-5)


def test_learning_rate_groups(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, lr=0.2, backbone_lr_mult=0.25, lr_schedule=None).fit(X, y)
    body, head = clf.optimizer_.param_groups
    assert body["lr"] == pytest.approx(0.05) and head["lr"] == pytest.approx(0.2)
    names = {id(p): n for n, p in clf.module_.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in head["params"]} == {"target_head"}
    assert {names[id(p)].split(".")[0] for p in body["params"]} == {"features", "source_head"}
    assert body["momentum"] == 0.9 and body["nesterov"] and body["weight_decay"] == 5e-4
    # plain fine-tuning does not train (or decay) the unused source head
    clf0 = make_clf(tiny_backbone, trade_off=0).fit(X, y)
    trained = {names_ for group in clf0.optimizer_.param_groups for names_ in map(id, group["params"])}
    assert id(clf0.module_.source_head.weight) not in trained
    # set_params(lr=...) rescales every group
    clf.set_params(lr=0.4)
    assert [g["lr"] for g in clf.optimizer_.param_groups] == pytest.approx([0.1, 0.4])


def test_schedules_decay(tiny_backbone, image_data):
    X, y = image_data
    cos = make_clf(tiny_backbone, max_epochs=4).fit(X, y)
    assert cos.optimizer_.param_groups[1]["lr"] == pytest.approx(0.0, abs=1e-12)
    step = make_clf(tiny_backbone, max_epochs=3, lr_schedule="step").fit(X, y)
    assert step.optimizer_.param_groups[1]["lr"] == pytest.approx(0.005)


def test_trade_off_zero_is_plain_fine_tuning_step_for_step(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, trade_off=0, max_epochs=2).fit(X, y)
    assert clf.relationship_ is None and clf.leep_ is None
    assert all(row["cotuning_loss"] == 0 for row in clf.history)

    # a hand-written PyTorch fine-tuning loop with the same seed and settings
    codes = torch.as_tensor(np.searchsorted(clf.classes_, y))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        features = copy.deepcopy(tiny_backbone)
        features.fc = nn.Identity()
        head = nn.Linear(8, 3)
        opt = torch.optim.SGD(
            [{"params": features.parameters(), "lr": 0.005}, {"params": head.parameters(), "lr": 0.05}],
            lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)
        loader = DataLoader(TensorDataset(torch.as_tensor(X), codes), batch_size=16, shuffle=True)
        for _ in range(2):
            features.train()
            for xb, yb in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(head(features(xb)), yb).backward()
                opt.step()
            sched.step()
    torch.testing.assert_close(clf.module_.target_head.weight, head.weight)
    torch.testing.assert_close(clf.module_.features.body[0].weight, features.body[0].weight)


def test_same_random_state_same_predictions_and_global_rng_untouched(tiny_backbone, image_data):
    X, y = image_data
    torch.manual_seed(123)
    before = torch.get_rng_state()
    clf = make_clf(tiny_backbone).fit(X, y)
    assert torch.equal(torch.get_rng_state(), before)  # fit seeds a forked RNG
    a = clf.predict_proba(X)
    b = make_clf(tiny_backbone).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    c = make_clf(tiny_backbone, random_state=1).fit(X, y).predict_proba(X)
    assert not np.allclose(a, c)


def test_user_backbone_is_not_mutated(tiny_backbone, image_data):
    X, y = image_data
    before = copy.deepcopy(tiny_backbone.state_dict())
    make_clf(tiny_backbone).fit(X, y)
    for k, v in tiny_backbone.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert isinstance(tiny_backbone.fc, nn.Linear)


def test_clone_get_params_set_params(tiny_backbone):
    clf = make_clf(tiny_backbone, relationship=CategoryRelationship(method="reverse"))
    params = clf.get_params()
    for key in ("backbone", "weights", "trade_off", "lr", "backbone_lr_mult", "batch_size",
                "max_epochs", "device", "random_state", "relationship__method"):
        assert key in params
    assert params["relationship__method"] == "reverse"
    cloned = clone(clf)
    assert cloned.get_params()["relationship__method"] == "reverse"
    # clone deep-copies a module parameter: the same weights, not the same object
    assert cloned.backbone is not clf.backbone
    for a, b in zip(cloned.backbone.state_dict().values(), clf.backbone.state_dict().values()):
        assert torch.equal(a, b)
    cloned.set_params(trade_off=0.7, relationship__method="direct", optimizer__momentum=0.5)
    assert cloned.trade_off == 0.7 and cloned.relationship.method == "direct"
    assert clf.relationship.method == "reverse"
    assert cloned.get_params()["optimizer__momentum"] == 0.5


def test_grid_search_over_trade_off_and_lr(tiny_backbone, image_data):
    X, y = image_data
    grid = GridSearchCV(
        make_clf(tiny_backbone, max_epochs=2),
        {"trade_off": [0.0, 2.3], "lr": [0.01, 0.1]},
        cv=2,
    ).fit(X, y)
    assert set(grid.best_params_) == {"trade_off", "lr"}
    assert grid.predict(X[:5]).dtype == y.dtype


def test_grid_search_over_relationship_method(tiny_backbone, image_data):
    X, y = image_data
    grid = GridSearchCV(
        make_clf(tiny_backbone, max_epochs=1),
        {"relationship": [CategoryRelationship()], "relationship__method": ["direct", "reverse"]},
        cv=2,
    ).fit(X, y)
    chosen = grid.best_params_["relationship__method"]
    scores = dict(zip([p["relationship__method"] for p in grid.cv_results_["params"]],
                      grid.cv_results_["mean_test_score"]))
    assert scores[chosen] == max(scores.values())
    assert grid.best_estimator_.relationship_.method == chosen


def test_cross_val_score_learns_a_relationship_per_fold(tiny_backbone, image_data):
    X, y = image_data
    cv = StratifiedKFold(3)
    scores = cross_val_score(make_clf(tiny_backbone), X, y, cv=cv)
    for score, (train, test) in zip(scores, cv.split(X, y)):  # each fold, by hand
        fold = clone(make_clf(tiny_backbone)).fit(X[train], y[train])
        pretrained = make_clf(tiny_backbone, max_epochs=0).fit(X[train], y[train])
        logits = pretrained.collect_outputs(X[train], "source")[0].astype(np.float64)
        expected = CategoryRelationship().fit(logits, y[train])
        np.testing.assert_allclose(fold.relationship_.relationship_, expected.relationship_,
                                   atol=1e-5)  # learned from this fold's training part only
        assert score == pytest.approx(fold.score(X[test], y[test]))


def test_pipeline_with_a_transformer_in_front(tiny_backbone, image_data):
    X, y = image_data
    pipe = make_pipeline(FunctionTransformer(lambda a: a[:, :, ::-1, :].copy()), make_clf(tiny_backbone))
    pipe.fit(X, y)
    assert pipe.predict_proba(X).shape == (60, 3)


def test_train_split_relationship_uses_training_part_only(tiny_backbone, image_data):
    X, y = image_data
    seen = {}

    class Recording(CategoryRelationship):
        def fit(self, X, y):
            seen["n"] = len(X)
            return super().fit(X, y)

    clf = make_clf(tiny_backbone, relationship=Recording(), train_split=ValidSplit(5, stratified=True))
    clf.fit(X, y)
    assert seen["n"] == 48
    assert "valid_acc" in clf.history[-1] and "valid_loss" in clf.history[-1]


def test_pickle_and_joblib_round_trips(tiny_backbone, image_data, tmp_path):
    X, y = image_data
    clf = make_clf(tiny_backbone).fit(X, y)
    expected = clf.predict_proba(X)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    assert restored.get_params()["device"] == "auto" and restored.device_ == "cpu"
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "clf.joblib").predict_proba(X), expected)
    np.testing.assert_array_equal(restored.relationship_.relationship_, clf.relationship_.relationship_)


def test_a_pickle_holds_the_optimizer_once(tiny_backbone, image_data):
    # skorch's LRScheduler pickled the optimizer a second time inside callbacks_, where
    # skorch does not map CUDA tensors to the CPU: a GPU fit could not load on a CPU machine
    X, y = image_data
    clf = make_clf(tiny_backbone).fit(X, y)

    class CountingTensors(pickle.Pickler):
        tensors = 0

        def persistent_id(self, obj):
            if isinstance(obj, torch.Tensor):
                CountingTensors.tensors += 1
            return None

    CountingTensors(io.BytesIO()).dump(clf.callbacks_)
    assert CountingTensors.tensors == 0
    restored = pickle.loads(pickle.dumps(clf))
    lr = restored.optimizer_.param_groups[0]["lr"]
    restored.set_params(max_epochs=2).partial_fit(X, y)  # the schedule resumes on the restored optimizer
    assert restored.optimizer_.param_groups[0]["lr"] != lr


def test_classes_parameter_with_an_absent_class(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, classes=["cat", "dog", "eel", "fox"]).fit(X, y)
    assert clf.predict_proba(X).shape == (60, 4)
    table = clf.regularizer_.soft_targets.numpy()
    assert np.all(np.isfinite(table))
    np.testing.assert_allclose(table[3], clf.relationship_.source_marginal_, rtol=1e-6)


def test_input_layouts(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, max_epochs=1)
    a = clf.fit(torch.as_tensor(X), y).predict_proba(torch.as_tensor(X))
    b = clf.fit(X.astype(np.float64), y).predict_proba(X)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_unfitted_predict_raises_not_fitted(tiny_backbone, image_data):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        make_clf(tiny_backbone).predict(image_data[0])


@pytest.mark.parametrize(
    "kwargs, X_fn, y_fn, error, match",
    [
        ({}, lambda X: X, lambda y: None, ValueError, "requires y to be passed"),
        ({}, lambda X: X, lambda y: y[:10], ValueError, "inconsistent numbers of samples"),
        ({}, lambda X: X, lambda y: np.full(60, "cat"), ValueError, "at least 2 classes"),
        ({}, lambda X: X, lambda y: np.linspace(0, 1, 60), ValueError, "Unknown label type"),
        ({}, lambda X: np.where(np.arange(60)[:, None, None, None] == 3, np.nan, X), lambda y: y,
         ValueError, "NaN"),
        ({}, lambda X: X[:, 0, 0, 0], lambda y: y, ValueError, "Expected 2D array"),
        ({"trade_off": -1}, lambda X: X, lambda y: y, ValueError, "'trade_off' parameter.*must be"),
        ({"lr": 0}, lambda X: X, lambda y: y, ValueError, "'lr' parameter.*must be"),
        ({"amp": "fp8"}, lambda X: X, lambda y: y, ValueError, "'amp' parameter.*must be"),
        ({"amp": "fp16"}, lambda X: X, lambda y: y, ValueError, "gradient scaler.*AccelerateMixin"),
        ({"lr_schedule": "linear"}, lambda X: X, lambda y: y, ValueError, "'lr_schedule' parameter.*must be"),
        ({"relationship": CategoryRelationship(input="proba")}, lambda X: X, lambda y: y,
         ValueError, "input='logits'"),
        ({"relationship": "direct"}, lambda X: X, lambda y: y, ValueError,
         "relationship takes the estimator.*relationship__method='direct'"),
        ({"relationship": 3}, lambda X: X, lambda y: y, TypeError,
         "'relationship' parameter.*'fit' and 'soft_targets'"),
        ({"random_state": "seed"}, lambda X: X, lambda y: y, ValueError, "'random_state' parameter.*must be"),
    ],
)
def test_bad_input(tiny_backbone, image_data, kwargs, X_fn, y_fn, error, match):
    X, y = image_data
    with pytest.raises(error, match=match):
        make_clf(tiny_backbone, **kwargs).fit(X_fn(X), y_fn(y))


def test_named_torchvision_backbone_end_to_end(image_data):
    X, y = image_data
    X = np.repeat(np.repeat(X, 4, axis=2), 4, axis=3)  # 32x32
    with pytest.warns(UserWarning, match="weights=None"):
        clf = CoTuningClassifier("resnet18", weights=None, max_epochs=1, verbose=0,
                                 batch_size=30, random_state=0).fit(X, y)
    assert len(clf.source_classes_) == 1000 and clf.relationship_.relationship_.shape == (3, 1000)
    assert clf.predict(X).shape == (60,)
    with pytest.raises(ValueError, match="expects images"):
        clf.predict(X.reshape(60, -1))


def test_bf16_autocast_path_on_cpu(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, amp="bf16", max_epochs=2).fit(X, y)
    assert clf.amp_dtype_ is torch.bfloat16
    proba = clf.predict_proba(X)
    assert proba.dtype == np.float32 and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert all(np.isfinite(row["train_loss"]) for row in clf.history)
    auto = make_clf(tiny_backbone, max_epochs=1).fit(X, y)
    assert auto.amp_dtype_ is None and auto.device_ == "cpu" and not auto.channels_last_


def test_channels_last_can_be_forced(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, channels_last=True, max_epochs=1).fit(X, y)
    assert clf.channels_last_
    weight = clf.module_.features.body[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert clf.predict(X).shape == (60,)


def test_partial_fit_keeps_network_and_relationship(tiny_backbone, image_data):
    X, y = image_data
    clf = make_clf(tiny_backbone, max_epochs=1)
    clf.partial_fit(X[:30], y[:30], classes=["cat", "dog", "eel", "fox"])
    R, module = clf.relationship_.relationship_.copy(), clf.module_
    clf.partial_fit(X[30:], y[30:])
    assert clf.module_ is module and len(clf.history) == 2
    np.testing.assert_array_equal(clf.relationship_.relationship_, R)
    assert clf.classes_.tolist() == ["cat", "dog", "eel", "fox"]
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X[:3], ["cat", "gnu", "cat"])
    with pytest.raises(ValueError, match="not among the classes"):
        make_clf(tiny_backbone, classes=["cat", "dog"]).fit(X, y)


def test_classes_set_on_a_fitted_net_waits_for_the_next_fit(tiny_backbone, image_data):
    # skorch's NeuralNetClassifier reads classes_ from the `classes` parameter at every
    # access: set on a fitted net, a new order relabelled the network's columns at once
    X, y = image_data
    clf = make_clf(tiny_backbone, max_epochs=3).fit(X, y)
    before = clf.predict(X)
    clf.set_params(classes=["eel", "dog", "cat"])
    assert clf.classes_.tolist() == ["cat", "dog", "eel"]  # the columns the network has
    np.testing.assert_array_equal(clf.predict(X), before)
    clf.fit(X, y)  # the next fit builds its head for the classes as given
    assert clf.classes_.tolist() == ["eel", "dog", "cat"]
    codes = clf.predict_proba(X).argmax(axis=1)
    np.testing.assert_array_equal(clf.predict(X), np.array(["eel", "dog", "cat"])[codes])


def test_a_classifier_for_scikit_learn_with_skorch_underneath(tiny_backbone):
    import skorch
    from sklearn.base import is_classifier

    clf = make_clf(tiny_backbone)
    assert is_classifier(clf) and clf.__sklearn_tags__().estimator_type == "classifier"
    # skorch's NeuralNet plus scikit-learn's ClassifierMixin, the bases of skorch's
    # NeuralNetClassifier, whose own additions the estimator does its own way
    assert isinstance(clf, skorch.NeuralNet)
    assert not isinstance(clf, skorch.NeuralNetClassifier)


def test_autocast_follows_the_device_a_pickle_lands_on(tiny_backbone, image_data):
    # a fit on a bf16-capable GPU with amp="auto" autocasts in bf16; loaded on a CPU, "auto"
    # means off (simulated: the fitted state a GPU fit leaves, pickled, loaded here)
    from sk_cotuning.network import unwrap

    X, y = image_data
    clf = make_clf(tiny_backbone).fit(X, y)
    expected = clf.predict_proba(X)
    clf.amp_dtype_ = unwrap(clf.module_).amp_dtype = torch.bfloat16
    restored = pickle.loads(pickle.dumps(clf))
    assert restored.amp_dtype_ is None and unwrap(restored.module_).amp_dtype is None
    np.testing.assert_allclose(restored.predict_proba(X), expected, rtol=1e-5, atol=1e-6)
    explicit = make_clf(tiny_backbone, amp="bf16").fit(X, y)  # asked for: kept
    assert pickle.loads(pickle.dumps(explicit)).amp_dtype_ == torch.bfloat16
