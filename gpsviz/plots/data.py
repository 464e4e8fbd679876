"""Figures of datasets: a grid of images per class."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from gpsviz.features import DEFAULT_MEAN, DEFAULT_STD, unnormalize


def to_display(image: torch.Tensor, mean: float | Sequence[float] | None = None,
               std: float | Sequence[float] | None = None) -> np.ndarray:
    """One image for ``imshow``: C×H×W → uint8 numpy H×W×C (H×W for one channel; draw it with ``cmap="gray",
    vmin=0, vmax=255``). The one image-to-display helper of gpsviz.

    ``image``: uint8, or float in [0, 1] (clamped), or — with ``mean``/``std`` given — float normalised as the
    :class:`~gpsviz.augment.Augmenter` returns its views (un-normalised by :func:`gpsviz.features.unnormalize`).
    """
    x = torch.as_tensor(image).detach().cpu()
    if mean is not None or std is not None:
        x = unnormalize(x, DEFAULT_MEAN if mean is None else mean, DEFAULT_STD if std is None else std)
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    x = x.permute(1, 2, 0).numpy()
    return x[..., 0] if x.shape[-1] == 1 else x


def plot_image_grid(dataset, per_class: int = 6, seed: int = 0, title: str | None = None,
                    caption: str | None = None):
    """``per_class`` random images of each class of an ImageDataset, one row per class.

    ``caption``: the name of a categorical factor to print under each image (e.g. ``"colour"``)."""
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(seed)
    classes = dataset.classes
    fig, axes = plt.subplots(len(classes), per_class, figsize=(1.3 * per_class, 1.35 * len(classes)),
                             squeeze=False)
    cap_vals, cap_names = dataset.targets(caption) if caption else (None, None)
    for c, name in enumerate(classes):
        idx = torch.nonzero(dataset.labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)[:per_class]]
        for j in range(per_class):
            ax = axes[c][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j < idx.numel():
                ax.imshow(to_display(dataset.images[idx[j]]), cmap="gray", vmin=0, vmax=255)
                if cap_vals is not None:
                    ax.set_xlabel(cap_names[int(cap_vals[idx[j]])], fontsize=7)
            else:
                ax.axis("off")
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title or f"{dataset.name} ({dataset.split}): {per_class} images per class", fontsize=11)
    fig.tight_layout()
    return fig
