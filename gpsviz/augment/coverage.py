"""Ground truth for view weighting: how much of an image's object each augmented view shows.

    cov = view_coverage(dataset.masks, batch.rows, batch.params)     # M floats in [0, 1]
    cov < 0.10                                                        # the views that miss the object

The shapes world records each image's object mask (``ImageDataset.masks``, bool N×H×W, distractors excluded);
the augmenter records each view's crop box in source pixels (``crop_y, crop_x, crop_h, crop_w`` of
:class:`~gpsviz.augment.params.AugParams`). A view's **coverage** is the share of the object's mask pixels that lie
inside its crop box; pixel ``j`` covers ``[j, j + 1)`` and counts by the fraction of it inside the box, so a box
edge through a pixel counts that pixel partly. A flip moves the object inside the view but not in or out of it,
so flips do not change coverage.
"""
from __future__ import annotations

import torch

from gpsviz.augment.params import AugParams
from gpsviz.errors import GpsvizError

__all__ = ["view_coverage", "crop_boxes", "MISS_THRESHOLD"]

#: A view "misses the object" when it shows less than this share of the object's mask.
MISS_THRESHOLD = 0.10


def crop_boxes(params: AugParams | torch.Tensor) -> torch.Tensor:
    """The crop boxes of M views as float32 M×4 ``(y, x, h, w)`` in source pixels (from AugParams or its values)."""
    if isinstance(params, AugParams):
        return torch.stack([params[n] for n in ("crop_y", "crop_x", "crop_h", "crop_w")], 1).float()
    v = torch.as_tensor(params)
    if v.ndim != 2 or v.shape[1] < 4:
        raise GpsvizError(f"coverage: params must be AugParams or an M×P tensor whose first four columns are "
                          f"crop_y, crop_x, crop_h, crop_w; got shape {tuple(v.shape)}")
    return v[:, :4].float()


def _overlap(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
    """M×size: the fraction of each pixel ``[j, j+1)`` inside ``[start, start + length)``."""
    j = torch.arange(size, dtype=torch.float32)
    lo = torch.maximum(j.view(1, -1), start.view(-1, 1))
    hi = torch.minimum(j.view(1, -1) + 1, (start + length).view(-1, 1))
    return (hi - lo).clamp(0.0, 1.0)


def view_coverage(masks: torch.Tensor, rows: torch.Tensor, params: AugParams | torch.Tensor,
                  chunk: int = 4096) -> torch.Tensor:
    """Share of each view's object mask inside its crop box.

    Args:
        masks: bool N×H×W object masks of the dataset (``ImageDataset.masks``).
        rows: int64 M, the dataset row each view was made from (``batch.rows`` / ``plan.rows``).
        params: the views' AugParams (M rows) or their M×P values (columns in ``PARAM_NAMES`` order).
        chunk: views per vectorised block (bounds memory at chunk×H×W).
    Returns:
        float32 M in [0, 1]; NaN for a view whose image has an empty mask (no object to miss).
    """
    if masks is None:
        raise GpsvizError("coverage needs the dataset's object masks; the shapes world has them "
                          "(load_dataset('shapes', ..., clutter=...)), other datasets do not")
    masks = torch.as_tensor(masks)
    if masks.ndim != 3:
        raise GpsvizError(f"coverage: masks must be N×H×W, got shape {tuple(masks.shape)}")
    rows = torch.as_tensor(rows).long().cpu().flatten()
    boxes = crop_boxes(params).cpu()
    if boxes.shape[0] != rows.shape[0]:
        raise GpsvizError(f"coverage: {rows.shape[0]} rows but {boxes.shape[0]} parameter rows; give one row "
                          "per view")
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= masks.shape[0]):
        raise GpsvizError(f"coverage: rows must index the {masks.shape[0]} masks, got range "
                          f"[{int(rows.min())}, {int(rows.max())}]")
    h, w = masks.shape[1:]
    out = torch.empty(rows.shape[0], dtype=torch.float32)
    for a in range(0, rows.shape[0], chunk):
        sl = slice(a, a + chunk)
        m = masks[rows[sl]].float()                                          # c×H×W
        oy = _overlap(boxes[sl, 0], boxes[sl, 2], h)                         # c×H
        ox = _overlap(boxes[sl, 1], boxes[sl, 3], w)                         # c×W
        inside = torch.einsum("chw,ch,cw->c", m, oy, ox)
        total = m.sum((1, 2))
        out[sl] = torch.where(total > 0, inside / total.clamp(min=1), torch.full_like(total, float("nan")))
    return out
