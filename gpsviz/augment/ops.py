"""Batched image operations with one parameter per sample.

Every op takes a float batch ``images`` of shape B×C×H×W with values in [0, 1] and per-sample parameter
tensors of shape (B,), and returns a B×C×H×W float batch on the same device. Nothing loops over images in
Python. The formulas are those of ``torchvision.transforms.v2.functional`` (the tests compare them image by
image), so a view made here is the view torchvision would make with the same parameters.

Single-channel batches (C = 1, e.g. Fashion-MNIST) are accepted everywhere; the ops that need colour
(saturation, hue, grayscale) are then no-ops, as in torchvision; contrast uses the plain mean instead of the
mean luma.

Speed notes (CPU): per-pixel masks are 0/1 *float* tensors and selections use ``lerp`` (exact for weights 0
and 1) — boolean tensors and ``where`` are several times slower; ops run in place; scratch tensors come from
a :class:`Workspace` that a caller (the :class:`~gpsviz.augment.Augmenter`) keeps between batches, because
every fresh multi-megabyte allocation costs page faults. With ``inplace=True`` an op overwrites ``images``
(a float tensor) and returns it.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from gpsviz.features import normalize  # noqa: F401  (one implementation, listed here with the other ops)

__all__ = [
    "LUMA", "MATMUL_MAX_SIZE", "Workspace", "interp_matrix", "resized_crop", "hflip", "adjust_brightness", "adjust_contrast",
    "adjust_saturation", "adjust_hue", "rgb_to_grayscale", "gaussian_kernels", "gaussian_blur", "solarize",
    "normalize", "default_blur_kernel_size",
]

#: ITU-R 601-2 luma weights used by torchvision's ``rgb_to_grayscale`` (and hence contrast and saturation).
LUMA = (0.2989, 0.587, 0.114)


class Workspace:
    """Named scratch memory reused across calls (flat buffers, grown on demand, viewed to the requested shape).

    Ops use the names ``s1``, ``s2``, ``s3`` (batch-sized), ``hue`` and ``gray``; an op's result never lives in
    the workspace, so consecutive ops may share names. Not thread-safe: one workspace per thread.
    """

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, shape: Sequence[int], like: Tensor) -> Tensor:
        """An uninitialised contiguous tensor of ``shape`` with ``like``'s device and dtype."""
        shape = tuple(int(s) for s in shape)
        numel = 1
        for s in shape:
            numel *= s
        buf = self._bufs.get(name)
        if buf is None or buf.device != like.device or buf.dtype != like.dtype or buf.numel() < numel:
            buf = torch.empty(numel, device=like.device, dtype=like.dtype)
            self._bufs[name] = buf
        return buf[:numel].view(shape)

    def clear(self) -> None:
        """Free the buffers."""
        self._bufs.clear()


def _ws(workspace: Workspace | None, name: str, shape: Sequence[int], like: Tensor) -> Tensor:
    if workspace is None:
        return torch.empty(tuple(shape), device=like.device, dtype=like.dtype)
    return workspace.get(name, shape, like)


def _eq_into(a: Tensor, b: Tensor | float, out: Tensor) -> Tensor:
    """``out ← (a == b)`` as 0/1 floats (writing a float ``out`` directly is fast on CPU; elsewhere via bool)."""
    if out.device.type == "cpu":
        return torch.eq(a, b, out=out)
    return out.copy_(a == b)


def _col(x: Tensor | float | Sequence[float], ref: Tensor) -> Tensor:
    """Per-sample values (B,) (or a scalar) as a B×1×1×1 tensor with ``ref``'s device and dtype."""
    t = torch.as_tensor(x, device=ref.device).to(ref.dtype)
    if t.ndim == 0:
        t = t.expand(ref.shape[0])
    return t.reshape(-1, 1, 1, 1)


def _gray(images: Tensor, out: Tensor | None = None) -> Tensor:
    """Luma plane B×1×H×W of an RGB batch B×3×H×W (torchvision's weights and operation order)."""
    r, g, b = images.unbind(dim=1)
    out = torch.mul(r, LUMA[0], out=None if out is None else out.view_as(r))
    return out.add_(g, alpha=LUMA[1]).add_(b, alpha=LUMA[2]).unsqueeze(1)


