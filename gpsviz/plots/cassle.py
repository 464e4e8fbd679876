"""Figures of CASSLE's analyses (notebook 05, ``reproduce cassle``, the sensitivity explorer).

Inputs are the rows of :mod:`gpsviz.sensitivity`: ``sensitivity`` / ``strength_sweep`` rows
``{"run", "family", "strength", "level", "similarity", "std"}`` and ``param_prediction`` results.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from gpsviz.features import DEFAULT_MEAN, DEFAULT_STD, unnormalize

__all__ = ["plot_sensitivity", "plot_strength_sweep", "plot_r2", "plot_probe_comparison",
           "plot_sensitivity_bars", "plot_explorer", "DESCRIPTOR_UNITS"]

LEVEL_STYLE = {"backbone": "-", "projector": "--"}


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _runs(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["run"] for r in rows))


def plot_sensitivity(rows: Sequence[dict[str, Any]], title: str | None = None, fig: Any = None):
    """Two panels (backbone, projector): per augmentation family, one bar per run of the mean clean-vs-view
    cosine similarity (± std over views). Lower = the feature still records that augmentation."""
    plt = _plt()
    runs = _runs(rows)
    families = list(dict.fromkeys(r["family"] for r in rows))
    if fig is None:
        fig = plt.figure(figsize=(max(7.0, 1.4 * len(families) * max(1, len(runs)) * 0.6 + 4), 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / max(1, len(runs))
    lo = min([r["similarity"] - r.get("std", 0) for r in rows] + [1.0])
    for ax, level in zip(axes, ("backbone", "projector")):
        for j, run in enumerate(runs):
            xs, ys, es = [], [], []
            for i, f in enumerate(families):
                r = next((r for r in rows if r["run"] == run and r["family"] == f and r["level"] == level), None)
                if r is None:
                    continue
                xs.append(i + (j - (len(runs) - 1) / 2) * width)
                ys.append(r["similarity"])
                es.append(r.get("std", 0.0))
            ax.bar(xs, ys, width, yerr=es, capsize=2, color=plt.cm.tab10(j % 10), label=run)
        ax.set_xticks(range(len(families)), families)
        ax.set_title(f"at the {level}")
        ax.set_ylim(max(-1.0, lo - 0.05), 1.01)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("cos(clean, augmented view)")
    axes[1].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_strength_sweep(rows: Sequence[dict[str, Any]], title: str | None = None, ax: Any = None):
    """Clean-vs-view similarity against the family's strength: one colour per run, solid = backbone,
    dashed = projector."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    for j, run in enumerate(_runs(rows)):
        for level in ("backbone", "projector"):
            rs = sorted((r for r in rows if r["run"] == run and r["level"] == level), key=lambda r: r["strength"])
            if not rs:
                continue
            ax.plot([r["strength"] for r in rs], [r["similarity"] for r in rs], LEVEL_STYLE[level], marker="o",
                    ms=3, color=plt.cm.tab10(j % 10), label=f"{run} · {level}")
    fam = next(iter(dict.fromkeys(r["family"] for r in rows)), "")
    ax.set_xlabel(f"{fam} strength (0 = identity, 1 = the training preset)")
    ax.set_ylabel("cos(clean, augmented view)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_r2(results: Mapping[str, dict[str, Any]], title: str | None = None):
    """Bars of the held-out R² per descriptor column (one colour per run); columns the augmentation never
    varies (NaN) are left out."""
    plt = _plt()
    names = list(results)
    cols = [c for c in next(iter(results.values()))["r2"]
            if any(not math.isnan(results[n]["r2"][c]) for n in names)]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(cols) * max(1, len(names)) * 0.6 + 3), 3.6))
    width = 0.8 / max(1, len(names))
    for j, n in enumerate(names):
        xs = np.arange(len(cols)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, [results[n]["r2"][c] for c in cols], width, color=plt.cm.tab10(j % 10),
               label=f"{n} (mean {results[n]['r2_mean']:.2f})")
    ax.set_xticks(range(len(cols)), cols, rotation=35, ha="right")
    ax.set_ylabel("held-out R² (ridge probe)")
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylim(min(-0.1, ax.get_ylim()[0]), 1.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_probe_comparison(df, tasks: Sequence[str] = ("linear_label", "linear_colour", "knn_colour"),
                          title: str | None = None):
    """Grouped bars (%) of the task probes per method (rows of a DataFrame with a ``method`` column and one
    column per task, e.g. a ``notebook_runs(...).table``); a missing value (NaN) draws no bar."""
    plt = _plt()
    tasks = [t for t in tasks if t in df.columns]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(df) + 2), 3.8))
    width = 0.8 / max(1, len(tasks))
    for j, t in enumerate(tasks):
        xs = np.arange(len(df)) + (j - (len(tasks) - 1) / 2) * width
        bars = ax.bar(xs, df[t].to_numpy(), width, label=t.replace("_", " "), color=plt.cm.Set2(j % 8))
        for b, y in zip(bars, df[t].to_numpy()):
            if np.isfinite(y):                      # a target the method was not probed on has no bar
                ax.text(b.get_x() + b.get_width() / 2, y + 1, f"{y:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(df)), df["method"], rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 128)                         # headroom: the legend sits above the tallest bar's label
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=len(tasks), loc="upper center")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_sensitivity_bars(rows: Sequence[dict[str, Any]], families: Sequence[str] = ("crop", "colour", "grayscale"),
                          prefix: str = "sens"):
    """:func:`plot_sensitivity` of ``reproduce cassle``'s rows (keys ``<prefix>_<level>_<family>``), averaged
    over the seeds of each method."""
    out = []
    names = list(dict.fromkeys(r["name"] for r in rows if f"{prefix}_backbone_{families[0]}" in r))
    for n in names:
        rs = [r for r in rows if r["name"] == n and f"{prefix}_backbone_{families[0]}" in r]
        for f in families:
            for level in ("backbone", "projector"):
                v = np.array([r[f"{prefix}_{level}_{f}"] for r in rs])
                out.append({"run": n, "family": f, "level": level, "similarity": float(v.mean()),
                            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0})
    return plot_sensitivity(out, title="clean vs augmented view (mean ± std over seeds)")


