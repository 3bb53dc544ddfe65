"""Every bad input and fault gets a clear error or a right answer (issue 14).

One table: each case is a function of the shared context that either returns
a value checked by its expectation, or raises.  An expectation is

- ``(ExceptionType, "regex")``: that error, with a message naming the problem;
- ``("warns", "regex")``: runs, with a UserWarning that says what was decided;
- ``"ok"``: runs, and the case's own assertions hold.
"""

import os
import pickle
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from skorch.callbacks import LRScheduler
from skorch.dataset import ValidSplit
from skorch.helper import SliceDataset
from torch import nn
from torch.utils.data import TensorDataset

from sk_cotuning import CategoryRelationship, CoTuningClassifier, FineTuningClassifier
from sk_cotuning.callbacks import PreparationInterrupted
from sk_cotuning.regularization import LossTerm, Regularizer

from conftest import TinyConvNet

FAST = dict(max_epochs=1, batch_size=16, lr=0.05, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300], X[300:500], y[300:500]


@pytest.fixture
def ctx(tiny_backbone, image_data, digits, tmp_path):
    X, y = image_data

    def make(**kwargs):
        params = dict(FAST)
        params.update(kwargs)
        backbone = params.pop("backbone", tiny_backbone)
        return CoTuningClassifier(backbone, **params)

    return SimpleNamespace(X=X, y=y, tiny=tiny_backbone, make=make, digits=digits, tmp=tmp_path)


# ------------------------------------------------------------------ helpers
def fit(c, X=None, y=None, **kwargs):
    return c.make(**kwargs).fit(c.X if X is None else X, c.y if y is None else y)


def png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return str(path)


def image_files(c, n=12):
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(n):
        label, channel = ("red", 0) if i % 2 else ("green", 1)
        img = (rng.random((10, 10, 3)) * 80).astype(np.uint8)
        img[..., channel] += 150
        paths.append(png(c.tmp / label / f"{i}.png", img))
        labels.append(label)
    return paths, np.array(labels)


def image_files_of_many_sizes(c):
    rng = np.random.default_rng(1)
    paths = [png(c.tmp / "sizes" / f"{i}.png",
                 rng.integers(0, 255, (10 + i, 14 - i % 3, 3), dtype=np.uint8)) for i in range(8)]
    return c.make(batch_size=4).fit(paths, np.arange(8) % 2)


