"""The skorch hooks through which the fine-tuning estimators turn inputs into batches.

``get_dataset`` makes the raw-sample dataset (arrays, image files, a
``SliceDataset``; labels encoded through ``classes_``; for prediction with
``test_time_augmentation``, each sample's stack of views, which the network
averages), and ``get_iterator`` applies the train or eval transform.  Mixed
into :class:`~sk_cotuning.FineTuningClassifier`.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from skorch.dataset import Dataset as SkorchDataset
from skorch.dataset import unpack_data
from torch.utils.data import Dataset, default_collate

from sk_cotuning._labels import encode_labels
from sk_cotuning._skorch import temporary_attribute
from sk_cotuning.inputs.conversion import (
    ArrayDataset,
    TransformedDataset,
    ViewsDataset,
    dataset_kind,
    make_dataset,
)
from sk_cotuning.inputs.transforms import TestTimeViews, default_transforms
from sk_cotuning.network import NetworkOutput

__all__ = ["InputsMixin", "check_fit_params"]


def check_fit_params(fit_params: dict) -> None:
    fit_params = {k: v for k, v in fit_params.items() if not k.startswith("_")}  # skorch's own
    if "sample_weight" in fit_params:
        raise TypeError(
            "sample_weight is not supported: the loss weighs every sample equally. To weigh "
            "classes, pass criterion__weight=torch.tensor([...]) (one weight per class, in "
            "the order of classes_)."
        )
    if fit_params:
        raise TypeError(
            f"fit() got unexpected keyword arguments {sorted(fit_params)}; the network's "
            f"forward takes only X."
        )


def collate_samples(batch: list) -> Any:
    """PyTorch's ``default_collate``, with an error that says what to do when the
    images of a batch differ in size (image files for a network with no input size
    of its own, whose default transform does not resize)."""
    try:
        return default_collate(batch)
    except RuntimeError as exc:
        if "stack expects each tensor to be equal size" not in str(exc):
            raise
        shapes = sorted({tuple(x.shape) for x, *_ in batch if hasattr(x, "shape")})
        raise ValueError(
            f"The images of one batch have different sizes ({', '.join(map(str, shapes[:3]))}"
            f"{', ...' if len(shapes) > 3 else ''}), and the network takes a batch as one "
            f"tensor. A named backbone resizes image files to its input size; for your own "
            f"network, pass train_transform and eval_transform that resize, e.g. "
            f"v2.Compose([v2.ToImage(), v2.Resize((224, 224))]) from torchvision.transforms."
        ) from None


class InputsMixin:
    """Inputs -> datasets -> transformed batches; test-time views."""

    def get_dataset(self, X: Any, y: Any = None) -> Dataset:
        """The raw-sample Dataset for ``X`` (arrays, image files, a SliceDataset).

        Labels ``y`` are encoded as indices into ``classes_``.  Datasets this
        estimator made (and Subsets of them) pass through unchanged.  The
        training data of a fresh fit sets ``n_features_in_`` for 2-D inputs
        of a custom network; later inputs must match it.

        Without labels, ``X`` is to be predicted (skorch's ``forward_iter``:
        ``predict_proba``, ``predict``, ``forward``) and the estimator must be
        fitted.  With ``test_time_augmentation``, each sample of such inputs
        becomes the stack of its views
        (:class:`~sk_cotuning.inputs.transforms.TestTimeViews` of the
        eval-transformed sample), which the network averages; the
        estimator's own datasets (the validation split, the preparation's
        training split) are scored as they are.
        """
        if y is None:
            check_is_fitted(self)
            self._validate(self._PREDICT_PARAMS)  # e.g. set on the fitted estimator
        dataset = self._raw_dataset(X, y)
        if y is None and dataset is not X and self.test_time_augmentation is not None:
            views = TestTimeViews.for_dataset(
                self.test_time_augmentation, dataset, self._transform(dataset, training=False),
                self.preprocessing_, default_eval=self.eval_transform is None,
            )
            return ViewsDataset(dataset, views)
        return dataset

    def _raw_dataset(self, X: Any, y: Any = None) -> Dataset:
        if dataset_kind(X) is not None:
            return X
        dataset = make_dataset(X, None, self.preprocessing_, self.convert_image_arrays)
        if isinstance(dataset, ArrayDataset) and dataset.X.ndim == 2 and self.preprocessing_ is None:
            width = int(dataset.X.shape[1])
            if y is not None and len(self.history) == 0:
                self.n_features_in_ = width
            elif width != getattr(self, "n_features_in_", width):
                raise ValueError(
                    f"X has {width} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        if y is not None:
            dataset.y = torch.as_tensor(encode_labels(y, self.classes_, len(dataset)))
        return dataset

    def _transform(self, dataset: Dataset, training: bool) -> Any:
        """The train or eval transform for this dataset's kind of samples (none for a
        dataset already transformed, e.g. into test-time views)."""
        kind = dataset_kind(dataset)
        if kind is None or isinstance(dataset, TransformedDataset):
            return None
        train_default, eval_default = default_transforms(kind, self.preprocessing_)
        eval_t = eval_default if self.eval_transform is None else self.eval_transform
        if not training or (isinstance(self.train_transform, str) and self.train_transform == "eval"):
            return eval_t
        return train_default if self.train_transform is None else self.train_transform

    def get_iterator(self, dataset: Dataset, training: bool = False) -> Any:
        """skorch's DataLoader, over the dataset with the train or eval transform.

        A validation set given the way skorch documents it,
        ``train_split=predefined_split(skorch.dataset.Dataset(X_valid, y_valid))``,
        holds raw arrays and labels: it becomes a dataset of this estimator,
        as the training data did (the same image-array conversion; labels
        encoded through ``classes_``, so pass them as they were given to ``fit``).

        A training epoch whose last batch would hold one sample drops it
        (``drop_last``) when the network has BatchNorm, which cannot train on
        a batch of one; the order is reshuffled every epoch, so every sample
        still trains.  Batches of the estimator's datasets are collated by
        :func:`collate_samples` unless ``iterator_*__collate_fn`` is set.
        """
        if isinstance(dataset, SkorchDataset) and dataset_kind(dataset) is None:
            dataset = self.get_dataset(dataset.X, None if dataset.y is None else np.asarray(dataset.y))
        transform = self._transform(dataset, training)
        if transform is not None:
            dataset = TransformedDataset(dataset, transform)
        prefix = "iterator_train" if training else "iterator_valid"
        params = self.get_params_for(prefix)
        one_off = {}
        if "collate_fn" not in params and dataset_kind(dataset) is not None:
            one_off["collate_fn"] = collate_samples  # says what to do about unequal sizes
        batch_size = params.get("batch_size", self.batch_size)
        if (training and "drop_last" not in params and isinstance(batch_size, int)
                and batch_size > 1 and len(dataset) % batch_size == 1 and self._has_batchnorm()):
            one_off["drop_last"] = True
        with ExitStack() as stack:
            for name, value in one_off.items():
                stack.enter_context(temporary_attribute(self, f"{prefix}__{name}", value))
            return super().get_iterator(dataset, training=training)

    def _has_batchnorm(self) -> bool:
        return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in self.module_.modules())

    def collect_outputs(
        self, X: Any, field: str = "source", desc: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """One network output over ``X`` (evaluation mode, no grad), with label indices.

        Inside :meth:`sharing_outputs` for the same dataset, the outputs of
        that one pass are returned instead of running the network again.

        Parameters
        ----------
        X : array-like or Dataset
            Inputs as in :meth:`fit`, or a dataset of this estimator.
        field : {"target", "source", "features"}, default="source"
        desc : str or None
            Progress-bar label (shown when ``verbose``).

        Returns
        -------
        outputs : ndarray of shape (n_samples, n_outputs), float32
        codes : ndarray of shape (n_samples,)
            Label indices carried by the dataset (0 for unlabelled inputs).
        """
        shared = getattr(self, "_shared_outputs", None)
        if shared is not None and shared[0] is X and field in shared[1]:
            return shared[1][field], shared[2]
        outputs, codes = self._collect((field,), X, desc)
        return outputs[field], codes

    @contextmanager
    def sharing_outputs(self, dataset: Dataset, fields: Any, desc: str | None = None):
        """Run the network over ``dataset`` once for ``fields``; within the block,
        :meth:`collect_outputs` on that dataset reads them (a combination of
        regularisers prepares from one pass)."""
        outputs, codes = self._collect(tuple(fields), dataset, desc)
        self._shared_outputs = (dataset, outputs, codes)
        try:
            yield
        finally:
            self._shared_outputs = None

    def _collect(self, fields: tuple, X: Any, desc: str | None) -> tuple[dict, np.ndarray]:
        """The ``fields`` of the network's outputs over ``X`` in one pass, and the labels."""
        indices = [NetworkOutput.FIELDS.index(field) for field in fields]
        iterator = self.get_iterator(self._raw_dataset(X), training=False)  # no test-time views
        if self.verbose and desc:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc=desc, unit="batch", leave=False)
        # under AccelerateMixin the loader is sharded across processes and its
        # evaluation_step gathers the outputs: gather the labels alike, so every
        # rank prepares from the whole training split (not its shard)
        accelerator = getattr(self, "accelerator", None)
        outputs: dict[str, list] = {field: [] for field in fields}
        codes = []
        for batch in iterator:
            _, yi = unpack_data(batch)
            step = self.evaluation_step(batch, training=False)
            for field, index in zip(fields, indices):
                outputs[field].append(step[index].float().cpu())
            code = torch.as_tensor(yi, device=step[0].device).reshape(-1)
            if accelerator is not None:
                code = accelerator.gather_for_metrics(code)
            codes.append(code.cpu())
        return ({field: torch.cat(parts).numpy() for field, parts in outputs.items()},
                torch.cat(codes).numpy())