# --------------------------------------------------------------------------------------------- geometry
def _source_coords(start: Tensor, length: Tensor, out_size: int, flip: Tensor | None = None) -> Tensor:
    """B×out_size source coordinates (pixel centres = integers) of a bilinear resize of the 1-D crops
    ``[start, start + length)`` to ``out_size``: ``(i + 0.5)·length/out_size − 0.5`` clamped to the crop, as
    ``interpolate(mode="bilinear", align_corners=False)``; ``flip`` (bool B) reverses the order."""
    length = length.to(torch.float32)
    i = torch.arange(out_size, device=start.device, dtype=torch.float32)
    src = (i + 0.5) * (length / out_size)[:, None] - 0.5
    src = torch.minimum(src.clamp_(min=0.0), (length - 1.0)[:, None])
    if flip is not None:
        src = torch.where(flip.to(device=start.device, dtype=torch.bool)[:, None], src.flip(1), src)
    return src + start.to(torch.float32)[:, None]


def interp_matrix(start: Tensor, length: Tensor, out_size: int, in_size: int, flip: Tensor | None = None,
                  scale: Tensor | None = None) -> Tensor:
    """Bilinear resampling matrices B×out_size×in_size for the 1-D crops ``[start, start + length)``.

    Row ``i`` holds the weights with which output pixel ``i`` reads the source pixels (see
    :func:`_source_coords`; for ``length ≤ out_size``, always the case here, torchvision's antialiased resize
    reduces to this). ``flip`` (bool B) reverses the output order (a horizontal flip after the crop); ``scale``
    (B) multiplies every weight. ``start``/``length``: integer-valued (B,).
    """
    src = _source_coords(start, length, out_size, flip)
    i0 = src.floor()
    w1 = src - i0
    w0 = 1.0 - w1
    i0 = i0.long().clamp_(0, in_size - 1)
    i1 = (i0 + 1).clamp_(max=in_size - 1)
    if scale is not None:
        s = scale.to(device=src.device, dtype=torch.float32)[:, None]
        w0, w1 = w0 * s, w1 * s
    m = torch.zeros(src.shape[0], out_size, in_size, device=src.device, dtype=torch.float32)
    m.scatter_add_(2, i0.unsqueeze(-1), w0.unsqueeze(-1))
    return m.scatter_add_(2, i1.unsqueeze(-1), w1.unsqueeze(-1))


#: Up to this image side, :func:`resized_crop` uses matrix products; above it, ``grid_sample``.
MATMUL_MAX_SIZE = 48


def resized_crop(images: Tensor, top: Tensor, left: Tensor, height: Tensor, width: Tensor,
                 flip: Tensor | None = None, scale: Tensor | None = None, workspace: Workspace | None = None,
                 method: str = "auto") -> Tensor:
    """Crop the box ``(top, left, height, width)`` of each image (integers, B each) and resize it to H×W.

    Matches ``torchvision.transforms.v2.functional.resized_crop(img, top, left, height, width, [H, W],
    antialias=True)`` (bilinear; the box is never larger than the image, so this upsamples or is the identity),
    with an optional horizontal ``flip`` (bool B, after the crop) and per-sample multiplier ``scale`` (B) folded
    in. ``images`` may be uint8 (pass ``scale = 1/255`` for values in [0, 1]). B×C×H×W → float32 B×C×H×W.

    ``method``: ``"matmul"`` — two batched matrix products ``R_y·X·R_xᵀ`` (fastest on CPU for small images,
    cost ∝ side per pixel); ``"grid"`` — one ``grid_sample`` at the same source coordinates (cost constant
    per pixel); ``"auto"`` — matmul up to ``MATMUL_MAX_SIZE`` px, grid above.
    """
    b, c, h, w = images.shape
    f32 = torch.empty(0, device=images.device)
    x = images if images.dtype == torch.float32 else _ws(workspace, "s1", images.shape, f32).copy_(images)
    if method == "auto":
        method = "matmul" if max(h, w) <= MATMUL_MAX_SIZE else "grid"
    if method == "grid":
        gy = _source_coords(top, height, h).mul_(2.0 / h).add_(1.0 / h - 1.0)      # normalised, align_corners
        gx = _source_coords(left, width, w, flip).mul_(2.0 / w).add_(1.0 / w - 1.0)  # = False convention
        grid = torch.stack([gx[:, None, :].expand(b, h, w), gy[:, :, None].expand(b, h, w)], dim=-1)
        out = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                              align_corners=False)
        return out if scale is None else out.mul_(scale.to(out).view(-1, 1, 1, 1))
    if method != "matmul":
        raise ValueError(f"method must be 'auto', 'matmul' or 'grid', got {method!r}")
    rx = interp_matrix(left, width, w, w, flip=flip)                             # B×W×W
    ry = interp_matrix(top, height, h, h, scale=scale)                           # B×H×H
    cols = _ws(workspace, "s2", (b, c * h, w), f32)
    torch.bmm(x.reshape(b, c * h, w), rx.transpose(1, 2), out=cols)              # X·R_xᵀ
    ry_c = _ws(workspace, "s3", (b, c, h, h), f32).copy_(ry.unsqueeze(1).expand(b, c, h, h))
    out = torch.empty(b, c, h, w, device=images.device)
    return torch.bmm(ry_c.view(b * c, h, h), cols.view(b * c, h, w), out=out.view(b * c, h, w)).view(b, c, h, w)


