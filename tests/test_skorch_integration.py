"""Regressions of the redesign: the estimator works *with* skorch's machinery.

Each test reproduces a failure of the 882-line CoTuningClassifier (issue 10):
persistence with device="auto", skorch's restore idiom, Checkpoint resumes,
AccelerateMixin, device=None, ten-crop views, validation scoring without
caching, and user backbones in parallel grid-search workers.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch.callbacks import Checkpoint, LoadInitState
from skorch.dataset import ValidSplit
from torch import nn
from torchvision.transforms import v2

from sk_cotuning import CoTuningClassifier, FineTuningClassifier, load_image_folder
from sk_cotuning.network import unwrap
from sk_cotuning.regularization import CoTuning


def make_clf(backbone, **kwargs):
    params = dict(max_epochs=3, batch_size=16, lr=0.05, verbose=0, random_state=0)
    params.update(kwargs)
    return CoTuningClassifier(backbone, **params)


def small_convnet():
    """A factory backbone: a module-level function, so worker processes can import it."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(8, 6),
    )


def test_save_params_load_params_with_device_auto_and_restore_idiom(tiny_backbone, image_data, tmp_path):
    # 1. load_params used to build map_location from the literal "auto";
    # 2. a fresh estimator could not initialize() even with classes= given.
    X, y = image_data
    clf = make_clf(tiny_backbone).fit(X, y)
    clf.save_params(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "opt.pt")
    restored = make_clf(tiny_backbone, classes=list(clf.classes_)).initialize()
    restored.load_params(f_params=tmp_path / "params.pt", f_optimizer=tmp_path / "opt.pt")
    np.testing.assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert restored.get_params()["device"] == "auto" and restored.device == "cpu"
    torch.testing.assert_close(restored.regularizer_.soft_targets, clf.regularizer_.soft_targets)
    assert bool(restored.regularizer_.prepared)
    assert list(restored.predict(X[:5])) == list(clf.predict(X[:5]))


def test_initialize_without_classes_says_what_to_do(tiny_backbone):
    with pytest.raises(ValueError, match=r"call fit, or.*\(\.\.\., classes=\[\.\.\.\]\)\.initialize\(\)"):
        make_clf(tiny_backbone).initialize()


def test_checkpoint_resume_keeps_the_pretrained_relationship(tiny_backbone, image_data, tmp_path):
    # 3. resuming must not re-learn the relationship from the fine-tuned head
    X, y = image_data
    checkpoint = Checkpoint(dirname=str(tmp_path), monitor=None)
    first = make_clf(tiny_backbone, callbacks=[checkpoint, LoadInitState(checkpoint)]).fit(X, y)
    pretrained_R = first.regularizer_.soft_targets.clone()
    assert "prepare_dur" in first.history[0]

    calls = []

    class Recording(CoTuning):
        def prepare(self, net, dataset):
            calls.append(len(dataset))
            super().prepare(net, dataset)

    checkpoint = Checkpoint(dirname=str(tmp_path), monitor=None)
    resumed = FineTuningClassifier(
        tiny_backbone, regularizer=Recording(), max_epochs=2, batch_size=16, lr=0.05,
        verbose=0, random_state=0, callbacks=[checkpoint, LoadInitState(checkpoint)],
    ).fit(X, y)
    assert calls == []  # the restored checkpoint already holds the relationship
    assert len(resumed.history) == 5  # 3 restored epochs + 2 new ones
    torch.testing.assert_close(resumed.regularizer_.soft_targets, pretrained_R)
    # the fine-tuned head gives a different relationship: what the old code re-learned
    logits, codes = resumed.collect_outputs(X, "source")
    refit = first.relationship_.fit(logits.astype(np.float64), y)
    assert not np.allclose(refit.relationship_, pretrained_R.numpy(), atol=1e-3)


def test_accelerate_mixin_composes(tiny_backbone, image_data, tmp_path):
    # 4. AccelerateMixin.initialize never called the old initialize override
    accelerate = pytest.importorskip("accelerate")
    from skorch.hf import AccelerateMixin

    class AcceleratedCoTuning(AccelerateMixin, CoTuningClassifier):
        pass

    X, y = image_data
    clf = AcceleratedCoTuning(
        tiny_backbone, accelerator=accelerate.Accelerator(cpu=True), device=None,
        max_epochs=3, batch_size=16, lr=0.05, verbose=0, random_state=0,
    ).fit(X, y)
    plain = make_clf(tiny_backbone, device=None).fit(X, y)
    assert clf.device_ == "cpu" and clf.relationship_.relationship_.shape == (3, 6)
    assert clf.history[-1]["train_loss"] < clf.history[0]["train_loss"]
    np.testing.assert_allclose(clf.predict_proba(X), plain.predict_proba(X), atol=1e-4)
    clf.save_params(f_params=tmp_path / "p.pt")


