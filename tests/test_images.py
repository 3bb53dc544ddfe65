"""Image files, folders, SliceDatasets, per-fold augmentation and test-time views."""

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.model_selection import GridSearchCV, cross_val_score
from skorch.dataset import ValidSplit
from skorch.helper import SliceDataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from sk_cotuning import CoTuningClassifier, load_image_folder, sample_rate_indices
from sk_cotuning.inputs.conversion import ViewsDataset

from conftest import TinyConvNet

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 50, 210)}


@pytest.fixture
def image_folder(tmp_path):
    """root/<class>/<image>: 8 noisy 16x16 images per class, PNG and JPEG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(np.array(colour) + rng.normal(0, 25, (16, 16, 3)), 0, 255)
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.{ext}")
    (root / "red" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    return root


CALLS = {}


class Recorder:
    """A transform that counts its calls (also in clones) and resizes to 16x16."""

    def __init__(self, name="transform"):
        self.name = name
        CALLS[name] = 0

    @property
    def calls(self):
        return CALLS[self.name]

    @calls.setter
    def calls(self, value):
        CALLS[self.name] = value

    def __call__(self, img):
        CALLS[self.name] += 1
        return v2.Compose([v2.ToImage(), v2.Resize((16, 16), antialias=True)])(img)


def small(**kwargs):
    params = dict(max_epochs=2, batch_size=8, lr=0.05, verbose=0, random_state=0)
    params.update(kwargs)
    params.setdefault("backbone", TinyConvNet())
    return CoTuningClassifier(**params)


def test_load_image_folder(image_folder, tmp_path):
    paths, labels = load_image_folder(image_folder)
    assert len(paths) == 24 and sorted(set(labels)) == ["blue", "green", "red"]
    assert all(p.endswith((".png", ".jpg")) for p in paths)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="No image files"):
        load_image_folder(tmp_path / "empty")


def test_fit_predict_on_paths_with_default_transforms(image_folder):
    paths, labels = load_image_folder(image_folder)
    with pytest.warns(UserWarning, match="weights=None"):
        clf = CoTuningClassifier("shufflenet_v2_x0_5", weights=None, max_epochs=1,
                                 batch_size=12, verbose=0, random_state=0)
        clf.fit(paths, labels)
    proba = clf.predict_proba(paths[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert set(clf.predict(list(paths[:5]))) <= set(labels)
    # 224x224 centre crops of the weights' preprocessing reached the network
    loader = clf.get_iterator(clf.get_dataset(paths[:2]), training=False)
    x, _ = next(iter(loader))
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.uint8


def test_paths_learn_and_work_in_grid_search(image_folder):
    paths, labels = load_image_folder(image_folder)
    t = v2.Compose([v2.ToImage(), v2.Resize((16, 16), antialias=True)])
    clf = small(eval_transform=t, train_transform="eval", max_epochs=15)
    clf.fit(paths, labels)
    assert clf.score(paths, labels) > 0.9  # colours are easy
    grid = GridSearchCV(small(eval_transform=t, train_transform="eval"),
                        {"trade_off": [0.0, 1.0]}, cv=2).fit(paths, labels)
    assert set(grid.best_params_) == {"trade_off"}


def test_train_transform_only_in_training(image_folder):
    paths, labels = load_image_folder(image_folder)
    train_t, eval_t = Recorder("train"), Recorder("eval")
    clf = small(train_transform=train_t, eval_transform=eval_t, max_epochs=3)
    clf.fit(paths, labels)
    assert train_t.calls == 3 * 24  # every training sample, every epoch
    assert eval_t.calls == 24  # the relationship pass
    clf.predict(paths[:10])
    assert train_t.calls == 3 * 24 and eval_t.calls == 34
    # a cross-validation fold augments only its own training part
    train_t.calls = eval_t.calls = 0
    cross_val_score(small(train_transform=train_t, eval_transform=eval_t, max_epochs=1),
                    paths, labels, cv=3)
    assert train_t.calls == 3 * 16 and eval_t.calls == 3 * (16 + 8)


def test_array_inputs_use_transforms_too(image_data):
    X, y = image_data
    train_t = Recorder("train-arrays")
    clf = small(train_transform=train_t).fit(X, y)
    assert train_t.calls == 2 * 60
    clf.predict(X)
    assert train_t.calls == 2 * 60


def test_slice_dataset_route(image_folder):
    (image_folder / ".hidden").rmdir()  # torchvision's ImageFolder rejects empty folders
    ds = ImageFolder(str(image_folder))
    X, y = SliceDataset(ds), np.array(ds.targets)
    t = v2.Compose([v2.ToImage(), v2.Resize((16, 16), antialias=True)])
    clf = small(eval_transform=t, train_transform="eval").fit(X, y)
    assert clf.predict_proba(X).shape == (24, 3)
    scores = cross_val_score(small(eval_transform=t, train_transform="eval"), X, y, cv=2)
    assert scores.shape == (2,)
    with pytest.raises(TypeError, match="SliceDataset"):
        small().fit(ds, y)


def test_grayscale_and_rgba_files(tmp_path):
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(12):
        if i % 2:
            img = Image.fromarray((rng.random((10, 10)) * 255).astype(np.uint8), mode="L")
        else:
            img = Image.fromarray((rng.random((10, 10, 4)) * 255).astype(np.uint8), mode="RGBA")
        path = tmp_path / f"{i}.png"
        img.save(path)
        paths.append(path)  # pathlib.Path works as well as str
        labels.append(i % 3)
    t = v2.Compose([v2.ToImage(), v2.Resize((10, 10), antialias=True)])
    clf = small(eval_transform=t, train_transform="eval").fit(paths, labels)
    x, _ = next(iter(clf.get_iterator(clf.get_dataset(paths), training=False)))
    assert x.shape[1] == 3  # converted to RGB
    assert clf.predict(paths).shape == (12,)


def test_corrupt_and_missing_files(image_folder):
    paths, labels = load_image_folder(image_folder)
    missing = np.concatenate([paths, [str(image_folder / "red" / "gone.png")]])
    clf = small()
    with pytest.raises(FileNotFoundError, match="1 of 25 image file.*gone.png"):
        clf.fit(missing, np.concatenate([labels, ["red"]]))
    assert not getattr(clf, "initialized_", False)  # reported before any training
    corrupt = image_folder / "red" / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    paths, labels = load_image_folder(image_folder)
    with pytest.raises(ValueError, match="Cannot read image file.*corrupt.png"):
        small(eval_transform=Recorder()).fit(paths, labels)


def test_test_time_augmentation(image_folder, image_data):
    paths, labels = load_image_folder(image_folder)
    t = v2.Compose([v2.ToImage(), v2.Resize((16, 16), antialias=True)])
    clf = small(eval_transform=t, train_transform="eval").fit(paths, labels)
    plain = clf.predict_proba(paths)
    for mode in ("flip", "ten_crop"):
        clf.set_params(test_time_augmentation=mode)
        proba = clf.predict_proba(paths)
        assert proba.shape == plain.shape
        np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    X, y = image_data
    arrays = small(test_time_augmentation="flip").fit(X, y)
    flipped = arrays.predict_proba(X)
    manual = (arrays.set_params(test_time_augmentation=None).predict_proba(X)
              + arrays.predict_proba(X[..., ::-1].copy())) / 2
    np.testing.assert_allclose(flipped, manual, atol=1e-5)
    arrays.set_params(test_time_augmentation="ten_crop")
    assert arrays.predict_proba(X).shape == (60, 3)
    with pytest.raises(ValueError, match="test_time_augmentation"):
        small(test_time_augmentation="twenty").fit(X, y)


def test_test_time_views_are_averaged_by_the_network(image_data):
    # the network takes views by keyword: a 5-D x is never mistaken for them
    X, y = image_data
    clf = small(test_time_augmentation="flip").fit(X, y)
    net = clf.module_.eval()
    x = torch.as_tensor(X[:6])
    views = torch.stack([x, x.flip(-1)], 1)
    with torch.no_grad():
        averaged = net(views=views)
        single = [net(v) for v in (x, x.flip(-1))]
    mean_proba = (single[0].target.softmax(-1) + single[1].target.softmax(-1)) / 2
    torch.testing.assert_close(averaged.target.exp(), mean_proba)
    torch.testing.assert_close(averaged.features, (single[0].features + single[1].features) / 2)
    mean_source = (single[0].source.softmax(-1) + single[1].source.softmax(-1)) / 2
    torch.testing.assert_close(averaged.source.exp(), mean_source)
    # predict_proba, predict and skorch's forward all see the averaged views
    proba = clf.predict_proba(X[:6])
    np.testing.assert_allclose(proba, mean_proba.numpy(), atol=1e-6)
    forward = clf.forward(X[:6])
    np.testing.assert_allclose(forward[0].exp().numpy(), proba, atol=1e-6)
    assert list(clf.predict(X[:6])) == list(clf.classes_[proba.argmax(1)])


def test_test_time_views_leave_the_preparation_and_validation_alone(image_data):
    # the relationship is learned from the samples, not their views; a fit with
    # test-time views trains exactly as one without
    X, y = image_data
    backbone = TinyConvNet()  # one instance: each fit copies the same weights
    split = dict(train_split=ValidSplit(4, stratified=True), use_caching=False)
    with_views = small(backbone=backbone, test_time_augmentation="ten_crop", **split).fit(X, y)
    without = small(backbone=backbone, **split).fit(X, y)
    np.testing.assert_allclose(with_views.history[:, "valid_acc"], without.history[:, "valid_acc"])
    # the estimator's own datasets (a validation split) are not turned into views
    split_part = torch.utils.data.Subset(with_views.get_dataset(X, y), range(12))
    assert with_views.get_dataset(split_part) is split_part
    assert isinstance(with_views.get_dataset(X), ViewsDataset)
    torch.testing.assert_close(with_views.regularizer_.soft_targets, without.regularizer_.soft_targets)
    np.testing.assert_allclose(with_views.history[:, "train_loss"], without.history[:, "train_loss"])
    with_views.set_params(test_time_augmentation=None)
    np.testing.assert_allclose(with_views.predict_proba(X), without.predict_proba(X), atol=1e-6)


def test_sampling_rate_subset_of_a_folder(image_folder):
    paths, labels = load_image_folder(image_folder)
    idx = sample_rate_indices(labels, 0.25, random_state=0)
    assert sorted(np.unique(labels[idx], return_counts=True)[1]) == [2, 2, 2]


def test_dataloader_workers_decode_files(image_folder):
    paths, labels = load_image_folder(image_folder)
    t = v2.Compose([v2.ToImage(), v2.Resize((16, 16), antialias=True)])
    clf = small(eval_transform=t, train_transform="eval", max_epochs=15,
                iterator_train__num_workers=2, iterator_valid__num_workers=2)
    clf.fit(paths, labels)
    assert clf.score(paths, labels) > 0.9
    parallel = clf.predict_proba(paths)
    clf.set_params(iterator_valid__num_workers=0)
    np.testing.assert_allclose(clf.predict_proba(paths), parallel, rtol=1e-6, atol=1e-7)
