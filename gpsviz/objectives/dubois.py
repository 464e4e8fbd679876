"""Dubois et al.'s idealized-representation objectives: CISSL (contrastive, asymmetric heads) and DISSL
(distillation into a categorical teacher). Both are ordinary ingredients: they add their teacher head to the
model and read the backbone features of every view.

CISSL (τ = 0.07; the recipe's student head is Linear + BN, the probe's architecture):
    s_i = normalize(student(h_i)), t_j = normalize(teacher(h_j))      teacher: MLP d→1024→p + BN
    logits_ij = s_i·t_j / τ over **all** views j (self not masked)
    loss_i = −½·log q_ii − ½·mean_{j positive of i} log q_ij          (q = softmax over j)

DISSL (C = proj_dim categories; reference C = 16384 on ImageNet, 128 by default here for small data):
    t_i = softmax(teacher(h_i) / 0.5)        teacher: d→1024 (BN, ReLU) →512 (BN) →C, not detached, no EMA
    log s_j = log_softmax(student(h_j) / 1.0) student: the recipe's low-rank linear head d→512 (BN) →C
    loss = mean_{i≠j same instance} [CE(t_i, s_j) + β·CE(t_i, t_j)] − λ·mean_k H(mean over the batch of t, crop k)
The marginal entropy is taken **per crop** (views of one slot: all anchors, all partners, …) and averaged over the
crops, as the reference does (YannDubs/Invariant-Self-Supervised-Learning, ``issl/losses/dissl.py``,
``DISSL.forward``: ``p_M = p_Mlz.mean(0)`` inside the loop over crops, ``H_maximality = mean(list_H_M)``). The
entropy of the marginal pooled over both crops is larger by a Jensen–Shannon term (the crops' marginals
differing), which λ would reward.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz import distributed as D
from gpsviz.errors import CheckpointError
from gpsviz.objectives.base import TEMPERATURE, Objective, float32_region, other_views_of, register_objective
from gpsviz.registry import Opt, check_values

__all__ = ["CISSLObjective", "DISSLObjective", "DISSLTeacher"]


def _own_rows(m: int, device: torch.device) -> torch.Tensor:
    return torch.arange(m, device=device) + D.rank() * m


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of a categorical distribution p (C, sums to 1)."""
    return -(p * p.clamp(min=1e-12).log()).sum()


