"""FineTuningClassifier: fine-tuning a pre-trained backbone, with a regulariser slot.

Built with skorch's documented hooks: ``initialize_module`` builds the
network (backbone + new target head, the regulariser inside it),
``get_dataset``/``get_iterator`` turn inputs into datasets and apply the
train/eval transforms, ``infer`` adds the device layout and autocast,
``get_loss`` adds the regulariser's named terms, and a callback
(:class:`~sk_cotuning.callbacks.PrepareRegularizer`) prepares the
regulariser once on the training split.  ``fit`` validates, encodes the
labels and seeds, then runs skorch's own ``fit``.

The estimator is a skorch ``NeuralNet`` with scikit-learn's
``ClassifierMixin``, the bases skorch's ``NeuralNetClassifier`` has.  That
class's own additions -- ``classes_`` inferred from each ``y`` that
``check_data`` sees, ``predict`` as ``argmax`` codes, NLLLoss handling,
``valid_acc`` -- are all things this estimator does its own way (labels are
encoded once, through ``classes_``, a fitted attribute; ``predict`` returns
labels; its own callbacks), so it builds on the layer beneath.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.validation import column_or_1d
from skorch import NeuralNet
from skorch.callbacks import LRScheduler
from skorch.dataset import ValidSplit
from skorch.utils import to_tensor
from torch import nn
from torch.utils.data import DataLoader

from sk_cotuning._labels import check_classes, check_fit_targets
from sk_cotuning._skorch import mark_for_validation
from sk_cotuning._validation import Interval, StrOptions, validate_params
from sk_cotuning.backbones import build_backbone
from sk_cotuning.callbacks import default_callbacks
from sk_cotuning.inputs.conversion import (
    check_paths,
    is_path_list,
)
from sk_cotuning.inputs.hooks import InputsMixin, check_fit_params
from sk_cotuning.network import (
    FineTuningNetwork,
    plain_name,
    target_probabilities,
    unwrap,
)
from sk_cotuning.regularization import REGULARIZERS, Regularizer, make_regularizer
from sk_cotuning.regularization._base import checked_terms
from sk_cotuning.runtime import AutoDeviceMixin, check_device, resolve_runtime, seeded

__all__ = ["FineTuningClassifier"]

_SGD_DEFAULTS = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def _label_array(y: Any) -> Any:
    """A list or tuple of labels as an array: skorch indexes ``y[0][0]`` of a list,
    which fails for numpy scalars (``fit(X, list(y))``).  A column vector
    ``(n, 1)`` is flattened here, with scikit-learn's one
    ``DataConversionWarning`` (later checks would each warn again)."""
    if isinstance(y, (list, tuple)):
        y = np.asarray(y)
    if getattr(y, "ndim", 1) == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return y


class FineTuningClassifier(InputsMixin, AutoDeviceMixin, ClassifierMixin, NeuralNet):
    """Fine-tune a pre-trained backbone with a new target head, as a scikit-learn classifier.

    Plain fine-tuning is ``FineTuningClassifier(backbone)``; a regulariser
    (``regularizer="co_tuning"`` or a :class:`~sk_cotuning.regularization.Regularizer`
    instance) adds its named loss terms.  ``fit(X, y)`` validates the data,
    encodes the labels through ``classes_``, builds the network fresh from
    ``backbone`` and ``weights``, prepares the regulariser once on the
    training split from the pre-trained network, then trains with skorch's
    loop.  Each ``fit`` -- so each cross-validation fold -- starts from the
    same pre-trained state and prepares from its own training data only.

    Parameters
    ----------
    backbone : str, nn.Module or callable, default="resnet50"
        A torchvision classification model name, the built-in offline
        ``"glyphnet"``, a model instance (deep-copied when the network is
        built), or a picklable factory returning an ``nn.Module`` or a
        :class:`~sk_cotuning.backbones.Backbone` (works in parallel
        grid-search workers).
    weights : str, WeightsEnum, path-like, dict or None, default="DEFAULT"
        ``"DEFAULT"`` or a torchvision weights name/enum (downloaded only when
        online, or read from ``$TORCH_HOME/hub/checkpoints``), a local
        state-dict file (loaded with ``weights_only=True``), a state dict, or
        ``None`` (random init, with a warning).  For a model instance or a
        factory, ``"DEFAULT"``/``None`` keep its own parameters.
    source_head : str or None, default=None
        Dotted path of the backbone's final ``nn.Linear`` classifier; found by
        rule for torchvision families.
    regularizer : str, Regularizer, list or None, default=None
        A name from ``sk_cotuning.regularization.REGULARIZERS``
        (``"co_tuning"``, ``"l2_sp"``, ``"delta"``, ``"bss"``, ``"lwf"``,
        ``"stochnorm"``, ``"lp_ft"``), an instance (cloned in ``fit``), a
        list of those to combine (e.g. ``["co_tuning", "bss"]``), or ``None``
        for plain fine-tuning.  Set its hyper-parameters with
        ``regularizer__<param>=...`` (``regularizer__<name>__<param>`` in a
        combination); searchable, as is ``regularizer`` itself.
    lr : float, default=0.01
        Learning rate of the new target head (and of a regulariser's own
        parameters).
    backbone_lr_mult : float, default=0.1
        The backbone and the source head train at ``lr * backbone_lr_mult``.
    lr_schedule : {"cosine", "step"} or None, default="cosine"
        Decay over ``max_epochs``: cosine annealing to 0, or a x0.1 step at two
        thirds of training; ``None`` keeps ``lr`` constant (or leaves the
        schedule to a scheduler in ``callbacks``, e.g.
        :class:`~sk_cotuning.callbacks.PortableLRScheduler`).
    max_grad_norm : float or None, default=5.0
        Clip the gradient's global L2 norm (over every trained parameter) to
        this value at each step (skorch's ``GradientNormClipping``); ``None``
        does not clip.  Few labelled images make few, noisy steps, and the
        first ones -- a random target head, a regulariser's term -- can be
        large enough to wreck the pre-trained features.  Measured on EfficientNet-Lite0 -> Fashion-MNIST
        (10 images per class): it raised plain fine-tuning and Co-Tuning
        alike (see the user guide, "Training recipe").
    batch_size : int, default=48
        Mini-batch size for training, preparation and prediction.
    max_epochs : int, default=20
        Training epochs.
    optimizer : torch optimizer class, default=torch.optim.SGD
        With SGD the defaults are momentum 0.9, Nesterov, weight decay 5e-4.
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        The target loss, applied to the target logits.
    train_split : callable or None, default=None
        skorch's validation split; ``None`` trains on all data.
    classes : array-like or None, default=None
        All class labels (each once, in the order of ``predict_proba``'s
        columns), if ``y`` may lack some; with it, ``initialize()`` works
        before ``fit`` (skorch's restore idiom).  Set on a fitted estimator,
        it applies from the next ``fit``: ``classes_`` keeps describing the
        fitted network until then.
    callbacks : list or None, default=None
        Extra skorch callbacks (``EarlyStopping``, ``Checkpoint``, ...).
    train_transform : callable, "eval" or None, default=None
        Applied to raw training samples, for training batches only; it must
        return unnormalised tensors (the network normalises).  ``None``:
        defaults per input kind (random resized crop + flip for image files);
        ``"eval"``: no augmentation.
    eval_transform : callable or None, default=None
        ``None``: for image files and datasets, the weights' own resize and
        centre crop; arrays unchanged.
    test_time_augmentation : {"flip", "ten_crop"} or None, default=None
        Predict from views of each eval-transformed sample, averaging their
        probabilities (``predict_proba``, ``predict``, ``score``, ``forward``;
        not the validation split or the preparation).
    amp : {"auto", "bf16"} or bool, default="auto"
        bf16 autocast: ``"auto"``/``True`` on a CUDA device that supports it,
        off elsewhere; ``"bf16"`` forces it (also on the CPU).  fp16 needs a
        gradient scaler: use the accelerated estimators
        (:class:`~sk_cotuning.accelerate.AcceleratedFineTuningClassifier`, built
        on :class:`skorch.hf.AccelerateMixin`) with
        ``Accelerator(mixed_precision="fp16")``.
    channels_last : {"auto", True, False}, default="auto"
        Channels-last memory format for convolutional backbones (``"auto"``:
        on CUDA only).
    convert_image_arrays : bool, default=True
        For a user's own network: image arrays (``(n, H, W)``, ``(n, H, W, C)``,
        ``(n, C, H, W)``; uint8 or float in ``[0, 1]``) reach it as float32
        ``(n, C, H, W)`` in ``[0, 1]``, as they reach named backbones; 2-D
        arrays (tabular features) pass through.  ``False`` passes every array
        through unchanged (as float32).
    device : str, torch.device or None, default="auto"
        ``"auto"`` uses CUDA when available (resolved when the network is
        built, loaded or unpickled, never in ``__init__``); ``None`` leaves
        the network where it is (skorch's meaning).
    random_state : int, RandomState or None, default=None
        Seeds the network's initialisation and the data order inside ``fit``
        (the global torch RNG is restored afterwards).
    iterator_train, iterator_valid, predict_nonlinearity, warm_start, verbose, compile, \
use_caching, torch_load_kwargs, **kwargs
        As in skorch (``optimizer__*``, ``iterator_train__*``, ``callbacks__*``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    regularizer_ : Regularizer or None
        The fitted regulariser (lives inside ``module_``).
    source_classes_ : list of str or None
        Names of the source classes, where the weights carry them.
    preprocessing_ : Preprocessing or None
        The backbone's input preprocessing.
    n_features_in_ : int
        Number of features, for 2-D (non-image) inputs to a custom network.
    device_ : str
        The device the network was built on.
    module_ : FineTuningNetwork
        ``forward`` returns ``(target_logits, source_logits, features)``.
    history_ : skorch.History
        Per epoch: ``train_loss`` (the total), ``target_loss``, one
        ``<term>_loss`` per regulariser term; with a validation split,
        ``valid_loss`` (the target criterion alone, for every method),
        ``valid_acc`` and ``valid_<term>_loss`` for the terms computed on
        validation batches.
    """

    #: Parameters that may hold nn.Modules (a backbone, a regulariser, v2
    #: transforms).  Declared as prefixes, skorch's documented way to name
    #: special attributes: its ``__setattr__`` (0.10+, skorch PR 597) then
    #: keeps them plain attributes instead of registering a module assigned
    #: to the net as a new component -- so ``net.backbone = model`` works as
    #: ``set_params(backbone=model)`` does, before and after ``fit``.  Of
    #: the prefixed keys only ``regularizer__*`` are parameters; the others
    #: are refused by :meth:`_check_params`.
    _MODULE_PARAMS = ("backbone", "regularizer", "train_transform", "eval_transform")

    prefixes_ = NeuralNet.prefixes_ + list(_MODULE_PARAMS)

    _parameter_constraints: dict = {
        "backbone": [str, nn.Module, callable],
        "source_head": [str, None],
        "regularizer": [StrOptions(set(REGULARIZERS)), Regularizer, list, tuple, None],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "backbone_lr_mult": [Interval(numbers.Real, 0, None, closed="left")],
        "lr_schedule": [StrOptions({"cosine", "step"}), None],
        "max_grad_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "train_transform": [callable, StrOptions({"eval"}), None],
        "eval_transform": [callable, None],
        "test_time_augmentation": [StrOptions({"flip", "ten_crop"}), None],
        "amp": [StrOptions({"auto", "bf16"}), "boolean", None],
        "channels_last": [StrOptions({"auto"}), "boolean"],
        "convert_image_arrays": ["boolean"],
        "random_state": ["random_state"],
        "callbacks": [list, None],
        "train_split": [callable, None],
        "optimizer": [callable],
        "criterion": [callable, nn.Module],
    }

    def __init__(
        self,
        backbone: Any = "resnet50",
        weights: Any = "DEFAULT",
        *,
        source_head: str | None = None,
        regularizer: Any = None,
        lr: float = 0.01,
        backbone_lr_mult: float = 0.1,
        lr_schedule: str | None = "cosine",
        max_grad_norm: float | None = 5.0,
        batch_size: int = 48,
        max_epochs: int = 20,
        optimizer: Any = torch.optim.SGD,
        criterion: Any = torch.nn.CrossEntropyLoss,
        train_split: Any = None,
        classes: Any = None,
        callbacks: Any = None,
        train_transform: Any = None,
        eval_transform: Any = None,
        test_time_augmentation: str | None = None,
        amp: Any = "auto",
        channels_last: Any = "auto",
        convert_image_arrays: bool = True,
        device: Any = "auto",
        random_state: Any = None,
        iterator_train: Any = DataLoader,
        iterator_valid: Any = DataLoader,
        predict_nonlinearity: Any = target_probabilities,
        warm_start: bool = False,
        verbose: int = 1,
        compile: bool = False,  # noqa: A002 - skorch's name
        use_caching: Any = "auto",
        torch_load_kwargs: Any = None,
        **kwargs: Any,
    ) -> None:
        # SGD fine-tuning wants shuffled batches; skorch does not shuffle by default
        kwargs.setdefault("iterator_train__shuffle", True)
        super().__init__(
            module=None,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            train_split=train_split,
            callbacks=callbacks,
            predict_nonlinearity=predict_nonlinearity,
            warm_start=warm_start,
            verbose=verbose,
            device=device,
            compile=compile,
            use_caching=use_caching,
            torch_load_kwargs=torch_load_kwargs,
            **kwargs,
        )
        # the network is built from `backbone`; skorch's module/dataset are unused
        del self.module, self.dataset
        self.classes = classes
        self.backbone = backbone
        self.regularizer = regularizer
        self.weights = weights
        self.source_head = source_head
        self.backbone_lr_mult = backbone_lr_mult
        self.lr_schedule = lr_schedule
        self.max_grad_norm = max_grad_norm
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.test_time_augmentation = test_time_augmentation
        self.amp = amp
        self.channels_last = channels_last
        self.convert_image_arrays = convert_image_arrays
        self.random_state = random_state

    # ---------------------------------------------------------------- sklearn
    def __repr__(self) -> str:
        """Before ``fit``: the parameters that differ from the defaults, as in
        scikit-learn; after: skorch's view of the built network."""
        if getattr(self, "initialized_", False):
            return super().__repr__()
        import inspect

        defaults = {"iterator_train__shuffle": True}  # set by __init__
        for cls in type(self).__mro__:  # a subclass's own defaults first
            if "__init__" not in vars(cls) or cls is object:
                continue
            for key, param in inspect.signature(cls.__init__).parameters.items():
                if param.default is not param.empty:
                    defaults.setdefault(key, param.default)
        shown = []
        for key, value in self.get_params(deep=False).items():
            default = defaults.get(key, inspect.Parameter.empty)
            same = value is default or (
                type(value) is type(default) and not hasattr(value, "__array__")
                and value == default)
            if not same:
                shown.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    #: The parameters prediction reads: set on a fitted estimator, they are
    #: validated when it predicts (the others when it next trains).
    _PREDICT_PARAMS = ("batch_size", "eval_transform", "test_time_augmentation",
                       "convert_image_arrays")

    def _validate(self, names: Any) -> None:
        """Check the parameters ``names`` against ``_parameter_constraints``."""
        params = {name: getattr(self, name) for name in names}
        if isinstance(params.get("batch_size"), numbers.Integral) and params["batch_size"] == -1:
            params["batch_size"] = 1  # skorch's "whole dataset"
        validate_params({name: self._parameter_constraints[name] for name in names}, params,
                        type(self).__name__)

    def _check_params(self) -> None:
        """Validate the parameters (declaratively, plus the regulariser's own)."""
        if isinstance(self.amp, str) and self.amp == "fp16":  # not a value: say where it lives
            raise ValueError(
                "amp='fp16' needs a gradient scaler, which sk-cotuning leaves to accelerate: "
                "use sk_cotuning.accelerate.AcceleratedFineTuningClassifier (skorch's "
                "AccelerateMixin) with Accelerator(mixed_precision='fp16'), or amp='bf16' "
                "(no scaler needed)."
            )
        self._validate(self._parameter_constraints)
        self._reject_nested_module_params()
        check_device(self.requested_device)
        self._make_regularizer()  # validates the spec and its parameters

    def _reject_nested_module_params(self) -> None:
        """``backbone__*``, ``train_transform__*``, ``eval_transform__*`` are not
        parameters (skorch accepts any key under a declared prefix)."""
        owners = [name for name in self._MODULE_PARAMS if name != "regularizer"]
        nested = sorted(key for key in vars(self)
                        if "__" in key and key.split("__", 1)[0] in owners)
        if nested:
            owner = nested[0].split("__", 1)[0]
            raise ValueError(
                f"Got unexpected argument(s) {', '.join(nested)}: {owner} takes no nested "
                f"parameters. Configure the object itself and pass it, e.g. "
                f"{owner}=<your configured module or factory>; only regularizer__* "
                f"parameters are routed."
            )

    # ----------------------------------------------------------------- labels
    def _set_classes(self, y: Any, classes: Any = None) -> None:
        """Start a fresh fit's labels: validate ``y``, set ``classes_`` (partial_fit's
        ``classes``, or those of ``y``; the ``classes`` parameter is set by
        :meth:`initialize_module`) and forget the previous fit's ``n_features_in_``
        (set again from this training data where it applies)."""
        present = check_fit_targets(y, type(self).__name__)
        if classes is not None:
            self.classes_ = check_classes(classes, "partial_fit's classes")
            if self.classes is not None and not np.array_equal(
                    self.classes_, check_classes(self.classes)):
                raise ValueError(
                    f"partial_fit's classes {self.classes_.tolist()!r} differ from the "
                    f"estimator's classes parameter {np.asarray(self.classes).tolist()!r} "
                    f"(labels and order: one column of predict_proba each). Give one of "
                    f"them, or both the same."
                )
        elif self.classes is None:
            self.classes_ = present
        if hasattr(self, "n_features_in_"):
            del self.n_features_in_

    # -------------------------------------------------------------- network
    @property
    def regularizer_(self) -> Regularizer | None:
        """The regulariser inside the fitted network (``None`` for plain fine-tuning)."""
        return unwrap(self.module_).regularizer

    def _make_regularizer(self) -> Regularizer | None:
        """A fresh regulariser from the parameters (subclasses fix their own)."""
        return make_regularizer(self.regularizer, self.get_params_for("regularizer"))

    def _loss_term_names(self) -> tuple[str, ...]:
        try:
            regularizer = self._make_regularizer()
        except (ValueError, TypeError):
            return ()  # reported by _check_params in fit
        return tuple(regularizer.terms) if regularizer is not None else ()

    def _runtime_device(self) -> str:
        """The device this fit computes on (the accelerated variants ask the accelerator)."""
        device = self.device
        return str(torch.device(device)) if device is not None else "cpu"

    def initialize_module(self):
        """Build the backbone fresh, add the target head and the regulariser."""
        self._check_params()
        runtime = resolve_runtime(self._runtime_device(), self.amp, self.channels_last,
                                  accelerated=getattr(self, "accelerator", None) is not None)
        self.device_, self.amp_dtype_ = runtime.device, runtime.amp_dtype
        if self.classes is not None:  # for fit, and for skorch's restore idiom (initialize())
            self.classes_ = check_classes(self.classes)
        try:
            n_classes = len(self.classes_)
        except AttributeError:
            raise ValueError(
                f"{type(self).__name__} builds its network for the classes of y: call fit, "
                f"or, to restore saved parameters, build it with them first: "
                f"{type(self).__name__}(..., classes=[...]).initialize(), then load_params."
            ) from None
        backbone = build_backbone(
            self.backbone, self.weights, self.source_head, verbose=bool(self.verbose)
        )
        self.source_classes_ = backbone.source_classes
        self.preprocessing_ = backbone.preprocessing
        regularizer = self._make_regularizer()
        head = backbone.source_head
        if regularizer is not None:
            regularizer.bind(n_classes, head.out_features, head.in_features)
        needs = regularizer.needs if regularizer is not None else frozenset()
        if "source" in needs and not regularizer.trains_source_head:
            head.requires_grad_(False)  # read (gradients reach the backbone) but kept as is
        self.channels_last_ = runtime.channels_last and backbone.convolutional
        module = FineTuningNetwork(backbone, n_classes, regularizer, "source" in needs,
                                   channels_last=self.channels_last_, amp_dtype=self.amp_dtype_)
        if self.device is None:  # skorch leaves the network where it is
            self.device_ = str(next(module.parameters()).device)
        self.module_ = module
        return self

    def _landed_on(self, device: str) -> None:
        """After unpickling onto ``device``: ``amp="auto"`` means bf16 autocast on a
        CUDA GPU only, so a network fitted on one and loaded on a CPU predicts in
        float32 (CPU bf16 autocast is slow where the CPU lacks bf16 units, and
        not what was asked for); an explicit ``amp="bf16"`` stays."""
        runtime = resolve_runtime(device, self.amp, self.channels_last,
                                  accelerated=getattr(self, "accelerator", None) is not None)
        self.amp_dtype_ = unwrap(self.module_).amp_dtype = runtime.amp_dtype

    def _group_rates(self, lr: float) -> tuple[float, float]:
        """The learning rates of the two parameter groups: (backbone and source head,
        target head and regulariser) -- the one place ``backbone_lr_mult`` applies."""
        return lr * self.backbone_lr_mult, lr

    def initialize_optimizer(self, triggered_directly=None):
        """Two groups: backbone + source head at ``lr * backbone_lr_mult``; the target
        head and a regulariser's parameters at ``lr`` (unless ``optimizer__param_groups``).

        Frozen parameters, and the source head when nothing uses it, are left
        out of the optimiser (they never change, so weight decay must not
        shrink them).
        """
        uses_source = unwrap(self.module_).use_source_head
        named = [(name, param) for name, param in self.get_all_learnable_params()
                 if param.requires_grad
                 and (uses_source or not plain_name(name).startswith("source_head."))]
        args, kwargs = self.get_params_for_optimizer("optimizer", named)
        if self.optimizer is torch.optim.SGD:
            defaults = dict(_SGD_DEFAULTS)
            regularizer = self.regularizer_
            if regularizer is not None and regularizer.weight_decay is not None:
                defaults["weight_decay"] = regularizer.weight_decay  # e.g. L2-SP replaces it
            for key, value in defaults.items():
                kwargs.setdefault(key, value)
        if "param_groups" not in self.get_params_for("optimizer"):
            new = ("target_head.", "regularizer.")
            head = [p for n, p in named if plain_name(n).startswith(new)]
            body = [p for n, p in named if not plain_name(n).startswith(new)]
            body_lr, head_lr = self._group_rates(kwargs["lr"])
            args = ([{"params": body, "lr": body_lr}, {"params": head, "lr": head_lr}],)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        return self

    @property
    def _default_callbacks(self):
        return default_callbacks(self.max_epochs, self.lr_schedule, self._loss_term_names(),
                                 self.max_grad_norm)

    # ---------------------------------------------------------- training step
    def get_loss(self, y_pred: Any, y_true: Any, X: Any = None, training: bool = False):
        """The training loss: the target criterion plus the regulariser's weighted terms.

        In training, each term is logged (unweighted) as ``<term>_loss`` and
        the target criterion as ``target_loss``.  On validation batches the
        loss returned -- so ``valid_loss`` -- is the target criterion alone,
        the same quantity for every method (early stopping and checkpoints
        on ``valid_loss`` compare like with like); each term the regulariser
        computes there is logged as ``valid_<term>_loss``.
        """
        target_logits = y_pred[0]
        y = to_tensor(y_true, device=target_logits.device).long()
        target_loss = self.criterion_(target_logits.float(), y)
        regularizer = self.regularizer_
        terms = [] if regularizer is None else checked_terms(regularizer, regularizer(y_pred, y))
        if not training:
            for term in terms:
                self.history.record_batch(f"valid_{term.name}_loss", term.value.item())
            return target_loss
        loss = target_loss
        values = dict.fromkeys(regularizer.terms if regularizer is not None
                               else self._loss_term_names(), 0.0)
        for term in terms:
            loss = loss + term.weight * term.value
            values[term.name] = term.value.detach()
        total, target_value = loss.item(), target_loss.item()
        if not math.isfinite(total):
            raise FloatingPointError(
                f"The training loss became {total} (target loss {target_value}) "
                f"in epoch {len(self.history)}, batch {len(self.history[-1, 'batches'])}: "
                f"training diverged, so fit stopped instead of returning a network that "
                f"predicts NaN. Lower lr (now {self.lr}) or the regulariser's weight, or "
                f"check the inputs' scale."
            )
        self.history.record_batch("target_loss", target_value)
        for name, value in values.items():
            self.history.record_batch(f"{name}_loss", float(value))
        return loss

    # ------------------------------------------------------------- public API
    def fit(self, X: Any, y: Any, **fit_params: Any) -> "FineTuningClassifier":
        """Build the network, prepare the regulariser on (X, y) and fine-tune.

        Parameters
        ----------
        X : array-like, list of paths, or SliceDataset
            Images ``(n, C, H, W)``, ``(n, H, W, C)`` or ``(n, H, W)`` (uint8
            0..255 or float 0..1; the glyph model takes 0..16 and flat
            ``(n, 64)`` digits), image file paths, or a ``SliceDataset``; for
            a custom network, anything it takes with samples first.
        y : array-like of shape (n_samples,)
            Target labels (ints, strings, ...).
        **fit_params
            Passed to skorch's ``fit``.

        Returns
        -------
        self
        """
        self._check_params()
        check_fit_params(fit_params)
        y = _label_array(y)
        if not self.warm_start or not self.initialized_:
            self._set_classes(y)
        if is_path_list(X):
            check_paths(X)  # a missing file is reported before the network is built
        self._warn_if_few_steps(X)
        self._warn_if_two_schedules()
        with seeded(self.random_state):
            return super().fit(X, y, **fit_params)

    #: A whole fit with fewer optimiser steps than this gets a warning.
    MIN_STEPS = 10

    def _warn_if_few_steps(self, X: Any) -> None:
        """Warn when the whole fit makes too few optimiser steps to learn.

        Counts the batches of the training part (after a ``ValidSplit``
        takes its share) at the training batch size
        (``iterator_train__batch_size`` if set; ``-1``, skorch's whole
        dataset, is one batch).  ``max_epochs=0`` builds and prepares the
        network without training, on purpose, and is not warned about.
        """
        try:
            n = len(X)
        except TypeError:
            return
        epochs = self.max_epochs
        iterator = self.get_params_for("iterator_train")
        name = "iterator_train__batch_size" if "batch_size" in iterator else "batch_size"
        given = iterator.get("batch_size", self.batch_size)
        n_train = n - _validation_size(self.train_split, n)
        if (epochs < 1 or n_train < 1 or not isinstance(given, numbers.Integral)
                or (given < 1 and given != -1)):
            return
        batch = n_train if given == -1 else int(given)
        steps = math.ceil(n_train / batch) * epochs
        if steps < self.MIN_STEPS:
            per_epoch = max(math.ceil(self.MIN_STEPS / epochs), 1)
            held_out = f", {n - n_train} held out for validation" if n_train < n else ""
            warnings.warn(
                f"This fit makes only {steps} optimiser step(s) ({n} samples{held_out}, "
                f"{name}={given}, max_epochs={epochs}): too few for the network to "
                f"learn, so its accuracy may be near chance. Lower {name} (e.g. to "
                f"{max(n_train // per_epoch, 1)}) or raise max_epochs.",
                UserWarning,
                stacklevel=3,
            )

    def _warn_if_two_schedules(self) -> None:
        """Warn when ``callbacks`` hold an ``LRScheduler`` besides ``lr_schedule``'s."""
        if self.lr_schedule is None or not isinstance(self.callbacks, (list, tuple)):
            return
        for callback in self.callbacks:
            if isinstance(callback, tuple) and len(callback) == 2:
                callback = callback[1]
            if isinstance(callback, LRScheduler) or (
                    isinstance(callback, type) and issubclass(callback, LRScheduler)):
                warnings.warn(
                    f"callbacks hold an LRScheduler while lr_schedule="
                    f"{self.lr_schedule!r} also schedules the learning rate: both apply, "
                    f"each scaling the rate the other set. Pass lr_schedule=None to "
                    f"train with your scheduler alone.",
                    UserWarning,
                    stacklevel=3,
                )
                return

    def partial_fit(self, X: Any, y: Any = None, classes: Any = None, **fit_params: Any):
        """Train on (X, y) for ``max_epochs`` without re-initialising a fitted net.

        The first call builds the network and prepares the regulariser from
        that first batch of data; later calls keep both.

        Parameters
        ----------
        X, y
            As in :meth:`fit`.
        classes : array-like or None
            All labels, on the first call, if this batch lacks some (the
            same labels in the same order as the ``classes`` parameter, if
            that is set).
        **fit_params
            Passed to skorch.

        Returns
        -------
        self
        """
        check_fit_params(fit_params)
        if y is None:  # an unlabelled dataset would train every sample as the first class
            raise ValueError(
                f"{type(self).__name__}.partial_fit requires y (the labels of X), but y is None."
            )
        y = _label_array(y)
        self._check_params()  # parameters set on a fitted net are validated too
        if not self.initialized_:
            self._set_classes(y, classes)
        else:
            self._check_same_regularizer()
        return super().partial_fit(X, y, **fit_params)

    def _check_same_regularizer(self) -> None:
        """partial_fit keeps the network: its regulariser must be the one configured."""
        wanted, built = self._make_regularizer(), self.regularizer_
        if type(wanted) is not type(built) or (
                wanted is not None and tuple(wanted.terms) != tuple(built.terms)):
            describe = lambda r: "none" if r is None else type(r).__name__  # noqa: E731
            raise ValueError(
                f"The parameters now ask for regulariser {describe(wanted)}, but the fitted "
                f"network was built with {describe(built)}, and partial_fit keeps the "
                f"network (a regulariser is prepared once, before training). Call fit, which "
                f"builds the network and prepares the regulariser afresh."
            )
        changed = [] if built is None else built.changed_since_prepared(wanted)
        if changed:  # e.g. relationship__method: partial_fit would go on with the old one
            raise ValueError(
                f"{type(built).__name__}'s {', '.join(changed)} changed after it was "
                f"prepared from the pre-trained network (its preparation reads "
                f"{'it' if len(changed) == 1 else 'them'}), and "
                f"partial_fit (or fit with warm_start=True) keeps what was prepared. Call "
                f"fit (warm_start=False), which prepares afresh, or set them back."
            )

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, values of ``classes_``.

        Parameters
        ----------
        X : array-like
            As in :meth:`fit`.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        codes = self.predict_proba(X).argmax(axis=1)
        return self.classes_[codes]

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba` (``-inf`` where a probability is 0).

        Parameters
        ----------
        X : array-like
            As in :meth:`fit`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def _route_params(self, params: dict) -> dict:
        """Handle the parameters a subclass owns; return the rest for ``set_params``."""
        return params

    def set_params(self, **kwargs: Any) -> "FineTuningClassifier":
        """skorch's ``set_params``, plus what skorch 1.4 cannot do on a fitted net.

        On an initialised net: ``lr`` and ``backbone_lr_mult`` rescale both
        parameter groups (skorch would give every group the same ``lr``);
        ``regularizer`` is stored and the next ``fit`` builds and prepares it
        (``partial_fit`` refuses a regulariser the built network lacks);
        ``regularizer__<param>`` updates the live regulariser (a weight applies
        from the next step);
        ``iterator_train__*``/``iterator_valid__*`` apply from the next
        DataLoader on (skorch raises for them).
        """
        kwargs = self._route_params(dict(kwargs))
        if not kwargs:
            return self
        for key in [k for k in self._MODULE_PARAMS if k in kwargs]:
            # "regularizer" on a fitted net: like skorch's module, the next fit builds it
            setattr(self, key, kwargs.pop(key))
        if not getattr(self, "initialized_", False):
            if "callbacks" in kwargs:
                # skorch initialises callbacks inside set_params; an invalid value
                # must fail in fit, as other parameters do (sklearn's
                # check_do_not_raise_errors_in_init_or_set_params)
                self.callbacks = kwargs.pop("callbacks")
            return super().set_params(**kwargs) if kwargs else self
        # on a fitted net, skorch would re-initialise (or raise) for these: apply them here
        applied = {k: kwargs.pop(k) for k in list(kwargs)
                   if k.startswith(("iterator_train__", "iterator_valid__", "regularizer__"))
                   or k in ("lr", "backbone_lr_mult")}
        for key, value in applied.items():
            setattr(self, key, value)
            if "__" in key:
                mark_for_validation(self, key)
        nested = {k[len("regularizer__"):]: v for k, v in applied.items()
                  if k.startswith("regularizer__")}
        if nested and self.regularizer_ is not None:
            self.regularizer_.set_params(**nested)
        if ({"lr", "backbone_lr_mult"} & set(applied)
                and "param_groups" not in self.get_params_for("optimizer")):
            body, head = self.optimizer_.param_groups[:2]
            body["lr"], head["lr"] = self._group_rates(self.lr)
        return super().set_params(**kwargs) if kwargs else self


def _validation_size(train_split: Any, n: int) -> int:
    """How many of ``n`` samples skorch's ``ValidSplit`` holds out (0 for no split
    or a split whose size cannot be known before it runs, e.g. ``predefined_split``)."""
    if not isinstance(train_split, ValidSplit):
        return 0
    cv = train_split.cv
    if isinstance(cv, numbers.Integral) and cv > 1:
        return math.ceil(n / cv)
    if isinstance(cv, float) and 0 < cv < 1:
        return math.ceil(n * cv)
    return 0
