"""Dubois et al.'s idealized-representation objectives: CISSL (contrastive, asymmetric heads) and DISSL
(distillation into a categorical teacher). Both are ordinary ingredients: they add their teacher head to the
model and read the backbone features of every view.

Paper: Dubois, Hashimoto, Ermon, Liang, "Improving Self-Supervised Learning by Characterizing Idealized
Representations", NeurIPS 2022, arXiv:2209.06235.

:func:`cissl_loss` and :func:`dissl_loss` are the losses below as pure functions of tensors (the student's and
the teacher's outputs, the views' ids); :class:`CISSLObjective` and :class:`DISSLObjective` own the teacher heads,
gather the teacher's rows over processes and call them.

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
from gpsviz.errors import CheckpointError, ConfigError
from gpsviz.models.heads import MLPHead
from gpsviz.objectives.base import TEMPERATURE, Objective, float32_region, other_views_of, register_objective
from gpsviz.registry import Opt, check_values

__all__ = ["CISSLObjective", "DISSLObjective", "DISSLTeacher", "cissl_loss", "dissl_loss"]


def _own_rows(m: int, device: torch.device) -> torch.Tensor:
    return torch.arange(m, device=device) + D.rank() * m


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of a categorical distribution p (C, sums to 1)."""
    return -(p * p.clamp(min=1e-12).log()).sum()


def _student_rows(m: int, n: int, self_index: torch.Tensor | None, device: torch.device, name: str) -> torch.Tensor:
    """The teacher row of each of the m student rows (``self_index``, or 0..m−1 when the teacher's rows are the
    student's own views), checked against the n teacher rows."""
    if self_index is None:
        if m != n:
            raise ConfigError(f"{name}: {m} student rows but {n} teacher rows; pass self_index (the teacher row of "
                              f"each student row) when the teacher covers more views")
        return torch.arange(m, device=device)
    rows = torch.as_tensor(self_index, device=device).long()
    if rows.shape != (m,):
        raise ConfigError(f"{name}: self_index must have shape ({m},), got {tuple(rows.shape)}")
    return rows


def cissl_loss(student: torch.Tensor, teacher: torch.Tensor, group_ids: torch.Tensor, temperature: float = 0.07,
               *, self_index: torch.Tensor | None = None) -> torch.Tensor:
    """CISSL's per-view loss (the module docstring's ``loss_i``), from tensors only.

    Args:
        student: float M×p, the student head's outputs of the views whose losses are wanted (L2-normalised here).
        teacher: float N×p, the teacher head's outputs of every view (L2-normalised here); every teacher row is
            a candidate j of the softmax, the view's own row included.
        group_ids: int64 N, the group id of every teacher row; views with equal id are positives.
        temperature: τ > 0.
        self_index: int64 M, the teacher row of each student row's own view. None: the teacher's rows are the
            student's views in the same order (N = M). (Several processes: the gathered teacher and this
            process's rows of it.)

    Returns:
        float32 M: ``−½·log q_ii − ½·mean_{j positive of i} log q_ij`` with ``q_i = softmax_j(s_i·t_j / τ)``; a view
        without positives keeps the first term only.
    """
    if not temperature > 0:
        raise ConfigError(f"cissl_loss: temperature must be > 0, got {temperature}")
    if student.ndim != 2 or teacher.ndim != 2 or student.shape[1] != teacher.shape[1]:
        raise ConfigError(f"cissl_loss: student must be M×p and teacher N×p, got {tuple(student.shape)} and "
                          f"{tuple(teacher.shape)}")
    m, n, dev = student.shape[0], teacher.shape[0], student.device
    group_ids = torch.as_tensor(group_ids, device=dev).long()
    if group_ids.shape != (n,):
        raise ConfigError(f"cissl_loss: group_ids must have shape ({n},) to match the teacher, got "
                          f"{tuple(group_ids.shape)}")
    rows = _student_rows(m, n, self_index, dev, "cissl_loss")           # M: own teacher row of each student row
    with float32_region(dev):
        s = F.normalize(student.float(), dim=1)                          # M×p
        t = F.normalize(teacher.float(), dim=1)                          # N×p
        logq = F.log_softmax(s @ t.T / temperature, dim=1)               # M×N, self kept
        pos = other_views_of(group_ids[rows], group_ids, rows, torch.arange(n, device=dev))   # M×N
        self_term = logq[torch.arange(m, device=dev), rows]              # M, log q_ii
        pos_term = logq.masked_fill(~pos, 0.0).sum(1) / pos.sum(1).clamp(min=1)               # M
        return -0.5 * self_term - 0.5 * pos_term


