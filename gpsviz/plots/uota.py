"""Figures of UOTA's view weights: an image's views ranked by weight, weight histograms of views that keep vs miss
the object, and the AUROC over training. Used by notebook 04, the OOD explorer and ``reproduce uota``."""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from gpsviz.plots.data import to_display

__all__ = ["plot_ranked_views", "plot_weight_histogram", "plot_auroc_over_training", "plot_miss_rate_sweep",
           "KEEP_COLOUR", "MISS_COLOUR"]

KEEP_COLOUR = "#1a9641"
MISS_COLOUR = "#d7191c"


def _new(fig, figsize):
    if fig is not None:
        fig.set_size_inches(*figsize)
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


def plot_ranked_views(image: torch.Tensor, views: Sequence[torch.Tensor], weights: Sequence[float],
                      coverage: Sequence[float], params: Sequence[Mapping[str, float]] | None = None,
                      is_global: Sequence[bool] | None = None, threshold: float = 0.10, title: str = "",
                      fig=None):
    """The source image (crop boxes drawn on it) and its views ranked by weight, heaviest first.

    Args:
        image: uint8 C×H×W source image.
        views: one image per view (uint8 or float C×h×w, display-ready) in plan order.
        weights: the views' weights (× M, 1 = uniform); coverage: share of the object inside each view.
        params: each view's parameters (dict) for the caption (crop box, flip, jitter); is_global: per view.
    Returns the Figure (the views ordered by descending weight; red frame = misses the object)."""
    from matplotlib.patches import Rectangle


    n = len(views)
    order = np.argsort(-np.asarray(weights, dtype=float), kind="stable")
    fig = _new(fig, (max(6.0, 1.5 * (n + 1)), 2.6))
    axes = fig.subplots(1, n + 1)
    axes = np.atleast_1d(axes)
    axes[0].imshow(to_display(image))
    axes[0].set_title("image + crops", fontsize=8)
    for j in range(n):
        if params is not None:
            p = params[j]
            miss = coverage[j] < threshold
            axes[0].add_patch(Rectangle((p["crop_x"] - 0.5, p["crop_y"] - 0.5), p["crop_w"], p["crop_h"],
                                        fill=False, lw=1, ec=MISS_COLOUR if miss else KEEP_COLOUR))
    for r, j in enumerate(order):
        ax = axes[r + 1]
        ax.imshow(to_display(views[j]))
        miss = coverage[j] < threshold
        for s in ax.spines.values():
            s.set_edgecolor(MISS_COLOUR if miss else KEEP_COLOUR)
            s.set_linewidth(3)
        kind = "" if is_global is None else ("global" if is_global[j] else "local")
        cap = f"#{r + 1} w={weights[j]:.2f}\ncov {100 * coverage[j]:.0f}% {kind}"
        if params is not None:
            p = params[j]
            cap += f"\n{p['crop_h']:.0f}×{p['crop_w']:.0f} px"
        ax.set_xlabel(cap, fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    fig.tight_layout()
    return fig


def plot_weight_histogram(weights: Any, coverage: Any, threshold: float = 0.10, bins: int = 30,
                          title: str = "", ax=None):
    """Histograms (density) of the weights of views that keep the object (coverage ≥ threshold) and of views that
    miss it. weights, coverage: float V. Returns the Figure."""
    w = np.asarray(torch.as_tensor(weights, dtype=torch.float32), dtype=float)
    c = np.asarray(torch.as_tensor(coverage, dtype=torch.float32), dtype=float)
    ok = ~(np.isnan(w) | np.isnan(c))
    w, c = w[ok], c[ok]
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.4))
    else:
        fig = ax.figure
    edges = np.histogram_bin_edges(w, bins=bins) if w.size else bins
    miss = c < threshold
    ax.hist(w[~miss], bins=edges, density=True, alpha=0.55, color=KEEP_COLOUR,
            label=f"keeps the object ({int((~miss).sum())})")
    ax.hist(w[miss], bins=edges, density=True, alpha=0.55, color=MISS_COLOUR,
            label=f"misses it, coverage < {100 * threshold:.0f}% ({int(miss.sum())})")
    ax.axvline(1.0, color="#555", lw=0.8, ls=":")
    ax.set_xlabel("UOTA weight (× M; 1 = uniform)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_auroc_over_training(curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                             start_epoch: float | None = None, current: int | None = None, ax=None):
    """AUROC (low weight finds views that miss the object) per epoch for each named run:
    ``{name: (epochs, aurocs)}``. ``start_epoch``: where the loss starts using the weights (dashed line);
    ``current``: the epoch shown in an explorer (a marker). Returns the Figure."""
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.4))
    else:
        fig = ax.figure
    for name, (ep, au) in curves.items():
        ax.plot(list(ep), list(au), marker="o", ms=3, label=name)
        if current is not None and current in list(ep):
            k = list(ep).index(current)
            ax.plot([current], [list(au)[k]], "o", ms=9, mfc="none", mec="k")
    ax.axhline(0.5, color="#888", lw=0.8, ls=":", label="chance")
    ax.axhline(0.8, color="#1a9641", lw=0.8, ls="--", label="aim 0.8")
    if start_epoch is not None:
        ax.axvline(start_epoch, color="#555", lw=0.8, ls="--")
        ax.annotate("loss uses the weights", (start_epoch, 0.05), fontsize=7, rotation=90, xytext=(-9, 0),
                    textcoords="offset points")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUROC")
    ax.set_title("does a low weight find the views that miss the object?", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def plot_miss_rate_sweep(sweeps: Mapping[str, Any], title: str = "", ax=None):
    """AUROC of each distance (pooled Mahalanobis = UOTA, Euclidean, shrunk Σ) against the local views' miss rate.

    ``sweeps``: {label: DataFrame with ``miss_rate`` and ``auroc_mahalanobis`` / ``auroc_euclidean`` /
    ``auroc_shrunk``} (:func:`gpsviz.experiments.uota.miss_rate_sweep` or :func:`synthetic_sweep`); one line style
    per label, one colour per distance. The dotted line is chance (0.5), the dashed one the aim (0.8). Returns the
    Figure (drawn on ``ax`` when given)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 4.8))
    colours = {"auroc_mahalanobis": "#2c7bb6", "auroc_euclidean": "#fdae61", "auroc_shrunk": "#7b3294"}
    names = {"auroc_mahalanobis": "pooled Σ (UOTA)", "auroc_euclidean": "Euclidean", "auroc_shrunk": "shrunk Σ"}
    for (label, df), style in zip(sweeps.items(), ("-o", "--s", ":^", "-.v")):
        df = df.sort_values("miss_rate")
        for col, c in colours.items():
            ax.plot(100 * df["miss_rate"], df[col], style, color=c, label=f"{names[col]} · {label}")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("local views that miss the object (%)")
    ax.set_ylabel("AUROC (a far view = a miss)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Does the distance find the misses as they get common?")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.figure.tight_layout()
    return ax.figure
