"""Re-runnable comparisons: ``python -m gpsviz reproduce baselines|gps --scale smoke|small|full``.

Each experiment is a grid of (recipe, augmentation, dataset) × seeds. Every cell trains into its own run folder
and is skipped when its ``results.json`` already exists for the same config, so an interrupted reproduction
continues where it stopped. The table (mean ± std over seeds) and figures go to the output folder.

The output folder belongs to one set of settings (experiment, scale, seeds, epochs, datasets; recorded in its
``settings.json``): the default folder's name carries every setting that differs from the scale's defaults
(``baselines-smoke-epochs2``), and an ``--out`` folder made with other settings is refused. A finished cell of
another configuration is never retrained in place.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from gpsviz.errors import ConfigError, GpsvizError
from gpsviz.utils import atomic_write_bytes, atomic_write_json, data_root, read_json, read_json_cache


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


EXPERIMENTS = ("baselines", "gps", "gps-priors", "precision")

#: Experiments with their own runner (their tables need more than the grid of :func:`experiment_cells`, e.g. an
#: AUROC or a sweep). Each lives in a module of :mod:`gpsviz.experiments` and registers itself with
#: :func:`register_experiment`; :func:`reproduce` hands such an experiment to its runner.
CUSTOM_EXPERIMENTS: dict[str, Callable[..., list[dict[str, Any]]]] = {}


def register_experiment(name: str, runner: Callable[..., list[dict[str, Any]]]) -> None:
    """Register ``runner(scale=, n_seeds=, out=, device=, datasets=, epochs=, progress=) -> table`` as the
    experiment ``name`` of ``python -m gpsviz reproduce``. ``out`` is the experiment's output folder (a Path);
    the runner trains (reusing :func:`run_cell` / :func:`floor_rows`), prints its tables and writes them to ``out``."""
    CUSTOM_EXPERIMENTS[name] = runner


def experiment_names() -> tuple[str, ...]:
    """Every experiment ``reproduce`` knows: the grids above and the registered ones."""
    import gpsviz.experiments  # noqa: F401  (importing registers the experiments with their own runner)

    return EXPERIMENTS + tuple(CUSTOM_EXPERIMENTS)


#: The priors of the purity-vs-accuracy experiment (label-free ones, the supervised-transfer one and the oracle).
PRIORS_COMPARED = ("pixels", "pca", "hog", "shifted", "hog-invariant", "oracle")


def _prior_purity(config: dict[str, Any]) -> float:
    """Purity@10 (a fraction) of a run's GPS prior on its training set (the prior is cached, so this is quick)."""
    from gpsviz.priors import compute_prior, purity
    from gpsviz.recipes import TrainConfig
    from gpsviz.runs import load_data

    cfg = TrainConfig.from_dict(config)
    train_ds = load_data(cfg)[0]
    pos = dict(cfg.positives_options)
    prior = pos.pop("prior")
    emb = compute_prior(prior, train_ds, progress=False, **pos.pop("prior_options", {}))
    return purity(emb, train_ds.labels, k=10)


