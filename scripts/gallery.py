"""Build the rendered gallery: every notebook executed, as static HTML with its outputs and its widgets' state.

    .venv/bin/python scripts/gallery.py                     # auto: teach mode while the budget allows → site/
    .venv/bin/python scripts/gallery.py --mode smoke        # every notebook in smoke mode (about 4 minutes)
    .venv/bin/python scripts/gallery.py --mode teach        # every notebook in teach mode (about 20 minutes)
    .venv/bin/python scripts/gallery.py --executed test-artifacts/notebooks   # reuse notebooks the tests executed

``make docs`` runs the first: ``--mode auto`` renders the notebooks in order in teach mode as long as their measured
teach-mode times (:data:`TEACH_MINUTES`, measured on the project's 2-core CPU) fit ``--budget`` minutes (30), and
the rest in smoke mode. Each page opens with a banner saying the mode it was rendered in (smoke-mode numbers are
noise). The widgets' state is embedded (nbclient ``store_widget_state``), so every explorer shows the figure it
drew when the notebook ran; the pages are static (no kernel), so the controls do not recompute. The JavaScript
that renders embedded widgets (``@jupyter-widgets/html-manager`` 1.x, matching ipywidgets 8) and RequireJS are
fetched once with ``npm pack`` into ``data/npm-cache/`` and copied into ``site/_static/``: the pages load nothing
from the internet. ``site/index.html`` lists the pages. Notebooks in git stay stripped: only ``site/`` (ignored by
git) holds outputs.
"""
from __future__ import annotations

import argparse
import datetime
import html
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"html-manager": "@jupyter-widgets/html-manager@1", "requirejs": "requirejs@2"}
#: Teach-mode minutes per notebook, measured one after another on the idle 2-core CPU (2026-12-07, README).
TEACH_MINUTES = {"00": 0.3, "01": 2.8, "02": 1.9, "03": 1.2, "04": 3.7, "05": 2.2, "06": 1.7, "07": 6.4}


def plan_modes(notebooks: list[Path], mode: str, budget: float) -> dict[Path, str]:
    """The mode each notebook is rendered in: ``mode`` for all, or with ``"auto"`` teach mode in order while the
    measured minutes (:data:`TEACH_MINUTES`; an unmeasured notebook counts 10) fit ``budget``, smoke after."""
    if mode != "auto":
        return {p: mode for p in notebooks}
    out, spent = {}, 0.0
    for p in notebooks:
        cost = TEACH_MINUTES.get(p.stem.split("_")[0], 10.0)
        teach = spent + cost <= budget and all(m == "teach" for m in out.values())
        spent += cost if teach else 0.0
        out[p] = "teach" if teach else "smoke"
    return out


def npm_asset(name: str, cache: Path) -> Path:
    """The unpacked npm package ``PACKAGES[name]`` under ``cache`` (``npm pack`` once; offline afterwards)."""
    target = cache / name
    if (target / "package.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(["npm", "pack", PACKAGES[name], "--silent"], cwd=cache, capture_output=True, text=True,
                             timeout=300, check=True).stdout.strip().splitlines()[-1]
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        raise SystemExit(f"gallery: could not fetch {PACKAGES[name]} with npm ({e}). Install npm (apt-get install -y "
                         f"npm) with access to the npm registry, or unpack the package into {target}/") from None
    with tarfile.open(cache / out) as tar:
        tar.extractall(cache / f"{name}-tmp", filter="data")
    shutil.rmtree(target, ignore_errors=True)
    (cache / f"{name}-tmp" / "package").rename(target)
    shutil.rmtree(cache / f"{name}-tmp", ignore_errors=True)
    (cache / out).unlink(missing_ok=True)
    return target


def static_assets(site: Path, cache: Path) -> None:
    """RequireJS and the widget renderer into ``site/_static/`` (the pages refer to them by relative paths)."""
    static = site / "_static"
    static.mkdir(parents=True, exist_ok=True)
    shutil.copy(npm_asset("requirejs", cache) / "require.js", static / "require.js")
    manager = static / "html-manager"
    shutil.rmtree(manager, ignore_errors=True)
    shutil.copytree(npm_asset("html-manager", cache) / "dist", manager)


