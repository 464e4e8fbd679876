"""The experiment framework every reproduction is built on: ``python -m gpsviz reproduce <name>``.

An experiment is a grid of :class:`Cell` s (recipe, augmentation, dataset, overrides) × seeds at a *scale*
(:data:`SCALES`: ``smoke``, ``small`` for a 2-core CPU, ``full`` with the papers' GPU settings). Every cell trains
into its own run folder (:func:`cell_run_dir`) and is skipped when its ``results.json`` already exists for the same
config (:func:`read_finished`), so an interrupted reproduction continues where it stopped; a finished cell of
another configuration is never retrained in place. :func:`floor_rows` adds the floors (raw pixels, random init),
:func:`summarise` / :func:`format_table` make the mean ± sd table, :func:`write_report` writes it atomically with a
provenance note, :func:`save_figure` its figures.

An experiment registers its runner with :func:`register_experiment` (a decorator or a call)::

    @register_experiment("my-grid", datasets=("shapes",))
    def run_my_grid(scale, n_seeds, out, device=None, datasets=None, epochs=None, progress=True): ...

The output folder belongs to one set of settings (experiment, scale, seeds, epochs, datasets; recorded in its
``settings.json``, :func:`output_folder`): the default folder's name carries every setting that differs from the
scale's defaults (``baselines-smoke-epochs2``), and an ``--out`` folder made with other settings is refused.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gpsviz.checkpoint import load_checkpoint
from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError, GpsvizError
from gpsviz.evaluate import FLOOR_NAMES, probe_floors
from gpsviz.plots import plot_learning_curves, plot_results_bars
from gpsviz.runs import evaluate_run, load_data, run_dir_for, train_or_resume
from gpsviz.stats import mean_sd
from gpsviz.train import train
from gpsviz.utils import atomic_write_bytes, atomic_write_json, data_root, read_json, read_json_cache, smoke_mode
from gpsviz.view_weights import FILE_NAME as VIEW_LOG
from gpsviz.view_weights import ViewWeightRecorder

__all__ = ["NotebookRuns", "notebook_budget", "merge_fields", "chosen_methods", "method_configs", "train_notebook_runs", "Cell", "SCALES", "FULL_DATA", "GPS_PRIOR", "Experiment", "EXPERIMENTS", "register_experiment",
           "cell_config", "cell_run_dir", "same_config", "read_finished", "run_cell", "floor_rows",
           "config_floor_rows", "write_report", "provenance_note", "output_folder", "save_figure", "summarise",
           "format_table", "grid_figures"]


@dataclass
class Cell:
    """One configuration of an experiment (trained once per seed)."""

    name: str
    recipe: str
    aug: str
    data: str = "shapes"
    overrides: dict[str, Any] = field(default_factory=dict)
    tag: str = ""          # tells apart run folders of cells with the same recipe, augmentation and data
    experiment: str = ""   # the grid it belongs to (a scale may set an experiment's budget, see SCALES)


# Settings per scale. "small" is sized for a 2-core CPU; "full" holds the papers' GPU settings (not run here).
SCALES: dict[str, dict[str, Any]] = {
    "smoke": dict(seeds=1, epochs=1, common=dict(data_options={"n": 512}, batch_size=128, eval_size=200),
                  fmnist=dict(data_options={"n": 512}, batch_size=128, eval_size=200)),
    # "small" pins the settings its published GPS tables were measured with (batch 256, AdamW 1e-3, float32); the
    # baselines grid runs at the library's default budget instead (10,000 images, TrainConfig's epochs, batch and
    # lr), the budget the default shapes world is calibrated for (README, "Baselines on shapes"), in float32.
    "small": dict(seeds=3, epochs=8, common=dict(data_options={"n": 5000}, batch_size=256, lr=1e-3,
                                                 precision="fp32"),
                  fmnist=dict(data_options={"n": 5000}, batch_size=256, lr=1e-3, precision="fp32",
                              momentum_base=0.99),
                  # CASSLE too: at 4 epochs of 5,000 images SimCLR still holds colour (kNN 64–69 %), so there was
                  # nothing for CASSLE to preserve; at this budget it has thrown it away (issue 19)
                  experiments={"baselines": dict(epochs=None, common={"precision": "fp32"}),
                               "cassle": dict(epochs=None, common={"precision": "fp32"})}),
    "full": dict(seeds=3, epochs=400, common=dict(backbone="resnet18", batch_size=512, optimizer="lars", lr=1.2,
                                                   weight_decay=1e-6, warmup_epochs=10, proj_hidden=2048),
                 fmnist=dict(backbone="resnet18", batch_size=512, optimizer="lars", lr=1.2, weight_decay=1e-6,
                             warmup_epochs=10, proj_hidden=2048)),
}
FULL_DATA = {"shapes": "cifar10", "fashion-mnist": "fashion-mnist"}
# The GPS prior of each dataset in the reproduction. On shapes: a supervised network trained on the colour-shifted
# world (the analogue of the paper's ImageNet network used on CIFAR); on Fashion-MNIST (upright, centred items):
# PCA of the pixels, the purest label-free prior measured there. The full scale uses ImageNet weights.
GPS_PRIOR = {"shapes": "shifted", "fashion-mnist": "pca", "cifar10": "imagenet-resnet50"}


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its runner and, for a plain grid, the datasets ``--datasets`` may choose from
    (``None``: the runner checks its own)."""

    name: str
    runner: Callable[..., list[dict[str, Any]]]
    datasets: tuple[str, ...] | None = None

    def check_datasets(self, datasets: Sequence[str] | None) -> list[str] | None:
        """``datasets`` checked against :attr:`datasets` (ConfigError naming the choices); None = the default."""
        if datasets is None or self.datasets is None:
            return None if datasets is None else list(datasets)
        bad = [d for d in datasets if d not in self.datasets]
        if bad or not datasets:
            raise ConfigError(f"reproduce {self.name}: --datasets {','.join(datasets) or '(empty)'} is not part of "
                              f"this experiment; choose from {', '.join(self.datasets)} or leave --datasets out")
        return list(dict.fromkeys(datasets))


