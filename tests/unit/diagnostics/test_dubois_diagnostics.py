"""Dubois et al.'s probe conditions on representations whose answers are known, the label-efficiency curve,
and the ``reproduce dubois`` experiment (registered, a smoke table with floors and ceiling, full configs valid)."""
from __future__ import annotations

import math

import pytest
import torch

from gpsviz import diagnostics as dg
from gpsviz.augment.config import family_config
from gpsviz.errors import ConfigError


def _small(kind: str, **kw):
    return dg.constructed_representation(kind, n_images=40, n_classes=4, views=4, dim=12, **kw)


def test_perfect_simplex_has_class_means_etf_distance_zero_and_rank_c_minus_one():
    rep = _small("simplex")
    f, y = rep["views"][0], rep["labels"]
    etf = dg.class_means_etf_distance(f, y)
    assert etf["etf_distance"] < 1e-6 and etf["norm_cv"] < 1e-6
    assert etf["mean_cos"] == pytest.approx(-1 / 3, abs=1e-6)
    assert dg.effective_rank(f) == pytest.approx(3.0, abs=0.01)          # C − 1 = 3 equal singular values
    means, ideal = dg.etf_view_2d(f, y)
    assert abs(means - ideal).max() < 1e-6
    assert (ideal ** 2).sum(1) == pytest.approx([1.0] * 4)                 # a regular 4-gon of radius 1


def test_class_means_etf_distance_of_a_square_is_known():
    # four class means at the vertices of a square: adjacent cosines 0, opposite −1; ideal −1/3
    # → mean |cos + 1/3| over ordered pairs = (8·1/3 + 4·2/3) / 12 = 4/9
    pts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = torch.arange(4).repeat(5)
    f = pts[y] + 0.0
    assert dg.class_means_etf_distance(f, y)["etf_distance"] == pytest.approx(4 / 9, abs=1e-6)


def test_collapsed_representation_has_rank_one():
    rep = _small("collapsed")
    assert dg.effective_rank(rep["views"][0]) == pytest.approx(1.0, abs=1e-3)
    assert dg.effective_rank(_small("not-invariant")["views"][0]) > 8      # isotropic noise in 12 dimensions
    assert dg.class_means_etf_distance(rep["views"][0], rep["labels"])["etf_distance"] > 0.5


def test_invariant_but_undecodable_vs_ideal():
    und = dg.conditions_of(_small("invariant-undecodable"))
    ideal = dg.conditions_of(_small("ideal"))
    noisy = dg.conditions_of(_small("not-invariant"))
    assert und["invariance"] < 1e-4 and ideal["invariance"] < 1e-4
    assert noisy["invariance"] > 0.9                                     # views no closer than other images
    # 10 identical images per class: recovering the instance is chance within the class (1/10)
    assert und["decodability"] <= 0.2
    assert ideal["decodability"] >= 0.95
    assert noisy["decodability"] <= 0.15                                 # chance among 40 images is 0.025
    assert und["class_means_etf"] < 1e-6                                 # a perfect class simplex all the same
    # the instance-level distance (the Dubois condition): identical views, unit vectors summing to 0 → its floor
    assert und["etf_distance"] == pytest.approx(-1 / 39, abs=1e-6)
    assert ideal["etf_distance"] < 0 < noisy["etf_distance"]


def test_invariance_ratio_and_errors():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert dg.invariance_ratio(x, x) == 0.0
    small, large = dg.invariance_ratio(x, x + 0.1), dg.invariance_ratio(x, x + 1.0)
    assert 0 < small < large < 1
    assert math.isnan(dg.invariance_ratio(torch.zeros(5, 3), torch.zeros(5, 3)))
    with pytest.raises(ConfigError):
        dg.invariance_ratio(x, x[:10])
    with pytest.raises(ConfigError):
        dg.constructed_representation("nonsense")


