"""Run folders: the layer above the training loop that notebooks and the CLI use — train or continue a run,
load its data, evaluate its frozen backbone into ``results.json``.

    run = train_or_resume(cfg, "nb01-simclr")     # data/runs/nb01-simclr-<config key>, continued if it exists
    train_ds, test_ds = load_data(cfg)
    evaluate_run(run.out_dir)                     # kNN + linear probes of label, colour, position
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gpsviz.checkpoint import backbone_of, checkpoint_digest, load_checkpoint, resolve_checkpoint_path
from gpsviz.config import TrainConfig
from gpsviz.data import load_splits
from gpsviz.errors import DataError
from gpsviz.evaluate import PROBES, run_probes
from gpsviz.features import extract
from gpsviz.provenance import summary
from gpsviz.runfolder import merge_results, run_dir_of
from gpsviz.train import Run, train
from gpsviz.utils import data_root, resolve_device

__all__ = ["Run", "load_data", "train_or_resume", "run_dir_for", "evaluate_run"]


def load_data(cfg: TrainConfig):
    """(train, held-out) datasets of a config; the held-out split only feeds evaluation and the kNN monitor."""
    return load_splits(cfg.data, cfg.data_options)


def train_or_resume(cfg: TrainConfig, name: str, root: str | Path | None = None, **kw: Any) -> Run:
    """Train ``cfg`` in ``<data>/runs/<name>-<config key>``, continuing that folder's run when it exists.

    The folder is keyed by the whole config, so changing a parameter starts a new run instead of clashing with
    an old checkpoint; re-running a notebook cell with the same parameters continues (or just reloads) it."""
    out = run_dir_for(cfg, name, root)
    return train(cfg, out, resume=(out / "checkpoint.pt").exists(), **kw)


def run_dir_for(cfg: TrainConfig, name: str, root: str | Path | None = None) -> Path:
    """The folder :func:`train_or_resume` trains ``cfg`` in: ``<data>/runs/<name>-<config key>``."""
    return data_root(root) / "runs" / f"{name}-{cfg.key()}"


def evaluate_run(run_dir: str | Path, targets: Sequence[str] | None = None,
                 probes: Sequence[str] = ("knn", "linear"), device=None, write: bool = True,
                 data: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Evaluate a run folder's backbone on its dataset's train/test splits; writes ``results.json`` beside the
    checkpoint. ``targets`` defaults to the class label plus, for shapes, the colour and position factors.

    The results carry the ``checkpoint`` digest they were measured on and the run's ``provenance`` summary
    (precision, device, versions: :func:`gpsviz.provenance.summary`); results of an earlier model in the folder
    are dropped when they are merged (:func:`gpsviz.runfolder.merge_results`)."""
    run_dir = run_dir_of(run_dir)             # a checkpoint file → its run folder
    bad = [p for p in probes if p not in PROBES]
    if bad:
        raise DataError(f"unknown probe(s) {', '.join(map(repr, bad))}; choose from {', '.join(PROBES)}")
    digest = checkpoint_digest(run_dir)
    ck = load_checkpoint(run_dir)
    backbone = backbone_of(ck, resolve_checkpoint_path(run_dir), device=resolve_device(device) if device else "cpu")
    cfg_dict = ck["config"]
    cfg = TrainConfig.from_dict(cfg_dict)
    train_ds, test_ds = data if data is not None else load_data(cfg)
    for ds in (train_ds, test_ds):
        if ds.channels != ck["in_channels"]:
            raise DataError(f"{run_dir} was trained on {ck['in_channels']}-channel images ({cfg.data}); the "
                            f"{ds.split} data given has {ds.channels} channel(s) ({ds.name}). Evaluate it on "
                            f"data like its own (leave data out to use its config's dataset).")
    if targets is None:
        targets = [t for t in ("label", "colour", "position") if t in train_ds.target_names()]
        if not targets:
            raise DataError(f"{train_ds.name} has no labels or categorical factors to probe; evaluate the run on "
                            f"labelled data (pass data=(train, test) with labels)")
    if any(t in ("label", "class", "shape") for t in targets):
        for ds in (train_ds, test_ds):
            ds.targets("label")              # DataError when the images are unlabelled
    unknown = [t for t in targets if not train_ds.has_target(t)]
    if unknown:
        raise DataError(f"{cfg.data} has no target {', '.join(map(repr, unknown))}; choose from "
                        f"{', '.join(train_ds.target_names())} or a conjunction of two, e.g. 'label×colour'")
    tr, te = extract(backbone, train_ds), extract(backbone, test_ds)
    results: dict[str, Any] = {"run": str(run_dir), "recipe": cfg.recipe, "aug": cfg.aug, "seed": cfg.seed,
                               "data": cfg.data, "checkpoint": digest, "epoch": ck["epoch"],
                               "provenance": summary(ck.get("provenance"))}
    results.update(run_probes(tr, te, targets, probes))
    if write:
        merge_results(run_dir, results)      # keeps other targets/probes of earlier evaluations
    return results
