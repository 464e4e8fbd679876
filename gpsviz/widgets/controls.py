"""Controls and plumbing shared by the explorers."""
from __future__ import annotations

import io
import math
from typing import Any, Iterable

import ipywidgets as widgets


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


def figure_png(fig, dpi: float = 80) -> bytes:
    """PNG bytes of a matplotlib Figure (then closed, if pyplot knows it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - a Figure pyplot never saw
        pass
    return buf.getvalue()


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


class StatusMixin:
    """The shared event plumbing of an explorer: a status line (``self.status``, an HTML widget) carrying the
    machine-readable marker, and redraw-on-change unless the controls are being moved together (``_hold``)."""

    def _set_status(self, text: str) -> None:
        import html

        self.status.value = (f'<code style="color:#666;font-size:11px" class="gpsviz-marker">'
                             f"{html.escape(text)}</code>")

    def _show_error(self, what: str, error: Exception, raise_errors: bool) -> None:
        """Report a failed redraw: ``what`` and the error in the summary, ``error=<type>`` in the status marker;
        re-raise ``error`` when ``raise_errors`` (programmatic calls), else leave the widget usable."""
        import html

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
