"""Optimisers and the learning-rate schedule (linear warm-up then cosine), as pure functions of the step."""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from gpsviz.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd", "lars")


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al.), the usual optimiser of large-batch SSL.

    Parameters with ``ndim <= 1`` (biases, BatchNorm) get neither weight decay nor the trust ratio.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 eta: float = 0.02) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1:
                    d = d.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(d)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    d = d.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(group["momentum"]).add_(d)
                p.add_(mu, alpha=-group["lr"])
        return None


def param_groups(model: nn.Module, scales: dict[str, float]) -> list[nn.Parameter] | list[dict[str, Any]]:
    """The trainable parameters of ``model``: one plain list without ``scales``; else one optimiser group per
    name prefix of ``scales`` (its parameters, ``lr_scale``) and one for the rest (``lr_scale`` 1), in that order.
    A prefix that matches no parameter is a :class:`ConfigError` (a typo would silently change nothing)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not scales:
        return [p for _, p in named]
    groups, taken = [], set()
    for prefix, scale in scales.items():
        ps = [p for n, p in named if n.startswith(prefix) and n not in taken]
        if not ps:
            raise ConfigError(f"learning-rate scale for {prefix!r}: no trainable parameter's name starts with it")
        taken.update(n for n, _ in named if n.startswith(prefix))
        groups.append({"params": ps, "lr_scale": float(scale)})
    groups.append({"params": [p for n, p in named if n not in taken], "lr_scale": 1.0})
    return groups


def build_optimizer(name: str, params: list[nn.Parameter] | list[dict[str, Any]], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``adamw`` | ``sgd`` (momentum 0.9, nesterov) | ``lars``; unknown name → ConfigError."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"optimizer {name!r} is unknown; choose one of {', '.join(OPTIMIZERS)}")


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, final_fraction: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine
    decay to ``final_fraction * base_lr`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    low = base_lr * final_fraction
    return low + 0.5 * (base_lr - low) * (1.0 + math.cos(math.pi * t))


def lr_with_restart(step: int, total_steps: int, warmup_steps: int, base_lr: float, restart_step: int | None = None,
                    factor: float = 2.0, final_fraction: float = 0.0) -> float:
    """:func:`lr_at`, multiplied by ``factor`` from ``restart_step`` on: the same cosine curve, raised (UOTA's
    reference doubles the learning rate at the end of its weighting warm-up and keeps the schedule; it does not
    start a new cosine). ``restart_step`` None (or ≥ total_steps) = no restart."""
    lr = lr_at(step, total_steps, warmup_steps, base_lr, final_fraction)
    if restart_step is None or step < restart_step or restart_step >= total_steps:
        return lr
    return factor * lr
