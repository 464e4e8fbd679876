"""The one training step every recipe shares.

    out = ssl_step(model, batch, objective, weighting)
    out["loss"].backward()

backbone (each size group of views) → projector head (may read the batch) → [EMA teacher of the global views,
when the objective asks] → objective → (per-view losses, batch-level terms) → view weighting → scalar loss.
The returned dict holds everything computed (loss, per_view, weights, h, z, teacher_z, loss terms and the
objective's extras), so callbacks and widgets read the very values the loss used.
"""
from __future__ import annotations

from typing import Any

import torch

from gpsviz.batch import Batch
from gpsviz.objectives.base import Objective, Weighting

__all__ = ["ssl_step"]


def ssl_step(model: Any, batch: Batch, objective: Objective, weighting: Weighting) -> dict[str, Any]:
    """One forward pass of ``batch`` (M views) through ``model``; returns the step dict (see module doc).

    ``out["loss"]``: float32 scalar with gradient; ``per_view`` float32 M; ``weights`` float32 M (detached, sum 1);
    ``h`` M×d backbone features; ``z`` M×p projector outputs; ``teacher_z`` G×p (global views) when the
    objective uses a teacher; ``terms``: the batch-level loss terms by name."""
    h = torch.cat([model.backbone(v) for v in batch.views]) if len(batch.views) > 1 \
        else model.backbone(batch.views[0])                                 # M×d
    z = model.projector(h, batch)                                           # M×p
    out: dict[str, Any] = {"h": h, "z": z}
    if objective.teacher:
        glob = batch.is_global.to(h.device).nonzero().flatten()             # G global views (first size group)
        if glob.numel() != batch.views[0].shape[0]:
            raise ValueError("the global views must be the batch's first size group (see gpsviz.augment.views)")
        out["teacher_z"] = model.teacher(batch.views[0], batch, glob)       # G×p, no gradient
    per_view, extras = objective(model, batch, out)                        # M float32
    terms: dict[str, torch.Tensor] = dict(extras.pop("loss_terms", {}) or {})
    with torch.no_grad():
        weights = weighting(per_view.detach(), batch, out).detach()         # M, sums to 1
    loss = (weights * per_view).sum()
    for t in terms.values():
        loss = loss + t
    out.update(extras)
    out.update(loss=loss, per_view=per_view, weights=weights, terms=terms)
    return out
