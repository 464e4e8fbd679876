"""The embedding explorer's figure: 2-D maps of runs' backbone embeddings coloured by a factor, with one image
ringed in each, and below it rows of images about that point (its nearest neighbours in each embedding and in the
prior, the positives each run's loss used, the views a UOTA run recorded).

Example::

    maps = [EmbeddingMap("SimCLR", coords_a, neighbours=[4, 9]), EmbeddingMap("GPS-SimCLR", coords_b)]
    rows = [TileRow("Nearest in SimCLR's embedding", "cosine distance d",
                    [Tile(ds.images[4], "✓ 0.12", SAME_COLOUR), Tile(ds.images[9], "✗ 0.15", DIFF_COLOUR)])]
    values, names = ds.targets("colour")
    fig = plot_embedding_explorer(maps, values[:n], names, "colour", 3, ds.images[3], ["point #3", "class: star"],
                                  rows, title="first 1000 images, PCA of each run's backbone features")

The layout is computed in inches for a figure ``width`` inches wide (at most what the explorer shows at its
nominal size), so every text keeps its point size (at least 9 pt) on screen.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from gpsviz.plots.data import to_display
from gpsviz.plots.neighbours import DIFF_COLOUR, SAME_COLOUR, UNKNOWN_COLOUR
from gpsviz.plots.training import factor_colours

__all__ = ["EmbeddingMap", "Tile", "TileRow", "plot_embedding_explorer", "map_colours", "POINT_COLOUR",
           "NEUTRAL_COLOUR", "MAX_LEGEND_CLASSES"]

#: the ring around the selected point in every map, and the frame of its image
POINT_COLOUR = "#000000"
#: frame of an image that is not judged same/other class (a recorded view of the point itself)
NEUTRAL_COLOUR = "#6b6b6b"
#: a factor with more classes than this gets a colour bar instead of a legend entry per class
MAX_LEGEND_CLASSES = 10
#: characters of text per inch of line (DejaVu Sans, mixed text; a little below the average so lines fit)
_CHARS_PER_IN = {9: 13.0, 10: 11.5, 11: 10.5}
_LINE_IN = {9: 0.17, 10: 0.19, 11: 0.21}            # line height (inches) of 9, 10 and 11 pt text


@dataclass
class EmbeddingMap:
    """One map: the run's ``name``, its n×2 ``coords`` (row i = image i) and optionally the rows of the selected
    point's nearest neighbours in the full embedding (marked on the map)."""

    name: str
    coords: np.ndarray
    neighbours: Sequence[int] = ()


@dataclass
class Tile:
    """One image of a row: ``image`` (C×H×W uint8, or float in [0, 1]), its ``caption`` (one or more lines, 9 pt)
    and the ``colour`` of its frame (and caption)."""

    image: Any
    caption: str
    colour: str = NEUTRAL_COLOUR


@dataclass
class TileRow:
    """A row below the maps: a bold ``title``, a ``detail`` line (wrapped), its ``tiles`` and a ``note`` (shown in
    italics after the tiles, or alone when there are none)."""

    title: str
    detail: str = ""
    tiles: Sequence[Tile] = field(default_factory=list)
    note: str = ""


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _wrap(text: str, width_in: float, size: int) -> list[str]:
    if not text:
        return []
    return textwrap.wrap(text, max(10, int(width_in * _CHARS_PER_IN[size])), break_long_words=True,
                         break_on_hyphens=False)


def map_colours(names: Sequence[str]) -> tuple[list, bool]:
    """Draw colours of a factor's classes, and whether a legend can list them (≤ :data:`MAX_LEGEND_CLASSES`).
    Colour factors get their own colours (:func:`~gpsviz.plots.training.factor_colours`), others tab10, or
    viridis along the class index when there are too many classes for a legend."""
    plt = _plt()
    own = factor_colours(names)
    if own is not None:
        return list(own), len(names) <= MAX_LEGEND_CLASSES
    if len(names) <= MAX_LEGEND_CLASSES:
        return [plt.cm.tab10(c % 10) for c in range(len(names))], True
    cmap = plt.cm.viridis
    return [cmap(c / max(1, len(names) - 1)) for c in range(len(names))], False