def hflip(images: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mirror left-right the images where ``mask`` (bool B) is true (all when ``None``). B×C×H×W → same."""
    if mask is None:
        return images.flip(-1)
    return torch.lerp(images, images.flip(-1), _col(mask, images))


# --------------------------------------------------------------------------------------------- colour
def adjust_brightness(images: Tensor, factor: Tensor | float, inplace: bool = False) -> Tensor:
    """``clamp(factor·x, 0, 1)`` per sample (torchvision ``adjust_brightness``). factor ≥ 0, shape (B,)."""
    x = images if inplace else images.clone()
    return x.mul_(_col(factor, x)).clamp_(0.0, 1.0)


def adjust_contrast(images: Tensor, factor: Tensor | float, inplace: bool = False,
                    means: Tensor | None = None) -> Tensor:
    """``clamp(f·x + (1−f)·m, 0, 1)`` with m the image's mean luma (its mean for C = 1); torchvision
    ``adjust_contrast``. factor ≥ 0, shape (B,). ``means``: the B×C channel means if already known."""
    x = images if inplace else images.clone()
    f = _col(factor, x)
    if means is None:
        means = x.mean(dim=(2, 3))                                               # B×C
    if x.shape[1] == 3:
        # mean luma = luma of the means, as an elementwise weighted sum in _gray's order (a matrix-vector
        # product ``means @ LUMA`` would be a GEMV whose rounding may depend on the batch size under MKL)
        m = torch.mul(means[:, 0], LUMA[0]).add_(means[:, 1], alpha=LUMA[1]).add_(means[:, 2], alpha=LUMA[2])
    else:
        m = means.mean(dim=1)
    return x.mul_(f).add_((1.0 - f) * m.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_saturation(images: Tensor, factor: Tensor | float, inplace: bool = False,
                      workspace: Workspace | None = None) -> Tensor:
    """Blend with the luma image: ``clamp(f·x + (1−f)·gray, 0, 1)`` (torchvision ``adjust_saturation``).
    No-op for C = 1. factor ≥ 0, shape (B,)."""
    x = images if inplace else images.clone()
    if x.shape[1] != 3:
        return x
    f = _col(factor, x)
    n, _, h, w = x.shape
    gray = _gray(x, out=_ws(workspace, "gray", (n, 1, h, w), x)).mul_(1.0 - f)
    return x.mul_(f).add_(gray).clamp_(0.0, 1.0)


def adjust_hue(images: Tensor, factor: Tensor | float, inplace: bool = False,
               workspace: Workspace | None = None) -> Tensor:
    """Rotate the HSV hue by ``factor`` ∈ [−0.5, 0.5] turns per sample (torchvision ``adjust_hue``).

    A hue rotation keeps max and min of the channels, so instead of a full RGB→HSV→RGB round trip this computes
    6·hue (torchvision's formula and tie-breaking: red, then green, then blue wins a tie for the maximum), shifts
    and wraps it, and writes each channel as ``min + (max − min)·ramp_c(6·hue)`` with ``ramp_R = |h−3|−1``,
    ``ramp_G = 2−|h−2|``, ``ramp_B = 2−|h−4|`` clamped to [0, 1] — algebraically torchvision's ``_hsv_to_rgb``
    (whose p, q, t are min, max − range·f, min + range·f). No-op for C = 1. B×3×H×W → B×3×H×W.
    """
    x = images if inplace else images.clone()
    if x.shape[1] != 3 or x.numel() == 0:
        return x
    n, _, h, w = x.shape
    mx, mn, rng, is_r, is_g, h6, tmp = _ws(workspace, "hue", (7, n, h, w), x).unbind(0)
    r, g, b = x.unbind(dim=1)
    torch.maximum(torch.maximum(r, g, out=mx), b, out=mx)
    torch.minimum(torch.minimum(r, g, out=mn), b, out=mn)
    torch.sub(mx, mn, out=rng)
    _eq_into(mx, r, is_r)                                    # 1.0 where red is the maximum
    _eq_into(mx, g, is_g).sub_(is_r).clamp_(min=0.0)         # 1.0 where green is and red is not
    # 6·hue = (r−g)/range + 4 (blue max) | (b−r)/range + 2 (green max) | (g−b)/range (red max)
    torch.sub(r, g, out=h6)
    h6.lerp_(torch.sub(b, r, out=tmp), is_g)
    h6.lerp_(torch.sub(g, b, out=tmp), is_r)
    h6.div_(_eq_into(rng, 0.0, tmp).add_(rng))               # by the range, or by 1 where grey (h6 = 0)
    shift = (4.0 + 6.0 * _col(factor, x)).view(-1, 1, 1)
    h6.add_(is_r, alpha=-4.0).add_(is_g, alpha=-2.0).add_(shift)  # + offset 4 | 2 | 0, + 6·factor
    h6.sub_(torch.div(h6, 6.0, out=tmp).floor_().mul_(6.0))      # wrap into [0, 6)
    torch.sub(h6, 3.0, out=r).abs_().sub_(1.0).clamp_(0.0, 1.0)
    torch.sub(h6, 2.0, out=g).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)
    torch.sub(h6, 4.0, out=b).abs_().neg_().add_(2.0).clamp_(0.0, 1.0)
    return x.mul_(rng.unsqueeze(1)).add_(mn.unsqueeze(1))


def rgb_to_grayscale(images: Tensor, mask: Tensor | None = None, inplace: bool = False,
                     workspace: Workspace | None = None) -> Tensor:
    """Replace the selected images (bool B; all when ``None``) by their luma, repeated on 3 channels
    (torchvision ``rgb_to_grayscale(num_output_channels=3)``). No-op for C = 1. B×C×H×W → same."""
    x = images if inplace else images.clone()
    if x.shape[1] != 3:
        return x
    n, c, h, w = x.shape
    if mask is not None:
        mask = torch.as_tensor(mask, device=x.device).to(torch.bool).reshape(-1)
        k = int(mask.sum())
        if k == 0:
            return x
        if k < n // 2:                                            # few: work on the selected images only
            idx = mask.nonzero().flatten()
            sub = torch.index_select(x, 0, idx, out=_ws(workspace, "s1", (k, c, h, w), x))
            return x.index_copy_(0, idx, rgb_to_grayscale(sub, inplace=True, workspace=workspace))
    gray = _gray(x, out=_ws(workspace, "gray", (n, 1, h, w), x)).expand_as(x)
    if mask is None:
        return x.copy_(gray)
    return x.lerp_(gray, _col(mask, x))                           # exact select: weight 0 or 1


# --------------------------------------------------------------------------------------------- blur etc.
def default_blur_kernel_size(size: int) -> int:
    """SimCLR's rule: about 10 % of the image side, odd, at least 3 (32 px → 3, 96 px → 9, 224 px → 23)."""
    return max(3, 2 * int(0.05 * size) + 1)


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels B×k for per-sample ``sigma`` (B, > 0) (torchvision's kernel)."""
    half = (kernel_size - 1) / 2.0
    t = torch.linspace(-half, half, kernel_size, device=sigma.device, dtype=torch.float32)
    return torch.softmax(-0.5 * (t[None, :] / sigma.to(torch.float32)[:, None]) ** 2, dim=1)


def _pair_sum(x: Tensor, dim: int, d: int, out: Tensor) -> Tensor:
    """out[j] = x[j − d] + x[j + d] along ``dim`` with reflect boundaries (x[−i] = x[i], x[n−1+i] = x[n−1−i])."""
    n = x.shape[dim]
    torch.add(x.narrow(dim, 0, n - 2 * d), x.narrow(dim, 2 * d, n - 2 * d), out=out.narrow(dim, d, n - 2 * d))
    for j in list(range(d)) + list(range(n - d, n)):
        lo, hi = abs(j - d), j + d
        hi = hi if hi < n else 2 * (n - 1) - hi
        torch.add(x.narrow(dim, lo, 1), x.narrow(dim, hi, 1), out=out.narrow(dim, j, 1))
    return out


def gaussian_blur(images: Tensor, sigma: Tensor, kernel_size: int, mask: Tensor | None = None,
                  inplace: bool = False, workspace: Workspace | None = None) -> Tensor:
    """Gaussian blur with a per-sample ``sigma`` (B, > 0 where blurred) and a fixed odd ``kernel_size``, reflect
    padding, as torchvision ``gaussian_blur(img, [k, k], [σ, σ])``; only where ``mask`` (bool B) is true if given.

    Separable: a horizontal then a vertical pass, each the centre tap times the image plus, for each offset d,
    the symmetric tap times ``x[j−d] + x[j+d]`` (reflected at the border). Equals torchvision's 2-D convolution up
    to float rounding and beats a grouped convolution on CPU for these small kernels. B×C×H×W → B×C×H×W.
    """
    if kernel_size % 2 != 1 or kernel_size < 1:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    out = images if inplace else images.clone()
    p = kernel_size // 2
    if 2 * p >= min(out.shape[-2:]):
        raise ValueError(f"kernel_size {kernel_size} too large for {tuple(out.shape[-2:])} images")
    sigma = torch.as_tensor(sigma, device=out.device, dtype=torch.float32).reshape(-1)
    if sigma.numel() == 1:
        sigma = sigma.expand(out.shape[0])
    idx = None
    if mask is not None:
        mask = torch.as_tensor(mask, device=out.device).to(torch.bool).reshape(-1)
        if not bool(mask.all()):
            idx = mask.nonzero().flatten()
            if idx.numel() == 0:
                return out
            sigma = sigma[idx]
    n = out.shape[0] if idx is None else idx.numel()
    if idx is None:
        x = out
    else:
        x = torch.index_select(out, 0, idx, out=_ws(workspace, "s1", (n, *out.shape[1:]), out))
    taps = gaussian_kernels(sigma, kernel_size).to(x.dtype)      # n×k, symmetric
    acc = _ws(workspace, "s2", x.shape, x)
    pair = _ws(workspace, "s3", x.shape, x)
    src, dst = x, acc
    for dim in (3, 2):                                           # columns (x → acc), then rows (acc → x)
        torch.mul(src, taps[:, p].view(-1, 1, 1, 1), out=dst)
        for d in range(1, p + 1):
            dst.addcmul_(_pair_sum(src, dim, d, pair), taps[:, p - d].view(-1, 1, 1, 1))
        src, dst = dst, src
    if idx is not None:
        out.index_copy_(0, idx, x)
    return out


def solarize(images: Tensor, mask: Tensor | None = None, threshold: float = 0.5,
             inplace: bool = False) -> Tensor:
    """Invert pixels ≥ ``threshold`` (``x → 1 − x``) in the selected images (bool B; all when ``None``);
    torchvision ``solarize``. B×C×H×W → same."""
    x = images if inplace else images.clone()
    if x.device.type == "cpu":
        sel = torch.ge(x, threshold, out=torch.empty_like(x))    # 0/1 floats
    else:
        sel = (x >= threshold).to(x.dtype)
    if mask is not None:
        sel.mul_(_col(mask, x))
    return x.lerp_(torch.sub(1.0, x), sel)                       # exact select: weight 0 or 1
