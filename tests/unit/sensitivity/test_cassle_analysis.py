"""CASSLE's analyses (gpsviz.sensitivity), its figures and the ``reproduce cassle`` experiment."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from gpsviz.augment import DESCRIPTOR_NAMES, Augmenter
from gpsviz.augment.config import family_config
from gpsviz.errors import ConfigError
from gpsviz.evaluate import fit_ridge, r2_score, ridge_r2
from gpsviz.sensitivity import FAMILIES, LoadedRun, param_prediction, sensitivity, strength_sweep, view_similarity


class _Project(nn.Module):
    """A projector that ignores the batch (like the MLP head) but has parameters."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, h, batch=None, index=None):
        return self.lin(h)


def _run(backbone: nn.Module, d: int, name: str = "toy") -> LoadedRun:
    torch.manual_seed(0)
    return LoadedRun(name, backbone.eval(), _Project(d).eval(), Augmenter("strong"))


@pytest.fixture(scope="module")
def images():
    from gpsviz.data import make_shapes

    return make_shapes(64, seed=1).images


def _conv_backbone() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.Flatten())                               # keeps where things are: not crop-invariant


def test_identity_augmentation_gives_similarity_one(images):
    run = _run(_conv_backbone(), 16 * 32 * 32)
    for fam in FAMILIES:
        rows = sensitivity(run, images[:8], [fam], strength=0.0, n_views=2)
        assert {r["level"] for r in rows} == {"backbone", "projector"}
        for r in rows:
            assert r["similarity"] == pytest.approx(1.0, abs=1e-5), (fam, r)


def test_invariant_model_is_insensitive_and_a_spatial_one_is_not(images):
    # per-channel spatial mean: exactly invariant to a horizontal flip, not to a colour jitter
    pooled = _run(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), 3, "pooled")
    rows = {(r["family"], r["level"]): r["similarity"]
            for r in sensitivity(pooled, images[:16], ["flip", "colour"], n_views=3)}
    assert rows[("flip", "backbone")] == pytest.approx(1.0, abs=1e-5)
    assert rows[("flip", "projector")] == pytest.approx(1.0, abs=1e-5)
    assert rows[("colour", "backbone")] < 0.99
    spatial = _run(_conv_backbone(), 16 * 32 * 32, "spatial")
    flip = sensitivity(spatial, images[:16], ["flip"], n_views=3)
    assert flip[0]["similarity"] < 0.99                              # the flattened map moves with the flip


def test_strength_sweep_starts_at_one_and_falls(images):
    run = _run(_conv_backbone(), 16 * 32 * 32)
    rows = [r for r in strength_sweep(run, images[:16], "colour", (0.0, 0.5, 2.0), n_views=3) if r["level"] == "backbone"]
    sims = [r["similarity"] for r in sorted(rows, key=lambda r: r["strength"])]
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[2] < sims[0]


def test_family_config_applies_one_family():
    crop = family_config("crop", 1.0, "strong")
    assert crop.crop_p == 1.0 and crop.jitter_p == 0.0 and crop.grayscale_p == 0.0 and crop.flip_p == 0.0
    assert crop.crop_scale[0] == pytest.approx(0.25)                 # the strong preset's smallest crop
    col = family_config("colour", 0.5, "strong")
    assert col.jitter_p == 1.0 and col.hue == pytest.approx(0.25) and col.crop_p == 0.0
    assert family_config("grayscale", 1.0).grayscale_p == 1.0
    assert family_config("blur", 2.0).blur_sigma == pytest.approx((0.2, 4.0))
    with pytest.raises(ConfigError, match="family"):
        family_config("rotate")
    with pytest.raises(ConfigError, match="strength"):
        family_config("crop", -1)


def test_conditioned_projector_reads_the_descriptor(images):
    from gpsviz.models.heads import ConditionedProjector

    cfg = SimpleNamespace(proj_hidden=32, proj_dim=8)
    torch.manual_seed(0)
    head = ConditionedProjector(3, cfg, families=("colour",)).eval()
    run = LoadedRun("cond", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval(), head, Augmenter("strong"))
    assert run.conditioned
    views = Augmenter("strong").normalize(images[:4].clone())
    with pytest.raises(ConfigError, match="AugParams"):
        run.embed(views)
    r = view_similarity(run, images[:8], family_config("colour"), n_views=2)
    assert r["descriptor"].shape == (16, len(DESCRIPTOR_NAMES))
    # a flip changes neither the pooled feature nor the colour columns the head reads: similarity 1
    f = view_similarity(run, images[:8], family_config("flip"), n_views=2)
    assert torch.allclose(f["projector"], torch.ones_like(f["projector"]), atol=1e-5)
    # the colour descriptor does change the projector's input: its similarity differs from the backbone's
    assert not torch.allclose(r["projector"], r["backbone"], atol=1e-3)


def test_ridge_r2_high_on_the_parameter_and_zero_on_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 12, generator=g)
    y = torch.stack([x[:, 0] * 3 + 0.05 * torch.randn(600, generator=g),     # in the feature
                     torch.randn(600, generator=g),                           # noise
                     torch.zeros(600)], dim=1)                                # constant: no R²
    r2 = ridge_r2(x[:400], y[:400], x[400:], y[400:])
    assert r2[0] > 0.99
    assert abs(float(r2[1])) < 0.05
    assert math.isnan(float(r2[2]))
    probe = fit_ridge(x[:400], y[:400, :2])
    assert torch.allclose(r2_score(probe.predict(x[400:]), y[400:, :2]), r2[:2], atol=1e-9)
    with pytest.raises(ConfigError):
        ridge_r2(x[:400], y[:400], x[400:, :3], y[400:])


