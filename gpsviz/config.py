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


@dataclass
class TrainConfig:
    """Everything that defines one training run. ``None`` fields take the recipe's default.

    Validated on construction (``ConfigError`` naming the field); saved as ``config.json`` in the run folder.
    """

    recipe: str = "simclr"
    data: str = "shapes"
    data_options: dict[str, Any] = field(default_factory=dict)
    aug: str = "strong"
    strength: float = 1.0
    backbone: str = "small-cnn"
    proj_hidden: int = 512
    proj_dim: int = 128
    pred_hidden: int = 512
    epochs: int = 10  # ≈ 2–3 min for SimCLR on 10,000 shapes images on a 2-core CPU (README, "Baselines on shapes")
    batch_size: int = 128
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float = 1.0
    temperature: float = 0.2
    momentum_base: float = 0.9  # BYOL target EMA at step 0 (cosine to 1); 0.99 learned slower at the default budget
    positives_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    knn_k: int = 20
    eval_every: int = 1
    eval_size: int = 2000

    def __post_init__(self) -> None:
        from gpsviz.recipes import RECIPES

        if self.recipe not in RECIPES:
            raise ConfigError(f"recipe {self.recipe!r} is unknown; choose one of {', '.join(sorted(RECIPES))}")
        recipe = RECIPES[self.recipe]
        for k, v in recipe.defaults.items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        # Defaults for the small CNN on a CPU budget of a few hundred steps: batch 128 and AdamW 2e-3 gave
        # SupCon 65.6 % vs 33.4 % for batch 256 / 1e-3 on shapes (8 epochs, 5–6k images): more, larger steps.
        for k, v in (("optimizer", "adamw"), ("lr", 2e-3), ("weight_decay", 1e-4)):
            if getattr(self, k) is None:
                setattr(self, k, v)
        self.positives_options = {**recipe.positives_options, **dict(self.positives_options)}
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
