"""CoTuningClassifier: Co-Tuning on skorch's NeuralNetClassifier."""

from __future__ import annotations

import numbers
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import numpy as np
import torch
from sklearn.base import clone
from sklearn.metrics import accuracy_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring, EpochTimer, LRScheduler, PassthroughScoring, PrintLog
from skorch.dataset import unpack_data
from skorch.helper import SliceDataset
from skorch.utils import TeeGenerator, to_tensor
from torch.utils.data import DataLoader, Dataset

from sk_cotuning.backbones import build_backbone, preprocessing_for
from sk_cotuning.data import (
    ArrayDataset,
    TenCrop,
    TransformedDataset,
    as_tensor_input,
    dataset_kind,
    default_transforms,
    is_path_list,
    make_dataset,
)
from sk_cotuning.losses import CoTuningLoss
from sk_cotuning.module import CoTuningNetwork
from sk_cotuning.relationship import CategoryRelationship, leep_score

__all__ = ["CoTuningClassifier", "target_probabilities"]

_SGD_DEFAULTS = {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def target_probabilities(target_logits: torch.Tensor) -> torch.Tensor:
    """Softmax of the target logits in float32 (the default ``predict_nonlinearity``).

    skorch hands ``predict_proba``'s nonlinearity the first network output,
    which for :class:`~sk_cotuning.module.CoTuningNetwork` is the target
    logits ``(N, n_classes)``.
    """
    return torch.softmax(target_logits.float(), dim=-1)


def _valid_accuracy(net: "CoTuningClassifier", X: Dataset, y: Any) -> float:
    """Accuracy on the validation split, on label indices (works for any labels)."""
    return float(accuracy_score(np.asarray(y), net.predict_proba(X).argmax(axis=1)))


def resolve_device(device: Any) -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; others unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _FlipViews:
    """Test-time views: the (eval-transformed) sample and its mirror image."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __call__(self, sample: Any) -> torch.Tensor:
        from torchvision.transforms import v2

        x = self.base(sample) if self.base is not None else sample
        x = v2.ToImage()(x) if not isinstance(x, torch.Tensor) else x
        return torch.stack([torch.as_tensor(x), torch.as_tensor(x).flip(-1)])


class CoTuningClassifier(NeuralNetClassifier):
    """Co-Tuning transfer learning as a scikit-learn classifier.

    Fine-tunes a pre-trained backbone with a new *target head* while keeping
    its pre-trained classifier as a *source head*, trained on soft targets
    from the learned category relationship ``p(source class | target
    class)`` (You et al., "Co-Tuning for Transfer Learning", NeurIPS 2020)::

        loss = CE(target_head(f), y) + trade_off * softCE(source_head(f), R[y])

    ``fit(X, y)`` validates the data and encodes the labels through
    ``classes_``, builds the network fresh from ``backbone`` and ``weights``,
    runs the source model over the training data (eval mode, no grad) to fit
    a clone of ``relationship`` (stored as ``relationship_``), then trains
    with skorch's loop.  Each ``fit`` -- so each cross-validation fold --
    learns its relationship from its own training data only.

    Parameters
    ----------
    backbone : str or nn.Module, default="resnet50"
        A torchvision classification model name (any of
        ``torchvision.models.list_models(module=torchvision.models)``), the
        built-in offline ``"glyphnet"``, or a model instance (deep-copied when
        the network is built, so the object passed is never modified and every
        fit starts from the same weights).
    weights : str, WeightsEnum, path-like, dict or None, default="DEFAULT"
        ``"DEFAULT"`` or a torchvision weights name/enum (downloaded into
        ``$TORCH_HOME/hub/checkpoints`` only when online, or read from there),
        a path to a local state-dict file (loaded with ``weights_only=True``),
        a state dict, or ``None`` (random init; Co-Tuning then has nothing to
        transfer, and a warning says so).  For an ``nn.Module`` backbone,
        ``"DEFAULT"``/``None`` keep its own parameters.
    source_head : str or None, default=None
        Dotted path of the backbone's final ``nn.Linear`` classifier (``"fc"``,
        ``"classifier.6"``); found by rule for torchvision families.
    trade_off : float, default=2.3
        Weight of the Co-Tuning term.  ``0`` is exactly plain fine-tuning: no
        relationship pass, the source head is neither evaluated nor trained.
    relationship : CategoryRelationship or None, default=None
        The relationship estimator, cloned in ``fit``; ``None`` means
        ``CategoryRelationship()`` (the direct method).  Searchable as
        ``relationship__method`` etc.  It must use ``input="logits"``.
    lr : float, default=0.01
        Learning rate of the new target head.
    backbone_lr_mult : float, default=0.1
        The backbone and the source head train at ``lr * backbone_lr_mult``.
    lr_schedule : {"cosine", "step"} or None, default="cosine"
        Decay over ``max_epochs``: cosine annealing to 0, or the paper's
        x0.1 step at two thirds of training.  ``None`` keeps ``lr`` constant.
    batch_size : int, default=48
        Mini-batch size for training, the relationship pass and prediction.
    max_epochs : int, default=20
        Training epochs.
    optimizer : torch optimizer class, default=torch.optim.SGD
        With SGD the defaults are momentum 0.9, Nesterov, weight decay 5e-4
        (override with ``optimizer__momentum=...`` etc.).
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        The target loss, applied to the target logits.
    train_split : callable or None, default=None
        skorch's validation split; ``None`` trains on all data (in low-data
        transfer a held-out 20% is a cost the user opts into, e.g. with
        ``skorch.dataset.ValidSplit(5, stratified=True)``).
    classes : array-like or None, default=None
        All class labels, if ``y`` may lack some; those get the source
        marginal as their relationship row.
    callbacks : list or None, default=None
        Extra skorch callbacks (``EarlyStopping``, ``Checkpoint``, ...).
    train_transform : callable, "eval" or None, default=None
        Applied to each raw training sample (a PIL image for files and
        datasets, a ``(C, H, W)`` tensor for arrays), for training batches
        only; the relationship pass, prediction and validation use
        ``eval_transform``.  It must return an unnormalised tensor (uint8, or
        float in ``[0, 1]``): the network normalises.  ``None``: for image
        files and datasets ``RandomResizedCrop(crop_size)`` + horizontal flip;
        for arrays of a torchvision backbone a horizontal flip; no
        augmentation for the glyph model or a custom network.  ``"eval"``: no
        augmentation (the eval transform).
    eval_transform : callable or None, default=None
        ``None``: for image files and datasets, the weights' own evaluation
        preprocessing (resize to ``resize_size``, centre crop ``crop_size``)
        without the normalisation; arrays unchanged.
    test_time_augmentation : {"flip", "ten_crop"} or None, default=None
        Average ``predict_proba`` over views: the image and its mirror, or
        the paper's 10-crop (four corners and the centre, each mirrored) at
        the weights' crop size (87.5% of the side for arrays).
    amp : {"auto", True, False, "bf16", "fp16"}, default="auto"
        Mixed precision.  ``"auto"``/``True``: bf16 autocast on a CUDA device
        that supports it, else fp16 with a gradient scaler; off on the CPU.
        ``"bf16"``/``"fp16"`` force a dtype.
    channels_last : {"auto", True, False}, default="auto"
        Channels-last memory format for convolutional backbones (``"auto"``:
        on CUDA only).
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState or None, default=None
        Seeds network initialisation and data order (inside ``fit`` only;
        the global torch RNG is restored afterwards).
    iterator_train, iterator_valid : DataLoader class, default=DataLoader
        Configure with ``iterator_train__num_workers=4`` etc.  Training
        batches are shuffled (``iterator_train__shuffle=True`` by default).
    predict_nonlinearity : callable, default=target_probabilities
        Maps the target logits to probabilities.
    warm_start : bool, default=False
        Continue training (and keep the relationship) on repeated ``fit``.
    verbose : int, default=1
        Print the epoch table and a progress bar for the relationship pass.
    compile : bool, default=False
        ``torch.compile`` the network (skorch's ``compile__*`` arguments apply).
    use_caching, torch_load_kwargs
        As in skorch.
    **kwargs
        Any other skorch parameter: ``optimizer__*``, ``iterator_train__*``,
        ``callbacks__*``, ...

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    relationship_ : CategoryRelationship or None
        The relationship fitted on this fit's training data (``None`` when
        ``trade_off=0``); ``relationship_.relationship_`` is the
        ``(n_classes, n_source)`` matrix.
    leep_ : float or None
        LEEP score of the source model on the training data.
    source_classes_ : list of str or None
        Names of the source classes, where the weights carry them.
    n_features_in_ : int
        Number of features, for 2-D (non-image) inputs to a custom network.
    device_ : str
        The device the network lives on.
    module_ : CoTuningNetwork
        The network; ``forward`` returns ``(target_logits, source_logits)``.
    history_ : skorch.History
        Per epoch: ``train_loss``, ``target_loss``, ``cotuning_loss`` (and
        ``valid_loss``/``valid_acc`` with a ``train_split``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_cotuning import CoTuningClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = CoTuningClassifier(backbone="glyphnet", max_epochs=2, verbose=0,
    ...                          random_state=0).fit(X[:200], y[:200])
    >>> clf.predict_proba(X[:3]).shape
    (3, 10)
    """

    def __init__(
        self,
        backbone: Any = "resnet50",
        weights: Any = "DEFAULT",
        *,
        source_head: str | None = None,
        trade_off: float = 2.3,
        relationship: Any = None,
        lr: float = 0.01,
        backbone_lr_mult: float = 0.1,
        lr_schedule: str | None = "cosine",
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
            classes=classes,
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
        self.backbone = backbone
        self.weights = weights
        self.source_head = source_head
        self.trade_off = trade_off
        self.relationship = relationship
        self.backbone_lr_mult = backbone_lr_mult
        self.lr_schedule = lr_schedule
        self.train_transform = train_transform
        self.eval_transform = eval_transform
        self.test_time_augmentation = test_time_augmentation
        self.amp = amp
        self.channels_last = channels_last
        self.random_state = random_state

    def __setattr__(self, name: str, value: Any) -> None:
        # These parameters may hold nn.Modules (a backbone, torchvision v2
        # transforms): parameters, not components skorch should register.
        if name in ("backbone", "train_transform", "eval_transform"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ----------------------------------------------------------------- sklearn
    def _get_param_names(self):
        # skorch lists every attribute not ending in "_", which includes its
        # private bookkeeping (_params_to_validate); parameters are public.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.classifier_tags.multi_label = False
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return bool(getattr(self, "initialized_", False)) and hasattr(self, "classes_inferred_")

    # -------------------------------------------------------------- validation
    def _check_params(self) -> None:
        def number(name: str, value: Any, low: float, strict: bool) -> None:
            ok = (
                isinstance(value, numbers.Real)
                and not isinstance(value, bool)
                and np.isfinite(value)
                and (value > low if strict else value >= low)
            )
            if not ok:
                bound = f"> {low}" if strict else f">= {low}"
                raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")

        number("trade_off", self.trade_off, 0.0, strict=False)
        number("lr", self.lr, 0.0, strict=True)
        number("backbone_lr_mult", self.backbone_lr_mult, 0.0, strict=False)
        if not isinstance(self.max_epochs, numbers.Integral) or self.max_epochs < 0:
            raise ValueError(f"max_epochs must be a non-negative int, got {self.max_epochs!r}.")
        if not isinstance(self.batch_size, numbers.Integral) or (
            self.batch_size < 1 and self.batch_size != -1
        ):
            raise ValueError(f"batch_size must be a positive int (or -1), got {self.batch_size!r}.")
        if self.lr_schedule not in (None, "cosine", "step"):
            raise ValueError(
                f"lr_schedule must be 'cosine', 'step' or None, got {self.lr_schedule!r}."
            )
        if self.amp not in ("auto", True, False, "bf16", "fp16", None):
            raise ValueError(f"amp must be 'auto', True, False, 'bf16' or 'fp16', got {self.amp!r}.")
        if self.test_time_augmentation not in (None, "flip", "ten_crop"):
            raise ValueError(
                f"test_time_augmentation must be None, 'flip' or 'ten_crop', got "
                f"{self.test_time_augmentation!r}."
            )
        if not (self.train_transform in (None, "eval") or callable(self.train_transform)):
            raise TypeError(
                f"train_transform must be a callable, 'eval' or None, got "
                f"{self.train_transform!r}."
            )
        if not (self.eval_transform is None or callable(self.eval_transform)):
            raise TypeError(
                f"eval_transform must be a callable or None, got {self.eval_transform!r}."
            )
        if self.channels_last not in ("auto", True, False):
            raise ValueError(
                f"channels_last must be 'auto', True or False, got {self.channels_last!r}."
            )
        rel = self.relationship
        if rel is not None:
            if not hasattr(rel, "fit") or not hasattr(rel, "soft_targets"):
                raise TypeError(
                    f"relationship must be a CategoryRelationship (or None), got "
                    f"{type(rel).__name__}."
                )
            if rel.get_params().get("input", "logits") != "logits":
                raise ValueError(
                    "relationship must use input='logits': CoTuningClassifier feeds it the "
                    "source head's logits."
                )

    def _check_X(self, X: Any, reset: bool) -> torch.Tensor:
        pre = preprocessing_for(self.backbone)
        Xt = as_tensor_input(X, pre)
        if pre is None and Xt.ndim == 2:
            if reset:
                self.n_features_in_ = int(Xt.shape[1])
            elif hasattr(self, "n_features_in_") and Xt.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {Xt.shape[1]} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        elif reset and hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return Xt

    def _dataset(self, X: Any, codes: np.ndarray | None, reset: bool) -> Dataset:
        """The raw-sample Dataset for X: image files, a SliceDataset, or arrays."""
        if not (is_path_list(X) or isinstance(X, (Dataset, SliceDataset))):
            return ArrayDataset(self._check_X(X, reset=reset), codes)
        dataset = make_dataset(X, codes, preprocessing_for(self.backbone))
        if reset and hasattr(self, "n_features_in_"):
            del self.n_features_in_
        return dataset

    def _encode_fit_labels(self, y: Any, n_samples: int) -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if len(y) != n_samples:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{n_samples}, {len(y)}]."
            )
        present = np.unique(y)
        if len(present) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in y, got 1 class "
                f"({present[0]!r})."
            )
        self.classes_inferred_ = present if self.classes is None else np.asarray(self.classes)
        return self._encode_labels(y, n_samples)

    # ---------------------------------------------------------------- skorch
    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("target_loss", PassthroughScoring(name="target_loss", on_train=True)),
            ("cotuning_loss", PassthroughScoring(name="cotuning_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("valid_acc", EpochScoring(_valid_accuracy, name="valid_acc", lower_is_better=False)),
        ]
        epochs = self.max_epochs if isinstance(self.max_epochs, numbers.Integral) else 1
        epochs = max(int(epochs), 1)
        schedule = self.lr_schedule if isinstance(self.lr_schedule, str) else None
        if schedule == "cosine":
            callbacks.append(("lr_scheduler", LRScheduler("CosineAnnealingLR", T_max=epochs)))
        elif schedule == "step":
            callbacks.append(("lr_scheduler", LRScheduler(
                "MultiStepLR", milestones=[max(round(2 * epochs / 3), 1)], gamma=0.1)))
        callbacks.append(("print_log", PrintLog()))
        return callbacks

    @contextmanager
    def _skorch_device(self) -> Iterator[None]:
        """Show skorch the resolved device (not ``"auto"``) while it works.

        ``device`` keeps the user's value (``"auto"``) as a parameter; inside
        ``fit``, ``predict_proba`` and ``forward`` skorch sees the resolved one.
        """
        requested = self.device
        if requested != "auto" and not getattr(self, "initialized_", False):
            yield
            return
        resolved = getattr(self, "device_", None) if self.initialized_ else None
        resolved = resolved or resolve_device(requested)
        object.__setattr__(self, "device", resolved)
        try:
            yield
        finally:
            if self.device == resolved:  # unless set_params(device=...) changed it
                object.__setattr__(self, "device", requested)

    def initialize(self):
        """Resolve the device and precision, then initialise as skorch does."""
        self._check_params()
        self.device_ = str(resolve_device(self.device))
        on_cuda = torch.device(self.device_).type == "cuda"
        amp = self.amp
        if amp in ("auto", True):
            amp = (("bf16" if torch.cuda.is_bf16_supported() else "fp16") if on_cuda else None)
        self.amp_dtype_ = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.grad_scaler_ = (
            torch.amp.GradScaler("cuda") if self.amp_dtype_ is torch.float16 and on_cuda else None
        )
        with self._skorch_device():
            super().initialize()
        return self

    def initialize_module(self):
        """Build the backbone fresh and add the target head."""
        if not hasattr(self, "classes_inferred_"):
            raise ValueError(
                f"{type(self).__name__} builds its network for the classes of y: call fit."
            )
        backbone = build_backbone(
            self.backbone, self.weights, self.source_head, verbose=bool(self.verbose)
        )
        self.source_classes_ = backbone.source_classes
        self.preprocessing_ = backbone.preprocessing
        module = CoTuningNetwork(backbone, len(self.classes_), use_source_head=self.trade_off > 0)
        on_cuda = torch.device(self.device_).type == "cuda"
        use_cl = self.channels_last is True or (self.channels_last == "auto" and on_cuda)
        self.channels_last_ = bool(use_cl and backbone.convolutional)
        if self.channels_last_:
            module = module.to(memory_format=torch.channels_last)
        self.module_ = module
        self.relationship_pending_ = True
        return self

    def initialize_criterion(self):
        """The target criterion, plus the Co-Tuning soft-target loss."""
        super().initialize_criterion()
        self.cotuning_criterion_ = CoTuningLoss()
        return self

    def initialize_optimizer(self, triggered_directly=None):
        """Two parameter groups: backbone + source head at ``lr * backbone_lr_mult``,
        target head at ``lr`` (unless ``optimizer__param_groups`` is given)."""
        named = [
            (name, p)
            for name, p in self.module_.named_parameters()
            if p.requires_grad and (self.trade_off > 0 or not name.startswith("source_head."))
        ]
        args, kwargs = self.get_params_for_optimizer("optimizer", named)
        kwargs.setdefault("lr", self.lr)
        if self.optimizer is torch.optim.SGD:
            for key, value in _SGD_DEFAULTS.items():
                kwargs.setdefault(key, value)
        if "param_groups" not in self.get_params_for("optimizer"):
            head = [p for n, p in named if n.startswith("target_head.")]
            body = [p for n, p in named if not n.startswith("target_head.")]
            args = ([
                {"params": body, "lr": kwargs["lr"] * self.backbone_lr_mult},
                {"params": head, "lr": kwargs["lr"]},
            ],)
        self.optimizer_ = self.optimizer(*args, **kwargs)
        return self

    def set_params(self, **kwargs):
        """Set parameters, skorch's way, plus two of this estimator's own.

        ``relationship__<param>`` is set on the ``relationship`` estimator
        (created as ``CategoryRelationship()`` when it is ``None``), so grid
        searches can tune it; on a fitted net, ``lr`` and
        ``backbone_lr_mult`` rescale both parameter groups, and
        ``iterator_train__*``/``iterator_valid__*`` apply from the next
        DataLoader on.
        """
        nested = {
            key[len("relationship__"):]: kwargs.pop(key)
            for key in list(kwargs)
            if key.startswith("relationship__")
        }
        if "relationship" in kwargs:
            object.__setattr__(self, "relationship", kwargs.pop("relationship"))
        if nested:
            if self.relationship is None:  # the default, made explicit to be tuned
                object.__setattr__(self, "relationship", CategoryRelationship())
            self.relationship.set_params(**nested)
        # DataLoader settings take effect at the next iterator; skorch 1.4's
        # set_params raises on them once the net is initialised
        for key in [k for k in kwargs if k.startswith(("iterator_train__", "iterator_valid__"))]:
            object.__setattr__(self, key, kwargs.pop(key))
            self._params_to_validate.add(key)
        if "callbacks" in kwargs and not self.initialized_:
            # validated when fit initialises the callbacks, as other parameters are
            object.__setattr__(self, "callbacks", kwargs.pop("callbacks"))
        lr_keys = {k: kwargs.pop(k) for k in ("lr", "backbone_lr_mult") if k in kwargs}
        for key, value in lr_keys.items():
            object.__setattr__(self, key, value)
        if lr_keys and self.initialized_ and "param_groups" not in self.get_params_for("optimizer"):
            body, head = self.optimizer_.param_groups[:2]
            body["lr"], head["lr"] = self.lr * self.backbone_lr_mult, self.lr
        if not kwargs:
            return self
        with self._skorch_device() if self.initialized_ and "device" not in kwargs else nullcontext():
            return super().set_params(**kwargs)

    def __setstate__(self, state):
        requested = state["device"]
        state["device"] = state.get("device_") or resolve_device(requested)
        super().__setstate__(state)
        self.device_ = str(self.device)  # skorch falls back to the CPU if needed
        self.device = requested

    def check_data(self, X, y=None):
        """Labels were validated and encoded in :meth:`fit`; nothing to infer here."""

    def get_dataset(self, X, y=None):
        if isinstance(X, Dataset):
            return X
        return self._dataset(X, y, reset=False)

    def _transform(self, dataset: Dataset, training: bool):
        """The train or eval transform for this dataset's kind of samples."""
        kind = dataset_kind(dataset)
        if kind is None:
            return None
        train_default, eval_default = default_transforms(kind, self.preprocessing_)
        eval_t = eval_default if self.eval_transform is None else self.eval_transform
        if not training or self.train_transform == "eval":
            return eval_t
        return train_default if self.train_transform is None else self.train_transform

    def get_iterator(self, dataset, training=False):
        """skorch's DataLoader, over the dataset with the train or eval transform."""
        transform = self._transform(dataset, training)
        if transform is not None:
            dataset = TransformedDataset(dataset, transform)
        return super().get_iterator(dataset, training=training)

    def _to_device(self, x) -> torch.Tensor:
        """A batch on the network's device, channels-last where configured."""
        x = to_tensor(x, device=self.device_)
        if getattr(self, "channels_last_", False) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def infer(self, x, **fit_params):
        """Forward pass on the device, with autocast and channels-last as configured."""
        x = self._to_device(x)
        with self._autocast():
            return self.module_(x, **fit_params)

    def _autocast(self):
        if self.amp_dtype_ is None:
            return nullcontext()
        return torch.autocast(torch.device(self.device_).type, dtype=self.amp_dtype_)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """``CE(target) + trade_off * softCE(source, R[y])``; logs both terms."""
        target_logits, source_logits = y_pred
        y_true = to_tensor(y_true, device=self.device_).long()
        target_loss = self.criterion_(target_logits.float(), y_true)
        if self.trade_off > 0:
            if source_logits.shape[1] == 0:
                raise ValueError(
                    "trade_off > 0 but the network was built with trade_off=0 (no source "
                    "head); refit with warm_start=False."
                )
            soft = self.module_.soft_targets[y_true]
            cotuning_loss = self.cotuning_criterion_(source_logits, soft)
            loss = target_loss + self.trade_off * cotuning_loss
        else:
            cotuning_loss = torch.zeros((), device=target_loss.device)
            loss = target_loss
        if training:
            self.history.record_batch("target_loss", target_loss.item())
            self.history.record_batch("cotuning_loss", cotuning_loss.item())
        return loss

    def train_step_single(self, batch, **fit_params):
        if self.grad_scaler_ is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        """skorch's step; with fp16, scaled backward, unscale, step, update."""
        if self.grad_scaler_ is None:
            return super().train_step(batch, **fit_params)
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.grad_scaler_.unscale_(self.optimizer_)
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            batch=batch,
            training=True,
        )
        self.grad_scaler_.step(self.optimizer_)
        self.grad_scaler_.update()
        return step

    def get_split_datasets(self, X, y=None, **fit_params):
        """skorch's split, then the relationship pass on the training part."""
        dataset_train, dataset_valid = super().get_split_datasets(X, y, **fit_params)
        if getattr(self, "relationship_pending_", False):
            if self.trade_off > 0:
                self._learn_relationship(dataset_train)
            else:
                self.relationship_, self.leep_ = None, None
            self.relationship_pending_ = False
        return dataset_train, dataset_valid

    # ------------------------------------------------------------ Co-Tuning
    def source_logits(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Source-head logits and label indices over ``dataset`` (eval, no grad).

        Returns
        -------
        logits : ndarray of shape (n_samples, n_source)
        codes : ndarray of shape (n_samples,)
        """
        self.module_.eval()
        iterator = self.get_iterator(dataset, training=False)
        if self.verbose:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="relationship pass", unit="batch", leave=False)
        logits, codes = [], []
        with torch.no_grad():
            for Xi, yi in iterator:
                x = self._to_device(Xi)
                with self._autocast():
                    s = self.module_.source_head(self.module_.embed(x))
                logits.append(s.float().cpu())
                codes.append(torch.as_tensor(yi).reshape(-1))
        return torch.cat(logits).numpy().astype(np.float64), torch.cat(codes).numpy()

    def _learn_relationship(self, dataset: Dataset) -> None:
        logits, codes = self.source_logits(dataset)
        labels = self.classes_[codes]
        rel = CategoryRelationship() if self.relationship is None else clone(self.relationship)
        self.relationship_ = rel.fit(logits, labels)
        self.leep_ = leep_score(logits, labels, temperature=rel.temperature)
        table = np.empty((len(self.classes_), logits.shape[1]))
        seen = np.isin(self.classes_, rel.classes_)
        table[seen] = rel.soft_targets(self.classes_[seen])
        table[~seen] = rel.source_marginal_  # a class with no sample: never NaN
        self.module_.soft_targets.copy_(torch.as_tensor(table, dtype=torch.float32))

    # ------------------------------------------------------------- public API
    def fit(self, X, y, **fit_params):
        """Learn the relationship on (X, y) and fine-tune with Co-Tuning.

        Parameters
        ----------
        X : array-like
            Images ``(n, C, H, W)``, ``(n, H, W, C)`` or ``(n, H, W)`` (uint8
            0..255 or float 0..1; the glyph model takes 0..16 and flat
            ``(n, 64)`` digits); for an ``nn.Module`` backbone, anything it
            takes with samples first.
        y : array-like of shape (n_samples,)
            Target labels (ints, strings, ...).
        **fit_params
            Passed to skorch's ``fit`` (and the module's ``forward``).

        Returns
        -------
        self : CoTuningClassifier
        """
        self._check_params()
        dataset = self._dataset(X, None, reset=True)
        dataset.y = torch.as_tensor(self._encode_fit_labels(y, len(dataset)))
        codes = dataset.y.numpy()
        seed = self._seed()
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        rng = torch.random.fork_rng(devices=devices) if seed is not None else nullcontext()
        with rng, self._skorch_device():
            if seed is not None:
                torch.manual_seed(seed)
            # skorch's NeuralNet.fit, on the validated and encoded data
            if not self.warm_start or not self.initialized_:
                self.initialize()
            return super().partial_fit(dataset, codes, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train on (X, y) for ``max_epochs`` without re-initialising a fitted net.

        The first call builds the network and learns the relationship from
        that first batch of data; later calls keep both.

        Parameters
        ----------
        X, y
            As in :meth:`fit`.
        classes : array-like or None
            All labels, on the first call, if this batch lacks some.
        **fit_params
            Passed to skorch.

        Returns
        -------
        self : CoTuningClassifier
        """
        first = not self.initialized_
        self._check_params()
        dataset = self._dataset(X, None, reset=first)
        if first:
            if classes is not None and self.classes is None:
                object.__setattr__(self, "classes", list(np.asarray(classes).tolist()))
                try:
                    codes = self._encode_fit_labels(y, len(dataset))
                finally:
                    object.__setattr__(self, "classes", None)
            else:
                codes = self._encode_fit_labels(y, len(dataset))
        else:
            codes = self._encode_labels(y, len(dataset))
        dataset.y = torch.as_tensor(codes)
        with self._skorch_device():
            return super().partial_fit(dataset, codes, **fit_params)

    def _encode_labels(self, y: Any, n_samples: int) -> np.ndarray:
        """Indices into ``classes_`` of labels ``y`` (all must be known)."""
        y = column_or_1d(y, warn=True)
        if len(y) != n_samples:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{n_samples}, {len(y)}]."
            )
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        unknown = sorted({label for label in y.tolist() if label not in index}, key=str)
        if unknown:
            raise ValueError(
                f"y contains labels {unknown[:10]!r} that are not among the classes "
                f"{self.classes_.tolist()!r} (set by `classes` or the first fit)."
            )
        return np.array([index[label] for label in y.tolist()], dtype=np.int64)

    def _seed(self) -> int | None:
        rs = self.random_state
        if rs is None:
            return None
        if isinstance(rs, numbers.Integral):
            return int(rs)
        if isinstance(rs, np.random.RandomState):
            return int(rs.randint(0, 2**31 - 1))
        raise ValueError(f"random_state must be an int, a RandomState or None, got {rs!r}.")

    def predict_proba(self, X):
        """Class probabilities from the target head.

        Parameters
        ----------
        X : array-like
            As in :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        dataset = X if isinstance(X, Dataset) else self._dataset(X, None, reset=False)
        with self._skorch_device():
            if self.test_time_augmentation is None:
                return super().predict_proba(dataset)
            return self._predict_proba_views(dataset)

    def _predict_proba_views(self, dataset: Dataset) -> np.ndarray:
        """Mean probability over test-time views ``(N, V, C, H, W)``."""
        kind = dataset_kind(dataset)
        pre = self.preprocessing_
        if self.test_time_augmentation == "ten_crop":
            if kind == "image" and pre is not None:
                views = TenCrop(pre.crop_size, pre.resize_size)
            else:
                views = TenCrop(None, None)
        else:
            views = _FlipViews(self._transform(dataset, training=False))
        loader = super().get_iterator(TransformedDataset(dataset, views), training=False)
        nonlin = self._get_predict_nonlinearity()
        self.module_.eval()
        probas = []
        with torch.no_grad():
            for Xi, _ in loader:
                n, v = Xi.shape[:2]
                target, _ = self.infer(Xi.flatten(0, 1))
                probas.append(nonlin(target).reshape(n, v, -1).mean(1).cpu())
        return torch.cat(probas).numpy()

    def forward(self, X, training=False, device="cpu"):
        """skorch's ``forward``: all network outputs, here ``(target, source)`` logits."""
        with self._skorch_device():
            return super().forward(X, training=training, device=device)

    def predict(self, X):
        """Predicted labels, values of ``classes_``.

        Parameters
        ----------
        X : array-like
            As in :meth:`fit`.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]
