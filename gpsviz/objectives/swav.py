"""SwAV: online clustering with swapped prediction (the baseline objective UOTA was shown with).

Paper: Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", NeurIPS 2020,
arXiv:2006.09882.

As the reference (facebookresearch/swav ``main_swav.py``, ``crops_for_assign = [0, 1]``; ssl-codelab/uota builds on
it), per step, with V views per instance of which G are global ("crops"; global crop position s = the view's
plan slot, 0..G−1):

    z = normalize(projector(backbone(view)))             # M×p
    scores = z · Cᵀ                                        # M×K, C = L2-normalised prototypes
    q_s = sinkhorn(scores of crop s's rows)               # one call per global crop position s, over that crop's
                                                          # rows of the global batch (+ its queue, see below)
    loss = 1/G Σ_s 1/(V−1) Σ_{t ≠ s} mean_batch CE(q_s, softmax(scores_t / τ))

so every (code s, predicting view t ≠ s) pair of an instance weighs 1/(G(V−1)) — with 2 global + 4 local views
the two global→global pairs weigh 2/10 = 20 % of the loss. As per-view losses (the weighting averages them):

    loss_t = V/(G(V−1)) · Σ_{s global, s ≠ t, same instance} CE(q_s, p_t)     (V, G: counts of t's instance)

whose uniform mean over the M views equals the reference's loss exactly (and whose UOTA-weighted sum is the
reference UOTA's Σ w_t·CE, its weights being per predicting view t). :func:`swav_loss` is that formula as a pure
function of tensors (scores, codes, instance ids, which views are global); :class:`SwAVObjective` holds the state
around it (prototypes, queue, freezing) and computes the codes with :func:`sinkhorn`.

Codes are computed under no gradient with ε = 0.05 and 3 Sinkhorn-Knopp iterations; their sums run over every
process (one Sinkhorn per crop position on every process, so the collectives match). Prototypes are frozen (no
gradient) for the first ``freeze_epochs`` epochs and re-normalised before every step. Local views (multi-crop) only
predict.

**Queue** (``queue_length`` > 0; reference 3840 on ImageNet, off by default): one queue per global crop position
of the most recent L2-normalised projections of that crop's views, ``queue_length // world_size`` rows on each
process (newest first). From epoch ``queue_start_epoch`` on (reference 15) the queues exist and are filled; once a
queue is full (as the reference, whose test is "the last row is not all zero"), the scores of its rows with the
current prototypes are prepended to that crop's scores before Sinkhorn and only the batch's codes are kept. After
the codes of a step are computed each queue is shifted and the crop's current rows enqueued (training mode only:
``model.training``). The queue is plain state on the objective, not in ``model`` (not a DDP buffer: each process
keeps its own rows, as the reference's per-rank queues; Sinkhorn's sums then run over every process's queue and
batch rows). It is not checkpointed: a resumed run starts with empty queues (the reference saves one per rank) and
uses them again once they are full, ``queue_length // (world_size · batch rows per crop)`` steps later. Unlike the
reference, ``queue_length`` is not rounded down to a multiple of the global batch: a queue whose length is not a
multiple of the batch keeps its newest rows.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz import distributed as D
from gpsviz.errors import ConfigError
from gpsviz.objectives.base import Objective, float32_region, other_views_of, register_objective
from gpsviz.registry import Opt, check_values

__all__ = ["SwAVObjective", "sinkhorn", "swav_loss"]


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Codes from prototype scores (B×K, this process's rows) by Sinkhorn-Knopp over the global batch.

    Returns float32 B×K, rows summing to 1, columns of the global batch summing to about B_all/K each.
    Computed in float64: exp of scores/ε spans hundreds of e-folds, which float32 flushes to zero. A process
    may hold no rows (B = 0) while others do: it still takes part in the sums."""
    s = scores.double() / epsilon
    local_max = s.max().reshape(1) if s.numel() else s.new_full((1,), float("-inf"))
    s = s - D.all_reduce_max(local_max)                                 # stable exp, same shift everywhere
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


