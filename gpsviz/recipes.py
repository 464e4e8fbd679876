"""Named methods. A recipe is one choice per ingredient (DESIGN.md): a positive source, an objective, heads.

    >>> from gpsviz.recipes import TrainConfig, RECIPES
    >>> cfg = TrainConfig(recipe="gps-simclr", aug="weak", epochs=10)
    >>> RECIPES[cfg.recipe].positives      # 'neighbours'

The training loop (``gpsviz.train``) knows nothing about methods: it asks the recipe for a model, a positive
source and a step function, and the step returns a dict of everything it computed.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from gpsviz.errors import ConfigError
from gpsviz.config import TrainConfig  # noqa: F401  (re-exported: recipes and configs are used together)


# --------------------------------------------------------------------------------------------- model
class SSLModel(nn.Module):
    """Backbone + projector (+ predictor and EMA target for BYOL-style recipes).

    ``backbone``: B×C×H×W → B×d; ``projector``: B×d → B×proj_dim; ``predictor``: proj_dim → proj_dim.
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module | None = None,
                 ema_target: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor
        self.target_backbone = copy.deepcopy(backbone) if ema_target else None
        self.target_projector = copy.deepcopy(projector) if ema_target else None
        for m in (self.target_backbone, self.target_projector):
            if m is not None:
                m.requires_grad_(False)


# --------------------------------------------------------------------------------------------- steps
def ntxent_step(model: SSLModel, views: torch.Tensor, group_ids: torch.Tensor, cfg: TrainConfig,
                progress: float) -> dict[str, torch.Tensor]:
    """Contrastive step. views: M×C×H×W, group_ids: M → dict(loss, per_view (M), z (M×proj_dim), h (M×d))."""
    from gpsviz.distributed import gather_views
    from gpsviz.objectives import multi_positive_ntxent

    h = model.backbone(views)                       # M×d
    z = model.projector(h)                          # M×p
    z_all, g_all = gather_views(z, group_ids)
    per_view = multi_positive_ntxent(z_all.float(), g_all, temperature=cfg.temperature)   # M
    return {"loss": per_view.mean(), "per_view": per_view, "z": z, "h": h}


def byol_step(model: SSLModel, views: torch.Tensor, group_ids: torch.Tensor, cfg: TrainConfig,
              progress: float) -> dict[str, torch.Tensor]:
    """BYOL step. Rows [0, B) are anchor views, [B, 2B) their partners; each predicts the other's target.

    The EMA update itself happens in :func:`byol_after_step` (after the optimiser step)."""
    from gpsviz.objectives import byol_loss

    m = views.shape[0]
    half = m // 2
    h = model.backbone(views)                       # 2B×d
    z = model.projector(h)                          # 2B×p
    p = model.predictor(z)                          # 2B×p
    with torch.no_grad():
        zt = model.target_projector(model.target_backbone(views))   # 2B×p
    partner = torch.cat([torch.arange(half, m), torch.arange(0, half)]).to(views.device)
    per_view = byol_loss(p.float(), zt[partner].float())            # 2B
    return {"loss": per_view.mean(), "per_view": per_view, "z": z, "h": h}


def byol_after_step(model: SSLModel, cfg: TrainConfig, progress: float) -> None:
    """EMA update of the target with the cosine momentum schedule (``progress`` in [0, 1])."""
    from gpsviz.objectives import ema_update
    import math

    momentum = 1 - (1 - cfg.momentum_base) * (math.cos(math.pi * progress) + 1) / 2
    ema_update(model.target_backbone, model.backbone, momentum)
    ema_update(model.target_projector, model.projector, momentum)


OBJECTIVES: dict[str, tuple[Callable, Callable | None]] = {
    "ntxent": (ntxent_step, None),
    "byol": (byol_step, byol_after_step),
}


# --------------------------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class Recipe:
    """One named method: which positive source, which objective, and default hyper-parameters."""

    name: str
    description: str
    positives: str
    objective: str
    positives_options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def build_model(self, cfg: TrainConfig, in_channels: int) -> SSLModel:
        from gpsviz.models import MLPHead, build_backbone

        backbone = build_backbone(cfg.backbone, in_channels=in_channels)
        projector = MLPHead(backbone.out_dim, cfg.proj_hidden, cfg.proj_dim)
        if self.objective == "byol":
            predictor = MLPHead(cfg.proj_dim, cfg.pred_hidden, cfg.proj_dim)
            return SSLModel(backbone, projector, predictor, ema_target=True)
        return SSLModel(backbone, projector)

    def build_positives(self, cfg: TrainConfig):
        from gpsviz.positives import build_positives

        return build_positives(self.positives, **cfg.positives_options)

    @property
    def step(self) -> Callable:
        return OBJECTIVES[self.objective][0]

    @property
    def after_step(self) -> Callable | None:
        return OBJECTIVES[self.objective][1]


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry the CLI and notebooks share."""
    if recipe.objective not in OBJECTIVES:
        raise ConfigError(f"recipe {recipe.name!r}: objective {recipe.objective!r} is unknown; "
                          f"choose one of {', '.join(OBJECTIVES)}")
    RECIPES[recipe.name] = recipe
    return recipe


register_recipe(Recipe("simclr", "SimCLR: two augmentations of one image are positives (NT-Xent).",
                       positives="self", objective="ntxent"))
register_recipe(Recipe("byol", "BYOL: online network predicts an EMA target of the other view.",
                       positives="self", objective="byol"))
register_recipe(Recipe("supcon", "SupCon ceiling: every image of the same class is a positive.",
                       positives="labels", objective="ntxent"))
register_recipe(Recipe("gps-simclr", "GPS-SimCLR: the partner is a prior-space nearest neighbour.",
                       positives="neighbours", objective="ntxent"))
register_recipe(Recipe("gps-byol", "GPS-BYOL: BYOL with prior-space nearest-neighbour partners.",
                       positives="neighbours", objective="byol"))
register_recipe(Recipe("nnclr", "NNCLR-like: GPS whose prior is the model being trained, refreshed each epoch.",
                       positives="neighbours", objective="ntxent",
                       positives_options={"prior": "model", "k": 1, "refresh_every": 1}))


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"recipe {name!r} is unknown; choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
