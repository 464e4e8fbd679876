"""Teaching figures of GPS-SSL's prior space: an anchor beside its nearest neighbours, distance histograms of
same-class vs other-class candidates, and positive purity against k.

Example::

    dist, idx = knn_search(emb, emb, k=8, exclude_self=True)          # N×8 squared L2, N×8 indices
    fig = plot_neighbours(ds, 17, idx[17], dist[17], title="prior: hog")
    same = ds.labels[idx] == ds.labels[:, None]                       # N×8 bool
    plot_distance_histogram(dist, same)
    plot_purity_curves({"pixels": purity_curve(px, ds.labels), "hog": purity_curve(h, ds.labels)})
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch

from gpsviz.plots.data import to_display

#: border colours: same class as the anchor / different class / label unknown / the anchor itself
SAME_COLOUR = "#1a9641"
DIFF_COLOUR = "#d7191c"
UNKNOWN_COLOUR = "#8c8c8c"
ANCHOR_COLOUR = "#2b3a8c"


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _class_name(dataset, label: int) -> str:
    if label < 0:
        return "unlabelled"
    classes = getattr(dataset, "classes", None) or []
    return str(classes[label]) if label < len(classes) else str(label)


def mosaic_size(k: int, ncols: int = 8, distances: bool = True) -> tuple[float, float]:
    """(width, height) of :func:`plot_neighbours`'s mosaic of ``k`` neighbours in data units (a neighbour tile is
    1×1; the title is not included): a figure of ``width × t`` inches shows tiles ``t`` inches wide.
    ``distances``: whether the captions carry a distance line."""
    k = max(0, int(k))
    ncols = max(1, min(int(ncols), max(k, 1)))
    nrows = max(1, math.ceil(k / ncols))
    cap_h = 0.62 if distances else 0.4
    a_size = 1.4 if nrows == 1 else min(2.0, 1.0 + 0.6 * (nrows - 1))
    width = a_size + 0.55 + ncols * 1.26
    return width, max(nrows * (1.0 + cap_h), a_size + cap_h) + 0.05


def plot_neighbours(dataset, anchor: int, indices: Sequence[int] | torch.Tensor,
                    distances: Sequence[float] | torch.Tensor | None = None, *, ax=None, fig=None,
                    ncols: int = 8, tile_inches: float = 1.25, title: str | None = None,
                    dpi: float | None = None, max_width: float | None = None):
    """Draw an anchor image beside its neighbours, each framed green (same class) or red (other class).

    Args:
        dataset: an ImageDataset (``images`` uint8 N×C×H×W, ``labels`` int64 N, ``classes``).
        anchor: row index of the anchor.
        indices: the neighbours' row indices, k (nearest first).
        distances: their distances to the anchor, k (e.g. squared L2 in the prior space), or None.
        ax: draw into this Axes (one mosaic in one Axes, so a figure can hold one row per prior); else a new
            pyplot figure is made -- or ``fig`` is cleared and used -- sized to the number of neighbours.
        fig: a Figure to draw on when ``ax`` is None (e.g. ``matplotlib.figure.Figure()`` outside pyplot).
        ncols: neighbours per row.
        tile_inches: size of one neighbour in a new figure.
        title: Axes title; default says the anchor, its class and the neighbours' purity.
        max_width: cap on a new figure's width (inches): the tiles shrink to fit, the text keeps its size
            (captions 9.5 pt, title 12 pt), so a figure shown at its nominal width stays legible.

    Returns:
        The matplotlib Figure. Each neighbour's caption gives its class, a ✓/✗ (same as the colour, for readers
        who do not tell red from green) and its distance.
    """
    from matplotlib.patches import Rectangle

    idx = [int(i) for i in torch.as_tensor(indices).reshape(-1).tolist()]
    dist = None if distances is None else [float(d) for d in torch.as_tensor(distances).reshape(-1).tolist()]
    if dist is not None and len(dist) != len(idx):
        raise ValueError(f"plot_neighbours: {len(idx)} indices but {len(dist)} distances")
    n = len(dataset.labels)
    if not 0 <= int(anchor) < n or any(not 0 <= i < n for i in idx):
        raise ValueError(f"plot_neighbours: indices must lie in [0, {n}); anchor={anchor}, indices={idx}")
    anchor = int(anchor)
    k = len(idx)
    ncols = max(1, min(int(ncols), max(k, 1)))
    nrows = max(1, math.ceil(k / ncols))

    # layout in data units: a neighbour tile is 1×1, its caption sits below it
    cap_h = 0.62 if dist is not None else 0.4
    row_h = 1.0 + cap_h
    a_size = 1.4 if nrows == 1 else min(2.0, 1.0 + 0.6 * (nrows - 1))   # the anchor is drawn larger
    x0 = a_size + 0.55                                                   # first neighbour column
    gap = 0.26
    width, height = mosaic_size(k, ncols, dist is not None)

    if ax is None:
        if max_width is not None:
            tile_inches = min(tile_inches, max_width / width)
        title_in = 0.25 + 0.2 * (title.count("\n") + 1 if title else 1)       # room for the title's lines
        size = (max(4.0, width * tile_inches), height * tile_inches + title_in)
        if fig is None:
            fig = _plt().figure(figsize=size, dpi=dpi)
        else:
            fig.clear()
            fig.set_size_inches(*size)
        ax = fig.add_axes((0.005, 0.005, 0.99, 0.99 - (title_in - 0.05) / size[1]))
    fig = ax.figure
    ax.set_xlim(-0.12, width)
    ax.set_ylim(height, -0.12)
    ax.set_aspect("equal")
    ax.axis("off")

    labels = torch.as_tensor(dataset.labels)
    a_lab = int(labels[anchor])
    gray = dataset.images.shape[1] == 1

    def tile(i: int, x: float, y: float, size: float, colour: str, frame: float):
        # the frame is a filled square behind the image, ``frame`` data units wider on each side
        ax.add_patch(Rectangle((x - frame, y - frame), size + 2 * frame, size + 2 * frame, facecolor=colour,
                               edgecolor="none", zorder=1))
        ax.imshow(to_display(dataset.images[i]), extent=(x, x + size, y + size, y), interpolation="nearest",
                  cmap="gray" if gray else None, vmin=0, vmax=255, zorder=2)

    tile(anchor, 0.0, 0.0, a_size, ANCHOR_COLOUR, 0.05)
    ax.text(a_size / 2, a_size + 0.12, f"anchor #{anchor}\n{_class_name(dataset, a_lab)}", ha="center",
            va="top", fontsize=10, fontweight="bold", color=ANCHOR_COLOUR)

    same = 0
    counted = 0
    for j, i in enumerate(idx):
        r, c = divmod(j, ncols)
        x, y = x0 + c * (1.0 + gap), r * row_h
        lab = int(labels[i])
        if lab < 0 or a_lab < 0:
            colour, mark = UNKNOWN_COLOUR, "?"
        elif lab == a_lab:
            colour, mark = SAME_COLOUR, "✓"
            same += 1
            counted += 1
        else:
            colour, mark = DIFF_COLOUR, "✗"
            counted += 1
        tile(i, x, y, 1.0, colour, 0.075)
        cap = f"{mark} {_class_name(dataset, lab)}"
        if dist is not None:
            cap += f"\nd={dist[j]:.3g}"
        ax.text(x + 0.5, y + 1.1, cap, ha="center", va="top", fontsize=9.5, color=colour,
                fontweight="bold" if colour == DIFF_COLOUR else "normal")
    if title is None:
        pur = f"{same}/{counted} same class" if counted else "no labels"
        title = f"anchor #{anchor} ({_class_name(dataset, a_lab)}) and its {k} nearest neighbours: {pur}"
    ax.set_title(title, fontsize=12, loc="left")
    return fig


def plot_distance_histogram(distances: torch.Tensor | np.ndarray, same_class_mask: torch.Tensor | np.ndarray,
                            *, bins: int = 40, ax=None, title: str | None = None, log_x: bool = False,
                            xlabel: str = "squared L2 distance in the prior space"):
    """Histograms of prior distances to same-class vs other-class candidates.

    Args:
        distances: float, any shape (e.g. N×k from ``knn_search``, or N×N' to random candidates).
        same_class_mask: bool, same shape: candidate has the anchor's class.
        bins: histogram bins (shared by both groups).
        ax: draw into this Axes; else a new figure.
        log_x: logarithmic distance axis (for heavy-tailed distances).

    Returns:
        The Figure. Both histograms are densities (groups of different size compare), with their medians marked.
    """
    plt = _plt()
    d = torch.as_tensor(distances).detach().float().reshape(-1).cpu().numpy()
    m = torch.as_tensor(same_class_mask).detach().bool().reshape(-1).cpu().numpy()
    if d.shape != m.shape:
        raise ValueError(f"plot_distance_histogram: {d.size} distances but {m.size} mask entries")
    keep = np.isfinite(d)
    d, m = d[keep], m[keep]
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.9))
    fig = ax.figure
    if d.size == 0:
        ax.text(0.5, 0.5, "no finite distances", ha="center", va="center", transform=ax.transAxes)
        return fig
    lo, hi = float(d.min()), float(d.max())
    if log_x:
        lo = max(lo, float(d[d > 0].min()) if (d > 0).any() else 1e-6)
        edges = np.geomspace(lo, max(hi, lo * 1.0001), bins + 1)
        ax.set_xscale("log")
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    for sel, colour, name in ((m, SAME_COLOUR, "same class"), (~m, DIFF_COLOUR, "other class")):
        if sel.any():
            ax.hist(d[sel], bins=edges, density=True, alpha=0.3, color=colour)
            ax.hist(d[sel], bins=edges, density=True, histtype="step", linewidth=2, color=colour,
                    label=f"{name} (n={int(sel.sum())}, median {np.median(d[sel]):.3g})")
            ax.axvline(float(np.median(d[sel])), color=colour, linestyle="--", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    share = float(m.mean())
    ax.set_title(title or f"Prior distances to candidates ({share:.0%} share the anchor's class)", fontsize=11)
    ax.legend(fontsize=9, frameon=False)
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def plot_purity_curves(curves: Mapping[str, Mapping[int, float]], *, ax=None, title: str | None = None,
                       chance: float | None = None, log_x: bool = True):
    """Positive purity against k, one line per prior.

    Args:
        curves: ``{prior name: {k: purity}}`` (e.g. from :func:`gpsviz.purity.purity_curve`).
        ax: draw into this Axes; else a new figure.
        chance: purity of random candidates (e.g. 1 / number of classes), drawn as a dotted line.
        log_x: logarithmic k axis.

    Returns:
        The Figure.
    """
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    fig = ax.figure
    all_k: set[int] = set()
    # the oracle (labels) is drawn last, dashed with hollow markers, so a prior as pure as it stays visible under it
    order = sorted(curves.items(), key=lambda item: item[0] == "oracle")
    for i, (name, curve) in enumerate(order):
        ks = sorted(int(k) for k in curve)
        ys = [float(curve[k]) for k in ks]
        all_k.update(ks)
        oracle = name == "oracle"
        ax.plot(ks, ys, marker="o", linewidth=1.5 if oracle else 2, markersize=7 if oracle else 5,
                linestyle="--" if oracle else "-", markerfacecolor="none" if oracle else None,
                label=f"{name} (labels: the upper bound)" if oracle else str(name), color=plt.cm.tab10(i % 10),
                zorder=3 if oracle else 2)
    if chance is not None:
        ax.axhline(float(chance), color="0.4", linestyle=":", linewidth=1.5, label=f"chance ({chance:.2f})")
    if log_x and all_k and min(all_k) > 0:
        ax.set_xscale("log")
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

        ax.xaxis.set_major_locator(FixedLocator(sorted(all_k)))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("k (number of nearest neighbours, anchor excluded)")
    ax.set_ylabel("positive purity (share with the anchor's class)")
    ax.set_title(title or "Positive purity of each prior's k nearest neighbours", fontsize=11)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def plot_ball_sizes(sizes: Mapping[str, torch.Tensor | np.ndarray], *, ax=None, title: str | None = None):
    """Histograms of how many candidates each anchor's ball holds (GPS with a ``radius``), one per source, on a
    log count axis: a global τ gives dense regions many candidates and sparse ones none.

    ``sizes``: name → int N candidate counts (``NeighbourPositives.counts``). Returns the Figure."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.4))
    for i, (name, c) in enumerate(sizes.items()):
        ax.hist(np.asarray(c), bins=50, alpha=0.6, label=str(name), color=plt.cm.tab10(i % 10))
    ax.set_xlabel("candidates in the anchor's ball (images)")
    ax.set_ylabel("anchors (count, log scale)")
    ax.set_yscale("log")
    ax.set_title(title or "GPS with the adaptive radius: candidates per anchor", fontsize=11)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=9)
    ax.figure.tight_layout()
    return ax.figure


def plot_purity_vs_accuracy(points: Sequence[tuple[str, float, float]], *, ax=None, k: int | None = None,
                            title: str | None = None):
    """Downstream accuracy against the prior's purity: ``points`` = (prior name, purity in [0, 1], accuracy in
    %), one labelled dot each. Returns the Figure."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, (name, pur, acc) in enumerate(points):
        ax.scatter(pur, acc, s=45, color=plt.cm.tab10(i % 10), label=str(name))
        ax.annotate(str(name), (pur, acc), textcoords="offset points", xytext=(5, 3), fontsize=9)
    ax.set_xlabel(f"prior purity@{k}" if k else "prior purity (share of neighbours with the anchor's class)")
    ax.set_ylabel("GPS-SimCLR linear accuracy (%)")
    ax.set_title(title or "Does a purer prior give better features?", fontsize=11)
    ax.grid(alpha=0.3)
    ax.figure.tight_layout()
    return ax.figure


__all__ = ["plot_neighbours", "mosaic_size", "plot_distance_histogram", "plot_purity_curves", "plot_ball_sizes",
           "plot_purity_vs_accuracy"]