class Planted:
    """A pickle that would write a file when unpickled without weights_only."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def glyph_digits_uint8(c):
    X, y, Xt, yt = c.digits
    as_float = CoTuningClassifier("glyphnet", **FAST).fit(X, y)
    as_uint8 = CoTuningClassifier("glyphnet", **FAST).fit(X.astype(np.uint8), y)
    np.testing.assert_allclose(as_uint8.predict_proba(Xt.astype(np.uint8)),
                               as_float.predict_proba(Xt), atol=1e-5)
    assert as_uint8.score(Xt.astype(np.uint8), yt) > 0.5


def float_0_255(c):
    clf = fit(c, X=c.X * 255)
    np.testing.assert_allclose(clf.predict_proba(c.X * 255), fit(c).predict_proba(c.X), atol=1e-5)


def custom_module_gets_nchw_unit_floats(c):
    seen = []

    class Recording(TinyConvNet):
        def forward(self, x):
            seen.append((tuple(x.shape), x.dtype, float(x.min()), float(x.max())))
            return super().forward(x)

    hwc = (c.X.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    torch.manual_seed(0)
    a = fit(c, X=hwc, backbone=Recording()).predict_proba(hwc)
    assert seen[0][0][1:] == (3, 8, 8) and seen[0][1] == torch.float32
    assert 0 <= seen[0][2] and seen[0][3] <= 1
    b = fit(c, X=hwc.transpose(0, 3, 1, 2) / 255.0).predict_proba(hwc.transpose(0, 3, 1, 2) / 255.0)
    np.testing.assert_allclose(a, b, atol=1e-5)


def custom_module_grayscale(c):
    gray = (c.X.mean(1) * 255).astype(np.uint8)  # (n, H, W) uint8
    clf = fit(c, X=gray, backbone=TinyConvNet(in_channels=1))
    assert clf.predict_proba(gray).shape == (60, 3)


def opt_out_passes_arrays_through(c):
    seen = []

    class Recording(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.LazyLinear(8))
            self.fc = nn.Linear(8, 6)

        def forward(self, x):
            seen.append((tuple(x.shape), float(x.max())))
            return self.fc(self.body(x))

    raw = c.X.transpose(0, 2, 3, 1) * 7.0  # not an image scale: the user opted out
    fit(c, X=raw, backbone=Recording(), convert_image_arrays=False)
    assert seen[0][0][1:] == (8, 8, 3) and seen[0][1] > 1


def bn_last_batch_of_one(c):
    X, y = c.X[:49], c.y[:49]  # 49 = 3 * 16 + 1
    clf = fit(c, X=X, y=y, max_epochs=2)
    assert len(clf.history) == 2 and clf.predict(X).shape == (49,)


def sixteen_bit_png(c):
    ramp = (np.linspace(0, 65535, 100).reshape(10, 10)).astype(np.uint16)
    paths = [png(c.tmp / f"a{i}.png", ramp) for i in range(4)]
    from sk_cotuning.inputs.conversion import ImageFileDataset

    img, _ = ImageFileDataset(paths, mode="L")[0]
    values = np.asarray(img)
    assert values.min() == 0 and values.max() == 255 and 100 < values.mean() < 155
    clf = CoTuningClassifier(TinyConvNet(), **FAST)
    clf.fit(paths + image_files(c, 4)[0], ["a", "b"] * 4)


def normalised_slice_dataset(c):
    samples = torch.as_tensor((c.X - 0.5) / 0.25)
    dataset = SliceDataset(TensorDataset(samples, torch.zeros(60)), idx=0)
    fit(c, X=dataset)


def reproducible_reverse(c):
    rel = CategoryRelationship(method="reverse")
    a = fit(c, relationship=rel, max_epochs=2)
    b = fit(c, relationship=rel, max_epochs=2)
    assert a.relationship_.C_ == b.relationship_.C_
    np.testing.assert_array_equal(a.predict_proba(c.X), b.predict_proba(c.X))


def interrupted_preparation(c):
    class Interrupting(CategoryRelationship):
        def fit(self, X, y):
            raise KeyboardInterrupt

    clf = c.make(relationship=Interrupting())
    try:
        clf.fit(c.X, c.y)
    finally:
        with pytest.raises(NotFittedError):
            clf.predict(c.X)


def killed_worker(c):
    def die(x):
        os.kill(os.getpid(), signal.SIGKILL)

    paths, labels = image_files(c)
    fit(c, X=paths, y=labels, train_transform=die, iterator_train__num_workers=1)


def load_other_classes(c):
    clf = fit(c)
    clf.save_params(f_params=c.tmp / "p.pt")
    other = c.make(classes=["a", "b"]).initialize()
    other.load_params(f_params=c.tmp / "p.pt")


def nan_parameters(c):
    clf = fit(c)
    with torch.no_grad():
        clf.module_.target_head.weight.fill_(float("nan"))
    clf.predict_proba(c.X)


def pickle_round_trip(c):
    clf = fit(c)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(c.X),
                                  clf.predict_proba(c.X))


def planted_pickle(c):
    target = c.tmp / "pwned"
    torch.save({"x": Planted(str(target))}, c.tmp / "evil.pth")
    try:
        fit(c, weights=c.tmp / "evil.pth")
    finally:
        assert not target.exists()


def warm_start_new_labels(c):
    clf = fit(c, warm_start=True)
    clf.fit(c.X, np.where(c.y == "cat", "cow", c.y))


def save_state(c, obj, name):
    torch.save(obj, c.tmp / name)
    return c.tmp / name


# ----------------------------------------------- the methods' surface (issue 22)
def trade_off_set_after_a_plain_fit(c):
    clf = fit(c, trade_off=0)
    clf.set_params(trade_off=2.3)
    clf.partial_fit(c.X, c.y)


def negative_weight_set_on_a_fitted_net(c):
    clf = FineTuningClassifier(c.tiny, regularizer="l2_sp", **FAST).fit(c.X, c.y)
    clf.set_params(regularizer__alpha=-1)
    clf.partial_fit(c.X, c.y)


def prepared_param_set_on_a_fitted_net(c, make, **params):
    # partial_fit went on with what fit had prepared (the old relationship, the old
    # probe), while the parameter read the new value
    clf = make(c).fit(c.X, c.y)
    clf.set_params(**params)
    clf.partial_fit(c.X, c.y)


def live_params_set_on_a_fitted_net(c):
    clf = fit(c)
    clf.set_params(trade_off=1.0, soft_target_temperature=2.0)  # apply at once
    clf.partial_fit(c.X, c.y)
    assert clf.regularizer_.trade_off == 1.0 and float(clf.regularizer_.fitted_temperature) == 2.0
    clf.set_params(relationship__method="reverse")
    clf.fit(c.X, c.y)  # fit prepares afresh, under the new value
    assert clf.relationship_.method == "reverse"
    clf.partial_fit(c.X, c.y)


class _Misnamed(Regularizer):
    terms = ("a",)

    def forward(self, outputs, y):
        return [LossTerm("b", outputs[0].sum() * 0, 1.0)]


class _NaNTerm(Regularizer):
    terms = ("nan",)

    def forward(self, outputs, y):
        return [LossTerm("nan", outputs[0].sum() * float("nan"), 1.0)]


class _Custom(Regularizer):
    """A user's regulariser, varied below by what its forward returns."""

    terms = ("t",)
    needs = frozenset({"features"})
    returns = "list"

    def forward(self, outputs, y):
        value = outputs.features.pow(2).mean()
        return {
            "float": [LossTerm("t", 0.5, 1.0)],
            "vector": [LossTerm("t", outputs.features.pow(2).mean(1), 1.0)],
            "tensor": value,
            "one term": LossTerm("t", value, 1.0),
            "plain tuple": [("t", value, 1.0)],
            "string weight": [LossTerm("t", value, "0.1")],
        }[self.returns]


