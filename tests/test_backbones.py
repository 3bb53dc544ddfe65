"""Backbone resolution: every torchvision family, weights from every source, offline."""

import os
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from sk_cotuning import available_backbones
from sk_cotuning.backbones import build_backbone
from sk_cotuning.backbones._weights import expected_checkpoint

from conftest import TinyConvNet

FAMILIES = {
    # name: (path of the source head, input size for a forward check or None)
    "resnet18": ("fc", 64),
    "resnext50_32x4d": ("fc", None),
    "wide_resnet50_2": ("fc", None),
    "regnet_x_400mf": ("fc", 64),
    "regnet_y_400mf": ("fc", None),
    "shufflenet_v2_x0_5": ("fc", 64),
    "googlenet": ("fc", 64),
    "inception_v3": ("fc", 80),
    "vgg11": ("classifier.6", None),
    "alexnet": ("classifier.6", None),
    "mobilenet_v2": ("classifier.1", None),
    "mobilenet_v3_small": ("classifier.3", 64),
    "efficientnet_b0": ("classifier.1", 64),
    "convnext_tiny": ("classifier.2", 64),
    "maxvit_t": ("classifier.5", None),
    "mnasnet0_5": ("classifier.1", 64),
    "densenet121": ("classifier", 64),
    "vit_b_32": ("heads.head", 224),
    "swin_t": ("head", 64),
    "swin_v2_t": ("head", None),
}


@pytest.mark.filterwarnings("ignore:weights=None")
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_resolves_its_source_head(name):
    path, size = FAMILIES[name]
    model = torchvision.models.get_model(name, weights=None)
    expected_head = model.get_submodule(path)
    backbone = build_backbone(name, weights=None)
    assert isinstance(backbone.source_head, nn.Linear)
    assert backbone.source_head.out_features == 1000
    assert backbone.source_head.in_features == expected_head.in_features
    assert len(backbone.source_classes) == 1000
    assert isinstance(backbone.features.get_submodule(path), nn.Identity)
    if size is not None:
        backbone.features.eval()
        with torch.no_grad():
            f = backbone.features(torch.zeros(1, 3, size, size))
        assert torch.flatten(f, 1).shape == (1, backbone.source_head.in_features)


def test_model_without_linear_head_is_a_clear_error():
    with pytest.raises(ValueError, match="not an nn.Linear.*Supported families"):
        build_backbone("squeezenet1_0", weights=None)


def test_identity_head_and_wrong_path_are_errors():
    net = TinyConvNet()
    net.fc = nn.Identity()
    with pytest.raises(ValueError, match="Identity, not an nn.Linear"):
        build_backbone(net)
    with pytest.raises(ValueError, match="no submodule 'head'"):
        build_backbone(TinyConvNet(), source_head="head")
    with pytest.raises(ValueError, match="not an nn.Linear"):
        build_backbone(TinyConvNet(), source_head="body.0")


def test_unknown_name_and_bad_types():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet5000'.*glyphnet"):
        build_backbone("resnet5000")
    with pytest.raises(TypeError, match="backbone must be"):
        build_backbone(42)
    with pytest.raises(TypeError, match="weights must be"):
        build_backbone("resnet18", weights=3.5)
    with pytest.raises(ValueError, match="another architecture"):
        build_backbone("resnet18", weights=torchvision.models.ResNet50_Weights.DEFAULT)


def test_user_module_is_copied_never_mutated():
    net = TinyConvNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    backbone = build_backbone(net, source_head="fc")
    assert backbone.source_head is not net.fc
    assert isinstance(net.fc, nn.Linear)  # the user's model still has its head
    with torch.no_grad():
        backbone.source_head.weight.add_(1.0)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_weights_from_local_file_and_state_dict(tmp_path):
    reference = torchvision.models.shufflenet_v2_x0_5(weights=None)
    path = tmp_path / "shufflenet.pth"
    torch.save(reference.state_dict(), path)
    for weights in (path, str(path), reference.state_dict()):
        backbone = build_backbone("shufflenet_v2_x0_5", weights=weights)
        torch.testing.assert_close(backbone.source_head.weight, reference.fc.weight)
        torch.testing.assert_close(
            backbone.features.conv1[0].weight, reference.conv1[0].weight
        )


def test_user_module_weights_from_file(tmp_path):
    source = TinyConvNet()
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    backbone = build_backbone(TinyConvNet(), weights=path)
    torch.testing.assert_close(backbone.source_head.weight, source.fc.weight)