#: Every experiment ``reproduce`` knows, by name (filled by :func:`register_experiment` when
#: :mod:`gpsviz.experiments` is imported).
EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(name: str, runner: Callable[..., list[dict[str, Any]]] | None = None,
                        datasets: Sequence[str] | None = None) -> Any:
    """Register ``runner(scale=, n_seeds=, out=, device=, datasets=, epochs=, progress=) -> table`` as the
    experiment ``name`` of ``python -m gpsviz reproduce``; usable as a call or as a decorator. ``out`` is the
    experiment's output folder (a Path); the runner trains (reusing :func:`run_cell` / :func:`floor_rows`),
    prints its tables and writes them to ``out``. ``datasets``: the choices of ``--datasets`` (checked before
    anything is written), or None when the runner checks them. Re-registering the same function is allowed;
    another function under a taken name is a ConfigError."""

    def _register(f: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
        old = EXPERIMENTS.get(name)
        if old is not None and (old.runner.__module__, old.runner.__qualname__) != (f.__module__, f.__qualname__):
            raise ConfigError(f"experiment name {name!r} is already registered to {old.runner.__qualname__}")
        EXPERIMENTS[name] = Experiment(name, f, None if datasets is None else tuple(datasets))
        return f

    return _register if runner is None else _register(runner)


def cell_config(cell: Cell, scale: str, seed: int, epochs: int | None = None, device: str | None = None) -> TrainConfig:
    """The :class:`~gpsviz.config.TrainConfig` of ``cell`` for ``seed`` at ``scale``: the scale's settings (and the
    experiment's own budget there), the cell's overrides, ``epochs`` (None: the scale's), the real dataset and its
    prior at ``full``."""
    s = SCALES[scale]
    s = {**s, **s.get("experiments", {}).get(cell.experiment, {})}   # an experiment's own budget at this scale
    data = FULL_DATA.get(cell.data, cell.data) if scale == "full" else cell.data
    base = dict(s["fmnist"] if cell.data == "fashion-mnist" else s["common"])
    fields = {**base, **cell.overrides, "recipe": cell.recipe, "aug": cell.aug, "data": data, "seed": seed}
    n_epochs = s["epochs"] if epochs is None else epochs
    if n_epochs is not None:                                          # None: TrainConfig's default budget
        fields["epochs"] = n_epochs
    if data != cell.data and "positives_options" in fields:          # full scale: the real dataset's prior
        fields["positives_options"] = {**fields["positives_options"], "prior": GPS_PRIOR.get(data, "pca")}
    if device:
        fields["device"] = device
    return TrainConfig(**fields)


def same_config(saved: Any, cfg: Any) -> bool:
    """Whether a config read back from a results file equals ``cfg`` (a TrainConfig or its dict).

    JSON turns tuples into lists (a multi-crop ``local_scale``, for example), so ``cfg`` is compared after the
    same round trip; a plain ``==`` would call such a finished run stale and train it again."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
    return saved == json.loads(json.dumps(d))


def read_finished(run_dir: Path, cfg: Any) -> dict[str, Any] | None:
    """The results of a finished cell in ``run_dir`` when they were made with ``cfg``; None when there are none
    (or ``results.json`` is unreadable: the cell is evaluated again). A finished cell of *another* config raises
    ConfigError: it is somebody's result, and retraining in place would destroy it."""
    path = run_dir / "results.json"
    res = read_json(path, unreadable="bad")
    if res == "bad":
        print(f"({path} is unreadable; evaluating the run again)")
        return None
    if res is None or not isinstance(res, dict) or "config" not in res:
        saved = _checkpoint_config(run_dir)
        if saved is not None and not same_config(saved, cfg):
            raise _other_settings(run_dir, saved, cfg)
        return None
    if same_config(res.get("config"), cfg):
        return res
    raise _other_settings(run_dir, res.get("config"), cfg)


def _checkpoint_config(run_dir: Path) -> dict[str, Any] | None:
    if not (run_dir / "checkpoint.pt").exists():
        return None
    try:
        return load_checkpoint(run_dir)["config"]
    except GpsvizError:
        return None


def _other_settings(run_dir: Path, saved: Any, cfg: Any) -> ConfigError:
    now = json.loads(json.dumps(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg))
    saved = saved if isinstance(saved, dict) else {}
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    return ConfigError(f"{run_dir} holds a run made with other settings ({', '.join(diff[:5])} differ); it is kept. "
                       f"Reproduce into another folder (--out), or delete that run folder to retrain it.")


def cell_run_dir(cell: Cell, seed: int, out: Path) -> Path:
    """The run folder of ``cell`` and ``seed`` under an experiment's output folder ``out``."""
    return Path(out) / "runs" / f"{cell.data}-{cell.recipe}-{cell.aug}{'-' + cell.tag if cell.tag else ''}-s{seed}"


def run_cell(cell: Cell, scale: str, seed: int, out: Path, epochs: int | None = None,
             device: str | None = None, progress: bool = True,
             targets: Sequence[str] | None = None) -> dict[str, Any]:
    """Train + evaluate one cell for one seed (skipped when its results already exist). ``targets``: the probed
    targets (default: :func:`gpsviz.runs.evaluate_run`'s, the label and the shapes factors)."""
    cfg = cell_config(cell, scale, seed, epochs, device)
    run_dir = cell_run_dir(cell, seed, out)
    res_path = run_dir / "results.json"
    res = read_finished(run_dir, cfg)
    if res is not None:
        return res
    t0 = time.perf_counter()
    run = train(cfg, run_dir, resume=(run_dir / "checkpoint.pt").exists(), progress=progress)
    res = evaluate_run(run_dir, targets=targets, write=False)
    res.update(name=cell.name, dataset=cell.data, train_time=time.perf_counter() - t0, config=cfg.to_dict(),
               history=run.history)
    atomic_write_json(res_path, res)
    return res


def floor_rows(dataset: str, scale: str, seed: int, out: Path, device: str | None = None,
               experiment: str = "", targets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The table's floors for one dataset and seed: the probes on raw pixels and on a randomly initialised backbone
    (:func:`gpsviz.evaluate.probe_floors`), on the data and backbone the cells of this scale train on.

    Computed once per (dataset, seed) and cached in ``out/runs/<dataset>-floors-s<seed>/results.json``;
    ``targets`` probes only those (default: the label and the shapes factors).
    Returns two rows shaped like :func:`run_cell`'s (``name`` "raw pixels" / "random init", ``aug`` "–")."""
    cfg = cell_config(Cell("floors", "simclr", "none", dataset, experiment=experiment), scale, seed, None, device)
    return config_floor_rows(cfg, dataset, seed, out / "runs" / f"{dataset}-floors-s{seed}" / "results.json",
                             device, targets)


def config_floor_rows(cfg: Any, dataset: str, seed: int, path: Path, device: str | None = None,
                      targets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The floors on the data and backbone of a :class:`~gpsviz.config.TrainConfig` ``cfg`` (what
    :func:`floor_rows` computes for a scale's cells; an experiment with its own configs calls this directly).

    Cached in the JSON file ``path`` under a key of the data, backbone, seed and targets; ``dataset`` is the name
    the rows carry in the table."""
    key = {"data": cfg.data, "data_options": cfg.data_options, "backbone": cfg.backbone, "seed": seed}
    if cfg.backbone_options:                       # e.g. a narrower network (the key of older caches is unchanged)
        key["backbone_options"] = cfg.backbone_options
    if targets is not None:                        # only some targets probed (default: probe_floors' own)
        key["targets"] = list(targets)
    cached = read_json_cache(path)                 # a broken cache is recomputed
    if cached is not None and cached.get("key") == key and isinstance(cached.get("rows"), list):
        return cached["rows"]
    t0 = time.perf_counter()
    floors = probe_floors(*load_data(cfg), backbone=cfg.backbone, seed=seed, device=device,
                          backbone_options=cfg.backbone_options, targets=targets)
    rows = [{"name": name, "aug": "–", "dataset": dataset, "recipe": "floor", "seed": seed, "data": cfg.data,
             **floors[name], "train_time": time.perf_counter() - t0} for name in FLOOR_NAMES]
    atomic_write_json(path, {"key": key, "rows": rows})
    return rows


def write_report(out: Path, experiment: str, scale: str, text: str, table: list[dict[str, Any]],
                 rows: list[dict[str, Any]], t0: float) -> None:
    """Print an experiment's report and its wall time since ``t0`` (``time.perf_counter()``), and write
    ``out/table.md`` and ``out/results.json`` (the table and every run's row without its history), atomically."""
    text = text + provenance_note(rows)
    print(text)
    print(f"total time {time.perf_counter() - t0:.0f}s; runs in {out / 'runs'}")
    atomic_write_bytes(out / "table.md", (text + "\n").encode())
    atomic_write_json(out / "results.json", {"experiment": experiment, "scale": scale, "table": table,
                                             "runs": [{k: v for k, v in r.items() if k != "history"} for r in rows]})


def provenance_note(rows: list[dict[str, Any]]) -> str:
    """A footnote saying what produced the table's trained rows: device, precision, processes, torch, gpsviz and
    commit, with how many runs each (from the ``provenance`` each run's results carry); "" when none is known."""
    seen: dict[str, int] = {}
    for r in rows:
        p = r.get("provenance") or {}
        if not p:
            continue
        commit = (p.get("git_commit") or "no git")[:12]
        key = (f"{p.get('device_name') or p.get('device')}, {p.get('precision')}, {p.get('world_size')} process(es), "
               f"torch {p.get('torch')}, gpsviz {p.get('gpsviz')} ({commit})")
        seen[key] = seen.get(key, 0) + 1
    if not seen:
        return ""
    return "\n\nProduced by: " + "; ".join(f"{k}: {n} run(s)" for k, n in seen.items())


def _legacy_reproduction(folder: Path, experiment: str) -> bool:
    """Whether ``folder`` (without ``settings.json``) is a reproduction of ``experiment`` made before settings
    were recorded: its ``results.json`` names the experiment, or it holds nothing but the ``runs`` folder."""
    res = read_json(folder / "results.json")           # missing or unreadable: None
    if res is None:
        return {e.name for e in folder.iterdir()} <= {"runs"}
    return isinstance(res, dict) and res.get("experiment") == experiment


def output_folder(experiment: str, scale: str, n_seeds: int, epochs: int | None, datasets: Sequence[str] | None,
                  out: str | Path | None) -> Path:
    """The folder of one reproduction's settings, and the check that it is not another's (``settings.json``).

    Without ``out``: ``<data>/reproduce/<experiment>-<scale>``, plus ``-seeds<N>``, ``-epochs<E>``,
    ``-<datasets>`` for each setting that differs from the scale's defaults. A folder whose ``settings.json``
    records other settings is refused (ConfigError naming the folder to use), and so is a non-empty folder that is
    not a reproduction of the experiment. A reproduction made before settings were recorded is adopted: its cells
    are still checked one by one (:func:`read_finished`)."""
    default_seeds = SCALES.get(scale, {}).get("seeds")
    settings = {"experiment": experiment, "scale": scale, "seeds": n_seeds, "epochs": epochs,
                "datasets": list(datasets) if datasets else None}
    if out is None:
        name = f"{experiment}-{scale}"
        if n_seeds is not None and n_seeds != default_seeds:
            name += f"-seeds{n_seeds}"
        if epochs is not None:
            name += f"-epochs{epochs}"
        if datasets:
            name += "-" + "+".join(datasets)
        folder = data_root() / "reproduce" / name
    else:
        folder = Path(out).expanduser()
    marker = folder / "settings.json"
    old = read_json(marker, unreadable={})
    if old is not None and old != settings:
        raise ConfigError(f"{folder} holds the reproduction made with other settings ({old or 'unreadable'}); it is "
                          f"kept. Pass another --out for {settings} (or delete that folder to redo it there).")
    if old is None and folder.is_dir() and any(folder.iterdir()) and not _legacy_reproduction(folder, experiment):
        raise ConfigError(f"{folder} is not empty and is not a folder of `reproduce {experiment}`; refusing to write "
                          f"its table there. Pass a new or empty --out folder.")
    if old is None:
        atomic_write_json(marker, settings)
    return folder


def save_figure(path: Path, make: Callable[[], Any]) -> None:
    """Save the matplotlib figure ``make()`` returns to ``path`` (Agg backend unless one is already chosen).
    A figure that fails is reported and skipped: it must never lose the table written before it."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        make().savefig(path, dpi=120, bbox_inches="tight")
    except Exception as e:  # noqa: BLE001
        print(f"(figure {path.name} skipped: {e})")


def summarise(rows: list[dict[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Mean ± std over seeds for each (dataset, aug, name). With one value a metric has no ``<metric>_std``
    (the spread of one seed is unknown, not zero)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["aug"], r["name"]), []).append(r)
    table = []
    for (data, aug, name), rs in groups.items():
        row: dict[str, Any] = {"dataset": data, "aug": aug, "method": name, "seeds": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if m in r]
            if vals:
                row[m], sd = mean_sd(vals)
                if sd is not None:
                    row[m + "_std"] = sd
        table.append(row)
    return table


def format_table(table: list[dict[str, Any]], metrics: Sequence[str]) -> str:
    """A Markdown table in percent: mean ± std over seeds, or the bare value where there is one seed."""
    head = "| dataset | aug | method | seeds | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (4 + len(metrics))]
    for r in table:
        cells = [_percent(r, m) for m in metrics]
        lines.append(f"| {r['dataset']} | {r['aug']} | {r['method']} | {r['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(row: dict[str, Any], metric: str) -> str:
    if metric not in row:
        return "–"
    if row.get(metric + "_std") is None:
        return f"{100 * row[metric]:.1f}"
    return f"{100 * row[metric]:.1f} ± {100 * row[metric + '_std']:.1f}"


def grid_figures(experiment: str, rows: list[dict], table: list[dict], out: Path) -> None:
    """``accuracy.png`` (linear probe per method) and ``learning_curves.png`` of a grid's rows, in ``out``."""

    save_figure(out / "accuracy.png",
                lambda: plot_results_bars(table, metric="linear_label", title=f"{experiment}: linear-probe accuracy"))
    save_figure(out / "learning_curves.png", lambda: plot_learning_curves([r for r in rows if r.get("history")]))
    print(f"figures: {out / 'accuracy.png'}, {out / 'learning_curves.png'}")


# ---------------------------------------------------------------------------------------------- notebooks
@dataclass
class NotebookRuns:
    """What a method notebook trained, as every ``notebook_runs(...)`` of :mod:`gpsviz.experiments` returns it.

    Attributes:
        runs: method name → run folder, in training order (the ceiling among them, named "… (ceiling)").
        configs: method name → its :class:`~gpsviz.config.TrainConfig`.
        table: pandas DataFrame, one row per method then the floors ("raw pixels (floor)", "random init (floor)"):
            column ``method``, the probes as ``"<probe> <target> %"`` (e.g. ``"linear label %"``), and the
            notebook's own columns.
        data: the (train, held-out) datasets the table was probed on.
        extras: what a notebook's figures need beyond the table (named by each ``notebook_runs``).
    """

    runs: dict[str, Path]
    configs: dict[str, TrainConfig]
    table: Any
    data: tuple[Any, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    def histories(self) -> list[dict[str, Any]]:
        """``[{"name", "aug", "history"}]`` of every run (from its checkpoint): what ``plot_learning_curves``
        takes."""
        return [{"name": name, "aug": self.configs[name].aug, "history": load_checkpoint(run)["history"]}
                for name, run in self.runs.items()]

    def shown(self, table: Any = None) -> Any:
        """``table`` (default :attr:`table`) as a notebook shows it: numbers to 2 decimals, no index, and a value a
        row does not have (a floor's set purity, a target a world lacks) as "–", never NaN. A pandas Styler; the
        data stay numeric in :attr:`table`."""
        t = self.table if table is None else table
        return t.style.format(precision=2, na_rep="–").hide(axis="index")

    def result(self, method: str, column: str) -> float:
        """One number of :attr:`table` (percent), e.g. ``result("SimCLR", "linear label %")``."""
        row = self.table[self.table["method"] == method]
        if row.empty or column not in self.table.columns:
            raise ConfigError(f"NotebookRuns: no {column!r} of {method!r}; methods {list(self.table['method'])}, "
                              f"columns {list(self.table.columns)}")
        return float(row[column].iloc[0])


def notebook_budget(smoke: bool | None, teach: dict[str, Any], quick: dict[str, Any],
                    overrides: dict[str, Any]) -> dict[str, Any]:
    """The TrainConfig fields every run of a notebook shares: ``teach`` (full mode) or ``quick`` (smoke mode:
    ``smoke`` None reads :func:`gpsviz.utils.smoke_mode`), then ``overrides``; a dict-valued field (e.g.
    ``data_options``) is merged key by key rather than replaced."""
    return merge_fields(quick if (smoke_mode() if smoke is None else smoke) else teach, overrides)


def merge_fields(*layers: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields of ``layers`` merged in order: a later value replaces an earlier one, except that two
    dicts (``data_options``, ``positives_options``, …) are merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def chosen_methods(known: dict[str, tuple[str, dict[str, Any]]], methods: Sequence[str] | dict[str, dict] | None,
                   budget: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, recipe, TrainConfig fields) of the chosen methods of a notebook: ``known`` maps a method name to
    (recipe, its own fields); ``methods`` is None (all), a list of names, or ``{name: extra fields of that run}``
    (e.g. ``{"GPS-SimCLR (weak)": {"positives_options": {"prior": "hog"}}}``); the fields are ``budget``, the
    method's own, then the extra ones, merged by :func:`merge_fields`."""
    chosen = dict.fromkeys(known, {}) if methods is None else (
        dict(methods) if isinstance(methods, dict) else dict.fromkeys(methods, {}))
    bad = [m for m in chosen if m not in known]
    if bad:
        raise ConfigError(f"notebook_runs: unknown methods {bad}; choose from {list(known)}")
    return [(name, known[name][0], merge_fields(budget, known[name][1], extra or {})) for name, extra in chosen.items()]


def method_configs(known: dict[str, tuple[str, dict[str, Any]]], methods: Sequence[str] | dict[str, dict] | None,
                   budget: dict[str, Any], seed: int) -> list[tuple[str, TrainConfig]]:
    """(name, TrainConfig) of the chosen methods (:func:`chosen_methods`), each with ``seed``."""
    return [(name, TrainConfig(recipe=recipe, seed=seed, **fields))
            for name, recipe, fields in chosen_methods(known, methods, budget)]


def train_notebook_runs(notebook: str, specs: Sequence[tuple[str, TrainConfig]], *,
                        targets: Sequence[str] = ("label",), probes: Sequence[str] = ("linear", "knn"),
                        floors: bool = True, seed: int = 0, root: str | Path | None = None,
                        progress: bool = True, record_views: int = 0,
                        record_if: Callable[[TrainConfig], bool] | None = None) -> NotebookRuns:
    """Train (or reload) a notebook's runs and probe them: the shared body of every ``notebook_runs``.

    ``specs``: (method name, config); each run lives in ``<data>/runs/<notebook>-<recipe>-<config key>``, so
    re-running a cell reloads it. All runs are probed on the first config's data (``targets`` × ``probes``),
    and with ``floors`` the same probes run on raw pixels and an untrained network of that data (seed ``seed``).
    ``record_views`` > 0: runs for which ``record_if(config)`` holds (default: all) record the views of their first
    ``record_views`` training images while they train (``view_weights.pt``: the weights and augmentation parameters
    the loss used; a run finished before is reloaded as it is, without a record)."""
    if not specs:
        raise ConfigError(f"{notebook}: no method to train")
    runs: dict[str, Path] = {}
    configs: dict[str, TrainConfig] = {}
    data = load_data(specs[0][1])
    rows = []
    for name, cfg in specs:
        callbacks = []
        if record_views > 0 and (record_if is None or record_if(cfg)):
            folder = run_dir_for(cfg, f"{notebook}-{cfg.recipe}", root)
            callbacks.append(ViewWeightRecorder(probe=record_views, path=folder / VIEW_LOG))
        run = train_or_resume(cfg, f"{notebook}-{cfg.recipe}", root=root, progress=progress, callbacks=callbacks)
        runs[name], configs[name] = run.out_dir, cfg
        res = evaluate_run(run.out_dir, targets=list(targets), probes=tuple(probes), data=data)
        rows.append({"method": name, "aug": cfg.aug, **_percent_columns(res, targets, probes)})
    if floors:
        cfg = specs[0][1]
        for name, res in probe_floors(*data, backbone=cfg.backbone, backbone_options=cfg.backbone_options,
                                      seed=seed, targets=list(targets), probes=tuple(probes)).items():
            rows.append({"method": f"{name} (floor)", "aug": "–", **_percent_columns(res, targets, probes)})
    import pandas as pd  # the table is for a notebook

    return NotebookRuns(runs, configs, pd.DataFrame(rows).round(2), data)


def _percent_columns(res: dict[str, Any], targets: Sequence[str], probes: Sequence[str]) -> dict[str, float]:
    return {f"{p} {t} %": 100 * res[f"{p}_{t}"] for t in targets for p in probes if f"{p}_{t}" in res}
