"""SetExplorer: browse SPPS's semantic positive sets — an anchor's set for any threshold and k, its purity, and
the distribution of set sizes over the whole dataset.

Example (a notebook cell)::

    from gpsviz.positives.semantic import semantic_sets
    from gpsviz.widgets import SetExplorer
    src = semantic_sets(train_ds, prior="hog", k=8, threshold=0.9)   # or the source a run trained with:
    explorer = SetExplorer(train_ds, src)                            # SetExplorer.from_run("data/runs/…")
    explorer.set_state(anchor=12, threshold=0.95, k=4)
    explorer.state["purity"]                                         # share of the set with the anchor's class

The explorer reads the source's mined table (each image's K most similar others and their cosine similarities:
for a trained run, the table its loss drew set members from); the threshold and k controls only cut that table
(no new search), so moving them redraws at once. After each redraw the status line reads
``set-state: anchor=<i> threshold=<t> k=<k> size=<n> purity=<p> done`` (``done`` last, written after the figure
was sent; purity ``nan`` for an empty set, in the hidden marker only: the summary then reads "empty set (no member
above the threshold …)"); browser tests wait for it.
"""
from __future__ import annotations

import math
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import torch

from gpsviz.checkpoint import load_checkpoint, resolve_checkpoint_path
from gpsviz.config import TrainConfig
from gpsviz.data.loaders import dataset_image_size
from gpsviz.errors import ConfigError, GpsvizError
from gpsviz.plots.neighbours import DIFF_COLOUR, SAME_COLOUR, mosaic_size
from gpsviz.plots.spps import plot_semantic_set, plot_set_sizes
from gpsviz.positives import SemanticSetPositives
from gpsviz.positives.semantic import set_report
from gpsviz.runs import load_data
from gpsviz.widgets.controls import (FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, check_run_dataset, fmt_value,
                                     index_controls, new_figure, other_index, show_figure, tag)
from gpsviz.widgets.controls import fmt_marker as _fmt

MARKER = "set-state"


