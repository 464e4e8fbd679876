"""OODExplorer: an image's augmented views ranked by the UOTA weight the loss used, over training.

Example (a notebook cell)::

    from gpsviz.widgets import OODExplorer
    runs = {"UOTA-SwAV": "data/runs/nb04-uota-swav-…"}          # run folders holding view_weights.pt
    explorer = OODExplorer(train_ds, runs)
    explorer                                   # run menu, image slider + box, "random", epoch slider, figures
    explorer.set_state(image=12, epoch=3)
    explorer.state["auroc"]                   # AUROC of the epoch over all recorded views

The weights are read from each run's :class:`~gpsviz.view_weights.ViewWeightLog` (what the training step's loss
used, recorded by :class:`~gpsviz.view_weights.ViewWeightRecorder`); nothing is recomputed. The view images are a
replay of the recorded augmentation parameters (``Augmenter.apply``), and each view's coverage is the object mask
× its recorded crop box. Shown per redraw: the image with its M crop boxes, each numbered by its view's rank, and
the views ranked by weight (red frame = misses the object), a table of weight / coverage / parameters, the epoch's
weight histograms of views that keep vs miss the object, and the AUROC over training with the current epoch marked.
The weight is shown × M (UOTA's weights sum to 1 over the M views of a training batch, so 1 = uniform), and the
figure and the table say so where they show it. After each redraw the status
line reads ``ood-state: run=<name> image=<row> epoch=<e> views=<m> auroc=<a> done``; browser tests wait for it.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping

import ipywidgets as widgets
import numpy as np
import torch

from gpsviz.checkpoint import load_checkpoint
from gpsviz.errors import ConfigError, GpsvizError
from gpsviz.plots.uota import (MISS_COLOUR, WEIGHT_DEFINITION, plot_auroc_over_training, plot_ranked_views,
                               plot_weight_histogram)
from gpsviz.utils import read_json
from gpsviz.view_weights import ViewWeightLog, ground_truth, load_view_weights, uota_auroc
from gpsviz.widgets.controls import (FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, check_run_dataset, fmt_value,
                                     index_controls, new_figure, other_index, replay_views, run_data, show_figure,
                                     tag)
from gpsviz.widgets.controls import fmt_marker as _fmt

MARKER = "ood-state"


class OODExplorer(StatusMixin, widgets.VBox):
    """Interactive view of UOTA's view weights against the object coverage (see the module docstring).

    Args:
        dataset: the runs' training split (ImageDataset with ``masks``: the cluttered shapes world).
        runs: ``{name: run folder or ViewWeightLog}``; a single folder / log is named "run".
        image: dataset row shown at start (must be a probe image of the log).
        epoch: epoch shown at start (default: the last recorded).
        aug: augmentation preset used to replay the views (default: each run's config, else "strong").
        threshold: coverage below which a view "misses" the object (0.10).
        start_epoch: where the loss starts using the weights, drawn on the AUROC curve (default: from the log's
            ``applied`` flags).
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError (a ValueError): no runs, a log without views, a dataset without masks, image/epoch unknown.
        DataError (a ValueError): a run folder whose config names another dataset or image size.
    """

    def __init__(self, dataset, runs, *, image: int | None = None, epoch: int | None = None, aug: str | None = None,
                 threshold: float = 0.10, seed: int = 0, dpi: float = FIGURE_DPI):
        super().__init__()

        if getattr(dataset, "masks", None) is None:
            raise ConfigError("OODExplorer needs a dataset with object masks (the shapes world, e.g. "
                              "load_dataset('shapes', 'train', clutter=1.0))")
        if isinstance(runs, (str, Path, ViewWeightLog)):
            runs = {"run": runs}
        if not isinstance(runs, Mapping) or not runs:
            raise ConfigError("OODExplorer: give runs={name: run folder (with view_weights.pt) or ViewWeightLog}")
        self.dataset, self.threshold, self.dpi = dataset, float(threshold), float(dpi)
        self.logs: dict[str, ViewWeightLog] = {}
        self.coverage: dict[str, torch.Tensor] = {}
        self.augs: dict[str, str] = {}
        for name, r in runs.items():
            if not isinstance(r, ViewWeightLog):                # a run of another dataset: one clear error
                info = run_data(r)
                check_run_dataset(str(name), dataset, info["data"], info["data_options"], info["in_channels"],
                                  info["image_size"], data_digest=self._run_digest(r))
            log = r if isinstance(r, ViewWeightLog) else load_view_weights(r)
            if len(log) == 0:
                raise ConfigError(f"OODExplorer: run {name!r} recorded no views")
            if int(log.data["row"].max()) >= len(dataset.images):
                raise ConfigError(f"OODExplorer: run {name!r} has views of row {int(log.data['row'].max())}, but "
                                  f"the dataset has {len(dataset.images)} images; give the run's training split")
            self.logs[str(name)] = log
            self.coverage[str(name)] = ground_truth(log, dataset, self.threshold)["coverage"]
            self.augs[str(name)] = aug or self._run_aug(r)
        self.names = list(self.logs)
        self._auroc: dict[str, tuple[list[int], list[float]]] = {n: self._auroc_curve(n) for n in self.names}
        first = self.logs[self.names[0]]
        self.rows = first.rows
        self._rng = np.random.default_rng(seed)
        self._hold = False
        self._state: dict = {}
        epochs = first.epochs
        start_row = self.rows[0] if image is None else image
        if start_row not in self.rows:
            raise ConfigError(f"OODExplorer: image {image!r} is not a probe image of the log; probe rows are "
                              f"{self.rows[0]}…{self.rows[-1]} ({len(self.rows)} images)")
        ep = epochs[-1] if epoch is None else epoch
        if ep not in epochs:
            raise ConfigError(f"OODExplorer: epoch {epoch!r} was not recorded; epochs: {epochs}")

        wide = {"description_width": "initial"}
        self.run_dropdown = widgets.Dropdown(options=self.names, value=self.names[0], description="run",
                                             style=wide, layout=widgets.Layout(width="260px"))
        self.image_slider, self.image_box = index_controls(len(self.rows), self.rows.index(start_row), "image")
        self.random_button = widgets.Button(description="random", tooltip="show a random probe image",
                                            layout=widgets.Layout(width="90px"))
        self.epoch_slider = widgets.IntSlider(value=int(ep), min=epochs[0], max=epochs[-1], description="epoch",
                                              continuous_update=False, style=wide,
                                              layout=widgets.Layout(width="360px"))
        self.views_image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.stats_image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.run_dropdown, "gpsviz-run"), (self.image_slider, "gpsviz-image-slider"),
             (self.image_box, "gpsviz-image-text"), (self.random_button, "gpsviz-random"),
             (self.epoch_slider, "gpsviz-epoch-slider"), (self.views_image, "gpsviz-figure"),
             (self.stats_image, "gpsviz-stats-figure"), (self.status, "gpsviz-state")))
        for w in (self.run_dropdown, self.image_slider, self.epoch_slider):
            w.observe(self._on_change, names="value")
        self.random_button.on_click(self._on_random)
        self.children = [widgets.HBox([self.run_dropdown, self.epoch_slider]),
                         widgets.HBox([self.image_slider, self.image_box, self.random_button]),
                         self.views_image, self.summary, self.stats_image, self.status]
        self.add_class("gpsviz-ood-explorer")
        self._redraw(raise_errors=True)

    # ------------------------------------------------------------------ data
    @staticmethod
    def _run_digest(r) -> str | None:
        """The digest of the training data in the run's checkpoint (the log's rows index that data); None when
        the folder has no readable checkpoint or it predates the digest."""

        p = Path(r)
        p = p.parent if p.is_file() else p                # view_weights.pt given: its run folder
        if not (p / "checkpoint.pt").is_file():
            return None
        try:
            return load_checkpoint(p).get("data_digest")
        except GpsvizError:                       # the explorer only needs view_weights.pt
            return None

    @staticmethod
    def _run_aug(r) -> str:
        cfg = read_json(Path(r) / "config.json") if isinstance(r, (str, Path)) else None
        return cfg["aug"] if isinstance(cfg, dict) and isinstance(cfg.get("aug"), str) and cfg["aug"] else "strong"

    def _auroc_curve(self, name: str) -> tuple[list[int], list[float]]:
        log, cov = self.logs[name], self.coverage[name]
        score = log.scores()
        eps = log.epochs
        return eps, [uota_auroc(score[log.data["epoch"] == e], cov[log.data["epoch"] == e], self.threshold)
                     for e in eps]

    def start_epoch(self, name: str) -> float | None:
        """First epoch in which the loss used UOTA's weights (None when it never did)."""
        log = self.logs[name]
        applied = log.data["applied"]
        return float(log.data["epoch"][applied].min()) if bool(applied.any()) else None

    def views_of(self, name: str, row: int, epoch: int) -> dict:
        """The recorded views of ``row`` in ``epoch`` (plan order): weights (× M), uota_weights, coverage,
        is_global, params (list of dicts), per_view loss, applied."""
        log = self.logs[name]
        sel = (log.data["epoch"] == int(epoch)) & (log.data["row"] == int(row))
        idx = sel.nonzero().flatten()
        idx = idx[torch.argsort(log.data["slot"][idx], stable=True)]
        sub = {k: v[idx] for k, v in log.data.items()}
        return {"weights": log.scores()[idx].tolist(), "loss_weights": sub["weight"].tolist(),
                "coverage": self.coverage[name][idx].tolist(), "is_global": sub["is_global"].tolist(),
                "params": [dict(zip(log.param_names, p)) for p in sub["params"].tolist()],
                "per_view": sub["per_view"].tolist(), "applied": bool(sub["applied"].any()) if len(idx) else False,
                "values": sub["params"]}

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict:
        """What is shown: run, image (dataset row), epoch, auroc (the epoch's, all recorded views), views (list of
        dicts: weight, coverage, global, params, ranked by weight)."""
        return dict(self._state)

    def set_state(self, run: str | None = None, image: int | None = None, epoch: int | None = None) -> dict:
        """Move the controls (any subset; ``image`` is a dataset row) and redraw once; returns :attr:`state`."""
        if run is not None and run not in self.names:
            raise ConfigError(f"OODExplorer: unknown run {run!r}; this explorer has {self.names}")
        if image is not None and image not in self.rows:
            raise ConfigError(f"OODExplorer: image {image!r} is not a probe image ({len(self.rows)} probe rows, "
                              f"{self.rows[0]}…{self.rows[-1]})")
        if epoch is not None and not self.epoch_slider.min <= int(epoch) <= self.epoch_slider.max:
            raise ConfigError(f"OODExplorer: epoch {epoch!r} was not recorded; epochs "
                              f"{self.epoch_slider.min}…{self.epoch_slider.max}")
        return self._move_controls([(self.run_dropdown, run),
                                    (self.image_slider, None if image is None else self.rows.index(int(image))),
                                    (self.epoch_slider, None if epoch is None else int(epoch))])

    def _marker(self, end: str, n_views: int | None = None, auroc: float | None = None) -> str:
        row = self.rows[int(self.image_slider.value)]
        s = (f"{MARKER}: run={str(self.run_dropdown.value).replace(' ', '_')} image={row} "
             f"epoch={self.epoch_slider.value}")
        if n_views is not None:
            s += f" views={n_views} auroc={_fmt(auroc)}"
        return f"{s} {end}"

    def _on_random(self, _button=None) -> None:
        self.image_slider.value = other_index(self._rng, len(self.rows), int(self.image_slider.value))

    def _redraw(self, raise_errors: bool = False) -> None:
        name, epoch = str(self.run_dropdown.value), int(self.epoch_slider.value)
        row = self.rows[int(self.image_slider.value)]
        self._set_status(self._marker("busy"))
        try:
            v = self.views_of(name, row, epoch)
            eps, au = self._auroc[name]
            auroc = au[eps.index(epoch)] if epoch in eps else float("nan")
            if v["weights"]:
                views = replay_views(self.dataset.images, row, v["values"], self.augs[name])
                used = "used by the loss" if v["applied"] else "warm-up: the loss still used uniform weights"
                fig = plot_ranked_views(self.dataset.images[row], views, v["weights"], v["coverage"], v["params"],
                                        v["is_global"], self.threshold, fig=new_figure(), width=FIGURE_WIDTH_IN,
                                        title=f"{name} · image #{row} · epoch {epoch}: its {len(views)} views ranked "
                                              f"by UOTA weight ({used})")
            else:                          # say so, rather than keep the previous image's views on screen
                fig = new_figure()
                fig.set_size_inches(FIGURE_WIDTH_IN, 0.8)
                fig.text(0.5, 0.5, f"image #{row} has no recorded views in epoch {epoch} (it was in the dropped "
                                   "last batch): pick another image or epoch", ha="center", va="center", fontsize=11)
            show_figure(self.views_image, fig, dpi=self.dpi)
            log = self.logs[name]
            sel = log.data["epoch"] == epoch
            fig2 = new_figure()
            fig2.set_size_inches(FIGURE_WIDTH_IN, 4.4)
            fig2.set_layout_engine("constrained", w_pad=0.1)          # room for the legends below the panels
            a1, a2 = fig2.subplots(1, 2)
            plot_weight_histogram(log.scores()[sel], self.coverage[name][sel], self.threshold, ax=a1,
                                  title=f"epoch {epoch}: weights of all recorded views")
            plot_auroc_over_training({name: self._auroc[name]}, start_epoch=self.start_epoch(name), current=epoch,
                                     ax=a2)
            show_figure(self.stats_image, fig2, dpi=self.dpi)
        except Exception as e:
            self._show_error(f"Could not show image {row} of {name} at epoch {epoch}", e, raise_errors)
            return
        ranked = sorted(range(len(v["weights"])), key=lambda j: -v["weights"][j])
        lines = []
        for r, j in enumerate(ranked):
            p = v["params"][j]
            miss = v["coverage"][j] < self.threshold
            colour = f' style="color:{MISS_COLOUR}"' if miss else ""
            lines.append(
                f"<tr{colour}><td>{r + 1}</td><td>{fmt_value(v['weights'][j])}</td>"
                f"<td>{fmt_value(100 * v['coverage'][j], '.0f')} %</td>"
                f"<td>{'global' if v['is_global'][j] else 'local'}</td>"
                f"<td>{p['crop_h']:.0f}×{p['crop_w']:.0f} at ({p['crop_y']:.0f}, {p['crop_x']:.0f})</td>"
                f"<td>{'yes' if p['flip'] > 0.5 else 'no'}</td>"
                f"<td>{p['brightness']:.2f} / {p['contrast']:.2f} / {p['saturation']:.2f} / {p['hue']:.2f}</td>"
                f"<td>{'yes' if p['grayscale'] > 0.5 else 'no'}</td><td>{v['per_view'][j]:.3f}</td></tr>")
        if lines:
            table = ("<table style='font-size:12px'><tr><th>rank</th><th>weight w (× M, 1 = uniform)</th>"
                     "<th>coverage (% of the object)</th>"
                     "<th>kind</th><th>crop box h×w at (y, x)</th><th>flip</th><th>b / c / s / h</th>"
                     "<th>gray</th><th>view loss</th></tr>" + "".join(lines) + "</table>")
        else:
            table = (f"<i>image #{row} was not in a training batch in epoch {epoch} (the last, partial batch of "
                     "each epoch is dropped): pick another image or epoch.</i>")
        no_auroc = "n/a (in this epoch the recorded views all keep the object, or all miss it)"
        self.summary.value = (
            f'<div style="font-size:13px;line-height:1.5"><b>AUROC of epoch {epoch}</b> (low weight finds views '
            f"with coverage &lt; {100 * self.threshold:.0f} %, all recorded views): "
            f"{fmt_value(auroc, missing=no_auroc)}.<br>{html.escape(WEIGHT_DEFINITION)}. Coverage = the share of "
            f"the object inside the view; <span style='color:{MISS_COLOUR}'>red</span> = misses the object."
            f"<br>{table}</div>")
        views = [{"weight": v["weights"][j], "coverage": v["coverage"][j], "global": v["is_global"][j],
                  "params": v["params"][j]} for j in ranked]
        self._state = {"run": name, "image": row, "epoch": epoch, "auroc": auroc, "views": views,
                       "applied": v["applied"]}
        self._set_status(self._marker("done", len(views), auroc))


__all__ = ["OODExplorer"]
