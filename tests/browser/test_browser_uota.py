"""The OOD view explorer (UOTA) in a real browser: Voilà serves a small notebook with two tiny UOTA runs,
headless Chromium moves every control and waits for the explorer's marker. Screenshots land in
``test-artifacts/``. Run: ``.venv/bin/python -m pytest -m browser tests/test_browser_uota.py -v``.
The Python API of the explorer is tested here too (no browser)."""
from __future__ import annotations

import math
import re

import pytest
from harness import (BROKEN_WIDGET, click_button, open_notebook, page_text, parse_marker, press_slider, screenshot,
                     select_dropdown, serve_notebook, set_int_text, wait_for_text, wait_until_executed)

NOTEBOOK = "tests/browser/notebooks/ood_smoke.ipynb"
DONE = r"ood-state: run={r} image={i} epoch={e} views=(?P<views>\d+) auroc=(?P<auroc>\S+) done"
EXPLORER = ".gpsviz-ood-explorer"
FIRST_RENDER_S = 400          # the notebook trains two tiny runs first
STEP_S = 60


def _check(m: re.Match) -> dict[str, str]:
    st = parse_marker(m.group(0), "ood-state")
    a = float(st["auroc"])
    assert math.isnan(a) or 0.0 <= a <= 1.0, m.group(0)
    assert int(st["views"]) in (0, 6), m.group(0)               # 2 global + 4 local views (0: not in a batch)
    return st


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_ood_explorer(chromium_page):
    page = chromium_page
    with serve_notebook(NOTEBOOK) as url:
        open_notebook(page, url)
        m = wait_for_text(page, DONE.format(r=r"(?P<r>\S+)", i=r"(?P<i>\d+)", e=r"(?P<e>\d+)"), timeout=FIRST_RENDER_S)
        wait_until_executed(page, timeout=FIRST_RENDER_S)
        st = _check(m)
        run, image, epoch = st["run"], int(st["image"]), int(st["epoch"])
        assert (run, image, epoch) == ("UOTA-SwAV", 0, 2), m.group(0)
        assert page.locator(f"{EXPLORER} .gpsviz-figure").first.is_visible()
        screenshot(page, "ood-explorer-initial", selector=EXPLORER)

        set_int_text(page, ".gpsviz-image-text", 7)                # type an image
        _check(wait_for_text(page, DONE.format(r=run, i=7, e=epoch), timeout=STEP_S))

        press_slider(page, ".gpsviz-epoch-slider", "ArrowLeft", 1)  # back to the warm-up epoch
        _check(wait_for_text(page, DONE.format(r=run, i=7, e=epoch - 1), timeout=STEP_S))
        epoch -= 1

        select_dropdown(page, ".gpsviz-run", "UOTA-SimCLR")         # the other run
        _check(wait_for_text(page, DONE.format(r="UOTA-SimCLR", i=7, e=epoch), timeout=STEP_S))
        screenshot(page, "ood-explorer-changed", selector=EXPLORER)

        click_button(page, "random")                                 # another probe image
        m = wait_for_text(page, DONE.format(r="UOTA-SimCLR", i=r"(?!7\b)(?P<i>\d+)", e=epoch), timeout=STEP_S)
        assert int(_check(m)["image"]) != 7
        screenshot(page, "ood-explorer-random", selector=EXPLORER)
        screenshot(page, "ood-explorer-page")
        assert not BROKEN_WIDGET.findall(page_text(page))
        errors = [e for e in page.console_errors if "ERR_NAME_NOT_RESOLVED" not in e and "ERR_INTERNET" not in e]
        assert not errors, errors


# ---------------------------------------------------------------------------------------- the same, from Python
def test_ood_explorer_python_api(tmp_path):
    from types import SimpleNamespace

    import torch

    from gpsviz.augment.params import PARAM_NAMES, AugParams
    from gpsviz.data import make_shapes
    from gpsviz.view_weights import ViewWeightLog, ViewWeightRecorder
    from gpsviz.widgets import OODExplorer

    ds = make_shapes(16, seed=4, clutter=1.0)
    rec = ViewWeightRecorder(probe=4)
    g = torch.Generator().manual_seed(0)
    for epoch in range(2):                                            # 2 epochs × 4 images × 2 views
        rows = torch.arange(4).repeat(2)
        v = torch.zeros(8, len(PARAM_NAMES))
        v[:, 2:4] = 32.0                                              # whole-image crop ...
        v[4:, :4] = torch.tensor([0.0, 0.0, 2.0, 2.0])               # ... except the second view: a corner
        w = torch.rand(8, generator=g)
        w = w / w.sum()
        plan = SimpleNamespace(slots=torch.arange(8) // 4)
        batch = SimpleNamespace(rows=rows, instance_ids=rows, is_global=torch.arange(8) < 4, plan=plan,
                                step=epoch, epoch=epoch, params=AugParams(v))
        rec.on_step(batch, {"weights": w, "uota_weights": w, "per_view": torch.ones(8)})
        rec.on_epoch({})
    ex = OODExplorer(ds, {"a": rec.log, "b": ViewWeightLog(rec.log.data)}, aug="strong")
    text = re.sub("<[^>]+>", "", ex.status.value)
    assert re.search(r"ood-state: run=a image=0 epoch=2 views=2 auroc=\S+ done$", text), text
    st = ex.set_state(run="b", image=3, epoch=1)
    assert (st["run"], st["image"], st["epoch"]) == ("b", 3, 1)
    assert [round(x["coverage"], 3) for x in st["views"]] != [] and len(st["views"]) == 2
    ws = [x["weight"] for x in st["views"]]
    assert ws == sorted(ws, reverse=True)                             # ranked by weight
    covs = sorted(x["coverage"] for x in st["views"])
    assert covs[-1] == pytest.approx(1.0) and covs[0] < 0.1            # the corner crop misses the object
    assert ex.views_image.value[:4] == b"\x89PNG" and ex.stats_image.value[:4] == b"\x89PNG"
    ex.random_button.click()
    assert ex.state["image"] != 3
    for bad in (dict(run="c"), dict(image=10), dict(epoch=5)):
        with pytest.raises(ValueError):
            ex.set_state(**bad)
    with pytest.raises(ValueError, match="masks"):
        OODExplorer(SimpleNamespace(masks=None), rec.log)
