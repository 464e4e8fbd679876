"""Positive purity: the one implementation every purity in gpsviz goes through.

Positive purity is the share of an anchor's candidate positives that carry the anchor's class: the quantity
GPS-SSL's prior must make high. Images whose label is unknown (``-1``) are left out of every average.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from gpsviz.errors import ConfigError
from gpsviz.knn import knn_search

__all__ = ["per_anchor_purity", "average_purity", "purity", "purity_curve", "embedding_purity"]


def per_anchor_purity(neighbour_indices: torch.Tensor, labels: torch.Tensor,
                      valid: torch.Tensor | None = None, anchors: torch.Tensor | None = None) -> torch.Tensor:
    """Purity of each anchor's neighbour set — the one implementation every purity in gpsviz goes through.

    Args:
        neighbour_indices: int64 N×k, row i = indices of anchor i's neighbours (``-1`` = no neighbour).
        labels: int64 N' class of every image (N' ≥ max index + 1; ``-1`` = unknown).
        valid: optional bool N×k; only ``True`` entries count (e.g. neighbours inside a τ-ball).
        anchors: optional int64 N, the anchors' indices into ``labels``; default: anchor i = row i of ``labels``.

    Returns:
        float32 N: share of valid, labelled neighbours with the anchor's label; NaN where none counts
        (anchor unlabelled or no valid labelled neighbour).
    """
    idx = torch.as_tensor(neighbour_indices).long()
    lab = torch.as_tensor(labels).long()
    if idx.ndim != 2:
        raise ConfigError(f"purity: neighbour_indices must be N×k, got shape {tuple(idx.shape)}")
    if anchors is None:
        anchor = lab[: idx.shape[0]]
    else:
        anchor = lab[torch.as_tensor(anchors).long().reshape(-1)]
        if anchor.shape[0] != idx.shape[0]:
            raise ConfigError(f"purity: {anchor.shape[0]} anchors for {idx.shape[0]} rows of neighbours")
    safe = idx.clamp_min(0)
    nb = lab[safe]                                                   # N×k neighbour labels
    counted = (idx >= 0) & (nb >= 0) & (anchor[:, None] >= 0)
    if valid is not None:
        counted &= torch.as_tensor(valid, dtype=torch.bool)
    same = ((nb == anchor[:, None]) & counted).sum(1).float()
    total = counted.sum(1).float()
    return torch.where(total > 0, same / total.clamp_min(1), torch.full_like(same, float("nan")))


def average_purity(per_anchor: torch.Tensor) -> float:
    """Mean of per-anchor purities (float N, from :func:`per_anchor_purity`), NaN entries skipped; NaN if all are."""
    p = per_anchor[~torch.isnan(per_anchor)]
    return float(p.mean()) if p.numel() else float("nan")


def purity(neighbour_indices: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Mean positive purity: share of each anchor's neighbours with its class, averaged over anchors.

    Shapes as in :func:`per_anchor_purity`; anchors with nothing to count are skipped.
    """
    return average_purity(per_anchor_purity(neighbour_indices, labels, valid))


def purity_curve(embedding: torch.Tensor | np.ndarray, labels: torch.Tensor, ks: Iterable[int] = (1, 5, 10, 20, 50),
                 metric: str = "l2", **knn_options) -> dict[int, float]:
    """Purity of the k nearest neighbours (self excluded) for each k in ``ks``, from one search with max(ks).

    Args:
        embedding: N×D float prior or representation.
        labels: int64 N.
        ks: neighbourhood sizes.
        metric, knn_options: passed to :func:`gpsviz.knn.knn_search`.

    Returns:
        ``{k: purity}`` in the order of ``ks``.
    """
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ConfigError(f"purity_curve: ks must be positive integers, got {ks}")
    _, idx = knn_search(embedding, None, max(ks), metric=metric, exclude_self=True, **knn_options)
    return {k: purity(idx[:, :k], labels) for k in ks}


def embedding_purity(embedding: torch.Tensor | np.ndarray, labels: torch.Tensor, k: int = 10,
                     metric: str = "l2") -> float:
    """Purity of the k nearest neighbours (self excluded, squared L2 by default) in an embedding, e.g. a prior:
    :func:`purity_curve` at one k. embedding N×D, labels int64 N. (``gpsviz.priors.purity`` is this function.)"""
    return purity_curve(embedding, labels, [k], metric=metric)[int(k)]
