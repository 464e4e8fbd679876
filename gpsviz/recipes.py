"""Named methods. A recipe is one choice per ingredient slot (DESIGN.md) plus default hyper-parameters:

=============  ==========================================  ==========================================
slot           registry                                    built-in choices
=============  ==========================================  ==========================================
positives      ``gpsviz.positives.build_positives``        self, labels, neighbours, semantic
views          ``gpsviz.augment.views.VIEWS``              standard, multicrop
head           ``gpsviz.models.heads.HEADS``               mlp, conditioned, lowrank
objective      ``gpsviz.objectives.OBJECTIVES``            ntxent, byol, cissl, dissl, swav
weighting      ``gpsviz.objectives.WEIGHTINGS``            uniform, uota
=============  ==========================================  ==========================================

    >>> from gpsviz.recipes import Recipe, register_recipe
    >>> register_recipe(Recipe("gps-byol-mc", "GPS + BYOL + multi-crop", positives="neighbours",
    ...                        objective="byol", views="multicrop"))

A :class:`~gpsviz.config.TrainConfig` may override any slot (``objective="byol"``) and any slot's options;
the training loop asks :func:`build_ingredients` for the parts and never knows which method it runs. Options are
checked against each ingredient's declared specs (:class:`gpsviz.registry.Opt`), and a combination whose
ingredients cannot honour each other is refused with the reason (:func:`check_combination`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gpsviz.positives as P  # noqa: F401  (importing registers the built-in sources)
from gpsviz.augment.views import VIEWS, build_views
from gpsviz.errors import ConfigError
from gpsviz.models import build_backbone
from gpsviz.models.heads import HEADS, build_head
from gpsviz.models.ssl import SSLModel
from gpsviz.objectives import OBJECTIVES, WEIGHTINGS, build_objective, build_weighting
from gpsviz.positives import build_positives
from gpsviz.positives.base import _REGISTRY
from gpsviz.registry import option_defaults

__all__ = ["Recipe", "RECIPES", "SLOTS", "register_recipe", "get_recipe", "build_ingredients", "Ingredients",
           "SSLModel", "check_combination"]

#: The ingredient slots of a recipe, in the order data flows through a step.
SLOTS = ("positives", "views", "head", "objective", "weighting")


def _registries() -> dict[str, Any]:
    return {"positives": _REGISTRY, "views": VIEWS, "head": HEADS, "objective": OBJECTIVES,
            "weighting": WEIGHTINGS}


def check_combination(c: Any) -> None:
    """Refuse slot choices that cannot honour each other (``c``: a TrainConfig or a Recipe: the slot names and
    their ``*_options``). Each ingredient says what it needs; nothing here knows a method by name:

    * the objective must find positives where the source puts them (``Objective.positives_from`` ∩
      ``PositiveSource.positives_in``), otherwise it would train exactly as with positives ``self``;
    * the view maker must make at least 2 views per instance (one view has no positive: loss 0), and a view of
      every slot of the source's plan that holds a positive (``PositiveSource.view_slots``,
      ``ViewMaker.views_made``), otherwise those positives are never seen."""
    regs = _registries()
    pos, obj, views = (regs[s].get(getattr(c, s)) for s in ("positives", "objective", "views"))
    carried, read = set(pos.positives_in), set(obj.positives_from)
    if not carried & read:
        fits = [n for n in regs["objective"].names()
                if carried & set(regs["objective"].get(n).positives_from)]
        raise ConfigError(f"positives {c.positives!r} with objective {c.objective!r} is refused: the source marks its "
                          f"positives only in the plan's {' and '.join(sorted(carried))}, but {c.objective!r} finds "
                          f"positives only through {' and '.join(sorted(read))}, so it would ignore them and train "
                          f"exactly like positives 'self'; use objective {' or '.join(fits) or '(none registered)'}"
                          f" with positives {c.positives!r}")
    pos_opts = {**option_defaults(pos), **dict(c.positives_options or {})}
    views_opts = {**option_defaults(views), **dict(c.views_options or {})}
    slots, needed = pos.view_slots(pos_opts)
    made, covered = views.views_made(views_opts, slots)
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(dict(c.views_options or {}).items())) or "its defaults"
    if made < 2:
        raise ConfigError(f"views {c.views!r} ({shown}) make {made} view per instance with positives "
                          f"{c.positives!r}; an objective needs at least 2 (a view and its positive) — with one "
                          "view the loss is 0 and nothing is learnt")
    if covered < needed:
        raise ConfigError(f"views {c.views!r} ({shown}) make views from only the first {covered} of the {slots} "
                          f"plan slots per anchor of positives {c.positives!r}, so the positives in the other "
                          f"{needed - covered} slot(s) would never be seen; make global_views or local_views at "
                          f"least {needed} (or use views 'standard')")


@dataclass(frozen=True)
class Recipe:
    """One named method: a choice per slot, each slot's options, and default hyper-parameters.

    ``defaults`` override :class:`~gpsviz.config.TrainConfig`'s own defaults (e.g. ``{"temperature": 0.07}``);
    a value the user sets explicitly overrides both."""

    name: str
    description: str
    positives: str = "self"
    objective: str = "ntxent"
    views: str = "standard"
    head: str = "mlp"
    weighting: str = "uniform"
    positives_options: dict[str, Any] = field(default_factory=dict)
    views_options: dict[str, Any] = field(default_factory=dict)
    head_options: dict[str, Any] = field(default_factory=dict)
    objective_options: dict[str, Any] = field(default_factory=dict)
    weighting_options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add a recipe to the registry the CLI and notebooks share (every slot's choice must be registered, its
    options valid, and the slots must honour each other: :func:`check_combination`)."""
    regs = _registries()
    for slot in SLOTS:
        choice = getattr(recipe, slot)
        if choice not in regs[slot]:
            raise ConfigError(f"recipe {recipe.name!r}: {slot} {choice!r} is unknown; choose one of "
                              f"{', '.join(regs[slot].names())}")
    try:
        for slot in SLOTS:
            regs[slot].check_options(getattr(recipe, slot), getattr(recipe, f"{slot}_options"))
        check_combination(recipe)
    except ConfigError as e:
        raise ConfigError(f"recipe {recipe.name!r}: {e}") from None
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"recipe {name!r} is unknown; choose one of {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


