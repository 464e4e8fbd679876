"""EmbeddingExplorer: two runs' embeddings side by side as 2-D maps, one image selected in both, and what each run's
training knew about it: its nearest neighbours in each embedding and in the prior, the positives its loss used,
and the views (with their UOTA weights) a UOTA run recorded.

Example (a notebook cell)::

    from gpsviz.runs import load_data
    from gpsviz.widgets import EmbeddingExplorer
    train_ds = load_data(TrainConfig.from_dict(cfg))[0]          # the runs' training split
    explorer = EmbeddingExplorer(train_ds, {"SimCLR": run_a, "GPS-SimCLR": run_b}, prior="hog-invariant")
    explorer                    # run A / run B menus, "colour by" menu, point slider + box, "random", k slider
    explorer.set_state(point=12, factor="colour", k=4)
    explorer.state["positives"]["GPS-SimCLR"]                  # the candidates the GPS loss drew its partner from

Each run's frozen backbone embeds the first ``n`` images once (kept in memory, with its 2-D map by PCA or UMAP and
an exact k-NN search, self excluded); the prior is computed once (``compute_prior``, cached on disk). The positives
are read from each run's checkpoint (the source's saved state: GPS's neighbour table, SPPS's semantic sets with
their threshold; SupCon's are the image's class, SimCLR-like runs have none but the image's own augmentations); the
views from ``view_weights.pt`` (UOTA runs). Moving a control only redraws (a run not shown before is embedded
first). After each redraw the status line reads
``embedding-state: point=<i> run_a=<name> run_b=<name> factor=<f> k=<k> done`` (visually hidden; browser tests wait
for it).
"""
from __future__ import annotations

import html
import inspect
from pathlib import Path
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch

from gpsviz.augment.params import PARAM_NAMES
from gpsviz.checkpoint import backbone_of, load_checkpoint, resolve_checkpoint_path
from gpsviz.errors import ConfigError
from gpsviz.features import extract_features
from gpsviz.knn import knn_search
from gpsviz.plots.embedding import NEUTRAL_COLOUR, EmbeddingMap, Tile, TileRow, plot_embedding_explorer
from gpsviz.plots.neighbours import DIFF_COLOUR, SAME_COLOUR, UNKNOWN_COLOUR
from gpsviz.plots.training import embed_2d
from gpsviz.positives.neighbours import NeighbourPositives
from gpsviz.positives.semantic import SemanticSetPositives
from gpsviz.priors import available_priors, compute_prior
from gpsviz.view_weights import FILE_NAME, ViewWeightLog, load_view_weights
from gpsviz.widgets.controls import (FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, check_run_dataset, fmt_value,
                                     index_controls, new_figure, other_index, replay_views, show_figure, tag)

MARKER = "embedding-state"
METHODS = ("pca", "umap")
METRICS = ("cosine", "l2")
#: how each metric's distance is named in the figure
DISTANCE_NAMES = {"cosine": "cosine distance 1 − cos", "l2": "squared L2 distance"}


def _default(cls: type, name: str) -> Any:
    """The default of a constructor option of a positive source (what a run without that option used)."""
    return inspect.signature(cls.__init__).parameters[name].default