def custom_regularizer(c, **class_attrs):
    cls = type("MyRegularizer", (_Custom,), class_attrs)
    FineTuningClassifier(c.tiny, regularizer=cls(), **FAST).fit(c.X, c.y)


class _StoresElsewhere(Regularizer):
    terms = ("t",)

    def __init__(self, alpha=0.1):
        super().__init__()
        self.weight_value = alpha

    def forward(self, outputs, y):
        return []


def reverse_relationship_by_nested_name(c):
    clf = FineTuningClassifier(c.tiny, regularizer="co_tuning",
                               regularizer__relationship__method="reverse", **FAST).fit(c.X, c.y)
    assert clf.regularizer_.relationship_.method == "reverse"


def bss_huge_weight(c):
    FineTuningClassifier(c.tiny, regularizer="bss", regularizer__trade_off=1e30,
                         max_grad_norm=None, **{**FAST, "max_epochs": 3, "lr": 1.0}).fit(c.X, c.y)


def corrupted_gzip(c):
    import gzip

    from sk_cotuning.datasets.fashion_mnist import read_idx

    path = c.tmp / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 39, 16]) + bytes(range(200)) * 50))
    data[30:90] = bytes(range(60))  # corrupt the compressed stream, keep the length
    path.write_bytes(bytes(data))
    read_idx(path)


def cuda_without_cuda(c):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    fit(c, device="cuda")


def weights_none_warning(c):
    with pytest.warns(UserWarning) as record:
        fit(c, backbone="glyphnet", weights=None, X=c.digits[0][:60], y=c.digits[1][:60],
            trade_off=0)
    text = " ".join(str(w.message) for w in record)
    assert "training from scratch" in text and "only regularises noise" not in text


