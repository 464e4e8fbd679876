"""Issue 20 (items 2, 3): Dubois et al.'s DISSL teacher and ETF distance against their reference
(YannDubs/Invariant-Self-Supervised-Learning, "ISSL"), and old DISSL checkpoints refused by name.

The transcriptions below are written from the reference's behaviour, not copied:

- the DISSL teacher is the reference's projector, ``issl/architectures/basic.py`` ``MLP(in, C, n_hid_layers=1,
  hid_dim=1024, norm_layer="batch", bottleneck_size=512)``: a ``pre_block`` Linear without bias (biases are off
  when a BatchNorm follows) + BatchNorm1d + ReLU, no further hidden block, and a ``post_block`` that is the
  reference's ``Linear`` with a bottleneck: Linear without bias to 512, its ``BatchNorm1d`` (``is_batchnorm_bottleneck``
  defaults to True; affine, bias trained), then a biased Linear to C;
- ``DistToEtf`` (``issl/helpers.py``) centres each view by a ``RunningMean(zeros(D), alpha_use=0.5,
  alpha_store=0.1)`` — called once for the first view, then once for the second, so the second sees a mean already
  updated by the first — normalises, takes ``M = zx @ za.T``, and returns ``(1 − diag M).mean()`` and the mean of
  the off-diagonal entries; ``ISSLModule.step`` logs their sum as ``dist_to_etf``.
"""
from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from gpsviz import diagnostics as dg
from gpsviz.checkpoint import load_state
from gpsviz.errors import CheckpointError, ConfigError
from gpsviz.models.heads import MLPHead
from gpsviz.objectives import DISSLObjective
from gpsviz.objectives.dubois import DISSLTeacher


# ------------------------------------------------------------------------------------------------- DISSL teacher
def _reference_layer_list(d: int, hidden: int, bottleneck: int, c: int) -> list[tuple]:
    """The reference projector's layers in forward order: (type, in, out, bias) / (type, features, affine)."""
    return [("Linear", d, hidden, False), ("BatchNorm1d", hidden, True), ("ReLU",),
            ("Linear", hidden, bottleneck, False), ("BatchNorm1d", bottleneck, True), ("Linear", bottleneck, c, True)]


def _describe(module: nn.Module) -> list[tuple]:
    out = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("BatchNorm1d", m.num_features, m.affine))
        elif isinstance(m, nn.ReLU):
            out.append(("ReLU",))
    return out


class _ReferenceProjector(nn.Module):
    """The reference's nesting: pre_block (Linear, BN, ReLU) then post_block (bottleneck, normalizer, linear)."""

    def __init__(self, d: int, hidden: int, bottleneck: int, c: int) -> None:
        super().__init__()
        self.pre_block = nn.Sequential(nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU())
        self.post_block = nn.Module()
        self.post_block.bottleneck = nn.Linear(hidden, bottleneck, bias=False)
        self.post_block.normalizer = nn.BatchNorm1d(bottleneck)
        self.post_block.linear = nn.Linear(bottleneck, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.post_block
        return p.linear(p.normalizer(p.bottleneck(self.pre_block(x))))


def _build_teacher(d=10, hidden=16, bottleneck=4, c=5, **options) -> DISSLTeacher:
    model = types.SimpleNamespace(backbone=types.SimpleNamespace(out_dim=d), heads={})
    DISSLObjective(teacher_hidden=hidden, bottleneck=bottleneck, **options).build(model,
                                                                                 types.SimpleNamespace(proj_dim=c))
    return model.heads["dissl_teacher"]


def test_dissl_teacher_has_the_reference_layers():
    assert _describe(_build_teacher()) == _reference_layer_list(10, 16, 4, 5)
    # the objective's defaults are the reference's widths (hid_dim 1024, bottleneck_size 512)
    model = types.SimpleNamespace(backbone=types.SimpleNamespace(out_dim=32), heads={})
    DISSLObjective().build(model, types.SimpleNamespace(proj_dim=128))
    assert _describe(model.heads["dissl_teacher"]) == _reference_layer_list(32, 1024, 512, 128)


def test_dissl_teacher_computes_what_the_reference_projector_computes():
    torch.manual_seed(0)
    ours, ref = _build_teacher(), _ReferenceProjector(10, 16, 4, 5)
    with torch.no_grad():                             # same weights, layer by layer in forward order
        for a, b in zip([m for m in ours.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))],
                        [m for m in ref.modules() if isinstance(m, (nn.Linear, nn.BatchNorm1d))]):
            for name, p in a.named_parameters():
                p.copy_(torch.randn_like(p))
                getattr(b, name).copy_(p)
    h = torch.randn(12, 10)
    assert torch.allclose(ours.train()(h), ref.train()(h), atol=1e-6)     # batch statistics
    assert torch.allclose(ours.eval()(h), ref.eval()(h), atol=1e-6)       # running statistics, updated alike


