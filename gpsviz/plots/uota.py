"""Figures of UOTA's view weights: an image's views ranked by weight, weight histograms of views that keep vs miss
the object, and the AUROC over training. Used by notebook 04, the OOD explorer and ``reproduce uota``."""
from __future__ import annotations

import textwrap
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from gpsviz.plots.data import to_display

__all__ = ["plot_ranked_views", "plot_weight_histogram", "plot_auroc_over_training", "plot_miss_rate_sweep",
           "KEEP_COLOUR", "MISS_COLOUR", "WEIGHT_DEFINITION"]

KEEP_COLOUR = "#1a9641"
MISS_COLOUR = "#d7191c"


def _new(fig, figsize):
    if fig is not None:
        fig.set_size_inches(*figsize)
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize)


#: What the explorers' "weight" is: defined wherever it is shown.
WEIGHT_DEFINITION = ("w = UOTA weight × M: the weights sum to 1 over the M views of a training batch, so w = 1 is "
                     "the uniform weight and w < 1 a down-weighted view")


def _label_boxes(ax, boxes: Sequence[tuple[float, float, str, str]], step: float, width: float) -> None:
    """Write each crop box's number at its top-left corner, inside it (``boxes``: x, y, text, colour, in data units
    of an image ``width`` wide). Boxes often share a corner (every whole-image crop starts at 0, 0): the k-th label
    at a corner moves k × ``step`` to the right, onto the next line when it would leave the image."""
    taken: dict[tuple[int, int], int] = {}
    for x, y, text, colour in boxes:
        key = (round(x / step), round(y / step))
        k = taken.get(key, 0)
        taken[key] = k + 1
        per_line = max(1, int((width - x) // step))
        ax.text(x + (k % per_line) * step, y + (k // per_line) * step, text, color=colour, fontsize=9,
                fontweight="bold", ha="left", va="top", clip_on=True,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.85})


def plot_ranked_views(image: torch.Tensor, views: Sequence[torch.Tensor], weights: Sequence[float],
                      coverage: Sequence[float], params: Sequence[Mapping[str, float]] | None = None,
                      is_global: Sequence[bool] | None = None, threshold: float = 0.10, title: str = "",
                      fig=None, width: float = 8.9):
    """The source image with each view's crop box (numbered by the view's rank, the number of its caption) and the
    views ranked by weight, heaviest first, at most ``width`` inches wide (text ≥ 9 pt at that size); a footnote
    defines the weight (:data:`WEIGHT_DEFINITION`) and the coverage.

    Args:
        image: uint8 C×H×W source image.
        views: one image per view (uint8 or float C×h×w, display-ready) in plan order.
        weights: the views' weights (× M, 1 = uniform); coverage: share of the object inside each view.
        params: each view's parameters (dict) for the crop boxes and captions; is_global: per view.
    Returns the Figure (the views ordered by descending weight; red frame and box = misses the object)."""
    from matplotlib.patches import Rectangle

    n = len(views)
    order = [int(j) for j in np.argsort(-np.asarray(weights, dtype=float), kind="stable")]
    rows = 1 if n <= 5 else 2
    cols = max(1, -(-n // rows))
    tile = min(1.6, width / (cols + rows))                       # the image spans rows × rows tiles
    fig_w = tile * (cols + rows)
    # lines as long as the figure is wide (about 14 characters of 9 pt text per inch, 12 of 10 pt)
    foot = textwrap.wrap(f"{WEIGHT_DEFINITION} · object = coverage, the share of the object inside the view · "
                         f"red = misses the object (coverage < {100 * threshold:.0f} %), green = keeps it · the "
                         "numbers on the image are the views' ranks", int(12.5 * fig_w))
    heading = textwrap.wrap(title, int(10.5 * fig_w)) if title else []
    fig = _new(fig, (fig_w, rows * (tile + 0.62) + 0.2 * len(heading) + 0.17 * len(foot) + 0.45))
    fig.set_layout_engine("constrained")
    gs = fig.add_gridspec(rows, cols + rows)
    ax0 = fig.add_subplot(gs[:, :rows])
    ax0.imshow(to_display(image))
    ax0.set_title("crop box per view\n(number = rank)", fontsize=10)
    boxes = []
    for r, j in enumerate(order):
        colour = MISS_COLOUR if coverage[j] < threshold else KEEP_COLOUR
        if params is not None:
            p = params[j]
            ax0.add_patch(Rectangle((p["crop_x"] - 0.5, p["crop_y"] - 0.5), p["crop_w"], p["crop_h"], fill=False,
                                    lw=1.5, ec=colour))
            boxes.append((p["crop_x"], p["crop_y"], str(r + 1), colour))
    _label_boxes(ax0, boxes, step=0.1 * image.shape[-1], width=image.shape[-1])
    for r, j in enumerate(order):
        ax = fig.add_subplot(gs[r // cols, rows + r % cols])
        ax.imshow(to_display(views[j]))
        miss = coverage[j] < threshold
        for sp in ax.spines.values():
            sp.set_edgecolor(MISS_COLOUR if miss else KEEP_COLOUR)
            sp.set_linewidth(3)
        cov = f"{100 * coverage[j]:.0f} %" if coverage[j] == coverage[j] else "n/a"
        cap = f"#{r + 1}  w = {weights[j]:.2f}\nobject {cov}"
        kind = "" if is_global is None else ("global" if is_global[j] else "local")
        if params is not None:
            kind += f" {params[j]['crop_h']:.0f}×{params[j]['crop_w']:.0f} px"
        if kind.strip():
            cap += f"\n{kind.strip()}"
        ax.set_xlabel(cap, fontsize=9, linespacing=1.1)
    for ax in fig.axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if heading:
        fig.suptitle("\n".join(heading), fontsize=10)
    fig.supxlabel("\n".join(foot), fontsize=9, color="#444")
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
            label=f"views that keep the object ({int((~miss).sum())})")
    ax.hist(w[miss], bins=edges, density=True, alpha=0.55, color=MISS_COLOUR,
            label=f"views that miss it: coverage < {100 * threshold:.0f} % ({int(miss.sum())})")
    ax.axvline(1.0, color="#555", lw=0.8, ls=":", label="uniform weight (w = 1)")
    ax.set_xlabel("UOTA weight w (× M, 1 = uniform)")
    ax.set_ylabel("density (per unit of weight)")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)   # below: never on a bar
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
    shown = False
    for name, (ep, au) in curves.items():
        ax.plot(list(ep), list(au), marker="o", ms=3, label=name)
        if current is not None and current in list(ep):
            k = list(ep).index(current)
            ax.plot([current], [list(au)[k]], "o", ms=9, mfc="none", mec="k",
                    label=None if shown else f"epoch shown ({current})")
            shown = True
    ax.axhline(0.5, color="#888", lw=0.8, ls=":", label="chance (0.5)")
    ax.axhline(0.8, color="#1a9641", lw=0.8, ls="--", label="aim (0.8)")
    if start_epoch is not None:
        ax.axvline(start_epoch, color="#555", lw=0.8, ls="-.", label="from here the loss uses the weights")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUROC (0.5 = chance, 1 = perfect)")
    ax.set_title("does a low weight find\nthe views that miss the object?", fontsize=10)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # off the curves
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
