"""Contrastive objectives: the multi-positive (SupCon-form) NT-Xent and plain SimCLR NT-Xent.

Papers: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual Representations"
(SimCLR, ICML 2020), arXiv:2002.05709; Khosla et al., "Supervised Contrastive Learning" (SupCon, NeurIPS 2020),
arXiv:2004.11362 — the multi-positive form is its L_out (the mean over positives outside the log).

Usage (two views of B images, view b and view B+b are positives)::

    z = projector(backbone(torch.cat([views1, views2])))          # 2B×D
    group_ids = torch.arange(B).repeat(2)                          # 2B: [0..B-1, 0..B-1]
    loss = multi_positive_ntxent(z, group_ids, temperature=0.2).mean()

Notation: M views, ẑ = z/‖z‖, s_ik = ẑ_i·ẑ_k / τ. For view i with positive set P(i) (views k ≠ i with the same
group id)::

    loss_i = −1/|P(i)| · Σ_{p∈P(i)} log( exp(s_ip) / Σ_{k≠i} exp(s_ik) )

With exactly one positive per view this is SimCLR's NT-Xent. Both functions return **per-view** losses so that a
view-weighting step (UOTA) can multiply them before the mean. They compute in float32 even inside an
``torch.autocast`` region (similarities divided by a small τ overflow float16).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gpsviz.distributed import gather_views, local_rows
from gpsviz.errors import ConfigError
from gpsviz.objectives.base import TEMPERATURE, Objective, float32_region, register_objective
from gpsviz.registry import check_values

__all__ = ["multi_positive_ntxent", "nt_xent", "positive_mask", "NTXentObjective"]


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")


def positive_mask(group_ids: torch.Tensor) -> torch.Tensor:
    """Boolean M×M mask: ``mask[i, k]`` is True iff k ≠ i and views i and k share a group id.

    Args:
        group_ids: int64 M.
    """
    same = group_ids[:, None] == group_ids[None, :]                       # M×M
    return same & ~torch.eye(len(group_ids), dtype=torch.bool, device=group_ids.device)


def multi_positive_ntxent(z: torch.Tensor, group_ids: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Multi-positive contrastive loss (SupCon form), one value per view.

    Args:
        z: float M×D embeddings (any scale; L2-normalised here).
        group_ids: int64 M; views with equal id are positives of each other. Every view other than i itself is
            in the denominator of view i (positives and negatives alike).
        temperature: τ > 0.

    Returns:
        float32 M, ``loss_i`` as in the module docstring. A view with **no positive** (its group id appears
        once) gets loss 0 and contributes no gradient; it still serves as a negative for the other views.
    """
    _check_temperature(temperature)
    if z.ndim != 2:
        raise ConfigError(f"multi_positive_ntxent: z must be M×D, got shape {tuple(z.shape)}")
    m = z.shape[0]
    group_ids = torch.as_tensor(group_ids, device=z.device).long()
    if group_ids.shape != (m,):
        raise ConfigError(f"multi_positive_ntxent: group_ids must have shape ({m},) to match z, got {tuple(group_ids.shape)}")
    if m < 2:  # no other view at all: nothing to contrast against
        return z.float().sum(dim=1) * 0.0
    with float32_region(z.device):
        zn = F.normalize(z.float(), dim=1)                                  # M×D, unit rows
        logits = zn @ zn.T / temperature                                    # M×M, s_ik
        self_mask = torch.eye(m, dtype=torch.bool, device=z.device)         # M×M
        logits = logits.masked_fill(self_mask, float("-inf"))               # drop k = i from the denominator
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)    # M×M, log softmax over k ≠ i
        pos = positive_mask(group_ids)                                      # M×M bool
        n_pos = pos.sum(dim=1)                                              # M, |P(i)|
        # masked_fill (not multiply) so the −inf diagonal never meets a 0 and makes NaN
        pos_log_prob = log_prob.masked_fill(~pos, 0.0).sum(dim=1)           # M, Σ_p log q_ip
        loss = -pos_log_prob / n_pos.clamp(min=1)                           # M; 0 where |P(i)| = 0
    return loss


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent, written independently of :func:`multi_positive_ntxent` (used as its reference).

    Args:
        z1, z2: float B×D, two views of the same B images (row b of z1 and row b of z2 are positives).
        temperature: τ > 0.

    Returns:
        float32 2B: per-view cross-entropy over the 2B − 1 other views, order ``[views of z1, views of z2]``.
    """
    _check_temperature(temperature)
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ConfigError(f"nt_xent: z1 and z2 must both be B×D, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    b = z1.shape[0]
    with float32_region(z1.device):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)                 # 2B×D
        sim = z @ z.T / temperature                                         # 2B×2B
        off_diag = ~torch.eye(2 * b, dtype=torch.bool, device=z.device)
        logits = sim[off_diag].view(2 * b, 2 * b - 1)                       # 2B×(2B−1), column i removed in row i
        # partner of row i is i + B (i < B) or i − B (i ≥ B); after deleting column i, an index j > i moves to j − 1
        idx = torch.arange(b, device=z.device)
        target = torch.cat([idx + b - 1, idx])                              # 2B
        return F.cross_entropy(logits, target, reduction="none")            # 2B


@register_objective("ntxent")
class NTXentObjective(Objective):
    """The multi-positive NT-Xent of the projector outputs, with the batch's group ids as positives and every
    other view — on every process — as a negative. Temperature: ``cfg.temperature`` (or the ``temperature``
    option). Positives: the plan's group ids (multi-positive: labels, neighbours and sets all count)."""

    options = {"temperature": TEMPERATURE}
    positives_from = ("group_ids",)

    def __init__(self, temperature: float | None = None) -> None:
        self.temperature = check_values("objective 'ntxent'", NTXentObjective,
                                        {"temperature": temperature})["temperature"]

    def build(self, model, cfg) -> None:
        if self.temperature is None:
            self.temperature = cfg.temperature

    def __call__(self, model, batch, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        z_all, g_all = gather_views(out["z"], batch.group_ids.to(out["z"].device))   # M_all×p, M_all
        per_view = multi_positive_ntxent(z_all.float(), g_all, temperature=self.temperature)   # M_all
        return local_rows(per_view, out["z"].shape[0]), {}
