"""The procedural shapes world: 10 shape classes with known generative factors, generated vectorised in torch.

Every image holds one object (the label) drawn over a background, optionally with distractors (``clutter``).
Two named worlds (``variant``, :data:`WORLD_VARIANTS`):

- ``"plain"`` (default): plain, nearly grey backgrounds (saturation 0–0.25) and larger objects (radius 0.22–0.33
  of the side). Built so that, under the default ``strong`` augmentation, the object's shape is the cheapest cue
  that tells two images apart: SimCLR learns shape here.
- ``"textured"``: the shortcut world (the default before 2026-11-25; same seed ⇒ same images): plain, gradient,
  stripes or noise backgrounds with their own colour, smaller objects (radius 0.16–0.28). A background pattern
  identifies its image and survives cropping and colour jitter, so instance discrimination uses it instead of
  shape (feature suppression).

Coordinates are continuous pixel units: pixel ``j`` covers ``[j, j+1)``, its centre is ``j + 0.5``; ``x`` runs
left→right, ``y`` top→bottom.

Recorded per image (all N-long tensors in ``ImageDataset.factors``):

=================  =======  ==============================================================================
``colour``         int64    foreground hue bin (names in ``factor_classes["colour"]``)
``bg_kind``        int64    background kind (plain / gradient / stripes / noise; other kinds if shifted;
                            always plain in the "plain" world)
``bg_colour``      int64    background hue bin (always ≥ 2 bins away from ``colour``: contrast)
``position``       int64    3×3 grid cell of the object centre, ``row * 3 + col`` ("top-left" ... "bottom-right")
``n_distractors``  int64    number of distractor blobs / line fragments
``pos_x, pos_y``   float32  object centre in pixels
``scale``          float32  object radius as a fraction of the image side (plain 0.22–0.33, textured 0.16–0.28)
``rotation``       float32  degrees in [0, 360)
``box_x0 … y1``    float32  pixel box of the object mask: columns ``[box_x0, box_x1)``, rows ``[box_y0, box_y1)``
=================  =======  ==============================================================================

``masks`` (bool N×H×W) is the object's pixel mask (coverage ≥ 0.5, distractors excluded).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gpsviz.data.core import ImageDataset
from gpsviz.errors import DataError
from gpsviz.utils import make_generator

SHAPE_CLASSES: list[str] = ["circle", "square", "triangle", "cross", "star",
                            "ring", "crescent", "diamond", "heart", "arrow"]
POSITION_NAMES: list[str] = ["top-left", "top-centre", "top-right", "middle-left", "centre",
                             "middle-right", "bottom-left", "bottom-centre", "bottom-right"]
# Foreground hue bins (degrees) and their names; the "shifted" source domain uses other hues, pastel colours.
HUES: list[float] = [0.0, 30.0, 58.0, 120.0, 180.0, 225.0, 275.0, 325.0]
HUE_NAMES: list[str] = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink"]
SHIFT_HUES: list[float] = [15.0, 45.0, 90.0, 150.0, 200.0, 245.0, 300.0, 345.0]
SHIFT_HUE_NAMES: list[str] = ["vermilion", "amber", "lime", "teal", "azure", "indigo", "magenta", "rose"]
BG_KINDS: list[str] = ["plain", "gradient", "stripes", "noise"]
SHIFT_BG_KINDS: list[str] = ["checker", "radial", "dots", "grain"]
SCALE_RANGE = (0.16, 0.28)  # object radius range of the "textured" world, fraction of the image side
MAX_DISTRACTORS = 8
D_LEN = (0.12, 0.30)  # distractor line length, fraction of the image side
D_WIDTH = (0.04, 0.09)  # distractor disc radius (line half-width = 0.45 of it), fraction of the image side


@dataclass(frozen=True)
class WorldVariant:
    """The nuisance factors of one named world (see :data:`WORLD_VARIANTS`).

    ``bg_kinds``: indices into ``BG_KINDS`` the background is drawn from (uniformly); ``scale_range``: object
    radius range as a fraction of the image side; ``rotation``: width in degrees of the rotation range (360 =
    any rotation, else centred on upright); ``bg_saturation``: saturation range of the background colour.
    """

    bg_kinds: tuple[int, ...] = (0,)
    scale_range: tuple[float, float] = (0.16, 0.28)
    rotation: float = 360.0
    bg_saturation: tuple[float, float] = (0.25, 0.75)
    description: str = ""


#: Named worlds. ``plain`` is the default (the textbook lesson: with strong augmentation SimCLR learns shape);
#: ``textured`` is the shortcut world (feature suppression: SimCLR learns colour and background, not shape).
WORLD_VARIANTS: dict[str, WorldVariant] = {
    "plain": WorldVariant(bg_kinds=(0,), scale_range=(0.22, 0.33), rotation=360.0, bg_saturation=(0.0, 0.25),
                          description="plain, nearly grey backgrounds, larger objects (the default)"),
    "textured": WorldVariant(bg_kinds=(0, 1, 2, 3), scale_range=SCALE_RANGE, rotation=360.0,
                             description="plain / gradient / stripes / noise backgrounds, small objects "
                                         "(the shortcut world)"),
}
DEFAULT_VARIANT = "plain"


def world_variant(name: str) -> WorldVariant:
    """The :class:`WorldVariant` named ``name`` (unknown → DataError listing the names)."""
    key = str(name).strip().lower()
    if key not in WORLD_VARIANTS:
        raise DataError(f"shapes: unknown variant {name!r}; choose one of {', '.join(WORLD_VARIANTS)}")
    return WORLD_VARIANTS[key]


_SUPERSAMPLE = 2
_CHUNK = 4096


# ----------------------------------------------------------------------------------------------- colour helpers
def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV → RGB. ``h`` in degrees, ``s, v`` in [0, 1], all shape (...); returns (..., 3) float in [0, 1]."""
    h = torch.remainder(h, 360.0) / 60.0
    k = torch.stack([torch.remainder(5.0 + h, 6.0), torch.remainder(3.0 + h, 6.0), torch.remainder(1.0 + h, 6.0)], -1)
    f = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v.unsqueeze(-1) * (1.0 - s.unsqueeze(-1) * f)


