"""SwAV: online clustering with swapped prediction (the baseline objective UOTA was shown with).

    z = normalize(projector(backbone(view)))            # M×p
    scores = z · Cᵀ                                       # M×K, C = L2-normalised prototypes
    q = sinkhorn(scores of the global views)             # G×K codes, equal use of prototypes over the batch
    loss_t = mean_{s global, s ≠ t, same instance} −Σ_k q_s[k] · log softmax(scores_t / τ)[k]

Codes are computed under no gradient with ε = 0.05 and 3 Sinkhorn-Knopp iterations; their sums run over every
process. Prototypes are frozen (no gradient) for the first ``freeze_epochs`` epochs and re-normalised before
every step. Local views (multi-crop) only predict.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz import distributed as D
from gpsviz.objectives.base import Objective, float32_region, other_views_of, register_objective
from gpsviz.registry import Opt, check_values

__all__ = ["SwAVObjective", "sinkhorn"]


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes from prototype scores (B×K, this process's rows) by Sinkhorn-Knopp over the global batch.

    Returns float32 B×K, rows summing to 1, columns of the global batch summing to about B_all/K each.
    Computed in float64: exp of scores/ε spans hundreds of e-folds, which float32 flushes to zero."""
    s = scores.double() / epsilon
    s = s - D.all_reduce_max(s.max().reshape(1))                       # stable exp, same shift everywhere
    q = torch.exp(s).T                                                  # K×B
    k = q.shape[0]
    b_all = D.all_reduce_sum(torch.tensor(float(q.shape[1]), device=q.device, dtype=q.dtype))
    q /= D.all_reduce_sum(q.sum())
    for _ in range(iterations):
        q /= D.all_reduce_sum(q.sum(dim=1, keepdim=True))               # every prototype: total mass 1/K
        q /= k
        q /= q.sum(dim=0, keepdim=True)                                 # every sample: total mass 1/B
        q /= b_all
    return (q * b_all).T.float()                                        # B×K, rows sum to 1


@register_objective("swav")
class SwAVObjective(Objective):
    """SwAV's swapped prediction (see the module docstring).

    Args:
        prototypes: K, the number of prototypes (reference 3000 on ImageNet; a few hundred suit small data).
        temperature: τ of the prediction softmax (0.1).
        epsilon: Sinkhorn entropy ε (0.05). iterations: Sinkhorn iterations (3).
        freeze_epochs: epochs during which the prototypes get no gradient (1).

    Positives: the other global views of the same instance (a source that marks positives only in the group
    ids is refused)."""

    options = {
        "prototypes": Opt(int, 2, 65_536, note="reference 3000 on ImageNet"),
        "temperature": Opt(float, 1e-3, 10.0, note="typical 0.1"),
        # below ≈ 0.003, exp(score/ε) underflows float64 and a prototype's codes become 0/0
        "epsilon": Opt(float, 0.005, 10.0, note="Sinkhorn entropy; typical 0.03–0.05"),
        "iterations": Opt(int, 1, 1000, note="Sinkhorn-Knopp iterations; typical 3"),
        "freeze_epochs": Opt(int, 0, 100_000)}
    positives_from = ("instance_ids",)

    def __init__(self, prototypes: int = 100, temperature: float = 0.1, epsilon: float = 0.05,
                 iterations: int = 3, freeze_epochs: int = 1) -> None:
        check_values("objective 'swav'", SwAVObjective, dict(prototypes=prototypes, temperature=temperature,
                                                             epsilon=epsilon, iterations=iterations,
                                                             freeze_epochs=freeze_epochs))
        self.k, self.temperature, self.epsilon = prototypes, float(temperature), float(epsilon)
        self.iterations, self.freeze_epochs = int(iterations), int(freeze_epochs)

    def build(self, model: Any, cfg: Any) -> None:
        model.heads["prototypes"] = nn.Linear(cfg.proj_dim, self.k, bias=False)

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        proto = model.heads["prototypes"].weight                        # K×p
        with torch.no_grad():
            proto.copy_(F.normalize(proto, dim=1))
        c = proto.detach() if batch.epoch < self.freeze_epochs else proto
        with float32_region(out["z"].device):
            z = F.normalize(out["z"].float(), dim=1)                    # M×p
            scores = z @ c.float().T                                    # M×K
            glob = batch.is_global.to(z.device).nonzero().flatten()     # G
            q = sinkhorn(scores[glob].detach(), self.epsilon, self.iterations)    # G×K
            logp = F.log_softmax(scores / self.temperature, dim=1)      # M×K
            ce = -(logp @ q.T)                                          # M×G: view t predicts code of s
            inst = batch.instance_ids.to(z.device)
            pair = other_views_of(inst, inst[glob], torch.arange(z.shape[0], device=z.device), glob)   # M×G
            per_view = ce.masked_fill(~pair, 0.0).sum(1) / pair.sum(1).clamp(min=1)   # M
        return per_view, {"codes": q, "scores": scores}
