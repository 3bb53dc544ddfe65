"""The main job, in a reduced size: its table and its figure."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sk_cotuning import CoTuningClassifier
from sk_cotuning.__main__ import main
from sk_cotuning.plotting import top_source_classes


def test_main_job_reduced(tmp_path, capsys):
    assert main(["--rate", "5%", "--seeds", "1", "--epochs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for text in ("fine-tuning", "Co-Tuning", "paired difference", "error-rate reduction",
                 "top-3 printed source characters per handwritten digit", "0 -> ", "9 -> ", "[seed 1/1]"):
        assert text in out
    figure = tmp_path / "cotuning_digits.png"
    assert figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "cotuning_digits.json").read_text())
    assert len(results["accuracy"]["Co-Tuning"]) == 1
    assert np.array(results["relationship_mean"]).shape == (10, 62)


def test_main_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        main(["--rate", "0"])
    with pytest.raises(SystemExit):
        main(["--seeds", "-1"])
    assert "rate must be" in capsys.readouterr().err


def test_glyphnet_on_flat_digits():
    X, y = load_digits(return_X_y=True)
    clf = CoTuningClassifier("glyphnet", max_epochs=2, verbose=0, random_state=0, batch_size=32)
    clf.fit(X[:200], y[:200])
    assert clf.source_classes_[0] == "0" and clf.relationship_.relationship_.shape == (10, 62)
    assert clf.predict(X[200:210]).shape == (10,)
    # images (n, 8, 8) and flat (n, 64) are the same input
    np.testing.assert_allclose(
        clf.predict_proba(X[:5]), clf.predict_proba(X[:5].reshape(5, 8, 8)), rtol=1e-6
    )
    top = top_source_classes(clf.relationship_.relationship_, clf.source_classes_, k=3)
    assert len(top) == 10 and all(len(row) == 3 for row in top)
