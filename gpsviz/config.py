"""The run configuration: :class:`TrainConfig`, every field that defines one training run.

    >>> from gpsviz.config import TrainConfig
    >>> TrainConfig(recipe="gps-simclr", aug="weak", epochs=10).to_dict()["positives_options"]
"""
from __future__ import annotations

import dataclasses
import math
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
    epochs: int = 30
    batch_size: int = 128
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float | None = None
    warmup_epochs: float = 1.0
    temperature: float = 0.2
    momentum_base: float = 0.99
    positives_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    knn_k: int = 20
    eval_every: int = 1
    eval_size: int = 2000

    def __post_init__(self) -> None:
        from gpsviz.recipes import RECIPES

        if not isinstance(self.recipe, str) or self.recipe not in RECIPES:
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
        for name in ("data_options", "positives_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}={getattr(self, name)!r} is impossible: it must be a dict of options, "
                                  f"e.g. {{'k': 5}}")
        self.positives_options = {**recipe.positives_options, **dict(self.positives_options)}
        self._check()

    def _check(self) -> None:
        def need(cond: bool, name: str, what: str) -> None:
            if not cond:
                raise ConfigError(f"{name}={getattr(self, name)!r} is impossible: {what}")

        def integer(name: str, lo: int, hi: int, what: str = "") -> None:
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, name,
                 f"it must be an integer in [{lo}, {hi}]{what}")

        def number(name: str, lo: float, hi: float, what: str = "", lo_open: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (lo < v if lo_open else lo <= v) and v <= hi
            need(ok, name, f"it must be a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}]{what}")

        from gpsviz.augment import PRESETS
        from gpsviz.utils import parse_device

        for name in ("recipe", "data", "aug", "backbone", "optimizer", "device"):
            need(isinstance(getattr(self, name), str), name, "it must be a name (a string)")
        need(self.aug in PRESETS, "aug", f"choose one of {', '.join(PRESETS)}")
        need(isinstance(self.data_options, dict), "data_options", "it must be a dict of dataset options")
        need(isinstance(self.positives_options, dict), "positives_options", "it must be a dict")
        integer("epochs", 1, 100_000)
        integer("batch_size", 2, 65_536)
        number("strength", 0.0, 10.0, " (1 = the preset's magnitudes, 0 = no augmentation)")
        number("lr", 1e-8, 10.0, " (typical: 1e-3 for adamw, 0.3–5 for sgd/lars)")
        number("weight_decay", 0.0, 1.0, " (typical: 1e-4)")
        number("temperature", 1e-3, 10.0, " (typical: 0.1–0.5); tiny values overflow the loss, huge ones make "
                                          "it constant")
        number("warmup_epochs", 0.0, float(self.epochs) if isinstance(self.epochs, int) else 0.0,
               " (between 0 and epochs)")
        number("momentum_base", 0.0, 1.0, " (typical: 0.99–0.999)", lo_open=True)
        need(self.momentum_base < 1, "momentum_base", "it must be < 1 (1 freezes the target network)")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"choose one of {', '.join(OPTIMIZERS)}")
        for name in ("proj_hidden", "proj_dim", "pred_hidden"):
            integer(name, 1, 65_536, " (head sizes)")
        integer("knn_k", 1, 10_000)
        integer("eval_every", 0, 100_000, " (0 = no online kNN)")
        integer("eval_size", 10, 10_000_000)
        integer("seed", 0, 2**63 - 1, " (a 64-bit seed)")
        need(isinstance(self.amp, bool), "amp", "it must be true or false")
        try:
            if self.device != "auto":
                parse_device(self.device)
        except ConfigError:
            need(False, "device", "use auto, cpu, cuda, cuda:N or mps")

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