def swav_loss(scores: torch.Tensor, codes: torch.Tensor, instance_ids: torch.Tensor, is_global: torch.Tensor,
              temperature: float = 0.1) -> torch.Tensor:
    """SwAV's swapped prediction as per-view losses (the module docstring's ``loss_t``), from tensors only.

    Args:
        scores: float M×K, every view's prototype scores z·Cᵀ (gradient flows through them).
        codes: float G×K, the codes q_s of the global views, one row per True entry of ``is_global`` in row
            order (computed without gradient, e.g. by :func:`sinkhorn`).
        instance_ids: int64 M; views with equal id are views of one instance.
        is_global: bool M, which views are global (code-giving); the others only predict.
        temperature: τ of the prediction softmax p_t = softmax(scores_t / τ).

    Returns:
        float32 M: ``loss_t = V/(G(V−1)) · Σ_{s global, s ≠ t, same instance} CE(q_s, p_t)`` with V and G the view
        and global-view counts of t's instance, so that the mean over the M views is the reference's
        ``1/G Σ_s 1/(V−1) Σ_{t≠s} CE(q_s, p_t)`` (batch mean). A view with no code to predict gets 0.
    """
    if not temperature > 0:
        raise ConfigError(f"swav_loss: temperature must be > 0, got {temperature}")
    if scores.ndim != 2 or codes.ndim != 2 or codes.shape[1] != scores.shape[1]:
        raise ConfigError(f"swav_loss: scores must be M×K and codes G×K, got {tuple(scores.shape)} and "
                          f"{tuple(codes.shape)}")
    m, dev = scores.shape[0], scores.device
    if instance_ids.shape != (m,) or is_global.shape != (m,):
        raise ConfigError(f"swav_loss: instance_ids and is_global must have shape ({m},), got "
                          f"{tuple(instance_ids.shape)} and {tuple(is_global.shape)}")
    inst = instance_ids.to(dev)                                         # M
    glob = is_global.to(dev).nonzero().flatten()                        # G: the code-giving views
    if codes.shape[0] != glob.shape[0]:
        raise ConfigError(f"swav_loss: {glob.shape[0]} global views but {codes.shape[0]} rows of codes")
    with float32_region(dev):
        logp = F.log_softmax(scores.float() / temperature, dim=1)       # M×K, log p_t
        ce = -(logp @ codes.float().T)                                  # M×G: view t predicts code of s
        pair = other_views_of(inst, inst[glob], torch.arange(m, device=dev), glob)   # M×G: s ≠ t, same instance
        _, idx = torch.unique(inst, return_inverse=True)                # compact instance index of each view
        n_views = torch.bincount(idx).double()                          # V of each instance
        n_glob = torch.bincount(idx[glob], minlength=n_views.shape[0]).double()   # G of each instance
        scale = (n_views / (n_glob.clamp(min=1) * (n_views - 1).clamp(min=1))).float()   # V/(G(V−1))
        return ce.masked_fill(~pair, 0.0).sum(1) * scale[idx]           # M