class _MeanColour(torch.nn.Module):
    """Mean of each channel over the image: exactly invariant to flips, not to colour jitter."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x.mean((2, 3)) * self.w


def test_invariance_per_family_on_a_known_backbone(tiny_pair):
    _, te = tiny_pair
    inv = dg.measure_invariance(_MeanColour(), te, "strong", n=64)
    assert "blur" not in inv                                             # the strong preset never blurs
    assert inv["flip"] < 1e-5
    assert inv["colour"] > 0.2
    assert family_config("blur", base="strong", always=False) is None
    blur = family_config("blur", base="simclr", always=False)
    assert blur.jitter_p == 0.0 and blur.grayscale_p == 0.0 and blur.blur_p > 0
    colour = family_config(dg.INVARIANCE_FAMILIES["colour"], base="simclr", always=False)
    assert colour.jitter_p > 0 and colour.grayscale_p > 0 and colour.crop_p == 0.0


def test_label_efficiency_rises_with_labels(tiny_pair):
    from gpsviz.evaluate import Features

    tr, te = tiny_pair
    g = torch.Generator().manual_seed(0)

    def feats(ds):       # class one-hot plus strong noise: more labels, a better probe
        onehot = torch.nn.functional.one_hot(ds.labels, len(ds.classes)).float()
        return Features(onehot + 0.8 * torch.randn(len(ds.labels), len(ds.classes), generator=g), ds)

    rows = dg.label_efficiency(feats(tr), feats(te), per_class=(1, 5, None), probes=("linear",))
    assert [r["per_class"] for r in rows] == [1, 5, "all"]
    assert rows[0]["n_train"] == len(torch.unique(tr.labels))
    assert rows[-1]["n_train"] == len(tr.labels)
    assert rows[-1]["test_acc"] > rows[0]["test_acc"]
    with pytest.raises(ConfigError):
        dg.label_efficiency(feats(tr), feats(te), per_class=(0,))


# ---------------------------------------------------------------------------------------------------- experiment
def test_experiment_is_registered_and_cells_cover_the_questions():
    from gpsviz.experiments import dubois
    from gpsviz.experiments.grid import cell_run_dir
    from gpsviz.reproduce import experiment_names

    assert "dubois" in experiment_names()
    cells = dubois.dubois_cells("small", 0)
    recipes = [c.recipe for c in cells]
    assert {"simclr", "cissl", "byol", "dissl", "supcon"} <= set(recipes)
    dims = [c.overrides["backbone_options"]["out_dim"] for c in cells if c.tag.startswith("d")]
    assert dims == [d for d in dubois.DIMS["small"] if d != 128]
    assert [c.overrides["strength"] for c in cells if c.tag.startswith("s")] == [0.5, 1.5]
    assert len(dubois.dubois_cells("small", 1)) == 5                     # the sweeps run on seed 0 only
    assert len({cell_run_dir(c, 0, __import__("pathlib").Path("x")) for c in cells}) == len(cells)


def test_full_scale_configs_validate_and_build():
    from gpsviz.experiments.dubois import dubois_configs
    from gpsviz.recipes import build_ingredients

    configs = dubois_configs("full")
    assert len(configs) == 3 * (5 + 3 + 2)                               # 3 seeds × (5 methods + 3 dims + 2 strengths)
    for cell, seed, cfg in configs:
        assert cfg.data == "cifar10" and cfg.backbone == "resnet18" and cfg.epochs == 400
        assert cfg.batch_size == 512 and cfg.optimizer == "lars"
    widths = sorted({cfg.backbone_options.get("width", 64) for _, _, cfg in configs})
    assert widths == [32, 64, 128, 256]
    cfg = next(c for _, _, c in configs if c.recipe == "dissl")
    ing = build_ingredients(cfg, in_channels=3, image_size=32)         # the model builds (not trained)
    assert ing.model.backbone.out_dim == 512


def test_smoke_table_has_floors_and_ceiling(tmp_path, monkeypatch):
    from gpsviz.experiments import dubois

    full = dubois.dubois_cells
    monkeypatch.setattr(dubois, "dubois_cells",
                        lambda scale, seed: [c for c in full(scale, seed) if c.recipe in ("cissl", "supcon")
                                             and not c.tag])
    records = dubois.run_dubois("smoke", n_seeds=1, out=tmp_path, progress=False)
    assert [r["method"] for r in records] == ["CISSL", "SupCon (ceiling)"]
    for r in records:
        assert 0 <= r["linear_label"] <= 1 and 0 <= r["decodability"] <= 1 and r["effective_rank"] >= 1
        assert [e["per_class"] for e in r["label_efficiency"] if e["probe"] == "mlp"] == [1, 5, 10, 50, "all"]
        assert len(r["etf_means"]) == 10
    text = (tmp_path / "table.md").read_text()
    for needed in ("raw pixels", "random init", "SupCon (ceiling)", "CISSL", "Spearman", "effective rank"):
        assert needed in text, needed
    import json

    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["floors"]) == 2 and {s["condition"] for s in saved["spearman"]} == set(dubois.CONDITIONS)
    # each figure is saved on its own (a failing one is skipped with a message): all four must be there
    for png in ("accuracy_vs_dim", "accuracy_vs_strength", "label_efficiency", "conditions_vs_accuracy"):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000, png


def test_spearman_table_known_orders():
    from gpsviz.experiments.dubois import spearman_table

    recs = [{"linear_label": a, "invariance": 1 - a, "decodability": a, "etf_distance": a * a,
             "effective_rank": float("nan")} for a in (0.1, 0.4, 0.2, 0.9)]
    rho = {r["condition"]: r["rho"] for r in spearman_table(recs)}
    assert rho["invariance"] == pytest.approx(-1) and rho["decodability"] == pytest.approx(1)
    assert rho["etf_distance"] == pytest.approx(1) and math.isnan(rho["effective_rank"])