class SetExplorer(StatusMixin, widgets.VBox):
    """Interactive view of an anchor's semantic set (SPPS) and of the set-size distribution.

    Args:
        dataset: ImageDataset (``images`` uint8 N×C×H×W, ``labels`` int64 N, ``classes``) the sets were mined on.
        source: a prepared :class:`~gpsviz.positives.SemanticSetPositives` (its ``table``, ``sims``,
            ``threshold``); e.g. from :func:`gpsviz.positives.semantic.semantic_sets`.
        anchor: anchor shown at start.
        threshold: cosine threshold at start (default: the source's).
        k: largest set size at start (default: the mined table's width K; the slider runs 1 … K).
        threshold_step: step of the threshold slider.
        seed: seed of the "random" button.
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError (a ValueError): an unprepared source, a table that does not fit the dataset, anchor, k or
        threshold out of range.
    """

    def __init__(self, dataset, source, *, anchor: int = 0, threshold: float | None = None, k: int | None = None,
                 threshold_step: float = 0.005, seed: int = 0, ncols: int = 8, dpi: float = FIGURE_DPI):
        super().__init__()
        if getattr(source, "table", None) is None:
            raise ConfigError("SetExplorer: the source has no sets yet; call source.prepare(dataset) (or use "
                              "gpsviz.positives.semantic.semantic_sets) first")
        self.dataset, self.source = dataset, source
        self.n = int(len(dataset.labels))
        self.table = torch.as_tensor(source.table).long().cpu()
        self.sims = torch.as_tensor(source.sims).float().cpu()
        if self.table.shape[0] != self.n:
            raise ConfigError(f"SetExplorer: the source's sets cover {self.table.shape[0]} images but the dataset "
                              f"has {self.n}; give the dataset the sets were mined on")
        self.labels = torch.as_tensor(dataset.labels).long().cpu()
        self.max_k = int(self.table.shape[1])
        self.ncols, self.dpi = int(ncols), float(dpi)
        threshold = float(source.threshold if threshold is None else threshold)
        k = self.max_k if k is None else k
        self._check_anchor(anchor)
        self._check_k(k)
        self._check_threshold(threshold)
        self._rng = np.random.default_rng(seed)
        self._hold = False
        self._state: dict = {}

        finite = self.sims[torch.isfinite(self.sims)]
        lo = float(finite.min()) if finite.numel() else -1.0
        lo = max(-1.0, min(math.floor(lo * 100) / 100, threshold))
        wide = {"description_width": "initial"}
        self.anchor_slider, self.anchor_box = index_controls(self.n, anchor, "anchor")
        self.random_button = widgets.Button(description="random", tooltip="show a random anchor",
                                            layout=widgets.Layout(width="90px"))
        self.threshold_slider = widgets.FloatSlider(value=threshold, min=lo, max=1.0, step=float(threshold_step),
                                                    description="threshold (cosine)", readout_format=".3f",
                                                    continuous_update=False, style=wide,
                                                    layout=widgets.Layout(width="420px"))
        self.k_slider = widgets.IntSlider(value=int(k), min=1, max=self.max_k, description="k (max set size)",
                                          continuous_update=False, style=wide, layout=widgets.Layout(width="360px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.anchor_slider, "gpsviz-anchor-slider"), (self.anchor_box, "gpsviz-anchor-text"),
             (self.random_button, "gpsviz-random"), (self.threshold_slider, "gpsviz-threshold-slider"),
             (self.k_slider, "gpsviz-k-slider"), (self.image, "gpsviz-figure"), (self.status, "gpsviz-state")))
        for w in (self.anchor_slider, self.threshold_slider, self.k_slider):
            w.observe(self._on_change, names="value")
        self.random_button.on_click(self._on_random)
        self.children = [widgets.HBox([self.anchor_slider, self.anchor_box, self.random_button]),
                         widgets.HBox([self.threshold_slider, self.k_slider]),
                         self.image, self.summary, self.status]
        self.add_class("gpsviz-set-explorer")
        self._redraw(raise_errors=True)

    @classmethod
    def from_run(cls, run_dir: str | Path, dataset=None, **kwargs) -> "SetExplorer":
        """The sets an SPPS run trained with (the positive source's table saved in its checkpoint).
        ``dataset``: the run's training set (default: loaded from the run's config); a dataset of other channels,
        image size or another dataset than the run's raises DataError."""

        path = resolve_checkpoint_path(run_dir)
        ck = load_checkpoint(path)
        state = ck.get("positives") or {}
        if state.get("table") is None or state.get("sims") is None:
            raise ConfigError(f"SetExplorer.from_run: {path} holds no semantic sets; train a recipe with "
                              "positives='semantic' (e.g. spps-simclr)")
        if dataset is None:
            dataset = load_data(TrainConfig.from_dict(ck["config"]))[0]
        else:                                                   # a run of another dataset: one clear error

            cfg = ck["config"]
            data, options = cfg.get("data"), cfg.get("data_options") or {}
            try:
                size = dataset_image_size(data, options)
            except GpsvizError:
                size = None
            check_run_dataset(str(run_dir), dataset, data, options, ck["in_channels"], size)
        src = SemanticSetPositives(k=int(state["table"].shape[1]), progress=False)
        src.load_state_dict(state)
        src.prior = str(ck["config"].get("positives_options", {}).get("prior", src.prior))
        return cls(dataset, src, **kwargs)

    # ------------------------------------------------------------------ validation
    def _check_anchor(self, anchor) -> None:
        if isinstance(anchor, bool) or not isinstance(anchor, (int, np.integer)) or not 0 <= int(anchor) < self.n:
            raise ConfigError(f"SetExplorer: anchor must be an image index in [0, {self.n - 1}], got {anchor!r}")

    def _check_k(self, k) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= self.max_k:
            raise ConfigError(f"SetExplorer: k must be an integer between 1 and {self.max_k} (the mined table's "
                              f"width; mine with a larger k to see larger sets), got {k!r}")

    @staticmethod
    def _check_threshold(t) -> None:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not -1.0 <= float(t) <= 1.0:
            raise ConfigError(f"SetExplorer: threshold is a cosine similarity in [-1, 1], got {t!r}")

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict:
        """The state shown now: anchor, threshold, k, size, purity (of the anchor's set), members, sims,
        mean_size and set_purity (over all images at this threshold and k), empty (share of empty sets)."""
        return dict(self._state)

    def set_state(self, anchor: int | None = None, threshold: float | None = None, k: int | None = None) -> dict:
        """Move the controls (any subset) and redraw once; returns :attr:`state`. Raises ConfigError."""
        if anchor is not None:
            self._check_anchor(anchor)
        if threshold is not None:
            self._check_threshold(threshold)
            if threshold < self.threshold_slider.min:
                self.threshold_slider.min = float(threshold)
        if k is not None:
            self._check_k(k)
        return self._move_controls([(self.anchor_slider, None if anchor is None else int(anchor)),
                                    (self.threshold_slider, None if threshold is None else float(threshold)),
                                    (self.k_slider, None if k is None else int(k))])

    def _marker(self, end: str, size: int | None = None, purity: float | None = None) -> str:
        s = (f"{MARKER}: anchor={self.anchor_slider.value} threshold={self.threshold_slider.value:.3f} "
             f"k={self.k_slider.value}")
        if size is not None:
            s += f" size={size} purity={_fmt(purity)}"
        return f"{s} {end}"

    # ------------------------------------------------------------------ drawing
    def _figure(self, anchor: int, members: torch.Tensor, rep, threshold: float, k: int, size: int):
        """The anchor's set (a mosaic as wide as an explorer shows a figure at its nominal size) above the
        histogram of set sizes (this set's size drawn darker)."""
        fig = new_figure()
        ncols = max(1, min(self.ncols, k))
        width_u, height_u = mosaic_size(size, ncols, distances=False)
        tile = min(1.25, 0.99 * FIGURE_WIDTH_IN / width_u)
        mosaic = fig.add_axes((0, 0, 1, 1))                  # placed below, once the title's lines are known
        plot_semantic_set(self.dataset, anchor, members, rep.sims[anchor], threshold=threshold, ax=mosaic,
                          ncols=ncols)
        lines = mosaic.get_title(loc="left").count("\n") + 1
        title_in, mosaic_in = 0.15 + 0.22 * lines, height_u * tile
        hist_in = 0.4 + 1.7 + 0.6                              # title, bars, ticks and label
        gap = 0.15
        width, height = FIGURE_WIDTH_IN, title_in + mosaic_in + gap + hist_in
        fig.set_size_inches(width, height)
        mosaic.set_position((0.005, 1 - (title_in + mosaic_in) / height, 0.99, mosaic_in / height))
        hist = fig.add_axes((0.8 / width, 0.6 / height, (width - 1.0) / width, 1.7 / height))
        plot_set_sizes(rep.sizes, k=k, ax=hist, highlight=size)
        return fig

    # ------------------------------------------------------------------ events
    def _on_random(self, _button=None) -> None:
        self.anchor_slider.value = other_index(self._rng, self.n, int(self.anchor_slider.value))

    def _redraw(self, raise_errors: bool = False) -> None:
        anchor, k = int(self.anchor_slider.value), int(self.k_slider.value)
        threshold = float(self.threshold_slider.value)
        self._set_status(self._marker("busy"))
        try:
            rep = set_report(self.table, self.sims, self.labels, threshold, k)
            members = rep.members[anchor]
            keep = members >= 0
            size, pur = int(rep.sizes[anchor]), float(rep.anchor_purity[anchor])
            fig = self._figure(anchor, members, rep, threshold, k, size)
            show_figure(self.image, fig, dpi=self.dpi)
        except Exception as e:
            self._show_error("Could not show the set", e, raise_errors)
            return
        n_same = int((self.labels[members[keep]] == self.labels[anchor]).sum())
        if size:
            this = (f"{size} member(s) with cosine ≥ {threshold:.3f} among the {k} most similar images; "
                    f"purity {fmt_value(pur, missing='n/a (no labels)')} ({n_same}/{size} share the anchor's class)")
        else:
            this = (f"empty set (no member above the threshold: none of the {k} most similar images has cosine "
                    f"≥ {threshold:.3f})")
        self.summary.value = (
            '<div style="font-size:14px;line-height:1.5">'
            f"<b>This set:</b> {this} &nbsp;·&nbsp; "
            f"<b>all {self.n} images:</b> set purity {fmt_value(rep.purity, missing='n/a (every set is empty)')}, "
            f"mean set size {rep.mean_size:.2f}, "
            f"{rep.empty:.0%} empty (SPPS then adds views of the anchor itself)<br>"
            f'<span style="color:{SAME_COLOUR}">■ green frame ✓</span> = same class (a true semantic positive), '
            f'<span style="color:{DIFF_COLOUR}">■ red frame ✗</span> = another class (a false positive SPPS would '
            "pull towards the anchor).</div>")
        self._state = {"anchor": anchor, "threshold": threshold, "k": k, "size": size, "purity": pur,
                       "members": members[keep].tolist(), "sims": rep.sims[anchor][keep].tolist(),
                       "mean_size": rep.mean_size, "set_purity": rep.purity, "empty": rep.empty}
        self._set_status(self._marker("done", size, pur))


__all__ = ["SetExplorer"]
