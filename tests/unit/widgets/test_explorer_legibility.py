"""Issue 22 (student findings): every explorer's figure is legible at the size the widget shows it, and its text
on screen is free of NaN and of the browser tests' marker.

Each explorer is built on tiny data (no training, no browser). Its figures are caught on their way to the Image
widget (``show_figure``) and checked at the displayed size: an explorer shows a figure
``display_width(fig)`` CSS pixels wide, so a text of ``s`` points shows as ``s × display_scale(fig)`` points,
which must be at least 9 pt (12 CSS pixels). Axes that show data and tick labels name what their axis measures;
every marker drawn is in a legend; no legend sits on a line; no title or label leaves the figure. The status marker
(``<code class="gpsviz-marker">``) stays in the page text for the browser tests but is visually hidden.
"""
from __future__ import annotations

import html as html_lib
import importlib
import re
from itertools import pairwise
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from harness import BROKEN_WIDGET, DEFAULT_FAIL, parse_marker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.text import Text

from gpsviz.widgets import controls

matplotlib.use("Agg")

MODULES = ("augment_explorer", "neighbour_explorer", "set_explorer", "ood_explorer", "sensitivity_explorer",
           "probe_explorer", "embedding_explorer")


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture
def shown(monkeypatch):
    """Every (Image widget, Figure) an explorer shows, in order (the real ``show_figure`` still runs)."""
    got: list[tuple] = []
    real = controls.show_figure

    def record(image, fig, dpi=controls.FIGURE_DPI):
        real(image, fig, dpi=dpi)
        got.append((image, fig))

    for name in MODULES:
        monkeypatch.setattr(importlib.import_module(f"gpsviz.widgets.{name}"), "show_figure", record)
    return got


def _renderer(fig):
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _is_tick_label(t: Text, fig) -> bool:
    return any(t in ax.get_xticklabels() or t in ax.get_yticklabels() for ax in fig.axes)


def smallest_points(fig) -> float:
    """The smallest text of ``fig`` in points at the size an explorer shows it."""
    return min(t.get_fontsize() for t in _texts(fig)) * controls.display_scale(fig)


def assert_legible(image, fig) -> float:
    """The checks of the module docstring on one shown figure; returns its smallest text (points, shown)."""
    assert image.layout.width == f"{controls.display_width(fig)}px" and image.layout.max_width == "100%"
    assert image.value[:4] == b"\x89PNG"
    renderer = _renderer(fig)
    scale = controls.display_scale(fig)
    for t in _texts(fig):
        assert t.get_fontsize() * scale >= controls.MIN_FONT_PT - 1e-9, (
            f"{t.get_text()[:40]!r}: {t.get_fontsize()} pt × {scale:.2f} < {controls.MIN_FONT_PT} pt")
    box = fig.bbox
    for t in _texts(fig):                       # titles, labels, legends, captions: not cut off at the edges
        if _is_tick_label(t, fig):
            continue
        e = t.get_window_extent(renderer)
        assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, (
            f"{t.get_text()[:40]!r} leaves the figure: {e} not in {box}")
    legend_markers = set()
    for leg in fig.findobj(Legend):
        for h in leg.legend_handles:
            if isinstance(h, Line2D) and h.get_marker() not in (None, "", "None", " "):
                legend_markers.add((h.get_marker(), str(h.get_markerfacecolor()).lower() != "none"))
    for ax in fig.axes:
        if not ax.axison or ax.images:
            continue
        lines = [ln for ln in ax.lines if len(ln.get_xdata())]
        if not (lines or ax.collections or ax.patches):
            raise AssertionError(f"an empty axes is shown (title {ax.get_title()!r})")
        for axis, label in ((ax.get_xticklabels(), ax.get_xlabel()), (ax.get_yticklabels(), ax.get_ylabel())):
            if any(t.get_visible() and t.get_text().strip() for t in axis):
                assert label.strip(), f"axes {ax.get_title()!r} shows tick labels without an axis label"
        for ln in lines:                        # every marker drawn is in a legend
            if ln.get_marker() not in (None, "", "None", " "):
                key = (ln.get_marker(), str(ln.get_markerfacecolor()).lower() != "none")
                assert key in legend_markers, f"marker {key} of axes {ax.get_title()!r} is in no legend"
        leg = ax.get_legend()
        if leg is None:
            continue
        lb, ab = leg.get_window_extent(renderer), ax.get_window_extent(renderer)
        for ln in lines:                        # a legend never covers a line (e.g. the probe floor)
            xy = ln.get_transform().transform(np.column_stack([ln.get_xdata(), ln.get_ydata()]).astype(float))
            t = np.linspace(0, 1, 40)[:, None]
            pts = np.concatenate([a + t * (b - a) for a, b in pairwise(xy)] or [xy])
            pts = pts[(pts[:, 0] >= ab.x0) & (pts[:, 0] <= ab.x1) & (pts[:, 1] >= ab.y0) & (pts[:, 1] <= ab.y1)]
            inside = (pts[:, 0] > lb.x0) & (pts[:, 0] < lb.x1) & (pts[:, 1] > lb.y0) & (pts[:, 1] < lb.y1)
            assert not inside.any(), f"the legend of {ax.get_title()!r} covers the line {ln.get_label()!r}"
    return smallest_points(fig)


