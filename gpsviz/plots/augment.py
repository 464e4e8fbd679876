"""Figures of augmentations: an image beside its augmented views, each titled with its parameters."""
from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor

from gpsviz.augment.params import AugParams
from gpsviz.features import DEFAULT_MEAN, DEFAULT_STD
from gpsviz.plots.data import to_display

__all__ = ["plot_views", "describe_params", "PANEL_INCHES"]

#: Width (inches) of one panel of :func:`plot_views`.
PANEL_INCHES = 1.95


def describe_params(row: dict[str, float], image_hw: tuple[int, int] | None = None) -> str:
    """Short multi-line text for one view's parameters (a row of :meth:`AugParams.row`).

    Example: ``"crop 0.43 flip\\nb1.20 c0.80 s1.10 h+.031\\ngray blur0.8"``: crop = kept fraction of the image
    area (needs ``image_hw``, else the box size in pixels), b/c/s = brightness/contrast/saturation factors,
    h = hue shift in turns; then grayscale, blur σ, solarize. ``"identity"`` when nothing was applied.
    """
    lines = []
    geo = []
    hh, ww = row.get("crop_h", 0.0), row.get("crop_w", 0.0)
    if image_hw is not None:
        full = row.get("crop_y", 0) == 0 and row.get("crop_x", 0) == 0 and (hh, ww) == tuple(map(float, image_hw))
        if not full:
            geo.append(f"crop {hh * ww / (image_hw[0] * image_hw[1]):.2f}")
    elif hh or ww:
        geo.append(f"crop {int(hh)}x{int(ww)}")
    if row.get("flip", 0) > 0.5:
        geo.append("flip")
    if geo:
        lines.append(" ".join(geo))
    if row.get("jitter", 0) > 0.5:                               # neutral factors (1-channel s, h) left out
        parts = [f"{k}{row.get(name, 1.0):.2f}" for k, name in (("b", "brightness"), ("c", "contrast"),
                                                                  ("s", "saturation")) if row.get(name, 1.0) != 1.0]
        if row.get("hue", 0.0) != 0.0:
            parts.append("h" + f"{row['hue']:+.3f}".replace("0.", "."))
        lines.append(" ".join(parts) if parts else "jitter")
    rest = []
    if row.get("grayscale", 0) > 0.5:
        rest.append("gray")
    if row.get("blur_sigma", 0) > 0:
        rest.append(f"blur{row['blur_sigma']:.1f}")
    if row.get("solarize", 0) > 0.5:
        rest.append("solar")
    if rest:
        lines.append(" ".join(rest))
    return "\n".join(lines) if lines else "identity"


def plot_views(image: Tensor, views: Tensor, params: AugParams | None = None,
               mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
               fig: Any = None, max_cols: int = 8, title: str | None = None, normalized: bool = True,
               max_width: float | None = None) -> Any:
    """Draw ``image`` beside its augmented ``views``, each titled with its key parameters.

    ``image``: C×H×W (or 1×C×H×W), uint8 or float in [0, 1]. ``views``: N×C×H×W as returned by an
    :class:`~gpsviz.augment.Augmenter`, i.e. normalised with ``mean``/``std`` (default 0.5 / 0.25, the
    Augmenter's default; pass ``normalized=False`` for views already in [0, 1]). ``params``: their AugParams
    (N rows) or None for untitled views. 1-channel images are drawn in gray. ``fig``: a matplotlib Figure to
    draw into (cleared), else a new one. At most ``max_cols`` panels per row, and fewer when ``max_width``
    (inches) caps the figure's width (each panel is :data:`PANEL_INCHES` wide; the text keeps its size: at least
    9 pt). Returns the Figure.
    """
    import matplotlib.pyplot as plt


    if image.ndim == 4:
        image = image[0]
    if views.ndim == 3:
        views = views.unsqueeze(0)
    n, c, h, w = views.shape
    if params is not None and len(params) != n:
        raise ValueError(f"got {len(params)} parameter rows for {n} views")
    stats = dict(mean=DEFAULT_MEAN if mean is None else mean, std=DEFAULT_STD if std is None else std) \
        if normalized else {}

    panels = n + 1
    cols = min(panels, max_cols)
    if max_width is not None:
        cols = max(1, min(cols, int(max_width // PANEL_INCHES)))
    rows = -(-panels // cols)
    size = (PANEL_INCHES * cols, 2.45 * rows + (0.35 if title else 0.0))
    if fig is None:
        fig = plt.figure(figsize=size, layout="constrained")
    else:
        fig.clear()
        fig.set_size_inches(*size)
        fig.set_layout_engine("constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    imkw = dict(cmap="gray", vmin=0, vmax=255) if c == 1 else {}
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k == 0:
            ax.imshow(to_display(image), interpolation="nearest", **imkw)
            ax.set_title("original", fontsize=10, fontweight="bold")
            for sp in ax.spines.values():
                sp.set_linewidth(2)
        elif k <= n:
            ax.imshow(to_display(views[k - 1], **stats), interpolation="nearest", **imkw)
            if params is not None:
                ax.set_title(describe_params(params.row(k - 1), (h, w)), fontsize=9, linespacing=1.15)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12)
    return fig
