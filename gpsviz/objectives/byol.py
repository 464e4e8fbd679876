"""BYOL: the regression loss, the cosine momentum schedule and the EMA update of the target network.

Usage (online predictor output p, target projection z' of the *other* view; symmetrise by swapping views)::

    loss = (byol_loss(q(g(f(v1))), g_t(f_t(v2))) + byol_loss(q(g(f(v2))), g_t(f_t(v1)))).mean()
    loss.backward(); opt.step()
    ema_update(target_net, online_net, byol_momentum(step, total_steps))

The loss is a pure function; the target network and its momentum live in the recipe.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz.errors import ConfigError

__all__ = ["byol_loss", "byol_momentum", "ema_update"]


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-view BYOL loss ``2 − 2·cos(p, sg(z))``, in [0, 4].

    Args:
        p: float B×D, online predictor outputs.
        z: float B×D, target projections (detached here: no gradient reaches the target).

    Returns:
        float32 B (0 when p ∥ z, 4 when opposite). Computed in float32.
    """
    if p.shape != z.shape or p.ndim != 2:
        raise ConfigError(f"byol_loss: p and z must both be B×D, got {tuple(p.shape)} and {tuple(z.shape)}")
    pn = F.normalize(p.float(), dim=1)                  # B×D
    zn = F.normalize(z.detach().float(), dim=1)         # B×D, stop-gradient
    return 2.0 - 2.0 * (pn * zn).sum(dim=1)             # B


def byol_momentum(step: int, total_steps: int, base: float = 0.99) -> float:
    """Cosine schedule of the target EMA momentum: ``base`` at step 0, rising to 1 at ``total_steps``.

    ``m(t) = 1 − (1 − base)·(cos(π·t/T) + 1)/2`` with t clamped to [0, T].
    """
    if total_steps < 1:
        raise ConfigError(f"byol_momentum: total_steps must be ≥ 1, got {total_steps}")
    if not 0.0 <= base <= 1.0:
        raise ConfigError(f"byol_momentum: base momentum must be in [0, 1], got {base}")
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
        o = o_params[name]
        # lerp: t + (1 − m)(o − t) = m·t + (1 − m)·o
        t.lerp_(o.detach().to(t.dtype), 1.0 - momentum)
    for name, t in t_bufs.items():
        t.copy_(o_bufs[name])