def _old_teacher(d=10, hidden=16, bottleneck=4, c=5) -> nn.Module:
    """The teacher of an earlier gpsviz: MLPHead d→hidden→bottleneck (biased last Linear), then Linear → C."""
    return nn.Sequential(MLPHead(d, hidden, bottleneck), nn.Linear(bottleneck, c))


def test_an_old_dissl_teacher_is_refused_by_name():
    new = _build_teacher()
    with pytest.raises(CheckpointError, match="DISSL run was trained by an earlier gpsviz.*no BatchNorm"):
        new.load_state_dict(_old_teacher().state_dict())
    # inside a whole model (prefixed keys), through the loader every checkpoint load goes through
    model = nn.ModuleDict({"heads": nn.ModuleDict({"dissl_teacher": _build_teacher()})})
    old = nn.ModuleDict({"heads": nn.ModuleDict({"dissl_teacher": _old_teacher()})})
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: this DISSL run was trained by an earlier gpsviz"):
        load_state(model, old.state_dict(), "ckpt.pt", "model")
    load_state(model, model.state_dict(), "ckpt.pt", "model")              # a current one loads


def test_an_old_dissl_checkpoint_of_a_real_model_is_refused(tmp_path):
    from gpsviz.config import TrainConfig
    from gpsviz.recipes import build_ingredients

    cfg = TrainConfig(recipe="dissl", proj_dim=16, device="cpu", backbone_options={"width": 4})
    model = build_ingredients(cfg, in_channels=3, image_size=32).model
    state = {k: v for k, v in model.state_dict().items() if ".dissl_teacher." not in k}
    t = model.heads["dissl_teacher"]
    old = _old_teacher(t.net[0].in_features, t.net[0].out_features, t.net[3].out_features, 16)
    prefix = next(k for k in model.state_dict() if ".dissl_teacher." in k).split("dissl_teacher.")[0]
    state.update({f"{prefix}dissl_teacher.{k}": v for k, v in old.state_dict().items()})
    with pytest.raises(CheckpointError, match="earlier gpsviz whose teacher had no BatchNorm"):
        load_state(model, state, tmp_path / "checkpoint.pt", "model")


# -------------------------------------------------------------------------------------------------- DistToEtf
class _ReferenceRunningMean:
    def __init__(self, dim: int, alpha_use: float = 0.5, alpha_store: float = 0.1, init=None) -> None:
        self.alpha_use, self.alpha_store = alpha_use, alpha_store
        self.running_mean = torch.zeros(dim, dtype=torch.float64) if init is None else init.double().clone()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.alpha_use * x + (1 - self.alpha_use) * self.running_mean.float()
        self.running_mean = (self.alpha_store * x.double() + (1 - self.alpha_store) * self.running_mean).double()
        return out


class _ReferenceDistToEtf:
    def __init__(self, dim: int, **kw) -> None:
        self.running_mean = _ReferenceRunningMean(dim, **kw)

    def _rep(self, z):
        c = z - self.running_mean(z.mean(0))
        return c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def __call__(self, zx, za):
        zx, za = self._rep(zx), self._rep(za)
        m = zx @ za.T
        pos = (1 - m.diagonal()).mean()
        neg = m[~torch.eye(m.shape[0], dtype=torch.bool)].mean()
        return pos, neg


def _views(n=40, d=8, noise=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d, generator=g) + 2.0                       # off-centre, as features after a ReLU are
    return (base + noise * torch.randn(n, d, generator=g), base + noise * torch.randn(n, d, generator=g))


def test_running_dist_to_etf_matches_the_reference_over_several_batches():
    ref, ours = _ReferenceDistToEtf(8), dg.RunningDistToEtf(8)
    for seed in range(4):                                             # the running mean carries over the calls
        za, zb = _views(seed=seed)
        rp, rn = ref(za, zb)
        op, on = ours(za, zb)
        assert op == pytest.approx(rp.item(), abs=1e-5) and on == pytest.approx(rn.item(), abs=1e-5)
    assert torch.allclose(ours.stored, ref.running_mean.running_mean, atol=1e-12)


