"""``python -m gpsviz reproduce <experiment> --scale smoke|small|full``: the one entry point of every reproduction.

The experiments live in :mod:`gpsviz.experiments` (the framework in :mod:`gpsviz.experiments.grid`, the project's
grids in :mod:`gpsviz.experiments.baselines`, one module per paper); this module checks the arguments, picks the
output folder and hands the experiment to its registered runner.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import gpsviz.experiments  # noqa: F401  (importing registers every experiment)
from gpsviz.errors import ConfigError
from gpsviz.experiments.grid import EXPERIMENTS, SCALES, output_folder

__all__ = ["reproduce", "experiment_names"]


def experiment_names() -> tuple[str, ...]:
    """Every experiment ``reproduce`` knows, in registration order (the project's grids, then the papers')."""
    return tuple(EXPERIMENTS)


def reproduce(experiment: str, scale: str = "small", seeds: int | None = None, out: str | Path | None = None,
              device: str | None = None, datasets: str | Sequence[str] | None = None, epochs: int | None = None,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run an experiment, print and save its table (``table.md``, ``results.json``) and figures in its output
    folder (``out``, default ``<data>/reproduce/<experiment>-<scale>[-<settings>]``); returns the table."""
    if scale not in SCALES:
        raise ConfigError(f"scale {scale!r} is unknown; choose one of {', '.join(SCALES)}")
    if isinstance(datasets, str):
        datasets = [d.strip() for d in datasets.split(",") if d.strip()]
        if not datasets:
            raise ConfigError("--datasets is empty; give a comma-separated list, e.g. shapes, or leave it out")
    n_seeds = SCALES[scale]["seeds"] if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or not 1 <= n_seeds <= 1000:
        raise ConfigError(f"seeds={seeds!r} is impossible: the number of seeds must be an integer in [1, 1000]")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 100_000):
        raise ConfigError(f"epochs={epochs!r} is impossible: it must be an integer in [1, 100000] (or omit it "
                          f"for the scale's default)")
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"experiment {experiment!r} is unknown; choose {', '.join(experiment_names())}")
    exp = EXPERIMENTS[experiment]
    exp.check_datasets(datasets)
    out = output_folder(experiment, scale, n_seeds, epochs, datasets, out)
    return exp.runner(scale=scale, n_seeds=n_seeds, out=out, device=device, datasets=datasets, epochs=epochs,
                      progress=progress)