def _html_widgets(w):
    from ipywidgets import HTML

    if isinstance(w, HTML):
        yield w
    for c in getattr(w, "children", ()):
        yield from _html_widgets(c)


def visible_text(ex) -> str:
    """The text the explorer's HTML widgets show a person (the visually hidden marker left out)."""
    out = []
    for w in _html_widgets(ex):
        v = re.sub(r'<code[^>]*class="gpsviz-marker"[^>]*>.*?</code>', "", w.value, flags=re.DOTALL)
        out.append(html_lib.unescape(re.sub(r"<[^>]+>", " ", v)))
    return " ".join(out)


def assert_page_text(ex, prefix: str) -> dict[str, str]:
    """No NaN on screen; the marker present (parsed as the browser tests do), hidden but rendered."""
    text = visible_text(ex)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), text
    assert ex.status in ex.children
    m = re.fullmatch(r'<code style="([^"]*)" class="gpsviz-marker">(.*)</code>', ex.status.value, re.DOTALL)
    assert m, ex.status.value
    style = m.group(1).replace(" ", "")
    for rule in ("position:absolute", "width:1px", "height:1px", "overflow:hidden", "clip:rect(0,0,0,0)"):
        assert rule in style, style
    assert "display:none" not in style and "visibility:hidden" not in style     # innerText keeps it
    marker = re.sub("<[^>]+>", "", ex.status.value)
    assert marker.endswith(" done"), marker
    return parse_marker(html_lib.unescape(marker), prefix)


# ------------------------------------------------------------------------------------------------ tiny data
@pytest.fixture(scope="module")
def shapes():
    from gpsviz.data import make_shapes

    return make_shapes(32, seed=3)


