"""SPPS reproduction: ``python -m gpsviz reproduce spps --scale smoke|small|full``.

SimCLR against SPPS-SimCLR (the anchor's augmented pair *plus* views of its semantic set, all positives), with the
floors (raw pixels, random init) and the SupCon ceiling at the same budget, on the shapes world and Fashion-MNIST
(``full``: CIFAR-10 and Fashion-MNIST with ResNet-18 and the GPU settings of :data:`gpsviz.reproduce.SCALES`).

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

import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from gpsviz.errors import ConfigError
from gpsviz.reproduce import (FULL_DATA, SCALES, Cell, _config, floor_rows, format_table, register_experiment,
                              run_cell, summarise, save_figure, write_report)

__all__ = ["SPPS_OPTIONS", "spps_cells", "spps_configs", "set_stats", "run_spps", "notebook_comparison"]

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


def _run_dir(cell: Cell, seed: int, out: Path) -> Path:
    """The run folder :func:`gpsviz.reproduce.run_cell` trains ``cell`` of ``seed`` in."""
    return out / "runs" / f"{cell.data}-{cell.recipe}-{cell.aug}{'-' + cell.tag if cell.tag else ''}-s{seed}"


def _data(dataset: str, scale: str) -> str:
    return FULL_DATA.get(dataset, dataset) if scale == "full" else dataset


def spps_cells(dataset: str, seed: int, out: Path, scale: str = "small") -> list[Cell]:
    """The cells of one dataset and seed, in training order: SimCLR, SPPS-SimCLR mining with that SimCLR run's
    checkpoint, SPPS-SimCLR mining with :data:`SET_PRIOR`, SupCon (ceiling). ``dataset`` is the small-scale name;
    at ``full`` it maps to its GPU dataset."""
    data = _data(dataset, scale)
    aug = AUG.get(data, "simclr")
    simclr = Cell("SimCLR", "simclr", aug, data, experiment="spps")
    mining = str(_run_dir(simclr, seed, out).resolve())
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
    return [(c, s, _config(c, scale, s, epochs, device)) for s in range(n) for d in (datasets or DATASETS)
            for c in spps_cells(d, s, Path(out), scale)]


def set_stats(run_dir: str | Path) -> dict[str, float]:
    """Purity, mean size and share of empty sets of the semantic sets an SPPS run trained with, read from its
    checkpoint (the positive source's saved table: the sets the loss used)."""
    from gpsviz.checkpoint import load_checkpoint
    from gpsviz.positives.semantic import set_report

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
            vals = [r[key] * (100 if pct else 1) for r in rs]
            m = statistics.fmean(vals)
            d = 1 if pct else digits
            sd = f" ± {statistics.stdev(vals):.{d}f}" if len(vals) > 1 else ""
            return f"{m:.{d}f}{sd}{' %' if pct else ''}"

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
                    res = {**res, **set_stats(_run_dir(cell, seed, out))}
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
    from gpsviz.plots import plot_results_bars

    save_figure(out / "accuracy.png",
                lambda: plot_results_bars(table, metric="linear_label", title="SPPS: linear-probe accuracy"))
    return table


register_experiment("spps", run_spps)


def notebook_comparison(n_train: int = 4000, epochs: int = 8, batch_size: int = 128, prior: str = "hog",
                        k: int = 4, threshold: float = 0.9, seed: int = 0, aug: str = "strong",
                        eval_size: int = 2000, root: str | Path | None = None, progress: bool = True):
    """Notebook 03's comparison on the shapes world: SimCLR, GPS-SimCLR and SPPS-SimCLR (both on ``prior``, k
    candidates; SPPS keeps those above ``threshold``), the SupCon ceiling and the floors, one seed.

    Runs are kept under ``<data>/runs/nb03-<recipe>-<config key>`` (re-running reloads them). Returns a
    pandas DataFrame: method, linear %, kNN %, and for SPPS its sets' purity and mean size."""
    import pandas as pd

    from gpsviz.config import TrainConfig
    from gpsviz.evaluate import evaluate_run, probe_floors
    from gpsviz.runs import load_data, train_or_resume

    common = dict(aug=aug, epochs=epochs, batch_size=batch_size, seed=seed, data_options={"n": n_train},
                  eval_size=eval_size)
    runs = [("SimCLR", "simclr", {}), ("GPS-SimCLR", "gps-simclr", {"prior": prior, "k": k}),
            ("SPPS-SimCLR", "spps-simclr", {"prior": prior, "k": k, "threshold": threshold}),
            ("SupCon (ceiling)", "supcon", {})]
    rows = []
    for name, recipe, pos in runs:
        cfg = TrainConfig(recipe=recipe, positives_options=pos, **common)
        run = train_or_resume(cfg, f"nb03-{recipe}", root=root, progress=progress)
        r = evaluate_run(run.out_dir, targets=["label"], probes=("knn", "linear"))
        row = {"method": name, "linear %": 100 * r["linear_label"], "kNN %": 100 * r["knn_label"]}
        if recipe == "spps-simclr":
            st = set_stats(run.out_dir)
            row.update({"set purity %": 100 * st["set_purity"], "mean set size": st["set_size"]})
        rows.append(row)
    train_ds, test_ds = load_data(TrainConfig(data_options={"n": n_train}, eval_size=eval_size))
    for name, res in probe_floors(train_ds, test_ds, targets=["label"], seed=seed).items():
        rows.append({"method": f"{name} (floor)", "linear %": 100 * res["linear_label"],
                     "kNN %": 100 * res["knn_label"]})
    return pd.DataFrame(rows).round(2)
