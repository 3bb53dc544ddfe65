"""The main job, in a reduced size: its table and its figure."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sk_cotuning import CoTuningClassifier
from sk_cotuning.__main__ import main
from sk_cotuning.plotting import top_source_classes


def test_main_job_reduced(tmp_path, capsys):
    assert main(["--rate", "5%", "--seeds", "2", "--epochs", "2", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = captured.out
    # 2 epochs: every fit warns; the job says it once, on one line, without source lines
    assert captured.err.count("warning: This fit makes only 8 optimiser step(s)") == 1
    assert "UserWarning" not in captured.err
    for text in ("fine-tuning", "Co-Tuning", "paired difference", "error-rate reduction",
                 "top-3 printed source characters per handwritten digit", "0 -> ", "9 -> ", "[seed 2/2]"):
        assert text in out
    figure = tmp_path / "cotuning_digits.png"
    assert figure.stat().st_size > 10_000
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "cotuning_digits.json").read_text())
    assert len(results["accuracy"]["Co-Tuning"]) == 2
    assert np.array(results["relationship_mean"]).shape == (10, 62)


def test_main_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        main(["--rate", "0"])
    with pytest.raises(SystemExit):
        main(["--seeds", "-1"])
    assert "argument --rate: expected a rate in (0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--rate", "abc"], "argument --rate: expected a rate in (0, 1] or (0%, 100%], e.g. 0.05 or 5%, got 'abc'"),
    (["--lr", "-1"], "argument --lr: expected a positive number, got '-1'"),
    (["fashion", "--size", "abc"], "argument --size: expected a positive integer, got 'abc'"),
    (["fashion", "--per-class", "100000"],
     "argument --per-class: at most 6000 (each Fashion-MNIST class has 6000 training images)"),
])
def test_bad_options_are_one_line_errors_that_name_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "_rate" not in err and "_positive" not in err


@pytest.mark.parametrize("job", [[], ["fashion"]])
def test_an_unwritable_out_folder_stops_before_training(job, tmp_path, capsys, monkeypatch):
    import sk_cotuning.jobs.digits

    def never(*args, **kwargs):
        raise AssertionError("trained although --out cannot be written")

    monkeypatch.setattr(sk_cotuning.jobs.digits, "run_demo", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exit_info:
        main(job + ["--out", str(blocker / "out")])
    assert exit_info.value.code == 2
    assert "argument --out: cannot write to" in capsys.readouterr().err


def test_help_names_the_fashion_job_and_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom sk_cotuning.__main__ import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch imported:', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "sk-cotuning fashion" in out and "torch imported: False" in out


def test_command_line_defaults_are_the_configs():
    from sk_cotuning.__main__ import FASHION_PER_CLASS
    from sk_cotuning.jobs.digits import DemoConfig
    from sk_cotuning.jobs.fashion import FashionConfig

    d, f = DemoConfig(), FashionConfig()
    parsed = {}

    import argparse

    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        ns = original(self, args, namespace)
        parsed[self.prog] = vars(ns)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        for argv in ([], ["fashion"]):
            with pytest.raises(SystemExit):
                main(argv)
    finally:
        argparse.ArgumentParser.parse_args = original
    main_args, fashion_args = parsed["sk-cotuning"], parsed["sk-cotuning fashion"]
    for key in ("rate", "seeds", "epochs", "trade_off", "lr", "out"):
        assert main_args[key] == getattr(d, key), key
    for key in ("per_class", "seeds", "epochs", "lr", "backbone_lr_mult", "size", "test_size",
                "out", "trade_off", "threads"):
        assert fashion_args[key] == getattr(f, key), key
    assert FASHION_PER_CLASS == 6000


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


def test_figures_name_every_source_class_and_hide_no_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sk_cotuning.plotting import plot_paired_accuracy, plot_relationship

    R = np.random.default_rng(0).dirichlet(np.ones(62), size=10)
    chars = [chr(c) for c in range(48, 58)] + [chr(c) for c in range(65, 91)] + \
        [chr(c) for c in range(97, 123)]
    ax = plot_relationship(R, range(10), chars)
    assert [t.get_text() for t in ax.get_xticklabels()] == chars  # 62 columns, all named
    assert "largest" in ax.figure.axes[-1].get_ylabel()  # the colour bar explains the dots
    ax = plot_relationship(R[:, :5], range(10), ["cowboy boot", "Loafer", "a", "b", "c"])
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {90.0}  # long names: vertical
    ax = plot_paired_accuracy({"fine-tuning": [0.5, 0.9], "Co-Tuning": [0.6, 0.95]})
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.y1 <= ax.get_window_extent().y0  # below the axes, over no point
    plt.close("all")


def test_one_seed_reports_no_spread_rather_than_zero():
    from sk_cotuning.jobs.digits import comparison_lines, paired_summary

    one = paired_summary(np.array([0.80]), np.array([0.85]), n_train=60, seconds=1.0)
    assert one["fine_tuning_std"] is None and one["paired_difference_se"] is None
    text = "\n".join(comparison_lines(one))
    assert "± 0.00" not in text and "80.00 (one seed)" in text
    assert "+5.00 points (one seed: no standard error)" in text
    two = paired_summary(np.array([0.80, 0.90]), np.array([0.85, 0.90]), 60, 1.0)
    assert "± 2.50 points (mean ± s.e.)" in "\n".join(comparison_lines(two))  # sd 3.54 / sqrt 2


@pytest.mark.parametrize("call, match", [
    (lambda p, R: p.plot_relationship(R, target_names=["a", "b"]), "2 target names for 3"),
    (lambda p, R: p.plot_relationship(R[0]), "must be a 2-D"),
    (lambda p, R: p.top_source_classes(R, list("vw")), "2 source names for 5"),
    (lambda p, R: p.plot_paired_accuracy({"fine-tuning": [0.9, 0.8], "Co-Tuning": [0.91]}),
     "one accuracy per seed"),
])
def test_the_figures_say_what_is_wrong_with_their_input(call, match):
    import matplotlib

    matplotlib.use("Agg")
    from sk_cotuning import plotting

    R = np.random.default_rng(0).dirichlet(np.ones(5), size=3)
    with pytest.raises(ValueError, match=match):
        call(plotting, R)


def test_the_fashion_job_checks_its_data_before_training(tmp_path, capsys, monkeypatch):
    import sk_cotuning.jobs.fashion

    def never(*args, **kwargs):
        raise AssertionError("trained although the data is missing")

    monkeypatch.setattr(sk_cotuning.jobs.fashion, "run_fashion", never)
    out = ["--out", str(tmp_path / "out")]
    # a --data-home typo: it used to fall back to Debian's copy without a word
    with pytest.raises(SystemExit) as exit_info:
        main(["fashion", "--data-home", str(tmp_path / "typo")] + out)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "argument --data-home: " in err and "typo' is not a folder" in err
    # no data anywhere: the loader's advice, as a one-line error (was a traceback)
    monkeypatch.setattr("sk_cotuning.datasets.fashion_mnist.DEBIAN_DIR", tmp_path / "none")
    monkeypatch.delenv("SK_COTUNING_DATA", raising=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["fashion", "--data-home", str(tmp_path / "empty")] + out)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "apt-get install dataset-fashion-mnist" in err
