"""Augmentation settings: the :class:`AugmentConfig` dataclass, its presets and the ``strength`` knob.

Presets (``AugmentConfig.preset(name)`` / ``Augmenter(name)``):

- ``none``: identity (only the uint8 → float conversion and the normalisation).
- ``weak``: horizontal flip only (GPS-SSL's weak augmentation: no crop, no colour).
- ``strong`` (the default of training): SimCLR's recipe calibrated for small objects on 32 px images —
  RandomResizedCrop(scale **0.25**–1, ratio 3/4–4/3), flip 0.5, colour jitter (0.4, 0.4, 0.4, **0.5**: any
  hue) with p 0.8, grayscale p 0.2, **no blur**. On the shapes world the paper's crop (down to 8 % of the image)
  often misses the object, its hue jitter (±0.1 turn) leaves an object's colour identifying it, and blurring a
  32 px image removes the edges that carry shape; with these three changes SimCLR learns shape there (README,
  "Baselines on shapes").
- ``simclr``: SimCLR's recipe as published — RandomResizedCrop(scale 0.08–1, ratio 3/4–4/3), flip 0.5, colour
  jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale p 0.2, Gaussian blur p 0.5 with σ ∈ [0.1, 2]. (The
  :class:`AugmentConfig` field defaults.)
- ``gps-strong``: GPS-SSL's strong augmentation — as ``simclr`` with colour jitter (0.8, 0.8, 0.8, 0.2).

``strength`` s ≥ 0 scales the magnitudes continuously (see :meth:`AugmentConfig.effective`); s = 0 is the
identity and s = 1 is the preset as written.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from gpsviz.errors import ConfigError

__all__ = ["AugmentConfig", "PRESETS", "available_presets", "FAMILY_FIELDS", "ALONE_FAMILIES", "family_config"]


@dataclass(frozen=True)
class AugmentConfig:
    """Every setting of the augmentation pipeline (field defaults = SimCLR's published recipe, preset ``simclr``).

    Ops run in this fixed order: crop → flip → colour jitter (brightness, contrast, saturation, hue) →
    grayscale → blur → solarize → normalise. Probabilities are per sample and independent.
    """

    crop_scale: tuple[float, float] = (0.08, 1.0)  #: area fraction range of the random resized crop, in (0, 1]
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  #: aspect-ratio (w/h) range of the crop box
    crop_p: float = 1.0  #: probability of cropping (otherwise the whole image is kept)
    flip_p: float = 0.5  #: probability of a horizontal flip
    brightness: float = 0.4  #: brightness factor ~ U[max(0, 1 − b), 1 + b]
    contrast: float = 0.4  #: contrast factor ~ U[max(0, 1 − c), 1 + c]
    saturation: float = 0.4  #: saturation factor ~ U[max(0, 1 − s), 1 + s]
    hue: float = 0.1  #: hue shift ~ U[−h, h] turns, h ≤ 0.5
    jitter_p: float = 0.8  #: probability of applying the colour jitter (all four factors together)
    grayscale_p: float = 0.2  #: probability of converting to grayscale (no-op on 1-channel images)
    blur_p: float = 0.5  #: probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.1, 2.0)  #: blur σ ~ U[σ_min, σ_max] (pixels)
    blur_kernel: int | None = None  #: odd kernel size; None = SimCLR's ~10 % of the image side (3 at 32 px)
    solarize_p: float = 0.0  #: probability of solarizing (invert pixels ≥ threshold)
    solarize_threshold: float = 0.5  #: solarize threshold in [0, 1]
    strength: float = 1.0  #: magnitude multiplier ≥ 0 (0 = identity), see :meth:`effective`
    name: str = field(default="custom", compare=False)  #: preset name (for display only)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first impossible field."""
        def num(fname: str) -> float:
            v = getattr(self, fname)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"AugmentConfig.{fname} must be a finite number, got {v!r}")
            return float(v)

        def pair(fname: str) -> tuple[float, float]:
            v = getattr(self, fname)
            ok = isinstance(v, (tuple, list)) and len(v) == 2 and all(
                isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) for e in v)
            if not ok:
                raise ConfigError(f"AugmentConfig.{fname} must be a pair of numbers (low, high), got {v!r}")
            lo, hi = float(v[0]), float(v[1])
            if lo > hi:
                raise ConfigError(f"AugmentConfig.{fname} must have low <= high, got {v!r}")
            return lo, hi

        for fname in ("crop_p", "flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            p = num(fname)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"AugmentConfig.{fname} is a probability and must lie in [0, 1], got {p}")
        for fname in ("brightness", "contrast", "saturation", "hue", "strength"):
            if num(fname) < 0:
                raise ConfigError(f"AugmentConfig.{fname} must be >= 0 (0 switches it off), "
                                  f"got {getattr(self, fname)}")
        if self.hue > 0.5:
            raise ConfigError(f"AugmentConfig.hue must be <= 0.5 (a hue shift of half a turn), got {self.hue}")
        lo, hi = pair("crop_scale")
        if not (0.0 < lo and hi <= 1.0):
            raise ConfigError(f"AugmentConfig.crop_scale must lie in (0, 1] (fractions of the image area), "
                              f"got {self.crop_scale!r}")
        lo, hi = pair("crop_ratio")
        if lo <= 0:
            raise ConfigError(f"AugmentConfig.crop_ratio must be positive, got {self.crop_ratio!r}")
        lo, hi = pair("blur_sigma")
        if lo <= 0:
            raise ConfigError(f"AugmentConfig.blur_sigma must be positive, got {self.blur_sigma!r}")
        k = self.blur_kernel
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0):
            raise ConfigError(f"AugmentConfig.blur_kernel must be None or an odd positive integer, got {k!r}")
        t = num("solarize_threshold")
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"AugmentConfig.solarize_threshold must lie in [0, 1], got {t}")

    # ------------------------------------------------------------------ presets and strength
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "AugmentConfig":
        """The named preset (``none``, ``weak``, ``strong``, ``simclr``, ``gps-strong``), optionally with fields
        overridden."""
        key = str(name).lower().replace("_", "-")
        if key not in PRESETS:
            raise ConfigError(f"unknown augmentation preset {name!r}; choose one of {available_presets()} "
                              f"or pass an AugmentConfig")
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(overrides) - fields)
        if bad:
            raise ConfigError(f"unknown AugmentConfig field(s) {bad}; valid fields: {sorted(fields)}")
        return cls(**{**PRESETS[key], "name": key, **overrides})

    def replace(self, **changes: Any) -> "AugmentConfig":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def effective(self) -> "AugmentConfig":
        """The config with ``strength`` folded into the magnitudes (returned with ``strength = 1``).

        With s = strength and s₁ = min(s, 1):

        - colour jitter strengths b, c, s × s (hue × s, clipped to 0.5);
        - crop: smallest area ``lo' = hi − s·(hi − lo)`` (clipped to ≥ 0.01), log aspect-ratio bounds × s
          (so s → 0 moves the crop towards the whole image);
        - probabilities of grayscale, blur and solarize × s (clipped to 1);
        - probabilities of crop, flip and jitter × s₁ (they fade out below 1 and stay as written above 1);
        - blur σ range, thresholds and kernel unchanged. s = 0 switches everything off (identity).
        """
        s = float(self.strength)
        s1 = min(s, 1.0)
        lo, hi = self.crop_scale
        r0, r1 = self.crop_ratio
        return dataclasses.replace(
            self,
            crop_scale=(min(hi, max(0.01, hi - s * (hi - lo))), hi),
            crop_ratio=(math.exp(s * math.log(r0)), math.exp(s * math.log(r1))),
            crop_p=self.crop_p * s1,
            flip_p=self.flip_p * s1,
            brightness=self.brightness * s,
            contrast=self.contrast * s,
            saturation=self.saturation * s,
            hue=min(0.5, self.hue * s),
            jitter_p=self.jitter_p * s1,
            grayscale_p=min(1.0, self.grayscale_p * s),
            blur_p=min(1.0, self.blur_p * s),
            solarize_p=min(1.0, self.solarize_p * s),
            strength=1.0,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict of the fields (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AugmentConfig":
        """Inverse of :meth:`to_dict` (unknown keys raise :class:`ConfigError`)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - set(fields))
        if bad:
            raise ConfigError(f"unknown AugmentConfig field(s) {bad}; valid fields: {sorted(fields)}")
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**kw)


_OFF: dict[str, Any] = dict(crop_p=0.0, flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)

#: Preset name → field values (anything not named keeps the dataclass default, SimCLR's published recipe).
PRESETS: dict[str, dict[str, Any]] = {
    "none": dict(_OFF),
    "weak": {**_OFF, "flip_p": 0.5},
    "strong": dict(crop_scale=(0.25, 1.0), hue=0.5, blur_p=0.0),
    "simclr": {},
    "gps-strong": dict(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2),
}


def available_presets() -> list[str]:
    """Names accepted by :meth:`AugmentConfig.preset` and :class:`~gpsviz.augment.Augmenter`."""
    return list(PRESETS)


#: Augmentation families and the AugmentConfig probabilities that switch each on (:func:`family_config`).
FAMILY_FIELDS: dict[str, tuple[str, ...]] = {"crop": ("crop_p",), "flip": ("flip_p",), "colour": ("jitter_p",),
                                             "grayscale": ("grayscale_p",), "blur": ("blur_p",),
                                             "solarize": ("solarize_p",)}
#: The families :func:`family_config` can apply alone at a chosen magnitude (``always=True``).
ALONE_FAMILIES = ("crop", "flip", "colour", "grayscale", "blur")


def _check_strength(strength: float) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) \
            or not 0 <= strength <= 4:
        raise ConfigError(f"strength={strength!r} is impossible: it must be a number in [0, 4] (0 = identity, "
                          f"1 = the preset's magnitude)")
    return float(strength)


def family_config(family: str | Sequence[str], strength: float = 1.0, base: str | AugmentConfig = "strong", *,
                  always: bool = True) -> AugmentConfig | None:
    """The augmentation of ``base`` (a preset name or an AugmentConfig) restricted to some families: the one
    definition of "one augmentation family" (CASSLE's sensitivity, Dubois et al.'s invariance per family).

    ``always=True`` (sensitivity): **one** family of :data:`ALONE_FAMILIES`, applied to every view (probability
    1); ``strength`` scales its magnitude as :meth:`AugmentConfig.effective` does — crop: smallest crop area
    ``1 − s·(1 − lo)``; colour: jitter strengths × s (hue clipped to 0.5); blur: σ range × s; flip and grayscale
    are all-or-nothing, so s is their probability (clipped to 1). ``s = 0`` is the identity.

    ``always=False`` (invariance): one family or several (e.g. ``("colour", "grayscale")``) of
    :data:`FAMILY_FIELDS`, or ``"all"`` (the base unchanged), with the base's own probabilities and its strength
    × ``strength``; the other families off. None when the base never applies any of them."""
    s = _check_strength(strength)
    cfg = AugmentConfig.preset(base) if isinstance(base, str) else base
    names = (family,) if isinstance(family, str) else tuple(family)
    known = ALONE_FAMILIES if always else (*FAMILY_FIELDS, "all")
    bad = [f for f in names if f not in known]
    if bad or not names or (always and len(names) != 1) or ("all" in names and len(names) > 1):
        raise ConfigError(f"augmentation family {family!r} is unknown here; choose "
                          f"{'one' if always else 'one or more'} of {', '.join(known)}")
    off = {f: 0.0 for fields in FAMILY_FIELDS.values() for f in fields}
    if not always:
        cfg = cfg.replace(strength=cfg.strength * s)
        if names == ("all",):
            return cfg
        eff = cfg.effective()
        if not any(getattr(eff, f) > 0 for n in names for f in FAMILY_FIELDS[n]):
            return None
        return cfg.replace(**{f: v for f, v in off.items() if not any(f in FAMILY_FIELDS[n] for n in names)})
    off_cfg = cfg.replace(**off, strength=1.0)
    name = names[0]
    if s == 0:
        return off_cfg
    if name == "crop":
        return off_cfg.replace(crop_p=1.0, strength=s).effective().replace(crop_p=1.0)
    if name == "colour":
        return off_cfg.replace(jitter_p=1.0, strength=s).effective().replace(jitter_p=1.0)
    if name == "blur":
        lo, hi = cfg.blur_sigma
        return off_cfg.replace(blur_p=1.0, blur_sigma=(lo * s, hi * s))
    if name == "flip":
        return off_cfg.replace(flip_p=min(1.0, s))
    return off_cfg.replace(grayscale_p=min(1.0, s))                  # grayscale
