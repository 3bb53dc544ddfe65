"""The estimators on Hugging Face ``accelerate``: multi-GPU, mixed precision.

:class:`AcceleratedFineTuningClassifier` and
:class:`AcceleratedCoTuningClassifier` are the estimators composed with
skorch's :class:`skorch.hf.AccelerateMixin` (skorch's documented recipe):
``accelerator.prepare`` wraps the network, the optimiser, the data loaders
and the learning-rate schedule; mixed precision (``"bf16"`` or ``"fp16"``,
with its gradient scaler) is the ``Accelerator``'s; launched with
``accelerate launch`` (or ``torchrun``) on several processes, training is
data-parallel.  A regulariser's preparation (Co-Tuning's relationship,
DELTA's attention, LP-FT's probe) runs on every rank over the *whole*
training split (outputs gathered across ranks), so every rank trains with
the same relationship.  After ``fit`` the network is unwrapped;
``save_params`` writes from the main process only.

Example (one script, any number of processes)::

    from accelerate import Accelerator
    from sk_cotuning.accelerate import AcceleratedCoTuningClassifier

    accelerator = Accelerator(mixed_precision="bf16")
    clf = AcceleratedCoTuningClassifier("resnet50", accelerator=accelerator)
    clf.fit(X, y)            # accelerate launch --num_processes 4 train.py
    clf.save_params(f_params="cotuning.pt")   # main process only
    accelerator.wait_for_everyone()
    accelerator.end_training()   # leave the process group before exiting

End a multi-process script with ``end_training`` (it destroys the process
group): a process that exits with the group still open can abort at exit.
"""

from __future__ import annotations

import pickle

import torch
from skorch.hf import AccelerateMixin

from sk_cotuning._skorch import only_trainable_criteria
from sk_cotuning.co_tuning import CoTuningClassifier
from sk_cotuning.fine_tuning import FineTuningClassifier

__all__ = ["AcceleratedCoTuningClassifier", "AcceleratedFineTuningClassifier"]


class _AcceleratorRuntime:
    """Device and precision come from the accelerator; conflicting settings are errors."""

    def _runtime_device(self) -> str:
        return str(self.accelerator.device)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # DDP broadcasts the main process's buffers at the start of each forward
        # pass, so after the last step each rank holds BatchNorm statistics that
        # its own shard updated: every rank takes the main process's (the ones
        # save_params writes), so sharded prediction uses one model
        if self.accelerator.num_processes > 1 and torch.distributed.is_initialized():
            for buffer in self.module_.buffers():
                if buffer.dtype != torch.bool:
                    torch.distributed.broadcast(buffer, src=0)
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def __getstate__(self) -> dict:
        # skorch's AccelerateMixin (1.2-1.4) keeps accelerate's wrapped optimizer,
        # which pickle refuses with "Can't pickle <function AcceleratedOptimizer.step>"
        try:
            return super().__getstate__()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            plain = next(c for c in type(self).__mro__
                         if c in (CoTuningClassifier, FineTuningClassifier))
            raise TypeError(
                f"A fitted {type(self).__name__} cannot be pickled: accelerate wraps its "
                f"optimizer, and skorch's AccelerateMixin does not unwrap it. Save the weights "
                f"with save_params(f_params=...), and load them with load_params into an "
                f"estimator built with the same parameters and classes= (this class, or the "
                f"plain {plain.__name__}) after initialize()."
            ) from exc

    def _initialize_callbacks(self):
        # AccelerateMixin (skorch 1.2-1.4) sends PrintLog to accelerator.print, and
        # skorch's PrintLog ignores verbose=0 for any sink other than print
        if not self.verbose and self.callbacks__print_log__sink == "auto":
            self.callbacks__print_log__sink = print
        return super()._initialize_callbacks()

    def _initialize_accelerator(self):
        # skorch 1.2-1.4 hands every criterion to accelerator.prepare (see
        # sk_cotuning._skorch.only_trainable_criteria)
        with only_trainable_criteria(self):
            return super()._initialize_accelerator()

    def _check_params(self) -> None:
        super()._check_params()
        accelerator = self.accelerator
        if not all(hasattr(accelerator, a) for a in ("prepare", "device", "mixed_precision")):
            raise TypeError(
                f"accelerator must be an accelerate.Accelerator, got {type(accelerator).__name__}."
            )
        device = self.requested_device
        if device is not None and getattr(accelerator, "device_placement", True):
            raise ValueError(
                f"device={device!r} conflicts with the accelerator, which places the network "
                f"on {accelerator.device}: leave device=None (the default here), or create the "
                f"Accelerator with device_placement=False to place it yourself."
            )
        if self.amp not in ("auto", False, None):
            raise ValueError(
                f"amp={self.amp!r} conflicts with the accelerator: set mixed precision on it, "
                f"Accelerator(mixed_precision='bf16' or 'fp16'), and leave amp='auto'."
            )
        if accelerator.mixed_precision == "fp16" and accelerator.device.type == "cpu":
            raise ValueError(
                "fp16 mixed precision needs a GPU, and this accelerator runs on the CPU: use "
                "Accelerator(mixed_precision='bf16') on the CPU, or run on a GPU."
            )


class AcceleratedFineTuningClassifier(_AcceleratorRuntime, AccelerateMixin, FineTuningClassifier):
    """:class:`~sk_cotuning.FineTuningClassifier` trained through ``accelerate``.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        Decides the device, mixed precision (``mixed_precision="bf16"`` or
        ``"fp16"``) and the processes (data-parallel under ``accelerate
        launch``).
    device : None, default=None
        Left to the accelerator; a device here is an error while the
        accelerator places the network.
    unwrap_after_train : bool, default=True
        Unwrap the network after ``fit`` (for prediction and saving).
    **kwargs
        As in :class:`~sk_cotuning.FineTuningClassifier` (``amp`` must stay
        ``"auto"``: the accelerator's setting wins).

    Notes
    -----
    Not picklable once fitted (skorch's limitation: accelerate's wrapped
    optimizer; ``pickle`` gets a ``TypeError`` that says so): use
    ``save_params``, then ``load_params`` into an estimator of this class
    or the plain one, built with the same parameters and ``classes=``.
    """


class AcceleratedCoTuningClassifier(_AcceleratorRuntime, AccelerateMixin, CoTuningClassifier):
    """:class:`~sk_cotuning.CoTuningClassifier` trained through ``accelerate``.

    Parameters as in :class:`AcceleratedFineTuningClassifier` and
    :class:`~sk_cotuning.CoTuningClassifier`.  The relationship is learned on
    every rank from the whole training split (gathered across ranks), so
    all ranks hold the same matrix.
    """