@register_objective("swav")
class SwAVObjective(Objective):
    """SwAV's swapped prediction (see the module docstring).

    Args:
        prototypes: K, the number of prototypes (reference 3000 on ImageNet; a few hundred suit small data).
        temperature: τ of the prediction softmax (0.1).
        epsilon: Sinkhorn entropy ε (0.05). iterations: Sinkhorn iterations (3).
        freeze_epochs: epochs during which the prototypes get no gradient (1).
        queue_length: rows of each global crop position's feature queue over all processes (0 = no queue, the
            default; reference 3840 on ImageNet). queue_start_epoch: the 0-based epoch from which the queues are
            filled (and used once full; reference 15).

    Attributes:
        queue: None, or float32 P×(queue_length // world_size)×p (P global crop positions, newest rows first);
            queue_rows: rows filled so far per position.

    Positives: the other views of the same instance (a source that marks positives only in the group ids is
    refused)."""

    options = {
        "prototypes": Opt(int, 2, 65_536, note="reference 3000 on ImageNet"),
        "temperature": Opt(float, 1e-3, 10.0, note="typical 0.1"),
        # below ≈ 0.003, exp(score/ε) underflows float64 and a prototype's codes become 0/0
        "epsilon": Opt(float, 0.005, 10.0, note="Sinkhorn entropy; typical 0.03–0.05"),
        "iterations": Opt(int, 1, 1000, note="Sinkhorn-Knopp iterations; typical 3"),
        "freeze_epochs": Opt(int, 0, 100_000),
        "queue_length": Opt(int, 0, 10_000_000, note="rows per global crop over all processes; 0 = no queue; "
                                                     "reference 3840 on ImageNet"),
        "queue_start_epoch": Opt(int, 0, 100_000, note="0-based epoch from which the queue fills; reference 15")}
    positives_from = ("instance_ids",)

    def __init__(self, prototypes: int = 100, temperature: float = 0.1, epsilon: float = 0.05,
                 iterations: int = 3, freeze_epochs: int = 1, queue_length: int = 0,
                 queue_start_epoch: int = 15) -> None:
        check_values("objective 'swav'", SwAVObjective, dict(prototypes=prototypes, temperature=temperature,
                                                             epsilon=epsilon, iterations=iterations,
                                                             freeze_epochs=freeze_epochs, queue_length=queue_length,
                                                             queue_start_epoch=queue_start_epoch))
        self.k, self.temperature, self.epsilon = prototypes, float(temperature), float(epsilon)
        self.iterations, self.freeze_epochs = int(iterations), int(freeze_epochs)
        self.queue_length, self.queue_start_epoch = int(queue_length), int(queue_start_epoch)
        self.queue: torch.Tensor | None = None
        self.queue_rows: list[int] = []

    def build(self, model: Any, cfg: Any) -> None:
        model.heads["prototypes"] = nn.Linear(cfg.proj_dim, self.k, bias=False)

    def _start_queue(self, positions: int, dim: int, device: torch.device) -> None:
        """Create empty queues when they are due (and again, empty, if the crops or feature size changed)."""
        rows = self.queue_length // D.world_size()
        q = self.queue
        if rows > 0 and (q is None or q.shape != (positions, rows, dim) or q.device != device):
            self.queue = torch.zeros(positions, rows, dim, device=device)
            self.queue_rows = [0] * positions

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        proto = model.heads["prototypes"].weight                        # K×p
        with torch.no_grad():
            proto.copy_(F.normalize(proto, dim=1))
        c = proto.detach() if batch.epoch < self.freeze_epochs else proto
        with float32_region(out["z"].device):
            z = F.normalize(out["z"].float(), dim=1)                    # M×p
            dev = z.device
            scores = z @ c.float().T                                    # M×K
            glob = batch.is_global.to(dev).nonzero().flatten()          # G
            pos = batch.plan.slots.to(dev)[glob].long()                 # G: global crop position of each
            local_n = pos.max().reshape(1) + 1 if pos.numel() else pos.new_zeros(1)
            n_pos = int(D.all_reduce_max(local_n).item())               # the same crop loop on every process
            if self.queue_length > 0 and batch.epoch >= self.queue_start_epoch:
                self._start_queue(n_pos, z.shape[1], dev)
            enqueue = self.queue is not None and bool(getattr(model, "training", True))
            q = scores.new_zeros(glob.shape[0], scores.shape[1])        # G×K codes, in the order of glob
            with torch.no_grad():
                for s in range(n_pos):
                    mine = (pos == s).nonzero().flatten()               # this crop's rows among the globals
                    crop = scores[glob[mine]].detach()                  # B_s×K
                    n_queue = 0
                    if self.queue is not None and self.queue_rows[s] >= self.queue.shape[1]:   # full: use it
                        crop = torch.cat([self.queue[s] @ c.detach().float().T, crop])
                        n_queue = self.queue.shape[1]
                    q[mine] = sinkhorn(crop, self.epsilon, self.iterations)[n_queue:]
                    if enqueue:                                         # shift, newest rows first
                        new = z[glob[mine]].detach()
                        self.queue[s] = torch.cat([new, self.queue[s]])[:self.queue.shape[1]]
                        self.queue_rows[s] += new.shape[0]
        per_view = swav_loss(scores, q, batch.instance_ids, batch.is_global, self.temperature)   # M
        return per_view, {"codes": q, "scores": scores}
