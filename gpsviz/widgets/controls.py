"""Controls and plumbing shared by the explorers."""
from __future__ import annotations

import html
import io
import math
from pathlib import Path
from typing import Any, Iterable

import ipywidgets as widgets

from gpsviz.augment import Augmenter
from gpsviz.augment.params import AugParams
from gpsviz.checkpoint import dataset_digest
from gpsviz.data.loaders import canonical_name, dataset_image_size
from gpsviz.errors import DataError
from gpsviz.utils import read_json


def fmt_marker(x: Any, spec: str = ".3f") -> str:
    """A number as the explorers' status markers write it (``spec``: three decimals), ``nan`` for None or NaN."""
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def other_index(rng: Any, n: int, current: int) -> int:
    """A uniformly random index in ``[0, n)`` other than ``current`` (``current`` itself when ``n`` is 1):
    what each explorer's *random* button picks. ``rng`` is a ``numpy.random.Generator``."""
    if n <= 1:
        return int(current)
    new = int(rng.integers(n - 1))
    return new + 1 if new >= current else new


# ---------------------------------------------------------------------------------------------- figures
#: CSS pixels per inch (the browser's reference pixel at 100 % zoom): a figure shown ``width_in × CSS_DPI`` CSS
#: pixels wide shows its text at its nominal point size, whatever the PNG's own dpi.
CSS_DPI = 96.0
#: The widest an explorer shows a figure, in CSS pixels: about the width of JupyterLab's output area at 100 % zoom
#: on a 1280-pixel-wide screen with the file browser open. The explorers' figures are at most
#: :data:`FIGURE_WIDTH_IN` wide, so they show at their nominal size there (a narrower output area shrinks them).
MAX_FIGURE_PX = 860
#: The widest an explorer's figure is drawn (inches) so that it shows at its nominal size.
FIGURE_WIDTH_IN = MAX_FIGURE_PX / CSS_DPI
#: Smallest text size (points, at the displayed size) an explorer's figure may use: 9 pt = 12 CSS pixels.
MIN_FONT_PT = 9.0
#: The dpi the explorers render their figures at (one PNG pixel per CSS pixel at 100 % zoom).
FIGURE_DPI = CSS_DPI


def display_width(fig) -> int:
    """CSS pixels an explorer shows ``fig`` wide (:func:`show_figure`): its width at :data:`CSS_DPI`, at most
    :data:`MAX_FIGURE_PX`."""
    return int(min(round(fig.get_figwidth() * CSS_DPI), MAX_FIGURE_PX))


def display_scale(fig) -> float:
    """How much :func:`show_figure` scales ``fig`` (1 = nominal size): a text of ``s`` points shows as
    ``s × display_scale(fig)`` points, 12 CSS pixels for 9 pt."""
    return display_width(fig) / (fig.get_figwidth() * CSS_DPI)


def show_figure(image: widgets.Image, fig, dpi: float = FIGURE_DPI) -> None:
    """Render ``fig`` into the Image widget ``image`` and show it :func:`display_width` CSS pixels wide (or the
    output area's width, when narrower: the layout keeps ``max_width: 100%``). ``dpi`` only sets the sharpness:
    the displayed size, hence the text size on screen, does not depend on it."""
    image.layout.width = f"{display_width(fig)}px"
    image.layout.max_width = "100%"
    image.layout.height = "auto"
    image.value = figure_png(fig, dpi=dpi)


def figure_png(fig, dpi: float = FIGURE_DPI) -> bytes:
    """PNG bytes of a matplotlib Figure, the whole figure at ``dpi`` (then closed, if pyplot knows it)."""
    buf = io.BytesIO()
    # the whole figure, whatever rcParams["savefig.bbox"] says: its width in inches is what show_figure displays
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches=fig.bbox_inches)
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - a Figure pyplot never saw
        pass
    return buf.getvalue()


def replay_views(images, row: int, values, preset: str):
    """The views of image ``row`` of ``images`` (uint8 N×C×H×W) that a run recorded, redrawn from their
    augmentation parameters (``values``: V×P, :class:`~gpsviz.augment.params.AugParams` columns) with the run's
    preset: V float tensors C×H×W in [0, 1] (empty for V = 0)."""
    if values.shape[0] == 0:
        return []
    aug = Augmenter(preset)
    imgs = images[row:row + 1].repeat(values.shape[0], 1, 1, 1)
    return list(aug.unnormalize(aug.apply(imgs, AugParams(values.clone()))))