def test_one_shot_dist_to_etf_is_the_reference_with_a_settled_mean():
    za, zb = _views()
    pooled = torch.cat([za, zb]).mean(0)
    # the reference with its stored mean set to the pooled mean and alpha_use = 0: both views centred by it
    rp, rn = _ReferenceDistToEtf(8, alpha_use=0.0, alpha_store=0.0, init=pooled)(za, zb)
    got = dg.dist_to_etf(za, zb)
    assert got["pos"] == pytest.approx(rp.item(), abs=1e-5) and got["neg"] == pytest.approx(rn.item(), abs=1e-5)
    assert got["dist_to_etf"] == pytest.approx((rp + rn).item(), abs=1e-5)
    assert got["cosine_pos"] == pytest.approx(1 - got["pos"]) and got["floor"] == pytest.approx(-1 / 39)
    # per-view centring: each view by its own batch mean (the reference with alpha_use = 1)
    rp, rn = _ReferenceDistToEtf(8, alpha_use=1.0)(za, zb)
    got = dg.dist_to_etf(za, zb, centre="per-view")
    assert got["pos"] == pytest.approx(rp.item(), abs=1e-5) and got["neg"] == pytest.approx(rn.item(), abs=1e-5)
    # a given centre
    c = torch.full((8,), 2.0)
    rp, rn = _ReferenceDistToEtf(8, alpha_use=0.0, alpha_store=0.0, init=c)(za, zb)
    assert dg.dist_to_etf(za, zb, centre=c)["neg"] == pytest.approx(rn.item(), abs=1e-5)


def test_dist_to_etf_known_answers():
    n = 7
    # a perfect simplex of n instances (rotated into 12 dimensions, scaled, shifted), identical views:
    # positive term 0, off-diagonal term −1/(n−1), the smallest dist_to_etf there is
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    simplex = 3.0 * dg.simplex_etf(n) @ q[:n] + 5.0
    r = dg.dist_to_etf(simplex, simplex)
    assert r["pos"] == pytest.approx(0.0, abs=1e-12)
    assert r["neg"] == pytest.approx(-1 / (n - 1), abs=1e-12)
    assert r["dist_to_etf"] == pytest.approx(r["floor"], abs=1e-12)
    # identical views of anything: positive term 0
    za, zb = _views()
    assert dg.dist_to_etf(za, za)["pos"] == pytest.approx(0.0, abs=1e-12)
    # opposite views (after centring): positive term 2
    pooled = za.double().mean(0)
    assert dg.dist_to_etf(za, 2 * pooled - za.double())["pos"] == pytest.approx(2.0, abs=1e-12)
    # every image at one point with independent noise: the views do not line up (pos ≈ 1), no structure (neg ≈ 0)
    g = torch.Generator().manual_seed(3)
    r = dg.dist_to_etf(torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g))
    assert r["pos"] == pytest.approx(1.0, abs=0.05) and abs(r["neg"]) < 0.01
    # the identity dist = 1 − Σ_i (u_a,i − ū_a)·(u_b,i − ū_b) / (N − 1)
    r = dg.dist_to_etf(za, zb)
    mu = torch.cat([za, zb]).double().mean(0)
    ua = torch.nn.functional.normalize(za.double() - mu, dim=1)
    ub = torch.nn.functional.normalize(zb.double() - mu, dim=1)
    cov = ((ua - ua.mean(0)) * (ub - ub.mean(0))).sum() / (ua.shape[0] - 1)
    assert r["dist_to_etf"] == pytest.approx(1 - cov.item(), abs=1e-12)
    assert r["dist_to_etf"] >= r["floor"]


def test_dist_to_etf_refuses_bad_input():
    za, zb = _views()
    with pytest.raises(ConfigError):
        dg.dist_to_etf(za, zb[:10])
    with pytest.raises(ConfigError):
        dg.dist_to_etf(za[:1], zb[:1])
    with pytest.raises(ConfigError, match="centre"):
        dg.dist_to_etf(za, zb, centre="batch")
    with pytest.raises(ConfigError, match="centre"):
        dg.dist_to_etf(za, zb, centre=torch.zeros(3))
    with pytest.raises(ConfigError):
        dg.RunningDistToEtf(8, alpha_use=2.0)


def test_the_dubois_condition_is_the_instance_level_one():
    """conditions_of (and the experiment's measure_run) report the reference's instance-level distance as
    ``etf_distance``; the class-means (neural-collapse) distance stays available as ``class_means_etf``."""
    rep = dg.constructed_representation("invariant-undecodable", n_images=40, n_classes=4, views=4, dim=12)
    cond = dg.conditions_of(rep)
    v = rep["views"]
    assert cond["etf_distance"] == pytest.approx(dg.dist_to_etf(v[0], v[1])["dist_to_etf"])
    assert cond["class_means_etf"] < 1e-6
    # 40 images on the 4 vertices (10 each), identical views: the sum of the unit vectors is 0, so the floor
    assert cond["etf_distance"] == pytest.approx(-1 / 39, abs=1e-6)
    noisy = dg.conditions_of(dg.constructed_representation("not-invariant", n_images=40, n_classes=4, views=4,
                                                          dim=12))
    assert noisy["etf_distance"] > 0.8                                  # views of one image do not line up
