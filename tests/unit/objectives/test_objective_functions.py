"""The pure loss functions behind the SwAV, CISSL and DISSL adapters (issue 21, item 2).

For each function: (a) the adapter's per-view losses on a small random batch are the function called on the
same tensors, and (b) a known answer or a property written out independently of the function (loops in float64
over the formula of the module docstring).
"""
from __future__ import annotations

import math
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gpsviz.batch import Batch
from gpsviz.errors import ConfigError
from gpsviz.objectives import CISSLObjective, DISSLObjective, SwAVObjective, cissl_loss, dissl_loss, sinkhorn, swav_loss
from gpsviz.positives.base import ViewPlan


def _plan(n_inst: int, n_views: int, n_global: int, group_ids: torch.Tensor | None = None,
          order: torch.Tensor | None = None) -> ViewPlan:
    """Crop-major views (slot 0 of every instance, slot 1, …), optionally presented in another row ``order``."""
    inst = torch.arange(n_inst).repeat(n_views)
    slots = torch.arange(n_views).repeat_interleave(n_inst)
    plan = ViewPlan(rows=inst.clone(), group_ids=inst.clone() if group_ids is None else group_ids,
                    instance_ids=inst, slots=slots, is_global=slots < n_global,
                    sizes=torch.zeros(n_inst * n_views, dtype=torch.long))
    return plan if order is None else plan.select(order)


def _batch(plan: ViewPlan, epoch: int = 3) -> Batch:
    return Batch(views=[], params=None, plan=plan, epoch=epoch)


def _model(**heads: nn.Module) -> types.SimpleNamespace:
    return types.SimpleNamespace(backbone=types.SimpleNamespace(out_dim=10), heads=nn.ModuleDict(heads),
                                 training=True)


# ------------------------------------------------------------------------------------------------------ SwAV
def test_swav_adapter_is_swav_loss_of_its_scores_and_codes():
    torch.manual_seed(0)
    b, v, g, p, k = 4, 5, 2, 8, 6
    order = torch.cat([torch.randperm(g * b), g * b + torch.randperm((v - g) * b)])   # rows in any order
    plan = _plan(b, v, g, order=order)
    obj = SwAVObjective(prototypes=k, temperature=0.1)
    model = _model(prototypes=nn.Linear(p, k, bias=False))
    z = torch.randn(v * b, p)
    per_view, extras = obj(model, _batch(plan), {"z": z})
    got = swav_loss(extras["scores"], extras["codes"], plan.instance_ids, plan.is_global, 0.1)
    assert per_view.shape == got.shape == (v * b,) and per_view.dtype == torch.float32
    assert torch.allclose(per_view, got, atol=1e-6, rtol=0)
    # the scores and codes it was given are the ones the adapter made: normalised z against the prototypes,
    # one Sinkhorn per global crop
    c = model.heads["prototypes"].weight.detach()
    assert torch.allclose(extras["scores"], F.normalize(z, dim=1) @ c.T, atol=1e-6)
    glob = plan.is_global.nonzero().flatten()
    for s in range(g):
        mine = (plan.slots[glob] == s).nonzero().flatten()
        assert torch.allclose(extras["codes"][mine], sinkhorn(extras["scores"][glob[mine]]), atol=1e-6)


def test_swav_loss_hand_computed_two_views_two_prototypes():
    """One instance, two global views, τ = 1, V/(G(V−1)) = 1: loss_0 = CE(q_1, p_0), loss_1 = CE(q_0, p_1).

    p_0 = softmax(0, ln 3) = (1/4, 3/4), p_1 = softmax(ln 2, 0) = (2/3, 1/3); q_0 = (1, 0), q_1 = (½, ½):
    loss_0 = −(½ ln ¼ + ½ ln ¾) = ln 4 − ½ ln 3,  loss_1 = −ln ⅔ = ln 1.5."""
    scores = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), 0.0]])
    codes = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    got = swav_loss(scores, codes, torch.tensor([7, 7]), torch.tensor([True, True]), temperature=1.0)
    want = torch.tensor([math.log(4.0) - 0.5 * math.log(3.0), math.log(1.5)])
    assert torch.allclose(got, want, atol=1e-6, rtol=0)
    # τ scales the scores: τ = ½ on halved scores is the same prediction
    assert torch.allclose(swav_loss(scores / 2, codes, torch.tensor([7, 7]), torch.tensor([True, True]), 0.5),
                          want, atol=1e-6, rtol=0)


