"""The parameters of a batch of views (:class:`AugParams`) and the CASSLE descriptor built from them."""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["PARAM_NAMES", "AugParams", "cassle_descriptor", "DESCRIPTOR_NAMES"]

#: Columns of ``AugParams.values`` (fixed order, see docs/interfaces.md):
#: crop box in source pixels; flip/jitter/grayscale/solarize flags (0/1); the jitter factors actually used
#: (1, 1, 1, 0 when jitter was not applied; hue in turns, as torchvision); blur σ (0 = no blur); per-channel mean
#: of the view just before the colour jitter minus just after it (0 when the jitter was not applied; grayscale, which
#: follows the jitter, is not included: it has its own flag; channels a 1-channel image lacks are 0), as CASSLE's
#: reference (gmum/CASSLE, ``ColorJitter.apply_transform``).
PARAM_NAMES: tuple[str, ...] = (
    "crop_y", "crop_x", "crop_h", "crop_w", "flip", "jitter", "brightness", "contrast", "saturation", "hue",
    "grayscale", "blur_sigma", "solarize", "mean_diff_0", "mean_diff_1", "mean_diff_2",
)
_COL = {n: i for i, n in enumerate(PARAM_NAMES)}

#: Columns of :func:`cassle_descriptor` (14). ``hue_cos`` = cos(2π·h) − 1 and ``hue_sin`` = sin(2π·h) code the hue
#: shift h (turns) as an angle; see :func:`cassle_descriptor`.
DESCRIPTOR_NAMES: tuple[str, ...] = (
    "centre_y", "centre_x", "height", "width", "brightness", "contrast", "saturation", "hue_cos", "hue_sin",
    "mean_diff_0", "mean_diff_1", "mean_diff_2", "blur_sigma", "grayscale",
)


@dataclass
class AugParams:
    """Per-view augmentation parameters: ``values`` float32 B×P with columns ``names`` (= ``PARAM_NAMES``).

    ``params["flip"]`` → the B column; ``params[idx]`` (int, slice, int64 or bool tensor) → the row subset as a
    new AugParams; ``len(params)`` = B; ``.to(device)``; ``.to_dict()`` → {name: B tensor}.
    """

    values: Tensor
    names: tuple[str, ...] = PARAM_NAMES

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(f"AugParams.values must be B×{len(self.names)}, got {tuple(self.values.shape)}")

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, key: str | int | slice | Tensor | Sequence[int]) -> "Tensor | AugParams":
        if isinstance(key, str):
            try:
                return self.values[:, self.names.index(key)]
            except ValueError:
                raise KeyError(f"no augmentation parameter {key!r}; names: {list(self.names)}") from None
        if isinstance(key, Tensor) and key.ndim == 0:
            key = int(key)
        if not isinstance(key, (slice, Tensor, list, tuple)) and hasattr(key, "__index__"):
            i = operator.index(key)                                    # int-like: keep a 1-row AugParams
            key = slice(i, i + 1 if i != -1 else None)
        if isinstance(key, Tensor):
            key = key.to(self.values.device)
        return AugParams(self.values[key], self.names)

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device: str | torch.device) -> "AugParams":
        """The same parameters on ``device``."""
        return AugParams(self.values.to(device), self.names)

    def clone(self) -> "AugParams":
        return AugParams(self.values.clone(), self.names)

    def to_dict(self) -> dict[str, Tensor]:
        """{name: column tensor (B,)} in column order."""
        return {n: self.values[:, i] for i, n in enumerate(self.names)}

    def row(self, i: int) -> dict[str, float]:
        """Sample ``i``'s parameters as plain floats (for display)."""
        v = self.values[i].detach().cpu().tolist()
        return dict(zip(self.names, v))

    @staticmethod
    def cat(parts: Iterable["AugParams"]) -> "AugParams":
        """Concatenate along the batch (e.g. the parameters of view 1 and view 2 of a batch)."""
        parts = list(parts)
        return AugParams(torch.cat([p.values for p in parts]), parts[0].names)

    def __repr__(self) -> str:
        return f"AugParams(B={len(self)}, names={list(self.names)})"


def cassle_descriptor(params: AugParams, image_size: int | tuple[int, int],
                      jitter_ranges: Sequence[float] = (0.4, 0.4, 0.4, 0.1)) -> Tensor:
    """CASSLE's 14-d augmentation descriptor per view (methods.md, CASSLE step 1). Returns float32 B×14.

    Columns (``DESCRIPTOR_NAMES``): crop centre y, x as fractions of the image (x mirrored to 1 − x when the
    view is flipped), crop height and width fractions; (b − 1)/range_b, (c − 1)/range_c, (s − 1)/range_s
    (0 when jitter was not applied; ``jitter_ranges`` = the jitter strengths of the augmenter, a zero range counts
    as 1); the hue shift h (turns) as an angle code cos(2π·h) − 1, sin(2π·h); per-channel mean before minus after
    the colour jitter (3; 0 when it was not applied); blur σ (0 = none); grayscale (0/1). ``image_size``: side
    length or (H, W) of the source images.

    Hue: under a full-turn jitter (range 0.5) h = −0.5 and h = +0.5 are the same colour, so h/range would put one
    colour at both ends of a column; the angle code is continuous around the circle (±0.5 give the same code). It
    is written (cos − 1, sin) rather than (cos, sin) so that h = 0 codes as (0, 0), the same as "jitter not
    applied" (h is recorded as 0 then): the code is a function of the hue rotation actually made, and every
    colour column is 0 for the identity, so the clean image's descriptor (the "no augmentation" one that the
    sensitivity analysis gives a conditioned head) is unchanged, and a jitter whose factors are all neutral codes
    as no jitter, as the brightness/contrast/saturation columns already did. (With (cos, sin), "no jitter" would be
    (0, 0), a point off the circle, and a jittered view with h ≈ 0 would sit at (1, 0), far from the un-jittered
    view it practically equals.) The hue code does not use ``jitter_ranges[3]`` (an angle needs no range).
    """
    h_img, w_img = (image_size, image_size) if isinstance(image_size, int) else image_size
    v = params.values.to(torch.float32)
    c = lambda name: v[:, _COL[name]]  # noqa: E731
    cy = (c("crop_y") + c("crop_h") / 2) / h_img
    cx = (c("crop_x") + c("crop_w") / 2) / w_img
    cx = torch.where(c("flip") > 0.5, 1.0 - cx, cx)
    rng = [float(r) if float(r) > 0 else 1.0 for r in jitter_ranges]
    on = (c("jitter") > 0.5).to(v.dtype)
    angle = (2.0 * math.pi) * c("hue") * on                   # turns → radians; 0 when the jitter was off
    colour = [
        (c("brightness") - 1) / rng[0] * on,
        (c("contrast") - 1) / rng[1] * on,
        (c("saturation") - 1) / rng[2] * on,
        torch.cos(angle) - 1.0,
        torch.sin(angle),
    ]
    cols = [cy, cx, c("crop_h") / h_img, c("crop_w") / w_img, *colour,
            c("mean_diff_0"), c("mean_diff_1"), c("mean_diff_2"), c("blur_sigma"), c("grayscale")]
    return torch.stack(cols, dim=1)
