"""Ingredients of the CASSLE and Dubois et al. issues: the conditioned projector, CISSL and DISSL objectives."""
from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError
from gpsviz.models.heads import ConditionedProjector
from gpsviz.objectives import CISSLObjective, DISSLObjective
from gpsviz.positives import ViewPlan
from gpsviz.train import train


def _batch(desc=None, b=6):
    plan = ViewPlan(rows=torch.arange(b).repeat(2), group_ids=torch.arange(b).repeat(2),
                    instance_ids=torch.arange(b).repeat(2), slots=torch.arange(2).repeat_interleave(b),
                    is_global=torch.ones(2 * b, dtype=torch.bool), sizes=torch.full((2 * b,), 32))
    return types.SimpleNamespace(plan=plan, group_ids=plan.group_ids, instance_ids=plan.instance_ids,
                                 is_global=plan.is_global, descriptor=desc)


def test_conditioned_head_reads_only_the_chosen_descriptor_families():
    cfg = types.SimpleNamespace(proj_hidden=16, proj_dim=8)
    torch.manual_seed(0)
    head = ConditionedProjector(10, cfg, families=("colour",)).eval()
    h = torch.randn(12, 10)
    d = torch.randn(12, 14)
    z = head(h, _batch(d))
    d2 = d.clone()
    d2[:, :4] += 5.0                                   # crop columns: not a chosen family
    assert torch.allclose(head(h, _batch(d2)), z)
    d2[:, 4:9] += 1.0                                  # colour columns
    assert not torch.allclose(head(h, _batch(d2)), z)
    sub = torch.tensor([3, 1])
    assert torch.allclose(head(h[sub], _batch(d), sub), z[sub], atol=1e-6)     # index picks the views' rows
    for mode in ("add", "multiply"):
        assert ConditionedProjector(10, cfg, mode=mode)(h, _batch(d)).shape == (12, 8)
    with pytest.raises(ConfigError, match="families"):
        ConditionedProjector(10, cfg, families=("hue",))
    with pytest.raises(ConfigError, match="descriptor"):
        head(h, _batch(None))


def test_cissl_loss_is_half_self_half_positive():
    torch.manual_seed(1)
    cfg = types.SimpleNamespace(temperature=0.07, proj_dim=8)
    obj = CISSLObjective(teacher_hidden=16)
    model = types.SimpleNamespace(backbone=types.SimpleNamespace(out_dim=10), heads={})
    obj.build(model, cfg)
    model.heads["cissl_teacher"].eval()
    h, z = torch.randn(12, 10), torch.randn(12, 8)
    per_view, extras = obj(model, _batch(), {"h": h, "z": z})
    s = F.normalize(z, dim=1)
    t = F.normalize(model.heads["cissl_teacher"](h), dim=1)
    logq = F.log_softmax(s @ t.T / 0.07, dim=1)
    partner = torch.arange(12).roll(6)
    want = -0.5 * logq.diagonal() - 0.5 * logq[torch.arange(12), partner]
    assert torch.allclose(per_view, want, atol=1e-5)


def _reference_dissl_loss(logits_assign: torch.Tensor, logits_predict: torch.Tensor, lam: float = 2.3,
                          beta: float = 0.8, t_temp: float = 0.5, s_temp: float = 1.0) -> torch.Tensor:
    """The reference's DISSL loss (YannDubs/Invariant-Self-Supervised-Learning, issl/losses/dissl.py,
    DISSL.forward), transcribed in plain torch: rows = [crop 1 of the batch; crop 2 of the batch]; for each teacher
    crop p: the entropy of *that crop's* batch-mean teacher distribution, the teacher-teacher CE against every other
    crop, the teacher-student CE against every other crop; each list averaged; CE + β·CE_tt − λ·mean H."""
    p_all = torch.softmax(logits_assign / t_temp, -1).chunk(2)
    logp_all = torch.log_softmax(logits_assign / t_temp, -1).chunk(2)
    logq_all = torch.log_softmax(logits_predict / s_temp, -1).chunk(2)
    ce_sq, ce_tt, ent = [], [], []
    for a, p in enumerate(p_all):
        pm = p.mean(0)
        ent.append(-(pm * pm.log()).sum())
        for b in range(2):
            if b != a:
                ce_tt.append(-(p * logp_all[b]).sum(-1).mean())
                ce_sq.append(-(p * logq_all[b]).sum(-1).mean())
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    return mean(ce_sq) - lam * mean(ent) + beta * mean(ce_tt)


def test_dissl_loss_matches_its_formula():
    """The whole loss (uniform weights: mean of the per-view losses + the entropy term) equals the reference's,
    whose marginal entropy is per crop; the pooled-marginal form gpsviz had before would not (by λ × the
    Jensen–Shannon divergence of the two crops' marginals)."""
    torch.manual_seed(2)
    cfg = types.SimpleNamespace(proj_dim=5)
    obj = DISSLObjective(teacher_hidden=16, bottleneck=4)
    model = types.SimpleNamespace(backbone=types.SimpleNamespace(out_dim=10), heads={})
    obj.build(model, cfg)
    model.heads["dissl_teacher"].eval()
    # the two crops' teacher inputs differ in distribution, so their marginals differ (as early in training)
    h = torch.cat([torch.randn(6, 10) + 1.5, torch.randn(6, 10) - 1.5])
    z = torch.randn(12, 5)
    per_view, extras = obj(model, _batch(), {"h": h, "z": z})
    got = per_view.mean() + extras["loss_terms"]["marginal_entropy"]
    lt = model.heads["dissl_teacher"](h)
    want = _reference_dissl_loss(lt, z)
    assert got.item() == pytest.approx(want.item(), abs=1e-5)
    # the per-view split: view i's student against its partner's teacher (+ β teacher-teacher)
    t, logt, logs = (lt / 0.5).softmax(1), (lt / 0.5).log_softmax(1), z.log_softmax(1)
    partner = torch.arange(12).roll(6)
    assert torch.allclose(per_view, -(t[partner] * logs).sum(1) - 0.8 * (t[partner] * logt).sum(1), atol=1e-5)
    # the pooled form: entropy of the marginal over both crops = per-crop mean + JS(crop marginals) > it
    H = lambda p: -(p * p.log()).sum()  # noqa: E731
    m1, m2 = t[:6].mean(0), t[6:].mean(0)
    js = H((m1 + m2) / 2) - (H(m1) + H(m2)) / 2
    pooled = per_view.mean() - 2.3 * H(t.mean(0))
    assert js.item() > 1e-3
    assert pooled.item() == pytest.approx(want.item() - 2.3 * js.item(), abs=1e-5)
    assert abs(pooled.item() - want.item()) > 100 * 1e-5                 # the old form fails the reference


@pytest.mark.parametrize("recipe", ["cassle-simclr", "cassle-byol", "cissl", "dissl"])
def test_recipes_train(tmp_path, tiny_pair, recipe):
    cfg = TrainConfig(recipe=recipe, epochs=1, batch_size=32, eval_every=0, device="cpu", precision="fp32",
                      proj_hidden=32, proj_dim=16, pred_hidden=32)
    run = train(cfg, tmp_path / recipe, progress=False, data=tiny_pair)
    assert torch.isfinite(torch.tensor(run.history[-1]["loss"]))
    if recipe == "cissl":
        assert cfg.temperature == 0.07                 # the recipe's default
