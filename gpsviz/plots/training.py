"""Figures of training runs: learning curves, accuracy bars with error bars, 2-D embedding maps."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from pathlib import Path

from gpsviz.checkpoint import load_backbone
from gpsviz.data.shapes import HUE_NAMES, HUES, SHIFT_HUE_NAMES, SHIFT_HUES, hsv_to_rgb
from gpsviz.features import extract_features


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(runs: Sequence[dict[str, Any]], keys: Sequence[str] = ("loss", "knn_acc"),
                         title: str | None = None):
    """One panel per history key (loss, online kNN accuracy) with one line per run.

    ``runs``: dicts with ``history`` (list of per-epoch dicts) and a ``name``/``recipe`` (+ ``aug``, ``seed``).
    Runs of the same name and augmentation share a colour.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 3.8), squeeze=False)
    # colours in order of first appearance: the same as plot_results_bars gives the methods of one group
    labels = list(dict.fromkeys(f"{r.get('name', r.get('recipe'))} ({r.get('aug', '')})" for r in runs))
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    for ax, key in zip(axes[0], keys):
        seen = set()
        for r in runs:
            hist = r.get("history") or []
            ep = [h["epoch"] for h in hist]
            val = [h.get(key, float("nan")) for h in hist]
            lab = f"{r.get('name', r.get('recipe'))} ({r.get('aug', '')})"
            ax.plot(ep, val, color=colours[lab], alpha=0.85, marker="o", ms=3, label=None if lab in seen else lab)
            seen.add(lab)
        ax.set_xlabel("epoch")
        ax.set_ylabel({"loss": "training loss", "knn_acc": "online kNN accuracy (held-out)"}.get(key, key))
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_results_bars(table: Sequence[dict[str, Any]], metric: str = "linear_label", title: str | None = None):
    """Grouped bars (mean ± std over seeds) of ``metric`` per method, one group per (dataset, augmentation)."""
    plt = _plt()
    groups = list(dict.fromkeys((r["dataset"], r["aug"]) for r in table))
    methods = list(dict.fromkeys(r["method"] for r in table))
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) * max(1, len(methods)) * 0.5 + 2), 4))
    for j, m in enumerate(methods):
        xs, ys, es = [], [], []
        for i, g in enumerate(groups):
            r = next((r for r in table if (r["dataset"], r["aug"]) == g and r["method"] == m), None)
            if r is None or metric not in r:
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(100 * r[metric])
            es.append(100 * r.get(metric + "_std", 0.0))
        bars = ax.bar(xs, ys, width, yerr=es, capsize=3, label=m, color=plt.cm.tab10(j % 10))
        for b, y in zip(bars, ys):
            ax.text(b.get_x() + b.get_width() / 2, y + 1, f"{y:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), [f"{d}\n{a} aug" for d, a in groups])
    ax.set_ylabel(f"{metric.replace('_', ' ')} accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, ncol=min(4, len(methods)), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def embed_2d(features: torch.Tensor, method: str = "umap", seed: int = 0) -> np.ndarray:
    """N×d features → N×2 coordinates with UMAP (``umap-learn``) or PCA (``method="pca"``)."""
    x = features.float().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, dtype=np.float32)
    if method == "pca":
        x = x - x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        return x @ vt[:2].T
    import umap

    return umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1).fit_transform(x)


def factor_colours(names: Sequence[str]) -> list | None:
    """Draw colours for the classes of a factor whose classes *are* colours, else ``None``.

    The shapes world's hue names (``colour`` / ``bg_colour``, normal or shifted palette) get the RGB of their hue
    bin, so points of red objects are drawn red; other names that matplotlib knows as colours are used as they
    are. Returns one RGB tuple (or colour name) per class.
    """
    from matplotlib.colors import is_color_like


    names = [str(n) for n in names]
    for hue_names, hues, sat in ((HUE_NAMES, HUES, 0.9), (SHIFT_HUE_NAMES, SHIFT_HUES, 0.55)):
        if names and all(n in hue_names for n in names):
            h = torch.tensor([hues[hue_names.index(n)] for n in names])
            rgb = hsv_to_rgb(h, torch.full_like(h, sat), torch.full_like(h, 0.85))
            return [tuple(float(c) for c in row) for row in rgb]
    if names and all(is_color_like(n) for n in names):
        return list(names)
    return None


def plot_embedding(coords: np.ndarray, colour_by: dict[str, tuple[torch.Tensor, list[str]]], title: str = ""):
    """Scatter of 2-D coordinates, one panel per colouring (e.g. by class and by colour factor).

    ``colour_by``: panel name → (values int N, class names). A factor whose classes are colours (the shapes
    world's ``colour``) is drawn in those colours (see :func:`factor_colours`); others use a qualitative map."""
    plt = _plt()
    n = len(colour_by)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.6), squeeze=False)
    for ax, (name, (values, names)) in zip(axes[0], colour_by.items()):
        v = np.asarray(values)
        cmap = plt.cm.tab10 if len(names) <= 10 else plt.cm.tab20
        own = factor_colours(names)
        for c in range(len(names)):
            m = v == c
            if m.any():
                colour = own[c] if own is not None else cmap(c % cmap.N)
                ax.scatter(coords[m, 0], coords[m, 1], s=4, color=colour, label=names[c], alpha=0.7)
        ax.set_title(f"{title} coloured by {name}".strip())
        ax.set_xticks([]), ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=7, loc="best", ncol=2 if len(names) > 5 else 1)
    fig.tight_layout()
    return fig


def plot_run_embedding(run: str | Path, dataset: Any, factors: Sequence[str] = ("label", "colour"), n: int = 2000,
                       method: str = "umap", title: str | None = None, seed: int = 0):
    """:func:`plot_embedding` of a run's backbone features on the first ``n`` images of ``dataset`` (use the
    held-out split), one panel per factor (``dataset.targets`` names), mapped to 2-D by :func:`embed_2d`."""
    backbone, _ = load_backbone(run)
    sub = dataset.subset(torch.arange(min(len(dataset), int(n))))
    coords = embed_2d(extract_features(backbone, sub), method=method, seed=seed)
    return plot_embedding(coords, {("shape" if f == "label" else f): sub.targets(f) for f in factors},
                          title=Path(run).name.rsplit("-", 1)[0] if title is None else title)
