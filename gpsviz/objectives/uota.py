"""UOTA: down-weight augmented views that are out of distribution for their instance.

Paper: Wang, Lin, Zou, Pan, Yao, Mei, "Improving Self-supervised Learning with Automated Unsupervised Outlier
Arbitration", NeurIPS 2021, arXiv:2112.08132 (code: github.com/ssl-codelab/uota).

Per step, under no gradient and in float32 (z = L2-normalised projections of all M views of the global batch):

    μ_i   = mean of instance i's global views' z            δ_ij = z_ij − μ_i
    Σ     = (1/M) Σ_ij δ_ij δ_ijᵀ + 1e-8·I                   (over every view of every process)
    u_ij  = δ_ijᵀ Σ⁻¹ δ_ij / τ_u                              (τ_u = 350 in the reference)
    w     = softmax(−u) over all views of the global batch   (× M gives mean weight 1)

The loss is Σ w·loss_view. Before ``start`` (a fraction of training, the reference starts at epoch 100 of 200)
the weights are uniform; the UOTA weights are computed at every step all the same and returned in the step's
outputs as ``uota_weights`` (M, × world size, this process's rows; sum 1 over the global batch) with
``uota_distance`` (u, M), so a diagnostic can follow them through the warm-up (``weights`` is what the loss used).
The reference also doubles its learning rate at that point, on the same cosine curve: the option ``restart_lr``
(a factor, 0 = off, the default; the reference's 2.0) asks the training loop for it
(:func:`gpsviz.optim.lr_with_restart`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gpsviz import distributed as D
from gpsviz.errors import ConfigError
from gpsviz.objectives.base import Weighting, float32_region, register_weighting
from gpsviz.registry import Opt, check_values

__all__ = ["UOTAWeighting", "uota_scores", "uota_distances", "ledoit_wolf_shrinkage"]


def _deltas(z: torch.Tensor, instance_ids: torch.Tensor, is_global: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(δ M×D, Σ D×D without ε, M over all processes): each view's offset from its instance's global-view mean
    (z L2-normalised) and the pooled covariance of the offsets over the global batch."""
    zn = F.normalize(z.detach().float(), dim=1)                           # M×D
    inst = instance_ids.to(z.device).long()
    g = is_global.to(z.device).float()
    n_inst = int(D.all_reduce_max(inst.max().reshape(1)).item()) + 1      # global ids: largest over ranks
    sums = torch.zeros(n_inst, zn.shape[1], device=z.device).index_add_(0, inst, zn * g[:, None])
    counts = torch.zeros(n_inst, device=z.device).index_add_(0, inst, g)
    sums, counts = D.all_reduce_sum(sums), D.all_reduce_sum(counts)         # instances may span processes
    if bool((counts[inst] == 0).any()):
        raise ConfigError("uota: every instance needs at least one global view")
    mu = sums / counts.clamp(min=1)[:, None]                                # n_inst×D
    delta = zn - mu[inst]                                                   # M×D
    m_all = D.all_reduce_sum(torch.tensor(float(zn.shape[0]), device=z.device))
    cov = D.all_reduce_sum(delta.T @ delta) / m_all                         # D×D
    return delta, cov, m_all


