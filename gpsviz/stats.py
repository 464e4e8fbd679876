"""Small statistics shared by the experiment tables: mean ± sample standard deviation and Spearman's ρ."""
from __future__ import annotations

import statistics
from typing import Sequence

import numpy as np

__all__ = ["mean_sd", "format_mean_sd", "rank_correlation"]


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation) of ``values``; the deviation is None for one value (the spread of one
    seed is unknown, not zero). Empty ``values`` is a ValueError."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_sd: no values")
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def format_mean_sd(values: Sequence[float | None], fmt: str = ".1f") -> str:
    """``"m ± sd"`` (or ``"m"`` for one value) with the format spec ``fmt`` applied to both; None and NaN values are
    left out, and ``"–"`` stands for no value at all."""
    vals = [float(v) for v in values if v is not None and v == v]
    if not vals:
        return "–"
    m, sd = mean_sd(vals)
    return format(m, fmt) + ("" if sd is None else f" ± {format(sd, fmt)}")


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (ranks by order; no tie correction, so use it
    where ties are not expected). NaN when either sequence is constant."""
    rx, ry = np.argsort(np.argsort(np.asarray(xs))), np.argsort(np.argsort(np.asarray(ys)))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
