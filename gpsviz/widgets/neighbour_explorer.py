"""NeighbourExplorer: browse an anchor's nearest neighbours in each prior space (GPS-SSL's candidate positives).

Example (a notebook cell)::

    from gpsviz.widgets import NeighbourExplorer
    explorer = NeighbourExplorer(train_ds, priors=["pixels", "hog", "oracle"], k=8)
    explorer                                  # anchor slider + box, "random", prior menu, k slider, figure
    explorer.set_state(anchor=12, prior="hog", k=16)
    explorer.state["purity"]                  # share of the 16 neighbours with the anchor's class

Each prior's embedding (N×D) is computed once (``compute_prior``, cached on disk) or taken from
``embeddings={name: N×D}``; one exact search (squared L2, anchor excluded) for ``max_k`` neighbours per prior is
kept in memory, so moving the controls only redraws. After each redraw the status line reads
``explorer-state: anchor=<i> prior=<name> k=<k> purity=<p> mean_purity=<p> done`` (``done`` last, written
after the figure was sent); browser tests wait for it.
"""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch

from gpsviz.errors import ConfigError
from gpsviz.knn import knn_search
from gpsviz.plots.neighbours import DIFF_COLOUR, SAME_COLOUR, plot_neighbours
from gpsviz.priors import available_priors, compute_prior
from gpsviz.purity import per_anchor_purity, purity
from gpsviz.widgets.controls import (FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, check_run_dataset, figure_png,
                                     fmt_value, index_controls, new_figure, other_index, run_data, show_figure, tag)
from gpsviz.widgets.controls import fmt_marker as _fmt

DEFAULT_PRIORS = ("pixels", "hog", "oracle")
MARKER = "explorer-state"


