"""Scale-out with accelerate: 2 processes on the CPU, bf16 (dask: test_distributed.py)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sk_cotuning import CoTuningClassifier, FineTuningClassifier

accelerate = pytest.importorskip("accelerate")
from accelerate.state import AcceleratorState  # noqa: E402

from sk_cotuning.accelerate import (  # noqa: E402
    AcceleratedCoTuningClassifier,
    AcceleratedFineTuningClassifier,
)

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
from distributed_fit import backbone, data  # noqa: E402

PARAMS = dict(max_epochs=3, batch_size=16, lr=0.05, verbose=0, random_state=0)


@pytest.fixture
def fresh_accelerate():
    """accelerate keeps process-wide state; each test builds its own Accelerator."""
    AcceleratorState._reset_state(True)
    yield accelerate
    AcceleratorState._reset_state(True)


# ---------------------------------------------------------------- accelerate
@pytest.mark.slow
def test_two_processes_train_one_model_with_one_relationship(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29400 + os.getpid() % 500), str(HELPERS / "distributed_fit.py"),
           str(tmp_path)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = (np.load(tmp_path / f"rank{r}.npz") for r in (0, 1))
    assert int(r0["world"]) == 2 and int(r1["world"]) == 2
    # both ranks prepared from the whole training split: one relationship ...
    np.testing.assert_array_equal(r0["relationship"], r1["relationship"])
    X, y = data()
    single = CoTuningClassifier(backbone(), max_epochs=6, batch_size=16, lr=0.05, verbose=0,
                                random_state=0, device="cpu").fit(X, y)
    # ... the one a single process learns from all 60 images (not from a shard of 30)
    np.testing.assert_allclose(r0["relationship"], single.relationship_.relationship_, atol=1e-6)
    assert r0["losses"][-1] < r0["losses"][0]
    np.testing.assert_allclose(r0["proba"], r1["proba"])  # the ranks hold the same model
    # data-parallel (2 x 8 per step) predicts like one process with batches of 16
    assert (r0["proba"].argmax(1) == single.predict_proba(X).argmax(1)).mean() >= 0.95
    np.testing.assert_allclose(r0["proba"], single.predict_proba(X), atol=0.15)
    # the main process saved parameters that load into a plain estimator
    plain = CoTuningClassifier(backbone(), classes=single.classes_, device="cpu", verbose=0)
    plain.initialize()
    plain.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_allclose(plain.predict_proba(X), r0["proba"], atol=1e-6)


def test_bf16_autocast_on_the_cpu(fresh_accelerate, tmp_path):
    X, y = data()
    dtypes = []
    net = backbone()
    net.body[0].register_forward_hook(lambda m, a, out: dtypes.append(out.dtype))
    clf = AcceleratedCoTuningClassifier(
        net, accelerator=accelerate.Accelerator(cpu=True, mixed_precision="bf16"), **PARAMS,
    ).fit(X, y)
    assert torch.bfloat16 in dtypes  # the training steps ran under autocast
    losses = clf.history[:, "train_loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert np.isfinite(clf.predict_proba(X)).all()
    clf.save_params(f_params=tmp_path / "p.pt")
    assert (tmp_path / "p.pt").exists()


def test_accelerated_fine_tuning_with_a_regularizer(fresh_accelerate):
    X, y = data()
    clf = AcceleratedFineTuningClassifier(
        backbone(), accelerator=accelerate.Accelerator(cpu=True), regularizer="lp_ft", **PARAMS,
    ).fit(X, y)
    assert clf.device_ == "cpu" and clf.regularizer_.probe_accuracy_ > 0.5


def test_pickling_an_accelerated_fit_says_how_to_save_it(fresh_accelerate, tmp_path):
    import pickle

    X, y = data()
    clf = AcceleratedFineTuningClassifier(
        backbone(), accelerator=accelerate.Accelerator(cpu=True), **PARAMS).fit(X, y)
    with pytest.raises(TypeError, match="cannot be pickled.*save_params.*plain "
                                        "FineTuningClassifier"):
        pickle.dumps(clf)
    clf.save_params(f_params=tmp_path / "p.pt")  # what the message says works
    plain = FineTuningClassifier(backbone(), classes=clf.classes_, device="cpu", verbose=0)
    plain.initialize()
    plain.load_params(f_params=tmp_path / "p.pt")
    np.testing.assert_allclose(plain.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_verbose_zero_is_silent_under_accelerate(fresh_accelerate, capsys):
    X, y = data()
    AcceleratedCoTuningClassifier(backbone(), accelerator=accelerate.Accelerator(cpu=True),
                                  **PARAMS).fit(X, y)
    assert "train_loss" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs, accelerator_kwargs, error, match",
    [
        ({"device": "cpu"}, {}, ValueError, "conflicts with the accelerator"),
        ({"device": "auto"}, {}, ValueError, "leave device=None"),
        ({"amp": "bf16"}, {}, ValueError, "set mixed precision on it"),
        ({}, {"mixed_precision": "fp16"}, ValueError, "fp16 mixed precision needs a GPU"),
    ],
)
def test_bad_accelerate_settings(fresh_accelerate, kwargs, accelerator_kwargs, error, match):
    X, y = data()
    acc = accelerate.Accelerator(cpu=True, **accelerator_kwargs)
    with pytest.raises(error, match=match):
        AcceleratedCoTuningClassifier(backbone(), accelerator=acc, **{**PARAMS, **kwargs}).fit(X, y)


def test_not_an_accelerator():
    X, y = data()
    with pytest.raises(TypeError, match="accelerate.Accelerator"):
        AcceleratedCoTuningClassifier(backbone(), accelerator="gpu", **PARAMS).fit(X, y)
