"""Objectives: pure functions of tensors that return per-view losses."""
from gpsviz.objectives.byol import byol_loss, byol_momentum, ema_update
from gpsviz.objectives.contrastive import multi_positive_ntxent, nt_xent, positive_mask

__all__ = [
    "byol_loss",
    "byol_momentum",
    "ema_update",
    "multi_positive_ntxent",
    "nt_xent",
    "positive_mask",
]
