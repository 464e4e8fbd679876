"""The batched augmentation pipeline: :class:`Augmenter` makes every view of a batch in one call.

Usage::

    aug = Augmenter("strong", strength=1.0)          # or Augmenter(AugmentConfig(...))
    views, params = aug(images_uint8, generator=g)    # B×C×H×W float32 normalised, AugParams B×16
    again = aug.apply(images_uint8, params)           # deterministic replay: equals ``views``

Order of the ops (fixed): crop → flip → colour jitter (brightness, contrast, saturation, hue — always this
order, unlike torchvision's ColorJitter which permutes them) → grayscale → blur → solarize → normalise.
Every sample's random draws come from a single ``torch.rand(B, 33, generator=g)`` call on the generator's
device (CPU by default), so a seed fixes the views whatever the images' device and whatever the preset.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from gpsviz.augment import ops
from gpsviz.augment.config import AugmentConfig
from gpsviz.augment.params import _COL, PARAM_NAMES, AugParams, cassle_descriptor
from gpsviz.errors import ConfigError, DataError
from gpsviz.features import DEFAULT_MEAN, DEFAULT_STD, check_stats, normalize, to_float, unnormalize

__all__ = ["Augmenter", "DEFAULT_MEAN", "DEFAULT_STD", "N_DRAWS"]

N_DRAWS = 33  #: uniform numbers drawn per sample (10 crop attempts × 2, crop position 2, 11 for the rest)
_ATTEMPTS = 10  #: RandomResizedCrop's rejection-sampling attempts (as torchvision)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise DataError(f"images must be a B×C×H×W tensor, got {shape}; add a batch dimension with "
                        f"images.unsqueeze(0) for a single image")
    if images.shape[1] not in (1, 3):
        raise DataError(f"images must have 1 or 3 channels (B×C×H×W), got C={images.shape[1]}")
    if not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise DataError(f"images must be uint8 (0–255) or float in [0, 1], got dtype {images.dtype}")


class Augmenter:
    """Batched, per-sample-random augmentation that returns the views and their parameters.

    ``preset``: a preset name (``none``, ``weak``, ``strong``, ``simclr``, ``gps-strong``) or an :class:`AugmentConfig`;
    ``strength`` multiplies the config's own ``strength`` (see :meth:`AugmentConfig.effective`);
    ``mean``/``std``: normalisation (float or one value per channel; default 0.5 / 0.25).

    Images: uint8 (0–255) or float in [0, 1], B×C×H×W with C = 1 or 3, on any device; views come back on that
    device, float32, same size. On 1-channel images saturation, hue and grayscale are no-ops and their
    parameters are recorded as neutral (1, 0, 0). ``AugParams`` columns (``PARAM_NAMES``): the crop box in
    source pixels (the whole image when not cropped), 0/1 flags, the jitter factors used (1, 1, 1, 0 when the
    jitter was not applied), blur σ (0 = none), and ``mean_diff_c`` = channel mean of the cropped view just before
    the colour jitter minus just after it (0 when the jitter was not applied, 0 for channels the images lack;
    grayscale, which follows the jitter, is not included), as CASSLE's reference.
    An Augmenter keeps scratch buffers between calls: use one instance per thread.
    """

    def __init__(self, preset: str | AugmentConfig = "strong", strength: float = 1.0,
                 mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None):
        if isinstance(preset, AugmentConfig):
            cfg = preset
        elif isinstance(preset, str):
            cfg = AugmentConfig.preset(preset)
        else:
            raise ConfigError(f"augmentation must be a preset name or an AugmentConfig, got {type(preset).__name__}")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not strength >= 0 \
                or not math.isfinite(strength):
            raise ConfigError(f"strength must be a finite number >= 0 (0 = identity), got {strength!r}")
        self.config: AugmentConfig = cfg.replace(strength=cfg.strength * float(strength))
        self.effective: AugmentConfig = self.config.effective()
        self._workspace = ops.Workspace()                                 # scratch memory reused per call
        self.mean = DEFAULT_MEAN if mean is None else mean
        self.std = DEFAULT_STD if std is None else std
        check_stats(self.mean, self.std)

    def __repr__(self) -> str:
        return f"Augmenter({self.config.name!r}, strength={self.config.strength:g})"

    # ------------------------------------------------------------------ public API
    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, AugParams]:
        """Augment a batch: uint8 or float [0, 1] B×C×H×W → (float32 B×C×H×W normalised views, AugParams B×16)."""
        _check_images(images)
        b, c, h, w = images.shape
        return self.augment(images, self.sample(b, (c, h, w), generator))

    def augment(self, images: Tensor, params: AugParams) -> tuple[Tensor, AugParams]:
        """Augment with parameters drawn by :meth:`sample` (e.g. drawn for a whole global batch, applied to one
        process's share): → (views, a copy of ``params`` on the images' device with ``mean_diff`` measured)."""
        _check_images(images)
        if len(params) != images.shape[0]:
            raise DataError(f"got {len(params)} parameter rows for {images.shape[0]} images")
        c = images.shape[1]
        params = AugParams(params.values.to(images.device, copy=True), params.names)
        views, mean_diff = self._apply(images, params.values)
        params.values[:, _COL["mean_diff_0"]:_COL["mean_diff_0"] + c] = mean_diff
        return views, params

    def apply(self, images: Tensor, params: AugParams) -> Tensor:
        """Re-apply given parameters (deterministic replay): B×C×H×W → normalised float32 B×C×H×W."""
        _check_images(images)
        if len(params) != images.shape[0]:
            raise DataError(f"got {len(params)} parameter rows for {images.shape[0]} images")
        return self._apply(images, params.values.to(images.device))[0]

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 / float [0, 1] B×C×H×W → normalised float32 B×C×H×W, without augmentation."""
        _check_images(images)
        return normalize(to_float(images), self.mean, self.std, inplace=True)

    def descriptor(self, params: AugParams, image_size: int | tuple[int, int]) -> Tensor:
        """CASSLE descriptor B×14 of ``params`` with this augmenter's jitter strengths as ranges."""
        e = self.effective
        return cassle_descriptor(params, image_size, (e.brightness, e.contrast, e.saturation, e.hue))

    def unnormalize(self, views: Tensor) -> Tensor:
        """Inverse of the normalisation: B×C×H×W views → float in [0, 1] (clamped), for display
        (:func:`gpsviz.features.unnormalize` with this augmenter's mean and std)."""
        return unnormalize(views, self.mean, self.std)

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, image_shape: tuple[int, int, int],
               generator: torch.Generator | None = None) -> AugParams:
        """Draw the parameters of ``n`` views of C×H×W images (``image_shape``). Returns AugParams on CPU
        with ``mean_diff`` = 0 (it is measured when the ops run)."""
        cfg = self.effective
        c, h, w = image_shape
        dev = generator.device if generator is not None else torch.device("cpu")
        u = torch.rand(n, N_DRAWS, generator=generator, device=dev).cpu().double()
        out = torch.zeros(n, len(PARAM_NAMES), dtype=torch.float64)

        # crop box: torchvision's RandomResizedCrop.get_params, all attempts of all samples at once
        a = _ATTEMPTS
        lo, hi = cfg.crop_scale
        r0, r1 = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
        area = h * w * (lo + u[:, :a] * (hi - lo))
        ratio = torch.exp(r0 + u[:, a:2 * a] * (r1 - r0))
        cw = torch.round(torch.sqrt(area * ratio))
        ch = torch.round(torch.sqrt(area / ratio))
        valid = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)
        ch, cw = ch.gather(1, first)[:, 0], cw.gather(1, first)[:, 0]
        in_ratio = w / h                                               # fallback: central crop
        if in_ratio < cfg.crop_ratio[0]:
            fw, fh = w, round(w / cfg.crop_ratio[0])
        elif in_ratio > cfg.crop_ratio[1]:
            fw, fh = round(h * cfg.crop_ratio[1]), h
        else:
            fw, fh = w, h
        ok = valid.any(dim=1)
        ch = torch.where(ok, ch, torch.full_like(ch, fh))
        cw = torch.where(ok, cw, torch.full_like(cw, fw))
        top = torch.minimum(torch.floor(u[:, 2 * a] * (h - ch + 1)), h - ch)
        left = torch.minimum(torch.floor(u[:, 2 * a + 1] * (w - cw + 1)), w - cw)
        top = torch.where(ok, top, torch.div(h - ch, 2, rounding_mode="floor"))
        left = torch.where(ok, left, torch.div(w - cw, 2, rounding_mode="floor"))
        crop = u[:, 2 * a + 2] < cfg.crop_p
        out[:, 0] = torch.where(crop, top, 0.0)
        out[:, 1] = torch.where(crop, left, 0.0)
        out[:, 2] = torch.where(crop, ch, float(h))
        out[:, 3] = torch.where(crop, cw, float(w))

        k = 2 * a + 3                                                  # the remaining 10 draws
        out[:, 4] = (u[:, k] < cfg.flip_p).double()
        jit = u[:, k + 1] < cfg.jitter_p
        out[:, 5] = jit.double()
        for j, (col, strength) in enumerate((("brightness", cfg.brightness), ("contrast", cfg.contrast),
                                             ("saturation", cfg.saturation))):
            if col == "saturation" and c != 3:
                strength = 0.0                                         # no saturation on 1 channel
            f_lo, f_hi = max(0.0, 1.0 - strength), 1.0 + strength
            out[:, _COL[col]] = torch.where(jit, f_lo + u[:, k + 2 + j] * (f_hi - f_lo), 1.0)
        hue = cfg.hue if c == 3 else 0.0
        out[:, _COL["hue"]] = torch.where(jit, (2.0 * u[:, k + 5] - 1.0) * hue, 0.0)
        out[:, _COL["grayscale"]] = ((u[:, k + 6] < cfg.grayscale_p) & (c == 3)).double()
        s0, s1 = cfg.blur_sigma
        out[:, _COL["blur_sigma"]] = torch.where(u[:, k + 7] < cfg.blur_p, s0 + u[:, k + 8] * (s1 - s0), 0.0)
        out[:, _COL["solarize"]] = (u[:, k + 9] < cfg.solarize_p).double()
        return AugParams(out.to(torch.float32))

    # ------------------------------------------------------------------ the ops
    def _blur_kernel(self, h: int, w: int) -> int:
        k = self.effective.blur_kernel or ops.default_blur_kernel_size(min(h, w))
        while k > 1 and k > min(h, w):                                  # the kernel must fit in the image
            k -= 2
        return k

    def _apply(self, images: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Run the ops with parameter rows ``v`` (B×16, on the images' device).
        Returns (normalised float32 views B×C×H×W, per-channel mean before − after the colour jitter B×C, 0 where
        the jitter was not applied)."""
        b, c, h, w = images.shape
        dev = images.device
        if b == 0:
            return torch.zeros(0, c, h, w, device=dev), torch.zeros(0, c, device=dev)
        ws = self._workspace
        col = lambda name: v[:, _COL[name]]  # noqa: E731
        flip = col("flip") > 0.5
        jit = col("jitter") > 0.5
        gray = (col("grayscale") > 0.5) & (c == 3)
        sigma = col("blur_sigma")
        bright = torch.where(jit, col("brightness"), 1.0)
        any_jit, any_gray = bool(jit.any()), bool(gray.any())

        # 1. crop + flip, with the uint8 → [0, 1] scaling and the brightness factor folded into the weights
        unit = 1.0 / 255.0 if images.dtype == torch.uint8 else 1.0
        full = (col("crop_y") == 0) & (col("crop_x") == 0) & (col("crop_h") == h) & (col("crop_w") == w)
        if not bool(full.all()):
            out = ops.resized_crop(images, col("crop_y"), col("crop_x"), col("crop_h"), col("crop_w"), flip=flip,
                                   scale=bright * unit, workspace=ws)
        else:
            out = torch.empty(b, c, h, w, device=dev).copy_(images)
            if any_jit or unit != 1.0:
                out.mul_((bright * unit).view(-1, 1, 1, 1))
            if bool(flip.any()):
                idx = flip.nonzero().flatten()
                out.index_copy_(0, idx, out.index_select(0, idx).flip(-1))
        x = out

        # 2. colour jitter: brightness (applied above, clamped here), contrast, saturation, hue; 3. grayscale.
        # mean_diff is measured around the jitter alone (CASSLE's reference): before = the crop's channel means
        # (brightness folded into the crop is divided out), after = the means once hue is applied, before grayscale
        mean_diff = torch.zeros(b, c, device=dev)
        if any_jit:
            means = x.mean(dim=(2, 3))                                     # B×C, after brightness
            before = means / torch.where(bright > 0, bright, 1.0)[:, None]
            zero_b = bright <= 0
            if bool(zero_b.any()):                                         # brightness 0: recompute the mean
                idx = zero_b.nonzero().flatten()
                raw = ops.resized_crop(images.index_select(0, idx), col("crop_y")[idx], col("crop_x")[idx],
                                       col("crop_h")[idx], col("crop_w")[idx], flip=flip[idx],
                                       scale=torch.full((idx.numel(),), unit, device=dev))
                before[idx] = raw.mean(dim=(2, 3))
            if bool((bright > 1).any()):
                x.clamp_(0.0, 1.0)
                means = x.mean(dim=(2, 3))
            con, sat, hue = col("contrast"), col("saturation"), col("hue")
            if bool((con != 1).any()):
                ops.adjust_contrast(x, con, inplace=True, means=means)
            if c == 3 and bool((sat != 1).any()):
                ops.adjust_saturation(x, sat, inplace=True, workspace=ws)
            sel = (hue != 0) & jit
            if c == 3 and bool(sel.all()):
                ops.adjust_hue(x, hue, inplace=True, workspace=ws)
            elif c == 3 and bool(sel.any()):                               # only the jittered samples
                idx = sel.nonzero().flatten()
                sub = torch.index_select(x, 0, idx, out=ws.get("s1", (idx.numel(), c, h, w), x))
                x.index_copy_(0, idx, ops.adjust_hue(sub, hue[idx], inplace=True, workspace=ws))
            mean_diff = (before - x.mean(dim=(2, 3))).mul_(jit[:, None])   # exactly 0 where not jittered
        if any_gray:
            ops.rgb_to_grayscale(x, gray, inplace=True, workspace=ws)

        # 4. blur, 5. solarize, 6. normalise
        blur = sigma > 0
        if bool(blur.any()):
            ops.gaussian_blur(x, sigma, self._blur_kernel(h, w), mask=blur, inplace=True, workspace=ws)
        sol = col("solarize") > 0.5
        if bool(sol.any()):
            ops.solarize(x, sol, threshold=self.effective.solarize_threshold, inplace=True)
        return normalize(x, self.mean, self.std, inplace=True), mean_diff
