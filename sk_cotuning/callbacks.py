"""skorch callbacks that the fine-tuning estimators add."""

from __future__ import annotations

import numbers
import time
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score
from skorch.callbacks import (
    Callback,
    EpochScoring,
    EpochTimer,
    GradientNormClipping,
    LRScheduler,
    PassthroughScoring,
    PrintLog,
)

from sk_cotuning.inputs.conversion import dataset_labels

__all__ = [
    "GradientClipping",
    "PortableLRScheduler",
    "PrepareRegularizer",
    "PreparationInterrupted",
    "default_callbacks",
    "valid_accuracy",
]


#: The scheduler records the rate of the first parameter group, the backbone's
#: (``lr * backbone_lr_mult``); the log names it so (printed as ``backbone_lr``).
BACKBONE_LR = "event_backbone_lr"


class PreparationInterrupted(RuntimeError):
    """Ctrl-C arrived while a regulariser was being prepared; nothing was trained."""


class PrepareRegularizer(Callback):
    """Prepare the regulariser once, on the training split, from the pre-trained network.

    Runs at the start of the first epoch of a fit (``on_epoch_begin`` is the
    first hook that sees the training split, after ``train_split``), before
    any training step, so the network is still the pre-trained one.  It does
    nothing when the regulariser's ``prepared`` buffer is already set: after a
    warm start, or when ``LoadInitState`` restored a checkpoint (the buffers
    are part of the network's parameters file), so a resumed fit keeps the
    relationship learned from the pre-trained head.

    The estimators list it before ``EpochTimer``, so an epoch's ``dur`` is
    training only; the preparation's own time is recorded as
    ``prepare_dur`` in the first epoch's row of ``history``.
    """

    def on_epoch_begin(self, net: Any, dataset_train: Any = None, **kwargs: Any) -> None:
        regularizer = net.regularizer_
        if regularizer is None or bool(regularizer.prepared):
            return
        if dataset_train is None:
            raise ValueError(
                f"{type(regularizer).__name__} must be prepared on the training data, "
                f"but the fit loop passed no training dataset."
            )
        start = time.perf_counter()
        try:
            regularizer.prepare(net, dataset_train)
        except KeyboardInterrupt:
            # skorch swallows KeyboardInterrupt in fit (to keep a partly trained
            # net); here nothing was trained and the regulariser is unprepared
            net.initialized_ = False
            del net.module_  # so check_is_fitted (skorch's: module_ exists) says not fitted
            raise PreparationInterrupted(
                f"Interrupted while preparing {type(regularizer).__name__} (before any "
                f"training step); the estimator is not fitted. Call fit again."
            ) from None
        regularizer.mark_prepared()
        net.history.record("prepare_dur", time.perf_counter() - start)


class GradientClipping(GradientNormClipping):
    """skorch's ``GradientNormClipping``, through the accelerator where there is one.

    Under :class:`skorch.hf.AccelerateMixin` with fp16 the gradients are
    still scaled by the loss scaler when ``on_grad_computed`` runs, so the
    norm is clipped by ``accelerator.clip_grad_norm_``, which unscales them
    first; elsewhere skorch's callback clips as usual.
    """

    def on_grad_computed(self, net: Any, named_parameters: Any, **kwargs: Any) -> None:
        accelerator = getattr(net, "accelerator", None)
        if accelerator is None or self.gradient_clip_value is None:
            super().on_grad_computed(net, named_parameters, **kwargs)
            return
        accelerator.clip_grad_norm_([p for _, p in named_parameters], self.gradient_clip_value,
                                    norm_type=self.gradient_clip_norm_type)


class PortableLRScheduler(LRScheduler):
    """skorch's ``LRScheduler``, pickled without its torch scheduler.

    skorch's ``LRScheduler`` (1.2-1.4) keeps the torch scheduler it builds
    in ``on_train_begin`` as ``lr_scheduler_``, and that holds the optimizer:
    pickling a net pickled a second copy of the optimizer (its parameters
    and momentum) inside ``callbacks_``, outside the state skorch maps to the
    CPU when a pickle is loaded, so a net fitted on a GPU could not be
    unpickled on a machine without one (skorch issue 1096; fixed upstream by
    skorch PR 1150, after 1.4.0), and every pickle was about twice the size
    it needs.  The torch scheduler is rebuilt from ``net.optimizer_`` at the
    next ``on_train_begin`` anyway, so it is left out.  The estimators'
    ``lr_schedule`` uses this class; pass it instead of skorch's for a
    schedule of your own.
    """

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["lr_scheduler_"] = None
        return state


def valid_accuracy(net: Any, X: Any, y: Any) -> float:
    """Accuracy on the validation split, on label indices (works for any labels).

    ``y`` is ``None`` when skorch's scoring runs without caching; the labels
    then come from the dataset itself.
    """
    codes = dataset_labels(X) if y is None else np.asarray(y)
    return float(accuracy_score(codes, net.predict_proba(X).argmax(axis=1)))


def default_callbacks(max_epochs: Any, lr_schedule: Any, term_names: tuple[str, ...],
                      max_grad_norm: Any = None) -> list:
    """The fine-tuning estimators' default callbacks.

    Preparation first (so an epoch's ``dur`` is training only), gradient-norm
    clipping (when ``max_grad_norm`` is a number), the epoch timer, the loss
    columns (``train_loss``, ``target_loss``, one ``<term>_loss`` per
    regulariser term), the validation loss (the target criterion), the
    regulariser's validation terms (``valid_<term>_loss``) and accuracy, the
    learning-rate schedule, and the printed table.
    """
    callbacks = [
        ("prepare_regularizer", PrepareRegularizer()),  # before the timer: dur = training
    ]
    if isinstance(max_grad_norm, numbers.Real) and not isinstance(max_grad_norm, bool):
        callbacks.append(("gradient_clipping", GradientClipping(float(max_grad_norm))))
    callbacks += [
        ("epoch_timer", EpochTimer()),
        ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
        ("target_loss", PassthroughScoring(name="target_loss", on_train=True)),
    ]
    for term in term_names:
        callbacks.append((f"{term}_loss", PassthroughScoring(name=f"{term}_loss", on_train=True)))
    callbacks.append(("valid_loss", PassthroughScoring(name="valid_loss")))
    for term in term_names:  # skipped in epochs without a validation batch of the term
        callbacks.append((f"valid_{term}_loss", PassthroughScoring(name=f"valid_{term}_loss")))
    callbacks += [
        ("valid_acc", EpochScoring(valid_accuracy, name="valid_acc", lower_is_better=False)),
    ]
    epochs = max_epochs if isinstance(max_epochs, numbers.Integral) else 1
    epochs = max(int(epochs), 1)
    schedule = lr_schedule if isinstance(lr_schedule, str) else None
    if schedule == "cosine":
        callbacks.append(("lr_scheduler", PortableLRScheduler(
            "CosineAnnealingLR", T_max=epochs, event_name=BACKBONE_LR)))
    elif schedule == "step":
        callbacks.append(("lr_scheduler", PortableLRScheduler(
            "MultiStepLR", milestones=[max(round(2 * epochs / 3), 1)], gamma=0.1,
            event_name=BACKBONE_LR)))
    # prepare_dur exists in the first epoch only: printed, it would shift the columns
    callbacks.append(("print_log", PrintLog(keys_ignored=["prepare_dur"])))
    return callbacks