class NeighbourExplorer(StatusMixin, widgets.VBox):
    """Interactive view of an anchor and its k nearest neighbours in a prior embedding space.

    Args:
        dataset: ImageDataset (``images`` uint8 N×C×H×W, ``labels`` int64 N, ``classes``).
        priors: prior names (a dropdown); default: the keys of ``embeddings`` if given, else pixels/hog/oracle.
            Names without a precomputed embedding are computed with :func:`gpsviz.priors.compute_prior`.
        k: neighbours shown at start (1 ≤ k ≤ max_k).
        max_k: largest k of the slider (clamped to N − 1); one search for max_k neighbours per prior.
        embeddings: optional ``{name: N×D float tensor}`` precomputed prior embeddings (e.g. a checkpoint's
            features); names not in ``priors`` are added to the menu.
        anchor: anchor shown at start.
        seed: seed of the "random" button.
        root: data folder for the prior cache (default ``./data`` or ``$GPSVIZ_DATA``).
        prior_options: per-prior keyword arguments for ``compute_prior``, e.g. ``{"pca": {"dim": 32}}``.
        ncols: neighbours per figure row.
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError (a ValueError): k outside [1, max_k], an unknown prior, an embedding of the wrong shape.
    """

    def __init__(self, dataset, priors: Sequence[str] | None = None, k: int = 8, max_k: int = 32,
                 embeddings: Mapping[str, torch.Tensor] | None = None, *, anchor: int = 0, seed: int = 0,
                 root=None, prior_options: Mapping[str, Mapping] | None = None, ncols: int = 8,
                 dpi: float = FIGURE_DPI):
        super().__init__()
        self.dataset = dataset
        self.n = int(len(dataset.labels))
        if self.n < 2:
            raise ConfigError(f"NeighbourExplorer needs a dataset of at least 2 images, got {self.n}")
        self.labels = torch.as_tensor(dataset.labels).long().cpu()
        self.max_k = int(min(int(max_k), self.n - 1))
        if self.max_k < 1:
            raise ConfigError(f"NeighbourExplorer: max_k must be >= 1, got {max_k}")
        self._embeddings: dict[str, torch.Tensor] = {}
        for name, emb in (embeddings or {}).items():
            e = torch.as_tensor(emb).detach().float().cpu()
            if e.ndim != 2 or e.shape[0] != self.n:
                raise ConfigError(f"NeighbourExplorer: embeddings[{name!r}] must be N×D with N={self.n} "
                                  f"(one row per image), got shape {tuple(e.shape)}")
            self._embeddings[str(name)] = e
        if priors is None:
            names = list(self._embeddings) or list(DEFAULT_PRIORS)
        elif isinstance(priors, str):
            names = [priors]
        else:
            names = [str(p) for p in priors]
        names += [p for p in self._embeddings if p not in names]
        if not names:
            raise ConfigError("NeighbourExplorer: give at least one prior name (e.g. priors=['pixels', 'hog'])")
        self._check_prior_names([p for p in names if p not in self._embeddings])
        self.priors = list(dict.fromkeys(names))
        self.root = root
        self.prior_options = {str(k): dict(v) for k, v in (prior_options or {}).items()}
        stray = [p for p in self.prior_options if p not in self.priors]
        if stray:
            raise ConfigError(f"NeighbourExplorer: prior_options for {stray}, which are not among the priors "
                              f"{self.priors}; give options per prior, e.g. prior_options={{'pca': {{'dim': 32}}}}")
        run = self.prior_options.get("checkpoint", {}).get("run")
        if run is not None:                                     # a run of another dataset: one clear error
            info = run_data(run)
            check_run_dataset(str(run), dataset, info["data"], info["data_options"], info["in_channels"],
                              info["image_size"])
        self.ncols, self.dpi = int(ncols), float(dpi)
        self._tables: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._mean_purity: dict[tuple[str, int], float] = {}
        self._rng = np.random.default_rng(seed)
        self._hold = False
        self._state: dict = {}
        self._check_k(k)
        self._check_anchor(anchor)

        wide = {"description_width": "initial"}
        self.anchor_slider, self.anchor_box = index_controls(self.n, anchor, "anchor")
        self.random_button = widgets.Button(description="random", tooltip="show a random anchor",
                                            layout=widgets.Layout(width="90px"))
        self.prior_dropdown = widgets.Dropdown(options=self.priors, value=self.priors[0], description="prior",
                                               style=wide, layout=widgets.Layout(width="220px"))
        self.k_slider = widgets.IntSlider(value=int(k), min=1, max=self.max_k, description="k",
                                          continuous_update=False, style=wide, layout=widgets.Layout(width="360px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.anchor_slider, "gpsviz-anchor-slider"), (self.anchor_box, "gpsviz-anchor-text"),
             (self.random_button, "gpsviz-random"), (self.prior_dropdown, "gpsviz-prior"),
             (self.k_slider, "gpsviz-k-slider"), (self.image, "gpsviz-figure"), (self.status, "gpsviz-state")))

        self.anchor_slider.observe(self._on_change, names="value")
        self.prior_dropdown.observe(self._on_change, names="value")
        self.k_slider.observe(self._on_change, names="value")
        self.random_button.on_click(self._on_random)

        self.children = [
            widgets.HBox([self.anchor_slider, self.anchor_box, self.random_button]),
            widgets.HBox([self.prior_dropdown, self.k_slider]),
            self.image,
            self.summary,
            self.status,
        ]
        self.add_class("gpsviz-neighbour-explorer")
        self._redraw(raise_errors=True)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_prior_names(names: Sequence[str]) -> None:
        if not names:
            return
        known = list(available_priors())
        bad = [p for p in names if p not in known and p.split(":", 1)[0] not in known]
        if bad:
            raise ConfigError(f"NeighbourExplorer: unknown prior(s) {bad}; available priors: {known} "
                              "(or pass a precomputed embedding with embeddings={name: N×D tensor})")

    def _check_k(self, k) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= self.max_k:
            raise ConfigError(f"NeighbourExplorer: k must be an integer between 1 and max_k={self.max_k}, got {k!r}"
                              " (raise max_k when you build the explorer to see more neighbours)")

    def _check_anchor(self, anchor) -> None:
        if isinstance(anchor, bool) or not isinstance(anchor, (int, np.integer)) or not 0 <= int(anchor) < self.n:
            raise ConfigError(f"NeighbourExplorer: anchor must be an image index in [0, {self.n - 1}], got {anchor!r}")

    def _check_prior(self, prior) -> None:
        if prior not in self.priors:
            raise ConfigError(f"NeighbourExplorer: unknown prior {prior!r}; this explorer has {self.priors}")

    # ------------------------------------------------------------------ data
    def embedding(self, prior: str) -> torch.Tensor:
        """The N×D embedding of ``prior`` (computed once with ``compute_prior`` and kept)."""
        self._check_prior(prior)
        if prior not in self._embeddings:
            opts = {"progress": False, **self.prior_options.get(prior, {})}   # no progress bars in callbacks
            emb = compute_prior(prior, self.dataset, root=self.root, **opts)
            emb = torch.as_tensor(emb).detach().float().cpu()
            if emb.ndim != 2 or emb.shape[0] != self.n:
                raise ConfigError(f"compute_prior({prior!r}) returned shape {tuple(emb.shape)}, expected N×D "
                                  f"with N={self.n}")
            self._embeddings[prior] = emb
        return self._embeddings[prior]

    def neighbours(self, prior: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distances float32 N×max_k, indices int64 N×max_k)``: squared L2, anchor excluded, nearest first."""
        if prior not in self._tables:
            d, i = knn_search(self.embedding(prior), None, k=self.max_k, metric="l2", exclude_self=True)
            self._tables[prior] = (d.float().cpu(), i.long().cpu())
        return self._tables[prior]

    def mean_purity(self, prior: str, k: int) -> float:
        """Positive purity of every image's k nearest neighbours in ``prior``, averaged over the dataset."""
        key = (prior, int(k))
        if key not in self._mean_purity:
            self._mean_purity[key] = float(purity(self.neighbours(prior)[1][:, :k], self.labels))
        return self._mean_purity[key]

    def anchor_purity(self, anchor: int, prior: str, k: int) -> float:
        """Share of the anchor's k nearest neighbours with its class (NaN when labels are unknown)."""
        nbrs = self.neighbours(prior)[1][anchor:anchor + 1, :k]                 # 1×k
        return float(per_anchor_purity(nbrs, self.labels, anchors=torch.tensor([int(anchor)]))[0])

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict:
        """The state shown now: anchor, prior, k, purity, mean_purity, neighbours (list), distances (list)."""
        return dict(self._state)

    def set_state(self, anchor: int | None = None, prior: str | None = None, k: int | None = None) -> dict:
        """Move the controls (any subset) and redraw once; returns :attr:`state`. Raises ConfigError."""
        if anchor is not None:
            self._check_anchor(anchor)
        if prior is not None:
            self._check_prior(prior)
        if k is not None:
            self._check_k(k)
        return self._move_controls([(self.anchor_slider, None if anchor is None else int(anchor)),
                                    (self.prior_dropdown, prior), (self.k_slider, None if k is None else int(k))])

    def _marker(self, end: str, purity: float | None = None, mean: float | None = None) -> str:
        prior = str(self.prior_dropdown.value).replace(" ", "_")
        s = f"{MARKER}: anchor={self.anchor_slider.value} prior={prior} k={self.k_slider.value}"
        if purity is not None:
            s += f" purity={_fmt(purity)} mean_purity={_fmt(mean)}"
        return f"{s} {end}"

    # ------------------------------------------------------------------ events

    def _on_random(self, _button=None) -> None:
        self.anchor_slider.value = other_index(self._rng, self.n, int(self.anchor_slider.value))

    def _redraw(self, raise_errors: bool = False) -> None:
        anchor, prior, k = int(self.anchor_slider.value), str(self.prior_dropdown.value), int(self.k_slider.value)
        self._set_status(self._marker("busy"))
        try:
            dist, idx = self.neighbours(prior)
            nb, d = idx[anchor, :k], dist[anchor, :k]
            pur = self.anchor_purity(anchor, prior, k)
            mean = self.mean_purity(prior, k)
            fig = plot_neighbours(self.dataset, anchor, nb, d, fig=new_figure(), ncols=self.ncols,
                                  max_width=FIGURE_WIDTH_IN,
                                  title=f"prior: {prior}  ·  anchor #{anchor} and its {k} nearest neighbours\n"
                                        f"d = squared L2 distance to the anchor in the prior's space")
            show_figure(self.image, fig, dpi=self.dpi)
        except Exception as e:
            self._show_error(f"Could not show prior {prior}", e, raise_errors)
            return
        a_lab = int(self.labels[anchor])
        n_same = int((self.labels[nb] == a_lab).sum()) if a_lab >= 0 else 0
        self.summary.value = (
            '<div style="font-size:14px;line-height:1.5">'
            f"<b>Purity of these {k} neighbours:</b> {fmt_value(pur, missing='n/a (no labels)')} "
            f"({n_same}/{k} share the anchor's class) &nbsp;·&nbsp; <b>mean purity@{k} of prior "
            f"{html.escape(prior)}</b> over all {self.n} images: {fmt_value(mean, missing='n/a (no labels)')}<br>"
            f'<span style="color:{SAME_COLOUR}">■ green frame ✓</span> = same class as the anchor (a true '
            f'positive for GPS-SSL), <span style="color:{DIFF_COLOUR}">■ red frame ✗</span> = another class '
            "(a false positive).</div>")
        self._state = {"anchor": anchor, "prior": prior, "k": k, "purity": pur, "mean_purity": mean,
                       "neighbours": nb.tolist(), "distances": d.tolist()}
        self._set_status(self._marker("done", pur, mean))


__all__ = ["NeighbourExplorer", "figure_png"]
