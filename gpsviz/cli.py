"""Command line: ``python -m gpsviz train | evaluate | reproduce | bench | demo | list | catalog``.

User errors (unknown names, impossible values, missing data) print one clear line and exit with status 2.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from gpsviz.augment import PRESETS
from gpsviz.catalog import DEFAULT_PATH, catalog_markdown, write_catalog
from gpsviz.config import TrainConfig
from gpsviz.data import available_datasets
from gpsviz.distributed import is_main, launch, launch_rank, report_user_error
from gpsviz.errors import GpsvizError
from gpsviz.experiments.baselines import demo
from gpsviz.priors import available_priors
from gpsviz.recipes import RECIPES, _registries
from gpsviz.reproduce import experiment_names, reproduce
from gpsviz.runfolder import run_dir_of
from gpsviz.runs import evaluate_run
from gpsviz.train import train


def _kv(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise GpsvizError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} n=2000")
        k, v = item.split("=", 1)
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def _train(a: argparse.Namespace) -> int:
    pos = _kv(a.pos, "--pos")
    if a.prior is not None:
        pos["prior"] = a.prior
    if a.k is not None:
        pos["k"] = a.k
    fields = dict(recipe=a.recipe, data=a.data, data_options=_kv(a.data_opt, "--data-opt"), aug=a.aug,
                  strength=a.strength, backbone=a.backbone, epochs=a.epochs, batch_size=a.batch_size,
                  optimizer=a.optimizer, lr=a.lr, weight_decay=a.weight_decay, temperature=a.temperature,
                  positives_options=pos, seed=a.seed, device=a.device, precision=a.precision,
                  positives=a.positives, views=a.views, head=a.head, objective=a.objective, weighting=a.weighting,
                  views_options=_kv(a.views_opt, "--views-opt"), head_options=_kv(a.head_opt, "--head-opt"),
                  objective_options=_kv(a.objective_opt, "--objective-opt"),
                  weighting_options=_kv(a.weighting_opt, "--weighting-opt"))
    cfg = TrainConfig(**{k: v for k, v in fields.items() if v is not None})
    if a.nproc_per_node is not None:
        if isinstance(a.nproc_per_node, bool) or not 1 <= a.nproc_per_node <= 1024:
            raise GpsvizError(f"--nproc-per-node {a.nproc_per_node} is impossible: give the number of processes "
                              f"to start on this machine (1–1024)")
        if "WORLD_SIZE" in __import__("os").environ or launch_rank() != 0:
            raise GpsvizError("--nproc-per-node starts the processes itself; do not also run it under torchrun")
        if a.nproc_per_node > 1:             # the options are valid (checked above, once); start the processes
            argv = list(a.argv)
            i = next(j for j, x in enumerate(argv) if x.startswith("--nproc-per-node"))
            del argv[i:i + (1 if "=" in argv[i] else 2)]
            return launch(argv, a.nproc_per_node)
    out = Path(a.out or f"runs/{cfg.recipe}-{cfg.data}-{cfg.aug}-s{cfg.seed}").expanduser()
    run = train(cfg, out, resume=a.resume)              # the library refuses to replace a finished run

    if not is_main():                      # under torchrun, rank 0 alone reports and evaluates
        return 0
    last = run.history[-1] if run.history else {}
    print(f"trained {cfg.recipe} for {len(run.history)} epochs → {out} (final loss {last.get('loss', float('nan')):.4f},"
          f" online kNN {last.get('knn_acc', float('nan')):.3f})")
    if not a.no_eval:
        _print_results(_evaluate_dir(out, a.targets, a.probes, a.device))
    return 0


def _evaluate_dir(run: Path, targets: str | None, probes: str, device: str | None) -> dict:
    return evaluate_run(run, targets=targets.split(",") if targets else None, probes=probes.split(","),
                        device=device)


def _print_results(res: dict) -> None:
    print(json.dumps(res, indent=2, sort_keys=True))


def _evaluate(a: argparse.Namespace) -> int:
    for run in a.runs:
        res = _evaluate_dir(Path(run), a.targets, a.probes, a.device)
        _print_results(res)
        print(f"wrote {run_dir_of(run) / 'results.json'}")
    return 0


def _reproduce(a: argparse.Namespace) -> int:
    reproduce(a.experiment, scale=a.scale, seeds=a.seeds, out=a.out, device=a.device, datasets=a.datasets,
              epochs=a.epochs)
    return 0


def _bench(a: argparse.Namespace) -> int:
    module = importlib.import_module(f"gpsviz.bench.{a.what}")
    module.main()
    return 0


def _demo(a: argparse.Namespace) -> int:
    demo(out=a.out)
    return 0


def _list(a: argparse.Namespace) -> int:
    print("recipes:  " + ", ".join(f"{r.name}" for r in RECIPES.values()))
    for slot, reg in _registries().items():
        print(f"{slot + ':':<11}" + ", ".join(reg.names()))
    print("datasets: " + ", ".join(available_datasets()))
    print("aug:      " + ", ".join(PRESETS))
    print("priors:   " + ", ".join(available_priors()))
    return 0


def _catalog(a: argparse.Namespace) -> int:
    if not a.write:
        print(catalog_markdown())
        return 0
    changed = write_catalog(a.file)
    print(f"{'updated' if changed else 'unchanged (already up to date)'}: the generated section of {a.file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m gpsviz", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one recipe; writes checkpoint, history and results to --out")
    t.add_argument("--recipe", default="simclr")
    t.add_argument("--data", default="shapes")
    t.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="dataset option, e.g. n=2000")
    t.add_argument("--aug", default="strong", help="augmentation preset: none, weak, strong, simclr, gps-strong")
    t.add_argument("--strength", type=float)
    t.add_argument("--backbone")
    t.add_argument("--epochs", type=int, help="default: TrainConfig's default budget")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--optimizer")
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--temperature", type=float)
    t.add_argument("--prior", help="GPS prior (gps-* recipes)")
    t.add_argument("--k", type=int, help="GPS neighbours per anchor")
    t.add_argument("--pos", action="append", metavar="KEY=VALUE", help="positive-source option")
    for slot, example in (("positives", "neighbours"), ("views", "multicrop"), ("head", "mlp"),
                          ("objective", "byol"), ("weighting", "uniform")):
        t.add_argument(f"--{slot}", help=f"override the recipe's {slot} ingredient, e.g. {example} "
                                         f"(python -m gpsviz list shows the choices)")
        if slot != "positives":
            t.add_argument(f"--{slot}-opt", action="append", metavar="KEY=VALUE", help=f"option of the {slot}")
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision (auto: bf16 on CUDA and on CPUs with native bf16, else fp32)")
    t.add_argument("--seed", type=int)
    t.add_argument("--device")
    t.add_argument("--out", help="run folder (default runs/RECIPE-DATA-AUG-sSEED)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--nproc-per-node", type=int, metavar="N",
                   help="train on N local processes (GPUs): the options are checked once, then the processes start "
                        "as under torchrun; an error is reported as one line")
    t.add_argument("--no-eval", action="store_true", help="skip the probes after training")
    t.add_argument("--targets", help="probe targets, comma-separated (default: label, and colour,position on shapes)")
    t.add_argument("--probes", default="knn,linear")
    t.set_defaults(fn=_train)

    e = sub.add_parser("evaluate", help="probe trained runs; writes results.json beside each checkpoint")
    e.add_argument("runs", nargs="+")
    e.add_argument("--targets")
    e.add_argument("--probes", default="knn,linear")
    e.add_argument("--device")
    e.set_defaults(fn=_evaluate)

    r = sub.add_parser("reproduce", help="re-run a paper comparison and save its table and figures")

    r.add_argument("experiment", choices=list(experiment_names()))
    r.add_argument("--scale", default="small", choices=["smoke", "small", "full"])
    r.add_argument("--seeds", type=int, default=None)
    r.add_argument("--epochs", type=int, default=None)
    r.add_argument("--datasets", default=None, help="comma-separated subset, e.g. shapes")
    r.add_argument("--out", default=None)
    r.add_argument("--device", default=None)
    r.set_defaults(fn=_reproduce)

    b = sub.add_parser("bench", help="speed benchmarks; the last line is the measured ratio")
    b.add_argument("what", choices=["augment", "train", "knn"])
    b.set_defaults(fn=_bench)

    d = sub.add_parser("demo", help="the README's main job: train on shapes, write tables and figures to data/")
    d.add_argument("--out", default=None)
    d.set_defaults(fn=_demo)

    ls = sub.add_parser("list", help="list recipes, datasets, augmentation presets and priors")
    ls.set_defaults(fn=_list)

    c = sub.add_parser("catalog", help="print Markdown tables of every built-in choice (recipes, ingredients and "
                                       "their options, priors, datasets, presets, experiments)")
    c.add_argument("--write", action="store_true",
                   help=f"replace the generated section of --file instead of printing (default {DEFAULT_PATH})")
    c.add_argument("--file", default=DEFAULT_PATH, help="the page --write updates")
    c.set_defaults(fn=_catalog)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. Under torchrun only rank 0 prints a usage or user error (every rank meets the same one),
    so the line appears once; every rank exits with the same status."""


    quiet = contextlib.redirect_stderr(io.StringIO()) if launch_rank() != 0 else contextlib.nullcontext()
    with quiet:                                        # argparse's usage errors: rank 0 alone prints them
        args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.fn(args) or 0)
    except GpsvizError as e:
        report_user_error(f"error: {e}", sys.stderr)
        return 2
    except KeyboardInterrupt:
        report_user_error("interrupted; the last finished epoch's checkpoint is kept (resume with --resume)",
                          sys.stderr)
        return 130