def _legend_entries(n_classes: int, legend: bool, marks_neighbours: bool) -> int:
    return (n_classes if legend else 0) + 1 + int(marks_neighbours)


def plot_embedding_explorer(maps: Sequence[EmbeddingMap], values: Any, names: Sequence[str], factor: str,
                            point: int, point_image: Any, point_caption: Sequence[str], rows: Sequence[TileRow], *,
                            title: str = "", axis_name: str = "PCA", k: int | None = None, labelled: bool = True,
                            width: float = 8.9, fig=None):
    """The embedding explorer's figure, ``width`` inches wide (text ≥ 9 pt at that size).

    Args:
        maps: one or two :class:`EmbeddingMap` (drawn side by side), each n×2.
        values: int n, the factor's class of each mapped image (−1: unknown, drawn grey); ``names`` its classes.
        factor: the factor's name (legend title).
        point: row of the selected image (ringed in every map; < n).
        point_image: its image (C×H×W); ``point_caption``: lines under it (index, class, factor value).
        rows: the :class:`TileRow` s below the maps, top to bottom.
        title: heading above the maps (wrapped).
        axis_name: how the maps were made (``PCA``/``UMAP``): the axes are its components 1 and 2.
        k: how many neighbours are marked in the maps (legend text); default ``len(neighbours)``.
        labelled: whether the frames mean same/other class (else the legend says the labels are unknown).
        fig: a Figure to draw on (cleared), e.g. ``matplotlib.figure.Figure()`` outside pyplot; else a new one.

    Returns:
        The Figure.
    """
    from matplotlib.colors import to_rgba_array
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    if not 1 <= len(maps) <= 2:
        raise ValueError(f"plot_embedding_explorer: give one or two maps, got {len(maps)}")
    values = np.asarray(torch.as_tensor(values).cpu().numpy() if isinstance(values, torch.Tensor) else values)
    n = len(values)
    for m in maps:
        if np.asarray(m.coords).shape != (n, 2):
            raise ValueError(f"plot_embedding_explorer: map {m.name!r} has coordinates of shape "
                             f"{np.asarray(m.coords).shape}, expected ({n}, 2): one row per image of `values`")
    if not 0 <= int(point) < n:
        raise ValueError(f"plot_embedding_explorer: point {point} is not one of the {n} mapped images")
    point = int(point)
    names = [str(s) for s in names]
    colours, legend_classes = map_colours(names)
    marks = any(len(m.neighbours) for m in maps)
    k_marked = int(k) if k is not None else max((len(m.neighbours) for m in maps), default=0)
    W = float(width)

    # ------------------------------------------------------------------ the layout, in inches from the top
    heading = _wrap(title, W - 0.3, 11)
    y = 0.1 + len(heading) * _LINE_IN[11] + 0.08
    map_title_h = 0.32
    left, gap, right = 0.45, 0.5, 0.15
    if len(maps) == 2:
        map_w = (W - left - gap - right) / 2
        xs = [left, left + map_w + gap]
    else:
        map_w = min(5.2, W - left - right)
        xs = [left + (W - left - right - map_w) / 2]
    map_h = min(3.0, map_w * 0.78)
    map_top = y + map_title_h
    y = map_top + map_h + 0.32                                      # room for the x labels
    entries = _legend_entries(len(names), legend_classes, marks)
    ncol = max(1, min(5, entries))
    legend_h = 0.2 + 0.24 * math.ceil(entries / ncol) + 0.12
    legend_top = y
    y += legend_h
    bar_top = None
    if not legend_classes:                                           # too many classes: a colour bar
        bar_top = y + 0.05
        y = bar_top + 0.16 + 0.55
    top_h = y + 0.1

    # lower part: the point on the left, the rows on the right
    col_w = 1.55
    avail = W - col_w - 0.1
    tile_gap = 0.12
    laid: list[tuple[TileRow, list[str], list[str], list[str], int, float, int]] = []
    lower_h = 0.1
    for row in rows:
        title_lines = _wrap(row.title, avail, 10)
        detail = _wrap(row.detail, avail, 9)
        note = _wrap(row.note, avail, 9)
        n_t = len(row.tiles)
        ncols = max(1, min(n_t, int((avail + tile_gap) // (0.62 + tile_gap)))) if n_t else 0
        t = min(0.72, (avail - (ncols - 1) * tile_gap) / ncols) if ncols else 0.0
        cap_lines = max((len(tl.caption.split("\n")) for tl in row.tiles), default=0)
        h = len(title_lines) * _LINE_IN[10] + len(detail) * _LINE_IN[9] + 0.06
        if n_t:
            h += math.ceil(n_t / ncols) * (t + 0.1 + cap_lines * _LINE_IN[9] + 0.06)
        h += len(note) * _LINE_IN[9] + 0.14
        laid.append((row, title_lines, detail, note, ncols, t, cap_lines))
        lower_h += h
    point_size = 1.25
    cap = [ln for c in point_caption for ln in (_wrap(c, col_w - 0.15, 10) or [""])]
    frames = (["frames:", "✓ green = same class", "   as the point", "✗ red = other class"] if labelled
              else ["frames: labels unknown"])
    left_h = 0.3 + point_size + 0.12 + len(cap) * _LINE_IN[10] + 0.15 + len(frames) * _LINE_IN[9] + 0.1
    lower_h = max(lower_h, left_h)
    H = top_h + lower_h

    if fig is None:
        fig = _plt().figure(figsize=(W, H))
    else:
        fig.clear()
        fig.set_size_inches(W, H)

    def frac(x_in: float, y_in: float) -> tuple[float, float]:       # inches from the top-left → figure fraction
        return x_in / W, 1.0 - y_in / H

    if heading:
        fig.text(*frac(W / 2, 0.1), "\n".join(heading), ha="center", va="top", fontsize=11, linespacing=1.25)

    # ------------------------------------------------------------------ the maps
    ring = dict(marker="o", markersize=17, markerfacecolor="none", markeredgecolor=POINT_COLOUR, markeredgewidth=2.4,
                linestyle="none")
    nb_style = dict(marker="s", markersize=7, markerfacecolor="none", markeredgecolor=POINT_COLOUR,
                    markeredgewidth=1.3, linestyle="none")
    rgba = to_rgba_array([colours[int(v)] if 0 <= int(v) < len(colours) else UNKNOWN_COLOUR for v in values])
    for m, x0 in zip(maps, xs):
        x_left, y_bottom = frac(x0, map_top + map_h)
        ax = fig.add_axes((x_left, y_bottom, map_w / W, map_h / H))
        c = np.asarray(m.coords, dtype=float)
        ax.scatter(c[:, 0], c[:, 1], s=float(np.clip(3000 / n, 8, 18)), c=rgba, alpha=0.75, linewidths=0, zorder=1)
        nb = [int(i) for i in m.neighbours if 0 <= int(i) < n]
        if nb:
            ax.plot(c[nb, 0], c[nb, 1], zorder=3, **nb_style)
        halo = {**ring, "markeredgecolor": "white", "markeredgewidth": 6.0}          # readable on any colour
        ax.plot([c[point, 0]], [c[point, 1]], zorder=4, **halo)
        ax.plot([c[point, 0]], [c[point, 1]], zorder=5, **ring)
        ax.set_title(_shorten(m.name, map_w, 10), fontsize=10, fontweight="bold")
        ax.margins(0.06)                                            # a ring at the edge stays inside
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{axis_name} 1 (arbitrary units)", fontsize=9)
        ax.set_ylabel(f"{axis_name} 2 (a.u.)", fontsize=9)

    handles = []
    if legend_classes:
        for c, name in enumerate(names):
            handles.append(Line2D([], [], marker="o", markersize=7, color=colours[c], linestyle="none", label=name))
    handles.append(Line2D([], [], label=f"selected point #{point}", **{**ring, "markersize": 12}))
    if marks:
        handles.append(Line2D([], [], label=f"its {k_marked} nearest in that embedding", **nb_style))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=frac(W / 2, legend_top), ncol=ncol, fontsize=9,
               title=f"colour = {factor}" + ("" if legend_classes else f" ({len(names)} classes: colour bar below)"),
               title_fontsize=10, frameon=False, columnspacing=1.2, handletextpad=0.4, borderaxespad=0.0)
    if bar_top is not None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        bx, by = frac(W * 0.2, bar_top + 0.16)
        cax = fig.add_axes((bx, by, 0.6, 0.16 / H))
        sm = ScalarMappable(norm=Normalize(0, max(1, len(names) - 1)), cmap=_plt().cm.viridis)
        bar = fig.colorbar(sm, cax=cax, orientation="horizontal")
        bar.set_ticks([0, len(names) - 1], labels=[_shorten(names[0], 1.6, 9), _shorten(names[-1], 1.6, 9)])
        bar.ax.tick_params(labelsize=9)
        bar.set_label(f"{factor}: class index 0 … {len(names) - 1} (grey = unknown)", fontsize=9)

    # ------------------------------------------------------------------ the point and the rows
    ax = fig.add_axes((0.0, 0.0, 1.0, lower_h / H))
    ax.set_xlim(0, W)
    ax.set_ylim(lower_h, 0)
    ax.set_autoscale_on(False)
    ax.axis("off")
    gray = getattr(point_image, "shape", (3,))[0] == 1

    def tile(image: Any, x: float, yy: float, size: float, colour: str, frame: float) -> None:
        ax.add_patch(Rectangle((x - frame, yy - frame), size + 2 * frame, size + 2 * frame, facecolor=colour,
                               edgecolor="none", zorder=1))
        ax.imshow(to_display(image), extent=(x, x + size, yy + size, yy), interpolation="nearest", aspect="auto",
                  cmap="gray" if gray else None, vmin=0, vmax=255, zorder=2)

    ax.text(0.12, 0.1, "selected point", fontsize=10, fontweight="bold", va="top", color=POINT_COLOUR)
    tile(point_image, 0.15, 0.38, point_size, POINT_COLOUR, 0.05)
    yy = 0.38 + point_size + 0.12
    ax.text(0.12, yy, "\n".join(cap), fontsize=10, va="top", linespacing=1.2)
    yy += len(cap) * _LINE_IN[10] + 0.15
    if labelled:
        for line, colour in zip(frames, ("#333333", SAME_COLOUR, SAME_COLOUR, DIFF_COLOUR)):
            ax.text(0.12, yy, line, fontsize=9, va="top", color=colour)
            yy += _LINE_IN[9]
    else:
        ax.text(0.12, yy, frames[0], fontsize=9, va="top", color=UNKNOWN_COLOUR)

    yy = 0.1
    x0 = col_w
    for row, title_lines, detail, note, ncols, t, cap_lines in laid:
        ax.text(x0, yy, "\n".join(title_lines), fontsize=10, fontweight="bold", va="top", linespacing=1.15)
        yy += len(title_lines) * _LINE_IN[10]
        if detail:
            ax.text(x0, yy, "\n".join(detail), fontsize=9, va="top", color="#333333", linespacing=1.15)
            yy += len(detail) * _LINE_IN[9]
        yy += 0.06
        for j, tl in enumerate(row.tiles):
            r, c = divmod(j, ncols)
            x = x0 + 0.04 + c * (t + tile_gap)
            ty = yy + 0.04 + r * (t + 0.1 + cap_lines * _LINE_IN[9] + 0.06)
            tile(tl.image, x, ty, t, tl.colour, 0.04)
            ax.text(x + t / 2, ty + t + 0.07, tl.caption, fontsize=9, ha="center", va="top", color=tl.colour,
                    linespacing=1.1)
        if row.tiles:
            yy += math.ceil(len(row.tiles) / ncols) * (t + 0.1 + cap_lines * _LINE_IN[9] + 0.06)
        if note:
            ax.text(x0, yy, "\n".join(note), fontsize=9, va="top", style="italic", color="#333333",
                    linespacing=1.15)
            yy += len(note) * _LINE_IN[9]
        yy += 0.14
    return fig


def _shorten(text: str, width_in: float, size: int) -> str:
    """``text`` cut with an ellipsis to fit ``width_in`` inches at ``size`` pt."""
    most = max(4, int(width_in * _CHARS_PER_IN[size]))
    return text if len(text) <= most else text[: most - 1] + "…"