def test_param_prediction_on_views(images):
    from gpsviz.data import make_shapes

    tr, te = make_shapes(300, seed=2), make_shapes(200, seed=3)

    class Noise(nn.Module):                      # features unrelated to the views
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, v):
            return torch.randn(v.shape[0], 8)

    torch.manual_seed(0)
    noise = param_prediction(Noise(), tr, te, augmenter="strong")
    assert abs(noise["r2_mean"]) < 0.1
    assert math.isnan(noise["r2"]["blur_sigma"])                    # the strong preset never blurs
    pix = param_prediction("pixels", tr, te, augmenter="strong")
    # the colour change is partly readable from the view's pixels (0.27 measured), not from noise
    assert pix["r2_family"]["colour_diff"] > 0.15 > noise["r2_family"]["colour_diff"]
    assert set(pix["r2_family"]) == {"crop", "colour", "colour_diff", "blur", "grayscale"}


def test_experiment_is_registered_and_full_configs_validate():
    from gpsviz.experiments.cassle import FULL_HEAD, METHODS, cassle_configs
    from gpsviz.reproduce import experiment_names

    assert "cassle" in experiment_names()
    full = cassle_configs("full")
    assert len(full) == 3 * len(METHODS)
    for cell, seed, cfg in full:
        assert cfg.data == "cifar10" and cfg.backbone == "resnet18" and cfg.epochs >= 200
        assert cfg.batch_size >= 256
        if cell.recipe.startswith("cassle"):
            assert cfg.head == "conditioned" and cfg.head_options == FULL_HEAD
            assert cfg.objective == ("byol" if "byol" in cell.recipe else "ntxent")
    small = cassle_configs("small")
    assert {c.recipe for c, _, _ in small} == {r for _, r in METHODS}
    # the library's default budget (10,000 images, 10 epochs, batch 128, lr 2e-3), where SimCLR has dropped colour
    from gpsviz.config import TrainConfig

    default = TrainConfig()
    assert all(cfg.data_options == {} and cfg.precision == "fp32" and cfg.epochs == default.epochs
               and cfg.batch_size == default.batch_size and cfg.lr == default.lr for _, _, cfg in small)
    with pytest.raises(ConfigError, match="scale"):
        cassle_configs("huge")


def test_full_scale_starts(tmp_path):
    """The full scale builds its CIFAR-10 / ResNet-18 model with the reference descriptor encoder (no training)."""
    from gpsviz.experiments.cassle import cassle_configs
    from gpsviz.recipes import build_ingredients

    cell, _, cfg = next(x for x in cassle_configs("full", n_seeds=1) if x[0].recipe == "cassle-byol")
    parts = build_ingredients(cfg, 3, 32)
    enc = parts.model.projector.encoder
    assert sum(isinstance(m, nn.Linear) for m in enc) == 6
    assert parts.model.teacher is not None and parts.model.teacher.projector.needs_descriptor


def test_smoke_reproduction_table_has_floors(tmp_path, monkeypatch):
    import gpsviz.experiments.cassle as C
    from gpsviz.checkpoint import load_backbone
    from gpsviz.sensitivity import load_run

    monkeypatch.setattr(C, "METHODS", (("CASSLE-SimCLR", "cassle-simclr"),))
    monkeypatch.setattr(C, "ANALYSIS_IMAGES", {"smoke": 150})
    monkeypatch.setattr(C, "SENS_IMAGES", 16)
    monkeypatch.setenv("GPSVIZ_DATA", str(tmp_path / "data"))
    table = C.run_cassle("smoke", 1, tmp_path / "out", progress=False)
    methods = [r["method"] for r in table]
    assert methods[:1] == ["CASSLE-SimCLR"] and {"raw pixels", "random init"} <= set(methods)
    text = (tmp_path / "out" / "table.md").read_text()
    assert "random init" in text and "r2_mean" in text and "colour backbone" in text and "Aim" in text
    row = table[0]
    assert 0.0 <= row["linear_colour"] <= 1.0 and -1.0 < row["r2_mean"] < 1.0
    # evaluation reads the backbone alone: the same weights as the backbone of the whole model
    run_dir = next((tmp_path / "out" / "runs").glob("shapes-cassle-simclr-*"))
    bb, _ = load_backbone(run_dir)
    whole = load_run(run_dir)
    for k, v in bb.state_dict().items():
        assert torch.equal(v, whole.backbone.state_dict()[k])
    assert whole.conditioned


def test_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from gpsviz.plots.cassle import plot_probe_comparison, plot_r2, plot_sensitivity, plot_strength_sweep

    rows = [{"run": r, "family": f, "strength": 1.0, "level": lvl, "similarity": 0.9, "std": 0.01}
            for r in ("a", "b") for f in ("crop", "colour") for lvl in ("backbone", "projector")]
    fig = plot_sensitivity(rows)
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "at the backbone"
    sweep = [{**r, "strength": s} for r in rows if r["family"] == "colour" for s in (0.0, 1.0)]
    fig2 = plot_strength_sweep(sweep)
    assert len(fig2.axes[0].lines) == 4
    res = {"a": {"r2": {"x": 0.5, "y": float("nan")}, "r2_mean": 0.5}}
    fig3 = plot_r2(res)
    assert [t.get_text() for t in fig3.axes[0].get_xticklabels()] == ["x"]
    fig4 = plot_probe_comparison(pd.DataFrame({"method": ["a", "b"], "linear_label": [50, 60],
                                               "linear_colour": [90, 95]}))
    assert len(fig4.axes[0].patches) == 4
    for f in (fig, fig2, fig3, fig4):
        plt.close(f)
