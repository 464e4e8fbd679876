"""Figures of Dubois et al.'s probe conditions (notebook 06, the probe-condition explorer, ``reproduce dubois``).

Every function takes *measured* values — records of :func:`gpsviz.experiments.dubois.measure_run` (dicts with
``linear_label``, ``mlp_label``, ``invariance``, ``decodability``, ``etf_distance``, ``effective_rank``,
``label_efficiency``, ``etf_means``, ``etf_ideal``, ``dim``, ``strength``, ``method``) or features — and returns a
matplotlib Figure (or draws into ``ax``).
"""
from __future__ import annotations

import statistics
from typing import Any, Sequence

import numpy as np
import torch

from gpsviz.diagnostics import effective_rank
from gpsviz.plots.training import _plt
from gpsviz.stats import rank_correlation

__all__ = ["plot_simplex", "plot_label_efficiency", "plot_accuracy_sweep", "plot_conditions_vs_accuracy",
           "plot_condition_bars", "plot_spectra", "CONDITION_LABELS"]

#: Axis labels of the conditions (and which direction the theory calls good).
CONDITION_LABELS = {"invariance": "invariance ratio (0 = invariant) ↓", "decodability": "instance decodability ↑",
                    "etf_distance": "distance to simplex ETF ↓", "effective_rank": "effective rank ↑"}
_PROBE_STYLE = {"linear": "-", "mlp": "--"}


def _new(ax, size):
    if ax is not None:
        return ax.figure, ax
    plt = _plt()
    fig, ax = plt.subplots(figsize=size)
    return fig, ax


