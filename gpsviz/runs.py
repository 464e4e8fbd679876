"""Run folders: the layer above the training loop that notebooks and the CLI use.

    run = train_or_resume(cfg, "nb01-simclr")     # data/runs/nb01-simclr-<config key>, continued if it exists
    train_ds, test_ds = load_data(cfg)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gpsviz.config import TrainConfig
from gpsviz.train import Run, train

__all__ = ["Run", "load_data", "train_or_resume"]


def load_data(cfg: TrainConfig):
    """(train, held-out) datasets of a config; the held-out split only feeds evaluation and the kNN monitor."""
    from gpsviz.data import load_splits

    return load_splits(cfg.data, cfg.data_options)


def train_or_resume(cfg: TrainConfig, name: str, root: str | Path | None = None, **kw: Any) -> Run:
    """Train ``cfg`` in ``<data>/runs/<name>-<config key>``, continuing that folder's run when it exists.

    The folder is keyed by the whole config, so changing a parameter starts a new run instead of clashing with
    an old checkpoint; re-running a notebook cell with the same parameters continues (or just reloads) it."""
    from gpsviz.utils import data_root

    out = data_root(root) / "runs" / f"{name}-{cfg.key()}"
    return train(cfg, out, resume=(out / "checkpoint.pt").exists(), **kw)
