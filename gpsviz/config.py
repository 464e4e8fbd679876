"""The run configuration: :class:`TrainConfig`, every field that defines one training run.

    >>> from gpsviz.config import TrainConfig
    >>> TrainConfig(recipe="gps-simclr", aug="weak", epochs=10).to_dict()["positives_options"]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gpsviz.errors import ConfigError
from gpsviz.optim import OPTIMIZERS


#: The config's own defaults of the fields a recipe may override. Resolution order, per field: a value set
#: explicitly (not ``None``) → the recipe's ``defaults`` → this table.
#: Batch 128 and AdamW 2e-3 suit the small CNN on a CPU budget of a few hundred steps (they gave SupCon 65.6 %
#: vs 33.4 % for batch 256 / 1e-3 on shapes, 8 epochs, 5–6k images: more, larger steps).
DEFAULTS: dict[str, Any] = dict(
    aug="strong", strength=1.0, backbone="small-cnn", proj_hidden=512, proj_dim=128, pred_hidden=512, epochs=30,
    batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=1.0, temperature=0.2,
    momentum_base=0.99,
)

#: Ingredient slots (see :mod:`gpsviz.recipes`); ``None`` takes the recipe's choice.
SLOT_FIELDS = ("positives", "views", "head", "objective", "weighting")

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything that defines one training run. ``None`` fields take the recipe's default, then
    :data:`DEFAULTS`; slots (``positives``, ``views``, ``head``, ``objective``, ``weighting``) left ``None`` take
    the recipe's choice, and each slot's ``*_options`` are merged over the recipe's.

    ``precision``: ``auto`` (bf16 autocast on CUDA and on CPUs with native bf16 matrix instructions, fp32
    elsewhere), ``fp32``, ``bf16`` or ``fp16`` (CUDA only); losses and softmaxes stay float32.
    ``channels_last``: ``None`` = the faster layout of the device (see :func:`gpsviz.hardware.pick_layout`).
    ``sync_bn``: BatchNorm statistics over the global batch when training on several processes (``None`` = on
    for several CUDA processes, off otherwise: SyncBatchNorm runs on GPUs only).

    Validated on construction (``ConfigError`` naming the field); saved as ``config.json`` in the run folder.
    """

    recipe: str = "simclr"
    data: str = "shapes"
    data_options: dict[str, Any] = field(default_factory=dict)
    aug: str | None = None
    strength: float | None = None
    backbone: str | None = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    proj_hidden: int | None = None
    proj_dim: int | None = None
    pred_hidden: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float | None = None
    temperature: float | None = None
    momentum_base: float | None = None
    positives: str | None = None
    views: str | None = None
    head: str | None = None
    objective: str | None = None
    weighting: str | None = None
    positives_options: dict[str, Any] = field(default_factory=dict)
    views_options: dict[str, Any] = field(default_factory=dict)
    head_options: dict[str, Any] = field(default_factory=dict)
    objective_options: dict[str, Any] = field(default_factory=dict)
    weighting_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    sync_bn: bool | None = None
    knn_k: int = 20
    eval_every: int = 1
    eval_size: int = 2000

    def __post_init__(self) -> None:
        from gpsviz.recipes import RECIPES

        if self.recipe not in RECIPES:
            raise ConfigError(f"recipe {self.recipe!r} is unknown; choose one of {', '.join(sorted(RECIPES))}")
        recipe = RECIPES[self.recipe]
        unknown = sorted(set(recipe.defaults) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"recipe {recipe.name!r}: defaults for unknown field(s) {unknown}; "
                              f"a recipe may set {sorted(DEFAULTS)}")
        for k, v in DEFAULTS.items():
            if getattr(self, k) is None:
                setattr(self, k, recipe.defaults.get(k, v))
        for slot in SLOT_FIELDS:
            if getattr(self, slot) is None:
                setattr(self, slot, getattr(recipe, slot))
            # the recipe's options apply to the recipe's own choice of the slot, not to one the user swapped in
            base = getattr(recipe, f"{slot}_options") if getattr(self, slot) == getattr(recipe, slot) else {}
            setattr(self, f"{slot}_options", {**base, **dict(getattr(self, f"{slot}_options") or {})})
        self._check()

    def _check(self) -> None:
        def need(cond: bool, name: str, what: str) -> None:
            if not cond:
                raise ConfigError(f"{name}={getattr(self, name)!r} is impossible: {what}")

        from gpsviz.augment import PRESETS

        need(self.aug in PRESETS, "aug", f"choose one of {', '.join(PRESETS)}")
        need(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "it must be an integer ≥ 1")
        need(isinstance(self.batch_size, int) and self.batch_size >= 2, "batch_size", "it must be an integer ≥ 2")
        need(self.strength >= 0, "strength", "it must be ≥ 0")
        need(self.lr > 0, "lr", "it must be > 0")
        need(self.weight_decay >= 0, "weight_decay", "it must be ≥ 0")
        need(self.temperature > 0, "temperature", "it must be > 0")
        need(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", "it must lie between 0 and epochs")
        need(0 < self.momentum_base < 1, "momentum_base", "it must lie in (0, 1)")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        need(self.proj_hidden >= 1 and self.proj_dim >= 1 and self.pred_hidden >= 1, "proj_dim",
             "head sizes must be ≥ 1")
        need(self.precision in PRECISIONS, "precision", f"choose one of {', '.join(PRECISIONS)}")
        need(self.channels_last in (None, True, False), "channels_last", "it must be true, false or None (auto)")
        need(self.sync_bn in (None, True, False), "sync_bn", "it must be true, false or None (auto)")
        from gpsviz.recipes import _registries

        for slot, reg in _registries().items():
            need(getattr(self, slot) in reg, slot, f"choose one of {', '.join(reg.names())}")
            reg.check_options(getattr(self, slot), getattr(self, f"{slot}_options"), reserved=("in_dim", "cfg"))
        need(self.knn_k >= 1, "knn_k", "it must be ≥ 1")
        need(self.eval_every >= 0, "eval_every", "it must be ≥ 0 (0 = no online kNN)")
        need(self.eval_size >= 10, "eval_size", "it must be ≥ 10")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short hash of the whole config: runs with equal keys are the same run."""
        import hashlib
        import json

        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)
