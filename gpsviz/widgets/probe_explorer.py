"""ProbeExplorer: Dubois et al.'s probe conditions of trained runs beside their probe accuracy.

Choose runs by method, representation dimension and augmentation strength; see each condition (invariance,
instance decodability, distance to a simplex ETF — the reference's instance-level DistToEtf of two views per
held-out image, best −1/(N−1) for N images, not 0 — effective rank) beside linear and MLP probe accuracy for every
run, the label-efficiency curve of the chosen runs against the others, and a 2-D view of the chosen run's class means
against the ideal simplex (that picture is the label class means, neural collapse, not the instance-level condition).

Example (a notebook cell)::

    from gpsviz.experiments.dubois import notebook_runs
    from gpsviz.widgets import ProbeExplorer
    records, table = notebook_runs(smoke=True)
    explorer = ProbeExplorer(records)          # or ProbeExplorer.from_results("data/reproduce/dubois-small")
    explorer.set_state(method="CISSL", dim=128, strength=1.0)
    explorer.state["linear"]                  # mean linear accuracy of the chosen runs (over seeds)

The explorer shows the values measured and saved with each run (``conditions.json`` through
:func:`gpsviz.experiments.dubois.measure_run`); it recomputes nothing. The menus offer every method, dimension and
strength of the records; a combination no run was trained with shows, in place of the figure, a message listing the
combinations that were (never an empty axes). After each redraw the status line reads
``probe-state: runs=<n> method=<m> dim=<d> strength=<s> linear=<acc> etf=<distance> done`` (spaces in the method
name written as ``_``; ``nan`` when no run matches); browser tests wait for it.
"""
from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as widgets

from gpsviz.errors import ConfigError
from gpsviz.plots.dubois import plot_label_efficiency, plot_simplex
from gpsviz.utils import read_json_file
from gpsviz.widgets.controls import FIGURE_DPI, FIGURE_WIDTH_IN, StatusMixin, fmt_value, new_figure, show_figure, tag
from gpsviz.widgets.controls import fmt_marker as _fmt

MARKER = "probe-state"
_NEEDED = ("method", "dim", "strength", "linear_label", "mlp_label", "invariance", "decodability", "etf_distance",
           "effective_rank", "label_efficiency", "etf_means", "etf_ideal")


def _cell(x: float, spec: str = ".3f") -> str:
    """A table cell: the number, or a dash when it was not measured (never "nan" on screen)."""
    return fmt_value(x, spec, missing="–")


def _mean(vals: Sequence[Any]) -> float:
    vals = [v for v in vals if v is not None and v == v]
    return statistics.fmean(vals) if vals else float("nan")