class EmbeddingExplorer(StatusMixin, widgets.VBox):
    """Interactive 2-D maps of runs' backbone embeddings, with one image selected in all of them (see the module
    docstring).

    Args:
        dataset: the runs' training split (ImageDataset: ``images`` uint8 N×C×H×W, ``labels``, ``targets(name)``,
            ``target_names()``), e.g. ``gpsviz.runs.load_data(TrainConfig.from_dict(cfg))[0]``: the positives and
            the recorded views index its rows.
        runs: ``{name: run folder}`` (a single folder is named "run"); each holds ``checkpoint.pt`` (and
            ``view_weights.pt`` for a UOTA run). Run A and run B are picked from them (the first two at start).
        factors: what the maps can be coloured by (names of ``dataset.target_names()``, or ``"a×b"``); default
            all of them.
        factor: the factor at start (default ``"label"`` when the dataset has labels, else the first).
        prior: the prior space whose nearest neighbours are shown (a name of ``gpsviz.priors.available_priors``).
        prior_options: options of the prior (``compute_prior``), e.g. ``{"dim": 32}`` for ``pca``.
        n: images embedded and mapped (the first ``n`` rows; at most the dataset's size).
        method: ``"pca"`` (default, instant) or ``"umap"`` (``umap-learn``; its first call compiles for a minute).
        k: neighbours (and positives) shown at start; ``max_k``: the slider's end (at most ``n − 1``).
        point: the selected image at start (a row < ``n``); ``seed``: of the "random" button and of UMAP.
        metric: distance of the nearest neighbours in the runs' embeddings (``"cosine"`` or ``"l2"``);
            ``prior_metric``: in the prior space (default ``"l2"``, what GPS uses).
        root: data folder of the prior cache (default ``$GPSVIZ_DATA`` or ``./data``).
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError (a ValueError): no runs, an unknown factor, prior, method or metric, ``n``, ``k`` or ``point``
            out of range.
        DataError (a ValueError): a run trained on another dataset (other channels, image size or images): the
            message names the run.
        CheckpointError: a run folder without a readable checkpoint.
    """

    def __init__(self, dataset, runs, *, factors: Sequence[str] | None = None, factor: str | None = None,
                 prior: str = "hog-invariant", prior_options: Mapping[str, Any] | None = None, n: int = 1000,
                 method: str = "pca", k: int = 8, max_k: int = 16, point: int = 0, seed: int = 0,
                 metric: str = "cosine", prior_metric: str = "l2", root=None, dpi: float = FIGURE_DPI):
        super().__init__()
        images = getattr(dataset, "images", None)
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or getattr(dataset, "labels", None) is None:
            raise ConfigError("EmbeddingExplorer: dataset must be an ImageDataset (images uint8 N×C×H×W and labels), "
                              "e.g. gpsviz.runs.load_data(TrainConfig.from_dict(config))[0]")
        if isinstance(runs, (str, Path)):
            runs = {"run": runs}
        if not isinstance(runs, Mapping) or not runs:
            raise ConfigError("EmbeddingExplorer: runs must be {name: run folder} with at least one run, e.g. "
                              "{'SimCLR': 'data/runs/simclr-…', 'GPS-SimCLR': 'data/runs/gps-simclr-…'}")
        if method not in METHODS:
            raise ConfigError(f"EmbeddingExplorer: method={method!r} is unknown; use one of {list(METHODS)} "
                              "(pca is instant, umap needs umap-learn and compiles on first use)")
        for field, value in (("metric", metric), ("prior_metric", prior_metric)):
            if value not in METRICS:
                raise ConfigError(f"EmbeddingExplorer: {field}={value!r} is unknown; use one of {list(METRICS)}")
        known = list(available_priors())
        if not isinstance(prior, str) or (prior not in known and prior.split(":", 1)[0] not in known):
            raise ConfigError(f"EmbeddingExplorer: prior={prior!r} is unknown; available priors: {known}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 2:
            raise ConfigError(f"EmbeddingExplorer: n must be an integer ≥ 2 (images to map), got {n!r}")
        self.dataset, self.prior, self.method, self.metric, self.prior_metric = dataset, prior, method, metric, \
            prior_metric
        self.prior_options, self.root, self.seed, self.dpi = dict(prior_options or {}), root, int(seed), float(dpi)
        self.n = int(min(int(n), len(images)))
        if self.n < 2:
            raise ConfigError(f"EmbeddingExplorer: the dataset has {len(images)} image(s); it needs at least 2")
        self.sub = dataset.subset(torch.arange(self.n))
        self.labels = torch.as_tensor(dataset.labels).long().cpu()
        self.labelled = bool(getattr(dataset, "labelled", True)) and bool((self.labels[:self.n] >= 0).any())
        if isinstance(max_k, bool) or not isinstance(max_k, (int, np.integer)) or int(max_k) < 1:
            raise ConfigError(f"EmbeddingExplorer: max_k must be an integer ≥ 1, got {max_k!r}")
        self.max_k = int(min(int(max_k), self.n - 1))
        self.factors = self._check_factors(factors)
        start_factor = factor if factor is not None else ("label" if "label" in self.factors else self.factors[0])
        self._check_factor(start_factor)
        self._check_k(k)
        self._check_point(point)

        self._runs: dict[str, dict[str, Any]] = {}
        for name, folder in runs.items():
            self._runs[str(name)] = self._load_run(str(name), folder)
        self.names = list(self._runs)
        self._features: dict[str, torch.Tensor] = {}
        self._coords: dict[str, np.ndarray] = {}
        self._tables: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._prior_table: tuple[torch.Tensor, torch.Tensor] | None = None
        self._rng = np.random.default_rng(seed)
        self._hold = False
        self._state: dict = {}

        wide = {"description_width": "initial"}
        run_b = self.names[1] if len(self.names) > 1 else self.names[0]
        self.run_a_dropdown = widgets.Dropdown(options=self.names, value=self.names[0], description="run A",
                                               style=wide, layout=widgets.Layout(width="300px"))
        self.run_b_dropdown = widgets.Dropdown(options=self.names, value=run_b, description="run B", style=wide,
                                               disabled=len(self.names) == 1, layout=widgets.Layout(width="300px"))
        self.factor_dropdown = widgets.Dropdown(options=self.factors, value=start_factor, description="colour by",
                                                style=wide, layout=widgets.Layout(width="240px"))
        self.point_slider, self.point_box = index_controls(self.n, point, "point")
        self.random_button = widgets.Button(description="random", tooltip="select a random image",
                                            layout=widgets.Layout(width="90px"))
        self.k_slider = widgets.IntSlider(value=int(k), min=1, max=self.max_k, description="k",
                                          continuous_update=False, style=wide, layout=widgets.Layout(width="300px"))
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.run_a_dropdown, "gpsviz-run-a"), (self.run_b_dropdown, "gpsviz-run-b"),
             (self.factor_dropdown, "gpsviz-factor"), (self.point_slider, "gpsviz-point-slider"),
             (self.point_box, "gpsviz-point-text"), (self.random_button, "gpsviz-random"),
             (self.k_slider, "gpsviz-k-slider"), (self.image, "gpsviz-figure"), (self.status, "gpsviz-state")))
        for w in (self.run_a_dropdown, self.run_b_dropdown, self.factor_dropdown, self.point_slider, self.k_slider):
            w.observe(self._on_change, names="value")
        self.random_button.on_click(self._on_random)
        self.children = [widgets.HBox([self.run_a_dropdown, self.run_b_dropdown, self.factor_dropdown]),
                         widgets.HBox([self.point_slider, self.point_box, self.random_button]),
                         self.k_slider, self.image, self.summary, self.status]
        self.add_class("gpsviz-embedding-explorer")
        self.prior_neighbours()                         # the prior once, whatever is shown
        self._redraw(raise_errors=True)

    # ------------------------------------------------------------------ validation
    def _check_factors(self, factors) -> list[str]:
        names = list(self.dataset.target_names()) if factors is None else \
            ([factors] if isinstance(factors, str) else [str(f) for f in factors])
        if not names:
            raise ConfigError("EmbeddingExplorer: the dataset has no factor to colour the maps by (no labels and no "
                              "categorical factor); give a labelled dataset")
        bad = [f for f in names if not self.dataset.has_target(f)]
        if bad:
            raise ConfigError(f"EmbeddingExplorer: factors {bad} are not targets of the dataset; choose among "
                              f"{self.dataset.target_names()} (or a pair 'a×b')")
        return list(dict.fromkeys(names))

    def _check_factor(self, factor) -> None:
        if factor not in self.factors:
            raise ConfigError(f"EmbeddingExplorer: factor {factor!r} is not offered; this explorer colours by "
                              f"{self.factors} (pass factors=[...] when you build it for others)")

    def _check_k(self, k) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= self.max_k:
            raise ConfigError(f"EmbeddingExplorer: k must be an integer between 1 and max_k={self.max_k}, got {k!r}"
                              " (raise max_k when you build the explorer to see more neighbours)")

    def _check_point(self, point) -> None:
        if isinstance(point, bool) or not isinstance(point, (int, np.integer)) or not 0 <= int(point) < self.n:
            raise ConfigError(f"EmbeddingExplorer: point must be an image index in [0, {self.n - 1}] (the mapped "
                              f"first n={self.n} images), got {point!r}")

    def _check_run(self, run, field: str) -> None:
        if run not in self.names:
            raise ConfigError(f"EmbeddingExplorer: {field}={run!r} is not one of this explorer's runs {self.names}")

    # ------------------------------------------------------------------ runs
    def _load_run(self, name: str, folder) -> dict[str, Any]:
        """A run's checkpoint (config, positives state, backbone weights) and view log, checked against the
        dataset: a run of other data is refused with a DataError naming it."""
        path = Path(folder)
        ck = load_checkpoint(path)
        cfg = ck["config"]
        size = ck.get("image_size") if isinstance(ck.get("image_size"), int) else None
        check_run_dataset(name, self.dataset, cfg.get("data"), cfg.get("data_options"), ck["in_channels"], size,
                          data_digest=ck.get("data_digest"))
        folder_path = path.parent if path.is_file() else path
        log = load_view_weights(folder_path) if (folder_path / FILE_NAME).is_file() else None
        light = {key: ck[key] for key in ("backbone", "config", "in_channels")}
        return {"path": folder_path, "checkpoint": light, "config": cfg, "positives": ck.get("positives"),
                "log": log}

    def features(self, run: str) -> torch.Tensor:
        """float32 n×D: the run's frozen backbone features of the first n images (computed once)."""
        self._check_run(run, "run")
        if run not in self._features:
            info = self._runs[run]
            backbone = backbone_of(info["checkpoint"], resolve_checkpoint_path(info["path"]))
            self._features[run] = extract_features(backbone, self.sub).float().cpu()
        return self._features[run]

    def coords(self, run: str) -> np.ndarray:
        """n×2: the run's 2-D map (``method``)."""
        if run not in self._coords:
            self._coords[run] = np.asarray(embed_2d(self.features(run), method=self.method, seed=self.seed))
        return self._coords[run]

    def neighbours(self, run: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distances float32 n×max_k, indices int64 n×max_k)`` in the run's embedding (``metric``, exact,
        self excluded, nearest first)."""
        if run not in self._tables:
            d, i = knn_search(self.features(run), None, k=self.max_k, metric=self.metric, exclude_self=True)
            self._tables[run] = (d.float().cpu(), i.long().cpu())
        return self._tables[run]

    def prior_embedding(self) -> torch.Tensor:
        """float32 n×D: the prior's embedding of the first n images (``compute_prior``, disk cache)."""
        emb = compute_prior(self.prior, self.sub, root=self.root, progress=False, **self.prior_options)
        return torch.as_tensor(emb).detach().float().cpu()

    def prior_neighbours(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(distances, indices)`` n×max_k in the prior space (``prior_metric``, exact, self excluded)."""
        if self._prior_table is None:
            d, i = knn_search(self.prior_embedding(), None, k=self.max_k, metric=self.prior_metric,
                              exclude_self=True)
            self._prior_table = (d.float().cpu(), i.long().cpu())
        return self._prior_table

    def positives(self, run: str, point: int) -> dict[str, Any]:
        """The positives the run's loss used for dataset row ``point``, read from its checkpoint: ``source`` (the
        positives slot), ``rows`` (int list: GPS's candidates, the SPPS set's members, every other image of the
        class for SupCon, none for the image's own augmentations), ``scores`` (prior distance / cosine similarity
        per row, or None), ``score`` (what the scores are), ``detail`` and ``note`` (text)."""
        self._check_run(run, "run")
        info = self._runs[run]
        cfg, state = info["config"], info["positives"]
        source = str(cfg.get("positives") or "self")
        opts = dict(cfg.get("positives_options") or {})
        out: dict[str, Any] = {"source": source, "rows": [], "scores": None, "score": None, "detail": "",
                               "note": ""}
        n_rows = len(self.labels)
        if source == "self":
            out["detail"] = "positives slot: self (plain SSL)"
            out["note"] = ("only other augmentations of this image: no other image is ever its positive")
            return out
        if source == "labels":
            lab = int(self.labels[point])
            rows = (self.labels == lab).nonzero().flatten()
            out["rows"] = [int(r) for r in rows.tolist() if r != point]
            cls = self._class_name(lab)
            out["detail"] = (f"positives slot: labels (SupCon): every image of its class ({cls}) is a positive — "
                             f"{len(out['rows'])} other images of the {n_rows} training images")
            return out
        if not isinstance(state, dict) or state.get("table") is None:
            out["note"] = (f"the checkpoint holds no positives table of the {source!r} source (an older run): train "
                           "it again to see them")
            return out
        table = torch.as_tensor(state["table"]).long()
        if table.shape[0] != n_rows:
            out["note"] = (f"the saved {source!r} table has {table.shape[0]} rows but the dataset has {n_rows}: "
                           "give the run's own training split")
            return out
        if source == "neighbours":
            valid = torch.as_tensor(state["valid"]).bool()
            count = int(valid[point].sum())
            out["rows"] = table[point, :count].tolist()
            dist = state.get("distances")
            out["scores"] = None if dist is None else torch.as_tensor(dist)[point, :count].float().tolist()
            metric = opts.get("metric", _default(NeighbourPositives, "metric"))
            out["score"] = DISTANCE_NAMES.get(metric, metric) + " in the prior"
            prior = opts.get("prior", _default(NeighbourPositives, "prior"))
            radius = opts.get("radius", _default(NeighbourPositives, "radius"))
            choice = opts.get("choice", _default(NeighbourPositives, "choice"))
            tau = fmt_value(None if state.get("tau") is None else float(state["tau"]))
            if radius is None:
                rule = f"its k={opts.get('k', _default(NeighbourPositives, 'k'))} nearest"
            elif radius == "adaptive":
                rule = f"the images inside the adaptive ball (τ = {tau}) among its nearest"
            else:
                rule = f"the images inside the ball of radius τ = {tau} among its nearest"
            refresh = int(opts.get("refresh_every", 0) or 0)
            where = ("the model's own features (the table of its last refresh)" if prior == "model" or refresh
                     else f"prior {prior}")
            pick = "uniformly" if choice == "uniform" else "the farthest"
            out["detail"] = (f"positives slot: neighbours (GPS): {rule} in {where}; each step pairs the image with "
                             f"one of them, drawn {pick}; d = {out['score']}")
            if count == 0:
                out["note"] = "its ball is empty: the loss paired the image with itself (two augmentations)"
            return out
        if source == "semantic":
            sims = torch.as_tensor(state["sims"]).float()
            threshold = float(state["threshold"])
            keep = sims[point] >= threshold
            out["rows"] = table[point][keep].tolist()
            out["scores"] = sims[point][keep].tolist()
            out["score"] = "cosine similarity in the prior"
            prior = opts.get("prior", _default(SemanticSetPositives, "prior"))
            k_set = int(table.shape[1])
            out["detail"] = (f"positives slot: semantic (SPPS): of its {k_set} nearest in prior {prior}, those with "
                             f"cosine similarity s ≥ {threshold:.3f} (the saved threshold) — views of them are added "
                             f"as extra positives")
            if not out["rows"]:
                out["note"] = "empty set: no neighbour reaches the threshold, only the image's own views are positives"
            return out
        out["note"] = f"positives source {source!r}: this explorer does not know how to read its saved state"
        return out

    def views(self, run: str, point: int) -> dict[str, Any] | None:
        """The views of row ``point`` the run recorded in its last epoch (None: the run recorded no views — only
        runs trained with a ``ViewWeightRecorder`` do, e.g. notebook 07's UOTA and CASSLE runs): ``epoch``, ``weights`` (w = UOTA weight × M, 1 = uniform), ``global``, ``slot``,
        ``params`` (AugParams values, plan order); empty lists when the image has no views in that epoch;
        ``probe`` (the recorded rows)."""
        self._check_run(run, "run")
        log: ViewWeightLog | None = self._runs[run]["log"]
        if log is None:
            return None
        epoch = log.epochs[-1] if len(log) else 0
        sel = (log.data["epoch"] == epoch) & (log.data["row"] == int(point))
        idx = sel.nonzero().flatten()
        idx = idx[torch.argsort(log.data["slot"][idx], stable=True)]
        return {"epoch": epoch, "weights": log.scores()[idx].tolist(), "global": log.data["is_global"][idx].tolist(),
                "slot": log.data["slot"][idx].tolist(), "params": log.data["params"][idx], "probe": log.rows,
                "applied": bool(log.data["applied"][idx].any()) if len(idx) else False}

    def _preset(self, run: str) -> str:
        """The augmentation preset ``run`` trained with (what its recorded views are redrawn with)."""
        return str(self._runs[run]["config"].get("aug") or "strong")

    def _descriptor_html(self, run: str, point: int) -> str:
        """For a CASSLE run (conditioned head) that recorded views of ``point``: what its head read about each
        view — the augmentation parameters its descriptor is built from — as one HTML line per view; "" else."""
        if self._runs[run]["config"].get("head") != "conditioned":
            return ""
        v = self.views(run, point)
        if not v or not v["weights"]:
            return ""
        h, w = (int(x) for x in self.dataset.images.shape[-2:])
        lines = []
        for j, row in enumerate(v["params"].tolist()):
            p = dict(zip(PARAM_NAMES, row))
            jitter = (f"brightness ×{p['brightness']:.2f}, contrast ×{p['contrast']:.2f}, saturation "
                      f"×{p['saturation']:.2f}, hue {p['hue']:+.2f} turn" if p["jitter"] else "no colour jitter")
            lines.append(f"view {j + 1} ({'global' if v['global'][j] else 'local'}): crop "
                         f"{100 * p['crop_h'] * p['crop_w'] / (h * w):.0f} % of the image, "
                         f"{'flipped' if p['flip'] else 'not flipped'}, {jitter}, "
                         f"{'grayscale' if p['grayscale'] else 'colour kept'}"
                         + (f", blur σ {p['blur_sigma']:.2f}" if p["blur_sigma"] else ""))
        return (f"<b>What {html.escape(run)}'s conditioned head read</b> (the augmentation of each recorded view of "
                f"#{point}, epoch {v['epoch']}; CASSLE's descriptor is built from these):<br>"
                + "<br>".join(html.escape(t) for t in lines) + "<br>")

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict:
        """What is shown: point, run_a, run_b, factor, k, runs (the runs shown: one when A = B), neighbours
        ({run: rows}) and distances ({run: values}) in each shown run's embedding, prior_neighbours and
        prior_distances, positives ({run: rows}) and positive_sources ({run: slot}), views ({run: list of
        {weight, global, slot} in plan order, or None for a run without a view log})."""
        return dict(self._state)

    def set_state(self, point: int | None = None, run_a: str | None = None, run_b: str | None = None,
                  factor: str | None = None, k: int | None = None) -> dict:
        """Move the controls (any subset) and redraw once; returns :attr:`state`. Raises ConfigError."""
        if point is not None:
            self._check_point(point)
        if run_a is not None:
            self._check_run(run_a, "run_a")
        if run_b is not None:
            self._check_run(run_b, "run_b")
        if factor is not None:
            self._check_factor(factor)
        if k is not None:
            self._check_k(k)
        return self._move_controls([(self.point_slider, None if point is None else int(point)),
                                    (self.run_a_dropdown, run_a), (self.run_b_dropdown, run_b),
                                    (self.factor_dropdown, factor), (self.k_slider, None if k is None else int(k))])

    def _marker(self, end: str) -> str:
        def clean(s: Any) -> str:
            return str(s).replace(" ", "_")

        return (f"{MARKER}: point={self.point_slider.value} run_a={clean(self.run_a_dropdown.value)} "
                f"run_b={clean(self.run_b_dropdown.value)} factor={clean(self.factor_dropdown.value)} "
                f"k={self.k_slider.value} {end}")

    def _on_random(self, _button=None) -> None:
        self.point_slider.value = other_index(self._rng, self.n, int(self.point_slider.value))

    # ------------------------------------------------------------------ drawing
    def _class_name(self, label: int) -> str:
        classes = list(getattr(self.dataset, "classes", []) or [])
        if label < 0 or not self.labelled:
            return "unlabelled"
        return str(classes[label]) if label < len(classes) else str(label)

    def _judge(self, point: int, row: int) -> tuple[str, str]:
        """(frame colour, mark) of ``row`` next to ``point``: same class ✓, other ✗, unknown ?."""
        a, b = int(self.labels[point]), int(self.labels[row])
        if not self.labelled or a < 0 or b < 0:
            return UNKNOWN_COLOUR, "?"
        return (SAME_COLOUR, "✓") if a == b else (DIFF_COLOUR, "✗")

    def _tiles(self, point: int, rows: Sequence[int], scores: Sequence[float] | None, spec: str) -> list[Tile]:
        tiles = []
        for j, r in enumerate(rows):
            colour, mark = self._judge(point, int(r))
            value = f"{scores[j]:{spec}}" if scores is not None else f"#{int(r)}"
            tiles.append(Tile(self.dataset.images[int(r)], f"{mark} {value}", colour))
        return tiles

    def _same(self, point: int, rows: Sequence[int]) -> str:
        if not self.labelled or not len(rows):
            return "n/a"
        lab = int(self.labels[point])
        return f"{int(sum(int(self.labels[int(r)]) == lab for r in rows))}/{len(rows)}"

    def _redraw(self, raise_errors: bool = False) -> None:
        point, k = int(self.point_slider.value), int(self.k_slider.value)
        run_a, run_b, factor = str(self.run_a_dropdown.value), str(self.run_b_dropdown.value), \
            str(self.factor_dropdown.value)
        shown = [run_a] if run_b == run_a else [run_a, run_b]
        self._set_status(self._marker("busy"))
        try:
            nbrs, dists, positives, views, rows = {}, {}, {}, {}, []
            for name in shown:
                d, i = self.neighbours(name)
                nbrs[name], dists[name] = i[point, :k].tolist(), d[point, :k].tolist()
                rows.append(TileRow(f"Nearest in {name}'s embedding",
                                    f"its {k} nearest of the {self.n} mapped images by "
                                    f"{DISTANCE_NAMES[self.metric]} of the backbone features (the number under "
                                    f"each image)", self._tiles(point, nbrs[name], dists[name], ".3f")))
            pd_, pi = self.prior_neighbours()
            prior_rows, prior_d = pi[point, :k].tolist(), pd_[point, :k].tolist()
            rows.append(TileRow(f"Nearest in the prior ({self.prior})",
                                f"its {k} nearest of the {self.n} mapped images by "
                                f"{DISTANCE_NAMES[self.prior_metric]} in the prior space",
                                self._tiles(point, prior_rows, prior_d, ".3g")))
            for name in shown:
                pos = self.positives(name, point)
                positives[name] = pos
                few = pos["rows"][:k]
                spec = ".3g" if pos["score"] and "distance" in pos["score"] else ".2f"
                tiles = self._tiles(point, few, None if pos["scores"] is None else pos["scores"][:k], spec)
                note = pos["note"]
                if len(pos["rows"]) > len(few):
                    note = (note + " " if note else "") + (f"{len(few)} of {len(pos['rows'])} shown (the first, "
                                                           "by row)" if pos["source"] == "labels" else
                                                           f"{len(few)} of {len(pos['rows'])} shown (k = {k})")
                if pos["source"] == "labels":
                    detail = pos["detail"] + "; the number is the image's row"
                elif pos["scores"] is not None:
                    detail = pos["detail"] + ("" if pos["source"] == "neighbours" else
                                              "; s = the number under each image")
                else:
                    detail = pos["detail"]
                rows.append(TileRow(f"Positives that {name}'s loss used", detail, tiles, note))
            for name in shown:
                v = self.views(name, point)
                views[name] = None if v is None else [
                    {"weight": w, "global": g, "slot": s} for w, g, s in zip(v["weights"], v["global"], v["slot"])]
                if v is None:
                    continue
                if v["weights"] and self._runs[name]["config"].get("weighting") != "uota":
                    imgs = replay_views(self.dataset.images, point, v["params"], self._preset(name))          # e.g. CASSLE: every view weighs 1
                    tiles = [Tile(imgs[j], f"view {j + 1}\n{'global' if v['global'][j] else 'local'}",
                                  NEUTRAL_COLOUR) for j in range(len(imgs))]
                    rows.append(TileRow(f"Views of #{point} recorded by {name} (epoch {v['epoch']}, its last)",
                                        "the loss weighs every view equally; what the conditioned head read about "
                                        "each view is listed below the figure", tiles))
                elif v["weights"]:
                    order = sorted(range(len(v["weights"])), key=lambda j: -v["weights"][j])
                    imgs = replay_views(self.dataset.images, point, v["params"], self._preset(name))
                    tiles = [Tile(imgs[j], f"w = {v['weights'][j]:.2f}\n"
                                           f"{'global' if v['global'][j] else 'local'}", NEUTRAL_COLOUR)
                             for j in order]
                    used = "the loss used them" if v["applied"] else "warm-up: the loss still used w = 1"
                    rows.append(TileRow(f"Views of #{point} recorded by {name} (epoch {v['epoch']}, its last)",
                                        f"heaviest first; w = UOTA weight × M (the weights sum to 1 over the M views "
                                        f"of a batch, so w = 1 is uniform; {used})", tiles))
                else:
                    probe = v["probe"]
                    why = (f"it recorded its probe images, rows {probe[0]}…{probe[-1]}; this one"
                           + (" was in the dropped last batch of that epoch" if point in probe else " is not one")
                           if probe else "its log is empty")
                    rows.append(TileRow(f"Views of #{point} recorded by {name}",
                                        note=f"{name} recorded no views for image #{point} in its last epoch "
                                             f"({v['epoch']}): {why}"))
            values, names = self.sub.targets(factor)
            lab = int(self.labels[point])
            caption = [f"point #{point}", f"class: {self._class_name(lab)}"]
            if factor not in ("label", "class", "shape"):
                fv, fn = self.dataset.targets(factor)
                val = int(fv[point])
                caption.append(f"{factor}: {fn[val] if 0 <= val < len(fn) else 'unknown'}")
            maps = [EmbeddingMap(name, self.coords(name), nbrs[name]) for name in shown]
            title = (f"{getattr(self.dataset, 'name', 'dataset')} ({getattr(self.dataset, 'split', 'train')}), "
                     f"first {self.n} images: each run's backbone features mapped to 2-D by {self.method.upper()}")
            fig = plot_embedding_explorer(maps, values, names, factor, point, self.dataset.images[point], caption,
                                          rows, title=title, axis_name=self.method.upper(), k=k,
                                          labelled=self.labelled, width=FIGURE_WIDTH_IN, fig=new_figure())
            show_figure(self.image, fig, dpi=self.dpi)
        except Exception as e:
            self._show_error(f"Could not show point {point} of {', '.join(shown)}", e, raise_errors)
            return
        same = " · ".join([f"{html.escape(nm)} {self._same(point, nbrs[nm])}" for nm in shown]
                          + [f"prior {html.escape(self.prior)} {self._same(point, prior_rows)}"])
        pos_text = " · ".join(
            f"{html.escape(nm)}: {html.escape(positives[nm]['source'])}, "
            + (f"{len(positives[nm]['rows'])} image(s), {self._same(point, positives[nm]['rows'])} of its class"
               if positives[nm]["rows"] else "no other image")
            for nm in shown)
        described = "".join(self._descriptor_html(nm, point) for nm in shown)
        self.summary.value = (
            '<div style="font-size:14px;line-height:1.5">'
            f"<b>Same class among the {k} nearest:</b> {same} &nbsp;·&nbsp; <b>positives the loss used:</b> "
            f"{pos_text}<br>{described}"
            f'<span style="color:{SAME_COLOUR}">■ green frame ✓</span> = same class as the selected point, '
            f'<span style="color:{DIFF_COLOUR}">■ red frame ✗</span> = another class. The maps are '
            f"{self.method.upper()} projections of each run's features: near in the map is not always near in the "
            f"embedding (the squares mark the true nearest).</div>")
        self._state = {"point": point, "run_a": run_a, "run_b": run_b, "factor": factor, "k": k, "runs": shown,
                       "neighbours": nbrs, "distances": dists, "prior_neighbours": prior_rows,
                       "prior_distances": prior_d,
                       "positives": {nm: list(positives[nm]["rows"]) for nm in shown},
                       "positive_sources": {nm: positives[nm]["source"] for nm in shown}, "views": views}
        self._set_status(self._marker("done"))


__all__ = ["EmbeddingExplorer"]