#: What each descriptor column (:data:`gpsviz.augment.DESCRIPTOR_NAMES`) measures, as an axis label with its unit.
DESCRIPTOR_UNITS = {
    "centre_y": "crop centre y (fraction of height)", "centre_x": "crop centre x (fraction of width)",
    "height": "crop height (fraction)", "width": "crop width (fraction)",
    "brightness": "(factor − 1) / jitter range", "contrast": "(factor − 1) / jitter range",
    "saturation": "(factor − 1) / jitter range", "hue_cos": "cos 2πh − 1 (h: shift, turns)",
    "hue_sin": "sin 2πh (h: shift, turns)", "mean_diff_0": "mean change (0–1 scale)",
    "mean_diff_1": "mean change (0–1 scale)", "mean_diff_2": "mean change (0–1 scale)",
    "blur_sigma": "blur σ (pixels)", "grayscale": "grayscale (0 = no, 1 = yes)",
}


def plot_explorer(views, names: Sequence[str], sims: Mapping[str, Mapping[str, Sequence[float]]],
                  params_true: Sequence[Sequence[float]], params_pred: Mapping[str, Sequence[Sequence[float]]],
                  columns: Sequence[str], fig: Any = None, title: str | None = None, mean=None, std=None,
                  width: float = 8.9):
    """The sensitivity explorer's figure, ``width`` inches wide (every text ≥ 9 pt at that size): the clean image
    and its numbered views (top), the per-view cosine similarity to the clean image at backbone (solid) and
    projector (dashed) for each run (middle), and one small panel per descriptor column of ``columns`` with its
    unit (:data:`DESCRIPTOR_UNITS`): the true value per view (open black circle) vs the value a ridge probe on each
    run's backbone predicts (filled circle, the run's colour). Every marker and line is in a legend.

    ``views``: float normalised (V+1)×C×H×W, the clean image first. ``sims[run][level]``: V floats.
    ``params_true``: V × len(columns); ``params_pred[run]``: V × len(columns)."""
    import matplotlib.cm as cm
    from matplotlib.lines import Line2D

    if fig is None:
        fig = _plt().figure()
    fig.clear()
    nv = views.shape[0] - 1
    tile = width / (nv + 1)
    fig.set_size_inches(width, tile + 0.45 + 3.0 + 2.9 + (0.45 if title else 0.0))
    fig.set_layout_engine("constrained")
    top, mid, bottom = fig.subfigures(3, 1, height_ratios=[tile + 0.45, 3.0, 2.9])
    imgs = unnormalize(views, DEFAULT_MEAN if mean is None else mean, DEFAULT_STD if std is None else std)
    for i, ax in enumerate(np.atleast_1d(top.subplots(1, nv + 1))):
        im = imgs[i].permute(1, 2, 0).numpy()
        ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None,
                  vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title("clean" if i == 0 else (f"view {i}" if nv <= 8 else str(i)), fontsize=10)

    x = np.arange(1, nv + 1)
    ax = mid.subplots()
    for j, n in enumerate(names):
        for level in ("backbone", "projector"):
            ax.plot(x, sims[n][level], LEVEL_STYLE[level], marker="o", color=cm.tab10(j % 10),
                    label=f"{n} · {level} (mean {np.mean(sims[n][level]):.3f})")
    ax.set_xticks(x, [str(i) for i in x])
    ax.set_xlabel("augmented view (numbered as in the top row)")
    ax.set_ylabel("cosine similarity to the clean image")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.24), ncol=2, frameon=False)

    true = np.asarray(params_true, dtype=float)
    axes = np.atleast_1d(bottom.subplots(1, max(1, len(columns)), sharex=True))
    for c, (ax, col) in enumerate(zip(axes, columns)):
        ax.plot(x, true[:, c], "o", color="k", mfc="none", ms=8, zorder=3)
        for j, n in enumerate(names):
            pred = np.asarray(params_pred[n], dtype=float)
            ax.plot(x + 0.15 * (j + 1), pred[:, c], "o", color=cm.tab10(j % 10), ms=5, zorder=2)
        ax.set_title(col, fontsize=10)
        ax.set_ylabel(DESCRIPTOR_UNITS.get(col, "value"), fontsize=9)
        ax.set_xlabel("view")
        ax.set_xticks(x, [str(i) for i in x])
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], ls="none", marker="o", color="k", mfc="none", ms=8, label="true value")]
    handles += [Line2D([], [], ls="none", marker="o", color=cm.tab10(j % 10), ms=5,
                       label=f"{n}: predicted (probe on its backbone)") for j, n in enumerate(names)]
    bottom.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), fontsize=9,
                  frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