# ------------------------------------------------------------------------------------------ shape inside tests
def _radial_polygon(x: torch.Tensor, y: torch.Tensor, radii: list[float], offset_deg: float) -> torch.Tensor:
    """Inside test for a polygon that is star-shaped around the origin with vertices at equal angular steps.

    Vertex ``k`` sits at angle ``offset + k·360/m`` and radius ``radii[k]``. A point lies inside iff it is on the
    inner side of the edge of its angular sector. ``x, y``: any shape; returns bool of that shape.
    """
    m = len(radii)
    step = 2 * math.pi / m
    off = math.radians(offset_deg)
    ang = torch.tensor([off + k * step for k in range(m)], dtype=x.dtype)
    r = torch.tensor(radii, dtype=x.dtype)
    vx, vy = r * torch.cos(ang), r * torch.sin(ang)
    k = torch.floor(torch.remainder(torch.atan2(y, x) - off, 2 * math.pi) / step).long().clamp_(0, m - 1)
    k2 = (k + 1) % m
    ax, ay, bx, by = vx[k], vy[k], vx[k2], vy[k2]
    return (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0


def _inside(cls: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Inside test of shape class ``cls`` in unit object coordinates (the shape fits in the unit disc).

    ``y`` points down in the image, so "up" is negative y. Returns bool with the shape of ``x``.
    """
    name = SHAPE_CLASSES[cls]
    rr = x * x + y * y
    if name == "circle":
        return rr <= 0.85 ** 2
    if name == "square":
        return _radial_polygon(x, y, [0.95] * 4, 45.0)
    if name == "triangle":
        return _radial_polygon(x, y, [1.0] * 3, -90.0)
    if name == "cross":
        ax, ay = x.abs(), y.abs()
        return ((ax <= 0.3) & (ay <= 0.95)) | ((ay <= 0.3) & (ax <= 0.95))
    if name == "star":
        return _radial_polygon(x, y, [1.0, 0.42] * 5, -90.0)
    if name == "ring":
        return (rr <= 0.95 ** 2) & (rr >= 0.5 ** 2)
    if name == "crescent":
        return (rr <= 0.92 ** 2) & ((x - 0.45) ** 2 + y * y >= 0.72 ** 2)
    if name == "diamond":
        return _radial_polygon(x, y, [1.0, 0.5, 1.0, 0.5], -90.0)
    if name == "heart":
        hx, hy = x * 1.25, -(y * 1.25) + 0.25  # classic implicit heart, flipped so it points down
        q = hx * hx + hy * hy - 1.0
        return q * q * q - hx * hx * hy * hy * hy <= 0
    if name == "arrow":
        shaft = (y.abs() <= 0.2) & (x >= -0.95) & (x <= 0.2)
        head = (x <= 0.95) & (x >= 0.05) & (y.abs() <= 0.6 * (0.95 - x) / 0.9)
        return shaft | head
    raise DataError(f"unknown shape class index {cls}")


# ----------------------------------------------------------------------------------------------- backgrounds
def _backgrounds(kind: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, p: torch.Tensor, noise: torch.Tensor,
                 size: int, shifted: bool) -> torch.Tensor:
    """Backgrounds B×S×S×3 (channels last) in [0, 1] mixing colours ``c1, c2`` (B×3) with a per-kind pattern.

    ``p`` (B×4) holds uniform [0,1) pattern parameters, ``noise`` (B×1×8×8) low-res noise, ``kind`` (B) int64:
    normal world 0 plain, 1 linear gradient, 2 stripes, 3 smooth noise texture; shifted world 0 checkerboard,
    1 radial gradient, 2 polka dots, 3 fine grain. Each pattern is computed only for the images of its kind.
    """
    b = kind.shape[0]
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    w = torch.zeros(b, size, size)
    for k in range(1 if not shifted else 0, 4):
        idx = (kind == k).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        q = p[idx].view(-1, 4, 1, 1)
        xx, yy = coords.view(1, 1, -1), coords.view(1, -1, 1)
        period = 4.0 + 5.0 * q[:, 1]
        if not shifted and k in (1, 2):
            ang = q[:, 0] * 2 * math.pi
            u = xx * torch.cos(ang) + yy * torch.sin(ang)
            if k == 1:
                lo, hi = u.amin((1, 2), keepdim=True), u.amax((1, 2), keepdim=True)
                w[idx] = (u - lo) / (hi - lo + 1e-6)
            else:
                w[idx] = (0.5 + 1.5 * torch.sin(u * (2 * math.pi) / period + q[:, 2] * 6.28)).clamp(0, 1)
        elif not shifted:  # k == 3
            w[idx] = F.interpolate(noise[idx], size=(size, size), mode="bicubic", align_corners=False)[:, 0].clamp(0, 1)
        elif k == 0:
            cell = period * 0.9
            w[idx] = torch.remainder(torch.floor(xx / cell) + torch.floor(yy / cell), 2.0)
        elif k == 1:
            cx, cy = q[:, 2] * size, q[:, 3] * size
            w[idx] = (((xx - cx) ** 2 + (yy - cy) ** 2).sqrt() / (size * 1.2)).clamp(0, 1)
        elif k == 2:
            cell = period * 1.44
            dx = torch.remainder(xx - q[:, 2] * size, cell) - cell / 2
            dy = torch.remainder(yy - q[:, 3] * size, cell) - cell / 2
            w[idx] = (0.5 - ((dx * dx + dy * dy).sqrt() - cell * 0.3)).clamp(0, 1)  # anti-aliased round dots
        else:  # per-pixel hash noise, deterministic given the per-image phase
            w[idx] = torch.frac(torch.sin(xx * 12.9898 + yy * 78.233 + q[:, 1] * 100.0).abs() * 43758.5453)
    w = w.unsqueeze(-1)
    return c1[:, None, None, :] * (1 - w) + c2[:, None, None, :] * w


# ------------------------------------------------------------------------------------------------- rendering
def _window_origin(lo: torch.Tensor, win: int, size: int) -> torch.Tensor:
    """Integer origin (B) of a ``win``-pixel window starting at ``floor(lo)``, kept inside the image."""
    return torch.floor(lo).long().clamp(0, size - win)


def _composite(img: torch.Tensor, rows_of: torch.Tensor, cov: torch.Tensor, colour: torch.Tensor, ox: torch.Tensor,
               oy: torch.Tensor) -> None:
    """Paint ``colour`` (B×3) with coverage ``cov`` (B×w×w) into ``img`` (M×S×S×3, contiguous) in place.

    Window ``b`` goes to image row ``rows_of[b]`` at pixel origin ``(ox[b], oy[b])``.
    """
    size, win = img.shape[1], cov.shape[-1]
    ar = torch.arange(win)
    lin = ((rows_of.view(-1, 1, 1) * size + (oy.view(-1, 1) + ar).unsqueeze(2)) * size
           + (ox.view(-1, 1) + ar).unsqueeze(1)).reshape(-1)
    flat = img.view(-1, 3)
    patch = flat.index_select(0, lin).view(-1, win, win, 3)
    patch += (colour[:, None, None, :] - patch) * cov.unsqueeze(-1)
    flat.index_copy_(0, lin, patch.view(-1, 3))


_TEMPLATE_RES = 64  # template pixels across the unit square [-_TEMPLATE_EXTENT, _TEMPLATE_EXTENT]²
_TEMPLATE_EXTENT = 1.1
_templates: torch.Tensor | None = None


def shape_templates() -> torch.Tensor:
    """Soft coverage templates 10×T×T (T = 64) of the shape classes in unit object coordinates.

    Each template pixel is the fraction of 4×4 sub-samples inside the shape; computed once and memoised.
    """
    global _templates
    if _templates is None:
        t, ss = _TEMPLATE_RES, 4
        c = ((torch.arange(t * ss, dtype=torch.float32) + 0.5) / (t * ss) * 2 - 1) * _TEMPLATE_EXTENT
        y, x = torch.meshgrid(c, c, indexing="ij")
        _templates = torch.stack([F.avg_pool2d(_inside(k, x, y).float()[None, None], ss)[0, 0]
                                  for k in range(len(SHAPE_CLASSES))])
    return _templates


def _object_coverage(labels: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor, radius: torch.Tensor,
                     rot: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor, win: int) -> torch.Tensor:
    """Soft coverage B×win×win in [0, 1] of each object in its window.

    Each pixel averages 2×2 bilinear samples of its class template at the rotated/scaled/translated position.
    """
    b, ss = labels.shape[0], _SUPERSAMPLE
    sub = (torch.arange(win * ss, dtype=torch.float32) + 0.5) / ss
    cov = torch.zeros(b, win, win)
    templates = shape_templates()
    for cls in range(len(SHAPE_CLASSES)):
        idx = (labels == cls).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        px = sub.view(1, 1, -1) + (ox[idx] - cx[idx]).view(-1, 1, 1)
        py = sub.view(1, -1, 1) + (oy[idx] - cy[idx]).view(-1, 1, 1)
        k = 1.0 / (radius[idx] * _TEMPLATE_EXTENT)
        c, s = (torch.cos(rot[idx]) * k).view(-1, 1, 1), (torch.sin(rot[idx]) * k).view(-1, 1, 1)
        # rotate the grid by -rot: the shape appears rotated by +rot; grid in grid_sample's [-1, 1] units
        grid = torch.stack([c * px + s * py, c * py - s * px], dim=-1)  # n_k × win·ss × win·ss × 2
        m = win * ss
        out = F.grid_sample(templates[cls][None, None], grid.view(1, -1, m, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        cov[idx] = F.avg_pool2d(out.view(-1, 1, m, m), ss)[:, 0]
    return cov


def _distractor_coverage(kind: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor,
                         y1: torch.Tensor, width: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor,
                         win: int) -> torch.Tensor:
    """Soft coverage B×win×win of one distractor per image: a disc (kind 0) or a line segment (kind 1).

    Uses the signed distance in pixels: coverage = clamp(0.5 - sdf, 0, 1) (analytic anti-aliasing).
    """
    coords = torch.arange(win, dtype=torch.float32) + 0.5
    v = lambda t: t.view(-1, 1, 1)  # noqa: E731
    px, py = coords.view(1, 1, -1) + v(ox - x0), coords.view(1, -1, 1) + v(oy - y0)  # relative to (x0, y0)
    dx, dy = v(x1 - x0), v(y1 - y0)
    t = ((px * dx + py * dy) / (dx * dx + dy * dy + 1e-6)).clamp(0, 1) * v(kind.float())  # t = 0 for discs
    rad = v(width) * torch.where(v(kind) == 0, 1.0, 0.45)
    sdf = ((px - t * dx) ** 2 + (py - t * dy) ** 2).sqrt() - rad
    return (0.5 - sdf).clamp(0, 1)


def make_shapes(n: int, seed: int = 0, clutter: float = 0.0, colour_shift: bool = False,
                size: int = 32, variant: str = DEFAULT_VARIANT) -> ImageDataset:
    """Generate ``n`` images of the shapes world (no caching; see ``load_dataset("shapes")`` for that).

    Args:
        n: number of images.
        seed: every random choice comes from ``torch.Generator().manual_seed(seed)``; same seed ⇒ same data.
        clutter: ≥ 0; the number of distractors per image is Poisson(4·clutter) capped at 8 (0 ⇒ none).
        colour_shift: draw the "source domain": other hues (pastel), other background kinds (textured world;
            the plain world stays plain); same classes.
        size: image side in pixels (≥ 16).
        variant: which world (:data:`WORLD_VARIANTS`): ``"plain"`` (the default: plain backgrounds, large
            objects, every rotation) or ``"textured"`` (the shortcut world: textured backgrounds, small objects).

    Returns:
        ``ImageDataset`` with ``images`` uint8 n×3×size×size, ``labels`` int64 n (10 balanced classes),
        the factors listed in the module docstring and ``masks`` bool n×size×size.
    """
    n, size = int(n), int(size)
    if n < 1:
        raise DataError(f"shapes: n must be a positive number of images, got {n}")
    if size < 16:
        raise DataError(f"shapes: size must be at least 16 pixels, got {size}")
    clutter = float(clutter)
    if not (clutter >= 0.0) or math.isinf(clutter):
        raise DataError(f"shapes: clutter must be a finite number ≥ 0 (e.g. 0.5), got {clutter}")
    spec = world_variant(variant)
    # the shifted world's own background kinds (checker, radial, dots, grain) replace the textured ones; a world
    # of plain backgrounds stays plain when shifted (only the palette changes)
    shifted_bg = bool(colour_shift) and spec.bg_kinds != (0,)
    g = make_generator(seed)
    nc, nh = len(SHAPE_CLASSES), len(HUES)

    # --- all random factors, drawn for every image up front (chunking below never changes the result)
    labels = (torch.arange(n) % nc)[torch.randperm(n, generator=g)]
    colour = torch.randint(0, nh, (n,), generator=g)
    bg_colour = (colour + torch.randint(2, nh - 1, (n,), generator=g)) % nh  # ≥ 2 bins away (circular)
    bg_kind = torch.tensor(spec.bg_kinds)[torch.randint(0, 4, (n,), generator=g) % len(spec.bg_kinds)]
    s_lo, s_hi = spec.scale_range
    scale = s_lo + (s_hi - s_lo) * torch.rand(n, generator=g)
    radius = scale * size
    u_rot = torch.rand(n, generator=g)
    rotation = 360.0 * u_rot if spec.rotation >= 360 else torch.remainder(spec.rotation * (u_rot - 0.5), 360.0)
    position = torch.randint(0, 9, (n,), generator=g)
    third = size / 3.0

    def _coord(cell: torch.Tensor) -> torch.Tensor:  # uniform inside the cell ∩ [radius, size - radius]
        lo = torch.maximum(cell * third, radius)
        hi = torch.minimum((cell + 1) * third, size - radius)
        return lo + (hi - lo) * torch.rand(n, generator=g)

    pos_x = _coord(position % 3).clamp(0.0, size - 1e-3)
    pos_y = _coord(position // 3).clamp(0.0, size - 1e-3)
    # Keep the recorded cell exactly consistent with the centre (boundary ties).
    position = (pos_y // third).long().clamp(0, 2) * 3 + (pos_x // third).long().clamp(0, 2)

    hue_bins = torch.tensor(SHIFT_HUES if colour_shift else HUES)
    fg_h = hue_bins[colour] + 16.0 * (torch.rand(n, generator=g) - 0.5)
    if colour_shift:  # pastel foregrounds
        fg_s = 0.35 + 0.25 * torch.rand(n, generator=g)
        fg_v = 0.88 + 0.12 * torch.rand(n, generator=g)
    else:
        fg_s = 0.65 + 0.35 * torch.rand(n, generator=g)
        fg_v = 0.78 + 0.22 * torch.rand(n, generator=g)
    fg = hsv_to_rgb(fg_h, fg_s, fg_v)
    bg_h = hue_bins[bg_colour] + 16.0 * (torch.rand(n, generator=g) - 0.5)
    bg_s = spec.bg_saturation[0] + (spec.bg_saturation[1] - spec.bg_saturation[0]) * torch.rand(n, generator=g)
    bg_v1 = 0.12 + 0.33 * torch.rand(n, generator=g)
    bg_v2 = (bg_v1 + (0.15 + 0.2 * torch.rand(n, generator=g)) * torch.where(bg_v1 > 0.3, -1.0, 1.0)).clamp(0.04, 0.55)
    bg1 = hsv_to_rgb(bg_h, bg_s, bg_v1)
    bg2 = hsv_to_rgb(bg_h + 40.0 * (torch.rand(n, generator=g) - 0.5), bg_s, bg_v2)
    bg_par = torch.rand(n, 4, generator=g)
    bg_noise = torch.rand(n, 1, 8, 8, generator=g)

    k = MAX_DISTRACTORS
    if clutter > 0:
        n_distr = torch.poisson(torch.full((n,), 4.0 * clutter), generator=g).long().clamp(0, k)
    else:
        n_distr = torch.zeros(n, dtype=torch.long)
    d_kind = torch.randint(0, 2, (n, k), generator=g)
    d_x0, d_y0 = size * torch.rand(n, k, generator=g), size * torch.rand(n, k, generator=g)
    d_ang = 2 * math.pi * torch.rand(n, k, generator=g)
    d_len = size * (D_LEN[0] + (D_LEN[1] - D_LEN[0]) * torch.rand(n, k, generator=g))
    d_x1, d_y1 = d_x0 + d_len * torch.cos(d_ang), d_y0 + d_len * torch.sin(d_ang)
    d_w = size * (D_WIDTH[0] + (D_WIDTH[1] - D_WIDTH[0]) * torch.rand(n, k, generator=g))  # disc radius
    d_hbin = (colour.unsqueeze(1) + torch.randint(1, nh, (n, k), generator=g)) % nh  # other hue than the object
    d_rgb = hsv_to_rgb(hue_bins[d_hbin] + 20.0 * (torch.rand(n, k, generator=g) - 0.5),
                       0.5 + 0.5 * torch.rand(n, k, generator=g), 0.6 + 0.4 * torch.rand(n, k, generator=g))

    # --- rendering, chunked to bound memory; objects and distractors are drawn inside small windows
    obj_win = min(size, int(math.ceil(2 * s_hi * size)) + 2)
    obj_ox = _window_origin(pos_x - obj_win / 2, obj_win, size)
    obj_oy = _window_origin(pos_y - obj_win / 2, obj_win, size)
    d_win = min(size, int(math.ceil(D_LEN[1] * size + 2 * D_WIDTH[1] * size)) + 2)
    d_ox = _window_origin(torch.minimum(d_x0, d_x1) - d_w, d_win, size)
    d_oy = _window_origin(torch.minimum(d_y0, d_y1) - d_w, d_win, size)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for a in range(0, n, _CHUNK):
        sl = slice(a, min(n, a + _CHUNK))
        img = _backgrounds(bg_kind[sl], bg1[sl], bg2[sl], bg_par[sl], bg_noise[sl], size, shifted_bg)
        if clutter > 0:  # distractors behind the object; SDFs for all active slots at once, painted slot by slot
            pairs = (n_distr[sl].unsqueeze(1) > torch.arange(k)).nonzero()  # M×2 (image in chunk, slot)
            i, j = pairs[:, 0] + a, pairs[:, 1]
            dcov = _distractor_coverage(d_kind[i, j], d_x0[i, j], d_y0[i, j], d_x1[i, j], d_y1[i, j], d_w[i, j],
                                        d_ox[i, j], d_oy[i, j], d_win)
            for slot in range(int(j.max()) + 1 if len(j) else 0):
                sel = (j == slot).nonzero().squeeze(1)
                _composite(img, pairs[sel, 0], dcov[sel], d_rgb[i[sel], slot], d_ox[i[sel], slot], d_oy[i[sel], slot])
        cov = _object_coverage(labels[sl], pos_x[sl], pos_y[sl], radius[sl], torch.deg2rad(rotation[sl]),
                               obj_ox[sl], obj_oy[sl], obj_win)
        _composite(img, torch.arange(len(cov)), cov, fg[sl], obj_ox[sl], obj_oy[sl])
        images[sl] = (img * 255.0).round_().clamp_(0, 255).to(torch.uint8).permute(0, 3, 1, 2)
        ar = torch.arange(obj_win)
        bi = torch.arange(a, sl.stop).view(-1, 1, 1)
        masks[bi, (obj_oy[sl].view(-1, 1) + ar).unsqueeze(2), (obj_ox[sl].view(-1, 1) + ar).unsqueeze(1)] = cov >= 0.5

    # --- box of the mask: columns [x0, x1), rows [y0, y1)
    cols, rows = masks.any(1), masks.any(2)  # n×W, n×H
    ar = torch.arange(size)
    big = torch.full_like(cols, size, dtype=torch.long)
    box_x0 = torch.where(cols, ar, big).amin(1)
    box_x1 = torch.where(cols, ar + 1, torch.zeros_like(big)).amax(1)
    box_y0 = torch.where(rows, ar, big).amin(1)
    box_y1 = torch.where(rows, ar + 1, torch.zeros_like(big)).amax(1)

    factors = {
        "colour": colour, "bg_kind": bg_kind, "bg_colour": bg_colour, "position": position,
        "n_distractors": n_distr,
        "pos_x": pos_x.float(), "pos_y": pos_y.float(), "scale": scale.float(), "rotation": rotation.float(),
        "box_x0": box_x0.float(), "box_y0": box_y0.float(), "box_x1": box_x1.float(), "box_y1": box_y1.float(),
    }
    hue_names = SHIFT_HUE_NAMES if colour_shift else HUE_NAMES
    factor_classes = {
        "colour": list(hue_names), "bg_colour": list(hue_names),
        "bg_kind": list(SHIFT_BG_KINDS if shifted_bg else BG_KINDS),
        "position": list(POSITION_NAMES), "n_distractors": [str(i) for i in range(k + 1)],
    }
    return ImageDataset(images=images, labels=labels, classes=list(SHAPE_CLASSES), factors=factors,
                        split="train", name="shapes", factor_classes=factor_classes, masks=masks)
