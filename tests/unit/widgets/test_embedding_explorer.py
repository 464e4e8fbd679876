"""The embedding explorer (issue 22, item 2) on five tiny runs trained here (one epoch on 160 shapes images, about a
second each): SimCLR, GPS-SimCLR (pixels prior, k=4), SupCon, SPPS-SimCLR and UOTA-SimCLR (which records the views
of its first 16 images). What it shows must be what the runs used: the positives equal the checkpoint's table
(GPS, SPPS), the class (SupCon) or nothing (SimCLR); the neighbours are the exact nearest, the point excluded; the
views are the log's. Its figure passes the legibility checks of ``test_explorer_legibility.py``.
"""
from __future__ import annotations

import re

import pytest
import torch
from test_explorer_legibility import _texts, assert_legible, assert_page_text, shown, visible_text  # noqa: F401  (shown: fixture)

from gpsviz.checkpoint import load_checkpoint
from gpsviz.config import TrainConfig
from gpsviz.data import make_shapes
from gpsviz.errors import ConfigError, DataError
from gpsviz.plots.embedding import EmbeddingMap, plot_embedding_explorer
from gpsviz.priors import compute_prior
from gpsviz.train import train
from gpsviz.view_weights import ViewWeightRecorder, load_view_weights
from gpsviz.widgets import EmbeddingExplorer, controls

N = 160
PROBE = 16
TINY = dict(epochs=1, batch_size=64, eval_every=0, proj_hidden=32, proj_dim=16, pred_hidden=32, device="cpu",
            precision="fp32")
