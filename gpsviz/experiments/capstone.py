"""Notebook 07's lesson: every method on one world and one budget, a combination no paper ran, and an ablation
that swaps one ingredient at a time — what only the ingredient model (a recipe is one choice per slot) can give.

    nb = notebook_runs()                                 # all built-in recipes, the floors, the SupCon ceiling
    nb.table                                              # method, its five slot choices, linear / kNN label %
    ab = ablation_runs("gps-cassle-uota-mc")             # the recipe, then each non-SimCLR ingredient swapped back

Every run: the default shapes world, strong augmentation, one seed; teach mode 3,000 images × 6 epochs, batch
128, AdamW 2e-3 (the library's rate), float32; smoke mode 256 × 1, batch 64. The recipes keep their own options
(GPS and SPPS mine the CPU prior ``hog-invariant``; multi-crop makes 2 global + 4 local views).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError
from gpsviz.experiments.grid import NotebookRuns, method_configs, notebook_budget, train_notebook_runs
from gpsviz.recipes import RECIPES, SLOTS

__all__ = ["BUILTIN_RECIPES", "PLAIN", "CEILING", "recipe_table", "notebook_runs", "ablation_runs"]

#: The recipes gpsviz ships (those registered when gpsviz.recipes was imported; a notebook's own come later).
BUILTIN_RECIPES: tuple[str, ...] = tuple(RECIPES)
#: The slot choices of plain SimCLR: an ablation swaps an ingredient back to these.
PLAIN = {slot: getattr(RECIPES["simclr"], slot) for slot in SLOTS}
#: The ceiling's recipe and its name in the tables.
CEILING = ("supcon", "supcon (ceiling)")


def _name(recipe: str) -> str:
    return CEILING[1] if recipe == CEILING[0] else recipe


def recipe_table(recipes: Sequence[str] | None = None):
    """The slot choices of ``recipes`` (default: every registered one) as a pandas DataFrame, one row each:
    what every method of the comparison is made of."""
    import pandas as pd  # the table is for a notebook

    names = list(recipes or RECIPES)
    bad = [r for r in names if r not in RECIPES]
    if bad:
        raise ConfigError(f"recipe_table: unknown recipes {bad}; choose from {', '.join(RECIPES)}")
    return pd.DataFrame([{"recipe": r, **{s: getattr(RECIPES[r], s) for s in SLOTS}} for r in names])


def _budget(smoke: bool | None, overrides: dict[str, Any]) -> dict[str, Any]:
    return notebook_budget(smoke, teach=dict(aug="strong", epochs=6, batch_size=128, data_options={"n": 3000},
                                             eval_size=1000, eval_every=0, precision="fp32"),
                           quick=dict(aug="strong", epochs=1, batch_size=64, data_options={"n": 256},
                                      eval_size=200, eval_every=0, precision="fp32"), overrides=overrides)


def _with_slots(nb: NotebookRuns) -> NotebookRuns:
    """Add each run's slot choices to the table (floors: "–")."""
    for slot in SLOTS:
        nb.table.insert(1 + SLOTS.index(slot), slot,
                        [getattr(nb.configs[m], slot) if m in nb.configs else "–" for m in nb.table["method"]])
    return nb


def notebook_runs(methods: Sequence[str] | dict[str, dict] | None = None, *, seed: int = 0,
                  smoke: bool | None = None, targets: Sequence[str] | None = None, floors: bool = True,
                  root: str | Path | None = None, progress: bool = True, **overrides: Any) -> NotebookRuns:
    """Every built-in recipe (:data:`BUILTIN_RECIPES`; ``methods`` a subset of their names, the ceiling named
    "supcon (ceiling)") trained on one world at one budget (module docstring), probed for ``targets`` (default:
    the label) beside the floors. The table adds each method's five slot choices. Runs live under
    ``<data>/runs/nb07-<recipe>-<config key>``; the UOTA and CASSLE runs record the views of their first
    :data:`RECORDED` training images (``view_weights.pt``), which the embedding explorer shows."""
    known = {_name(r): (r, {}) for r in BUILTIN_RECIPES}
    return _with_slots(train_notebook_runs("nb07", method_configs(known, methods, _budget(smoke, overrides), seed),
                                           targets=targets or ("label",), floors=floors, seed=seed, root=root,
                                           progress=progress, record_views=RECORDED, record_if=_records))


#: Training images whose views the UOTA and CASSLE runs record (for the embedding explorer).
RECORDED = 64


def _records(cfg: TrainConfig) -> bool:
    """Runs whose views are worth recording: UOTA weighs them, CASSLE's head reads their augmentation."""
    return cfg.weighting == "uota" or cfg.head == "conditioned"


def ablation_runs(recipe: str, *, seed: int = 0, smoke: bool | None = None, targets: Sequence[str] | None = None,
                  floors: bool = True, root: str | Path | None = None, progress: bool = True,
                  **overrides: Any) -> NotebookRuns:
    """``recipe`` and, for each slot where it differs from plain SimCLR (:data:`PLAIN`), the same recipe with only
    that ingredient swapped back (e.g. "− weighting uota → uniform"), then plain SimCLR; same world and budget as
    :func:`notebook_runs`. A swap whose ingredients cannot honour each other is a ConfigError naming it."""
    if recipe not in RECIPES:
        raise ConfigError(f"ablation_runs: recipe {recipe!r} is unknown; register it first (gpsviz.recipes."
                          f"register_recipe) or choose one of {', '.join(RECIPES)}")
    r = RECIPES[recipe]
    known: dict[str, tuple[str, dict[str, Any]]] = {recipe: (recipe, {})}
    for slot in SLOTS:
        if getattr(r, slot) != PLAIN[slot]:
            known[f"− {slot} {getattr(r, slot)} → {PLAIN[slot]}"] = (recipe, {slot: PLAIN[slot]})
    known["simclr"] = ("simclr", {})
    budget = _budget(smoke, overrides)
    specs = []
    for name, (rec, swap) in known.items():
        try:
            specs.append((name, TrainConfig(recipe=rec, seed=seed, **budget, **swap)))
        except ConfigError as e:
            raise ConfigError(f"ablation of {recipe!r}, variant {name!r}: {e}") from None
    return _with_slots(train_notebook_runs(f"nb07-ablation-{recipe}", specs, targets=targets or ("label",),
                                           floors=floors, seed=seed, root=root, progress=progress))
