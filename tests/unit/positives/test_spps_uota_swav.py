"""Ingredients of the SPPS / UOTA / SwAV issue: semantic sets, outlier view weights, swapped prediction."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gpsviz.callbacks import StepRecorder
from gpsviz.config import TrainConfig
from gpsviz.objectives import UOTAWeighting, sinkhorn, uota_scores
from gpsviz.positives import SemanticSetPositives
from gpsviz.positives.semantic import threshold_for_purity
from gpsviz.train import train
from conftest import clustered  # 4 noisy clusters in 16-d


def test_sets_are_the_nearest_above_the_threshold_and_report_purity():
    emb, labels = clustered()
    src = SemanticSetPositives(prior="pixels", k=5, threshold=0.5)
    src.mine(emb, labels)
    zn = F.normalize(emb, dim=1)
    sim = zn @ zn.T
    sim.fill_diagonal_(-2)
    top, idx = sim.topk(5, dim=1)
    assert torch.equal(src.table, idx)
    assert torch.equal(src.valid, top >= 0.5)
    same = (labels[idx] == labels[:, None]) & (top >= 0.5)
    assert src.purity() == pytest.approx(float(same.sum()) / float((top >= 0.5).sum()))
    assert torch.equal(src.set_sizes(), (top >= 0.5).sum(1))


def test_threshold_for_a_target_purity():
    emb, labels = clustered(noise=1.2, seed=1)                   # overlapping clusters: purity falls with size
    loose = SemanticSetPositives(prior="pixels", k=8, threshold=-1.0)
    loose.mine(emb, labels)
    chosen = SemanticSetPositives(prior="pixels", k=8, target_purity=0.9)
    chosen.mine(emb, labels)
    assert loose.purity() < 0.9 <= chosen.purity()
    assert chosen.set_sizes().sum() > 0
    # the lowest such threshold: one step lower (the next similarity down) falls below the target
    below = chosen.sims[chosen.sims < chosen.threshold].max()
    lower = SemanticSetPositives(prior="pixels", k=8, threshold=float(below))
    lower.mine(emb, labels)
    assert lower.purity() < 0.9
    assert threshold_for_purity(torch.tensor([[0.9]]), torch.tensor([[False]]), 0.5) == float("inf")


def test_spps_plan_keeps_the_pair_and_adds_set_members():
    emb, labels = clustered()
    src = SemanticSetPositives(prior="pixels", k=3, threshold=0.6, members=2)
    src.mine(emb, labels)
    src.valid[7] = False                                         # image 7: an empty set
    anchors = torch.tensor([7, 30, 55, 70])
    plan = src.plan(anchors, generator=torch.Generator().manual_seed(0))
    b = 4
    assert len(plan) == 4 * b
    assert torch.equal(plan.rows[:b], anchors) and torch.equal(plan.rows[b:2 * b], anchors)
    for j in range(2):
        members = plan.rows[(2 + j) * b:(3 + j) * b]
        assert members[0] == 7                                   # empty set → the anchor itself
        for a, mrow in zip(anchors[1:], members[1:]):
            assert mrow in src.table[a][src.valid[a]]
    assert torch.equal(plan.instance_ids, torch.arange(b).repeat(4))
    for i in range(b):                                          # all views of an anchor are one group
        assert plan.group_ids[plan.instance_ids == i].unique().numel() == 1


def test_uota_scores_are_the_mahalanobis_distance_to_the_instance_mean():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(24, 6, generator=g)
    inst = torch.arange(4).repeat(6)
    glob = torch.zeros(24, dtype=torch.bool)
    glob[:8] = True                                              # 2 global views per instance
    got = uota_scores(z, inst, glob)
    zn = F.normalize(z.double(), dim=1)
    mu = torch.stack([zn[(inst == i) & glob].mean(0) for i in range(4)])
    d = zn - mu[inst]
    cov = d.T @ d / 24 + 1e-8 * torch.eye(6, dtype=torch.float64)
    want = (d @ torch.linalg.inv(cov) * d).sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-3, atol=1e-3)


class _Batch:
    def __init__(self, inst, glob, fraction):
        self.instance_ids, self.is_global, self.train_fraction = inst, glob, fraction


def test_uota_weights_down_weight_the_outlying_view_after_the_start():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(8, 16, generator=g)
    inst = torch.arange(8).repeat(4)
    z = base[inst] + 0.05 * torch.randn(32, 16, generator=g)
    z[30] = torch.randn(16, generator=g)                          # a local view unlike its instance
    glob = torch.arange(32) < 16
    w = UOTAWeighting(tau=1.0, start=0.5)
    before = w(torch.ones(32), _Batch(inst, glob, 0.2), {"z": z})
    assert torch.allclose(before, torch.full((32,), 1 / 32))
    after = w(torch.ones(32), _Batch(inst, glob, 0.7), {"z": z})
    assert after.sum() == pytest.approx(1.0, abs=1e-5)
    assert int(after.argmin()) == 30


def test_sinkhorn_codes_spread_over_prototypes():
    g = torch.Generator().manual_seed(4)
    scores = (torch.randn(64, 8, generator=g) * 0.3 + torch.arange(8) * 0.05).clamp(-1, 1)  # cosines; 7 favoured
    q = sinkhorn(scores, epsilon=0.05, iterations=50)
    assert torch.allclose(q.sum(1), torch.ones(64), atol=1e-4)
    assert torch.allclose(q.sum(0), torch.full((8,), 64 / 8), rtol=0.05)
    raw = torch.softmax(scores / 0.05, dim=1).sum(0)
    assert raw.max() / raw.min() > (q.sum(0).max() / q.sum(0).min()) * 2   # far more even than a softmax


@pytest.mark.parametrize("recipe", ["spps-simclr", "spps-byol", "swav", "uota-swav", "uota-simclr", "uota-byol"])
def test_recipes_train(tmp_path, tiny_pair, recipe):
    rec = StepRecorder(last=1, keys=None)
    pos = {"prior": "pixels", "threshold": 0.9} if recipe.startswith("spps") else {}
    cfg = TrainConfig(recipe=recipe, epochs=2, batch_size=32, eval_every=0, device="cpu", precision="fp32",
                      proj_hidden=32, proj_dim=16, pred_hidden=32, positives_options=pos)
    run = train(cfg, tmp_path / recipe, progress=False, data=tiny_pair, callbacks=[rec])
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in run.history)
    w = rec.steps[-1]["weights"]
    if recipe.startswith("uota"):                                # second epoch is past start = 0.5
        assert w.std() > 0
    if recipe in ("swav", "uota-swav"):
        assert rec.steps[-1]["codes"].shape == (64, 100)


def test_swav_prototypes_are_frozen_during_the_first_epoch(tmp_path, tiny_pair):
    cfg = TrainConfig(recipe="swav", epochs=1, batch_size=32, eval_every=0, device="cpu", precision="fp32",
                      proj_hidden=32, proj_dim=16, objective_options={"prototypes": 10})
    torch.manual_seed(cfg.seed)
    from gpsviz.recipes import build_ingredients

    init = build_ingredients(cfg, 3, 32).model.heads["prototypes"].weight.detach().clone()
    run = train(cfg, tmp_path / "swav", progress=False, data=tiny_pair)
    after = run.model.heads["prototypes"].weight.detach()
    assert torch.allclose(after, F.normalize(init, dim=1), atol=1e-6)
    assert not torch.equal(run.model.backbone.features[0][0].weight, torch.zeros(1))