def dissl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, instance_ids: torch.Tensor,
               crop_ids: torch.Tensor, *, beta: float = 0.8, lam: float = 2.3, teacher_temperature: float = 0.5,
               student_temperature: float = 1.0, self_index: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """DISSL's per-view loss and its marginal-entropy term (the module docstring's formula), from tensors only.

    Args:
        student_logits: float M×C, the student's logits of the views whose losses are wanted.
        teacher_logits: float N×C, the teacher's logits of every view (not detached: the teacher is trained
            through both terms).
        instance_ids: int64 N, the instance of every teacher row; the partners of a view are the other views of
            its instance.
        crop_ids: int64 N, the crop (plan slot) of every teacher row: the marginal entropy is taken per crop and
            averaged over the crops (the reference's form).
        beta: β, weight of the teacher–teacher term. lam: λ, weight of the marginal entropy.
        teacher_temperature, student_temperature: the softmax temperatures of teacher and student.
        self_index: int64 M, the teacher row of each student row's own view. None: the teacher's rows are the
            student's views in the same order (N = M).

    Returns:
        (per_view float32 M, entropy_term float32 0-d): ``per_view_j = mean_{i≠j same instance} [CE(t_i, s_j) +
        β·CE(t_i, t_j)]`` (0 for a view without partners) and ``entropy_term = −λ·mean_k H(mean_{i in crop k}
        t_i)``, to be added to the loss once.
    """
    if not (teacher_temperature > 0 and student_temperature > 0):
        raise ConfigError(f"dissl_loss: temperatures must be > 0, got {teacher_temperature} (teacher) and "
                          f"{student_temperature} (student)")
    if student_logits.ndim != 2 or teacher_logits.ndim != 2 or student_logits.shape[1] != teacher_logits.shape[1]:
        raise ConfigError(f"dissl_loss: student_logits must be M×C and teacher_logits N×C, got "
                          f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    m, n, dev = student_logits.shape[0], teacher_logits.shape[0], student_logits.device
    inst = torch.as_tensor(instance_ids, device=dev).long()
    crops = torch.as_tensor(crop_ids, device=dev).long()
    if inst.shape != (n,) or crops.shape != (n,):
        raise ConfigError(f"dissl_loss: instance_ids and crop_ids must have shape ({n},) to match the teacher, "
                          f"got {tuple(inst.shape)} and {tuple(crops.shape)}")
    rows = _student_rows(m, n, self_index, dev, "dissl_loss")           # M
    own = teacher_logits if self_index is None else teacher_logits[rows]     # M×C, the teacher of view j itself
    with float32_region(dev):
        t = F.softmax(teacher_logits.float() / teacher_temperature, dim=1)   # N×C, t_i
        logt = F.log_softmax(own.float() / teacher_temperature, dim=1)        # M×C, log t_j
        logs = F.log_softmax(student_logits.float() / student_temperature, dim=1)   # M×C, log s_j
        pair = other_views_of(inst[rows], inst, rows, torch.arange(n, device=dev))  # M×N: j ← i
        n_pairs = pair.sum(1).clamp(min=1)                               # M
        ce_s = -(logs @ t.T)                                             # M×N: CE(t_i, s_j)
        ce_t = -(logt @ t.T)                                             # M×N: CE(t_i, t_j)
        per_view = ((ce_s + beta * ce_t).masked_fill(~pair, 0.0)).sum(1) / n_pairs   # M
        entropy = torch.stack([_entropy(t[crops == k].mean(0))          # H of each crop's marginal,
                               for k in torch.unique(crops)]).mean()     # averaged over the crops
        return per_view, -lam * entropy


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
        if self.temperature is None:
            self.temperature = cfg.temperature
        model.heads["cissl_teacher"] = MLPHead(model.backbone.out_dim, self.teacher_hidden, cfg.proj_dim,
                                               last_bn=True)

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        t = model.heads["cissl_teacher"](out["h"])                           # M×p
        t_all, g_all = D.gather_views(t.float(), batch.group_ids.to(t.device))   # M_all×p, M_all (with gradient)
        per_view = cissl_loss(out["z"], t_all, g_all, self.temperature,
                              self_index=_own_rows(t.shape[0], t.device))        # M
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
        dev, m = logits_t.device, logits_t.shape[0]
        inst = batch.instance_ids.to(dev)
        slots_all = D.gather_rows(batch.plan.slots.to(dev))                   # M_all: which crop each view is
        if D.is_distributed():                                                # every process's teacher rows
            t_all, inst_all = D.gather_views(logits_t.float(), inst)          # M_all×C (with gradient), M_all
            rows = _own_rows(m, dev)
        else:                                                                 # one process: its own views
            t_all, inst_all, rows = logits_t, inst, None
        per_view, entropy_term = dissl_loss(out["z"], t_all, inst_all, slots_all, beta=self.beta, lam=self.lam,
                                            teacher_temperature=self.t_temp, student_temperature=self.s_temp,
                                            self_index=rows)                  # M, 0-d
        with torch.no_grad(), float32_region(dev):                           # what the loss used, for callbacks
            t = F.softmax(logits_t.float() / self.t_temp, dim=1)              # M×C
        return per_view, {"loss_terms": {"marginal_entropy": entropy_term}, "teacher_probs": t}