def test_device_none_leaves_the_network_where_it_is(tiny_backbone, image_data):
    # 5. device=None crashed
    X, y = image_data
    clf = make_clf(tiny_backbone, device=None).fit(X, y)
    assert clf.device is None and clf.device_ == "cpu"
    assert clf.get_params()["device"] is None
    np.testing.assert_allclose(clf.predict_proba(X), make_clf(tiny_backbone).fit(X, y).predict_proba(X))


@pytest.fixture
def mixed_size_files(tmp_path):
    rng = np.random.default_rng(0)
    for i, (label, channel) in enumerate([("red", 0), ("green", 1)] * 6):
        size = (20 + 7 * i, 14 + 5 * i)
        img = (rng.random((size[1], size[0], 3)) * 80).astype(np.uint8)
        img[..., channel] += 150
        (tmp_path / label).mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / label / f"{i}.png")
    return load_image_folder(tmp_path)


@pytest.mark.parametrize("mode", ["flip", "ten_crop"])
def test_test_time_views_honour_eval_transform(tiny_backbone, mixed_size_files, mode):
    # 6a. ten_crop ignored eval_transform: files of mixed sizes crashed
    paths, labels = mixed_size_files
    resize = v2.Compose([v2.ToImage(), v2.Resize((16, 16), antialias=True)])
    clf = make_clf(tiny_backbone, eval_transform=resize, train_transform="eval").fit(paths, labels)
    plain = clf.predict_proba(paths)
    clf.set_params(test_time_augmentation=mode)
    views = clf.predict_proba(paths)
    assert views.shape == plain.shape and np.allclose(views.sum(1), 1, atol=1e-5)
    assert (views.argmax(1) == plain.argmax(1)).mean() >= 0.75


def test_ten_crop_on_the_glyph_model():
    # 6b. the glyph model's 8x8 digits were cropped to 7x7 and never resized back
    X, y = load_digits(return_X_y=True)
    clf = CoTuningClassifier("glyphnet", max_epochs=2, batch_size=16, lr=0.02, verbose=0, random_state=0,
                             test_time_augmentation="ten_crop").fit(X[:300], y[:300])
    proba = clf.predict_proba(X[300:400])
    assert proba.shape == (100, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.score(X[300:400], y[300:400]) > 0.3  # chance is 0.1; 8x8 crops cost accuracy
    from sk_cotuning.inputs.transforms import TestTimeViews

    views = TestTimeViews("ten_crop", None)(torch.rand(1, 8, 8))
    assert views.shape == (10, 1, 8, 8)


@pytest.mark.parametrize("split", [ValidSplit(5, stratified=True), ValidSplit(0.2)])
def test_valid_accuracy_without_caching(tiny_backbone, image_data, split):
    # 7. the validation accuracy scorer crashed with use_caching=False
    X, y = image_data
    clf = make_clf(tiny_backbone, train_split=split, use_caching=False).fit(X, y)
    assert 0 <= clf.history[-1]["valid_acc"] <= 1
    if isinstance(split.cv, int):  # the first stratified fold: check the number itself
        _, valid = next(StratifiedKFold(5).split(X, y))
        assert clf.history[-1]["valid_acc"] == pytest.approx(clf.score(X[valid], y[valid]))


def test_factory_backbone_in_parallel_grid_search_workers(image_data):
    # 8. register_backbone's process-global registry vanished in n_jobs=2 workers
    X, y = image_data
    grid = {"trade_off": [0.0, 1.0], "lr": [0.02, 0.1]}
    serial = GridSearchCV(make_clf(small_convnet, source_head="4", max_epochs=2), grid, cv=2).fit(X, y)
    parallel = GridSearchCV(make_clf(small_convnet, source_head="4", max_epochs=2), grid, cv=2, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    assert parallel.best_estimator_.relationship_ is not None or parallel.best_params_["trade_off"] == 0


def test_compiled_network_takes_views_and_refuses_non_finite_outputs(tiny_backbone, image_data, capfd):
    # skorch's compile=True wraps the network: the views keyword and the finite
    # check (run eagerly, so no graph-break warning) must work through it
    X, y = image_data
    clf = make_clf(tiny_backbone, compile=True, compile__backend="eager",
                   test_time_augmentation="flip").fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (60, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert "Graph break" not in capfd.readouterr().err
    with torch.no_grad():
        unwrap(clf.module_).target_head.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="outputs are not finite"):
        clf.predict_proba(X)
