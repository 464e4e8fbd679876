"""The one in-memory dataset format every loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from gpsviz.errors import DataError


def _conjunction(name: str) -> list[str]:
    """The targets a name joins: ``"label×colour"`` (or ``label*colour``) → ``["label", "colour"]``."""
    return name.replace("*", "×").split("×")


@dataclass
class ImageDataset:
    """A small in-memory image dataset.

    Attributes:
        images: uint8 tensor N×C×H×W (C = 1 or 3).
        labels: int64 tensor N (class index into ``classes``; -1 where unknown, e.g. STL-10 unlabeled).
        classes: class names.
        factors: generative factors known per image, each an N-long tensor. Categorical factors are int64
            (names in ``factor_classes``), continuous ones float32.
        split: "train", "test" or "unlabeled".
        name: dataset name (used for cache keys and figure titles).
        factor_classes: names for the values of categorical factors, e.g. ``{"colour": ["red", ...]}``.
        masks: optional bool tensor N×H×W, the object's mask (shapes world only).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    factors: dict[str, torch.Tensor] = field(default_factory=dict)
    split: str = "train"
    name: str = "custom"
    factor_classes: dict[str, list[str]] = field(default_factory=dict)
    masks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                f"{self.name}: images must be a uint8 tensor N×C×H×W, got "
                f"{getattr(self.images, 'dtype', type(self.images))} with shape {tuple(getattr(self.images, 'shape', ()))}"
            )
        if self.images.shape[1] not in (1, 3):
            raise DataError(f"{self.name}: images must have 1 or 3 channels (N×C×H×W), got C={self.images.shape[1]}")
        n = self.images.shape[0]
        self.labels = torch.as_tensor(self.labels)
        if self.labels.ndim != 1 or self.labels.shape[0] != n:
            raise DataError(f"{self.name}: labels must have length {n} (one per image), got shape {tuple(self.labels.shape)}")
        self.labels = self.labels.long()
        for k, v in self.factors.items():
            if not isinstance(v, torch.Tensor) or v.shape[:1] != (n,):
                raise DataError(f"{self.name}: factor {k!r} must be a tensor with {n} rows, got shape {tuple(getattr(v, 'shape', ()))}")
        if self.masks is not None and (self.masks.shape[0] != n or self.masks.ndim != 3):
            raise DataError(f"{self.name}: masks must be N×H×W with N={n}, got {tuple(self.masks.shape)}")
        self.classes = list(self.classes)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        f = ", ".join(self.factors) or "none"
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={tuple(self.images.shape[1:])}, classes={len(self.classes)}, factors=[{f}])")

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, idx: torch.Tensor | Sequence[int] | slice) -> "ImageDataset":
        """A new dataset with the rows ``idx`` (tensors are indexed, not copied where torch allows)."""
        if not isinstance(idx, slice):
            idx = torch.as_tensor(idx, dtype=torch.long)
        return ImageDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            classes=self.classes,
            factors={k: v[idx] for k, v in self.factors.items()},
            split=self.split,
            name=self.name,
            factor_classes=dict(self.factor_classes),
            masks=None if self.masks is None else self.masks[idx],
        )

    @property
    def labelled(self) -> bool:
        """False for images without labels (``classes == ["unlabelled"]``, or every label -1): nothing that needs
        a class (SupCon positives, the oracle prior, a label probe, the online kNN) may use them."""
        return list(self.classes) != ["unlabelled"] and bool((self.labels >= 0).any())

    def target_names(self) -> list[str]:
        """Names a probe can target: ``"label"`` (when the images are labelled) plus every categorical (int64)
        factor."""
        return (["label"] if self.labelled else []) + [k for k, v in self.factors.items()
                                                       if v.dtype == torch.long and v.ndim == 1]

    def has_target(self, name: str) -> bool:
        """Whether :meth:`targets` knows ``name``: a target name, ``class``/``shape`` (the label) or a
        conjunction ``"a×b"`` (also written ``a*b``) of two of them."""
        parts = _conjunction(name)
        return len(parts) <= 2 and all(p in (*self.target_names(), "class", "shape") for p in parts)

    def targets(self, name: str = "label") -> tuple[torch.Tensor, list[str]]:
        """Return ``(values int64 N, class names)`` for the class label or a categorical factor, or for the
        conjunction ``"a×b"`` of two (one class per pair of values, e.g. ``"label×colour"``: shape and colour bin
        together, a task that needs both)."""
        parts = _conjunction(name)
        if len(parts) > 1:
            if len(parts) != 2:
                raise DataError(f"{self.name}: a conjunction target joins two targets (e.g. 'label×colour'), "
                                f"got {name!r}")
            (a, na), (b, nb) = self.targets(parts[0]), self.targets(parts[1])
            names = [f"{x}·{y}" for x in na for y in nb]
            return torch.where((a >= 0) & (b >= 0), a * len(nb) + b, torch.full_like(a, -1)), names
        if name in ("label", "class", "shape"):
            if not self.labelled:
                raise DataError(f"{self.name} ({self.split}) has no labels (its images are 'unlabelled'), so nothing "
                                f"can be measured against them; give labels (e.g. from_arrays(x, labels=y)) or class "
                                f"folders")
            return self.labels, self.classes
        if name not in self.factors or self.factors[name].dtype != torch.long:
            raise DataError(f"{self.name}: no categorical target {name!r}; available targets: {self.target_names()}")
        values = self.factors[name]
        names = self.factor_classes.get(name) or [str(i) for i in range(int(values.max()) + 1)]
        return values, names