def execute(path: Path, smoke: bool, timeout: int) -> nbformat.NotebookNode:
    """Run a notebook top to bottom (smoke or teach mode) and keep its widgets' state (the notebook tests run
    every notebook through this too)."""
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)                  # an Agg backend would strip the inline figures
    os.environ["GPSVIZ_SMOKE"] = "1" if smoke else ""
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "data" / "numba-cache"))   # umap compiles once
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env)
    return nb


def banner(mode: str, when: str) -> nbformat.NotebookNode:
    text = ("**Rendered in smoke mode**: every run here trained a few hundred images for one epoch, so the numbers "
            "are noise, not the lesson. Run the notebook yourself (teach mode) to see its effects."
            if mode == "smoke" else "**Rendered in teach mode**: the runs at the notebook's own budget, one seed.")
    return nbformat.v4.new_markdown_cell(f"> {text} (gpsviz gallery, built {when}; the widgets are a static "
                                         f"snapshot — open the notebook in Jupyter to use them.)")


def render(nb: nbformat.NotebookNode, title: str) -> str:
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    exporter.require_js_url = "_static/require.js"
    exporter.widget_renderer_url = "_static/html-manager/embed-amd.js"
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def index_page(pages: list[tuple[str, str, str]]) -> str:
    rows = "\n".join(f'<li><a href="{html.escape(f)}">{html.escape(t)}</a> <small>({html.escape(m)} mode)</small></li>'
                     for f, t, m in pages)
    return ("<!doctype html><html><head><meta charset='utf-8'><title>gpsviz gallery</title></head><body>"
            "<h1>gpsviz — the notebooks, rendered</h1><p>Each page is a notebook executed top to bottom, with its "
            f"figures and a static snapshot of its explorers.</p><ul>\n{rows}\n</ul></body></html>\n")


def build(mode: str, out: Path, executed: Path | None, timeout: int, only: list[str] | None = None,
          budget: float = 30.0) -> list[Path]:
    """Build the gallery into ``out``; returns the pages written (``index.html`` last). ``executed``: a folder of
    notebooks already executed in smoke mode, reused instead of executing them again."""
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only:
        notebooks = [p for p in notebooks if p.stem.split("_")[0] in only or p.stem in only]
    if not notebooks:
        raise SystemExit("gallery: no notebook matched")
    out.mkdir(parents=True, exist_ok=True)
    static_assets(out, ROOT / "data" / "npm-cache")
    when = datetime.date.today().isoformat()
    modes = plan_modes(notebooks, "smoke" if executed else mode, budget)
    pages, written = [], []
    for path in notebooks:
        mode = modes[path]
        source = executed / path.name if executed else None
        if source is not None and source.is_file():
            nb = nbformat.read(source, as_version=4)
        else:
            print(f"executing {path.name} ({mode} mode)", flush=True)
            nb = execute(path, smoke=(mode == "smoke"), timeout=timeout)
        nb.cells.insert(1, banner(mode, when))
        page = out / f"{path.stem}.html"
        page.write_text(render(nb, path.stem), encoding="utf-8")
        title = next((c.source.splitlines()[0].lstrip("# ") for c in nb.cells if c.cell_type == "markdown"),
                     path.stem)
        pages.append((page.name, title, mode))
        written.append(page)
    (out / "index.html").write_text(index_page(pages), encoding="utf-8")
    written.append(out / "index.html")
    print(f"gallery: {len(pages)} pages in {out}/ (open {out / 'index.html'})")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("auto", "smoke", "teach"), default="auto")
    ap.add_argument("--budget", type=float, default=30.0, help="minutes of teach mode for --mode auto")
    ap.add_argument("--out", default=str(ROOT / "site"))
    ap.add_argument("--executed", default=None, help="a folder of executed notebooks to reuse (smoke mode)")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    ap.add_argument("--only", nargs="*", help="notebook numbers or names, e.g. 01 07")
    a = ap.parse_args(argv)
    build(a.mode, Path(a.out), Path(a.executed) if a.executed else None, a.timeout, a.only, a.budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
