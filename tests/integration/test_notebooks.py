"""Every notebook executes top to bottom in smoke mode (GPSVIZ_SMOKE=1) without a failing cell; then the gallery
(scripts/gallery.py) is built from those executed notebooks and every page is opened in Chromium."""
from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@functools.cache
def gallery():
    """``scripts/gallery.py`` as a module: the notebooks run through its ``execute``, the site through ``build``."""
    spec = importlib.util.spec_from_file_location("gallery", ROOT / "scripts" / "gallery.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    tags = [c.get("metadata", {}).get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert any("parameters" in t for t in tags), f"{path.name} has no cell tagged 'parameters'"
    nb = gallery().execute(path, smoke=True, timeout=600)      # as `make docs` runs it, widget state kept
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 2, f"{path.name} produced only {images} inline figures"
    # a student never reads NaN in a table (a missing value shows as "–"), nor a Python error
    shown = [(i, "".join(o.get("data", {}).get("text/html", "")) or "".join(o.get("data", {}).get("text/plain", "")))
             for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") in ("execute_result", "display_data")]
    nan = [i for i, text in shown if re.search(r"(?<![\w-])(NaN|nan)(?![\w-])", text)]
    assert not nan, f"{path.name}: NaN shown in the output of cells {nan}"
    out = ROOT / "test-artifacts" / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / path.name)


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_gallery_pages_render(chromium_page, tmp_path):
    """The gallery built from the notebooks the test above executed (smoke mode): every page opens in Chromium
    with its widgets rendered from the embedded state, and without "Loading widget", "Error displaying widget", a
    traceback or an empty figure."""
    import subprocess
    import sys

    executed = ROOT / "test-artifacts" / "notebooks"
    missing = [p.name for p in NOTEBOOKS if not (executed / p.name).is_file()]
    assert not missing, f"run the notebook tests first (they write {executed}): missing {missing}"
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gallery.py"), "--executed", str(executed),
                        "--out", str(site)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    pages = sorted(site.glob("[0-9][0-9]_*.html"))
    assert len(pages) == len(NOTEBOOKS) and (site / "index.html").is_file()
    page = chromium_page
    for html_page in pages:
        page.goto(html_page.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_function("() => !document.body.innerText.includes('Loading widget')", timeout=60_000)
        text = page.inner_text("body")
        assert "Rendered in smoke mode" in text, html_page.name
        for bad in ("Error displaying widget", "Traceback (most recent call last)", "Loading widget"):
            assert bad not in text, f"{html_page.name}: {bad!r} on the page"
        sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.naturalWidth, e.naturalHeight])")
        assert sizes and all(w > 10 and h > 10 for w, h in sizes), f"{html_page.name}: an empty figure {sizes}"
        widgets = page.eval_on_selector_all(".jupyter-widgets", "els => els.length")
        declared = html_page.read_text().count("application/vnd.jupyter.widget-view+json")
        assert widgets >= (1 if declared else 0), f"{html_page.name}: {declared} widget views declared, none drawn"


def test_gallery_renders_teach_mode_while_the_budget_allows():
    """``make docs`` (mode auto): teach mode in order while the measured minutes fit, smoke mode after."""
    costs = [gallery().TEACH_MINUTES.get(p.stem[:2], 10.0) for p in NOTEBOOKS]
    budget = sum(costs[:3]) + 0.01                                # room for the first three only
    modes = list(gallery().plan_modes(NOTEBOOKS, "auto", budget).values())
    assert modes == ["teach"] * 3 + ["smoke"] * (len(NOTEBOOKS) - 3)
    assert set(gallery().plan_modes(NOTEBOOKS, "smoke", 1e9).values()) == {"smoke"}
    assert set(gallery().plan_modes(NOTEBOOKS, "auto", 1e9).values()) == {"teach"}
