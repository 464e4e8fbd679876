"""Callbacks: code outside the loop that sees every step's batch and outputs, and every epoch's history row.

    rec = StepRecorder(last=50, keys=("loss", "per_view", "weights"))
    train(cfg, "runs/x", callbacks=[rec])
    rec.steps[-1]["per_view"]        # the per-view losses the last step's loss was made of (CPU, detached)

A widget or diagnostic records exactly the values the loss used instead of recomputing them.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import torch

__all__ = ["Callback", "StepRecorder", "LambdaCallback"]


class Callback:
    """Override what you need; the loop calls ``on_step(batch, outputs)`` after each optimiser step and
    ``on_epoch(row)`` after each epoch's checkpoint is written."""

    def on_step(self, batch: Any, outputs: dict[str, Any]) -> None:
        return None

    def on_epoch(self, row: dict[str, float]) -> None:
        return None


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch=print)``."""

    def __init__(self, on_step=None, on_epoch=None) -> None:
        self._step, self._epoch = on_step, on_epoch

    def on_step(self, batch: Any, outputs: dict[str, Any]) -> None:
        if self._step is not None:
            self._step(batch, outputs)

    def on_epoch(self, row: dict[str, float]) -> None:
        if self._epoch is not None:
            self._epoch(row)


def _to_cpu(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.detach().to("cpu", copy=True)
    if isinstance(v, dict):
        return {k: _to_cpu(x) for k, x in v.items()}
    return v


class StepRecorder(Callback):
    """Keep the last ``last`` steps' outputs (detached, on CPU), plus the batch's plan and parameters.

    Args:
        last: how many steps to keep.
        keys: which output keys to keep (default: loss, per_view, weights, terms); ``None`` keeps all.
        batch_fields: record ``group_ids``, ``instance_ids``, ``is_global``, ``rows``, ``params`` of each step.
    """

    def __init__(self, last: int = 20, keys: Iterable[str] | None = ("loss", "per_view", "weights", "terms"),
                 batch_fields: bool = True) -> None:
        self.steps: deque[dict[str, Any]] = deque(maxlen=int(last))
        self.epochs: list[dict[str, float]] = []
        self.keys = None if keys is None else tuple(keys)
        self.batch_fields = batch_fields

    def on_step(self, batch: Any, outputs: dict[str, Any]) -> None:
        rec = {k: _to_cpu(v) for k, v in outputs.items() if self.keys is None or k in self.keys}
        rec["step"] = int(batch.step)
        if self.batch_fields:
            for f in ("rows", "group_ids", "instance_ids", "is_global"):
                rec[f] = _to_cpu(getattr(batch, f))
            rec["params"] = _to_cpu(batch.params.values)
        self.steps.append(rec)

    def on_epoch(self, row: dict[str, float]) -> None:
        self.epochs.append(dict(row))
