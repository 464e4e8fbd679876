"""The probe-condition explorer (notebook 06) in a real browser: Voilà serves the notebook in smoke mode, headless
Chromium changes each control and waits for the widget's ``probe-state`` marker after each redraw.

Run: ``.venv/bin/python -m pytest -m browser tests/test_browser_dubois.py -v`` (screenshots land in
``test-artifacts/``). Without Chromium the test is skipped with the reason, except under ``CI=true``.
"""
from __future__ import annotations

import math
import re

import pytest
from harness import (BROKEN_WIDGET, open_notebook, page_text, parse_marker, screenshot, select_dropdown, serve_notebook,
                     wait_for_text, wait_until_executed)

NOTEBOOK = "notebooks/06_probe_conditions.ipynb"
EXPLORER = ".gpsviz-probe-explorer"
FIRST_RENDER_S = 600          # the notebook runs top to bottom (smoke mode: five tiny trainings) before it is live
STEP_S = 60
DONE = r"probe-state: runs=(?P<runs>\d+) method={m} dim={d} strength={s} linear=(?P<linear>\S+) etf=(?P<etf>\S+) done"


def _check(m: re.Match, runs: int | None = None) -> dict[str, str]:
    st = parse_marker(m.group(0), "probe-state")
    if runs is not None:
        assert int(st["runs"]) == runs, m.group(0)
    lin, etf = float(st["linear"]), float(st["etf"])
    if int(st["runs"]):
        # etf = the instance-level DistToEtf, whose best value is −1/(N−1) < 0 (N = 200 held-out images in smoke
        # mode: −0.005); −0.05 allows N ≥ 21
        assert 0.0 <= lin <= 1.0 and etf >= -0.05, m.group(0)
    else:
        assert math.isnan(lin) and math.isnan(etf), m.group(0)
    return st


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_probe_explorer(chromium_page):
    page = chromium_page
    with serve_notebook(NOTEBOOK) as url:
        open_notebook(page, url)
        m = wait_for_text(page, DONE.format(m="CISSL", d=r"(?P<d>\d+)", s="1"), timeout=FIRST_RENDER_S)
        wait_until_executed(page, timeout=FIRST_RENDER_S)
        st = _check(m, runs=1)
        big = int(st["dim"])
        assert page.locator(f"{EXPLORER} .gpsviz-figure").first.is_visible()
        assert "SupCon (ceiling)" in page.locator(f"{EXPLORER} .gpsviz-table").first.inner_text()
        screenshot(page, "probe-explorer-initial", selector=EXPLORER)

        # another method at the same dimension and strength
        select_dropdown(page, ".gpsviz-method", "SimCLR")
        _check(wait_for_text(page, DONE.format(m="SimCLR", d=big, s="1"), timeout=STEP_S), runs=1)

        # a smaller representation: SimCLR was not trained there (the explorer says so), CISSL was
        dims = page.locator(".gpsviz-dim select option").all_inner_texts()
        small = min(int(d) for d in dims)
        assert small < big, dims
        select_dropdown(page, ".gpsviz-dim", str(small))
        _check(wait_for_text(page, DONE.format(m="SimCLR", d=small, s="1"), timeout=STEP_S), runs=0)
        assert "No run was trained with these settings" in page_text(page)
        select_dropdown(page, ".gpsviz-method", "CISSL")
        _check(wait_for_text(page, DONE.format(m="CISSL", d=small, s="1"), timeout=STEP_S), runs=1)

        # half the augmentation strength, back at the large dimension
        select_dropdown(page, ".gpsviz-dim", str(big))
        _check(wait_for_text(page, DONE.format(m="CISSL", d=big, s="1"), timeout=STEP_S), runs=1)
        select_dropdown(page, ".gpsviz-strength", "0.5")
        _check(wait_for_text(page, DONE.format(m="CISSL", d=big, s="0.5"), timeout=STEP_S), runs=1)
        screenshot(page, "probe-explorer-changed", selector=EXPLORER)

        assert not BROKEN_WIDGET.findall(page_text(page))
        errors = [e for e in page.console_errors if "ERR_NAME_NOT_RESOLVED" not in e and "ERR_INTERNET" not in e]
        assert not errors, f"browser console errors: {[e.splitlines()[0] for e in errors]}"