def _rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (no ties expected)."""
    import numpy as np

    rx, ry = np.argsort(np.argsort(xs)), np.argsort(np.argsort(ys))
    return float(np.corrcoef(rx, ry)[0, 1])


#: The datasets each grid can run on (``--datasets`` picks a subset; anything else is refused).
GRID_DATASETS = {"baselines": ("shapes", "fashion-mnist"), "gps": ("shapes", "fashion-mnist"),
                 "gps-priors": ("shapes",), "precision": ("shapes",)}


def _check_datasets(experiment: str, datasets: Sequence[str] | None) -> list[str] | None:
    """``datasets`` of a grid, checked against :data:`GRID_DATASETS` (ConfigError naming the choices)."""
    if datasets is None:
        return None
    allowed = GRID_DATASETS.get(experiment, ())
    bad = [d for d in datasets if d not in allowed]
    if bad or not datasets:
        raise ConfigError(f"reproduce {experiment}: --datasets {','.join(datasets) or '(empty)'} is not part of "
                          f"this experiment; choose from {', '.join(allowed)} or leave --datasets out")
    return list(dict.fromkeys(datasets))


def experiment_cells(experiment: str, datasets: Sequence[str] | None = None) -> list[Cell]:
    """The grid of an experiment (``datasets``: a subset of :data:`GRID_DATASETS`, default its first)."""
    if experiment in GRID_DATASETS:
        datasets = _check_datasets(experiment, datasets)
    if experiment == "baselines":
        b = "baselines"
        return [c for d in (datasets or ["shapes"]) for c in (
            Cell("SimCLR", "simclr", "strong", d, experiment=b), Cell("BYOL", "byol", "strong", d, experiment=b),
            Cell("SupCon", "supcon", "strong", d, experiment=b),
            Cell("SimCLR (no aug)", "simclr", "none", d, experiment=b),
            # strength 0.5: milder crops and colour jitter (see README)
            Cell("SimCLR (strength 0.5)", "simclr", "strong", d, overrides={"strength": 0.5}, tag="x0.5",
                 experiment=b))]
    if experiment == "gps-priors":
        # GPS-SimCLR, weak augmentation, one prior per cell: does the prior's purity order downstream accuracy?
        return [Cell(f"GPS-SimCLR ({p})", "gps-simclr", "weak", "shapes", {"positives_options": {"prior": p, "k": 10}},
                     tag=p) for p in PRIORS_COMPARED]
    if experiment == "gps":
        datasets = list(datasets or ["shapes", "fashion-mnist"])
        cells = []
        for data in datasets:
            pos = {"positives_options": {"prior": GPS_PRIOR.get(data, "pca"), "k": 10}}
            # Fashion-MNIST's strong rows were measured with SimCLR's published preset (now "simclr"; "strong" was
            # recalibrated for the shapes world) and BYOL momentum 0.99: they keep those settings
            strong = "simclr" if data == "fashion-mnist" else "strong"
            for aug in ("weak", strong):
                for name, recipe in (("SimCLR", "simclr"), ("GPS-SimCLR", "gps-simclr"),
                                     ("BYOL", "byol"), ("GPS-BYOL", "gps-byol")):
                    cells.append(Cell(name, recipe, aug, data, pos if recipe.startswith("gps") else {}))
        return cells
    if experiment == "precision":
        # SimCLR in bf16 autocast + channels_last (what precision="auto" picks on CPUs with native bf16 and on CUDA)
        # against float32: the same linear accuracy within seed noise is the claim
        # (measured on the textured world with SimCLR's published preset, before the world was calibrated)
        return [Cell(f"SimCLR {p}", "simclr", "simclr", overrides={"precision": p, "channels_last": p == "bf16",
                                                                    "data_options": {"n": 5000, "variant": "textured"}},
                     tag=p) for p in ("fp32", "bf16")]
    raise ConfigError(f"experiment {experiment!r} is unknown; choose {', '.join(experiment_names())}")


def _config(cell: Cell, scale: str, seed: int, epochs: int | None, device: str | None):
    from gpsviz.recipes import TrainConfig

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
    from gpsviz.checkpoint import load_checkpoint

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


def run_cell(cell: Cell, scale: str, seed: int, out: Path, epochs: int | None = None,
             device: str | None = None, progress: bool = True,
             targets: Sequence[str] | None = None) -> dict[str, Any]:
    """Train + evaluate one cell for one seed (skipped when its results already exist). ``targets``: the probed
    targets (default: :func:`gpsviz.evaluate.evaluate_run`'s, the label and the shapes factors)."""
    from gpsviz.evaluate import evaluate_run
    from gpsviz.train import train

    cfg = _config(cell, scale, seed, epochs, device)
    run_dir = out / "runs" / f"{cell.data}-{cell.recipe}-{cell.aug}{'-' + cell.tag if cell.tag else ''}-s{seed}"
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
    cfg = _config(Cell("floors", "simclr", "none", dataset, experiment=experiment), scale, seed, None, device)
    return config_floor_rows(cfg, dataset, seed, out / "runs" / f"{dataset}-floors-s{seed}" / "results.json",
                             device, targets)


def config_floor_rows(cfg: Any, dataset: str, seed: int, path: Path, device: str | None = None,
                      targets: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The floors on the data and backbone of a :class:`~gpsviz.config.TrainConfig` ``cfg`` (what
    :func:`floor_rows` computes for a scale's cells; an experiment with its own configs calls this directly).

    Cached in the JSON file ``path`` under a key of the data, backbone, seed and targets; ``dataset`` is the name
    the rows carry in the table."""
    from gpsviz.evaluate import FLOOR_NAMES, probe_floors
    from gpsviz.runs import load_data

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
                row[m] = statistics.fmean(vals)
                if len(vals) > 1:
                    row[m + "_std"] = statistics.stdev(vals)
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


def reproduce(experiment: str, scale: str = "small", seeds: int | None = None, out: str | Path | None = None,
              device: str | None = None, datasets: str | Sequence[str] | None = None, epochs: int | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run an experiment grid, print and save its table (``table.md``, ``results.json``) and figures.

    The table ends with the floors of each dataset (rows "raw pixels" and "random init", aug "–"): the same
    probes on the raw pixels and on a randomly initialised backbone."""
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is unknown; choose one of {', '.join(SCALES)}")
    if isinstance(datasets, str):
        datasets = [d.strip() for d in datasets.split(",") if d.strip()]
        if not datasets:
            raise ConfigError("--datasets is empty; give a comma-separated list, e.g. shapes, or leave it out")
    n_seeds = SCALES[scale]["seeds"] if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or not 1 <= n_seeds <= 1000:
        raise ConfigError(f"seeds={seeds!r} is impossible: the number of seeds must be an integer in [1, 1000]")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 100_000):
        raise ConfigError(f"epochs={epochs!r} is impossible: it must be an integer in [1, 100000] (or omit it "
                          f"for the scale's default)")
    if experiment not in experiment_names():               # (imports, so registers, the experiments with a runner)
        raise ConfigError(f"experiment {experiment!r} is unknown; choose {', '.join(experiment_names())}")
    if experiment in GRID_DATASETS:
        _check_datasets(experiment, datasets)
    out = output_folder(experiment, scale, n_seeds, epochs, datasets, out)
    if experiment in CUSTOM_EXPERIMENTS:
        return CUSTOM_EXPERIMENTS[experiment](scale=scale, n_seeds=n_seeds, out=out, device=device,
                                              datasets=datasets, epochs=epochs, progress=progress)
    cells = experiment_cells(experiment, datasets)
    rows = []
    t0 = time.perf_counter()
    for i, cell in enumerate(cells):
        for seed in range(n_seeds):
            print(f"[{i * n_seeds + seed + 1}/{len(cells) * n_seeds}] {cell.data} {cell.name} aug={cell.aug} "
                  f"seed={seed}", flush=True)
            rows.append(run_cell(cell, scale, seed, out, epochs, device, progress))
    for data in dict.fromkeys(c.data for c in cells):  # floors: raw pixels and random init, once per dataset/seed
        for seed in range(n_seeds):
            rows.extend(floor_rows(data, scale, seed, out, device, experiment))
    metrics = ["linear_label", "knn_label"] + (["linear_colour", "linear_position"] if any(
        "linear_colour" in r for r in rows) else [])
    if experiment == "gps-priors":
        for r in rows:
            if "config" in r:                          # a trained cell (not a floor row)
                r["prior_purity"] = _prior_purity(r["config"])
        metrics = ["prior_purity"] + metrics
    table = summarise(rows, metrics)
    text = format_table(table, metrics)
    if experiment == "gps-priors":
        runs = [r for r in rows if "prior_purity" in r]
        rho = _rank_correlation([r["prior_purity"] for r in runs], [r["linear_label"] for r in runs])
        text += f"\n\nSpearman rank correlation of prior purity@10 and linear accuracy: {rho:.2f} ({len(runs)} runs)"
    write_report(out, experiment, scale, text, table, rows, t0)
    _figures(experiment, rows, table, out)
    return table


def _figures(experiment: str, rows: list[dict], table: list[dict], out: Path) -> None:
    from gpsviz.plots import plot_learning_curves, plot_results_bars

    save_figure(out / "accuracy.png",
                lambda: plot_results_bars(table, metric="linear_label", title=f"{experiment}: linear-probe accuracy"))
    save_figure(out / "learning_curves.png", lambda: plot_learning_curves([r for r in rows if r.get("history")]))
    print(f"figures: {out / 'accuracy.png'}, {out / 'learning_curves.png'}")


def demo(out: str | Path | None = None) -> None:
    """The README's main job (about 10 minutes on a 2-core CPU): a figure of the shapes world and its augmented
    views, then the shapes part of the GPS reproduction (weak augmentation, one seed) plus the SupCon ceiling."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import torch

    from gpsviz.augment import Augmenter
    from gpsviz.data import load_dataset
    from gpsviz.plots import plot_views

    root = Path(out) if out else data_root()
    figdir = root / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("shapes", "train")
    g = torch.Generator().manual_seed(0)
    aug = Augmenter("strong")
    for i in range(3):
        img = ds.images[i:i + 1].repeat(6, 1, 1, 1)
        views, params = aug(img, generator=g)
        fig = plot_views(ds.images[i], views, params)
        fig.savefig(figdir / f"shapes_views_{i}.png", dpi=120, bbox_inches="tight")
    print(f"wrote {figdir}/shapes_views_*.png")
    demo_cells = [c for c in experiment_cells("gps", ["shapes"]) if c.aug == "weak"]
    demo_cells.append(Cell("SupCon (ceiling)", "supcon", "weak"))
    rows = []
    outdir = root / "reproduce" / "demo"
    shared = root / "reproduce" / "gps-small"      # the same runs as `reproduce gps --scale small` (reused)
    for i, cell in enumerate(demo_cells):
        print(f"[{i + 1}/{len(demo_cells)}] shapes {cell.name} aug={cell.aug}", flush=True)
        rows.append(run_cell(cell, "small", 0, shared, epochs=None))
    rows.extend(floor_rows("shapes", "small", 0, shared))
    metrics = ["linear_label", "knn_label", "linear_colour", "linear_position"]
    table = summarise(rows, metrics)
    text = format_table(table, metrics) + provenance_note(rows)
    print(text)
    atomic_write_bytes(outdir / "table.md", (text + "\n").encode())
    _figures("demo (shapes, weak augmentation, seed 0)", rows, table, outdir)