def test_swav_loss_mean_is_the_reference_multicrop_average():
    """Mean over views = 1/G Σ_s 1/(V−1) Σ_{t≠s} mean over instances CE(q_s, p_t), with 2 global + 3 local views."""
    g = torch.Generator().manual_seed(1)
    n_inst, v, n_glob, k, tau = 3, 5, 2, 4, 0.3
    plan = _plan(n_inst, v, n_glob)
    scores = torch.randn(n_inst * v, k, generator=g, dtype=torch.float64)
    codes = torch.softmax(torch.randn(n_glob * n_inst, k, generator=g, dtype=torch.float64), dim=1)
    got = swav_loss(scores.float(), codes.float(), plan.instance_ids, plan.is_global, tau)
    logp = torch.log_softmax(scores / tau, dim=1)

    def row(slot, i):                                       # crop-major layout
        return slot * n_inst + i

    ref = 0.0
    for s in range(n_glob):
        sub = 0.0
        for t in range(v):
            if t != s:
                sub += sum(-(codes[row(s, i)] * logp[row(t, i)]).sum() for i in range(n_inst)) / n_inst
        ref += sub / (v - 1)
    ref = float(ref / n_glob)
    assert float(got.mean()) == pytest.approx(ref, rel=1e-5)
    # a local view t carries V/(G(V−1)) of its G codes' cross-entropies
    i, t = 1, 3
    want = v / (n_glob * (v - 1)) * sum(-(codes[row(s, i)] * logp[row(t, i)]).sum() for s in range(n_glob))
    assert float(got[row(t, i)]) == pytest.approx(float(want), rel=1e-5)


def test_swav_loss_refuses_mismatched_codes():
    with pytest.raises(ConfigError, match="global views"):
        swav_loss(torch.zeros(4, 3), torch.zeros(3, 3), torch.tensor([0, 0, 1, 1]),
                  torch.tensor([True, True, False, False]))
    with pytest.raises(ConfigError, match="temperature"):
        swav_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 0]), torch.tensor([True, True]), 0.0)


# ----------------------------------------------------------------------------------------------------- CISSL
def test_cissl_adapter_is_cissl_loss_of_its_student_and_teacher():
    torch.manual_seed(2)
    groups = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 5, 6, 7])       # views 9–11: no positive
    plan = _plan(4, 3, 3, groups)
    obj = CISSLObjective(teacher_hidden=12)
    model = _model()
    obj.build(model, types.SimpleNamespace(temperature=0.2, proj_dim=6))
    h, z = torch.randn(12, 10), torch.randn(12, 6)
    per_view, extras = obj(model, _batch(plan), {"h": h, "z": z})
    got = cissl_loss(z, extras["teacher_z"], groups, 0.2)
    assert per_view.shape == got.shape == (12,) and per_view.dtype == torch.float32
    assert torch.allclose(per_view, got, atol=1e-6, rtol=0)
    assert torch.allclose(extras["teacher_z"], model.heads["cissl_teacher"](h), atol=1e-6)


def test_cissl_loss_is_the_written_out_formula():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 1, 1])
    tau = 0.5
    sn, tn = s / s.norm(dim=1, keepdim=True), t / t.norm(dim=1, keepdim=True)
    want = []
    for i in range(5):
        logits = [float(sn[i] @ tn[j]) / tau for j in range(5)]
        log_z = math.log(sum(math.exp(x) for x in logits))
        log_q = [x - log_z for x in logits]
        pos = [j for j in range(5) if j != i and groups[j] == groups[i]]
        want.append(-0.5 * log_q[i] - 0.5 * sum(log_q[j] for j in pos) / len(pos))
    got = cissl_loss(s.float(), t.float(), groups, tau)
    assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), atol=1e-5, rtol=0)
    # a view with no positive keeps the self term alone
    alone = cissl_loss(s.float(), t.float(), torch.tensor([0, 0, 1, 1, 2]), tau)[4]
    log_q44 = torch.log_softmax(sn[4] @ tn.T / tau, dim=0)[4]
    assert float(alone) == pytest.approx(float(-0.5 * log_q44), abs=1e-5)


def test_cissl_loss_on_a_share_of_the_views_is_those_rows():
    """``self_index``: the student's rows are a share (one process's) of the teacher's views."""
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    groups = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    full = cissl_loss(s, t, groups, 0.3)
    rows = torch.tensor([4, 5, 6, 7])
    assert torch.allclose(cissl_loss(s[rows], t, groups, 0.3, self_index=rows), full[rows], atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="self_index"):
        cissl_loss(s[rows], t, groups, 0.3)


