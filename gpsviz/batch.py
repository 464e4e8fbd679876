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

if TYPE_CHECKING:  # annotations only: batch.py sits below augment/ and positives/ in the import order
    from gpsviz.augment.params import AugParams
    from gpsviz.positives.base import ViewPlan

__all__ = ["Batch"]


@dataclass
class Batch:
    """One training batch of M views.

    Attributes:
        views: float32 tensors V_s×C×s×s, one per output size s, concatenated in plan order (Σ V_s = M).
        params: augmentation parameters of the M views (plan order).
        plan: the :class:`~gpsviz.positives.ViewPlan` (M views; ids are global when training on several
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
