"""The run configuration: :class:`TrainConfig`, every field that defines one training run.

    >>> from gpsviz.config import TrainConfig
    >>> TrainConfig(recipe="gps-simclr", aug="weak", epochs=10).to_dict()["positives_options"]
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from gpsviz.augment import PRESETS
from gpsviz.errors import ConfigError
from gpsviz.optim import OPTIMIZERS
from gpsviz.recipes import RECIPES, _registries, check_combination
from gpsviz.utils import parse_device

#: The config's own defaults of the fields a recipe may override. Resolution order, per field: a value set
#: explicitly (not ``None``) → the recipe's ``defaults`` → this table.
#: Batch 128 and AdamW 2e-3 suit the small CNN on a CPU budget of a few hundred steps (they gave SupCon 65.6 %
#: vs 33.4 % for batch 256 / 1e-3 on shapes, 8 epochs, 5–6k images: more, larger steps).
#: epochs 10: ≈ 2–3 min for SimCLR on 10,000 shapes images on a 2-core CPU (README, "Baselines on shapes");
#: momentum_base 0.9: BYOL's target EMA at step 0 (cosine to 1); 0.99 learned slower at the default budget.
DEFAULTS: dict[str, Any] = dict(
    aug="strong", strength=1.0, backbone="small-cnn", proj_hidden=512, proj_dim=128, pred_hidden=512, epochs=10,
    batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=1.0, temperature=0.2,
    momentum_base=0.9,
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
        if not isinstance(self.recipe, str) or self.recipe not in RECIPES:
            raise ConfigError(f"recipe {self.recipe!r} is unknown; choose one of {', '.join(sorted(RECIPES))}")
        recipe = RECIPES[self.recipe]
        unknown = sorted(set(recipe.defaults) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"recipe {recipe.name!r}: defaults for unknown field(s) {unknown}; "
                              f"a recipe may set {sorted(DEFAULTS)}")
        for k, v in DEFAULTS.items():
            if getattr(self, k) is None:
                setattr(self, k, recipe.defaults.get(k, v))
        for name in ("data_options", "backbone_options") + tuple(f"{slot}_options" for slot in SLOT_FIELDS):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}={getattr(self, name)!r} is impossible: it must be a dict of options, "
                                  f"e.g. {{'k': 5}}")
        for slot in SLOT_FIELDS:
            if getattr(self, slot) is None:
                setattr(self, slot, getattr(recipe, slot))
            if not isinstance(getattr(self, slot), str):
                raise ConfigError(f"{slot}={getattr(self, slot)!r} is impossible: it must be an ingredient name")
            # the recipe's options apply to the recipe's own choice of the slot, not to one the user swapped in
            base = getattr(recipe, f"{slot}_options") if getattr(self, slot) == getattr(recipe, slot) else {}
            setattr(self, f"{slot}_options", {**base, **dict(getattr(self, f"{slot}_options") or {})})
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
        need(self.precision in PRECISIONS, "precision", f"choose one of {', '.join(PRECISIONS)}")
        need(self.channels_last in (None, True, False), "channels_last", "it must be true, false or None (auto)")
        need(self.sync_bn in (None, True, False), "sync_bn", "it must be true, false or None (auto)")
        try:
            if self.device != "auto":
                parse_device(self.device)
        except ConfigError:
            need(False, "device", "use auto, cpu, cuda, cuda:N or mps")

        for slot, reg in _registries().items():
            need(getattr(self, slot) in reg, slot, f"choose one of {', '.join(reg.names())}")
            reg.check_options(getattr(self, slot), getattr(self, f"{slot}_options"), reserved=("in_dim", "cfg"))
        check_combination(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short hash of the whole config: runs with equal keys are the same run."""

        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**d)
