"""The CASSLE sensitivity explorer in a real browser: Voilà serves notebook 05 (smoke mode), headless Chromium
changes each control and waits for the explorer's text marker after each change.

Run: ``.venv/bin/python -m pytest -m browser tests/test_browser_cassle.py -v`` (screenshots land in
``test-artifacts/``). Without Chromium the test is skipped with the reason, except under ``CI=true``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import (BROKEN_WIDGET, open_notebook, page_text, parse_marker, press_slider, screenshot, select_dropdown,
                     serve_notebook, set_int_text, token_is_required, wait_for_text, wait_until_executed)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "notebooks/05_cassle.ipynb"
EXPLORER = ".gpsviz-sensitivity-explorer"
DONE = r"sensitivity-state: image={i} family={f} strength={s} left={l} right={r} done"
FIRST_RENDER_S = 420          # the notebook runs top to bottom (smoke mode: six tiny trainings + analyses)
STEP_S = 90                   # one redraw (a new run's parameter probe is fitted on first use)


def _no_page_errors(page) -> None:
    broken = BROKEN_WIDGET.findall(page_text(page))
    assert not broken, f"the served notebook shows {len(broken)} broken widget output(s)"
    errors = [e for e in page.console_errors if "ERR_NAME_NOT_RESOLVED" not in e and "ERR_INTERNET" not in e]
    assert not errors, f"browser console errors: {[e.splitlines()[0] for e in errors]}"


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_sensitivity_explorer(chromium_page):
    page = chromium_page
    with serve_notebook(NOTEBOOK) as url:
        assert token_is_required(url), "Voilà served the notebook to a request without the token"
        open_notebook(page, url)
        any_ = dict(i=r"\d+", f=r"\S+", s=r"[\d.]+", l=r"\S+", r=r"\S+")
        m = wait_for_text(page, DONE.format(**any_), timeout=FIRST_RENDER_S)
        wait_until_executed(page, timeout=FIRST_RENDER_S)
        st = parse_marker(m.group(0), "sensitivity-state")
        assert st["family"] == "colour" and st["strength"] == "1.00", m.group(0)
        left, right = st["left"], st["right"]
        assert left != right, m.group(0)
        assert page.locator(f"{EXPLORER} .gpsviz-figure").first.is_visible()
        screenshot(page, "sensitivity-explorer-initial", selector=EXPLORER)

        # type an image index into the number box
        set_int_text(page, ".gpsviz-index-text", 7)
        wait_for_text(page, DONE.format(i=7, f="colour", s="1.00", l=re.escape(left), r=re.escape(right)),
                      timeout=STEP_S)

        # three steps right on the strength slider (step 0.05)
        press_slider(page, ".gpsviz-strength-slider", "ArrowRight", 3)
        wait_for_text(page, DONE.format(i=7, f="colour", s="1.15", l=re.escape(left), r=re.escape(right)),
                      timeout=STEP_S)

        # another augmentation family
        select_dropdown(page, ".gpsviz-family", "crop")
        wait_for_text(page, DONE.format(i=7, f="crop", s="1.15", l=re.escape(left), r=re.escape(right)),
                      timeout=STEP_S)

        # swap the two runs
        select_dropdown(page, ".gpsviz-right-run", left)
        wait_for_text(page, DONE.format(i=7, f="crop", s="1.15", l=re.escape(left), r=re.escape(left)),
                      timeout=STEP_S)
        select_dropdown(page, ".gpsviz-left-run", right)
        m = wait_for_text(page, DONE.format(i=7, f="crop", s="1.15", l=re.escape(right), r=re.escape(left)),
                          timeout=STEP_S)
        page.wait_for_timeout(1000)                        # let the browser decode the new figure
        text = page.locator(EXPLORER).first.inner_text()
        assert "backbone" in text and "projector" in text
        screenshot(page, "sensitivity-explorer-changed", selector=EXPLORER)
        screenshot(page, "sensitivity-explorer-page")
        _no_page_errors(page)


def test_sensitivity_explorer_python_api(tmp_path):
    """The same controls from Python, on two tiny models (no training)."""
    import torch
    from torch import nn

    from gpsviz.augment import Augmenter
    from gpsviz.data import make_shapes
    from gpsviz.errors import ConfigError
    from gpsviz.sensitivity import LoadedRun
    from gpsviz.widgets import SensitivityExplorer

    class Head(nn.Module):
        def forward(self, h, batch=None, index=None):
            return h[:, :4]

    torch.manual_seed(0)
    pooled = LoadedRun("pooled", nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), Head(), Augmenter("strong"))
    conv = LoadedRun("conv", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()),
                     Head(), Augmenter("strong"))
    ds = make_shapes(60, seed=4)
    ex = SensitivityExplorer(ds, {"pooled": pooled, "conv": conv}, n_views=3, probe_images=60)
    marker = re.sub("<[^>]+>", "", ex.status.value)
    assert marker.endswith("sensitivity-state: image=0 family=colour strength=1.00 left=pooled right=conv done")
    st = ex.set_state(index=5, family="grayscale", strength=0.0)
    assert (st["index"], st["family"], st["strength"]) == (5, "grayscale", 0.0)
    for name in ("pooled", "conv"):                          # strength 0: the views are the clean image
        assert all(abs(v - 1) < 1e-5 for v in st["similarity"][name]["backbone"])
    st = ex.set_state(family="crop", strength=1.0)
    assert len(st["true"]) == 3 and len(st["true"][0]) == 4 and len(st["predicted"]["conv"][0]) == 4
    assert st["mean"]["pooled"]["backbone"] < 1.0
    assert ex.image.value[:4] == b"\x89PNG"
    for bad in (dict(index=60), dict(family="rotate"), dict(strength=3.0), dict(left="nope")):
        with pytest.raises(ConfigError):
            ex.set_state(**bad)
    with pytest.raises(ConfigError):
        SensitivityExplorer(ds, {})
