"""AugmentExplorer: one image beside its augmented views and their parameters, for any preset and strength.

Example (a notebook cell)::

    from gpsviz.widgets import AugmentExplorer
    AugmentExplorer(train_ds, n_views=6)      # image slider + box, preset menu, strength slider, "resample"

After each redraw the status line reads ``augment-state: index=<i> preset=<name> strength=<s> draw=<n> done``
(``done`` last, written after the figure was sent); browser tests wait for it.
"""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch

from gpsviz.augment import PRESETS, Augmenter
from gpsviz.errors import ConfigError
from gpsviz.plots import plot_views
from gpsviz.utils import make_generator
from gpsviz.widgets.controls import (FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, index_controls, new_figure, show_figure,
                                     tag)

MARKER = "augment-state"


class AugmentExplorer(StatusMixin, widgets.VBox):
    """Interactive view of an image's augmented views (``Augmenter`` + ``plot_views``).

    Args:
        dataset: ImageDataset (``images`` uint8 N×C×H×W).
        presets: preset names, or the ``PRESETS`` dict (its keys); default: every preset of gpsviz.augment.
        n_views: views drawn per redraw.
        index: image shown at start.
        preset: preset shown at start (default: ``"strong"`` if offered, else the first).
        strength: strength at start (the slider runs 0 … 2; 0 = identity).
        seed: base seed; "resample" draws with the next seed, so a given (seed, draw) is reproducible.
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError (a ValueError): unknown preset, index out of range, strength outside [0, 2], n_views < 1.
    """

    def __init__(self, dataset, presets: Mapping | Sequence[str] | None = None, n_views: int = 6, *,
                 index: int = 0, preset: str | None = None, strength: float = 1.0, seed: int = 0,
                 dpi: float = FIGURE_DPI):
        super().__init__()

        self.dataset = dataset
        self.n = int(dataset.images.shape[0])
        if self.n < 1:
            raise ConfigError("AugmentExplorer needs a dataset with at least one image")
        names = list(PRESETS) if presets is None else ([presets] if isinstance(presets, str) else list(presets))
        unknown = [p for p in names if p not in PRESETS]
        if not names or unknown:
            raise ConfigError(f"AugmentExplorer: unknown preset(s) {unknown or names}; available: {list(PRESETS)}")
        if isinstance(n_views, bool) or not isinstance(n_views, (int, np.integer)) or n_views < 1:
            raise ConfigError(f"AugmentExplorer: n_views must be a positive integer, got {n_views!r}")
        self.presets = names
        self.n_views, self.seed, self.dpi = int(n_views), int(seed), float(dpi)
        self.draw = 0
        self._hold = False
        self._state: dict = {}
        preset = preset if preset is not None else ("strong" if "strong" in names else names[0])
        self._check(index, preset, strength)

        wide = {"description_width": "initial"}
        self.index_slider, self.index_box = index_controls(self.n, index, "image")
        self.preset_dropdown = widgets.Dropdown(options=names, value=preset, description="preset", style=wide,
                                                layout=widgets.Layout(width="220px"))
        self.strength_slider = widgets.FloatSlider(value=float(strength), min=0.0, max=2.0, step=0.05,
                                                   description="strength", continuous_update=False,
                                                   readout_format=".2f", style=wide,
                                                   layout=widgets.Layout(width="360px"))
        self.resample_button = widgets.Button(description="resample", tooltip="draw new random views",
                                              layout=widgets.Layout(width="100px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.index_slider, "gpsviz-index-slider"), (self.index_box, "gpsviz-index-text"),
             (self.preset_dropdown, "gpsviz-preset"), (self.strength_slider, "gpsviz-strength-slider"),
             (self.resample_button, "gpsviz-resample"), (self.image, "gpsviz-figure"),
             (self.status, "gpsviz-state")))
        self.index_slider.observe(self._on_change, names="value")
        self.preset_dropdown.observe(self._on_change, names="value")
        self.strength_slider.observe(self._on_change, names="value")
        self.resample_button.on_click(self._on_resample)
        self.children = [
            widgets.HBox([self.index_slider, self.index_box]),
            widgets.HBox([self.preset_dropdown, self.strength_slider, self.resample_button]),
            self.image,
            self.summary,
            self.status,
        ]
        self.add_class("gpsviz-augment-explorer")
        self._redraw(raise_errors=True)

    # ------------------------------------------------------------------ validation / state
    def _check(self, index=None, preset=None, strength=None) -> None:
        if index is not None and (isinstance(index, bool) or not isinstance(index, (int, np.integer))
                                  or not 0 <= int(index) < self.n):
            raise ConfigError(f"AugmentExplorer: index must be an image index in [0, {self.n - 1}], got {index!r}")
        if preset is not None and preset not in self.presets:
            raise ConfigError(f"AugmentExplorer: unknown preset {preset!r}; this explorer has {self.presets}")
        if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                     or not 0.0 <= float(strength) <= 2.0):
            raise ConfigError(f"AugmentExplorer: strength must be a number in [0, 2], got {strength!r}")

    @property
    def state(self) -> dict:
        """index, preset, strength, draw (how many resamples), params (dict of per-view parameter lists)."""
        return dict(self._state)

    def set_state(self, index: int | None = None, preset: str | None = None, strength: float | None = None,
                  resample: bool = False) -> dict:
        """Move the controls (any subset; ``resample`` draws new views) and redraw once; returns :attr:`state`."""
        self._check(index, preset, strength)
        if resample:
            self.draw += 1
        return self._move_controls([(self.index_slider, None if index is None else int(index)),
                                    (self.preset_dropdown, preset),
                                    (self.strength_slider, None if strength is None else float(strength))])

    def _marker(self, end: str) -> str:
        return (f"{MARKER}: index={self.index_slider.value} preset={self.preset_dropdown.value} "
                f"strength={self.strength_slider.value:.2f} draw={self.draw} {end}")

    # ------------------------------------------------------------------ events

    def _on_resample(self, _button=None) -> None:
        self.draw += 1
        self._redraw()

    def _redraw(self, raise_errors: bool = False) -> None:
        index, preset = int(self.index_slider.value), str(self.preset_dropdown.value)
        strength = float(self.strength_slider.value)
        self._set_status(self._marker("busy"))
        try:
            aug = Augmenter(preset, strength=strength)
            image = self.dataset.images[index]                                   # uint8 C×H×W
            batch = image.unsqueeze(0).expand(self.n_views, *image.shape).contiguous()
            views, params = aug(batch, generator=make_generator(self.seed + 1000003 * self.draw))
            label = int(self.dataset.labels[index]) if len(self.dataset.labels) else -1
            cls = self.dataset.classes[label] if 0 <= label < len(self.dataset.classes) else "?"
            fig = plot_views(image, views, params, mean=aug.mean, std=aug.std, fig=new_figure(),
                             title=f"image #{index} ({cls}) · preset {preset} · strength {strength:.2f}",
                             max_width=FIGURE_WIDTH_IN)
            show_figure(self.image, fig, dpi=self.dpi)
        except Exception as e:
            self._show_error("Could not draw the views", e, raise_errors)
            return
        self.summary.value = (
            '<div style="font-size:14px">'
            f"{self.n_views} views of image #{index} drawn with preset <b>{html.escape(preset)}</b> at strength "
            f"<b>{strength:.2f}</b> (draw {self.draw}; press <i>resample</i> for new random parameters).</div>")
        self._state = {"index": index, "preset": preset, "strength": strength, "draw": self.draw,
                       "params": {k: torch.as_tensor(v).tolist() for k, v in params.to_dict().items()}}
        self._set_status(self._marker("done"))


__all__ = ["AugmentExplorer"]
