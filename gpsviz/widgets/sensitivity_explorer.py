"""SensitivityExplorer: how a baseline and a CASSLE backbone react to one augmentation family, view by view.

Example (a notebook cell)::

    from gpsviz.widgets import SensitivityExplorer
    ex = SensitivityExplorer(test_ds, {"SimCLR": simclr_dir, "CASSLE-SimCLR": cassle_dir}, probe_data=train_ds)
    ex                                          # image slider + box, family menu, strength slider, two run menus
    ex.set_state(index=3, family="colour", strength=1.5)
    ex.state["mean"]["CASSLE-SimCLR"]["backbone"]   # mean cos(clean, view) of the views shown

For the chosen image it draws ``n_views`` views with the chosen family alone at the chosen strength
(:func:`gpsviz.augment.config.family_config`), shows them, the cosine similarity of each view to the clean image at
the backbone and at the projector of both runs (a conditioned projector receives each view's descriptor), and
the family's descriptor columns: true value vs the value a ridge probe on each run's frozen backbone predicts
(probe fitted once per run on augmented views of ``probe_data``). After each redraw the status line reads
``sensitivity-state: image=<i> family=<f> strength=<s> left=<run> right=<run> done`` (``done`` last, written after
the figure was sent); browser tests wait for it.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch

from gpsviz.augment import DESCRIPTOR_NAMES
from gpsviz.augment.config import family_config
from gpsviz.errors import ConfigError
from gpsviz.evaluate import fit_ridge
from gpsviz.plots.cassle import plot_explorer
from gpsviz.sensitivity import FAMILIES, LoadedRun, _device, augmented_features, load_run, view_similarity
from gpsviz.widgets.controls import (FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, check_run_dataset, index_controls,
                                     new_figure, show_figure, tag)

MARKER = "sensitivity-state"
#: Descriptor columns shown per family (at most four, so the panel stays readable; for hue, ``hue_sin`` = sin 2πh,
#: the signed shift, ≈ 2πh for small shifts: ``hue_cos`` = cos 2πh − 1 is left out).
SHOWN_COLUMNS = {"crop": ("centre_y", "centre_x", "height", "width"), "flip": ("centre_x",),
                 "colour": ("brightness", "contrast", "saturation", "hue_sin"), "grayscale": ("grayscale",),
                 "blur": ("blur_sigma",)}


class SensitivityExplorer(StatusMixin, widgets.VBox):
    """Interactive clean-vs-view similarity of two trained runs side by side.

    Args:
        dataset: ImageDataset whose images are shown (held-out images: ``images`` uint8 N×C×H×W).
        runs: ``{name: run folder | LoadedRun}``, at least one; the first two are shown at start (left =
            baseline, right = CASSLE by convention).
        probe_data: ImageDataset (train split) whose augmented views fit each run's parameter probe; default
            ``dataset``. probe_images: images of it used.
        families: the family menu. n_views: views per redraw. index, family, strength: the start.
        seed: the views' draw (the same views for both runs).
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError (a ValueError): no runs, unknown family or run name, index or strength out of range.
        DataError (a ValueError): a run trained on another dataset (channels, image size or dataset differ).
    """

    def __init__(self, dataset, runs: Mapping[str, Any], probe_data=None, *, families: Sequence[str] | None = None,
                 n_views: int = 6, index: int = 0, family: str = "colour", strength: float = 1.0, seed: int = 0,
                 probe_images: int = 500, dpi: float = FIGURE_DPI):
        super().__init__()

        self.dataset = dataset
        self.n = int(dataset.images.shape[0])
        if not runs:
            raise ConfigError("SensitivityExplorer: give at least one run, e.g. {'SimCLR': run_dir}")
        self.runs: dict[str, LoadedRun] = {}
        for name, r in runs.items():
            self.runs[str(name)] = r if isinstance(r, LoadedRun) else load_run(Path(r), name=str(name))
        self.families = list(FAMILIES if families is None else families)
        bad = [f for f in self.families if f not in FAMILIES]
        if bad or not self.families:
            raise ConfigError(f"SensitivityExplorer: unknown family {bad or self.families}; choose from {FAMILIES}")
        if isinstance(n_views, bool) or not isinstance(n_views, (int, np.integer)) or not 1 <= n_views <= 16:
            raise ConfigError(f"SensitivityExplorer: n_views must be an integer in [1, 16], got {n_views!r}")
        self.n_views, self.seed, self.dpi = int(n_views), int(seed), float(dpi)
        self.probe_data = probe_data if probe_data is not None else dataset
        for run_name, run in self.runs.items():               # a run of another dataset: one clear error
            cfg = run.config
            for data, what in ((dataset, "the explorer's dataset"), (self.probe_data, "probe_data")):
                check_run_dataset(run_name, data, getattr(cfg, "data", None), getattr(cfg, "data_options", None),
                                  run.in_channels, run.image_size, what)
        self.probe_images = int(probe_images)
        self._probes: dict[str, Any] = {}
        self._hold = False
        self._state: dict = {}
        self._check_index(index)
        self._check_family(family)
        self._check_strength(strength)

        names = list(self.runs)
        wide = {"description_width": "initial"}
        self.index_slider, self.index_box = index_controls(self.n, index, "image")
        self.family_dropdown = widgets.Dropdown(options=self.families, value=family, description="family",
                                                style=wide, layout=widgets.Layout(width="200px"))
        self.strength_slider = widgets.FloatSlider(value=float(strength), min=0.0, max=2.0, step=0.05,
                                                   description="strength", continuous_update=False,
                                                   readout_format=".2f", style=wide,
                                                   layout=widgets.Layout(width="360px"))
        self.left_dropdown = widgets.Dropdown(options=names, value=names[0], description="baseline", style=wide,
                                              layout=widgets.Layout(width="260px"))
        self.right_dropdown = widgets.Dropdown(options=names, value=names[min(1, len(names) - 1)],
                                               description="CASSLE", style=wide, layout=widgets.Layout(width="260px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.index_slider, "gpsviz-index-slider"), (self.index_box, "gpsviz-index-text"),
             (self.family_dropdown, "gpsviz-family"), (self.strength_slider, "gpsviz-strength-slider"),
             (self.left_dropdown, "gpsviz-left-run"), (self.right_dropdown, "gpsviz-right-run"),
             (self.image, "gpsviz-figure"), (self.status, "gpsviz-state")))
        for w in (self.index_slider, self.family_dropdown, self.strength_slider, self.left_dropdown,
                  self.right_dropdown):
            w.observe(self._on_change, names="value")
        self.children = [widgets.HBox([self.index_slider, self.index_box]),
                         widgets.HBox([self.family_dropdown, self.strength_slider]),
                         widgets.HBox([self.left_dropdown, self.right_dropdown]),
                         self.image, self.summary, self.status]
        self.add_class("gpsviz-sensitivity-explorer")
        self._redraw(raise_errors=True)

    # ------------------------------------------------------------------ validation
    def _check_index(self, index) -> None:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < self.n:
            raise ConfigError(f"SensitivityExplorer: index must be an image index in [0, {self.n - 1}], got {index!r}")

    def _check_family(self, family) -> None:
        if family not in self.families:
            raise ConfigError(f"SensitivityExplorer: unknown family {family!r}; this explorer has {self.families}")

    @staticmethod
    def _check_strength(strength) -> None:
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 2.0:
            raise ConfigError(f"SensitivityExplorer: strength must be a number in [0, 2], got {strength!r}")

    def _check_run(self, name) -> None:
        if name not in self.runs:
            raise ConfigError(f"SensitivityExplorer: unknown run {name!r}; this explorer has {list(self.runs)}")

    # ------------------------------------------------------------------ data
    def probe(self, name: str):
        """The ridge probe (descriptor columns from backbone features) of run ``name``, fitted once on one
        view (the run's training augmentation) of each of the first ``probe_images`` images of ``probe_data``."""
        if name not in self._probes:
            run = self.runs[name]
            dev = _device(run.backbone)
            x, y = augmented_features(lambda v: run.backbone(v.to(dev)),
                                      self.probe_data.images[:self.probe_images], run.augmenter, seed=self.seed)
            self._probes[name] = fit_ridge(x, y, seed=self.seed)
        return self._probes[name]

    @property
    def state(self) -> dict:
        """The state shown now: index, family, strength, left, right, ``similarity[run][level]`` (one value per
        view), ``mean[run][level]``, ``columns``, ``true`` (views × columns) and ``predicted[run]``."""
        return dict(self._state)

    def set_state(self, index: int | None = None, family: str | None = None, strength: float | None = None,
                  left: str | None = None, right: str | None = None) -> dict:
        """Move the controls (any subset) and redraw once; returns :attr:`state`. Raises ConfigError."""
        if index is not None:
            self._check_index(index)
        if family is not None:
            self._check_family(family)
        if strength is not None:
            self._check_strength(strength)
        for r in (left, right):
            if r is not None:
                self._check_run(r)
        return self._move_controls([(self.index_slider, None if index is None else int(index)),
                                    (self.family_dropdown, family),
                                    (self.strength_slider, None if strength is None else float(strength)),
                                    (self.left_dropdown, left), (self.right_dropdown, right)])

    def _marker(self, end: str) -> str:
        def name(v):
            return str(v).replace(" ", "_")

        return (f"{MARKER}: image={self.index_slider.value} family={self.family_dropdown.value} "
                f"strength={float(self.strength_slider.value):.2f} left={name(self.left_dropdown.value)} "
                f"right={name(self.right_dropdown.value)} {end}")

    # ------------------------------------------------------------------ drawing
    def _redraw(self, raise_errors: bool = False) -> None:
        idx, fam = int(self.index_slider.value), str(self.family_dropdown.value)
        s = float(self.strength_slider.value)
        names = list(dict.fromkeys([str(self.left_dropdown.value), str(self.right_dropdown.value)]))
        self._set_status(self._marker("busy"))
        try:
            img = self.dataset.images[idx:idx + 1]
            sims, means, pred = {}, {}, {}
            cols = [DESCRIPTOR_NAMES.index(c) for c in SHOWN_COLUMNS[fam]]
            true = None
            for n in names:
                run = self.runs[n]
                base = run.config.aug if run.config is not None else "strong"
                r = view_similarity(run, img, family_config(fam, s, base), self.n_views, self.seed)
                sims[n] = {lvl: r[lvl][0].tolist() for lvl in ("backbone", "projector")}
                means[n] = {lvl: float(np.mean(v)) for lvl, v in sims[n].items()}
                h, _ = run.embed(r["views"], r["params"])
                pred[n] = self.probe(n).predict(h)[:, cols].tolist()
                if true is None:
                    true = r["descriptor"][:, cols].tolist()
                    views = torch.cat([run.augmenter.normalize(img.clone()), r["views"]])
            fig = plot_explorer(views, names, sims, true, pred, SHOWN_COLUMNS[fam], fig=new_figure(),
                                title=f"image #{idx} · {fam} alone at strength {s:.2f} · {self.n_views} views",
                                width=FIGURE_WIDTH_IN)
            show_figure(self.image, fig, dpi=self.dpi)
        except Exception as e:
            self._show_error(f"Could not show {fam} at strength {s:.2f}", e, raise_errors)
            return
        rows = "".join(f"<tr><td><b>{html.escape(n)}</b></td><td>{means[n]['backbone']:.3f}</td>"
                       f"<td>{means[n]['projector']:.3f}</td></tr>" for n in names)
        self.summary.value = (
            '<div style="font-size:13px;line-height:1.4">Mean cosine similarity of the views to the clean image '
            '(1 = the feature ignores this augmentation; lower = it still records it):'
            '<table style="margin:4px 0"><tr><th></th><th>backbone</th><th>projector</th></tr>'
            f"{rows}</table>CASSLE's claim: its projector absorbs the augmentation (it is told the parameters), "
            "so its <b>backbone</b> can stay more sensitive than the baseline's.</div>")
        self._state = {"index": idx, "family": fam, "strength": s, "left": names[0], "right": names[-1],
                       "similarity": sims, "mean": means, "columns": list(SHOWN_COLUMNS[fam]), "true": true,
                       "predicted": pred}
        self._set_status(self._marker("done"))


__all__ = ["SensitivityExplorer", "SHOWN_COLUMNS"]