RECIPES = {"SimCLR": ("simclr", {}),
           "GPS-SimCLR": ("gps-simclr", {"positives_options": {"prior": "pixels", "k": 4}}),
           "SupCon": ("supcon", {}),
           "SPPS-SimCLR": ("spps-simclr", {"positives_options": {"prior": "pixels", "k": 4}}),
           "UOTA-SimCLR": ("uota-simclr", {}),
           "CASSLE-SimCLR": ("cassle-simclr", {})}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(training split, {name: run folder}); the prior cache lives in a temporary data folder."""
    root = tmp_path_factory.mktemp("embedding")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPSVIZ_DATA", str(root / "data"))
        tr, te = make_shapes(N, seed=1), make_shapes(64, seed=2)
        te.split = "test"
        runs = {}
        for name, (recipe, extra) in RECIPES.items():
            out = root / recipe
            cbs = ([ViewWeightRecorder(probe=PROBE, path=out / "view_weights.pt")]
                   if recipe.startswith(("uota", "cassle")) else [])
            train(TrainConfig(recipe=recipe, **TINY, **extra), out, data=(tr, te), progress=False, callbacks=cbs)
            runs[name] = out
        yield tr, runs


@pytest.fixture(scope="module")
def explorer(world):
    tr, runs = world
    return EmbeddingExplorer(tr, runs, prior="pixels", n=N, k=4, max_k=12, point=3,
                             factors=["label", "colour", "position", "label×colour"])




def marker(ex) -> str:
    return re.sub("<[^>]+>", "", ex.status.value)


# ------------------------------------------------------------------------------------------------ what the loss used
def test_positives_are_what_each_loss_used(world, explorer):
    tr, runs = world
    gps = load_checkpoint(runs["GPS-SimCLR"])["positives"]
    spps = load_checkpoint(runs["SPPS-SimCLR"])["positives"]
    for point in (3, 50, 121):
        st = explorer.set_state(point=point, run_a="GPS-SimCLR", run_b="SupCon", k=4)
        assert st["positive_sources"] == {"GPS-SimCLR": "neighbours", "SupCon": "labels"}
        row = gps["table"][point][gps["valid"][point]].tolist()
        assert st["positives"]["GPS-SimCLR"] == row and len(row) == 4            # the saved candidate row
        same = [i for i in range(N) if int(tr.labels[i]) == int(tr.labels[point]) and i != point]
        assert st["positives"]["SupCon"] == same                                  # every other image of its class
        st = explorer.set_state(run_a="SimCLR", run_b="SPPS-SimCLR")
        assert st["positives"]["SimCLR"] == [] and st["positive_sources"]["SimCLR"] == "self"
        members = spps["table"][point][spps["sims"][point] >= spps["threshold"]].tolist()
        assert st["positives"]["SPPS-SimCLR"] == members                         # the set above the threshold


def test_neighbours_are_the_exact_nearest_without_the_point(explorer):
    st = explorer.set_state(point=7, run_a="SimCLR", run_b="GPS-SimCLR", k=12)
    for name in ("SimCLR", "GPS-SimCLR"):
        f = explorer.features(name)
        assert f.shape[0] == N
        unit = f / f.norm(dim=1, keepdim=True)
        brute = 1.0 - unit @ unit[7]                                             # cosine distance to the point
        brute[7] = float("inf")
        nb, d = st["neighbours"][name], torch.tensor(st["distances"][name])
        assert 7 not in nb and len(set(nb)) == 12
        assert torch.allclose(d, brute.sort().values[:12], atol=1e-5)             # the 12 smallest, in order
        assert torch.allclose(brute[nb], d, atol=1e-5)                            # ... at these rows
    prior = compute_prior("pixels", explorer.sub, progress=False)
    brute = ((prior - prior[7]) ** 2).sum(1)                                     # squared L2 in the prior
    brute[7] = float("inf")
    assert 7 not in st["prior_neighbours"]
    assert torch.allclose(torch.tensor(st["prior_distances"]), brute.sort().values[:12], rtol=1e-4)
    assert torch.allclose(brute[st["prior_neighbours"]], torch.tensor(st["prior_distances"]), rtol=1e-4)


def test_views_are_the_recorded_ones(world, explorer, shown):
    _, runs = world
    log = load_view_weights(runs["UOTA-SimCLR"])
    epoch = log.epochs[-1]
    row = next(r for r in log.rows if ((log.data["epoch"] == epoch) & (log.data["row"] == r)).any())
    st = explorer.set_state(point=row, run_a="SimCLR", run_b="UOTA-SimCLR")
    assert st["views"]["SimCLR"] is None                                          # no log: no views row
    sel = (log.data["epoch"] == epoch) & (log.data["row"] == row)
    order = torch.argsort(log.data["slot"][sel], stable=True)
    assert [v["weight"] for v in st["views"]["UOTA-SimCLR"]] == pytest.approx(log.scores()[sel][order].tolist())
    assert len(st["views"]["UOTA-SimCLR"]) == 6                                   # 2 global + 4 local views

    st = explorer.set_state(point=100)                                            # not a probe image
    assert st["views"]["UOTA-SimCLR"] == []
    text = " ".join(t.get_text().replace("\n", " ") for t in _texts(shown[-1][1]))
    assert "UOTA-SimCLR recorded no views for image #100" in text


# ------------------------------------------------------------------------------------------------ legibility
@pytest.mark.parametrize("state", [
    dict(point=3, run_a="GPS-SimCLR", run_b="UOTA-SimCLR", factor="colour", k=12),     # views row, wrapped tiles
    dict(point=5, run_a="SupCon", run_b="SupCon", factor="position", k=4),              # one map
    dict(point=9, run_a="SimCLR", run_b="SPPS-SimCLR", factor="label×colour", k=8),     # 80 classes: colour bar
])
def test_the_figure_is_legible(explorer, shown, state):
    explorer.set_state(**state)
    image, fig = shown[-1]
    assert image is explorer.image
    assert assert_legible(image, fig) >= 9
    assert fig.get_figwidth() <= controls.FIGURE_WIDTH_IN + 1e-9
    texts = [t.get_text() for t in _texts(fig)]
    assert any(f"point #{state['point']}" in t for t in texts)
    assert any(t.startswith("colour = ") for t in texts)                          # the legend says the factor
    maps = [ax for ax in fig.axes if ax.axison and ax.collections and ax.get_title()]
    assert [ax.get_title() for ax in maps] == list(dict.fromkeys([state["run_a"], state["run_b"]]))
    for ax in maps:                                                               # the same point ringed in each
        xy = explorer.coords(ax.get_title())[state["point"]]
        rings = [ln for ln in ax.lines if ln.get_marker() == "o"]                 # a white halo, a black ring
        assert len(rings) == 2 and all(list(ln.get_xydata()[0]) == pytest.approx(list(xy)) for ln in rings)
        assert ax.get_xlabel().endswith("(arbitrary units)")
    st = assert_page_text(explorer, "embedding-state")
    assert st == {"point": str(state["point"]), "run_a": state["run_a"], "run_b": state["run_b"],
                  "factor": state["factor"], "k": str(state["k"])}
    page = visible_text(explorer)
    assert "green frame ✓" in page and "red frame ✗" in page


def test_the_caption_names_index_class_and_factor_value(world, explorer, shown):
    tr, _ = world
    explorer.set_state(point=11, factor="colour")
    text = " ".join(t.get_text() for t in _texts(shown[-1][1]))
    colour = tr.factor_classes["colour"][int(tr.factors["colour"][11])]
    assert "point #11" in text and f"class: {tr.classes[int(tr.labels[11])]}" in text and f"colour: {colour}" in text
    assert "✓ green = same class" in text and "✗ red = other class" in text


# ------------------------------------------------------------------------------------------------ state and errors
def test_set_state_round_trip_and_marker(explorer):
    st = explorer.set_state(point=21, run_a="SPPS-SimCLR", run_b="GPS-SimCLR", factor="position", k=5)
    assert {key: st[key] for key in ("point", "run_a", "run_b", "factor", "k")} == dict(
        point=21, run_a="SPPS-SimCLR", run_b="GPS-SimCLR", factor="position", k=5)
    assert st["runs"] == ["SPPS-SimCLR", "GPS-SimCLR"] and len(st["neighbours"]["GPS-SimCLR"]) == 5
    assert marker(explorer) == ("embedding-state: point=21 run_a=SPPS-SimCLR run_b=GPS-SimCLR factor=position k=5 "
                                "done")
    assert explorer.point_box.value == 21                                         # the box follows the slider
    again = explorer.set_state(**{key: st[key] for key in ("point", "run_a", "run_b", "factor", "k")})
    assert again == st
    explorer.random_button.click()
    assert explorer.state["point"] != 21 and explorer.state["run_a"] == "SPPS-SimCLR"


@pytest.mark.parametrize("bad", [dict(factor="hue"), dict(point=N), dict(point=-1), dict(point=2.0), dict(k=0),
                                 dict(k=13), dict(run_a="BYOL"), dict(run_b="")])
def test_invalid_controls_raise_config_error(explorer, bad):
    before = explorer.state
    with pytest.raises(ConfigError, match=next(iter(bad))):
        explorer.set_state(**bad)
    assert explorer.state == before


def test_invalid_construction_raises_config_error(world):
    tr, runs = world
    one = {"SimCLR": runs["SimCLR"]}
    for kwargs, field in ((dict(factors=["label", "texture"]), "texture"), (dict(point=N), "point"),
                          (dict(n=1), "n must"), (dict(method="tsne"), "method"), (dict(prior="sift"), "prior"),
                          (dict(metric="dot"), "metric"), (dict(factor="position", factors=["label"]), "position")):
        with pytest.raises(ConfigError, match=field):
            EmbeddingExplorer(tr, one, **{"prior": "pixels", "n": N, **kwargs})
    with pytest.raises(ConfigError, match="runs"):
        EmbeddingExplorer(tr, {}, prior="pixels")


def test_a_run_of_other_data_is_refused(world):
    _, runs = world
    other_seed = make_shapes(N, seed=5)                                           # same kind, other images
    with pytest.raises(DataError, match="'GPS-SimCLR'.*other images"):
        EmbeddingExplorer(other_seed, {"GPS-SimCLR": runs["GPS-SimCLR"]}, prior="pixels", n=N)
    smaller = make_shapes(N, seed=1, size=24)                                     # other image size
    with pytest.raises(DataError, match="'SimCLR'.*image size"):
        EmbeddingExplorer(smaller, {"SimCLR": runs["SimCLR"]}, prior="pixels", n=N)


def test_one_run_gives_one_map(world, shown):
    tr, runs = world
    ex = EmbeddingExplorer(tr, runs["SupCon"], prior="pixels", n=64, k=3, point=60)
    assert ex.run_b_dropdown.disabled and ex.state["runs"] == ["run"]
    assert marker(ex) == "embedding-state: point=60 run_a=run run_b=run factor=label k=3 done"
    assert assert_legible(*shown[-1]) >= 9
    assert ex.state["positives"]["run"][:3] == [i for i in range(N) if tr.labels[i] == tr.labels[60] and i != 60][:3]


def test_plot_refuses_maps_of_another_size():
    with pytest.raises(ValueError, match="coordinates"):
        plot_embedding_explorer([EmbeddingMap("a", torch.zeros(5, 2).numpy())], [0, 1, 0], ["x", "y"], "label", 0,
                                torch.zeros(3, 8, 8, dtype=torch.uint8), ["point #0"], [])


def test_a_cassle_run_shows_what_its_conditioned_head_read(world, explorer, shown):
    """A CASSLE run's recorded views: each drawn once (no UOTA weight) and, below the figure, the augmentation
    its head read — the recorded parameters of exactly those views."""
    _, runs = world
    log = load_view_weights(runs["CASSLE-SimCLR"])
    point = int(log.data["row"][log.data["epoch"] == log.epochs[-1]][0])
    st = explorer.set_state(point=point, run_a="CASSLE-SimCLR", run_b="SimCLR")
    views = explorer.views("CASSLE-SimCLR", point)
    assert st["views"]["CASSLE-SimCLR"] and len(views["weights"]) == len(st["views"]["CASSLE-SimCLR"])
    text = explorer.summary.value
    assert "conditioned head read" in text and all(f"view {j + 1} (" in text for j in range(len(views["weights"])))
    assert "flipped" in text or "not flipped" in text
    assert "UOTA weight" not in " ".join(t.get_text() for t in _texts(shown[-1][1]) if "CASSLE" in t.get_text())
    explorer.set_state(run_a="UOTA-SimCLR")                        # no CASSLE run shown: nothing to list
    assert "conditioned head read" not in explorer.summary.value
