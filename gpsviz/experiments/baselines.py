"""The project's own grids (``reproduce baselines|gps|gps-priors|precision``) and the README's ``demo``, registered
like the papers' experiments on the framework of :mod:`gpsviz.experiments.grid`.

- ``baselines``: SimCLR, BYOL, SupCon, SimCLR without augmentation and at strength 0.5, at the library's budget.
- ``gps``: SimCLR, GPS-SimCLR, BYOL, GPS-BYOL × weak / strong augmentation (GPS-SSL's weak-augmentation claim).
- ``gps-priors``: GPS-SimCLR with six priors: does the prior's purity order the accuracy? (Spearman ρ)
- ``precision``: SimCLR in bf16 + channels_last against float32.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from gpsviz.augment import Augmenter
from gpsviz.config import TrainConfig
from gpsviz.data import load_dataset
from gpsviz.errors import ConfigError
from gpsviz.experiments.grid import (EXPERIMENTS, GPS_PRIOR, Cell, NotebookRuns, floor_rows, format_table, grid_figures,
                                     method_configs, notebook_budget, provenance_note, register_experiment, run_cell, summarise,
                                     train_notebook_runs, write_report)
from gpsviz.plots import plot_views
from gpsviz.positives import NeighbourPositives
from gpsviz.priors import compute_prior, purity
from gpsviz.runs import load_data
from gpsviz.stats import rank_correlation
from gpsviz.utils import atomic_write_bytes, data_root, smoke_mode

__all__ = ["GRID_DATASETS", "PRIORS_COMPARED", "experiment_cells", "run_grid", "demo", "NB01_METHODS",
           "NB02_METHODS", "NB02_GPS", "notebook_runs", "gps_notebook_runs", "radius_comparison"]


#: The priors of the purity-vs-accuracy experiment (label-free ones, the supervised-transfer one and the oracle).
PRIORS_COMPARED = ("pixels", "pca", "hog", "shifted", "hog-invariant", "oracle")


def _prior_purity(config: dict[str, Any]) -> float:
    """Purity@10 (a fraction) of a run's GPS prior on its training set (the prior is cached, so this is quick)."""
    cfg = TrainConfig.from_dict(config)
    train_ds = load_data(cfg)[0]
    pos = dict(cfg.positives_options)
    prior = pos.pop("prior")
    emb = compute_prior(prior, train_ds, progress=False, **pos.pop("prior_options", {}))
    return purity(emb, train_ds.labels, k=10)


#: The datasets each grid can run on (``--datasets`` picks a subset; anything else is refused).
GRID_DATASETS = {"baselines": ("shapes", "fashion-mnist"), "gps": ("shapes", "fashion-mnist"),
                 "gps-priors": ("shapes",), "precision": ("shapes",)}


def experiment_cells(experiment: str, datasets: Sequence[str] | None = None) -> list[Cell]:
    """The grid of an experiment (``datasets``: a subset of :data:`GRID_DATASETS`, default its first)."""
    if experiment in GRID_DATASETS:
        datasets = EXPERIMENTS[experiment].check_datasets(datasets)
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
    raise ConfigError(f"experiment {experiment!r} is not a grid; choose {', '.join(GRID_DATASETS)}")


def run_grid(experiment: str, scale: str, n_seeds: int, out: Path, device: str | None = None,
             datasets: Sequence[str] | None = None, epochs: int | None = None,
             progress: bool = True) -> list[dict[str, Any]]:
    """Train every cell of a grid for every seed, add the floors, print and save its table and figures.

    The table ends with the floors of each dataset (rows "raw pixels" and "random init", aug "–"): the same
    probes on the raw pixels and on a randomly initialised backbone."""
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
        rho = rank_correlation([r["prior_purity"] for r in runs], [r["linear_label"] for r in runs])
        text += f"\n\nSpearman rank correlation of prior purity@10 and linear accuracy: {rho:.2f} ({len(runs)} runs)"
    write_report(out, experiment, scale, text, table, rows, t0)
    grid_figures(experiment, rows, table, out)
    return table


def demo(out: str | Path | None = None) -> None:
    """The README's main job (about 10 minutes on a 2-core CPU): a figure of the shapes world and its augmented
    views, then the shapes part of the GPS reproduction (weak augmentation, one seed) plus the SupCon ceiling."""
    import matplotlib

    matplotlib.use("Agg", force=False)
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
    grid_figures("demo (shapes, weak augmentation, seed 0)", rows, table, outdir)


def _grid_runner(name: str):
    """The registered runner of the grid ``name``: :func:`run_grid` with the experiment named."""
    def run(**kw: Any) -> list[dict[str, Any]]:
        return run_grid(name, **kw)

    run.__qualname__ = f"run_grid[{name}]"
    return run


for _name in GRID_DATASETS:
    register_experiment(_name, _grid_runner(_name), datasets=GRID_DATASETS[_name])


