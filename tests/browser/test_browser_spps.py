"""The SPPS set explorer in a real browser (Voilà serves notebook 03 in smoke mode, headless Chromium drives it),
and the same explorer from Python.

Run: ``.venv/bin/python -m pytest -m browser tests/test_browser_spps.py -v`` (screenshots land in
``test-artifacts/``). Without Chromium the browser test is skipped with the reason, except under ``CI=true``.
"""
from __future__ import annotations

import math
import re

import pytest
from harness import (BROKEN_WIDGET, click_button, open_notebook, page_text, parse_marker, press_slider, screenshot,
                     serve_notebook, set_int_text, token_is_required, wait_for_text, wait_until_executed)

NOTEBOOK = "notebooks/03_spps.ipynb"
DONE = r"set-state: anchor={a} threshold={t} k={k} size=(?P<size>\d+) purity=(?P<purity>\S+) done"
EXPLORER = ".gpsviz-set-explorer"
FIRST_RENDER_S = 420          # the notebook runs top to bottom (smoke mode, four short trainings)
STEP_S = 60


def _check(m: re.Match) -> dict[str, str]:
    st = parse_marker(m.group(0), "set-state")
    size, k = int(st["size"]), int(st["k"])
    assert 0 <= size <= k, m.group(0)
    purity = float(st["purity"])                                  # raises if not a number ("nan" parses)
    assert (size == 0 and math.isnan(purity)) or (size > 0 and 0.0 <= purity <= 1.0), m.group(0)
    return st


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_set_explorer_in_the_browser(chromium_page):
    page = chromium_page
    any_ = r"(?P<{}>\S+)"
    with serve_notebook(NOTEBOOK) as url:
        assert token_is_required(url), "Voilà served the notebook to a request without the token"
        open_notebook(page, url)
        m = wait_for_text(page, DONE.format(a=any_.format("a"), t=any_.format("t"), k=any_.format("k")),
                          timeout=FIRST_RENDER_S)
        wait_until_executed(page, timeout=FIRST_RENDER_S)          # training cells done: the kernel is free
        st = _check(m)
        anchor, threshold, k = int(st["anchor"]), float(st["threshold"]), int(st["k"])
        assert (threshold, k) == (0.9, 4), m.group(0)
        assert page.locator(f"{EXPLORER} .gpsviz-figure").first.is_visible()
        screenshot(page, "set-explorer-initial-page")
        screenshot(page, "set-explorer-initial", selector=EXPLORER)

        # type an anchor into the number box
        anchor = 7 if anchor != 7 else 11
        set_int_text(page, ".gpsviz-anchor-text", anchor)
        before = int(_check(wait_for_text(page, DONE.format(a=anchor, t=f"{threshold:.3f}", k=k),
                                          timeout=STEP_S))["size"])

        # threshold: two steps left (0.005 each) — a lower threshold can only grow the set
        press_slider(page, ".gpsviz-threshold-slider", "ArrowLeft", 2)
        threshold = round(threshold - 0.010, 3)
        st = _check(wait_for_text(page, DONE.format(a=anchor, t=f"{threshold:.3f}", k=k), timeout=STEP_S))
        assert int(st["size"]) >= before

        # k: three steps right on the slider
        press_slider(page, ".gpsviz-k-slider", "ArrowRight", 3)
        k += 3
        _check(wait_for_text(page, DONE.format(a=anchor, t=f"{threshold:.3f}", k=k), timeout=STEP_S))
        screenshot(page, "set-explorer-changed", selector=EXPLORER)

        # "random" moves to another anchor
        click_button(page, "random")
        m = wait_for_text(page, DONE.format(a=rf"(?!{anchor}\b)(?P<a>\d+)", t=f"{threshold:.3f}", k=k),
                          timeout=STEP_S)
        assert int(_check(m)["anchor"]) != anchor
        screenshot(page, "set-explorer-random", selector=EXPLORER)

        broken = BROKEN_WIDGET.findall(page_text(page))
        assert not broken, f"the served notebook shows {len(broken)} broken widget output(s)"
        errors = [e for e in page.console_errors if "ERR_NAME_NOT_RESOLVED" not in e and "ERR_INTERNET" not in e]
        assert not errors, f"browser console errors: {[e.splitlines()[0] for e in errors]}"


# ---------------------------------------------------------------------------------------- the same, from Python
def test_set_explorer_python_api(tmp_path, tiny_pair):
    import torch

    from gpsviz.config import TrainConfig
    from gpsviz.positives.semantic import semantic_sets
    from gpsviz.train import train
    from gpsviz.widgets import SetExplorer

    ds = tiny_pair[0]
    onehot = torch.nn.functional.one_hot(ds.labels, len(ds.classes)).float()
    src = semantic_sets(ds, prior="pixels", embedding=onehot + 0.01 * torch.randn(len(ds), len(ds.classes),
                        generator=torch.Generator().manual_seed(0)), k=6, threshold=0.9)
    ex = SetExplorer(ds, src, anchor=2)
    text = re.sub("<[^>]+>", "", ex.status.value)
    assert re.search(r"set-state: anchor=2 threshold=0\.900 k=6 size=\d+ purity=\S+ done$", text), text
    st = ex.set_state(anchor=5, threshold=0.5, k=3)
    assert (st["anchor"], st["threshold"], st["k"]) == (5, 0.5, 3)
    assert st["size"] == 3 and st["purity"] == 1.0 and st["set_purity"] == 1.0   # one-hot: same class ≈ 1.0
    assert all(ds.labels[m] == ds.labels[5] for m in st["members"]) and 5 not in st["members"]
    assert ex.set_state(threshold=-0.5)["size"] == 3                # all k nearest (k=3) pass
    assert ex.image.value[:4] == b"\x89PNG"
    ex.random_button.click()
    assert ex.state["anchor"] != 5
    ex.anchor_box.value = 3
    assert ex.state["anchor"] == 3
    for bad in (dict(k=7), dict(k=0), dict(threshold=1.5), dict(anchor=len(ds))):
        with pytest.raises(ValueError):
            ex.set_state(**bad)

    # from a trained SPPS run: the sets its loss drew members from (the checkpoint's table)
    cfg = TrainConfig(recipe="spps-simclr", epochs=1, batch_size=64, eval_every=0, device="cpu", precision="fp32",
                      proj_hidden=32, proj_dim=16, positives_options={"prior": "pixels", "k": 4, "threshold": 0.8})
    train(cfg, tmp_path / "spps", progress=False, data=tiny_pair)
    from_run = SetExplorer.from_run(tmp_path / "spps", dataset=ds, anchor=1)
    direct = semantic_sets(ds, prior="pixels", k=4, threshold=0.8, root=tmp_path)
    want = direct.table[1][direct.valid[1]].tolist()
    assert from_run.state["members"] == want and from_run.state["threshold"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no semantic sets"):
        cfg2 = TrainConfig(recipe="simclr", epochs=1, batch_size=64, eval_every=0, device="cpu", precision="fp32",
                           proj_hidden=32, proj_dim=16)
        train(cfg2, tmp_path / "plain", progress=False, data=tiny_pair)
        SetExplorer.from_run(tmp_path / "plain", dataset=ds)
