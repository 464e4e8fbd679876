"""BYOL: the regression loss, the cosine momentum schedule and the EMA update of the target network.

Paper: Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020,
arXiv:2006.07733.

Usage (online predictor output p, target projection z' of the *other* view; symmetrise by swapping views)::

    loss = (byol_loss(q(g(f(v1))), g_t(f_t(v2))) + byol_loss(q(g(f(v2))), g_t(f_t(v1)))).mean()
    loss.backward(); opt.step()
    ema_update(target_net, online_net, byol_momentum(step, total_steps))

The loss is a pure function; the target network and its momentum live in the recipe.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gpsviz.errors import ConfigError
from gpsviz.models.heads import MLPHead
from gpsviz.models.ssl import cosine_momentum, ema_update
from gpsviz.objectives.base import Objective, float32_region, other_views_of, register_objective
from gpsviz.registry import Opt

__all__ = ["byol_loss", "byol_momentum", "ema_update", "BYOLObjective"]


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


byol_momentum = cosine_momentum  #: BYOL's cosine EMA schedule (one implementation, in gpsviz.models.ssl)


@register_objective("byol")
class BYOLObjective(Objective):
    """BYOL: an online predictor regresses the EMA teacher's embedding of the *other* views of the same instance.

    Per view i: ``loss_i = mean_j byol_loss(q(z_i), z'_j)`` over the teacher's global views j ≠ i with the
    same instance id (with two views per instance: the partner view, BYOL's symmetrised loss). Adds
    ``heads["predictor"]`` (``proj_dim → pred_hidden → proj_dim``) and asks for a teacher. Option
    ``predictor_lr``: the predictor's learning rate as a multiple of the run's (default 1; SimSiam and later BYOL
    recipes give the predictor a larger or unscheduled one).

    Positives: the instance ids only (GPS puts the neighbour in the anchor's instance, SPPS its whole set); a
    source that marks positives only in the group ids (``labels``) would be ignored, so that pairing is refused."""

    teacher = True
    positives_from = ("instance_ids",)
    options = {"predictor_lr": Opt(float, 1e-3, 1e3, note="× the run's learning rate, for the predictor only")}

    def __init__(self, predictor_lr: float = 1.0) -> None:
        self.predictor_lr = float(predictor_lr)

    def lr_scales(self) -> dict[str, float]:
        return {} if self.predictor_lr == 1.0 else {"heads.predictor.": self.predictor_lr}

    def build(self, model: Any, cfg: Any) -> None:
        model.heads["predictor"] = MLPHead(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim)

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        p = model.heads["predictor"](out["z"])                       # M×p
        zt = out["teacher_z"]                                         # G×p, teacher of the global views
        inst = batch.instance_ids.to(p.device)                        # M
        glob = batch.is_global.to(p.device)                           # M
        g_idx = glob.nonzero().flatten()                              # G
        m = p.shape[0]
        pair = other_views_of(inst, inst[g_idx], torch.arange(m, device=p.device), g_idx)   # M×G
        with float32_region(p.device):
            pn = F.normalize(p.float(), dim=1)                        # M×p
            zn = F.normalize(zt.detach().float(), dim=1)              # G×p, stop-gradient
            loss = 2.0 - 2.0 * (pn @ zn.T)                            # M×G
            n = pair.sum(dim=1).clamp(min=1)                          # M
            per_view = loss.masked_fill(~pair, 0.0).sum(dim=1) / n    # M
        return per_view, {"p": p}
