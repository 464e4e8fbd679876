"""CASSLE reproduction: ``python -m gpsviz reproduce cassle --scale smoke|small|full``.

SimCLR against CASSLE-SimCLR and BYOL against CASSLE-BYOL (the projector also reads each view's 14-column
augmentation descriptor; the teacher's projector reads its own views'), with the SupCon ceiling at the same
budget and the floors (raw pixels, random init), on the shapes world (``full``: CIFAR-10, ResNet-18 and the GPU
settings of :data:`gpsviz.experiments.grid.SCALES`, with the reference descriptor encoder of 6 × 64).

Per run, on the **backbone** feature (what CASSLE is evaluated on; the projector is thrown away):

* the probes of :func:`gpsviz.runs.evaluate_run`: shape class and colour factor, linear and kNN. A linear
  colour probe is a poor witness on shapes (raw pixels read the colour at 99 %), so kNN colour -- how the
  embedding is *organised* -- is reported beside it;
* augmentation-parameter prediction (:func:`gpsviz.sensitivity.param_prediction`): R² per descriptor column of
  a ridge probe fitted on views of the train split and reported on views of the test split; mean over the columns
  that vary and per family;
* sensitivity (:func:`gpsviz.sensitivity.sensitivity`): cosine similarity of clean image and augmented view, one
  family at a time, at backbone and projector.

The aims checked (issue 19): kNN colour ≥ baseline + 15 points with shape within 3 points, a higher mean R²,
and a gain on the shape × colour conjunction task.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from gpsviz.augment import Augmenter
from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError
from gpsviz.evaluate import probe_floors
from gpsviz.experiments.grid import (FULL_DATA, SCALES, Cell, NotebookRuns, cell_config, cell_run_dir, chosen_methods,
                                     floor_rows, format_table, notebook_budget, read_finished, register_experiment,
                                     run_cell, save_figure, summarise, write_report)
from gpsviz.models import build_backbone
from gpsviz.plots.cassle import plot_sensitivity_bars
from gpsviz.runs import load_data, train_or_resume
from gpsviz.sensitivity import FAMILIES, load_run, param_prediction, sensitivity, task_probes
from gpsviz.stats import format_mean_sd
from gpsviz.utils import atomic_write_json, data_root, read_json_cache, smoke_mode

__all__ = ["METHODS", "cassle_cells", "cassle_configs", "run_analysis", "floor_analysis", "run_cassle",
           "r2_table", "sensitivity_table", "notebook_runs", "comparison_table"]

#: (name, recipe) of the compared methods, in table order; the ceiling comes last.
METHODS = (("SimCLR", "simclr"), ("CASSLE-SimCLR", "cassle-simclr"), ("BYOL", "byol"),
           ("CASSLE-BYOL", "cassle-byol"), ("SupCon (ceiling)", "supcon"))
DATASETS = ("shapes", "fashion-mnist")
AUG = {"shapes": "strong", "fashion-mnist": "simclr", "cifar10": "simclr"}
#: The descriptor encoder at the full scale: the reference 6 Linear+BN+ReLU layers of width 64.
FULL_HEAD = {"encoder_depth": 6, "encoder_width": 64}
ACC_METRICS = ["linear_label", "knn_label", "linear_colour", "knn_colour", "linear_label×colour",
               "knn_label×colour"]
R2_METRICS = ["r2_mean", "r2_crop", "r2_colour", "r2_colour_diff", "r2_grayscale"]
SENS_FAMILIES = ("crop", "colour", "grayscale")
#: Images of each split used by the analyses (views of the train split fit the R² probe; test views report it).
ANALYSIS_IMAGES = {"smoke": 300, "small": 2000, "full": 10000}
SENS_IMAGES = 200
ANALYSIS_VERSION = 2      # 2: the 14-column descriptor (hue as an angle, colour_diff around the jitter only)


def _data(dataset: str, scale: str) -> str:
    return FULL_DATA.get(dataset, dataset) if scale == "full" else dataset


#: Targets probed: the shape class, the colour factor and their conjunction (one class per shape × colour bin:
#: a downstream task that needs both what SSL keeps and what its colour augmentation throws away).
TARGETS = ["label", "colour", "label×colour"]


def _targets(data: str) -> list[str] | None:
    """The probed targets: :data:`TARGETS` on the shapes world, the label alone elsewhere (no colour factor)."""
    return TARGETS if data == "shapes" else ["label"]


def cassle_cells(dataset: str = "shapes", scale: str = "small") -> list[Cell]:
    """The cells of one dataset, in training order (see :data:`METHODS`)."""
    data = _data(dataset, scale)
    aug = AUG.get(data, "simclr")
    cells = []
    for name, recipe in METHODS:
        over = {"head_options": dict(FULL_HEAD)} if scale == "full" and recipe.startswith("cassle") else {}
        cells.append(Cell(name, recipe, aug, data, overrides=over, experiment="cassle"))
    return cells


def cassle_configs(scale: str = "small", n_seeds: int | None = None, datasets: Sequence[str] | None = None,
                   epochs: int | None = None, device: str | None = None):
    """Every :class:`~gpsviz.config.TrainConfig` the experiment would train (validated on construction), as
    ``[(cell, seed, config)]``: what the tests check for the ``full`` scale without training."""
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is unknown; choose one of {', '.join(SCALES)}")
    n = SCALES[scale]["seeds"] if n_seeds is None else n_seeds
    return [(c, s, cell_config(c, scale, s, epochs, device)) for s in range(n) for d in (datasets or ("shapes",))
            for c in cassle_cells(d, scale)]


def _flatten(prefix: str, d: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in d.items()}


def run_analysis(run_dir: str | Path, scale: str = "small", seed: int = 0) -> dict[str, Any]:
    """R² of augmentation-parameter prediction and clean-vs-view sensitivity of one trained run, cached in
    ``<run_dir>/cassle_analysis.json`` (recomputed when the checkpoint's config changed).

    Returns flat keys: ``r2_mean``, ``r2_<family>``, ``r2_col_<column>``, ``sens_<level>_<family>`` (cosine)
    and ``sensc_<level>_<family>`` (cosine around the mean clean feature)."""

    run_dir = Path(run_dir)
    cache = run_dir / "cassle_analysis.json"
    run = load_run(run_dir)
    key = {"config": run.config.to_dict(), "version": ANALYSIS_VERSION, "scale": scale}
    c = read_json_cache(cache)                    # a broken cache is recomputed
    if c is not None and c.get("key") == key and isinstance(c.get("result"), dict):
        return c["result"]
    train_ds, test_ds = load_data(run.config)
    n = ANALYSIS_IMAGES.get(scale, 2000)
    pp = param_prediction(run, train_ds, test_ds, seed=seed, max_images=n)
    res: dict[str, Any] = {"r2_mean": pp["r2_mean"], **_flatten("r2_", pp["r2_family"]),
                           **_flatten("r2_col_", pp["r2"])}
    imgs = test_ds.images[:SENS_IMAGES]
    for centre, tag in ((False, "sens"), (True, "sensc")):
        for r in sensitivity(run, imgs, FAMILIES, seed=seed, centre=centre):
            res[f"{tag}_{r['level']}_{r['family']}"] = r["similarity"]
    atomic_write_json(cache, {"key": key, "result": res})
    return res


def floor_analysis(dataset: str, scale: str, seed: int, out: Path, device: str | None = None) -> dict[str, dict]:
    """R² of the floors (ridge on the raw pixels of the views; on a randomly initialised backbone), cached in
    ``out/runs/<dataset>-floors-s<seed>/cassle_r2.json``. Returns ``{"raw pixels": {...}, "random init": {...}}``."""

    cfg = cell_config(Cell("floors", "simclr", AUG.get(dataset, "simclr"), dataset, experiment="cassle"), scale, seed,
                  None, device)
    key = {"data": cfg.data, "data_options": cfg.data_options, "backbone": cfg.backbone, "seed": seed,
           "aug": cfg.aug, "version": ANALYSIS_VERSION, "scale": scale}
    path = out / "runs" / f"{dataset}-floors-s{seed}" / "cassle_r2.json"
    c = read_json_cache(path)                    # a broken cache is recomputed
    if c is not None and c.get("key") == key and isinstance(c.get("result"), dict):
        return c["result"]
    train_ds, test_ds = load_data(cfg)
    n = ANALYSIS_IMAGES.get(scale, 2000)
    torch.manual_seed(seed)
    net = build_backbone(cfg.backbone, in_channels=train_ds.channels, **cfg.backbone_options)
    res = {}

    for name, model in (("raw pixels", "pixels"), ("random init", net)):
        pp = param_prediction(model, train_ds, test_ds, augmenter=Augmenter(cfg.aug, cfg.strength), seed=seed,
                              max_images=n)
        res[name] = {"r2_mean": pp["r2_mean"], **_flatten("r2_", pp["r2_family"]), **_flatten("r2_col_", pp["r2"])}
    atomic_write_json(path, {"key": key, "result": res})
    return res


def _ms(vals: list[float], digits: int = 2) -> str:
    return format_mean_sd(vals, f".{digits}f")


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict]]:
    g: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        g.setdefault((r["dataset"], r["name"]), []).append(r)
    return g


def r2_table(rows: list[dict[str, Any]], metrics: Sequence[str] = R2_METRICS) -> str:
    """Markdown: R² (mean ± std over seeds) per method and floor."""
    lines = ["| dataset | method | seeds | " + " | ".join(metrics) + " |", "|" + "---|" * (3 + len(metrics))]
    for (data, name), rs in _groups(rows).items():
        if not any(m in r for r in rs for m in metrics):
            continue
        cells = [_ms([r.get(m, float("nan")) for r in rs]) for m in metrics]
        lines.append(f"| {data} | {name} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sensitivity_table(rows: list[dict[str, Any]], families: Sequence[str] = SENS_FAMILIES,
                      prefix: str = "sens") -> str:
    """Markdown: clean-vs-view cosine similarity per family, backbone / projector (mean over seeds)."""
    head = " | ".join(f"{f} backbone | {f} projector" for f in families)
    lines = [f"| dataset | method | seeds | {head} |", "|" + "---|" * (3 + 2 * len(families))]
    for (data, name), rs in _groups(rows).items():
        if not any(f"{prefix}_backbone_{families[0]}" in r for r in rs):
            continue
        cells = [_ms([r[f"{prefix}_{lvl}_{f}"] for r in rs if f"{prefix}_{lvl}_{f}" in r], 3)
                 for f in families for lvl in ("backbone", "projector")]
        lines.append(f"| {data} | {name} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _aim(rows: list[dict[str, Any]]) -> str:
    """Issue 19's aims, per pair: kNN colour ≥ baseline + 15 points with shape (linear) within 3 points, a higher
    mean R² of the augmentation parameters, and a gain on the shape × colour task (linear)."""
    g = _groups(rows)
    lines = []
    for data in dict.fromkeys(d for d, _ in g):
        for base, cassle in (("SimCLR", "CASSLE-SimCLR"), ("BYOL", "CASSLE-BYOL")):
            if (data, base) not in g or (data, cassle) not in g:
                continue
            m = lambda name, k: statistics.fmean([r[k] for r in g[(data, name)] if k in r]) * (  # noqa: E731
                1 if k.startswith("r2") else 100)
            met = lambda ok: "met" if ok else "missed"  # noqa: E731
            try:
                dk = m(cassle, "knn_colour") - m(base, "knn_colour")
                ds = m(cassle, "linear_label") - m(base, "linear_label")
                dr = m(cassle, "r2_mean") - m(base, "r2_mean")
            except statistics.StatisticsError:
                continue
            line = (f"- {data}, {cassle} vs {base}: kNN colour {dk:+.1f} points, shape linear {ds:+.1f} points "
                    f"(aim: colour ≥ +15 with shape within 3: {met(dk >= 15 and abs(ds) <= 3)}); mean R² {dr:+.3f} "
                    f"({met(dr > 0)})")
            try:
                dc = m(cassle, "linear_label×colour") - m(base, "linear_label×colour")
                line += f"; shape × colour linear {dc:+.1f} points ({met(dc > 0)})"
            except statistics.StatisticsError:
                pass
            lines.append(line)
    return "\n".join(lines)


def run_cassle(scale: str = "small", n_seeds: int = 3, out: str | Path = "data/reproduce/cassle-small",
               device: str | None = None, datasets: Sequence[str] | None = None, epochs: int | None = None,
               progress: bool = True, seed_list: Sequence[int] | None = None,
               train: bool = True) -> list[dict[str, Any]]:
    """Train and evaluate the :data:`METHODS` per dataset and seed (seed by seed, so an interrupted run has every
    method for the seeds it finished), analyse each run, add the floors, print and save ``table.md`` /
    ``results.json``. Returns the accuracy table (mean ± std over seeds).

    ``seed_list`` runs only those seeds (e.g. one process per seed; a later call over all seeds reuses the
    finished runs and analyses, which are cached in their run folders). ``train=False`` trains nothing: the
    table holds the runs that have finished (e.g. while other seeds still train)."""
    out = Path(out)
    seeds = list(range(n_seeds)) if seed_list is None else [int(s) for s in seed_list]
    datasets = list(datasets or ("shapes",))
    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise ConfigError(f"reproduce cassle: datasets {bad} are not part of this experiment; choose from "
                          f"{', '.join(DATASETS)}")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    total = len(METHODS) * len(datasets) * len(seeds)
    i = 0
    for seed in seeds:
        for dataset in datasets:
            for cell in cassle_cells(dataset, scale):
                i += 1
                if not train and not (cell_run_dir(cell, seed, out) / "results.json").exists():
                    continue
                print(f"[{i}/{total}] {cell.data} {cell.name} aug={cell.aug} seed={seed}", flush=True)
                res = run_cell(cell, scale, seed, out, epochs, device, progress, targets=_targets(cell.data))
                res = {**res, **run_analysis(cell_run_dir(cell, seed, out), scale, seed)}
                colour = (f", colour linear {100 * res['linear_colour']:.1f} % kNN {100 * res['knn_colour']:.1f} %"
                          if "knn_colour" in res else "")
                print(f"    label {100 * res['linear_label']:.1f} %{colour}, R² {res['r2_mean']:.3f}, "
                      f"trained in {res['train_time']:.0f} s", flush=True)
                rows.append(res)
            data = _data(dataset, scale)
            fdir = out / "runs" / f"{data}-floors-s{seed}"
            if not train and not ((fdir / "results.json").exists() and (fdir / "cassle_r2.json").exists()):
                continue                                   # floors of this seed not computed yet
            fl = floor_rows(data, scale, seed, out, device, "cassle", targets=_targets(data))
            r2 = floor_analysis(data, scale, seed, out, device)
            rows.extend({**r, **r2.get(r["name"], {})} for r in fl)
    metrics = [m for m in ACC_METRICS if any(m in r for r in rows)]
    table = summarise(rows, metrics + R2_METRICS)
    text = (format_table(table, metrics)
            + "\n\nAugmentation-parameter prediction, R² of a ridge probe on the frozen backbone (views of the test "
              "split; mean over the descriptor columns that vary, and per family):\n\n" + r2_table(rows)
            + "\n\nSensitivity: cosine similarity of clean image and augmented view (one family at a time, "
              f"{SENS_IMAGES} test images × 4 views), backbone | projector:\n\n" + sensitivity_table(rows)
            + "\n\nThe same, cosine around the mean clean feature (centred):\n\n"
            + sensitivity_table(rows, prefix="sensc") + "\n\nAim:\n" + _aim(rows))
    write_report(out, "cassle", scale, text, table, rows, t0)

    save_figure(out / "sensitivity.png", lambda: plot_sensitivity_bars(rows))
    return table


register_experiment("cassle", run_cassle)


# ---------------------------------------------------------------------------------------------- notebook 05
def notebook_runs(methods: Sequence[str] | dict[str, dict] | None = None, *, seed: int = 0,
                  smoke: bool | None = None, targets: Sequence[str] | None = None, floors: bool = True,
                  root: str | Path | None = None, progress: bool = True, **overrides: Any) -> NotebookRuns:
    """Notebook 05's runs (:data:`METHODS`' names; default SimCLR, CASSLE-SimCLR and the SupCon ceiling), one seed,
    with the table of :func:`comparison_table` (task probes, mean R² of augmentation-parameter prediction, floors).

    Teach mode without ``overrides``: each run gets the config of ``reproduce cassle --scale small`` (the library's
    default budget, 10,000 × 10, batch 128), and a finished run of that reproduction with the same config
    (``<data>/reproduce/cassle-small/runs/…``) is used as it is. With ``overrides`` (e.g. ``data="fashion-mnist"``,
    ``epochs``), or in smoke mode (512 images × 1 epoch), the runs train under ``<data>/runs/nb05-<data>-<recipe>-<key>``
    at 4,000 images × 8 epochs (teach) merged with ``overrides``. ``overrides`` may also hold ``r2_images``: the
    images per split of the R² probe (teach 2,000, smoke 300). ``targets`` is not used (the table probes the
    label, and colour where the data has it)."""
    quick = smoke_mode() if smoke is None else smoke
    r2_images = overrides.pop("r2_images", 300 if quick else 2000)
    data = overrides.get("data", "shapes")
    aug = AUG.get(data, "simclr")
    known = {name: (recipe, {}) for name, recipe in METHODS}
    chosen = methods if methods is not None else ["SimCLR", "CASSLE-SimCLR", "SupCon (ceiling)"]
    budget = notebook_budget(quick, teach=dict(aug=aug, epochs=8, batch_size=128, data_options={"n": 4000},
                                               eval_size=2000),
                             quick=dict(aug=aug, epochs=1, batch_size=128, data_options={"n": 512}, eval_size=200),
                             overrides=overrides)
    reproduction = not quick and not overrides
    cells = {c.name: c for c in cassle_cells(data, "small")}
    runs, configs = {}, {}
    for name, recipe, fields in chosen_methods(known, chosen, budget):
        if reproduction:
            cfg = cell_config(cells[name], "small", seed)
            done = cell_run_dir(cells[name], seed, data_root(root) / "reproduce" / "cassle-small")
            if read_finished(done, cfg) is not None:
                runs[name], configs[name] = done, cfg
                continue
        else:
            cfg = TrainConfig(recipe=recipe, seed=seed, **fields)
        runs[name] = train_or_resume(cfg, f"nb05-{data}-{recipe}", root=root, progress=progress).out_dir
        configs[name] = cfg
    table = comparison_table(runs, data=data, seed=seed, r2_images=r2_images, floors=floors)
    return NotebookRuns(runs, configs, table, load_data(next(iter(configs.values()))))


def _column(metric: str) -> str:
    """A results key as a notebook table's column: ``linear_label×colour`` → ``linear label×colour %``."""
    return metric.replace("_", " ", 1) + " %"