def _view_log(views: int = 8, epochs: int = 3):
    """A UOTA view-weight log of 4 probe images × ``views`` views (half of them an 8×8 corner: misses)."""
    from gpsviz.augment.params import PARAM_NAMES, AugParams
    from gpsviz.view_weights import ViewWeightRecorder

    rec = ViewWeightRecorder(probe=4)
    g = torch.Generator().manual_seed(0)
    n = 4 * views
    for epoch in range(epochs):
        v = torch.zeros(n, len(PARAM_NAMES))
        v[:, 2:4] = 32.0
        v[n // 2:, :4] = torch.tensor([0.0, 0.0, 8.0, 8.0])
        w = torch.rand(n, generator=g)
        w = w / w.sum()
        rows = torch.arange(4).repeat(views)
        batch = SimpleNamespace(rows=rows, instance_ids=rows, is_global=torch.arange(n) < 8,
                                plan=SimpleNamespace(slots=torch.arange(n) // 4), step=epoch, epoch=epoch,
                                params=AugParams(v))
        rec.on_step(batch, {"weights": w, "uota_weights": w, "per_view": torch.ones(n)})
        rec.on_epoch({})
    return rec.log


def _probe_records():
    recs = []
    angle = torch.linspace(0, 2 * np.pi, 5)[:4]
    ideal = torch.stack([angle.cos(), angle.sin()], 1)
    for method, dim, strength in (("CISSL", 128, 1.0), ("SimCLR", 128, 1.0), ("CISSL", 16, 1.0),
                                  ("CISSL", 128, 0.5)):
        eff = [{"probe": p, "per_class": k, "test_acc": 0.3 + 0.1 * i + (0.05 if p == "mlp" else 0.0)}
               for p in ("linear", "mlp") for i, k in enumerate((1, 5, 10, "all"))]
        recs.append({"method": method, "dim": dim, "strength": strength, "linear_label": 0.6, "mlp_label": 0.65,
                     "invariance": 0.2, "decodability": 0.9, "etf_distance": 0.1, "effective_rank": 20.0,
                     "label_efficiency": eff, "etf_means": (0.7 * ideal).tolist(), "etf_ideal": ideal.tolist(),
                     "classes": ["circle", "square", "triangle", "star"], "seed": 0})
    return recs


# ------------------------------------------------------------------------------------------------ the explorers
def test_augment_explorer(shapes, shown):
    from gpsviz.widgets import AugmentExplorer

    ex = AugmentExplorer(shapes, n_views=6)
    assert assert_legible(*shown[-1]) >= 9
    assert assert_page_text(ex, "augment-state")["index"] == "0"


def test_neighbour_explorer(shapes, shown):
    from gpsviz.widgets import NeighbourExplorer

    onehot = torch.nn.functional.one_hot(shapes.labels, len(shapes.classes)).float()
    ex = NeighbourExplorer(shapes, embeddings={"labels": onehot}, k=8, max_k=12)
    ex.set_state(k=12)                                           # two rows of neighbours
    for image, fig in shown:
        assert assert_legible(image, fig) >= 9
    assert assert_page_text(ex, "explorer-state")["k"] == "12"


def test_set_explorer_and_its_empty_set(shapes, shown):
    from gpsviz.positives.semantic import semantic_sets
    from gpsviz.widgets import SetExplorer

    onehot = torch.nn.functional.one_hot(shapes.labels, len(shapes.classes)).float()
    emb = onehot + 0.01 * torch.randn(onehot.shape, generator=torch.Generator().manual_seed(0))
    ex = SetExplorer(shapes, semantic_sets(shapes, prior="pixels", embedding=emb, k=8, threshold=0.9), anchor=2)
    assert ex.state["size"] > 0
    assert_legible(*shown[-1])
    assert_page_text(ex, "set-state")
    hist = shown[-1][1].axes[-1]
    assert hist.get_xlabel() == "set size (members)" and "count" in hist.get_ylabel()

    st = ex.set_state(threshold=1.0)                            # no member reaches cosine 1: the set is empty
    assert st["size"] == 0
    assert assert_legible(*shown[-1]) >= 9
    marker = assert_page_text(ex, "set-state")                  # the marker still says nan, hidden
    assert marker["size"] == "0" and marker["purity"] == "nan"
    assert "empty set (no member above the threshold" in visible_text(ex)


def test_ood_explorer(shown):
    from gpsviz.data import make_shapes
    from gpsviz.plots.uota import WEIGHT_DEFINITION
    from gpsviz.widgets import OODExplorer

    ds = make_shapes(8, seed=4, clutter=1.0)
    ex = OODExplorer(ds, {"UOTA-SwAV": _view_log()}, aug="strong")
    (views_image, views_fig), (stats_image, stats_fig) = shown[-2:]
    assert views_image is ex.views_image and stats_image is ex.stats_image
    assert assert_legible(views_image, views_fig) >= 9 and assert_legible(stats_image, stats_fig) >= 9
    texts = [t.get_text() for t in _texts(views_fig)]
    source = views_fig.axes[0]                                   # the image with the crop boxes
    numbers = sorted(int(t.get_text()) for t in source.texts)
    assert numbers == list(range(1, 9)), numbers                 # each crop box numbered by its view's rank
    renderer, area = _renderer(views_fig), source.get_window_extent()
    for t in source.texts:                                       # ... where it can be read (eight share a corner)
        e = t.get_window_extent(renderer)
        assert area.x0 - 1 <= e.x0 and e.x1 <= area.x1 + 1 and area.y0 - 1 <= e.y0 and e.y1 <= area.y1 + 1
    assert all(any(c.startswith(f"#{r}  w = ") for c in texts) for r in range(1, 9))   # ... as its caption
    assert any(WEIGHT_DEFINITION in t.replace("\n", " ") for t in texts)              # "× M" defined there
    assert "× M, 1 = uniform" in stats_fig.axes[0].get_xlabel()
    assert "chance" in stats_fig.axes[1].get_ylabel()
    page = visible_text(ex)
    assert "weight w (× M, 1 = uniform)" in page and "sum to 1 over the M views" in page
    assert "coverage (% of the object)" in page
    assert assert_page_text(ex, "ood-state")["views"] == "8"

    few = OODExplorer(ds, {"two views": _view_log(views=2)}, aug="strong", epoch=1)   # one row of views
    for image, fig in shown[-2:]:
        assert assert_legible(image, fig) >= 9
    assert sorted(int(t.get_text()) for t in shown[-2][1].axes[0].texts) == [1, 2]
    assert assert_page_text(few, "ood-state")["views"] == "2"


def test_sensitivity_explorer(shapes, shown):
    from torch import nn

    from gpsviz.augment import Augmenter
    from gpsviz.plots.cassle import DESCRIPTOR_UNITS
    from gpsviz.sensitivity import LoadedRun
    from gpsviz.widgets import SensitivityExplorer
    from gpsviz.widgets.sensitivity_explorer import SHOWN_COLUMNS

    class Head(nn.Module):
        def forward(self, h, batch=None, index=None):
            return h[:, :4]

    torch.manual_seed(0)
    pooled = LoadedRun("SimCLR", nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten()), Head(), Augmenter("strong"))
    conv = LoadedRun("CASSLE-SimCLR", nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                                   nn.Flatten()), Head(), Augmenter("strong"))
    ex = SensitivityExplorer(shapes, {"SimCLR": pooled, "CASSLE-SimCLR": conv}, n_views=6, probe_images=32)
    ex.set_state(family="crop")
    for image, fig in shown[-2:]:
        assert assert_legible(image, fig) >= 9
    fig = shown[-1][1]
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert "cosine similarity to the clean image" in labels
    assert all(DESCRIPTOR_UNITS[c] in labels for c in SHOWN_COLUMNS["crop"])
    assert assert_page_text(ex, "sensitivity-state")["family"] == "crop"