def plot_simplex(means: Sequence[Sequence[float]], ideal: Sequence[Sequence[float]],
                 classes: Sequence[str] | None = None, ax=None, title: str = ""):
    """Class means (C×2, from :func:`gpsviz.diagnostics.etf_view_2d`) against the ideal simplex ETF (a regular
    C-gon of radius 1): each mean is joined to its own vertex; a perfect simplex puts every dot on its vertex."""
    fig, ax = _new(ax, (4.2, 4.2))
    m, v = np.asarray(means, float), np.asarray(ideal, float)
    c = len(v)
    cols = _plt().get_cmap("tab10" if c <= 10 else "tab20")(np.arange(c) % (10 if c <= 10 else 20))
    ring = np.vstack([v, v[:1]])
    ax.plot(ring[:, 0], ring[:, 1], color="#bbbbbb", lw=1, zorder=1)
    for i in range(c):
        ax.plot([v[i, 0], m[i, 0]], [v[i, 1], m[i, 1]], color=cols[i], lw=1, alpha=0.6, zorder=2)
    ax.scatter(v[:, 0], v[:, 1], s=90, facecolors="none", edgecolors=cols, linewidths=1.5, zorder=3,
               label="ideal vertex")
    ax.scatter(m[:, 0], m[:, 1], s=40, c=cols, zorder=4, label="class mean")
    if classes is not None:                     # each name outside its vertex, pointing away from the centre
        for i, name in enumerate(classes[:c]):
            x, y = v[i]
            ha = "left" if x > 0.3 else ("right" if x < -0.3 else "center")
            va = "bottom" if y > 0.3 else ("top" if y < -0.3 else "center")
            ax.annotate(str(name), (x, y), xytext=(6 * np.sign(round(x, 1)), 6 * np.sign(round(y, 1))),
                        textcoords="offset points", ha=ha, va=va, fontsize=9, color=cols[i])
    ax.set_aspect("equal")
    lim = 1.3 * max(1.0, float(np.abs(m).max()) if m.size else 1.0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xticks([])
    ax.set_yticks([])
    for sp in ax.spines.values():               # no frame: the class names may reach past the limits
        sp.set_visible(False)
    ax.set_title(title or "class means vs the ideal simplex", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=9, frameon=False)  # below the plot
    return fig


def _curve(records: Sequence[dict[str, Any]], probe: str) -> tuple[list, list[float]]:
    """Mean over records of the label-efficiency curve of one probe: (per-class labels, accuracies)."""
    ks = [e["per_class"] for e in records[0]["label_efficiency"] if e["probe"] == probe]
    accs = [statistics.fmean(e["test_acc"] for r in records for e in r["label_efficiency"]
                             if e["probe"] == probe and e["per_class"] == k) for k in ks]
    return ks, accs


def plot_label_efficiency(records: Sequence[dict[str, Any]], ax=None, probes: Sequence[str] = ("linear", "mlp"),
                          group_by: str = "method", highlight: str | None = None, floor: float | None = None):
    """Probe accuracy against labelled images per class (1, 5, 10, 50, all), one colour per ``group_by`` value
    (mean over its records), solid = linear probe, dashed = MLP probe. ``highlight`` draws one group thicker;
    ``floor`` (an accuracy) draws a grey line. The legend (one entry per colour, per line style and the floor) sits
    below the axes, off the curves and the floor line."""
    from matplotlib.lines import Line2D

    fig, ax = _new(ax, (5.2, 3.6))
    groups: dict[Any, list] = {}
    for r in records:
        groups.setdefault(r[group_by], []).append(r)
    cmap = _plt().get_cmap("tab10")
    handles = []
    for i, (g, rs) in enumerate(groups.items()):
        lw = 2.6 if highlight is not None and str(g) == str(highlight) else 1.4
        for p in probes:
            ks, accs = _curve(rs, p)
            ax.plot(range(len(ks)), [100 * a for a in accs], _PROBE_STYLE.get(p, ":"), marker="o", ms=3,
                    color=cmap(i % 10), lw=lw)
        handles.append(Line2D([], [], color=cmap(i % 10), lw=lw, marker="o", ms=3, label=str(g)))
    handles += [Line2D([], [], color="#555555", lw=1.4, ls=_PROBE_STYLE.get(p, ":"), marker="o", ms=3,
                       label=f"{p} probe") for p in probes]
    if records:
        ks = [e["per_class"] for e in records[0]["label_efficiency"] if e["probe"] == probes[0]]
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels([str(k) for k in ks])
    if floor is not None:
        handles.append(ax.axhline(100 * floor, color="#888888", lw=1, ls=":", label=f"floor ({100 * floor:.1f} %)"))
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("label efficiency (solid: linear, dashed: MLP)", fontsize=10)
    ax.legend(handles=handles, fontsize=9, frameon=False, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.grid(alpha=0.3)
    return fig


def plot_accuracy_sweep(records: Sequence[dict[str, Any]], key: str = "dim", ax=None):
    """Linear and MLP probe accuracy (mean over seeds, min–max as a band) against ``key`` (``dim`` or
    ``strength``)."""
    fig, ax = _new(ax, (4.6, 3.4))
    xs = sorted({r[key] for r in records})
    for p, metric in (("linear", "linear_label"), ("mlp", "mlp_label")):
        vals = [[100 * r[metric] for r in records if r[key] == x] for x in xs]
        ax.plot(xs, [statistics.fmean(v) for v in vals], _PROBE_STYLE[p], marker="o", label=f"{p} probe")
        if any(len(v) > 1 for v in vals):
            ax.fill_between(xs, [min(v) for v in vals], [max(v) for v in vals], alpha=0.15)
    if key == "dim":
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([str(x) for x in xs])
    ax.set_xlabel({"dim": "representation dimension", "strength": "augmentation strength"}.get(key, key))
    ax.set_ylabel("held-out accuracy (%)")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def plot_conditions_vs_accuracy(records: Sequence[dict[str, Any]], accuracy: str = "linear_label"):
    """One panel per condition: each run's condition against its probe accuracy, Spearman ρ in the title."""
    plt = _plt()
    conds = list(CONDITION_LABELS)
    fig, axes = plt.subplots(1, len(conds), figsize=(3.4 * len(conds), 3.2))
    methods = list(dict.fromkeys(r.get("method", "") for r in records))
    cmap = plt.get_cmap("tab10")
    for ax, cond in zip(axes, conds):
        rs = [r for r in records if r.get(cond) is not None and r[cond] == r[cond]]
        for i, m in enumerate(methods):
            sel = [r for r in rs if r.get("method", "") == m]
            ax.scatter([r[cond] for r in sel], [100 * r[accuracy] for r in sel], s=22, color=cmap(i % 10), label=m)
        rho = rank_correlation([r[cond] for r in rs], [r[accuracy] for r in rs]) if len(rs) >= 3 else float("nan")
        ax.set_title(f"ρ = {rho:+.2f} ({len(rs)} runs)", fontsize=10)
        ax.set_xlabel(CONDITION_LABELS[cond], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("linear-probe accuracy (%)")
    axes[-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_condition_bars(values: dict[str, dict[str, float]], conditions: Sequence[str] | None = None):
    """One panel per condition, one bar per representation: ``values`` = ``{name: {condition: value}}`` (e.g.
    the constructed representations of :func:`gpsviz.diagnostics.constructed_representation` beside trained
    runs)."""
    plt = _plt()
    conds = list(conditions or CONDITION_LABELS)
    names = list(values)
    fig, axes = plt.subplots(1, len(conds), figsize=(3.3 * len(conds), 3.3))
    axes = np.atleast_1d(axes)
    cols = plt.get_cmap("tab10")(np.arange(len(names)) % 10)
    for ax, cond in zip(axes, conds):
        ys = [values[n].get(cond, np.nan) for n in names]
        ax.bar(range(len(names)), ys, color=cols)
        for i, y in enumerate(ys):
            if y == y:
                ax.annotate(f"{y:.2f}", (i, y), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_title(CONDITION_LABELS.get(cond, cond), fontsize=9)
    fig.tight_layout()
    return fig


def plot_spectra(features: dict[str, Any], ax=None):
    """Normalised singular-value spectra (σ_k / Σσ, log scale) of feature matrices ``{name: N×D}``, with each
    one's effective rank (RankMe) in the legend: a collapsed representation has one non-zero value."""

    fig, ax = _new(ax, (4.8, 3.4))
    for name, f in features.items():
        s = torch.linalg.svdvals(torch.as_tensor(f).double())
        p = (s / s.sum()).clamp_min(1e-12).numpy()
        ax.plot(np.arange(1, len(p) + 1), p, marker=".", label=f"{name} (rank {effective_rank(f):.1f})")
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1.2)
    ax.set_xlabel("singular value index k")
    ax.set_ylabel("σ_k / Σσ")
    ax.set_title("spectrum and effective rank", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    return fig
