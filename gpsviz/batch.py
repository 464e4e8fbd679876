"""The :class:`Batch` a training step receives: the views (grouped by size), their augmentation parameters, the
view plan's fields and the training progress. Heads, objectives, view weightings and callbacks all read it.

    batch.views          # list of float tensors, one per size group, in plan order (global sizes first)
    batch.params         # AugParams, M rows in plan order (crop box, flags, jitter factors, ...)
    batch.descriptor     # float M×14 CASSLE descriptor, or None when no ingredient asked for it
    batch.plan           # ViewPlan: rows, group_ids, instance_ids, slots, is_global, sizes (M each)
    batch.train_fraction # float in [0, 1]: how far training has got (step / total steps)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gpsviz.errors import ConfigError

if TYPE_CHECKING:  # annotations only: batch.py sits below augment/ and positives/ in the import order
    from gpsviz.augment.params import AugParams
    from gpsviz.positives.base import Positives

__all__ = ["Batch", "ViewPlan"]


@dataclass
class ViewPlan:
    """The views of one training batch, before augmentation (M views, one row each).

    Attributes:
        rows: int64 M, the dataset row each view is made from.
        group_ids: int64 M, views with equal id are positives of each other.
        instance_ids: int64 M, views of one instance (one image, or one anchor–partner pair where the source
            defines it so; BYOL-style objectives predict the other views of the same instance). Instance ids
            are the anchors' positions in the batch (0..B−1): a process's share of a global batch is a range.
        slots: int64 M, the view's place within its instance (0 = anchor view, 1 = partner view, …).
        is_global: bool M, global (full-size) view or local (small crop) view.
        sizes: int64 M, output side in pixels; 0 = the dataset's own size (the view maker fills it in).
    """

    rows: torch.Tensor
    group_ids: torch.Tensor
    instance_ids: torch.Tensor
    slots: torch.Tensor
    is_global: torch.Tensor
    sizes: torch.Tensor

    def __post_init__(self) -> None:
        m = self.rows.shape[0]
        for name in ("rows", "group_ids", "instance_ids", "slots", "is_global", "sizes"):
            t = getattr(self, name)
            if t.ndim != 1 or t.shape[0] != m:
                raise ConfigError(f"ViewPlan.{name} must be a 1-D tensor of {m} views, got {tuple(t.shape)}")

    def __len__(self) -> int:
        return self.rows.shape[0]

    @classmethod
    def from_pairs(cls, anchors: torch.Tensor, pos: "Positives") -> "ViewPlan":
        """The plan of B (anchor, partner) pairs: views ``[anchors..., partners...]``, instance = pair index."""
        b = anchors.shape[0]
        pair = torch.arange(b, device=anchors.device)
        m = 2 * b
        return cls(rows=torch.cat([anchors, pos.partners.to(anchors.device)]), group_ids=pos.group_ids,
                   instance_ids=pair.repeat(2), slots=torch.arange(2, device=anchors.device).repeat_interleave(b),
                   is_global=torch.ones(m, dtype=torch.bool, device=anchors.device),
                   sizes=torch.zeros(m, dtype=torch.long, device=anchors.device))

    def select(self, idx: torch.Tensor) -> "ViewPlan":
        """The views ``idx`` (int64 or bool), in that order."""
        return ViewPlan(**{f: getattr(self, f)[idx] for f in self.fields()})

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("rows", "group_ids", "instance_ids", "slots", "is_global", "sizes")

    @classmethod
    def cat(cls, plans: list["ViewPlan"]) -> "ViewPlan":
        return cls(**{f: torch.cat([getattr(p, f) for p in plans]) for f in cls.fields()})

    def to(self, device: torch.device | str) -> "ViewPlan":
        return ViewPlan(**{f: getattr(self, f).to(device) for f in self.fields()})


@dataclass
class Batch:
    """One training batch of M views.

    Attributes:
        views: float32 tensors V_s×C×s×s, one per output size s, concatenated in plan order (Σ V_s = M).
        params: augmentation parameters of the M views (plan order).
        plan: the :class:`ViewPlan` (M views; ids are global when training on several
            processes, see :mod:`gpsviz.distributed`).
        descriptor: float M×14 CASSLE descriptor (``gpsviz.augment.cassle_descriptor``) or None.
        step: optimiser step index (0-based, over the whole run); epoch: 0-based epoch.
        train_fraction: ``step / total_steps`` in [0, 1] (schedules read this).
    """

    views: list[torch.Tensor]
    params: AugParams
    plan: ViewPlan
    descriptor: torch.Tensor | None = None
    step: int = 0
    epoch: int = 0
    train_fraction: float = 0.0

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def group_ids(self) -> torch.Tensor:
        return self.plan.group_ids

    @property
    def instance_ids(self) -> torch.Tensor:
        return self.plan.instance_ids

    @property
    def is_global(self) -> torch.Tensor:
        return self.plan.is_global

    @property
    def rows(self) -> torch.Tensor:
        return self.plan.rows