class ProbeExplorer(StatusMixin, widgets.VBox):
    """Interactive table and figures of the probe conditions of trained runs.

    Args:
        records: one dict per trained run, as :func:`gpsviz.experiments.dubois.run_dubois` and
            :func:`~gpsviz.experiments.dubois.notebook_runs` return them (keys ``method``, ``dim``, ``strength``,
            ``linear_label``, ``mlp_label``, the conditions, ``label_efficiency``, ``etf_means``, ``etf_ideal``).
        floors: optional rows ``{"name", "linear_label"}`` (raw pixels, random init) shown under the table.
        method, dim, strength: the runs shown at start (default: the first record's).
        dpi: resolution of the figure's PNG (sharpness only: the figure is shown at its nominal size, at most
            ``controls.MAX_FIGURE_PX`` wide, so its text — at least 9 pt — shows at that size).

    Raises:
        ConfigError: no records, a record missing a field, or a start choice no record has.
    """

    def __init__(self, records: Sequence[dict[str, Any]], floors: Sequence[dict[str, Any]] | None = None, *,
                 method: str | None = None, dim: int | None = None, strength: float | None = None,
                 dpi: float = FIGURE_DPI) -> None:
        super().__init__()
        records = list(records)
        if not records:
            raise ConfigError("ProbeExplorer: no runs to show; train some first (notebook_runs or reproduce dubois)")
        for i, r in enumerate(records):
            missing = [k for k in _NEEDED if k not in r]
            if missing:
                raise ConfigError(f"ProbeExplorer: record {i} lacks {missing}; give records measured by "
                                  "gpsviz.experiments.dubois.measure_run (notebook_runs / reproduce dubois)")
        self.records, self.floors, self.dpi = records, list(floors or []), float(dpi)
        self._hold = False
        self._state: dict[str, Any] = {}
        methods = list(dict.fromkeys(r["method"] for r in records))
        dims = sorted({int(r["dim"]) for r in records})
        strengths = sorted({float(r["strength"]) for r in records})
        first = records[0]
        method = first["method"] if method is None else method
        dim = int(first["dim"]) if dim is None else dim
        strength = float(first["strength"]) if strength is None else strength
        for name, value, options in (("method", method, methods), ("dim", dim, dims),
                                     ("strength", strength, strengths)):
            if value not in options:
                raise ConfigError(f"ProbeExplorer: {name}={value!r} matches no run; choose one of {options}")
        wide = {"description_width": "initial"}
        self.method_menu = widgets.Dropdown(options=methods, value=method, description="method", style=wide)
        self.dim_menu = widgets.Dropdown(options=[(str(d), d) for d in dims], value=int(dim),
                                         description="dimension", style=wide, layout=widgets.Layout(width="190px"))
        self.strength_menu = widgets.Dropdown(options=[(f"{s:g}", s) for s in strengths], value=float(strength),
                                              description="strength", style=wide,
                                              layout=widgets.Layout(width="190px"))
        self.table = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        tag(((self.method_menu, "gpsviz-method"), (self.dim_menu, "gpsviz-dim"),
             (self.strength_menu, "gpsviz-strength"), (self.table, "gpsviz-table"), (self.image, "gpsviz-figure"),
             (self.status, "gpsviz-state")))
        for w in (self.method_menu, self.dim_menu, self.strength_menu):
            w.observe(self._on_change, names="value")
        self.children = [widgets.HBox([self.method_menu, self.dim_menu, self.strength_menu]), self.summary,
                         self.image, self.table, self.status]
        self.add_class("gpsviz-probe-explorer")
        self._redraw(raise_errors=True)

    @classmethod
    def from_results(cls, path: str | Path, **kwargs: Any) -> "ProbeExplorer":
        """The runs of a ``reproduce dubois`` output folder (or its ``results.json``)."""
        p = Path(path)
        p = p / "results.json" if p.is_dir() else p
        if not p.is_file():
            raise ConfigError(f"ProbeExplorer.from_results: {p} does not exist; run "
                              "`python -m gpsviz reproduce dubois` first (or pass its output folder)")
        data = read_json_file(p, "the results of `reproduce dubois`", "run `python -m gpsviz reproduce dubois` "
                              "again (it keeps the finished runs) or pass another output folder")
        if "records" not in data:
            raise ConfigError(f"ProbeExplorer.from_results: {p} holds no 'records' (not a reproduce dubois result)")
        return cls(data["records"], data.get("floors"), **kwargs)

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> dict[str, Any]:
        """What is shown now: method, dim, strength, runs (how many match), linear, mlp and the conditions (means
        over the matching runs' seeds)."""
        return dict(self._state)

    def set_state(self, method: str | None = None, dim: int | None = None, strength: float | None = None) -> dict:
        """Move the controls (any subset) and redraw once; returns :attr:`state`. Raises ConfigError for a value
        no run has."""
        for name, value, menu in (("method", method, self.method_menu), ("dim", dim, self.dim_menu),
                                  ("strength", strength, self.strength_menu)):
            if value is not None and value not in [o[1] if isinstance(o, tuple) else o for o in menu.options]:
                raise ConfigError(f"ProbeExplorer: {name}={value!r} matches no run")
        return self._move_controls([(self.method_menu, method), (self.dim_menu, None if dim is None else int(dim)),
                                    (self.strength_menu, None if strength is None else float(strength))])

    def _chosen(self) -> list[dict[str, Any]]:
        m, d, s = self.method_menu.value, int(self.dim_menu.value), float(self.strength_menu.value)
        return [r for r in self.records if r["method"] == m and int(r["dim"]) == d and float(r["strength"]) == s]

    def _marker(self, end: str, runs: int | None = None, linear: float | None = None,
                etf: float | None = None) -> str:
        s = (f"{MARKER}: method={str(self.method_menu.value).replace(' ', '_')} dim={self.dim_menu.value} "
             f"strength={float(self.strength_menu.value):g}")
        if runs is not None:
            s = s.replace(f"{MARKER}:", f"{MARKER}: runs={runs}") + f" linear={_fmt(linear)} etf={_fmt(etf)}"
        return f"{s} {end}"

    # ------------------------------------------------------------------ drawing
    def _groups(self) -> dict[tuple, list[dict[str, Any]]]:
        groups: dict[tuple, list] = {}
        for r in self.records:
            groups.setdefault((r["method"], int(r["dim"]), float(r["strength"])), []).append(r)
        return groups

    def _table_html(self, key: tuple) -> str:
        head = ("<tr><th>method</th><th>dim</th><th>strength</th><th>seeds</th><th>linear %</th><th>MLP %</th>"
                "<th>invariance ↓</th><th>decodability % ↑</th><th>ETF distance ↓</th><th>effective rank ↑</th></tr>")
        rows = []
        for k, rs in self._groups().items():
            style = ' style="background:#fff3b0;font-weight:bold"' if k == key else ""
            rows.append(
                f"<tr{style}><td>{html.escape(str(k[0]))}</td><td>{k[1]}</td><td>{k[2]:g}</td><td>{len(rs)}</td>"
                f"<td>{_cell(100 * _mean([r['linear_label'] for r in rs]), '.1f')}</td>"
                f"<td>{_cell(100 * _mean([r['mlp_label'] for r in rs]), '.1f')}</td>"
                f"<td>{_cell(_mean([r['invariance'] for r in rs]))}</td>"
                f"<td>{_cell(100 * _mean([r['decodability'] for r in rs]), '.1f')}</td>"
                f"<td>{_cell(_mean([r['etf_distance'] for r in rs]))}</td>"
                f"<td>{_cell(_mean([r['effective_rank'] for r in rs]), '.1f')}</td></tr>")
        for f in self.floors:
            rows.append(f"<tr style='color:#777'><td>{html.escape(str(f.get('name', 'floor')))} (floor)</td>"
                        f"<td colspan=3></td><td>{_cell(100 * _mean([f.get('linear_label')]), '.1f')}</td>"
                        f"<td colspan=5></td></tr>")
        return ('<table style="border-collapse:collapse;font-size:12px" border="1" cellpadding="3">'
                + head + "".join(rows) + "</table>")

    def _figure(self, key: tuple, chosen: list[dict[str, Any]]):
        """The label-efficiency curves of every method at the chosen dimension and strength (the chosen method
        thick) beside the chosen run's class means against the ideal simplex."""
        fig = new_figure()
        fig.set_size_inches(FIGURE_WIDTH_IN, 5.0)
        fig.set_layout_engine("constrained", w_pad=0.08)             # room for the legends below the panels
        gs = fig.add_gridspec(1, 2, width_ratios=[1.55, 1.0])
        ax1 = fig.add_subplot(gs[0])
        same_setting = [r for r in self.records if int(r["dim"]) == key[1] and float(r["strength"]) == key[2]]
        floors = [f["linear_label"] for f in self.floors if f.get("linear_label") is not None]
        plot_label_efficiency(same_setting or chosen, ax=ax1, highlight=key[0],
                              floor=max(floors) if floors else None)     # the higher floor (all labels)
        ax1.set_title(f"label efficiency at dim {key[1]}, strength {key[2]:g}\n(thick: {key[0]}; solid: linear, "
                      "dashed: MLP probe)", fontsize=10)
        r0 = chosen[0]
        plot_simplex(r0["etf_means"], r0["etf_ideal"], r0.get("classes"), ax=fig.add_subplot(gs[1]),
                     title=f"{key[0]}: class means (seed {r0.get('seed', 0)})\nvs the ideal simplex")
        return fig

    def _missing_figure(self, key: tuple):
        """No run has these settings: a figure (no axes) that says so and lists the settings that were trained."""
        trained: dict[str, list[str]] = {}
        for m, d, st in self._groups():
            trained.setdefault(str(m), []).append(f"{d} × {st:g}")
        lines = [f"No run was trained with method {key[0]}, dimension {key[1]}, strength {key[2]:g}.",
                 "Trained runs (method: dimension × strength):"]
        lines += [f"    {m}: {', '.join(v)}" for m, v in trained.items()]
        fig = new_figure()
        fig.set_size_inches(FIGURE_WIDTH_IN, 0.4 + 0.27 * len(lines))
        fig.text(0.02, 0.5, "\n".join(lines), ha="left", va="center", fontsize=11, linespacing=1.5)
        return fig

    def _redraw(self, raise_errors: bool = False) -> None:
        self._set_status(self._marker("busy"))
        key = (self.method_menu.value, int(self.dim_menu.value), float(self.strength_menu.value))
        chosen = self._chosen()
        try:
            self.table.value = self._table_html(key)
            fig = self._figure(key, chosen) if chosen else self._missing_figure(key)
            show_figure(self.image, fig, dpi=self.dpi)
        except Exception as e:
            self._show_error("Could not show the runs", e, raise_errors)
            return
        lin = _mean([r["linear_label"] for r in chosen])
        st = {k: _mean([r[k] for r in chosen]) for k in ("mlp_label", "invariance", "decodability", "etf_distance",
                                                          "effective_rank")}
        if chosen:
            self.summary.value = (
                '<div style="font-size:14px;line-height:1.5">'
                f"<b>{html.escape(str(key[0]))}</b>, dimension {key[1]}, strength {key[2]:g}: {len(chosen)} run(s); "
                f"linear probe {_cell(100 * lin, '.1f')} %, MLP probe {_cell(100 * st['mlp_label'], '.1f')} % "
                f"&nbsp;·&nbsp; invariance {_cell(st['invariance'])} (0 = views coincide), decodability "
                f"{_cell(100 * st['decodability'], '.1f')} % (which held-out image a view came from), ETF distance "
                f"{_cell(st['etf_distance'])} (instance-level; best −1/(N−1), just below 0, when the two views of "
                f"every image coincide and the images are centred), effective rank "
                f"{_cell(st['effective_rank'], '.1f')}.</div>")
        else:
            self.summary.value = ('<div style="font-size:14px;color:#a33">No run was trained with these settings; '
                                  "the figure and the table list the ones that were.</div>")
        self._state = {"method": key[0], "dim": key[1], "strength": key[2], "runs": len(chosen), "linear": lin,
                       "mlp": st["mlp_label"], **{k: st[k] for k in ("invariance", "decodability", "etf_distance",
                                                                        "effective_rank")}}
        self._set_status(self._marker("done", len(chosen), lin, st["etf_distance"]))


__all__ = ["ProbeExplorer"]
