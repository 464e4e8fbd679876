"""Dubois et al. (idealized representations): ``python -m gpsviz reproduce dubois --scale smoke|small|full``.

Four questions, on the shapes world (``full``: CIFAR-10, ResNet-18, the GPU settings of
:data:`gpsviz.experiments.grid.SCALES`), every accuracy table with its floors (raw pixels, random init) and the SupCon
ceiling at the same budget:

1. **Objectives.** SimCLR against CISSL, BYOL against DISSL (the paper: TinyImageNet, linear probe, SimCLR 45.2
   → CISSL 45.8, DINO 43.3 → DISSL 45.1), all seeds of the scale.
2. **Representation dimension.** CISSL with the representation (the backbone output the probes read) of
   dimension :data:`DIMS`, linear and MLP probes. At ``small`` the dimension is the channel count of the small
   CNN's last block (``backbone_options["out_dim"]``; the rest of the network is unchanged); at ``full`` it is
   the ResNet-18's width (out_dim = 8·width), which widens the whole network.
3. **Augmentation strength.** CISSL at the label-preserving augmentation's ``strength`` :data:`STRENGTHS`
   (the calibrated ``strong`` preset; 1 = as written).
4. **The conditions.** For every trained run: invariance (per augmentation family), decodability of the
   equivalence class (which of 100 images a view came from), distance to a simplex ETF (``etf_distance``: the
   reference's instance-level DistToEtf of two views per held-out image, best −1/(N−1), mostly an invariance
   measure; the label class means' simplex distance, neural collapse, is kept as ``class_means_etf``),
   effective rank, and probe accuracy against labelled images per class. Then the Spearman rank correlation of
   each condition with linear-probe accuracy over all trained runs, whatever it is.

The sweeps (2, 3) run with :data:`SWEEP_SEEDS` seeds (fewer than the comparison, to fit a 2-core CPU); their
default point (dimension 128, strength 1) is the comparison's CISSL run of the same seed. Conditions are measured
on the held-out split with one yardstick for every run (the ``strong`` preset at strength 1, whatever the run
trained with) and saved in each run folder as ``conditions.json``; the explorer and the tables read them there.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from gpsviz import diagnostics as dg
from gpsviz.checkpoint import load_backbone
from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError
from gpsviz.evaluate import extract, linear_probe, mlp_probe, probe_floors
from gpsviz.experiments.grid import (SCALES, Cell, NotebookRuns, merge_fields, method_configs, notebook_budget, cell_config, cell_run_dir, floor_rows, format_table,
                                     register_experiment, run_cell, same_config, save_figure, summarise)
from gpsviz.plots.dubois import plot_accuracy_sweep, plot_conditions_vs_accuracy, plot_label_efficiency
from gpsviz.runs import load_data, train_or_resume
from gpsviz.stats import format_mean_sd, rank_correlation
from gpsviz.utils import atomic_write_bytes, atomic_write_json, read_json, read_json_cache, smoke_mode

__all__ = ["DIMS", "STRENGTHS", "METHODS", "BUDGET", "dubois_cells", "dubois_configs", "measure_run", "run_dubois",
           "spearman_table", "NB06_METHODS", "notebook_runs", "CONDITIONS"]

#: (name, recipe) of the comparison, then the ceiling.
METHODS = (("SimCLR", "simclr"), ("CISSL", "cissl"), ("BYOL", "byol"), ("DISSL", "dissl"))
CEILING = ("SupCon (ceiling)", "supcon")
#: Representation dimensions and augmentation strengths of the sweeps, per scale.
DIMS = {"smoke": (16, 32), "small": (16, 64, 128, 256), "full": (256, 512, 1024, 2048)}
STRENGTHS = {"smoke": (0.5, 1.0), "small": (0.5, 1.0, 1.5), "full": (0.5, 1.0, 2.0)}
SWEEP_SEEDS = {"smoke": 1, "small": 1, "full": 3}
#: The sweep method.
SWEEP = ("CISSL", "cissl")
AUG = {"shapes": "strong", "cifar10": "simclr"}

#: Per-scale budget of this experiment (``SCALES[scale]["experiments"]["dubois"]``). ``small``: one run ≈ 1 min
#: of one free CPU core plus about as long to measure it (4,000 images, 4 epochs, batch 128, AdamW 2e-3, a small CNN
#: of width 16 whose representation has 128 dimensions); there are 20 runs.
BUDGET: dict[str, dict[str, Any]] = {
    "smoke": dict(epochs=1, common=dict(data_options={"n": 256}, batch_size=64, eval_size=200,
                                        backbone_options={"width": 4}, precision="fp32")),
    "small": dict(epochs=4, common=dict(data_options={"n": 4000}, batch_size=128, lr=2e-3, precision="fp32",
                                        backbone_options={"width": 16})),
    "full": dict(epochs=400, common=dict(SCALES["full"]["common"])),
}
for _scale, _b in BUDGET.items():
    SCALES[_scale].setdefault("experiments", {})["dubois"] = _b
_DEFAULT_DIM = {"smoke": 32, "small": 128, "full": 512}

#: The measured conditions (keys of :func:`measure_run`'s result) and whether larger is better in theory.
CONDITIONS = {"invariance": False, "decodability": True, "etf_distance": False, "effective_rank": True}
_VERSION = 2   # of conditions.json (2: etf_distance is the instance-level dist_to_etf, was the class means')


def _data(scale: str) -> str:
    return "cifar10" if scale == "full" else "shapes"


def _dim_options(scale: str, dim: int) -> dict[str, Any]:
    base = dict(BUDGET[scale]["common"].get("backbone_options", {}))
    if scale == "full":
        return {**base, "width": dim // 8}
    return {**base, "out_dim": int(dim)}


def dubois_cells(scale: str = "small", seed: int = 0) -> list[Cell]:
    """The cells trained for ``seed``: the comparison (4 methods + SupCon) and, for seeds below
    :data:`SWEEP_SEEDS`, the dimension and strength sweeps of CISSL (their default point is the comparison's run).
    Each cell carries ``overrides`` and a ``tag`` telling its run folder apart."""
    if scale not in BUDGET:
        raise ConfigError(f"scale {scale!r} is unknown; choose one of {', '.join(BUDGET)}")
    data = _data(scale)
    aug = AUG[data]
    cells = [Cell(name, recipe, aug, data, experiment="dubois") for name, recipe in (*METHODS, CEILING)]
    if seed < SWEEP_SEEDS[scale]:
        name, recipe = SWEEP
        for d in DIMS[scale]:
            if d != _DEFAULT_DIM[scale]:
                cells.append(Cell(f"{name} dim {d}", recipe, aug, data, experiment="dubois", tag=f"d{d}",
                                  overrides={"backbone_options": _dim_options(scale, d)}))
        for s in STRENGTHS[scale]:
            if s != 1.0:
                cells.append(Cell(f"{name} strength {s:g}", recipe, aug, data, experiment="dubois",
                                  tag=f"s{s:g}", overrides={"strength": float(s)}))
    return cells


def dubois_configs(scale: str = "small", n_seeds: int | None = None, epochs: int | None = None,
                   device: str | None = None) -> list[tuple[Cell, int, Any]]:
    """Every TrainConfig the experiment would train (validated on construction) as ``[(cell, seed, config)]``:
    what the tests check for the ``full`` scale without training."""
    n = SCALES[scale]["seeds"] if n_seeds is None else n_seeds
    return [(c, s, cell_config(c, scale, s, epochs, device)) for s in range(n) for c in dubois_cells(scale, s)]


def measure_run(run_dir: str | Path, data: tuple[Any, Any] | None = None, n_invariance: int = 500,
                n_instances: int = 100, device: str | None = None, write: bool = True) -> dict[str, Any]:
    """Measure Dubois et al.'s conditions and the label-efficiency curve of a trained run.

    Fits on the train split, reports on the held-out split: linear and MLP probes (all labels and 1, 5, 10, 50
    per class), invariance per augmentation family and decodability of the instance among ``n_instances``
    images (views of held-out images; the ``strong`` preset at strength 1 for every run), the distance to a simplex
    ETF (``etf_distance``: the reference's instance-level :func:`gpsviz.diagnostics.dist_to_etf` of two such views
    of ``n_invariance`` held-out images, with its ``etf_pos`` and ``etf_neg`` terms; ``class_means_etf``: the
    label class means' distance, neural collapse), the 2-D simplex view and effective rank of the held-out
    features. Cached in ``run_dir/conditions.json`` (keyed by
    the run's config). Returns a flat dict (``invariance`` = the whole preset's ratio, ``invariance_<family>``
    per family, ``label_efficiency`` rows, ``etf_means`` / ``etf_ideal`` C×2 lists, ``dim``, ``classes``)."""

    run_dir = Path(run_dir)
    path = run_dir / "conditions.json"
    backbone, cfg_dict = load_backbone(run_dir, device="cpu")
    cached = read_json_cache(path)                 # a broken cache is recomputed
    if (cached is not None and same_config(cached.get("config"), cfg_dict) and cached.get("version") == _VERSION
            and isinstance(cached.get("conditions"), dict)):
        return cached["conditions"]
    t0 = time.perf_counter()
    cfg = TrainConfig.from_dict(cfg_dict)
    train_ds, test_ds = data if data is not None else load_data(cfg)
    torch.manual_seed(cfg.seed)
    tr, te = extract(backbone, train_ds, device=device), extract(backbone, test_ds, device=device)
    full = {"linear": linear_probe(tr, te, seed=cfg.seed)["test_acc"], "mlp": mlp_probe(tr, te, seed=cfg.seed)["test_acc"]}
    eff = dg.label_efficiency(tr, te, seed=cfg.seed, full=full)
    inv = dg.measure_invariance(backbone, test_ds, "strong", 1.0, n=n_invariance, seed=cfg.seed, device=device)
    dec = dg.measure_decodability(backbone, test_ds, "strong", 1.0, n_images=n_instances, seed=cfg.seed,
                                  device=device)
    etf = dg.measure_dist_to_etf(backbone, test_ds, "strong", 1.0, n=n_invariance, seed=cfg.seed, device=device)
    cm = dg.class_means_etf_distance(te.features, test_ds.labels)
    means, ideal = dg.etf_view_2d(te.features, test_ds.labels)
    res = {"linear": full["linear"], "mlp": full["mlp"], "invariance": inv.get("all", float("nan")),
           **{f"invariance_{k}": v for k, v in inv.items() if k != "all"}, "decodability": dec,
           "etf_distance": etf["dist_to_etf"], "etf_pos": etf["pos"], "etf_neg": etf["neg"],
           "class_means_etf": cm["etf_distance"], "etf_norm_cv": cm["norm_cv"],
           "effective_rank": dg.effective_rank(te.features), "dim": int(te.features.shape[1]),
           "label_efficiency": eff, "etf_means": means.tolist(), "etf_ideal": ideal.tolist(),
           "classes": list(test_ds.classes), "strength": float(cfg.strength), "recipe": cfg.recipe,
           "seed": int(cfg.seed), "measure_time": time.perf_counter() - t0}
    if write:
        atomic_write_json(path, {"config": cfg_dict, "version": _VERSION, "conditions": res})
    return res


def _record(res: dict[str, Any], cond: dict[str, Any], method: str) -> dict[str, Any]:
    """One run as the explorer and the tables read it."""
    return {"name": res.get("name", method), "method": method, "dataset": res.get("dataset", "shapes"),
            "aug": res.get("config", {}).get("aug", "–"), "linear_label": cond["linear"], "mlp_label": cond["mlp"],
            "knn_label": res.get("knn_label"), "train_time": res.get("train_time"),
            **{k: v for k, v in cond.items() if k not in ("linear", "mlp")}}


def spearman_table(records: Sequence[dict[str, Any]], accuracy: str = "linear_label") -> list[dict[str, Any]]:
    """Spearman rank correlation of each condition (:data:`CONDITIONS`) with ``accuracy`` over ``records``
    (trained runs). Rows ``{"condition", "rho", "runs", "expected"}``; ``expected`` is the sign the theory
    predicts (+1: larger is better; −1: smaller is better)."""
    rows = []
    for cond, larger_better in CONDITIONS.items():
        rs = [r for r in records if r.get(cond) is not None and r.get(accuracy) is not None
              and r[cond] == r[cond]]
        rho = rank_correlation([r[cond] for r in rs], [r[accuracy] for r in rs]) if len(rs) >= 3 else float("nan")
        rows.append({"condition": cond, "rho": rho, "runs": len(rs), "expected": 1 if larger_better else -1})
    return rows


def _conditions_md(records: Sequence[dict[str, Any]], key: str) -> str:
    """Markdown: one row per value of ``key`` (method / dim / strength), mean ± std over seeds of the
    accuracies (%) and the conditions."""
    lines = [f"| {key} | seeds | linear % | MLP % | invariance (all) | inv. crop | inv. colour | decodability % | "
             "ETF distance | effective rank |", "|" + "---|" * 10]
    for v in dict.fromkeys(r[key] for r in records):
        rs = [r for r in records if r[key] == v]
        pct = lambda k: format_mean_sd([100 * r[k] for r in rs if r.get(k) is not None], ".1f")  # noqa: E731
        num = lambda k, f=".3f": format_mean_sd([r.get(k) for r in rs], f)                   # noqa: E731
        lines.append(f"| {v} | {len(rs)} | {pct('linear_label')} | {pct('mlp_label')} | {num('invariance')} | "
                     f"{num('invariance_crop')} | {num('invariance_colour')} | {pct('decodability')} | "
                     f"{num('etf_distance')} | {num('effective_rank', '.1f')} |")
    return "\n".join(lines)


def _efficiency_md(records: Sequence[dict[str, Any]]) -> str:
    ks = [r["per_class"] for r in records[0]["label_efficiency"] if r["probe"] == "linear"] if records else []
    heads = [f"{k}/class" if k != "all" else "all" for k in ks]
    lines = ["| method | probe | " + " | ".join(heads) + " |", "|" + "---|" * (2 + len(ks))]
    for m in dict.fromkeys(r["method"] for r in records):
        rs = [r for r in records if r["method"] == m]
        for p in ("linear", "mlp"):
            cells = [format_mean_sd([100 * e["test_acc"] for r in rs for e in r["label_efficiency"]
                               if e["probe"] == p and e["per_class"] == k], ".1f") for k in ks]
            lines.append(f"| {m} | {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spearman_md(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| condition | Spearman ρ with linear accuracy | runs | sign the theory expects |", "|---|---|---|---|"]
    for r in rows:
        rho = "–" if r["rho"] != r["rho"] else f"{r['rho']:+.2f}"
        lines.append(f"| {r['condition']} | {rho} | {r['runs']} | {'+' if r['expected'] > 0 else '−'} |")
    return "\n".join(lines)


def report(records: Sequence[dict[str, Any]], floors: Sequence[dict[str, Any]]) -> str:
    """All tables of the experiment as Markdown (see the module docstring)."""
    main = [r for r in records if r["group"] == "main"]
    acc_rows = [{**r, "name": r["method"]} for r in main] + list(floors)
    metrics = ["linear_label", "mlp_label", "knn_label"]
    table = summarise(acc_rows, metrics)
    seeds = {r["seed"] for r in records if r["group"] in ("dim", "strength")} or {0}
    sweep = [r for r in records if r["method"] == SWEEP[0] and r["seed"] in seeds]
    dims = sorted((r for r in sweep if r["group"] == "dim" or (r["group"] == "main" and r["strength"] == 1.0)),
                  key=lambda r: r["dim"])
    strengths = sorted((r for r in sweep if r["group"] in ("strength", "main")), key=lambda r: r["strength"])
    return "\n\n".join([
        "Comparison (mean ± std over seeds; floors: raw pixels and random init; SupCon = ceiling):",
        format_table(table, metrics),
        "Conditions of the comparison's runs (held-out split):", _conditions_md(main, "method"),
        f"Representation dimension ({SWEEP[0]}, linear vs MLP probe):", _conditions_md(dims, "dim"),
        f"Augmentation strength ({SWEEP[0]}):", _conditions_md(strengths, "strength"),
        "Label efficiency (probe accuracy %, labelled images per class):", _efficiency_md(main),
        f"Do the conditions rank the runs as their accuracy does? (all {len(records)} trained runs)",
        _spearman_md(spearman_table(records))])


def run_dubois(scale: str = "small", n_seeds: int = 3, out: str | Path = "data/reproduce/dubois-small",
               device: str | None = None, datasets: Sequence[str] | None = None, epochs: int | None = None,
               progress: bool = True, seed_list: Sequence[int] | None = None,
               part: str | None = None, shard: tuple[int, int] | None = None,
               only_finished: bool = False) -> list[dict[str, Any]]:
    """Train every cell (seed 0's comparison and sweeps first, then the other seeds' comparisons), measure each
    run's conditions, add the floors, print and save ``table.md``, ``results.json`` (``records``: one dict per
    run, what :class:`gpsviz.widgets.ProbeExplorer` reads) and figures. Returns the records.

    ``seed_list`` / ``part`` (``"main"`` = the comparison, ``"sweeps"`` = dimension and strength) run a share of
    the cells, and ``shard=(i, n)`` every n-th cell from the i-th (no floors), e.g. one process per share into the
    same ``out``; a last call without them then finds every run trained and measured and writes the complete
    tables. ``only_finished``: train nothing, report the runs whose results exist (an interrupted reproduction)."""
    out = Path(out)
    if datasets and list(datasets) != [_data(scale)]:
        raise ConfigError(f"reproduce dubois runs on {_data(scale)} at scale {scale!r}; leave --datasets out")
    if part not in (None, "main", "sweeps"):
        raise ConfigError(f"part={part!r} is unknown; choose main, sweeps or None (everything)")
    seeds = range(n_seeds) if seed_list is None else [int(s) for s in seed_list]
    order = [(s, c) for s in seeds for c in dubois_cells(scale, s)
             if part is None or (part == "main") == (not c.tag)]
    if shard is not None:
        order = order[int(shard[0])::int(shard[1])]
    if only_finished:
        order = [(s, c) for s, c in order if _finished(c, s, out, scale, epochs, device)]
    records: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, (seed, cell) in enumerate(order):
        print(f"[{i + 1}/{len(order)}] {cell.data} {cell.name} seed={seed}", flush=True)
        res = run_cell(cell, scale, seed, out, epochs, device, progress, targets=["label"])
        cond = measure_run(cell_run_dir(cell, seed, out), device=device)
        group = "dim" if cell.tag.startswith("d") else "strength" if cell.tag.startswith("s") else "main"
        method = SWEEP[0] if group != "main" else cell.name
        records.append({**_record(res, cond, method), "group": group})
        print(f"    linear {100 * cond['linear']:.1f} %, MLP {100 * cond['mlp']:.1f} %, invariance "
              f"{cond['invariance']:.3f}, decodability {100 * cond['decodability']:.1f} %, ETF distance "
              f"{cond['etf_distance']:.3f}, effective rank {cond['effective_rank']:.1f}", flush=True)
        last_of_seed = i + 1 == len(order) or order[i + 1][0] != seed
        cached = (out / "runs" / f"{cell.data}-floors-s{seed}" / "results.json").exists()
        if shard is None and part != "sweeps" and last_of_seed and (cached or not only_finished):
            floors.extend(floor_rows(cell.data, scale, seed, out, device, "dubois", targets=["label"]))
            _save(out, scale, records, floors, t0)
    text = _save(out, scale, records, floors, t0)
    print(text)
    print(f"total time {time.perf_counter() - t0:.0f}s; runs in {out / 'runs'}")
    _figures(records, out)
    return records


def _finished(cell: Cell, seed: int, out: Path, scale: str, epochs: int | None, device: str | None) -> bool:
    """Whether the cell's run folder holds results of the config it would train now."""
    res = read_json(cell_run_dir(cell, seed, out) / "results.json")       # missing or unreadable: not finished
    return isinstance(res, dict) and same_config(res.get("config"), cell_config(cell, scale, seed, epochs, device))


def _save(out: Path, scale: str, records: list[dict], floors: list[dict], t0: float) -> str:
    text = report(records, floors)
    atomic_write_bytes(out / "table.md", (text + "\n").encode())
    atomic_write_json(out / "results.json", {"experiment": "dubois", "scale": scale, "records": records,
                                             "floors": floors, "spearman": spearman_table(records),
                                             "wall_s": time.perf_counter() - t0})
    return text


def _figures(records: list[dict], out: Path) -> None:
    """The four figures of the report; each is skipped alone (with a message) if it fails."""
    sweep = [r for r in records if r["method"] == SWEEP[0]]
    save_figure(out / "accuracy_vs_dim.png", lambda: plot_accuracy_sweep([r for r in sweep if r["strength"] == 1.0],
                                                                         "dim"))
    save_figure(out / "accuracy_vs_strength.png",
                lambda: plot_accuracy_sweep([r for r in sweep if r["group"] != "dim"], "strength"))
    save_figure(out / "label_efficiency.png",
                lambda: plot_label_efficiency([r for r in records if r["group"] == "main"]))
    save_figure(out / "conditions_vs_accuracy.png", lambda: plot_conditions_vs_accuracy(records))
    print(f"figures in {out}")


register_experiment("dubois", run_dubois)


# ------------------------------------------------------------------------------------------------ notebook 06
#: Notebook 06's methods: name → (recipe, its own fields); the sweeps' cells carry the representation size or the
#: augmentation strength in their name, and their records the method (CISSL) for :class:`~gpsviz.widgets.ProbeExplorer`.
NB06_METHODS = {"SimCLR": ("simclr", {}), "CISSL": ("cissl", {}), "BYOL": ("byol", {}), "DISSL": ("dissl", {}),
                "CISSL (strength 0.5)": ("cissl", {"strength": 0.5}),
                "CISSL (small representation)": ("cissl", {"backbone_options": {"out_dim": 32}}),
                CEILING[0]: (CEILING[1], {})}


def notebook_runs(methods: Sequence[str] | dict[str, dict] | None = None, *, seed: int = 0,
                  smoke: bool | None = None, targets: Sequence[str] | None = None, floors: bool = True,
                  root: str | Path | None = None, progress: bool = True, **overrides: Any) -> NotebookRuns:
    """Notebook 06's runs on the shapes world, one seed (:data:`NB06_METHODS`: SimCLR, CISSL, BYOL, DISSL, CISSL
    at strength 0.5 and with a 32-d representation, the SupCon ceiling), each measured for Dubois et al.'s
    conditions (:func:`measure_run`). Teach mode: 3,000 images × 5 epochs, batch 256, width 16; smoke: SimCLR,
    CISSL and its two sweep cells (16-d) and SupCon on 300 images for one epoch, width 4. Runs live under
    ``<data>/runs/nb06-<recipe>-<key>``.

    The table: method, dim, strength, ``linear label %``, ``mlp label %``, the conditions, then the floors;
    ``extras``: ``records`` and ``floors`` for :class:`gpsviz.widgets.ProbeExplorer`. ``targets`` is not used (the
    conditions concern the label)."""
    quick = smoke_mode() if smoke is None else smoke
    width = 4 if quick else 16
    budget = notebook_budget(quick, teach=dict(epochs=5, batch_size=256, data_options={"n": 3000}, eval_size=1000),
                             quick=dict(epochs=1, batch_size=64, data_options={"n": 300}, eval_size=200),
                             overrides=overrides)
    budget = merge_fields(dict(aug="strong", lr=1e-3, precision="fp32", eval_every=0,
                               backbone_options={"width": width}), budget)
    known = dict(NB06_METHODS)
    if quick:
        known = {n: (r, {"backbone_options": {"out_dim": 16}} if "small" in n else f) for n, (r, f) in known.items()
                 if n not in ("BYOL", "DISSL")}
    records, runs, configs = [], {}, {}
    for name, cfg in method_configs(known, methods, budget, seed):
        run = train_or_resume(cfg, f"nb06-{cfg.recipe}", root=root, progress=progress)
        runs[name], configs[name] = run.out_dir, cfg
        cond = measure_run(run.out_dir, n_invariance=200 if quick else 500, n_instances=50 if quick else 100)
        method = name.split(" (")[0] if name != CEILING[0] else name
        records.append({**_record({"name": method}, cond, method), "group": "notebook"})
    rows = [{"method": name, "dim": r["dim"], "strength": r["strength"], "linear label %": 100 * r["linear_label"],
             "mlp label %": 100 * r["mlp_label"], "invariance": r["invariance"],
             "decodability %": 100 * r["decodability"], "ETF distance": r["etf_distance"],
             "effective rank": r["effective_rank"]} for name, r in zip(runs, records)]
    first = next(iter(configs.values()))
    data = load_data(first)
    floor_records = []
    if floors:
        for name, res in probe_floors(*data, targets=["label"], probes=("linear", "mlp"), seed=seed,
                                      backbone_options=first.backbone_options).items():
            rows.append({"method": f"{name} (floor)", "linear label %": 100 * res["linear_label"],
                         "mlp label %": 100 * res["mlp_label"]})
            floor_records.append({"name": name, **res})
    return NotebookRuns(runs, configs, pd.DataFrame(rows).round(3), data,
                        extras={"records": records, "floors": floor_records})
