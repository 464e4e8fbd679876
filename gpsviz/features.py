"""Images to model inputs and frozen-backbone features: the layer below priors, evaluation and training.

One place for the input convention every part of gpsviz shares:

- :func:`to_float`: uint8 (0–255) → float32 in [0, 1] (float input: a float32 copy);
- :func:`normalize` / :func:`unnormalize`: ``(x − mean_c) / std_c`` per channel and its inverse (for display),
  with gpsviz's defaults :data:`DEFAULT_MEAN` / :data:`DEFAULT_STD` (0.5 / 0.25 on every channel);
- :func:`embed_images`: a backbone's features of uint8 images (eval mode, no grad, batched) and
  :func:`extract_features` / :func:`extract` / :class:`Features`, the same tied to a dataset split for probes.

Nothing here imports the training loop, the recipes, the priors or the probes, so all of them can import it::

    >>> x = normalize(to_float(images_uint8))                # B×C×H×W float32, as training sees it
    >>> feats = extract(backbone, test_ds)                   # Features: N×d float32 + the dataset
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from gpsviz.errors import ConfigError
from gpsviz.utils import resolve_device

__all__ = ["DEFAULT_MEAN", "DEFAULT_STD", "IMAGENET_MEAN", "IMAGENET_STD", "channel_stat", "to_float", "normalize",
           "unnormalize", "embed_images", "extract_features", "Features", "extract"]

DEFAULT_MEAN = 0.5  #: gpsviz's input normalisation mean (every channel, images in [0, 1])
DEFAULT_STD = 0.25  #: gpsviz's input normalisation std (every channel)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  #: torchvision's ImageNet normalisation (pretrained priors)
IMAGENET_STD = (0.229, 0.224, 0.225)

Stat = float | Sequence[float] | Tensor


def channel_stat(v: Stat, c: int, ref: Tensor | None = None, check: bool = False) -> Tensor:
    """A mean or std as a tensor of ``c`` values (a scalar is repeated) with ``ref``'s device and float dtype.

    ``check=True`` also refuses non-finite values and, for a std, values <= 0 (:class:`ConfigError`)."""
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    t = torch.as_tensor(v, dtype=dtype, device=None if ref is None else ref.device).flatten()
    if t.numel() == 1:
        t = t.expand(c)
    if t.numel() != c:
        raise ConfigError(f"mean/std have {t.numel()} values but the images have {c} channels; give one value "
                          f"or one per channel")
    return t


def check_stats(mean: Stat, std: Stat) -> None:
    """Raise :class:`ConfigError` unless ``mean`` and ``std`` are numbers or sequences of numbers, std > 0."""
    for label, v in (("mean", mean), ("std", std)):
        vals = [v] if isinstance(v, (int, float)) else (v.flatten().tolist() if isinstance(v, Tensor) else list(v))
        if not vals or not all(isinstance(e, (int, float)) and math.isfinite(e) for e in vals):
            raise ConfigError(f"{label} must be a number or a sequence of numbers, got {v!r}")
        if label == "std" and min(vals) <= 0:
            raise ConfigError(f"std must be positive, got {v!r}")


def to_float(images: Tensor) -> Tensor:
    """uint8 B×C×H×W (0–255) → float32 in [0, 1]; float → float32 copy.

    uint8 is scaled as ``x · (1/255)``, the arithmetic of the augmentation pipeline, so that features of
    un-augmented images see bit for bit what training sees through ``Augmenter("none")``."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).mul_(1.0 / 255.0)
    return images.to(torch.float32, copy=True)


def normalize(images: Tensor, mean: Stat = DEFAULT_MEAN, std: Stat = DEFAULT_STD, inplace: bool = False) -> Tensor:
    """``(x − mean_c) / std_c`` per channel. ``images``: float (…)×C×H×W; mean/std: a number or C values."""
    c = images.shape[-3]
    m = channel_stat(mean, c, images).view(-1, 1, 1)
    s = channel_stat(std, c, images).view(-1, 1, 1)
    x = images if inplace else images.clone()
    return x.sub_(m).div_(s)


def unnormalize(views: Tensor, mean: Stat = DEFAULT_MEAN, std: Stat = DEFAULT_STD) -> Tensor:
    """Inverse of :func:`normalize`, clamped to [0, 1] for display: (…)×C×H×W float → same shape, float32."""
    x = views.detach().float()
    c = x.shape[-3]
    m = channel_stat(mean, c, x).view(-1, 1, 1)
    s = channel_stat(std, c, x).view(-1, 1, 1)
    return (x * s + m).clamp(0.0, 1.0)


def embed_images(backbone: nn.Module, images: Tensor, batch_size: int = 256,
                 device: str | torch.device | None = None, mean: Stat = DEFAULT_MEAN, std: Stat = DEFAULT_STD,
                 progress: bool = False) -> Tensor:
    """Features of ``backbone`` (eval mode, no grad) for uint8 images N×C×H×W → float32 N×D on CPU.

    Inputs are normalised as gpsviz training does: ``(x/255 − mean) / std`` per channel (scalars or C-sequences).
    The backbone's train/eval mode and device are restored afterwards. ``device`` ``None``: the default device.
    """
    dev = resolve_device(device)
    c = images.shape[1]
    m = channel_stat(mean, c).to(dev).view(-1, 1, 1)
    s = channel_stat(std, c).to(dev).view(-1, 1, 1)
    was_training = backbone.training
    backbone.eval()
    param = next(backbone.parameters(), None)
    orig_dev = param.device if param is not None else dev
    backbone.to(dev)
    out = []
    try:
        with torch.no_grad():
            for i in tqdm(range(0, images.shape[0], batch_size), disable=not progress, desc="embed", leave=False):
                x = to_float(images[i:i + batch_size].to(dev)).sub_(m).div_(s)
                with torch.autocast(dev.type, enabled=dev.type == "cuda"):
                    out.append(backbone(x).float().flatten(1).cpu())
    finally:
        backbone.to(orig_dev)
        backbone.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


def extract_features(backbone: nn.Module, dataset_or_images, batch_size: int = 512,
                     device: str | torch.device | None = None) -> Tensor:
    """Backbone features in eval mode. Input: an ImageDataset or uint8 N×C×H×W; output float32 N×d (CPU).

    Images are normalised as in training ((x/255 − 0.5)/0.25, see :func:`embed_images`); the backbone's mode is
    restored. ``device`` defaults to the backbone's.
    """
    images = getattr(dataset_or_images, "images", dataset_or_images)
    if device is None:
        p = next(backbone.parameters(), None)
        device = p.device if p is not None else "cpu"
    return embed_images(backbone, images, batch_size=batch_size, device=device)


@dataclass
class Features:
    """Features (N×d float32) of one split of a dataset, with the dataset they came from."""

    features: Tensor
    dataset: Any

    @property
    def split(self) -> str:
        return self.dataset.split

    def targets(self, target: str) -> tuple[Tensor, list[str]]:
        return self.dataset.targets(target)


def extract(backbone: nn.Module, dataset, device=None) -> Features:
    """:func:`extract_features` wrapped with its dataset (see :class:`Features`)."""
    return Features(extract_features(backbone, dataset, device=device), dataset)