def _mahalanobis(delta: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return (delta * torch.linalg.solve(cov, delta.T).T).sum(1)


def ledoit_wolf_shrinkage(delta: torch.Tensor, cov: torch.Tensor, m_all: torch.Tensor) -> torch.Tensor:
    """Ledoit–Wolf's shrinkage intensity α ∈ [0, 1] of Σ (the mean of δδᵀ over the global batch) towards
    (tr Σ / D)·I: α = min(b̄², d²) / d², d² = ‖Σ − μI‖²_F, b̄² = (mean_k ‖δ_k‖⁴ − ‖Σ‖²_F) / M. A 0-d tensor."""
    d = cov.shape[0]
    mu = torch.diagonal(cov).sum() / d
    d2 = ((cov - mu * torch.eye(d, device=cov.device)) ** 2).sum()
    fourth = D.all_reduce_sum((delta.pow(2).sum(1) ** 2).sum()) / m_all
    b2 = ((fourth - (cov ** 2).sum()) / m_all).clamp(min=0.0)
    return (torch.minimum(b2, d2) / d2.clamp(min=1e-30)).clamp(0.0, 1.0)


def uota_scores(z: torch.Tensor, instance_ids: torch.Tensor, is_global: torch.Tensor, eps: float = 1e-8
                ) -> torch.Tensor:
    """Mahalanobis distance of each view to its instance's global-view mean, over the global batch.

    Args:
        z: float M×D projections of this process's views (normalised here); instance_ids int64 M (global ids);
            is_global bool M.
    Returns float32 M: δᵀ Σ⁻¹ δ of this process's views (Σ and the means over every process's views)."""
    with torch.no_grad(), float32_region(z.device):
        delta, cov, _ = _deltas(z, instance_ids, is_global)
        return _mahalanobis(delta, cov + eps * torch.eye(cov.shape[0], device=z.device))


def uota_distances(z: torch.Tensor, instance_ids: torch.Tensor, is_global: torch.Tensor, eps: float = 1e-8
                   ) -> dict[str, torch.Tensor]:
    """UOTA's distance beside two diagnostics that keep the instance means but change Σ (no gradient, float32):

    - ``mahalanobis``: δᵀ Σ⁻¹ δ with the pooled Σ + ε·I — what UOTA weighs by (:func:`uota_scores`);
    - ``euclidean``: ‖δ‖² (Σ replaced by the identity: no whitening);
    - ``shrunk``: δᵀ Σ_α⁻¹ δ with Σ_α = (1 − α)Σ + α(tr Σ / D)·I + ε·I, α from :func:`ledoit_wolf_shrinkage`;
    - ``alpha`` (0-d): that α; ``top8_share`` (0-d): the share of tr Σ in its 8 largest eigenvalues and
      ``condition`` (0-d): λ_max / λ_min of Σ + ε·I — a low-rank Σ (share near 1) is what makes Σ⁻¹ blow up the
      empty directions.
    Each M-vector covers this process's views; Σ and the means pool every process's views."""
    with torch.no_grad(), float32_region(z.device):
        delta, cov, m_all = _deltas(z, instance_ids, is_global)
        eye = torch.eye(cov.shape[0], device=z.device)
        alpha = ledoit_wolf_shrinkage(delta, cov, m_all)
        mu = torch.diagonal(cov).sum() / cov.shape[0]
        ev = torch.linalg.eigvalsh(cov + eps * eye).clamp(min=0.0)            # ascending
        return {"mahalanobis": _mahalanobis(delta, cov + eps * eye),
                "euclidean": delta.pow(2).sum(1),
                "shrunk": _mahalanobis(delta, (1 - alpha) * cov + alpha * mu * eye + eps * eye),
                "alpha": alpha,
                "top8_share": ev[-8:].sum() / ev.sum().clamp(min=1e-30),
                "condition": ev[-1] / ev[0].clamp(min=1e-30)}


@register_weighting("uota")
class UOTAWeighting(Weighting):
    """UOTA's view weights (see the module docstring).

    Args:
        tau: τ_u, the temperature of the softmax over −distances (reference 350).
        start: fraction of training after which weighting starts (uniform before).
        eps: added to Σ's diagonal.
        restart_lr: 0 (default) keeps the run's one learning-rate schedule; a factor f > 0 multiplies the same
            cosine schedule by f from the moment weighting starts (the reference: 2.0)."""

    options = {
        "tau": Opt(float, 1e-3, 1e6, note="temperature of the softmax over −distances; reference 350"),
        "start": Opt(float, 0.0, 1.0, note="a fraction of training; 1 = weights recorded, never applied"),
        "eps": Opt(float, 1e-12, 1.0, note="added to the covariance's diagonal; 0 makes it singular"),
        "restart_lr": Opt(float, 0.0, 100.0, note="a factor of the base learning rate; 0 = no restart, the "
                                                  "reference uses 2.0")}

    def __init__(self, tau: float = 350.0, start: float = 0.5, eps: float = 1e-8, restart_lr: float = 0.0) -> None:
        check_values("weighting 'uota'", UOTAWeighting, dict(tau=tau, start=start, eps=eps, restart_lr=restart_lr))
        self.tau, self.start, self.eps = float(tau), float(start), float(eps)
        self.restart_lr = float(restart_lr)

    def lr_restart(self) -> tuple[float, float] | None:
        """``(fraction of training, factor)`` of the learning-rate restart the loop applies, or None (off)."""
        return (self.start, self.restart_lr) if self.restart_lr > 0 else None

    def __call__(self, per_view: torch.Tensor, batch: Any, out: dict[str, torch.Tensor]) -> torch.Tensor:
        m = per_view.shape[0]
        dist = uota_distances(out["z"], batch.instance_ids, batch.is_global, self.eps)
        u = dist["mahalanobis"] / self.tau                                   # M
        w_all = torch.softmax(-D.gather_rows(u), dim=0)                      # over the global batch, sums to 1
        # × world size: each process's loss is averaged over processes by DDP, so Σ_ranks w = world
        w = D.local_rows(w_all, m) * D.world_size()
        out["uota_distance"], out["uota_weights"] = u, w
        out["uota_euclidean"], out["uota_shrunk"] = dist["euclidean"], dist["shrunk"]      # diagnostics only
        out["uota_sigma"] = torch.stack([dist["alpha"], dist["top8_share"], dist["condition"]])
        if batch.train_fraction < self.start:                                # warm-up: uniform weights
            return torch.full_like(per_view, 1.0 / m)
        return w
