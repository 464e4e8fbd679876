"""SPPS reproduction: ``python -m gpsviz reproduce spps --scale smoke|small|full``.

SimCLR against SPPS-SimCLR (the anchor's augmented pair *plus* views of its semantic set, all positives), with the
floors (raw pixels, random init) and the SupCon ceiling at the same budget, on the shapes world and Fashion-MNIST
(``full``: CIFAR-10 and Fashion-MNIST with ResNet-18 and the GPU settings of :data:`gpsviz.experiments.grid.SCALES`).

Two SPPS rows, two ways of mining the sets (cosine similarity, up to ``k`` = 4 members above a threshold chosen
without labels: ``threshold_quantile`` = 0.75 of the mined similarities, so about one member per image on average,
the most similar pairs of the dataset):
- ``SPPS-SimCLR (SimCLR ckpt)``: as the paper, with an encoder pretrained by the same SSL method — the backbone of
  the SimCLR cell of the same seed (prior ``checkpoint``). The SPPS network starts from scratch at the same budget;
  its mining encoder cost one SimCLR run more.
- ``SPPS-SimCLR (<prior>)``: with a label-free prior (:data:`SET_PRIOR`: grid HOG on shapes, PCA on Fashion-MNIST,
  the ImageNet ResNet-50 on CIFAR-10).
Beside the accuracy table, the purity and mean size of the sets each SPPS run trained with (read from its
checkpoint: the table the loss used) are reported per dataset. The small scale has its own budget
(:data:`SMALL_BUDGET`: 3,000 images, 6 epochs; the other small grids train 5,000 images for 8) so that its 24 runs
fit about an hour of a heavily shared 2-core CPU; the floors use the same data.

Only SimCLR, for the budget: v1 of the paper builds on SimCLR, and its headline (+4.18 points linear on ImageNet)
is against SimCLR. The paper's v3 also claims gains for methods without negatives (SimSiam), so SPPS is not only
about taking semantic neighbours out of the contrastive denominator; ``spps-byol`` (the closest gpsviz method to
that claim) is a recipe, measured once beside BYOL in ``scripts/byol_curve.py --spps`` (README, SPPS section).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from gpsviz.checkpoint import load_checkpoint
from gpsviz.errors import ConfigError
from gpsviz.experiments.grid import (FULL_DATA, SCALES, Cell, NotebookRuns, cell_config, cell_run_dir, floor_rows,
                                     format_table, method_configs, notebook_budget, register_experiment, run_cell,
                                     save_figure, summarise, train_notebook_runs, write_report)
from gpsviz.plots import plot_results_bars
from gpsviz.positives.semantic import set_report
from gpsviz.stats import format_mean_sd

__all__ = ["SPPS_OPTIONS", "spps_cells", "spps_configs", "set_stats", "run_spps", "NB03_METHODS", "notebook_runs"]

#: The semantic sets of the reproduction (see the module docstring).
SPPS_OPTIONS: dict[str, Any] = {"k": 4, "threshold_quantile": 0.75, "members": 1}
#: The control row (issue 20): SimCLR with SPPS's third view per anchor but no semantic set.
CONTROL = "SimCLR, 3 views (control)"
#: Augmentation preset per dataset: the calibrated ``strong`` preset on shapes, SimCLR's published one elsewhere.
AUG = {"shapes": "strong", "fashion-mnist": "simclr", "cifar10": "simclr"}
DATASETS = ("shapes", "fashion-mnist")
METRICS = ["linear_label", "knn_label"]
#: The label-free prior of the second SPPS row, per dataset.
SET_PRIOR = {"shapes": "hog", "fashion-mnist": "pca", "cifar10": "imagenet-resnet50"}
#: The small scale's budget for this experiment (registered as SCALES["small"]["experiments"]["spps"], the
#: mechanism by which an experiment sets its own budget; cells and floors both read it): 3,000 images, batch 256
#: (11 steps an epoch), 6 epochs, AdamW 1e-3, float32.
SMALL_BUDGET: dict[str, Any] = dict(
    epochs=6, common=dict(data_options={"n": 3000}, batch_size=256, lr=1e-3, precision="fp32"),
    fmnist=dict(data_options={"n": 3000}, batch_size=256, lr=1e-3, precision="fp32", momentum_base=0.99))
SCALES["small"].setdefault("experiments", {})["spps"] = SMALL_BUDGET
#: Seeds of the SupCon ceiling per scale (the others: every seed). On the shared CPU one seed of the bound is
#: enough and leaves the time to the methods compared.
CEILING_SEEDS = {"small": 1}


def _data(dataset: str, scale: str) -> str:
    return FULL_DATA.get(dataset, dataset) if scale == "full" else dataset


def spps_cells(dataset: str, seed: int, out: Path, scale: str = "small") -> list[Cell]:
    """The cells of one dataset and seed, in training order: SimCLR, SPPS-SimCLR mining with that SimCLR run's
    checkpoint, SPPS-SimCLR mining with :data:`SET_PRIOR`, SupCon (ceiling). ``dataset`` is the small-scale name;
    at ``full`` it maps to its GPU dataset."""
    data = _data(dataset, scale)
    aug = AUG.get(data, "simclr")
    simclr = Cell("SimCLR", "simclr", aug, data, experiment="spps")
    mining = str(cell_run_dir(simclr, seed, out).resolve())
    spps = Cell("SPPS-SimCLR (SimCLR ckpt)", "spps-simclr", aug, data, experiment="spps", tag="ckpt",
                overrides={"positives_options": {"prior": "checkpoint", "run": mining, **SPPS_OPTIONS}})
    prior = SET_PRIOR.get(data, "pca")
    spps_prior = Cell(f"SPPS-SimCLR ({prior})", "spps-simclr", aug, data, experiment="spps", tag=prior,
                      overrides={"positives_options": {"prior": prior, **SPPS_OPTIONS}})
    # the control: SPPS-SimCLR's three views per anchor with every set empty (no image reaches cosine 1), so an
    # anchor's extra view is a third augmentation of itself — what SPPS gives the anchors whose set is empty
    control = Cell(CONTROL, "spps-simclr", aug, data, experiment="spps", tag="3views",
                   overrides={"positives_options": {"prior": prior, "k": SPPS_OPTIONS["k"], "threshold": 1.0,
                                                    "members": SPPS_OPTIONS["members"]}})
    supcon = Cell("SupCon (ceiling)", "supcon", aug, data, experiment="spps")
    return [simclr, control, spps, spps_prior, supcon]


def spps_configs(scale: str = "small", n_seeds: int | None = None, out: str | Path = "data/reproduce/spps",
                 datasets: Sequence[str] | None = None, epochs: int | None = None, device: str | None = None):
    """Every :class:`~gpsviz.config.TrainConfig` the experiment would train (validated on construction), as
    ``[(cell, seed, config)]``: what the tests check for the ``full`` scale without training."""
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is unknown; choose one of {', '.join(SCALES)}")
    n = SCALES[scale]["seeds"] if n_seeds is None else n_seeds
    return [(c, s, cell_config(c, scale, s, epochs, device)) for s in range(n) for d in (datasets or DATASETS)
            for c in spps_cells(d, s, Path(out), scale)]


def set_stats(run_dir: str | Path) -> dict[str, float]:
    """Purity, mean size and share of empty sets of the semantic sets an SPPS run trained with, read from its
    checkpoint (the positive source's saved table: the sets the loss used)."""

    ck = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    st = ck.get("positives") or {}
    if st.get("table") is None:
        raise ConfigError(f"{run_dir} holds no semantic sets (was it trained with positives='semantic'?)")
    r = set_report(st["table"], st["sims"], st["labels"], float(st["threshold"]), int(st["table"].shape[1]))
    return {"set_threshold": r.threshold, "set_purity": r.purity, "set_size": r.mean_size, "set_empty": r.empty}


def _sets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | sets mined with | runs | threshold (cosine) | set purity | mean set size | images with an empty set |",
             "|---|---|---|---|---|---|---|"]
    for data, name in dict.fromkeys((r["dataset"], r["name"]) for r in rows if "set_purity" in r):
        rs = [r for r in rows if r["dataset"] == data and r["name"] == name and "set_purity" in r]

        def ms(key: str, pct: bool, digits: int = 2) -> str:
            return (format_mean_sd([r[key] * (100 if pct else 1) for r in rs], f".{1 if pct else digits}f")
                    + (" %" if pct else ""))

        mined = name[name.find("(") + 1:name.rfind(")")] if "(" in name else name
        lines.append(f"| {data} | {mined} | {len(rs)} | {ms('set_threshold', False, 3)} | {ms('set_purity', True)} | "
                     f"{ms('set_size', False)} | {ms('set_empty', True)} |")
    return "\n".join(lines)