class DISSLTeacher(nn.Module):
    """DISSL's teacher, the reference's projector (``issl/architectures/basic.py``: ``MLP`` with
    ``n_hid_layers=1, hid_dim=1024, norm_layer="batch"`` whose last layer is ``Linear`` with
    ``bottleneck_size=512``, ``is_batchnorm_bottleneck=True``)::

        Linear(d, hidden, bias=False) → BatchNorm1d(hidden) → ReLU
        → Linear(hidden, bottleneck, bias=False) → BatchNorm1d(bottleneck) (affine) → Linear(bottleneck, C)

    h: V×d → logits V×C. A checkpoint of an earlier gpsviz (no BatchNorm in the bottleneck, the layers under
    ``0.net`` and ``1``) is refused by name."""

    def __init__(self, in_dim: int, hidden: int, bottleneck: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, bottleneck, bias=False), nn.BatchNorm1d(bottleneck),
                                 nn.Linear(bottleneck, out_dim))
        self.out_dim = int(out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # An earlier gpsviz's teacher: Sequential(MLPHead d→hidden→bottleneck with a biased last Linear, Linear
        # bottleneck→C), no BatchNorm between the two (keys "0.net.*" and "1.*"). Refuse it by name.
        if f"{prefix}0.net.0.weight" in state_dict and f"{prefix}net.4.running_mean" not in state_dict:
            raise CheckpointError(
                "this DISSL run was trained by an earlier gpsviz whose teacher had no BatchNorm in its bottleneck "
                "(hidden → bottleneck → categories); its teacher cannot be loaded into the current one, which has "
                "the reference's BatchNorm there (and its loss took the marginal entropy pooled over both crops, "
                "not per crop). Retrain the run (its backbone alone still loads for evaluation).")
        super()._load_from_state_dict(state_dict, prefix, *args)


@register_objective("cissl")
class CISSLObjective(Objective):
    """CISSL (see the module docstring). Options: ``teacher_hidden`` (1024), ``temperature`` (None = cfg's).
    Positives: the plan's group ids (besides the view itself)."""

    options = {"teacher_hidden": Opt(int, 1, 65_536, note="the teacher MLP's hidden width"),
               "temperature": TEMPERATURE}
    positives_from = ("group_ids",)

    def __init__(self, teacher_hidden: int = 1024, temperature: float | None = None) -> None:
        o = check_values("objective 'cissl'", CISSLObjective, dict(teacher_hidden=teacher_hidden,
                                                                   temperature=temperature))
        self.teacher_hidden, self.temperature = o["teacher_hidden"], o["temperature"]

    def build(self, model: Any, cfg: Any) -> None:
        from gpsviz.models.heads import MLPHead

        if self.temperature is None:
            self.temperature = cfg.temperature
        model.heads["cissl_teacher"] = MLPHead(model.backbone.out_dim, self.teacher_hidden, cfg.proj_dim,
                                               last_bn=True)

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        t = model.heads["cissl_teacher"](out["h"])                           # M×p
        with float32_region(t.device):
            s = F.normalize(out["z"].float(), dim=1)                          # M×p student
            t_all, g_all = D.gather_views(F.normalize(t.float(), dim=1), batch.group_ids.to(t.device))
            logq = F.log_softmax(s @ t_all.T / self.temperature, dim=1)       # M×M_all, self kept
            rows = _own_rows(s.shape[0], s.device)
            pos = other_views_of(batch.group_ids.to(t.device), g_all, rows,
                                 torch.arange(g_all.shape[0], device=t.device))          # M×M_all
            self_term = logq[torch.arange(s.shape[0], device=s.device), rows]
            pos_term = logq.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp(min=1)
            per_view = -0.5 * self_term - 0.5 * pos_term
        return per_view, {"teacher_z": t}


@register_objective("dissl")
class DISSLObjective(Objective):
    """DISSL (see the module docstring). Options: ``lam`` λ (2.3), ``beta`` β (0.8), ``teacher_temperature``
    (0.5), ``student_temperature`` (1.0), ``teacher_hidden`` (1024), ``bottleneck`` (512). Positives: the
    other views of the same instance (a source that marks positives only in the group ids is refused)."""

    options = {"lam": Opt(float, 0.0, 100.0, note="weight of the marginal entropy; reference 2.3; < 0 would "
                                                  "reward collapse"),
               "beta": Opt(float, 0.0, 10.0, note="weight of the teacher-teacher term; reference 0.8"),
               "teacher_temperature": Opt(float, 1e-3, 10.0), "student_temperature": Opt(float, 1e-3, 10.0),
               "teacher_hidden": Opt(int, 1, 65_536), "bottleneck": Opt(int, 1, 65_536)}
    positives_from = ("instance_ids",)

    def __init__(self, lam: float = 2.3, beta: float = 0.8, teacher_temperature: float = 0.5,
                 student_temperature: float = 1.0, teacher_hidden: int = 1024, bottleneck: int = 512) -> None:
        check_values("objective 'dissl'", DISSLObjective, dict(
            lam=lam, beta=beta, teacher_temperature=teacher_temperature, student_temperature=student_temperature,
            teacher_hidden=teacher_hidden, bottleneck=bottleneck))
        self.lam, self.beta = float(lam), float(beta)
        self.t_temp, self.s_temp = float(teacher_temperature), float(student_temperature)
        self.teacher_hidden, self.bottleneck = int(teacher_hidden), int(bottleneck)

    def build(self, model: Any, cfg: Any) -> None:
        model.heads["dissl_teacher"] = DISSLTeacher(model.backbone.out_dim, self.teacher_hidden, self.bottleneck,
                                                    cfg.proj_dim)

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits_t = model.heads["dissl_teacher"](out["h"])                    # M×C, not detached
        with float32_region(logits_t.device):
            t = F.softmax(logits_t.float() / self.t_temp, dim=1)              # M×C
            logt = F.log_softmax(logits_t.float() / self.t_temp, dim=1)
            logs = F.log_softmax(out["z"].float() / self.s_temp, dim=1)       # M×C student
            inst = batch.instance_ids.to(t.device)
            m = t.shape[0]
            t_all, inst_all = D.gather_views(t, inst)                         # M_all×C
            pair = other_views_of(inst, inst_all, _own_rows(m, t.device),
                                  torch.arange(inst_all.shape[0], device=t.device))      # M×M_all: j ← i
            n = pair.sum(1).clamp(min=1)
            ce_s = -(logs @ t_all.T)                                          # M×M_all: CE(t_i, s_j)
            ce_t = -(logt @ t_all.T)                                          # CE(t_i, t_j)
            per_view = ((ce_s + self.beta * ce_t).masked_fill(~pair, 0.0)).sum(1) / n
            slots_all = D.gather_rows(batch.plan.slots.to(t.device))          # M_all: which crop each view is
            entropy = torch.stack([_entropy(t_all[slots_all == k].mean(0))    # H of each crop's marginal over
                                   for k in torch.unique(slots_all)]).mean()  # the global batch, averaged
        return per_view, {"loss_terms": {"marginal_entropy": -self.lam * entropy}, "teacher_probs": t}