def new_figure():
    """A Figure outside pyplot: never auto-displayed by the inline backend, never kept alive by pyplot."""
    from matplotlib.figure import Figure

    return Figure()


def index_controls(n: int, value: int, label: str) -> tuple[widgets.IntSlider, widgets.BoundedIntText]:
    """An image-index slider and a linked number box (the box lets a person — or a browser test — type an index)."""
    wide = {"description_width": "initial"}
    slider = widgets.IntSlider(value=int(value), min=0, max=n - 1, description=label, continuous_update=False,
                               style=wide, layout=widgets.Layout(width="420px"))
    box = widgets.BoundedIntText(value=int(value), min=0, max=n - 1, description=f"{label} #", style=wide,
                                 layout=widgets.Layout(width="170px"))
    widgets.link((slider, "value"), (box, "value"))
    return slider, box


def tag(pairs) -> None:
    """Give each widget its CSS class: ``pairs`` = iterable of (widget, class name) (browser tests find them)."""
    for w, cls in pairs:
        w.add_class(cls)


def fmt_value(x: Any, spec: str = ".3f", missing: str = "n/a") -> str:
    """A number as an explorer shows it to a person: ``missing`` (a word, never ``nan``) for None or NaN."""
    return missing if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


#: Visually hidden but rendered (the usual screen-reader-only pattern): the status marker stays in the page's text
#: (``document.body.innerText``, which the browser tests read; ``display:none`` would drop it) without showing.
HIDDEN_STYLE = ("position:absolute;width:1px;height:1px;margin:-1px;padding:0;border:0;overflow:hidden;"
                "clip:rect(0,0,0,0);clip-path:inset(50%);white-space:nowrap")

#: Shown above each explorer as a plain output of its cell (kept in the saved notebook, unlike the widget itself):
#: a reopened notebook shows "model not found" where the explorer was until the cell runs again. (Worded so that
#: it is not itself the browser tests' sign of a broken widget.)
REOPEN_HINT = ('<div class="gpsviz-reopen-hint" style="font-size:12px;color:#666;margin:0 0 2px 0">'
               "Explorer below missing, or a &ldquo;model not found&rdquo; message in its place? Re-run this cell: "
               "interactive widgets live only while the kernel runs.</div>")


class StatusMixin:
    """The shared event plumbing of an explorer: a status line (``self.status``, an HTML widget) carrying the
    machine-readable marker, and redraw-on-change unless the controls are being moved together (``_hold``).

    The marker (``<code class="gpsviz-marker">``, e.g. ``explorer-state: anchor=3 ... done``) is visually hidden
    (:data:`HIDDEN_STYLE`) but stays in the page text for the browser tests. Displaying an explorer also shows
    :data:`REOPEN_HINT` above it, as a separate static output of the cell."""

    def _set_status(self, text: str) -> None:
        self.status.value = (f'<code style="{HIDDEN_STYLE}" class="gpsviz-marker">'
                             f"{html.escape(text)}</code>")

    def _repr_mimebundle_(self, **kwargs):
        """Show :data:`REOPEN_HINT` (a static HTML output, saved with the notebook), then the widget itself."""
        try:
            from IPython.display import HTML, display
        except ImportError:  # pragma: no cover - ipywidgets without IPython: the widget alone
            return super()._repr_mimebundle_(**kwargs)
        display(HTML(REOPEN_HINT))
        return super()._repr_mimebundle_(**kwargs)

    def _show_error(self, what: str, error: Exception, raise_errors: bool) -> None:
        """Report a failed redraw: ``what`` and the error in the summary, ``error=<type>`` in the status marker;
        re-raise ``error`` when ``raise_errors`` (programmatic calls), else leave the widget usable."""
        self.summary.value = (f'<div style="color:#d7191c"><b>{html.escape(what)}:</b> '
                              f"{html.escape(str(error))}</div>")
        self._set_status(self._marker(f"error={type(error).__name__}"))
        if raise_errors:
            raise error

    def _on_change(self, change=None) -> None:
        if not self._hold:
            self._redraw()

    def _move_controls(self, values: Iterable[tuple[Any, Any]]) -> dict:
        """Set each ``(control, value)`` whose value is not None, redraw once (errors raise), return the state."""
        self._hold = True
        try:
            for control, value in values:
                if value is not None:
                    control.value = value
        finally:
            self._hold = False
        self._redraw(raise_errors=True)
        return self.state