def run_spps(scale: str = "small", n_seeds: int = 3, out: str | Path = "data/reproduce/spps-small",
             device: str | None = None, datasets: Sequence[str] | None = None, epochs: int | None = None,
             progress: bool = True) -> list[dict[str, Any]]:
    """Train and evaluate SimCLR, SPPS-SimCLR and SupCon per dataset and seed (seed by seed, so an interrupted
    run has every method for the seeds it finished), add the floors, print and save ``table.md`` /
    ``results.json``. Returns the accuracy table (mean ± std over seeds), floors last per dataset."""
    out = Path(out)
    datasets = list(datasets or DATASETS)
    bad = [d for d in datasets if d not in DATASETS]
    if bad:
        raise ConfigError(f"reproduce spps: datasets {bad} are not part of this experiment; choose from "
                          f"{', '.join(DATASETS)}")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    # the ceiling is trained for the first CEILING_SEEDS[scale] seeds only (it is a bound, not a contender)
    ceiling_seeds = min(n_seeds, CEILING_SEEDS.get(scale, n_seeds))
    total = (4 * n_seeds + ceiling_seeds) * len(datasets)
    i = 0
    for seed in range(n_seeds):
        for dataset in datasets:
            for cell in spps_cells(dataset, seed, out, scale):
                if cell.recipe == "supcon" and seed >= ceiling_seeds:
                    continue
                i += 1
                print(f"[{i}/{total}] {cell.data} {cell.name} aug={cell.aug} seed={seed}", flush=True)
                res = run_cell(cell, scale, seed, out, epochs, device, progress)
                if cell.recipe == "spps-simclr" and cell.name != CONTROL:
                    res = {**res, **set_stats(cell_run_dir(cell, seed, out))}
                    print(f"    sets: purity {res['set_purity']:.3f}, mean size {res['set_size']:.2f}, "
                          f"threshold {res['set_threshold']:.4f}", flush=True)
                rows.append(res)
            rows.extend(floor_rows(_data(dataset, scale), scale, seed, out, device, "spps"))
    table = summarise(rows, METRICS)
    order = {"SimCLR": 0, CONTROL: 0.5, "SupCon (ceiling)": 3, "raw pixels": 4, "random init": 5}
    table.sort(key=lambda r: (r["dataset"], order.get(r["method"], 1 if "ckpt" in r["method"] else 2)))
    text = (format_table(table, METRICS) + "\n\nSemantic sets the SPPS runs trained with (k=4, threshold = the 0.75 "
            "quantile of the mined similarities; purity = share of members with the anchor's class):\n\n"
            + _sets_table(rows))
    write_report(out, "spps", scale, text, table, rows, t0)

    save_figure(out / "accuracy.png",
                lambda: plot_results_bars(table, metric="linear_label", title="SPPS: linear-probe accuracy"))
    return table