def comparison_table(runs: dict[str, str | Path], data: str = "shapes", n_train: int = 4000, seed: int = 0,
                     r2_images: int = 1000, floors: bool = True):
    """Notebook 05's table: per run (``{method name or recipe: run folder}``) the task probes (shape/class;
    colour on shapes; linear and kNN, %) and the mean R² of augmentation-parameter prediction, then (``floors``)
    the floors (raw pixels, random init). pandas DataFrame."""
    names = {r: n for n, r in METHODS}
    rows = []
    splits = None
    for recipe, run_dir in runs.items():
        run = load_run(run_dir)
        splits = splits or load_data(run.config)
        t = task_probes(run_dir, targets=_targets(splits[0].name), data=splits)
        pp = param_prediction(run, *splits, seed=seed, max_images=r2_images)
        rows.append({"method": names.get(recipe, recipe), **{_column(k): 100 * v for k, v in t.items()
                                                            if k.startswith(("linear_", "knn_"))},
                     "R² (mean)": pp["r2_mean"], "R² colour": pp["r2_family"]["colour"],
                     "R² crop": pp["r2_family"]["crop"]})
    if splits is None:
        splits = load_data(TrainConfig(data=data, data_options={"n": n_train}))
    floor_res = probe_floors(*splits, targets=_targets(splits[0].name), seed=seed) if floors else {}
    torch.manual_seed(seed)
    net = build_backbone("small-cnn", in_channels=splits[0].channels)
    aug = Augmenter(AUG.get(data, "simclr"))
    for name, model in (("raw pixels", "pixels"), ("random init", net)) if floors else ():
        pp = param_prediction(model, *splits, augmenter=aug, seed=seed, max_images=r2_images)
        rows.append({"method": f"{name} (floor)", **{_column(k): 100 * v for k, v in floor_res[name].items()},
                     "R² (mean)": pp["r2_mean"], "R² colour": pp["r2_family"]["colour"],
                     "R² crop": pp["r2_family"]["crop"]})
    df = pd.DataFrame(rows)
    keep = ["method"] + [_column(c) for c in ACC_METRICS if _column(c) in df] + ["R² (mean)", "R² colour", "R² crop"]
    return df[keep].round(3)
