"""Per-kind default train/eval transforms, and the test-time views.

Transforms never normalise: they end in uint8 or ``[0, 1]`` float tensors,
and the network normalises on its device.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import Dataset

from sk_cotuning.backbones import Preprocessing
from sk_cotuning.inputs.conversion import dataset_kind

__all__ = ["TestTimeViews", "default_transforms"]


def default_transforms(
    kind: str, preprocessing: Preprocessing | None
) -> tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None]:
    """The default ``(train_transform, eval_transform)`` for a kind of input.

    - ``"image"`` (files, datasets): eval resizes to the weights'
      ``resize_size`` and centre-crops ``crop_size`` (torchvision's own
      evaluation preprocessing, minus the normalisation the network does);
      train uses ``RandomResizedCrop(crop_size)`` and a horizontal flip.
      Without a known size (a custom network) both only convert to tensors;
      the glyph model's 8x8 input is resized to.
    - ``"array"``: arrays are taken to be at model resolution, so nothing is
      resized; torchvision backbones train with horizontal flips, the glyph
      model and custom networks without augmentation (digits and letters
      are not mirror-symmetric; a custom network's input may not be an
      image).

    Returns
    -------
    train, eval : callable or None
        ``None`` means "leave the sample as it is".
    """
    from torchvision.transforms import v2

    to_tensor = v2.ToImage()
    if kind == "array":
        flips = preprocessing is not None and preprocessing.native_size is None
        return (v2.RandomHorizontalFlip() if flips else None), None
    if preprocessing is None:
        return to_tensor, to_tensor
    if preprocessing.native_size is not None:
        resize = v2.Resize(preprocessing.native_size, antialias=True)
        return v2.Compose([to_tensor, resize]), v2.Compose([to_tensor, resize])
    crop = preprocessing.crop_size or 224
    resize = preprocessing.resize_size or int(round(crop / 0.875))
    eval_t = v2.Compose([to_tensor, v2.Resize(resize, antialias=True), v2.CenterCrop(crop)])
    train_t = v2.Compose(
        [to_tensor, v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip()]
    )
    return train_t, eval_t


def _ten_crops(img: torch.Tensor, crop: int) -> list[torch.Tensor]:
    from torchvision.transforms import v2

    return [torch.as_tensor(v) for v in v2.TenCrop(crop, vertical_flip=False)(img)]


class TestTimeViews:
    """Test-time views of one sample, stacked ``(V, C, H, W)``, all at the model's input size.

    Parameters
    ----------
    mode : {"flip", "ten_crop"}
        ``"flip"``: the eval-transformed sample and its mirror image.
        ``"ten_crop"``: the four corners and the centre, each mirrored.
    eval_transform : callable or None
        The estimator's eval transform for this kind of input (``None``:
        the sample as it is).  Views are taken of its output, so a user's
        ``eval_transform`` always applies.
    resize_size, crop_size : int or None
        For image files and datasets with the default eval transform: the
        paper's protocol, resize the shorter side to ``resize_size`` and take
        ``crop_size`` crops.  Otherwise crops are 87.5% of the eval output's
        side, resized back to that size (so a fixed-size network such as the
        8x8 glyph model gets inputs of its size).
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        mode: str,
        eval_transform: Callable[[Any], Any] | None,
        resize_size: int | None = None,
        crop_size: int | None = None,
    ) -> None:
        self.mode = mode
        self.eval_transform = eval_transform
        self.resize_size = resize_size
        self.crop_size = crop_size

    @classmethod
    def for_dataset(
        cls,
        mode: str,
        dataset: Dataset,
        eval_transform: Callable[[Any], Any] | None,
        preprocessing: Preprocessing | None,
        default_eval: bool,
    ) -> "TestTimeViews":
        """The views for ``dataset``: the paper's protocol for image files and
        datasets under the default eval transform, else crops of its output."""
        paper = (
            dataset_kind(dataset) == "image" and default_eval
            and preprocessing is not None and preprocessing.crop_size is not None
        )
        if not paper:
            return cls(mode, eval_transform)
        return cls(mode, eval_transform, preprocessing.resize_size, preprocessing.crop_size)

    def __call__(self, sample: Any) -> torch.Tensor:
        from torchvision.transforms import v2

        if self.mode == "ten_crop" and self.crop_size is not None:
            img = v2.ToImage()(sample) if not isinstance(sample, torch.Tensor) else sample
            img = v2.Resize(self.resize_size or self.crop_size, antialias=True)(img)
            return torch.stack(_ten_crops(img, self.crop_size))
        x = self.eval_transform(sample) if self.eval_transform is not None else sample
        x = v2.ToImage()(x) if not isinstance(x, torch.Tensor) else torch.as_tensor(x)
        if self.mode == "flip":
            return torch.stack([x, x.flip(-1)])
        h, w = x.shape[-2:]
        crop = max(1, int(round(0.875 * min(h, w))))
        resize = v2.Resize((h, w), antialias=True)
        views = [resize(v) for v in _ten_crops(x, crop)]
        if x.dtype == torch.uint8:
            views = [v.to(torch.uint8) for v in views]
        return torch.stack(views)