register_experiment("spps", run_spps)


#: Notebook 03's methods: name → (recipe, its own fields); GPS and SPPS mine :data:`NB03_SETS`' prior.
NB03_SETS = {"prior": "hog", "k": 4}
NB03_METHODS = {"SimCLR": ("simclr", {}),
                "GPS-SimCLR": ("gps-simclr", {"positives_options": NB03_SETS}),
                "SPPS-SimCLR": ("spps-simclr", {"positives_options": {**NB03_SETS, "threshold": 0.9}}),
                "SupCon (ceiling)": ("supcon", {})}


def notebook_runs(methods: Sequence[str] | dict[str, dict] | None = None, *, seed: int = 0,
                  smoke: bool | None = None, targets: Sequence[str] | None = None, floors: bool = True,
                  root: str | Path | None = None, progress: bool = True, **overrides: Any) -> NotebookRuns:
    """Notebook 03's comparison on the shapes world: SimCLR, GPS-SimCLR, SPPS-SimCLR (both mining ``hog``, k = 4;
    SPPS keeps those above cosine 0.9) and the SupCon ceiling, strong augmentation, one seed, with the floors.
    Teach mode: 4,000 images × 8 epochs, batch 128; smoke: 1,000 × 1. The table adds, for SPPS, the purity (%)
    and mean size of the sets its loss used (read from its checkpoint). Same arguments as every
    ``notebook_runs``: ``methods`` names or ``{name: fields}`` (e.g. another prior or threshold)."""
    budget = notebook_budget(smoke, teach=dict(aug="strong", epochs=8, batch_size=128, data_options={"n": 4000},
                                               eval_size=2000),
                             quick=dict(aug="strong", epochs=1, batch_size=128, data_options={"n": 1000},
                                        eval_size=200), overrides=overrides)
    nb = train_notebook_runs("nb03", method_configs(NB03_METHODS, methods, budget, seed),
                             targets=targets or ("label",), floors=floors, seed=seed, root=root, progress=progress)
    for name, cfg in nb.configs.items():
        if cfg.positives == "semantic":
            st = set_stats(nb.runs[name])
            nb.table.loc[nb.table.method == name, ["set purity %", "mean set size"]] = (
                round(100 * st["set_purity"], 2), round(st["set_size"], 2))
    return nb