#: Notebook 01's methods: name → (recipe, its own TrainConfig fields).
NB01_METHODS = {"SimCLR": ("simclr", {}), "BYOL": ("byol", {}), "SupCon (ceiling)": ("supcon", {})}
#: Notebook 02's methods (GPS-SSL's experiment, small): SimCLR and GPS-SimCLR with weak and strong augmentation, the
#: SupCon ceiling. GPS's prior and k: :data:`NB02_GPS` (teach mode), ``hog-invariant`` in smoke mode.
NB02_GPS = {"prior": "shifted", "k": 8}
NB02_METHODS = {"SimCLR (weak)": ("simclr", {"aug": "weak"}),
                "GPS-SimCLR (weak)": ("gps-simclr", {"aug": "weak", "positives_options": NB02_GPS}),
                "SimCLR (strong)": ("simclr", {"aug": "strong"}),
                "GPS-SimCLR (strong)": ("gps-simclr", {"aug": "strong", "positives_options": NB02_GPS}),
                "SupCon (ceiling)": ("supcon", {"aug": "strong"})}


def notebook_runs(methods: Sequence[str] | dict[str, dict] | None = None, *, seed: int = 0,
                  smoke: bool | None = None, targets: Sequence[str] | None = None, floors: bool = True,
                  root: str | Path | None = None, progress: bool = True, **overrides: Any) -> NotebookRuns:
    """Notebook 01's runs on the shapes world: SimCLR, BYOL and the SupCon ceiling (:data:`NB01_METHODS`),
    strong augmentation, one seed, probed for ``targets`` (default: label, colour, position) beside the floors.
    Teach mode: 5,000 images × 8 epochs, batch 128; smoke: 512 × 1. ``methods``: names, or ``{name: fields}``;
    ``overrides``: TrainConfig fields of every run (e.g. ``data_options={"variant": "textured"}``)."""
    budget = notebook_budget(smoke, teach=dict(aug="strong", epochs=8, batch_size=128, data_options={"n": 5000},
                                               eval_size=2000),
                             quick=dict(aug="strong", epochs=1, batch_size=128, data_options={"n": 512},
                                        eval_size=200), overrides=overrides)
    return train_notebook_runs("nb01", method_configs(NB01_METHODS, methods, budget, seed),
                               targets=targets or ("label", "colour", "position"), floors=floors, seed=seed,
                               root=root, progress=progress)


def gps_notebook_runs(methods: Sequence[str] | dict[str, dict] | None = None, *, seed: int = 0,
                      smoke: bool | None = None, targets: Sequence[str] | None = None, floors: bool = True,
                      root: str | Path | None = None, progress: bool = True, **overrides: Any) -> NotebookRuns:
    """Notebook 02's runs (GPS-SSL's experiment, small): :data:`NB02_METHODS` on the shapes world, one seed,
    probed for ``targets`` (default: the label) beside the floors. Teach mode: 4,000 images × 6 epochs, batch
    128, GPS prior ``shifted`` with k = 8; smoke: 1,000 × 1 with ``hog-invariant``. Same arguments as every
    ``notebook_runs``: ``methods`` names or ``{name: fields}`` (e.g. another prior for one run)."""
    quick = smoke_mode() if smoke is None else smoke
    budget = notebook_budget(quick, teach=dict(epochs=6, batch_size=128, data_options={"n": 4000}, eval_size=2000),
                             quick=dict(epochs=1, batch_size=128, data_options={"n": 1000}, eval_size=200),
                             overrides=overrides)
    known = NB02_METHODS
    if quick:
        known = {n: (r, {**f, "positives_options": {**NB02_GPS, "prior": "hog-invariant"}} if "positives_options"
                     in f else f) for n, (r, f) in known.items()}
    return train_notebook_runs("nb02", method_configs(known, methods, budget, seed), targets=targets or ("label",),
                               floors=floors, seed=seed, root=root, progress=progress)


def radius_comparison(embeddings: dict[str, Any], labels: Any, priors: Sequence[str], k: int):
    """GPS's candidates per anchor with the k nearest against the reference's adaptive radius (one global τ, every
    neighbour inside the ball among the 2,047 nearest), for each prior of ``priors`` (``embeddings[prior]``: its
    N×D embedding): (pandas DataFrame of τ, mean / median candidates, share of anchors with none, purity; and
    ``{"<prior>, <mode>": int N candidate counts}``)."""
    import pandas as pd  # the table is for a notebook

    rows, sizes = {}, {}
    for prior in dict.fromkeys(priors):
        for label, radius in ((f"top-{k}", None), ("adaptive τ", "adaptive")):
            src = NeighbourPositives(prior=prior, k=k, radius=radius)
            src.build_table(embeddings[prior], labels)
            d = src.describe()
            rows[(prior, label)] = {"τ": d.get("tau", float("nan")), "mean candidates": d["mean_candidates"],
                                    "median": float(src.counts.float().median()),
                                    "anchors with none (%)": 100 * d["empty_share"], "purity": src.purity()}
            sizes[f"{prior}, {label}"] = src.counts
    return pd.DataFrame(rows).T.round(3), sizes
