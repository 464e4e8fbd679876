"""The widgets in a real browser: Voilà serves the notebook, headless Chromium drives the controls.

Run: ``.venv/bin/python -m pytest -m browser tests/test_browser_widgets.py -v`` (screenshots land in
``test-artifacts/``). Without Chromium the tests are skipped with the reason, except under ``CI=true`` where
they fail.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import (BROKEN_WIDGET, click_button, open_notebook, page_text, parse_marker, press_slider, screenshot,
                     select_dropdown, serve_notebook, set_int_text, token_is_required, wait_for_text,
                     wait_until_executed)

ROOT = Path(__file__).resolve().parents[2]
#: the teaching notebook whose explorer cell is tested; our own small notebook stands in while it is missing
NOTEBOOK = "notebooks/02_gps_ssl.ipynb"
SMOKE_NOTEBOOK = "tests/browser/notebooks/widget_smoke.ipynb"


DONE = r"explorer-state: anchor={a} prior={p} k={k} purity=(?P<purity>\S+) mean_purity=(?P<mean>\S+) done"
FIRST_RENDER_S = 300          # the notebook runs top to bottom (smoke mode); widgets are live once it has finished
EXPLORER = ".gpsviz-neighbour-explorer"
STEP_S = 60                   # one redraw
PRIOR_S = 180                 # switching to a prior not used yet: its embedding (disk cache) and search


def explorer_notebook() -> str:
    return NOTEBOOK if (ROOT / NOTEBOOK).is_file() else SMOKE_NOTEBOOK


def _marker(m: re.Match) -> dict[str, str]:
    st = parse_marker(m.group(0), "explorer-state")
    for key in ("purity", "mean_purity"):
        value = float(st[key])                                   # raises if it is not a number
        assert 0.0 <= value <= 1.0, f"{key}={value} outside [0, 1] in {m.group(0)!r}"
    return st


def _no_page_errors(page) -> None:
    broken = BROKEN_WIDGET.findall(page_text(page))
    assert not broken, (
        f"the served notebook shows {len(broken)} broken widget output(s) ('Error displaying widget: model not "
        "found'): a widget displayed by a cell was closed afterwards -- typically a tqdm.auto progress bar "
        "with leave=False. Keep such bars (leave=True) or print text progress instead.")
    # requests to the internet (fonts, CDNs) fail offline and are not the widget's fault
    errors = [e for e in page.console_errors if "ERR_NAME_NOT_RESOLVED" not in e and "ERR_INTERNET" not in e]
    assert not errors, f"browser console errors: {[e.splitlines()[0] for e in errors]}"


@pytest.mark.browser
@pytest.mark.timeout(420)
@pytest.mark.parametrize("notebook", [explorer_notebook()])
def test_neighbour_explorer(chromium_page, notebook):
    page = chromium_page
    with serve_notebook(notebook) as url:
        assert token_is_required(url), "Voilà served the notebook to a request without the token"
        open_notebook(page, url)

        m = wait_for_text(page, DONE.format(a=r"(?P<a>\d+)", p=r"(?P<p>\S+)", k=r"(?P<k>\d+)"),
                          timeout=FIRST_RENDER_S)
        wait_until_executed(page, timeout=FIRST_RENDER_S)      # later cells (training) must not hold the kernel
        st = _marker(m)
        anchor, prior, k = int(st["anchor"]), st["prior"], int(st["k"])
        assert k == 8, m.group(0)
        assert page.locator(f"{EXPLORER} .gpsviz-figure").first.is_visible()
        screenshot(page, "neighbour-explorer-initial-page")
        screenshot(page, "neighbour-explorer-initial", selector=EXPLORER)

        # type an anchor into the number box
        new_anchor = 7 if anchor != 7 else 11
        set_int_text(page, ".gpsviz-anchor-text", new_anchor)
        _marker(wait_for_text(page, DONE.format(a=new_anchor, p=re.escape(prior), k=k), timeout=STEP_S))

        # two steps right on the k slider's handle
        press_slider(page, ".gpsviz-k-slider", "ArrowRight", 2)
        _marker(wait_for_text(page, DONE.format(a=new_anchor, p=re.escape(prior), k=k + 2), timeout=STEP_S))
        k += 2

        # another prior from the menu (its neighbours are searched on first use)
        options = page.locator(".gpsviz-prior select option").all_inner_texts()
        other = next((o for o in options if o != prior), None)
        if other is not None:
            select_dropdown(page, ".gpsviz-prior", other)
            _marker(wait_for_text(page, DONE.format(a=new_anchor, p=re.escape(other), k=k), timeout=PRIOR_S))
            prior = other
        screenshot(page, "neighbour-explorer-changed", selector=EXPLORER)

        # "random" moves to another anchor
        click_button(page, "random")
        m = wait_for_text(page, DONE.format(a=rf"(?!{new_anchor}\b)(?P<a>\d+)", p=re.escape(prior), k=k),
                          timeout=STEP_S)
        assert int(_marker(m)["anchor"]) != new_anchor
        screenshot(page, "neighbour-explorer-random", selector=EXPLORER)
        _no_page_errors(page)


@pytest.mark.browser
@pytest.mark.timeout(420)
def test_augment_explorer(chromium_page):
    page = chromium_page
    done = r"augment-state: index={i} preset={p} strength={s} draw={d} done"
    with serve_notebook(SMOKE_NOTEBOOK) as url:
        open_notebook(page, url)
        m = wait_for_text(page, done.format(i=r"\d+", p=r"\S+", s=r"[\d.]+", d=r"\d+"), timeout=FIRST_RENDER_S)
        wait_until_executed(page, timeout=FIRST_RENDER_S)
        st = parse_marker(m.group(0), "augment-state")
        preset, strength = st["preset"], float(st["strength"])

        set_int_text(page, ".gpsviz-index-text", 5)
        wait_for_text(page, done.format(i=5, p=preset, s=f"{strength:.2f}", d=0), timeout=STEP_S)

        press_slider(page, ".gpsviz-strength-slider", "ArrowRight", 2)        # step 0.05
        strength += 0.10
        wait_for_text(page, done.format(i=5, p=preset, s=f"{strength:.2f}", d=0), timeout=STEP_S)

        select_dropdown(page, ".gpsviz-preset", "weak")
        wait_for_text(page, done.format(i=5, p="weak", s=f"{strength:.2f}", d=0), timeout=STEP_S)
        select_dropdown(page, ".gpsviz-preset", "strong")
        wait_for_text(page, done.format(i=5, p="strong", s=f"{strength:.2f}", d=0), timeout=STEP_S)

        click_button(page, "resample")
        wait_for_text(page, done.format(i=5, p="strong", s=f"{strength:.2f}", d=1), timeout=STEP_S)
        screenshot(page, "augment-explorer", selector=".gpsviz-augment-explorer")
        _no_page_errors(page)


# ---------------------------------------------------------------------------------------- the same, from Python
@pytest.fixture(scope="module")
def small_shapes():
    from gpsviz.data import make_shapes

    return make_shapes(200, seed=3)


def test_neighbour_explorer_python_api(small_shapes, tmp_path):
    import torch

    from gpsviz.widgets import NeighbourExplorer

    ds = small_shapes
    onehot = torch.nn.functional.one_hot(ds.labels, len(ds.classes)).float()
    ex = NeighbourExplorer(ds, priors=["pixels", "oracle"], k=4, max_k=12, root=tmp_path)
    assert re.search(r"explorer-state: anchor=0 prior=pixels k=4 purity=\S+ mean_purity=\S+ done$",
                     re.sub("<[^>]+>", "", ex.status.value))
    st = ex.set_state(anchor=9, prior="oracle", k=12)
    assert (st["anchor"], st["prior"], st["k"]) == (9, "oracle", 12)
    assert st["purity"] == 1.0 and st["mean_purity"] == 1.0 and len(st["neighbours"]) == 12
    assert 9 not in st["neighbours"] and st["distances"] == sorted(st["distances"])
    assert ex.image.value[:4] == b"\x89PNG"
    ex.random_button.click()
    assert ex.state["anchor"] != 9
    ex.anchor_box.value = 3                                     # the number box drives the slider
    assert ex.anchor_slider.value == 3 and ex.state["anchor"] == 3
    for bad in (dict(k=13), dict(k=0), dict(prior="hog"), dict(anchor=200)):
        with pytest.raises(ValueError):
            ex.set_state(**bad)
    with pytest.raises(ValueError, match="unknown prior"):
        NeighbourExplorer(ds, priors=["pixels", "no-such-prior"])
    pre = NeighbourExplorer(ds, embeddings={"labels": onehot}, k=3)
    assert pre.priors == ["labels"] and pre.state["purity"] == 1.0
    with pytest.raises(ValueError, match="N×D"):
        NeighbourExplorer(ds, embeddings={"bad": onehot[:10]})


def test_augment_explorer_python_api(small_shapes):
    from gpsviz.widgets import AugmentExplorer

    ex = AugmentExplorer(small_shapes, n_views=3)
    assert re.sub("<[^>]+>", "", ex.status.value).endswith("augment-state: index=0 preset=strong strength=1.00 draw=0 done")
    st = ex.set_state(index=4, preset="weak", strength=0.5, resample=True)
    assert (st["index"], st["preset"], st["strength"], st["draw"]) == (4, "weak", 0.5, 1)
    assert len(st["params"]["flip"]) == 3 and ex.image.value[:4] == b"\x89PNG"
    for bad in (dict(preset="nope"), dict(strength=2.5), dict(index=-1)):
        with pytest.raises(ValueError):
            ex.set_state(**bad)


def test_neighbour_figures(small_shapes):
    import matplotlib.pyplot as plt

    from gpsviz.knn import knn_search
    from gpsviz.plots.neighbours import plot_distance_histogram, plot_neighbours, plot_purity_curves
    from gpsviz.purity import purity_curve

    ds = small_shapes
    emb = ds.images.float().flatten(1) / 255
    dist, idx = knn_search(emb, emb, k=10, exclude_self=True)
    fig = plot_neighbours(ds, 5, idx[5], dist[5])
    assert "anchor #5" in fig.axes[0].get_title(loc="left")
    fig2, axes = plt.subplots(2, 1)
    plot_neighbours(ds, 1, idx[1, :4], None, ax=axes[0])        # into given axes (one row per prior)
    same = ds.labels[idx] == ds.labels[:, None]
    fig3 = plot_distance_histogram(dist, same)
    assert fig3.axes[0].get_xlabel() and fig3.axes[0].get_ylabel() == "density"
    fig4 = plot_purity_curves({"pixels": purity_curve(emb, ds.labels, ks=(1, 5, 10))}, chance=0.1)
    assert fig4.axes[0].get_ylim()[1] > 1.0
    with pytest.raises(ValueError):
        plot_neighbours(ds, 5, idx[5], dist[5, :3])
    for f in (fig, fig2, fig3, fig4):
        plt.close(f)


def test_random_button_picks_another_index_uniformly():
    import numpy as np

    from gpsviz.widgets.controls import fmt_marker, other_index

    rng = np.random.default_rng(0)
    picks = [other_index(rng, 5, 2) for _ in range(2000)]
    assert 2 not in picks and set(picks) == {0, 1, 3, 4}
    counts = np.bincount(picks, minlength=5)[[0, 1, 3, 4]]
    assert counts.min() > 400, counts                   # about 500 each: uniform over the other four
    assert other_index(rng, 1, 0) == 0                  # one image: nothing else to pick
    assert fmt_marker(float("nan")) == "nan" and fmt_marker(None) == "nan" and fmt_marker(0.25) == "0.250"
