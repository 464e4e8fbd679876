"""Checkpoints: written atomically (temp file + rename), read with ``torch.load(weights_only=True)``.

A checkpoint is a dict with ``format`` = :data:`FORMAT`, ``model`` (state dict of the whole SSLModel),
``backbone`` (state dict of the backbone alone, for priors and evaluation), ``optimizer``, ``generator``
(the training RNG state), ``epoch``, ``history``, ``config`` and ``in_channels``.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from gpsviz.errors import CheckpointError
from gpsviz.utils import atomic_torch_save

FORMAT = "gpsviz-checkpoint-v1"


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, epoch: int, history: list[dict], config: dict,
                    in_channels: int, positives: dict | None = None) -> None:
    """Write a checkpoint atomically: a kill during the write leaves the previous checkpoint intact."""
    atomic_torch_save({
        "format": FORMAT,
        "model": model.state_dict(),
        "backbone": model.backbone.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "epoch": int(epoch),
        "history": [dict(r) for r in history],
        "config": dict(config),
        "in_channels": int(in_channels),
        "positives": positives,
    }, path)


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder or a checkpoint file → the checkpoint file (``CheckpointError`` when absent)."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: train a run first (python -m gpsviz train --out {p.parent})")
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a gpsviz checkpoint (run folder or file) with ``weights_only=True``; clear error when truncated
    or not written by gpsviz."""
    p = resolve_checkpoint_path(path)
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as e:
        raise CheckpointError(f"{p} is not a readable gpsviz checkpoint (truncated or foreign file: "
                              f"{type(e).__name__}). Delete it and train again, or pass another file.") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{p} was not written by gpsviz (expected format {FORMAT!r}); pass a run folder "
                              f"made by `python -m gpsviz train`.")
    return ck


def load_backbone(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The trained backbone of a run (eval mode) and the run's config dict."""
    from gpsviz.models import build_backbone

    ck = load_checkpoint(path)
    cfg = ck["config"]
    backbone = build_backbone(cfg["backbone"], in_channels=ck["in_channels"], **(cfg.get("backbone_options") or {}))
    backbone.load_state_dict(ck["backbone"])
    return backbone.to(device).eval(), cfg
