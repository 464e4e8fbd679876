"""Checkpoints: written atomically (temp file + rename), read with ``torch.load(weights_only=True)``.

A checkpoint is a dict with ``format`` = :data:`FORMAT`, ``model`` (state dict of the whole SSLModel),
``backbone`` (state dict of the backbone alone, for priors and evaluation), ``optimizer``, ``generator``
(the training RNG state), ``epoch``, ``history``, ``config`` and ``in_channels``; newer ones also hold
``data_digest`` (:func:`dataset_digest` of the training data: a resume on other data is refused),
``provenance`` (:mod:`gpsviz.provenance`) and ``image_size`` (the training images' side in pixels).
A checkpoint whose weights or buffers hold NaN/inf is refused on load: such a model gives arbitrary features,
neighbours and chance accuracies.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from gpsviz.errors import CheckpointError, GpsvizError
from gpsviz.models import build_backbone
from gpsviz.utils import atomic_torch_save, file_digest, tensor_digest

FORMAT = "gpsviz-checkpoint-v1"


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, epoch: int, history: list[dict], config: dict,
                    in_channels: int, positives: dict | None = None, data_digest: str | None = None,
                    provenance: dict | None = None, image_size: int | None = None) -> None:
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
        "data_digest": data_digest,
        "provenance": provenance,
        "image_size": image_size,
    }, path)


def dataset_digest(ds: Any) -> str:
    """The digest of a dataset's training images and labels (what a run was trained on)."""
    return tensor_digest(ds.images, ds.labels)[:16]


def checkpoint_digest(path: str | Path) -> str:
    """A short digest of a checkpoint file's bytes: results measured on it carry it, so results of an earlier
    model in the same folder are recognised as stale."""
    return file_digest(resolve_checkpoint_path(path))


def nonfinite_entries(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in a state dict that hold NaN or inf, with how many ("bn.running_var
    (352)")."""
    bad = []
    for name, t in state.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad.append(f"{name} ({n})")
    return bad


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A run folder or a checkpoint file → the checkpoint file (``CheckpointError`` when absent)."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoint.pt"
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}: train a run first (python -m gpsviz train --out {p.parent})")
    if not p.is_file():
        raise CheckpointError(f"{p} is not a file (a folder or device stands where the checkpoint should be); "
                              f"remove it and train again, or pass another run folder")
    return p


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a gpsviz checkpoint (run folder or file) with ``weights_only=True``; clear error when truncated
    or not written by gpsviz."""
    p = resolve_checkpoint_path(path)
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError, IndexError,
            KeyError, TypeError, AttributeError, MemoryError, OverflowError) as e:   # any damage to the bytes
        raise CheckpointError(f"{p} is not a readable gpsviz checkpoint (truncated or foreign file: "
                              f"{type(e).__name__}). Delete it and train again, or pass another file.") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{p} was not written by gpsviz (expected format {FORMAT!r}); pass a run folder "
                              f"made by `python -m gpsviz train`.")
    _check_fields(ck, p)
    return ck


_FIELDS: dict[str, tuple[type, ...]] = {"model": (dict,), "backbone": (dict,), "optimizer": (dict,),
                                        "generator": (torch.Tensor,), "epoch": (int,), "history": (list,),
                                        "config": (dict,), "in_channels": (int,)}


def _check_fields(ck: dict[str, Any], p: Path) -> None:
    """Every field a gpsviz checkpoint holds, with its type (a hand-edited file fails here, not deep in torch)."""
    for key, types in _FIELDS.items():
        if key not in ck:
            raise CheckpointError(f"{p} has no {key!r} entry (hand-edited or damaged checkpoint); use the original "
                                  f"file or train again")
        if not isinstance(ck[key], types) or isinstance(ck[key], bool):
            raise CheckpointError(f"{p}: entry {key!r} is a {type(ck[key]).__name__}, expected "
                                  f"{'/'.join(t.__name__ for t in types)} (hand-edited or damaged checkpoint)")
    if ck["epoch"] < 0 or ck["in_channels"] not in (1, 3) or not all(isinstance(r, dict) for r in ck["history"]):
        raise CheckpointError(f"{p}: epoch={ck['epoch']}, in_channels={ck['in_channels']} or the history rows are "
                              f"impossible (hand-edited or damaged checkpoint)")
    for key in ("model", "backbone"):
        bad = nonfinite_entries(ck[key])
        if bad:
            raise CheckpointError(f"{p}: the {key} weights hold NaN/inf in {len(bad)} tensor(s) ({', '.join(bad[:3])}"
                                  f"{' …' if len(bad) > 3 else ''}): the run diverged and its features would be "
                                  f"meaningless. Train again with a lower --lr or --weight-decay.")


def load_state(target: Any, state: Any, path: str | Path, what: str) -> None:
    """``target.load_state_dict(state)`` (or ``set_state`` for a generator) with a CheckpointError naming the
    checkpoint when the saved tensors do not fit (missing keys, wrong shapes: a hand-edited or foreign file)."""
    try:
        if isinstance(target, torch.Generator):
            target.set_state(state)
        else:
            target.load_state_dict(state)
    except GpsvizError as e:                      # a module that names why it refuses (e.g. an old CASSLE head)
        raise CheckpointError(f"{path}: {e}") from None
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: the saved {what} does not fit this model ({first[:300]}); the checkpoint "
                              f"was edited or belongs to other settings. Use the original file or train again.") from None


def restore(ck: dict[str, Any], path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            generator: torch.Generator) -> None:
    """Load a checkpoint's model, optimizer and generator states (clear CheckpointError when they do not fit)."""
    load_state(model, ck["model"], path, "model")
    load_state(optimizer, ck["optimizer"], path, "optimizer state")
    load_state(generator, ck["generator"], path, "random generator state")


def load_backbone(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The trained backbone of a run (eval mode) and the run's config dict."""
    ck = load_checkpoint(path)
    return backbone_of(ck, resolve_checkpoint_path(path), device), ck["config"]


def backbone_of(ck: dict[str, Any], path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained backbone (eval mode) of a checkpoint already loaded from ``path`` (:func:`load_checkpoint`);
    CheckpointError naming ``path`` when its config cannot build it or its weights do not fit."""
    cfg = ck["config"]
    if not isinstance(cfg.get("backbone"), str):
        raise CheckpointError(f"{path}: its config names no backbone (hand-edited or damaged checkpoint)")
    options = cfg.get("backbone_options") or {}
    if not isinstance(options, dict):
        raise CheckpointError(f"{path}: its config's backbone_options is not a dict (hand-edited or damaged)")
    try:
        backbone = build_backbone(cfg["backbone"], in_channels=ck["in_channels"], **options)
    except GpsvizError as e:
        raise CheckpointError(f"{path}: its config's backbone cannot be built ({str(e).splitlines()[0][:200]}); "
                              f"the checkpoint was edited or damaged. Use the original file or train again.") from None
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{path}: its config's backbone options {options} are invalid "
                              f"({type(e).__name__}: {str(e)[:200]}); the checkpoint was edited or damaged. Use "
                              f"the original file or train again.") from None
    load_state(backbone, ck["backbone"], path, "backbone")
    return backbone.to(device).eval()