def test_mismatched_state_dict_names_the_difference(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="do not match the shufflenet_v2_x0_5 architecture.*missing keys"):
        build_backbone("shufflenet_v2_x0_5", weights=path)
    state = torchvision.models.shufflenet_v2_x0_5(weights=None).state_dict()
    state["fc.weight"] = torch.zeros(10, 1024)
    with pytest.raises(ValueError, match="shape mismatch.*fc.weight"):
        build_backbone("shufflenet_v2_x0_5", weights=state)


def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth.*does not exist"):
        build_backbone("resnet18", weights=missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="Could not load weights file.*corrupt.pth"):
        build_backbone("resnet18", weights=corrupt)
    with pytest.raises(ValueError, match="neither|not a state dict|Could not load"):
        torch.save([1, 2, 3], tmp_path / "list.pth")
        build_backbone("resnet18", weights=tmp_path / "list.pth")


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.hub.set_dir(str(tmp_path / "torch_home" / "hub"))
    yield tmp_path / "torch_home"
    torch.hub.set_dir(os.path.join(os.path.expanduser(os.getenv("XDG_CACHE_HOME", "~/.cache")), "torch", "hub"))


def test_default_weights_offline_is_a_clear_error(empty_torch_home, monkeypatch):
    def no_network(url, dst, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    expected = expected_checkpoint(torchvision.models.ShuffleNet_V2_X0_5_Weights.DEFAULT)
    assert str(expected).startswith(str(empty_torch_home))
    with pytest.raises(OSError, match="Could not download.*shufflenetv2_x0.5-f707e7126e.pth.*"
                                      "weights='/path.*backbone='efficientnet_lite0'"):
        build_backbone("shufflenet_v2_x0_5", weights="DEFAULT")
    assert not (empty_torch_home / "hub" / "checkpoints").exists()  # no empty folder left behind


@pytest.mark.parametrize("name, suggestion", [("efficientnet-lite0", "'efficientnet_lite0'"),
                                              ("ResNet50", "'resnet50'"), ("glyph_net", "'glyphnet'")])
def test_a_misspelt_backbone_gets_the_close_names(name, suggestion):
    with pytest.raises(ValueError, match=f"Unknown backbone '{name}'. Did you mean {suggestion}.*"
                                         "'efficientnet_lite0'.*'timm/<name>'"):
        build_backbone(name)


def test_default_weights_load_from_the_torch_hub_cache(empty_torch_home, monkeypatch):
    """The real torchvision path: a cached checkpoint is used without any network."""
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    weights = torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1
    reference = torchvision.models.shufflenet_v2_x0_5(weights=None)
    target = expected_checkpoint(weights)
    target.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), target)
    for spec in ("DEFAULT", "IMAGENET1K_V1", "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1", weights):
        backbone = build_backbone("shufflenet_v2_x0_5", weights=spec)
        torch.testing.assert_close(backbone.source_head.weight, reference.fc.weight)
    assert backbone.source_classes[0] == "tench"
    assert backbone.preprocessing.crop_size == 224


def test_weights_none_warns():
    with pytest.warns(UserWarning, match="nothing is transferred.*weights='DEFAULT'"):
        build_backbone("resnet18", weights=None)


def test_available_backbones_lists_builtin_torchvision_and_timm():
    names = available_backbones()
    assert names[:4] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "glyphnet"]
    assert "resnet50" in names and "vit_b_16" in names
    timm = pytest.importorskip("timm")
    assert "timm/resnet18" in names and len(names) == len(set(names))
    assert [n for n in names if n.startswith("timm/")] == [f"timm/{m}" for m in timm.list_models()]
    assert not any(n.startswith("timm/") for n in available_backbones(include_timm=False))



def test_a_sequential_ending_in_linear_has_that_layer_as_its_head():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Sequential(nn.Dropout(0.0), nn.Linear(4, 7)),
    )
    head = model[4][1]
    x = torch.rand(2, 3, 8, 8)
    features_expected = model[:4](x)
    backbone = build_backbone(model, None, None)
    torch.testing.assert_close(backbone.source_head.weight, head.weight)
    torch.testing.assert_close(backbone.source_head.bias, head.bias)
    torch.testing.assert_close(backbone.features(x), features_expected)


def test_a_sequential_without_a_final_linear_says_what_it_ends_in():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="ends in Flatten \\(at '2'\\).*source_head="):
        build_backbone(model, None, None)