# ---------------------------------------------------------------------------------------------- runs vs data
def run_data(run_dir) -> dict[str, Any]:
    """What a run folder was trained on, read from its ``config.json`` (cheap; no checkpoint load):
    ``{"data", "data_options", "image_size", "in_channels"}`` with None for what the folder does not say."""

    info: dict[str, Any] = {"data": None, "data_options": {}, "image_size": None, "in_channels": None}
    p = Path(run_dir)
    p = p.parent if p.is_file() else p
    cfg = read_json(p / "config.json")             # missing or unreadable: None (nothing known)
    if isinstance(cfg, dict) and isinstance(cfg.get("data"), str):
        info["data"] = cfg["data"]
        info["data_options"] = cfg.get("data_options") if isinstance(cfg.get("data_options"), dict) else {}
        try:
            info["image_size"] = dataset_image_size(info["data"], info["data_options"])
        except Exception:  # noqa: BLE001 - an unknown dataset name: the size is simply unknown
            pass
    return info


def _family(name: Any) -> str | None:
    """The built-in dataset a name belongs to (``shapes-clutter1-64px`` → ``shapes``); None for the user's own
    data (folders, arrays) or names gpsviz does not know."""

    n = str(name or "").strip().lower()
    if n.startswith("shapes"):
        return "shapes"
    try:
        key = canonical_name(n)
    except DataError:
        return None
    return None if key in ("folder", "arrays") else key


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _describe(name: Any, channels: int | None, size: int | None) -> str:
    parts = [f"{channels}-channel" if channels else "", f"{size} px" if size else ""]
    extra = ", ".join(p for p in parts if p)
    return f"{name}" + (f" ({extra})" if extra else "")


def check_run_dataset(run: str, dataset: Any, data: str | None = None, data_options: dict | None = None,
                      in_channels: int | None = None, image_size: int | None = None,
                      what: str = "the explorer's dataset", data_digest: str | None = None) -> None:
    """Refuse to show a run on another dataset than it was trained on: a :class:`~gpsviz.errors.DataError` naming
    the run and the two datasets when the channels, the image size (pixels, width) or the built-in dataset differ
    (each compared only where both sides are known). ``data``/``data_options``: the run's config;
    ``dataset``: an ImageDataset (``images`` uint8 N×C×H×W, ``name``). Every explorer that loads runs calls this.

    ``data_digest``: the run's checkpoint's digest of its training images and labels; when given (checkpoints
    before it was recorded have none), ``dataset`` must be exactly that training set (an explorer that shows what
    the run recorded about training rows: the same name and size of another seed is refused too)."""
    images = getattr(dataset, "images", None)
    if images is None or getattr(images, "ndim", 0) != 4:
        return
    ds_channels, ds_size = int(images.shape[1]), int(images.shape[-1])
    ds_name = getattr(dataset, "name", "the dataset")
    label = data or "its dataset"
    opts = {k: v for k, v in (data_options or {}).items() if isinstance(v, (int, float, str, bool))}
    if opts and data:
        label = f"{data}({', '.join(f'{k}={v!r}' for k, v in opts.items())})"
    clash = []
    if in_channels and in_channels != ds_channels:
        clash.append("channels")
    if image_size and image_size != ds_size:
        clash.append("image size")
    fam_run, fam_ds = _family(data), _family(ds_name)
    if fam_run and fam_ds and fam_run != fam_ds:
        clash.append("dataset")
    if clash:
        raise DataError(f"run {run!r} was trained on {_describe(label, in_channels, image_size)}, but {what} is "
                        f"{_describe(ds_name, ds_channels, ds_size)} (different {_and(clash)}): give the "
                        f"run's own dataset (gpsviz.runs.load_data(TrainConfig.from_dict(config))) or a run "
                        f"trained on {ds_name}")
    if data_digest and getattr(dataset, "labels", None) is not None:
        if dataset_digest(dataset) != data_digest:
            raise DataError(f"run {run!r} was trained on other images than {what} ({ds_name}, "
                            f"{len(images)} images: same kind of data, but not its training set, e.g. another seed, "
                            f"size or split): give the run's own training split "
                            f"(gpsviz.runs.load_data(TrainConfig.from_dict(config))[0])")
