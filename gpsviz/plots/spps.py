"""Teaching figures of SPPS's semantic positive sets: an anchor's set, the set-size distribution, the purity–size
trade-off over thresholds, and GPS's *replaced* partner beside SPPS's *added* set on the same anchors.

Example::

    src = semantic_sets(train_ds, prior="hog", k=4, threshold=0.9)        # gpsviz.positives.semantic
    rep = src.report()
    plot_semantic_set(train_ds, 17, rep.members[17], rep.sims[17], threshold=rep.threshold)
    plot_set_sizes(rep.sizes, k=rep.k)
    plot_purity_size({"hog": src.purity_size_curve()})
    plot_gps_vs_spps(train_ds, anchors, gps_source, src)                  # both prepared on the same prior
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from gpsviz.plots.neighbours import DIFF_COLOUR, SAME_COLOUR, plot_neighbours


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_semantic_set(dataset, anchor: int, members: Sequence[int] | torch.Tensor, sims=None, *,
                      threshold: float | None = None, ax=None, fig=None, ncols: int = 8, title: str | None = None):
    """An anchor beside the members of its semantic set, framed green (same class) or red (other class).

    Args:
        dataset: ImageDataset (``images`` uint8 N×C×H×W, ``labels`` int64 N, ``classes``).
        anchor: row of the anchor.
        members: int64 k, the set's rows (``-1`` entries, padding of a smaller set, are dropped).
        sims: float k, their cosine similarities to the anchor (same padding), or None.
        threshold: the cosine threshold the set was cut at (shown in the title).
        ax / fig / ncols: as in :func:`gpsviz.plots.plot_neighbours`.
    Returns the Figure (an empty set draws the anchor alone and says so)."""
    m = torch.as_tensor(members).reshape(-1).long()
    keep = m >= 0
    m = m[keep]
    labels = torch.as_tensor(dataset.labels)
    same = int((labels[m] == labels[int(anchor)]).sum()) if m.numel() else 0
    if title is None:
        cut = "" if threshold is None else f" (cosine ≥ {threshold:.3f})"
        title = (f"anchor #{anchor}: semantic set of {m.numel()}{cut}, {same}/{m.numel()} same class"
                 if m.numel() else f"anchor #{anchor}: empty set{cut} — SPPS adds views of the anchor itself")
        if sims is not None and m.numel():
            s = [f"{float(v):.3f}" for v in torch.as_tensor(sims).reshape(-1)[keep]]
            title += "\ncos: " + "\n".join(" ".join(s[i:i + 10]) for i in range(0, len(s), 10))   # 10 a line
    fig = plot_neighbours(dataset, int(anchor), m, None, ax=ax, fig=fig, ncols=ncols, title=title)
    if ax is not None:
        ax.set_anchor("W")                                      # the set starts at the left edge of its panel
    return fig


def plot_set_sizes(sizes: torch.Tensor | np.ndarray, k: int | None = None, *, ax=None, highlight: int | None = None,
                   title: str | None = None):
    """Histogram of set sizes (how many images have a set of 0, 1, …, k members).

    Args:
        sizes: int N set sizes. k: the largest possible size (default: max of ``sizes``).
        highlight: a size to draw in a darker colour (e.g. the current anchor's).
    Returns the Figure."""
    plt = _plt()
    s = torch.as_tensor(sizes).long().reshape(-1)
    k = int(s.max()) if k is None and s.numel() else int(k or 0)
    counts = torch.bincount(s, minlength=k + 1)[: k + 1].numpy()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 3.2))
    fig = ax.figure
    colours = ["#4a78b5" if i != highlight else "#1b3a66" for i in range(k + 1)]
    ax.bar(np.arange(k + 1), counts, color=colours, width=0.8)
    for i, c in enumerate(counts):
        ax.text(i, c, str(int(c)), ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, max(1, int(counts.max()) if counts.size else 1) * 1.12)          # room for the counts
    ax.set_xticks(np.arange(k + 1))
    ax.set_xlabel("set size (members)")
    ax.set_ylabel("images (count)")
    mean = float(s.float().mean()) if s.numel() else float("nan")
    ax.set_title(title or f"set sizes: mean {mean:.2f}, empty {float((s == 0).float().mean()):.0%}", fontsize=10)
    ax.grid(axis="y", alpha=0.25)
    return fig


def plot_purity_size(curves: Mapping[str, Mapping[str, Sequence[float]]], *, chance: float | None = None,
                     marks: Mapping[str, float] | None = None, axes=None):
    """The purity–size trade-off of semantic sets, one line per prior.

    Args:
        curves: ``{name: {"threshold": [...], "purity": [...], "mean_size": [...]}}`` (from
            :func:`gpsviz.positives.semantic.purity_size_curve`).
        chance: purity of random members (e.g. 1 / classes), dotted.
        marks: ``{name: threshold}`` to mark the threshold in use on each curve.
        axes: two Axes to draw into; else a new 1×2 figure.
    Left: purity and mean set size against the threshold. Right: purity against mean set size (the trade-off:
    a higher threshold gives purer, smaller sets). Returns the Figure."""
    plt = _plt()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.9))
    ax1, ax2 = axes
    fig = ax1.figure
    twin = ax1.twinx()
    for i, (name, c) in enumerate(curves.items()):
        col = plt.cm.tab10(i % 10)
        t, p, s = (np.asarray(c[key], dtype=float) for key in ("threshold", "purity", "mean_size"))
        ax1.plot(t, p, "-o", color=col, markersize=3, label=f"{name}: purity")
        twin.plot(t, s, "--", color=col, label=f"{name}: mean size")
        ax2.plot(s, p, "-o", color=col, markersize=3, label=name)
        if marks and name in marks:
            j = int(np.argmin(np.abs(t - float(marks[name]))))
            ax2.scatter([s[j]], [p[j]], s=90, facecolor="none", edgecolor=col, linewidth=2, zorder=5)
            ax2.annotate(f"t={t[j]:.3f}", (s[j], p[j]), textcoords="offset points", xytext=(6, -12), fontsize=8)
    if chance is not None:
        for ax in (ax1, ax2):
            ax.axhline(chance, color="0.4", linestyle=":", linewidth=1.2)
    ax1.set_xlabel("cosine threshold")
    ax1.set_ylabel("set purity (solid)")
    twin.set_ylabel("mean set size (dashed)")
    ax1.set_ylim(0, 1.03)
    ax1.set_title("raising the threshold: purer, smaller sets", fontsize=10)
    ax1.grid(alpha=0.25)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = twin.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, fontsize=7, frameon=False, loc="lower left")
    ax2.set_xlabel("mean set size (members per image)")
    ax2.set_ylabel("set purity")
    ax2.set_ylim(0, 1.03)
    ax2.set_title("purity–size trade-off", fontsize=10)
    ax2.grid(alpha=0.25)
    ax2.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_gps_vs_spps(dataset, anchors: Sequence[int] | torch.Tensor | None, gps, spps, generator=None, *,
                     tile_inches: float = 1.0):
    """GPS *replaces* the partner, SPPS *adds* a set: for each anchor two rows, from the sources' own plans.

    Args:
        dataset: ImageDataset.
        anchors: int64 A, rows of the anchors; None: the first three images whose set is not empty and the first
            whose set is empty (both cases SPPS meets).
        gps: a prepared :class:`~gpsviz.positives.NeighbourPositives` (its ``plan`` gives [anchor, partner]).
        spps: a prepared :class:`~gpsviz.positives.SemanticSetPositives` on the same prior.
        generator: torch.Generator for the sources' random draws.
    Row "GPS": the images whose views form the anchor's positive pair (the partner replaces the anchor's second
    view). Row "SPPS": the anchor twice (its own augmented pair, kept) then every member of its set (the batch
    samples ``members`` of them per step). Frames: green same class, red other class. Returns the Figure."""
    plt = _plt()
    rep = spps.report()
    if anchors is None:
        full, empty = (rep.sizes > 0).nonzero().flatten(), (rep.sizes == 0).nonzero().flatten()
        anchors = torch.cat([full[:3], empty[:1]])
    anchors = torch.as_tensor(anchors).long().reshape(-1)
    gplan = gps.plan(anchors, generator=generator)
    a = len(anchors)
    width = 2 + max(1 + rep.k, 1)
    fig, axes = plt.subplots(2 * a, 1, figsize=(width * tile_inches * 1.35, 2 * a * tile_inches * 1.6 + 0.3),
                             squeeze=False)
    for i, anc in enumerate(anchors.tolist()):
        partner = gplan.rows[(gplan.instance_ids == i) & (gplan.rows != anc)]
        partner = partner[:1] if partner.numel() else torch.tensor([anc])
        plot_neighbours(dataset, anc, partner, None, ax=axes[2 * i, 0], ncols=width,
                        title=f"GPS: positive pair of anchor #{anc} = [anchor, neighbour #{int(partner[0])}] "
                              "(the neighbour REPLACES the second view)")
        axes[2 * i, 0].set_anchor("W")
        m = rep.members[anc]
        m = m[m >= 0]
        same = int((dataset.labels[m] == dataset.labels[anc]).sum()) if m.numel() else 0
        plot_neighbours(dataset, anc, torch.cat([torch.tensor([anc]), m]), None, ax=axes[2 * i + 1, 0],
                        ncols=width, title=f"SPPS: anchor #{anc}'s own pair KEPT + its set of {m.numel()} "
                                           f"({same} same class) ADDED as further positives")
        axes[2 * i + 1, 0].set_anchor("W")
    fig.tight_layout()
    return fig


def plot_method_comparison(frame, metric: str = "linear %", *, ax=None, title: str | None = None):
    """Horizontal bars of ``metric`` per method; rows whose method ends in "(floor)" become dashed vertical lines.

    Args:
        frame: a pandas DataFrame (or list of dicts) with a ``method`` column and ``metric`` (percent), e.g.
            ``gpsviz.experiments.spps.notebook_runs(...).table``.
    Returns the Figure."""
    plt = _plt()
    rows = frame.to_dict("records") if hasattr(frame, "to_dict") else list(frame)
    floors = [r for r in rows if str(r["method"]).endswith("(floor)")]
    bars = [r for r in rows if r not in floors]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(bars) + 1.4))
    fig = ax.figure
    ys = np.arange(len(bars))[::-1]
    vals = [float(r[metric]) for r in bars]
    ax.barh(ys, vals, color=[plt.cm.tab10(i % 10) for i in range(len(bars))], height=0.6)
    for y, v in zip(ys, vals):
        ax.text(v + 0.5, y, f"{v:.1f}", va="center", fontsize=9)
    ax.set_yticks(ys, [str(r["method"]) for r in bars])
    for j, r in enumerate(floors):
        ax.axvline(float(r[metric]), color="0.3", linestyle=("--", ":")[j % 2], linewidth=1.3,
                   label=f"{r['method']}: {float(r[metric]):.1f}")
    ax.set_xlim(0, 105)
    ax.set_xlabel(metric)
    ax.set_title(title or f"{metric} by method (lines: floors)", fontsize=10)
    if floors:
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(axis="x", alpha=0.25)
    fig.tight_layout()
    return fig


__all__ = ["plot_method_comparison", "plot_semantic_set", "plot_set_sizes", "plot_purity_size", "plot_gps_vs_spps", "SAME_COLOUR",
           "DIFF_COLOUR"]