def test_probe_explorer_and_settings_never_trained(shown):
    from gpsviz.widgets import ProbeExplorer

    ex = ProbeExplorer(_probe_records(), [{"name": "raw pixels", "linear_label": 0.4}, {"name": "random init"}],
                       method="CISSL")
    assert assert_legible(*shown[-1]) >= 9
    curves = shown[-1][1].axes[0]
    assert curves.get_ylabel() == "held-out accuracy (%)"
    assert any(t.get_text().startswith("floor") for t in curves.get_legend().get_texts())
    assert_page_text(ex, "probe-state")                         # the floor without a value shows "–", not nan

    st = ex.set_state(method="SimCLR", dim=16)                   # offered by the menus, never trained
    assert st["runs"] == 0
    fig = shown[-1][1]
    assert not fig.axes                                          # a message, not an empty axes
    assert assert_legible(*shown[-1]) >= 9
    message = " ".join(t.get_text() for t in _texts(fig))
    assert "No run was trained with method SimCLR, dimension 16" in message
    assert "CISSL: 128 × 1, 16 × 1, 128 × 0.5" in message and "SimCLR: 128 × 1" in message
    marker = assert_page_text(ex, "probe-state")
    assert marker["runs"] == "0" and marker["linear"] == "nan"     # the hidden marker keeps its format
    assert "No run was trained with these settings" in visible_text(ex)


def test_reopen_hint_is_shown_with_each_explorer(shapes, monkeypatch):
    """Displaying an explorer shows a static line above it (kept in the saved notebook): re-run the cell when the
    widget is gone. It must not look like a broken widget or a failed cell to the browser tests."""
    import IPython.display

    from gpsviz.widgets import AugmentExplorer

    shown_first = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown_first.append(obj))
    bundle = AugmentExplorer(shapes, n_views=2)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    (hint,) = shown_first
    text = html_lib.unescape(re.sub("<[^>]+>", "", hint.data))
    assert "Re-run this cell" in text and "model not found" in text
    assert not BROKEN_WIDGET.search(text) and not DEFAULT_FAIL.search(text)


def test_display_scale_is_what_the_browser_shows():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(controls.FIGURE_WIDTH_IN, 3))
    assert controls.display_width(fig) == controls.MAX_FIGURE_PX and controls.display_scale(fig) == pytest.approx(1)
    fig.set_size_inches(2 * controls.FIGURE_WIDTH_IN, 3)        # too wide: shown at half its size
    assert controls.display_scale(fig) == pytest.approx(0.5)
    fig.set_size_inches(4, 3)                                   # narrower: at its nominal size
    assert controls.display_width(fig) == 384 and controls.display_scale(fig) == 1.0
    png = controls.figure_png(fig, dpi=controls.FIGURE_DPI)
    assert int.from_bytes(png[16:20], "big") == 384              # the whole figure, one pixel per CSS pixel
