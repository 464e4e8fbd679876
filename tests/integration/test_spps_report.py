"""SPPS reports and reproduction: set reports on data with known answers, mining from a run's checkpoint, the
purity–size curve, the figures, ``reproduce spps`` at smoke scale and the full scale's configs."""
from __future__ import annotations

import re

import pytest
import torch
from conftest import clustered  # 4 noisy clusters in 16-d (tests/ is on sys.path)

from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError
from gpsviz.positives import SemanticSetPositives
from gpsviz.positives.semantic import DEFAULT_QUANTILE, purity_size_curve, semantic_sets, set_report

# 4 images, K = 3 nearest others each (most similar first); classes 0, 0, 1, 1
TABLE = torch.tensor([[1, 2, 3], [0, 3, 2], [3, 0, 1], [2, 1, 0]])
SIMS = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.7, 0.2], [0.95, 0.5, 0.4], [0.95, 0.6, 0.3]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_set_report_known_answers():
    r = set_report(TABLE, SIMS, LABELS, threshold=0.75, k=3)
    assert r.sizes.tolist() == [2, 1, 1, 1]                       # 0.9, 0.8 | 0.9 | 0.95 | 0.95
    assert r.members[0].tolist() == [1, 2, -1] and r.members[3].tolist() == [2, -1, -1]
    assert torch.allclose(r.anchor_purity, torch.tensor([0.5, 1.0, 1.0, 1.0]))
    assert r.purity == pytest.approx(4 / 5)                       # pooled over the 5 members
    assert r.mean_size == pytest.approx(5 / 4) and r.empty == 0.0
    assert r.size_counts().tolist() == [0, 3, 1, 0]
    # k cuts the table before the threshold: with k=1 only the nearest can be a member
    r1 = set_report(TABLE, SIMS, LABELS, threshold=0.75, k=1)
    assert r1.sizes.tolist() == [1, 1, 1, 1] and r1.purity == 1.0
    # above every similarity: all sets empty, purity undefined
    r2 = set_report(TABLE, SIMS, LABELS, threshold=0.99, k=3)
    assert r2.empty == 1.0 and r2.mean_size == 0.0 and r2.purity != r2.purity
    assert torch.isnan(r2.anchor_purity).all()
    # without labels: sizes still, purities NaN
    assert torch.isnan(set_report(TABLE, SIMS, None, 0.75, 3).anchor_purity).all()
    for bad in (dict(threshold=1.5, k=3), dict(threshold=0.5, k=4), dict(threshold=0.5, k=0)):
        with pytest.raises(ConfigError):
            set_report(TABLE, SIMS, LABELS, **bad)


def test_purity_size_curve_trades_size_for_purity():
    c = purity_size_curve(TABLE, SIMS, LABELS, thresholds=[0.3, 0.75, 0.0])
    assert c["threshold"] == [0.0, 0.3, 0.75]                      # sorted ascending
    assert c["mean_size"] == [3.0, pytest.approx(10 / 4), pytest.approx(5 / 4)]
    assert c["purity"][0] == pytest.approx(4 / 12) and c["purity"][-1] == pytest.approx(0.8)
    auto = purity_size_curve(TABLE, SIMS, LABELS)                  # default thresholds span the similarities
    assert len(auto["threshold"]) == 21
    assert all(a >= b for a, b in zip(auto["mean_size"], auto["mean_size"][1:]))


def test_source_report_matches_its_mined_sets_and_quantile_threshold_is_label_free():
    emb, labels = clustered(n_per=30, noise=0.6)
    src = SemanticSetPositives(prior="pixels", k=4, threshold_quantile=0.75)
    src.mine(emb, labels)
    assert src.threshold == pytest.approx(float(torch.quantile(src.sims.flatten(), 0.75)))
    r = src.report()
    assert r.mean_size == pytest.approx(1.0, abs=0.05)              # a quarter of the N×4 similarities pass
    assert torch.equal(r.sizes, src.set_sizes()) and r.purity == pytest.approx(src.purity())
    shuffled = SemanticSetPositives(prior="pixels", k=4, threshold_quantile=0.75)
    shuffled.mine(emb, labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))])
    assert shuffled.threshold == src.threshold                    # the labels play no part
    assert src.report(k=2).k == 2 and src.report(threshold=1.0).mean_size < r.mean_size
    with pytest.raises(ConfigError, match="threshold_quantile"):
        SemanticSetPositives(threshold_quantile=1.0)


