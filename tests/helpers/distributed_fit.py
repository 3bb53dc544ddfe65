"""A data-parallel fit on 2 CPU processes (gloo), for tests/test_scale_out.py.

Run as ``torchrun --nproc_per_node 2 tests/helpers/distributed_fit.py OUT``:
each rank writes ``OUT/rank<r>.npz`` (its relationship, losses and
predictions); rank 0 also saves the parameters to ``OUT/params.pt``.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the conftest's stand-ins
from conftest import TinyConvNet, make_image_data  # noqa: E402

from sk_cotuning.accelerate import AcceleratedCoTuningClassifier  # noqa: E402


def data():
    return make_image_data()


def backbone():
    torch.manual_seed(0)
    return TinyConvNet()


def main(out: Path) -> None:
    torch.set_num_threads(1)
    X, y = data()
    accelerator = Accelerator(cpu=True)
    clf = AcceleratedCoTuningClassifier(
        backbone(), accelerator=accelerator, max_epochs=6, batch_size=8, lr=0.05,
        verbose=0, random_state=0,
    ).fit(X, y)
    rank = accelerator.process_index
    np.savez(out / f"rank{rank}.npz",
             world=accelerator.num_processes,
             relationship=clf.relationship_.relationship_,
             losses=np.array(clf.history[:, "train_loss"]),
             proba=clf.predict_proba(X))
    clf.save_params(f_params=out / "params.pt")  # the main process writes
    # every rank waits for the save, then leaves the process group: a rank that
    # exits with gloo's threads still running can abort ("terminate called
    # without an active exception", SIGABRT), and torchrun then kills the other
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
