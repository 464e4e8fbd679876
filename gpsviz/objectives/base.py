"""The ``objective`` and ``weighting`` ingredients' interfaces and registries.

An objective turns the step's outputs into **per-view losses** (M, float32) plus optional batch-level terms; a
view weighting turns per-view losses into weights (M, summing to 1, no gradient). The shared step
(:mod:`gpsviz.step`) combines them: ``loss = Σ_i w_i·loss_i + Σ terms``.

    class MyObjective(Objective):
        def __call__(self, model, batch, out):          # out: {"h": M×d, "z": M×p, ...}
            return per_view, {"loss_terms": {"entropy": -0.1 * H}}
    register_objective("mine", MyObjective)
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from gpsviz.registry import Opt, Registry

__all__ = ["TEMPERATURE", "float32_region", "other_views_of", "Objective", "Weighting", "OBJECTIVES", "WEIGHTINGS", "register_objective", "register_weighting",
           "build_objective", "build_weighting"]


def float32_region(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that disables autocast on ``device``, so a loss computes in float32 inside a bf16/fp16 step
    (similarities divided by a small τ overflow float16; bf16 keeps 3 significant digits)."""
    if device.type in ("cuda", "cpu", "mps", "xpu"):
        try:
            return torch.autocast(device_type=device.type, enabled=False)
        except RuntimeError:  # autocast not supported for this device type in this torch build
            pass
    return contextlib.nullcontext()


def other_views_of(ids_rows: torch.Tensor, ids_cols: torch.Tensor, row_index: torch.Tensor,
                   col_index: torch.Tensor) -> torch.Tensor:
    """Bool R×C: column view c has row view r's id (instance or group) and is not view r itself.

    ``row_index`` (R) and ``col_index`` (C) say which view of the batch (or of the gathered batch) each row and
    column is, e.g. rows = all M views (``arange(M)``), columns = the global views (their indices)."""
    same = ids_rows[:, None] == ids_cols[None, :]
    return same & (row_index[:, None] != col_index[None, :])


class Objective:
    """Base of the ``objective`` ingredient.

    Class attribute ``teacher``: the objective reads an EMA teacher's embeddings of the global views
    (``out["teacher_z"]``, G×p in plan order of the global views); the loop then builds and updates
    ``model.teacher``. :meth:`build` may add heads to the model (e.g. BYOL's predictor); it receives the run's
    config ``cfg`` (temperature, head sizes, …).

    Class attribute ``options``: an :class:`~gpsviz.registry.Opt` per constructor option (type and range,
    checked when a config is made). ``positives_from``: the plan fields through which the objective finds a
    view's positives — ``"group_ids"`` (every view with the same group id: multi-positive losses) and/or
    ``"instance_ids"`` (the other views of the same instance: BYOL-style prediction). A configuration whose
    positive source marks its positives in none of these fields is refused (it would train as plain SSL)."""

    teacher: bool = False
    options: dict[str, Opt] = {}
    positives_from: tuple[str, ...] = ("group_ids", "instance_ids")

    def build(self, model: Any, cfg: Any) -> None:
        """Add the objective's own modules to ``model.heads`` (default: none)."""
        return None

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multipliers by parameter-name prefix (e.g. ``{"heads.predictor.": 10.0}``): the loop puts
        those parameters in their own optimiser group at ``scale × lr`` through the whole schedule (default:
        none, one group)."""
        return {}

    def __call__(self, model: Any, batch: Any, out: dict[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, dict[str, Any]]:
        """→ (per-view losses float32 M, extras). ``extras["loss_terms"]`` (name → scalar) are added to the
        loss; other extras are returned by the step for callbacks."""
        raise NotImplementedError


class Weighting:
    """Base of the ``weighting`` ingredient: ``__call__(per_view, batch, out)`` → weights float32 M (sum 1,
    detached). :meth:`build` receives the run's config. ``options``: an :class:`~gpsviz.registry.Opt` per
    constructor option."""

    options: dict[str, Opt] = {}

    def build(self, cfg: Any) -> None:
        return None

    def lr_restart(self) -> tuple[float, float] | None:
        """``(fraction of training, factor)``: the loop multiplies the learning rate by ``factor`` from that point
        of the schedule on (UOTA's reference raises it when its weighting starts). Default: None, no restart."""
        return None

    def __call__(self, per_view: torch.Tensor, batch: Any, out: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


#: The spec of an objective's ``temperature`` option: the config's own range (``None`` = the config's value).
TEMPERATURE = Opt(float, 1e-3, 10.0, optional=True, note="None = the run's temperature; typical 0.1–0.5; tiny "
                  "values overflow the loss, huge ones make it constant")

OBJECTIVES = Registry("objective", base=Objective)
WEIGHTINGS = Registry("weighting", base=Weighting)
register_objective = OBJECTIVES.register
register_weighting = WEIGHTINGS.register


def build_objective(name: str, **options: Any) -> Objective:
    return OBJECTIVES.build(name, **options)


def build_weighting(name: str, **options: Any) -> Weighting:
    return WEIGHTINGS.build(name, **options)


@register_weighting("uniform")
class UniformWeighting(Weighting):
    """Every view counts the same: w_i = 1/M (the plain mean of the per-view losses)."""

    def __call__(self, per_view: torch.Tensor, batch: Any, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.full_like(per_view, 1.0 / max(1, per_view.shape[0]))