def vit_on_small_arrays(c):
    import warnings

    pytest.importorskip("timm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # weights=None: random weights, as asked
        c.make(backbone="timm/vit_tiny_patch16_224", weights=None, max_epochs=1).fit(c.X, c.y)


def predefined_validation_arrays(c):
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    X, y, X_valid, y_valid = c.digits  # flat (n, 64) digits: converted to (n, 1, 8, 8) images
    clf = c.make(backbone="glyphnet", max_epochs=2,
                 train_split=predefined_split(Dataset(X_valid[:50], y_valid[:50])))
    clf.fit(X[:100], y[:100])
    expected = float((clf.predict(X_valid[:50]) == y_valid[:50]).mean())
    assert clf.history[-1, "valid_acc"] == pytest.approx(expected)


def lite0_with_a_torchvision_name(c):
    pytest.importorskip("timm")
    fit(c, backbone="efficientnet_lite0", weights="IMAGENET1K_V1")


CASES = {
    # --- arrays
    "sparse": (lambda c: fit(c, X=sp.csr_matrix(np.ones((60, 4)))), (TypeError, "Sparse")),
    "strings": (lambda c: fit(c, X=np.full((60, 4), "a")), (TypeError, "non-numeric")),
    "objects": (lambda c: fit(c, X=np.array([[object()]] * 60)), (TypeError, "dtype object")),
    "complex": (lambda c: fit(c, X=c.X + 1j), (ValueError, "Complex")),
    "bool": (lambda c: fit(c, X=c.X > 0.5), (TypeError, "dtype torch.bool")),
    "scalar": (lambda c: fit(c, X=np.float32(3)), (ValueError, "scalar|Expected 2D array")),
    "1-D": (lambda c: fit(c, X=np.ones(60)), (ValueError, "Expected 2D array")),
    "no samples": (lambda c: fit(c, X=c.X[:0], y=c.y[:0]), (ValueError, "0 sample")),
    "NaN": (lambda c: fit(c, X=np.where(c.X > 0.9, np.nan, c.X)), (ValueError, "NaN")),
    "inf": (lambda c: fit(c, X=np.where(c.X > 0.9, np.inf, c.X)), (ValueError, "infinity")),
    "normalised": (lambda c: fit(c, X=(c.X - 0.5) / 0.25), (ValueError, "mean/std-normalised")),
    "above 255": (lambda c: fit(c, X=c.X * 1000), (ValueError, "above 255")),
    "ragged list": (lambda c: fit(c, X=[np.zeros((3, 8, 8)), np.zeros((3, 9, 9))], y=["a", "b"]),
                    (ValueError, "images of one shape")),
    "one HWC image": (lambda c: fit(c, X=np.zeros((32, 32, 3)), y=np.arange(32) % 2),
                      (ValueError, "looks like one \\(H, W, C\\) colour image.*X\\[None\\]")),
    "5-D": (lambda c: CoTuningClassifier("glyphnet", **FAST).fit(c.X[:, None], c.y),
            (ValueError, "3 or 4 dimensions")),
    "channel axis": (lambda c: CoTuningClassifier("glyphnet", **FAST).fit(np.zeros((60, 5, 5, 5)), c.y),
                     (ValueError, "channel axis")),
    "custom network rejects the shape": (lambda c: fit(c, X=c.X[:, None]),
                                         (ValueError, r"could not process a batch of shape \(16, 1, 3, 8, 8\)")),
    "glyph wrong size": (lambda c: CoTuningClassifier("glyphnet", **FAST).fit(
        np.zeros((20, 16, 16)), np.arange(20) % 2), (ValueError, "takes 8x8 images, got 16x16")),
    "glyph uint8 digits": (glyph_digits_uint8, "ok"),
    "floats 0..255": (float_0_255, ("warns", "read as intensities in \\[0, 255\\]")),
    "uint8 masks": (lambda c: fit(c, X=(c.X > 0.5).astype(np.uint8)), ("warns", "almost black")),
    "features at predict": (lambda c: CoTuningClassifier(
        nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 3)), source_head="2", **FAST)
        .fit(np.ones((20, 5)), np.arange(20) % 2).predict(np.ones((3, 6))),
        (ValueError, "X has 6 features.*expecting 5")),
    "custom module, uint8 HWC": (custom_module_gets_nchw_unit_floats, "ok"),
    "custom module, grayscale": (custom_module_grayscale, "ok"),
    "custom module, opt out": (opt_out_passes_arrays_through, "ok"),
    # --- labels
    "y None": (lambda c: c.make().fit(c.X, None), (ValueError, "requires y")),
    "image files of many sizes, own network": (
        image_files_of_many_sizes,
        (ValueError, "images of one batch have different sizes.*train_transform and "
                     "eval_transform that resize")),
    "a method name as the regulariser's relationship": (
        lambda c: FineTuningClassifier(c.tiny, regularizer="co_tuning",
                                       regularizer__relationship="reverse", **FAST).fit(c.X, c.y),
        (ValueError, "relationship__method='reverse'")),
    "a torch Dataset without y": (
        lambda c: c.make().fit(torch.utils.data.TensorDataset(
            torch.as_tensor(c.X), torch.arange(len(c.X)) % 2), None),
        (ValueError, "requires y.*SliceDataset\\(dataset\\) with y=")),
    "y length": (lambda c: fit(c, y=c.y[:10]), (ValueError, "inconsistent numbers of samples")),
    "one class": (lambda c: fit(c, y=np.full(60, "cat")), (ValueError, "at least 2 classes")),
    "continuous y": (lambda c: fit(c, y=np.linspace(0, 1, 60)), (ValueError, "Unknown label type")),
    "None label": (lambda c: fit(c, y=np.array(list(c.y[:-1]) + [None], dtype=object)),
                   (ValueError, "missing label.*index \\[59\\]")),
    "NaN label": (lambda c: fit(c, y=np.r_[np.arange(59) % 2, np.nan]), (ValueError, "missing label")),
    "mixed label types": (lambda c: fit(c, y=np.array(["a", 1] * 30, dtype=object)),
                          (ValueError, "mixes label types|Unknown label type")),
    "column y": (lambda c: fit(c, y=c.y[:, None]), ("warns", "column-vector y|1d array")),
    "partial_fit new label": (lambda c: c.make().partial_fit(c.X, c.y).partial_fit(
        c.X[:3], ["cat", "gnu", "cat"]), (ValueError, "not among the classes")),
    "warm start new labels": (warm_start_new_labels, (ValueError, "\\['cow'\\].*not among")),
    "classes too few": (lambda c: fit(c, classes=["cat", "dog"]), (ValueError, "\\['eel'\\].*not among")),
    # a label twice made two output columns for one class (the last one was trained)
    "classes repeated": (lambda c: fit(c, classes=["cat", "dog", "cat", "eel"]),
                         (ValueError, r"classes lists \['cat'\] more than once")),
    "classes empty": (lambda c: c.make(classes=[]).initialize(),
                      (ValueError, "at least 2, got \\[\\]; pass None")),
    "classes 2-D": (lambda c: fit(c, classes=[["cat", "dog", "eel"]]),
                    (ValueError, "1-D list of class labels, got an array of shape \\(1, 3\\)")),
    "partial_fit classes repeated": (lambda c: c.make().partial_fit(
        c.X, c.y, classes=["cat", "dog", "eel", "eel"]),
        (ValueError, "partial_fit's classes lists \\['eel'\\] more than once")),
    # the classes parameter used to win in silence over partial_fit's own argument
    "partial_fit classes differ from the parameter": (lambda c: c.make(
        classes=["eel", "dog", "cat"]).partial_fit(c.X, c.y, classes=["cat", "dog", "eel"]),
        (ValueError, "partial_fit's classes \\['cat', 'dog', 'eel'\\] differ from the "
                     "estimator's classes parameter \\['eel', 'dog', 'cat'\\]")),
    # --- parameters
    "lr 0": (lambda c: fit(c, lr=0), (ValueError, "'lr' parameter")),
    "lr str": (lambda c: fit(c, lr="fast"), (ValueError, "'lr' parameter")),
    "negative multiplier": (lambda c: fit(c, backbone_lr_mult=-1), (ValueError, "'backbone_lr_mult'")),
    "batch_size 0": (lambda c: fit(c, batch_size=0), (ValueError, "'batch_size'")),
    "max_epochs -1": (lambda c: fit(c, max_epochs=-1), (ValueError, "'max_epochs'")),
    "lr_schedule": (lambda c: fit(c, lr_schedule="linear"), (ValueError, "'lr_schedule'")),
    "amp fp8": (lambda c: fit(c, amp="fp8"), (ValueError, "'amp'")),
    "amp fp16": (lambda c: fit(c, amp="fp16"), (ValueError, "gradient scaler.*AccelerateMixin")),
    "channels_last": (lambda c: fit(c, channels_last="yes"), (ValueError, "'channels_last'")),
    "tta": (lambda c: fit(c, test_time_augmentation="five"), (ValueError, "'test_time_augmentation'")),
    "device": (lambda c: fit(c, device="gpu"), (ValueError, "device must be 'auto', None")),
    "random_state": (lambda c: fit(c, random_state="seed"), (ValueError, "'random_state'")),
    "trade_off": (lambda c: fit(c, trade_off=-1), (ValueError, "'trade_off'")),
    "relationship str": (lambda c: fit(c, relationship="direct"),
                         (ValueError, "relationship=CategoryRelationship\\(method='direct'\\), "
                                      "or relationship__method='direct'")),
    "relationship proba": (lambda c: fit(c, relationship=CategoryRelationship(input="proba")),
                           (ValueError, "input='logits'")),
    "regularizer name": (lambda c: FineTuningClassifier(c.tiny, regularizer="l2sp", **FAST)
                         .fit(c.X, c.y), (ValueError, "'regularizer' parameter")),
    "backbone int": (lambda c: fit(c, backbone=42), (ValueError, "'backbone' parameter")),
    "backbone name": (lambda c: fit(c, backbone="resnet5000"), (ValueError, "Unknown backbone")),
    "train_transform": (lambda c: fit(c, train_transform=5), (ValueError, "'train_transform'")),
    "sample_weight": (lambda c: c.make().fit(c.X, c.y, sample_weight=np.ones(60)),
                      (TypeError, "sample_weight is not supported.*criterion__weight")),
    "unknown fit param": (lambda c: c.make().fit(c.X, c.y, epochs=3), (TypeError, "unexpected keyword")),
    "train_split float": (lambda c: fit(c, train_split=0.2),
                          (ValueError, "'train_split' parameter.*callable")),
    "folder as a path": (lambda c: fit(c, X=[str(c.tmp)] * 60),
                         (ValueError, "folders, not image files.*load_image_folder")),
    "int64 0..255": (lambda c: fit(c, X=(c.X * 255).astype(np.int64)),
                     ("warns", "read as intensities in \\[0, 255\\]")),
    "initialize without classes": (  # initialize() takes no classes: say where they go
        lambda c: c.make().initialize(),
        (ValueError, r"CoTuningClassifier\(\.\.\., classes=\[\.\.\.\]\)\.initialize\(\), "
                     r"then load_params")),
    "views set after fit": (lambda c: fit(c).set_params(test_time_augmentation="five").predict(c.X),
                            (ValueError, "'test_time_augmentation'")),
    "eval_transform set after fit": (lambda c: fit(c).set_params(eval_transform=5).predict(c.X),
                                     (ValueError, "'eval_transform'")),
    "partial_fit without y": (lambda c: fit(c).partial_fit(c.X), (ValueError, "requires y")),
    "predict before fit": (lambda c: c.make().predict(c.X), (NotFittedError, "not initialized|not fitted")),
    # --- image files and datasets
    "missing file": (lambda c: fit(c, X=image_files(c)[0] + [str(c.tmp / "gone.png")],
                                   y=list(image_files(c)[1]) + ["red"]),
                     (FileNotFoundError, "1 of 13 image file.*gone.png")),
    "corrupt file": (lambda c: fit(c, X=image_files(c)[0] + [str(c.tmp / "bad.png")],
                                   y=list(image_files(c)[1]) + ["red"])
                     if (c.tmp / "bad.png").write_bytes(b"\x89PNGnot") else None,
                     (ValueError, "Cannot read image file.*bad.png")),
    "16-bit PNG": (sixteen_bit_png, "ok"),
    "normalised SliceDataset": (normalised_slice_dataset, (ValueError, "Sample 0.*not mean/std-normalised")),
    "plain Dataset": (lambda c: fit(c, X=TensorDataset(torch.as_tensor(c.X))),
                      (TypeError, "SliceDataset")),
    "empty SliceDataset": (lambda c: fit(c, X=SliceDataset(TensorDataset(torch.zeros(0, 3))), y=[]),
                           (ValueError, "0 sample|empty")),
    # --- weights files
    "missing weights": (lambda c: fit(c, weights=c.tmp / "nope.pth"), (FileNotFoundError, "nope.pth.*does not exist")),
    "corrupt weights": (lambda c: fit(c, weights=save_state(c, None, "x.pth").write_bytes(b"junk")
                                      and c.tmp / "x.pth"),
                        (ValueError, "Could not load weights file")),
    "list weights": (lambda c: fit(c, weights=save_state(c, [1, 2], "l.pth")), (ValueError, "not a state dict")),
    "planted pickle": (planted_pickle, (ValueError, "Could not load weights file.*evil.pth")),
    "mismatched weights": (lambda c: fit(c, weights={"fc.weight": torch.zeros(2, 2)}),
                           (ValueError, "do not match")),
    "weights float": (lambda c: fit(c, weights=3.5), (TypeError, "weights must be")),
    # --- relationship inputs
    "relationship NaN logits": (lambda c: CategoryRelationship().fit(np.full((4, 3), np.nan), [0, 1, 0, 1]),
                                (ValueError, "NaN")),
    "relationship lengths": (lambda c: CategoryRelationship().fit(np.zeros((4, 3)), [0, 1, 0]),
                             (ValueError, "inconsistent numbers of samples")),
    "relationship one class": (lambda c: CategoryRelationship().fit(np.zeros((4, 3)), [0] * 4),
                               (ValueError, "at least 2 classes")),
    "relationship unfitted": (lambda c: CategoryRelationship().transform(np.zeros((2, 3))),
                              (NotFittedError, "not fitted")),
    "relationship unknown label": (lambda c: CategoryRelationship().fit(np.zeros((4, 3)), [0, 1, 0, 1])
                                   .soft_targets([7]), (ValueError, "7")),
    # --- persistence
    "load other classes": (load_other_classes, (ValueError, "do not fit this network.*classes=")),
    "load uninitialized": (lambda c: c.make().load_params(f_params=c.tmp / "p.pt"),
                           (Exception, "initializ")),
    "pickle round trip": (pickle_round_trip, "ok"),
    "NaN parameters": (nan_parameters, (ValueError, "outputs are not finite.*diverged")),
    # --- faults
    "divergence lr": (lambda c: fit(c, lr=1e6, max_epochs=5), (FloatingPointError, "diverged.*Lower lr")),
    # gradient clipping (the default) keeps such a fit finite; without it, it diverges
    "divergence trade_off": (lambda c: fit(c, trade_off=1e38, max_epochs=3, max_grad_norm=None),
                             (FloatingPointError, "diverged")),
    "BatchNorm last batch of one": (bn_last_batch_of_one, "ok"),
    "reproducible reverse relationship": (reproducible_reverse, "ok"),
    "Ctrl-C in the relationship pass": (interrupted_preparation, (PreparationInterrupted, "not fitted")),
    "killed DataLoader worker": (killed_worker, (RuntimeError, "DataLoader worker")),
    # --- the methods' surface (issue 22)
    "Co-Tuning negative weight": (lambda c: FineTuningClassifier(
        c.tiny, regularizer="co_tuning", regularizer__trade_off=-1, **FAST).fit(c.X, c.y),
        (ValueError, r"'trade_off' parameter of CoTuning must be a float in the range \[0.0, inf\)")),
    "trade_off set after a plain fit": (trade_off_set_after_a_plain_fit,
                                        (ValueError, "built with none.*Call fit")),
    "negative weight set on a fitted net": (negative_weight_set_on_a_fitted_net,
                                            (ValueError, r"'alpha' parameter of L2SP must be a float in the range \[0.0, inf\)")),
    "relationship set on a fitted net": (
        lambda c: prepared_param_set_on_a_fitted_net(c, lambda c: c.make(),
                                                     relationship__method="reverse"),
        (ValueError, "CoTuning's relationship__method changed after it was prepared.*Call fit")),
    "auto temperature set on a fitted net": (
        lambda c: prepared_param_set_on_a_fitted_net(
            c, lambda c: c.make(soft_target_temperature=2.0), soft_target_temperature="auto"),
        (ValueError, "CoTuning's soft_target_temperature changed after it was prepared")),
    "probe C set on a fitted LP-FT net": (
        lambda c: prepared_param_set_on_a_fitted_net(
            c, lambda c: FineTuningClassifier(c.tiny, regularizer="lp_ft", **FAST),
            regularizer__C=0.1),
        (ValueError, "LPFT's C changed after it was prepared")),
    "a part's prepared param in a combination": (
        lambda c: prepared_param_set_on_a_fitted_net(
            c, lambda c: FineTuningClassifier(c.tiny, regularizer=["co_tuning", "lp_ft"], **FAST),
            regularizer__lp_ft__max_iter=5),
        (ValueError, "Combined's lp_ft__max_iter changed after it was prepared")),
    "live params set on a fitted net, prepared ones then fit": (
        live_params_set_on_a_fitted_net, "ok"),
    "misnamed loss term": (lambda c: FineTuningClassifier(c.tiny, regularizer=_Misnamed(), **FAST)
                           .fit(c.X, c.y), (ValueError, "named 'b'.*declares \\('a',\\)")),
    # a user's regulariser that breaks the protocol: said at once, in its terms
    "term value a float": (lambda c: custom_regularizer(c, returns="float"),
                           (TypeError, "MyRegularizer's term 't' has a float value; it must be a scalar tensor")),
    "term value a vector": (lambda c: custom_regularizer(c, returns="vector"),
                            (ValueError, r"term 't' has shape \(\d+,\); it must be a scalar")),
    "forward returns a tensor": (lambda c: custom_regularizer(c, returns="tensor"),
                                 (TypeError, "must return a list of LossTerm.*got Tensor")),
    "forward returns one term": (lambda c: custom_regularizer(c, returns="one term"),
                                 (TypeError, "returned one LossTerm; return a list")),
    "forward returns plain tuples": (lambda c: custom_regularizer(c, returns="plain tuple"),
                                     (TypeError, "returned a tuple in its list")),
    "term weight a string": (lambda c: custom_regularizer(c, returns="string weight"),
                             (TypeError, "term 't' has weight '0.1'; it must be a number")),
    "needs with a typo": (lambda c: custom_regularizer(c, needs=frozenset({"feature"})),
                          (ValueError, r"MyRegularizer.needs names \['feature'\].*choose from")),
    "needs as a string": (lambda c: custom_regularizer(c, needs="source"),
                          (TypeError, "needs must be a set of output names")),
    "terms as a string": (lambda c: custom_regularizer(c, terms="t"),
                          (TypeError, "terms must be a tuple of term names")),
    "terms None": (lambda c: custom_regularizer(c, terms=None),
                   (TypeError, "terms must be a tuple of term names.*got None")),
    "parameter stored under another name": (
        lambda c: FineTuningClassifier(c.tiny, regularizer=_StoresElsewhere(), **FAST).fit(c.X, c.y),
        (TypeError, "_StoresElsewhere cannot be cloned.*store each __init__ parameter")),
    "infinite weight": (lambda c: FineTuningClassifier(c.tiny, regularizer="l2_sp",
                                                       regularizer__alpha=float("inf"), **FAST)
                        .fit(c.X, c.y), (ValueError, r"'alpha' parameter of L2SP must be a float in the range \[0.0, inf\)")),
    "divergence names the first batch": (lambda c: FineTuningClassifier(
        c.tiny, regularizer=_NaNTerm(), **FAST).fit(c.X, c.y),
        (FloatingPointError, "epoch 1, batch 1:")),
    "reverse relationship by nested name": (reverse_relationship_by_nested_name, "ok"),
    "BSS with a huge weight": (bss_huge_weight, (FloatingPointError, "diverged")),
    "corrupted gzip": (corrupted_gzip, (ValueError, "train-labels-idx1-ubyte.gz.*damaged")),
    "cuda without CUDA": (cuda_without_cuda, (ValueError, "CUDA is not available.*'auto'")),
    "the abstract Regularizer": (lambda c: FineTuningClassifier(c.tiny, regularizer=Regularizer(),
                                                                **FAST).fit(c.X, c.y),
                                 (TypeError, "does not implement forward.*Subclass")),
    "weights=None message": (weights_none_warning, "ok"),
    "too few optimiser steps": (lambda c: fit(c, X=c.X[:30], y=c.y[:30], batch_size=48, max_epochs=3),
                                ("warns", "only 3 optimiser step.*30 samples, batch_size=48, "
                                          "max_epochs=3.*Lower batch_size \\(e.g. to 7\\)")),
    "too few steps in one whole-set batch": (
        lambda c: fit(c, X=c.X[:30], y=c.y[:30], batch_size=-1, max_epochs=3),
        ("warns", "only 3 optimiser step.*30 samples, batch_size=-1, max_epochs=3")),
    "too few steps after the validation split": (
        lambda c: fit(c, X=c.X[:30], y=c.y[:30], batch_size=4, max_epochs=1,
                      train_split=ValidSplit(0.5)),
        ("warns", "only 4 optimiser step.*30 samples, 15 held out for validation, "
                  "batch_size=4, max_epochs=1.*to 1\\)")),
    "too few steps at the training batch size": (
        lambda c: fit(c, X=c.X[:30], y=c.y[:30], iterator_train__batch_size=64, max_epochs=3),
        ("warns", "only 3 optimiser step.*Lower iterator_train__batch_size")),
    "two learning-rate schedules": (
        lambda c: fit(c, callbacks=[LRScheduler("StepLR", step_size=1)]),
        ("warns", "LRScheduler while lr_schedule='cosine'.*lr_schedule=None")),
    "predefined validation arrays": (predefined_validation_arrays, "ok"),
    "ViT on 8 px arrays": (vit_on_small_arrays,
                           (ValueError, "built for 224x224 px inputs: resize array inputs")),
    "Lite0 with a torchvision name": (lite0_with_a_torchvision_name,
                                      (FileNotFoundError, "'DEFAULT' \\(its bundled weights\\)")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(ctx, name):
    case, expected = CASES[name]
    if expected == "ok":
        case(ctx)
    elif expected[0] == "warns":
        with pytest.warns(Warning, match=expected[1]):
            case(ctx)
    else:
        error, match = expected
        with pytest.raises(error, match=match):
            case(ctx)


def test_the_table_is_large_enough():
    assert len(CASES) >= 60