# ----------------------------------------------------------------------------------------------------- DISSL
def test_dissl_adapter_is_dissl_loss_of_its_student_and_teacher():
    torch.manual_seed(5)
    plan = _plan(4, 3, 2)
    obj = DISSLObjective(lam=1.7, beta=0.6, teacher_temperature=0.4, student_temperature=0.9, teacher_hidden=12,
                         bottleneck=5)
    model = _model()
    obj.build(model, types.SimpleNamespace(proj_dim=7))
    h, z = torch.randn(12, 10), torch.randn(12, 7)
    per_view, extras = obj(model, _batch(plan), {"h": h, "z": z})
    logits_t = model.heads["dissl_teacher"](h)                       # train mode: the same batch statistics
    got, term = dissl_loss(z, logits_t, plan.instance_ids, plan.slots, beta=0.6, lam=1.7, teacher_temperature=0.4,
                           student_temperature=0.9)
    assert per_view.shape == got.shape == (12,) and per_view.dtype == torch.float32
    assert torch.allclose(per_view, got, atol=1e-6, rtol=0)
    assert float(extras["loss_terms"]["marginal_entropy"].detach()) == pytest.approx(float(term.detach()), abs=1e-6)
    assert torch.allclose(extras["teacher_probs"], torch.softmax(logits_t / 0.4, dim=1), atol=1e-6)


def test_dissl_loss_is_the_written_out_formula():
    g = torch.Generator().manual_seed(6)
    n_inst, v, c = 3, 3, 4
    inst = torch.arange(n_inst).repeat(v)
    crops = torch.arange(v).repeat_interleave(n_inst)
    zs = torch.randn(n_inst * v, c, generator=g, dtype=torch.float64)
    zt = torch.randn(n_inst * v, c, generator=g, dtype=torch.float64)
    beta, lam, tt, ts = 0.8, 2.3, 0.5, 1.0
    t, s = torch.softmax(zt / tt, dim=1), torch.softmax(zs / ts, dim=1)
    want = []
    for j in range(n_inst * v):
        partners = [i for i in range(n_inst * v) if i != j and inst[i] == inst[j]]
        terms = [-(t[i] * s[j].log()).sum() - beta * (t[i] * t[j].log()).sum() for i in partners]
        want.append(float(sum(terms) / len(terms)))
    entropies = []
    for k in range(v):
        marg = t[crops == k].mean(0)
        entropies.append(float(-(marg * marg.log()).sum()))
    per_view, term = dissl_loss(zs.float(), zt.float(), inst, crops, beta=beta, lam=lam, teacher_temperature=tt,
                                student_temperature=ts)
    assert torch.allclose(per_view.double(), torch.tensor(want, dtype=torch.float64), atol=1e-5, rtol=0)
    assert float(term) == pytest.approx(-lam * sum(entropies) / v, abs=1e-5)


def test_dissl_confident_matching_student_beats_a_mismatched_one():
    """Two instances × two crops, a confident teacher (instance i → category i): a student that agrees has a
    far lower loss than one that puts every view on the other instance's category."""
    inst, crops = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])
    onehot = F.one_hot(inst, 2).float()
    teacher = 10.0 * onehot
    matching, _ = dissl_loss(10.0 * onehot, teacher, inst, crops)
    mismatched, _ = dissl_loss(10.0 * (1 - onehot), teacher, inst, crops)
    assert float(matching.mean()) < 0.01
    assert float(mismatched.mean()) > 10.0 * float(matching.mean()) + 1.0


def test_dissl_entropy_is_per_crop_not_pooled():
    """Each crop on one category (crop 0 → 0, crop 1 → 1): per-crop marginals are one-hot (H ≈ 0), while the
    marginal pooled over both crops is uniform (H = ln 2). The term is −λ·mean_k H_k ≈ 0, not −λ ln 2; a teacher
    that spreads each crop over both categories gets −λ ln 2."""
    inst, crops = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1])
    by_crop = 20.0 * F.one_hot(crops, 2).float()
    _, term = dissl_loss(torch.zeros(4, 2), by_crop, inst, crops, lam=2.0)
    assert abs(float(term)) < 1e-6
    by_instance = 20.0 * F.one_hot(inst, 2).float()
    _, term = dissl_loss(torch.zeros(4, 2), by_instance, inst, crops, lam=2.0)
    assert float(term) == pytest.approx(-2.0 * math.log(2.0), abs=1e-6)


def test_dissl_loss_on_a_share_of_the_views_is_those_rows():
    g = torch.Generator().manual_seed(7)
    inst, crops = torch.arange(4).repeat(2), torch.arange(2).repeat_interleave(4)
    zs, zt = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    full, term = dissl_loss(zs, zt, inst, crops)
    rows = torch.tensor([0, 1, 2, 3])
    part, part_term = dissl_loss(zs[rows], zt, inst, crops, self_index=rows)
    assert torch.allclose(part, full[rows], atol=1e-6, rtol=0)
    assert float(part_term) == pytest.approx(float(term), abs=1e-6)     # the entropy covers every teacher row
    with pytest.raises(ConfigError, match="crop_ids"):
        dissl_loss(zs, zt, inst, crops[:4])