def test_one_default_mining_rule_and_a_fixed_threshold_wins_over_it():
    emb, labels = clustered(n_per=30, noise=0.6)
    default = SemanticSetPositives(prior="pixels", k=4)             # no threshold given: the 0.75 quantile
    default.mine(emb, labels)
    assert default.threshold == pytest.approx(float(torch.quantile(default.sims.flatten(), DEFAULT_QUANTILE)))
    # the recipe's quantile yields to a fixed threshold (reproduce spps's control sets threshold 1.0 this way)
    cfg = TrainConfig(recipe="spps-simclr", positives_options={"prior": "pixels", "threshold": 1.0})
    fixed = SemanticSetPositives(**cfg.positives_options)
    fixed.mine(emb, labels)
    assert fixed.threshold == 1.0 and fixed.report().mean_size < 0.05


def test_semantic_sets_from_a_prior_and_from_a_checkpoint(tmp_path, tiny_pair):
    from gpsviz.checkpoint import load_backbone
    from gpsviz.config import TrainConfig
    from gpsviz.features import extract_features
    from gpsviz.train import train

    ds = tiny_pair[0]
    oracle = semantic_sets(ds, prior="oracle", k=5, threshold=0.5, root=tmp_path)
    rep = oracle.report()
    assert rep.purity == 1.0 and rep.mean_size == 5.0              # one-hot labels: every top-5 is same class
    cfg = TrainConfig(recipe="simclr", epochs=1, batch_size=64, eval_every=0, device="cpu", precision="fp32",
                      proj_hidden=32, proj_dim=16)
    train(cfg, tmp_path / "run", progress=False, data=tiny_pair)
    ck = semantic_sets(ds, prior="checkpoint", run=str(tmp_path / "run"), k=4, threshold=0.0, root=tmp_path)
    backbone, _ = load_backbone(tmp_path / "run")
    direct = semantic_sets(ds, prior="pixels", embedding=extract_features(backbone, ds), k=4, threshold=0.0)
    assert torch.allclose(ck.sims, direct.sims, atol=1e-4)
    assert (ck.table == direct.table).float().mean() > 0.95        # ties may swap order
    assert 0.0 <= ck.report().purity <= 1.0


def test_spps_figures():
    import matplotlib.pyplot as plt

    from gpsviz.data import make_shapes
    from gpsviz.plots import plot_gps_vs_spps, plot_purity_size, plot_semantic_set, plot_set_sizes
    from gpsviz.positives import NeighbourPositives

    ds = make_shapes(120, seed=5)
    emb = ds.images.float().flatten(1)
    src = semantic_sets(ds, prior="pixels", embedding=emb, k=4, threshold_quantile=0.5)
    gps = NeighbourPositives(prior="pixels", embedding=emb, k=4)
    gps.prepare(ds)
    rep = src.report()
    f1 = plot_semantic_set(ds, 3, rep.members[3], rep.sims[3], threshold=rep.threshold)
    assert f"anchor #3" in f1.axes[0].get_title(loc="left")
    f2 = plot_set_sizes(rep.sizes, k=4)
    assert [int(p.get_height()) for p in f2.axes[0].patches] == rep.size_counts().tolist()
    f3 = plot_purity_size({"pixels": src.purity_size_curve()}, chance=0.1, marks={"pixels": rep.threshold})
    assert len(f3.axes) == 3                                        # two panels + the size axis
    f4 = plot_gps_vs_spps(ds, [0, 1], gps, src, generator=torch.Generator().manual_seed(0))
    titles = [a.get_title(loc="left") for a in f4.axes]
    assert sum("REPLACES" in t for t in titles) == 2 and sum("ADDED" in t for t in titles) == 2
    for f in (f1, f2, f3, f4):
        plt.close(f)


