"""The model a recipe trains: a backbone, named heads, and optionally an EMA teacher (one wrapper for every
recipe that asks for one: BYOL, DINO-like, CASSLE-BYOL, …).

    model = SSLModel(backbone, {"projector": head})
    model.add_teacher()                        # EMA copy of backbone + projector, no gradient
    zt = model.teacher(views, batch, index)    # teacher embeddings of some views
    model.teacher.update(model, momentum=cosine_momentum(step, total, base=0.99))
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from gpsviz.errors import ConfigError

__all__ = ["SSLModel", "EMATeacher", "ema_update", "cosine_momentum"]


def cosine_momentum(step: int, total_steps: int, base: float = 0.99) -> float:
    """The cosine EMA momentum schedule: ``base`` at step 0, rising to 1 at ``total_steps``.

    ``m(t) = 1 − (1 − base)·(cos(π·t/T) + 1)/2`` with t clamped to [0, T] (BYOL's schedule)."""
    if total_steps < 1:
        raise ConfigError(f"cosine_momentum: total_steps must be ≥ 1, got {total_steps}")
    if not 0.0 <= base <= 1.0:
        raise ConfigError(f"cosine_momentum: base momentum must be in [0, 1], got {base}")
    t = min(max(step, 0), total_steps) / total_steps
    return 1.0 - (1.0 - base) * (math.cos(math.pi * t) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place: ``θ_target ← m·θ_target + (1 − m)·θ_online`` for parameters; buffers (BN statistics) copied.

    ``target`` and ``online`` must have the same architecture (same parameter and buffer names and shapes).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ConfigError(f"ema_update: momentum must be in [0, 1], got {momentum}")
    t_params, o_params = dict(target.named_parameters()), dict(online.named_parameters())
    t_bufs, o_bufs = dict(target.named_buffers()), dict(online.named_buffers())
    if t_params.keys() != o_params.keys() or t_bufs.keys() != o_bufs.keys():
        raise ConfigError("ema_update: target and online networks differ in structure; "
                          "build the target as a deep copy of the online network")
    for name, t in t_params.items():
        t.lerp_(o_params[name].detach().to(t.dtype), 1.0 - momentum)      # m·t + (1 − m)·o
    for name, t in t_bufs.items():
        t.copy_(o_bufs[name])


class EMATeacher(nn.Module):
    """A frozen exponential-moving-average copy of the online backbone and projector.

    ``forward(views, batch, index)``: views float V×C×H×W (the views ``index`` of ``batch``) → V×proj_dim,
    without gradient. The teacher's projector reads its own views' part of the batch (a conditioned head is
    conditioned on the teacher view's own descriptor)."""

    def __init__(self, backbone: nn.Module, projector: nn.Module) -> None:
        super().__init__()
        self.backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.projector = copy.deepcopy(projector).requires_grad_(False)

    @torch.no_grad()
    def forward(self, views: torch.Tensor, batch: Any = None, index: torch.Tensor | None = None) -> torch.Tensor:
        return self.projector(self.backbone(views), batch, index)

    @torch.no_grad()
    def update(self, online: "SSLModel", momentum: float) -> None:
        """EMA step towards the online backbone and projector."""
        ema_update(self.backbone, online.backbone, momentum)
        ema_update(self.projector, online.projector, momentum)


class SSLModel(nn.Module):
    """Backbone + named heads (+ an EMA teacher when a recipe's objective asks for one).

    ``backbone``: B×C×H×W → B×d (``out_dim`` = d); ``heads["projector"]``: the recipe's head (V×d → V×p);
    objectives add their own heads (e.g. ``heads["predictor"]`` for BYOL)."""

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        if "projector" not in heads:
            raise ConfigError("SSLModel needs a 'projector' head")
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)
        self.teacher: EMATeacher | None = None

    @property
    def projector(self) -> nn.Module:
        return self.heads["projector"]

    def add_teacher(self) -> EMATeacher:
        """Create (once) the EMA teacher as a copy of the current backbone and projector."""
        if self.teacher is None:
            self.teacher = EMATeacher(self.backbone, self.projector)
        return self.teacher