@dataclass
class Ingredients:
    """What the training loop needs, built from a resolved config: model, positive source, view maker,
    objective and view weighting."""

    model: SSLModel
    positives: Any
    views: Any
    objective: Any
    weighting: Any


def build_ingredients(cfg: Any, in_channels: int, image_size: int) -> Ingredients:
    """Build every ingredient of ``cfg`` (slots and options already resolved by TrainConfig).

    Initialisation order (backbone, projector, the objective's heads, then the teacher copy) is fixed so the
    same seed gives the same weights."""

    backbone = build_backbone(cfg.backbone, in_channels=in_channels, **cfg.backbone_options)
    head = build_head(cfg.head, backbone.out_dim, cfg, **cfg.head_options)
    model = SSLModel(backbone, {"projector": head})
    objective = build_objective(cfg.objective, **cfg.objective_options)
    objective.build(model, cfg)
    if objective.teacher:
        model.add_teacher()
    weighting = build_weighting(cfg.weighting, **cfg.weighting_options)
    weighting.build(cfg)
    views = build_views(cfg.views, **cfg.views_options)
    views.configure(cfg.aug, cfg.strength, image_size)
    positives = build_positives(cfg.positives, **cfg.positives_options)
    return Ingredients(model=model, positives=positives, views=views, objective=objective, weighting=weighting)


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

# SPPS: semantic positive sets added next to the anchor's pair. The default prior (hog-invariant) is a CPU stand-in:
# the paper mines with an SSL-pretrained encoder, here prior="checkpoint", run=<a SimCLR run>. Threshold: the 0.75
# quantile of the mined similarities (semantic.DEFAULT_QUANTILE), the rule reproduce spps uses.
register_recipe(Recipe("spps-simclr", "SPPS-SimCLR: the anchor's pair plus views of its semantic set, all positives "
                       "(default prior hog-invariant stands in for the paper's SSL-pretrained encoder).",
                       positives="semantic", objective="ntxent"))
register_recipe(Recipe("spps-byol", "SPPS-BYOL: each view predicts the teacher's views of its anchor and its set "
                       "(default prior hog-invariant stands in for the paper's SSL-pretrained encoder).",
                       positives="semantic", objective="byol"))
# SwAV and UOTA: 2 global views at full size + 4 local 16 px views (the 32 px analogue of 2×224 + 6×96)
_MC = {"global_views": 2, "local_views": 4, "local_size": 16, "local_scale": (0.05, 0.3)}
register_recipe(Recipe("swav", "SwAV: swapped prediction of Sinkhorn codes over prototypes, multi-crop.",
                       views="multicrop", objective="swav", views_options=_MC))
register_recipe(Recipe("uota-swav", "UOTA-SwAV: SwAV with out-of-distribution views down-weighted.",
                       views="multicrop", objective="swav", weighting="uota", views_options=_MC))
register_recipe(Recipe("uota-simclr", "UOTA-SimCLR: multi-crop SimCLR with UOTA view weights.",
                       views="multicrop", objective="ntxent", weighting="uota", views_options=_MC))
register_recipe(Recipe("uota-byol", "UOTA-BYOL: multi-crop BYOL with UOTA view weights.",
                       views="multicrop", objective="byol", weighting="uota", views_options=_MC))
# CASSLE: the projector also reads the view's augmentation descriptor (the teacher reads its own views')
register_recipe(Recipe("cassle-simclr", "CASSLE-SimCLR: augmentation-aware (conditioned) projector.",
                       head="conditioned", objective="ntxent"))
register_recipe(Recipe("cassle-byol", "CASSLE-BYOL: conditioned projector, teacher conditioned on its views.",
                       head="conditioned", objective="byol"))
# Dubois et al.: CISSL (student head = Linear + BN, the probe's architecture; τ 0.07) and DISSL (low-rank linear
# student over C = proj_dim = 128 categories; reference C = 16384 on ImageNet)
register_recipe(Recipe("cissl", "CISSL: contrastive with asymmetric heads, self kept in the logits (Dubois et al.).",
                       objective="cissl", head="mlp", head_options={"num_layers": 1, "last_bn": True},
                       defaults={"temperature": 0.07}))
register_recipe(Recipe("dissl", "DISSL: distillation into a categorical teacher, entropy-regularised (Dubois et al.).",
                       objective="dissl", head="lowrank"))