def test_reproduce_spps_smoke(tmp_path):
    from gpsviz.experiments.grid import EXPERIMENTS
    from gpsviz.reproduce import experiment_names, reproduce

    assert "spps" in experiment_names() and EXPERIMENTS["spps"].datasets is None   # its runner checks datasets
    table = reproduce("spps", scale="smoke", out=tmp_path, datasets=["shapes"], progress=False)
    methods = [r["method"] for r in table]
    assert methods == ["SimCLR", "SimCLR, 3 views (control)", "SPPS-SimCLR (SimCLR ckpt)", "SPPS-SimCLR (hog)",
                       "SupCon (ceiling)", "raw pixels", "random init"]
    assert all(0.0 <= r["linear_label"] <= 1.0 for r in table)
    text = (tmp_path / "table.md").read_text()
    assert "raw pixels" in text and "random init" in text and "SupCon" in text
    assert (tmp_path / "accuracy.png").stat().st_size > 1000            # the figure was written, not skipped
    for mined in ("SimCLR ckpt", "hog"):
        m = re.search(rf"\| shapes \| {mined} \| 1 \| [\d.]+ \| ([\d.]+) % \| ([\d.]+) \|", text)
        assert m and 0 <= float(m.group(1)) <= 100 and 0.5 <= float(m.group(2)) <= 1.5  # quantile 0.75 of k=4
    # the control's sets are empty: its runs train with SPPS's third view of the anchor itself
    import torch

    ck = torch.load(tmp_path / "runs" / "shapes-spps-simclr-strong-3views-s0" / "checkpoint.pt", weights_only=False)
    assert "3 views" in text and ck["config"]["positives_options"]["threshold"] == 1.0
    from gpsviz.experiments.spps import set_stats

    assert set_stats(tmp_path / "runs" / "shapes-spps-simclr-strong-3views-s0")["set_empty"] == 1.0
    # the SPPS run mined its sets with the SimCLR run's checkpoint
    import json

    cfg = json.loads((tmp_path / "runs" / "shapes-spps-simclr-strong-ckpt-s0" / "config.json").read_text())
    assert cfg["positives_options"]["prior"] == "checkpoint"
    assert cfg["positives_options"]["run"].endswith("shapes-simclr-strong-s0")
    with pytest.raises(ConfigError, match="datasets"):
        reproduce("spps", scale="smoke", out=tmp_path, datasets=["cifar100"])


def test_full_scale_configs_validate(tmp_path):
    from gpsviz.experiments.spps import spps_configs
    from gpsviz.recipes import build_ingredients

    configs = spps_configs("full", out=tmp_path)
    assert len(configs) == 5 * 2 * 3                                 # methods × datasets × seeds
    datasets = {c.data for _, _, c in configs}
    assert datasets == {"cifar10", "fashion-mnist"}
    for cell, seed, cfg in configs:
        assert cfg.backbone == "resnet18" and cfg.epochs == 400 and cfg.batch_size == 512
        if cell.recipe == "spps-simclr" and cell.tag == "ckpt":
            assert cfg.positives_options["prior"] == "checkpoint"
            assert cfg.positives_options["run"].endswith(f"{cfg.data}-simclr-{cfg.aug}-s{seed}")
    assert {c.positives_options["prior"] for _, _, c in configs if c.recipe == "spps-simclr"} == {
        "checkpoint", "imagenet-resnet50", "pca"}
    cell, seed, cfg = next(x for x in configs if x[0].recipe == "spps-simclr" and x[2].data == "cifar10")
    parts = build_ingredients(cfg, 3, 32)                            # starts: model and positive source build
    assert isinstance(parts.positives, SemanticSetPositives) and parts.positives.k == 4
    assert sum(p.numel() for p in parts.model.backbone.parameters()) > 10_000_000   # ResNet-18
