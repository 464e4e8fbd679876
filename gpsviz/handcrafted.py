"""Hand-crafted image descriptors used as GPS priors, batched in torch (no per-image Python loop).

* :func:`hog_features` — classic HOG (Dalal & Triggs): orientation histograms on a grid of cells, block-normalised.
  Keeps *where* each edge is: good for aligned data (Fashion-MNIST), weak when objects move and rotate.
* :func:`invariant_hog_features` — orientation statistics pooled over the whole image so that they do not change
  when the object is recoloured, moved, scaled or rotated: the prior knowledge "only the outline's shape matters".

Both take uint8 images N×C×H×W and return float32 N×D; colour images use, per pixel, the gradient of the colour
channel where it is strongest (so an edge between two equally bright colours is not lost).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from gpsviz.errors import ConfigError


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of float B×C×H×W (replicate padding)."""
    r = max(1, int(2 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t * t / (2 * sigma * sigma))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def image_gradients(images: torch.Tensor, blur: float = 0.0,
                    channels: str = "max") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Central-difference gradients of uint8 B×C×H×W (in [0, 1] units, borders 0).

    ``channels="max"``: per pixel the colour channel with the largest gradient magnitude; ``"gray"``: luminance.
    Returns ``(gx, gy, magnitude)``, each float32 B×1×H×W.
    """
    if channels not in ("max", "gray"):
        raise ConfigError(f"hog: channels must be 'max' or 'gray', got {channels!r}")
    x = images.float().div_(255.0)                                              # B×C×H×W
    if channels == "gray" and x.shape[1] == 3:
        x = (0.2125 * x[:, 0] + 0.7154 * x[:, 1] + 0.0721 * x[:, 2])[:, None]
    if blur > 0:
        x = _gaussian_blur(x, float(blur))
    gx, gy = torch.zeros_like(x), torch.zeros_like(x)
    gx[..., :, 1:-1] = x[..., :, 2:] - x[..., :, :-2]
    gy[..., 1:-1, :] = x[..., 2:, :] - x[..., :-2, :]
    mag = torch.hypot(gx, gy)
    bx, by, bm = gx[:, :1], gy[:, :1], mag[:, :1]
    for c in range(1, mag.shape[1]):                                            # strongest channel per pixel
        better = mag[:, c:c + 1] > bm
        bx, by, bm = (torch.where(better, gx[:, c:c + 1], bx), torch.where(better, gy[:, c:c + 1], by),
                      torch.where(better, mag[:, c:c + 1], bm))
    return bx, by, bm


def orientation_bins(gx: torch.Tensor, gy: torch.Tensor, bins: int,
                     signed: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft orientation binning: gradients B×1×H×W → ``(lo, hi, w_hi)`` each B×(H·W): the two nearest of ``bins``
    orientation bins (int64) and the weight of ``hi`` (linear interpolation; ``lo`` gets ``1 − w_hi``).
    Unsigned orientations cover 0–180°, signed ones 0–360°."""
    period = 360.0 if signed else 180.0
    ang = torch.rad2deg(torch.atan2(gy, gx)).remainder_(period).flatten(1)     # B×HW
    pos = ang.div_(period / bins).sub_(0.5)
    lo = torch.floor(pos)
    w_hi = pos - lo
    lo = lo.long().remainder_(bins)
    return lo, (lo + 1).remainder_(bins), w_hi


def _histogram(index_lo: torch.Tensor, index_hi: torch.Tensor, w_hi: torch.Tensor, weight: torch.Tensor,
               size: int) -> torch.Tensor:
    """B×size histogram of soft votes: ``weight·(1−w_hi)`` at ``index_lo`` and ``weight·w_hi`` at ``index_hi``
    (all B×P)."""
    h = torch.zeros(weight.shape[0], size, dtype=weight.dtype)
    h.scatter_add_(1, index_lo, weight * (1 - w_hi))
    h.scatter_add_(1, index_hi, weight * w_hi)
    return h


def hog_features(images: torch.Tensor, cell: int | Sequence[int] = 8, bins: int = 9, block: int = 2,
                 channels: str = "max", batch_size: int = 512) -> torch.Tensor:
    """Classic HOG: uint8 N×C×H×W → float32 N×D.

    Unsigned orientations (0–180°) voted into ``bins`` bins weighted by gradient magnitude, summed over
    ``cell``×``cell`` cells (a remainder row/column is dropped), ``block``×``block`` cells L2-Hys normalised
    (clip 0.2). Several cell sizes are concatenated. For 32×32 images and the defaults D = 3·3·(2·2·9) = 324.
    """
    cells = [int(cell)] if isinstance(cell, int) else [int(c) for c in cell]
    if not cells or min(cells) < 1 or bins < 2 or block < 1:
        raise ConfigError(f"hog: cell sizes, bins and block must be positive (bins ≥ 2), got {cells}, {bins}, {block}")
    h_img, w_img = images.shape[-2:]
    out = []
    for s in range(0, images.shape[0], batch_size):
        gx, gy, mag = image_gradients(images[s:s + batch_size], 0.0, channels)
        b = mag.shape[0]
        lo, hi, w_hi = orientation_bins(gx, gy, bins)                           # b×HW each
        mag = mag.flatten(1)
        feats = []
        for c in cells:
            cy, cx = max(1, h_img // c), max(1, w_img // c)
            rows = (torch.arange(h_img) // c).clamp_max(cy - 1)
            cols = (torch.arange(w_img) // c).clamp_max(cx - 1)
            keep = ((torch.arange(h_img) < cy * c)[:, None] & (torch.arange(w_img) < cx * c)[None, :]).flatten()
            cell_id = (rows[:, None] * cx + cols[None, :]).flatten()             # HW: cell of each pixel
            n_cells = cy * cx
            hist = _histogram(lo * n_cells + cell_id, hi * n_cells + cell_id, w_hi, mag * keep, bins * n_cells)
            hist = hist.view(b, bins, cy, cx)                                     # b×bins×cy×cx cell sums
            blk = min(block, cy, cx)
            v = hist.unfold(2, blk, 1).unfold(3, blk, 1)                         # b×bins×by×bx×blk×blk
            v = v.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, bins * blk * blk)
            v = v / torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-10)           # L2-Hys
            v = v.clamp_max(0.2)
            v = v / torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-10)
            feats.append(v.flatten(1))
        out.append(torch.cat(feats, 1))
    return torch.cat(out)


def invariant_hog_features(images: torch.Tensor, blur: float = 1.0, power: float = 3.0, bins: int = 36,
                           radial_bins: int = 8, angle_bins: int = 8, spectrum_weight: float = 0.5,
                           channels: str = "max", batch_size: int = 512) -> torch.Tensor:
    """Orientation statistics invariant to colour, position, scale and rotation: uint8 N×C×H×W → float32 N×D.

    After a Gaussian blur (``blur`` σ, suppresses texture), every pixel votes with weight ``|∇|**power``, so the
    strongest edges — typically the object's outline — dominate the background's. Two parts:

    1. the magnitudes of the Fourier transform of the signed orientation histogram pooled over the image
       (``bins//2 + 1`` values): pooling removes position; a rotation of the object, or an inversion of its
       contrast (a 180° shift), circularly shifts the histogram, which leaves the Fourier magnitudes unchanged;
    2. a joint histogram (``radial_bins``×``angle_bins``) of each edge pixel's distance to the edge centroid
       (divided by the mean distance: scale-free) and of the angle between its gradient and the direction to the
       centroid (folded to 0–90°: rotation- and contrast-free). A circle has every edge at one radius with the
       gradient along the radius; a star's edges spread over radii and angles.

    Each part sums to about 1; part 1 is scaled by ``spectrum_weight``. D = bins//2 + 1 + radial_bins·angle_bins.
    """
    if bins < 4 or radial_bins < 1 or angle_bins < 1 or power <= 0:
        raise ConfigError(f"hog-invariant: bins ≥ 4, radial_bins/angle_bins ≥ 1 and power > 0 required, got "
                          f"{bins}, {radial_bins}, {angle_bins}, {power}")
    out = []
    for s in range(0, images.shape[0], batch_size):
        gx, gy, mag = image_gradients(images[s:s + batch_size], blur, channels)  # b×1×H×W each
        w = mag.pow(power)                                                       # b×1×H×W edge weights
        b, _, h, wd = w.shape
        total = w.sum((1, 2, 3)) + 1e-12                                         # b
        lo, hi, w_hi = orientation_bins(gx, gy, bins, signed=True)
        hist = _histogram(lo, hi, w_hi, w.flatten(1), bins)                      # b×bins
        spectrum = torch.fft.rfft(hist / total[:, None], dim=1).abs()            # b×(bins//2+1)
        yy, xx = torch.meshgrid(torch.arange(h, dtype=w.dtype) + 0.5, torch.arange(wd, dtype=w.dtype) + 0.5,
                                indexing="ij")
        w2 = w[:, 0]                                                             # b×H×W
        cx = (w2 * xx).sum((1, 2)) / total
        cy = (w2 * yy).sum((1, 2)) / total
        dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]                  # b×H×W offsets from centroid
        r = torch.hypot(dx, dy)
        r_mean = (w2 * r).sum((1, 2)) / total + 1e-6
        rn = (r / r_mean[:, None, None]).clamp(max=2.0 - 1e-4)                   # normalised radius in [0, 2)
        rel = torch.rad2deg(torch.atan2(gy[:, 0], gx[:, 0]) - torch.atan2(dy, dx)).remainder(180.0)
        rel = torch.minimum(rel, 180.0 - rel)                                    # [0, 90]
        ri = (rn / 2 * radial_bins).long().clamp_max(radial_bins - 1)
        ai = (rel / 90 * angle_bins).long().clamp_max(angle_bins - 1)
        joint = torch.zeros(b, radial_bins * angle_bins, dtype=w.dtype)
        joint.scatter_add_(1, (ri * angle_bins + ai).view(b, -1), w2.reshape(b, -1))
        out.append(torch.cat([joint / total[:, None], spectrum_weight * spectrum], 1))
    return torch.cat(out)
