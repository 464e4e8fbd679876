"""Record the view weights a UOTA run's loss used, per view and epoch, for the OOD explorer and the AUROC.

    rec = ViewWeightRecorder(probe=512, path="runs/uota/view_weights.pt")
    train(cfg, "runs/uota", callbacks=[rec])
    log = load_view_weights("runs/uota")                   # ViewWeightLog: one row per recorded view
    log.epoch_rows(3)                                      # the views of epoch 3
    ground_truth(log, dataset)                             # + coverage of each view (the object mask × crop box)

Each epoch draws a permutation of the training set, so every image appears once per epoch with its M views. The
recorder keeps, for a fixed set of **probe images** (the first ``probe`` rows of the training set, or the rows
given), every view the training step made of them: the weight the loss used (``weights``), the weight UOTA
computed (``uota_weights``, also during its warm-up, when the loss still used uniform weights), its per-view loss,
its augmentation parameters and plan fields. Nothing is recomputed: the values come from the step's outputs
(:func:`gpsviz.step.ssl_step`). Weights are stored × M (the step's view count), so 1 is the uniform weight.

After each epoch the log is written atomically to ``path`` (temp file + rename; loaded with
``torch.load(weights_only=True)``), so a run folder carries it and the explorer can slide over training.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from scipy.stats import pearsonr, rankdata, spearmanr

from gpsviz.augment.coverage import view_coverage
from gpsviz.augment.params import PARAM_NAMES
from gpsviz.callbacks import Callback
from gpsviz.errors import CheckpointError, ConfigError, GpsvizError
from gpsviz.utils import atomic_write_bytes

__all__ = ["ViewWeightRecorder", "ViewWeightLog", "load_view_weights", "ground_truth", "FILE_NAME", "FIELDS"]

FILE_NAME = "view_weights.pt"
#: Per-view fields of the log (each a tensor with one row per recorded view).
FIELDS = ("epoch", "step", "row", "instance", "slot", "is_global", "weight", "uota_weight", "uota_distance",
          "per_view", "applied", "params")
#: Diagnostic fields (logs written before they existed lack them; they load as NaN): the step's Euclidean and
#: Ledoit–Wolf-shrunk distances of each view (:func:`gpsviz.objectives.uota.uota_distances`), and the step's
#: shrinkage α and share of Σ's trace in its 8 largest eigenvalues, repeated on each of its views.
DIAGNOSTIC_FIELDS = ("uota_euclidean", "uota_shrunk", "lw_alpha", "sigma_top8")


@dataclass
class ViewWeightLog:
    """Recorded views: ``data[field]`` tensors of V rows (``params`` V×P with columns ``param_names``).

    ``weight``: the weight the loss used × M (1 = uniform); ``uota_weight``: the UOTA weight × M computed at that
    step (NaN when the run has no UOTA weighting); ``applied``: whether the loss used the UOTA weight (past the
    warm-up); ``row``: dataset row of the view's image; ``instance``/``slot``/``is_global``: its place in the plan.
    """

    data: dict[str, torch.Tensor]
    param_names: tuple[str, ...] = PARAM_NAMES

    def __len__(self) -> int:
        return int(self.data["epoch"].shape[0])

    @property
    def epochs(self) -> list[int]:
        """The recorded epochs (1-based, ascending)."""
        return sorted({int(e) for e in self.data["epoch"].tolist()})

    @property
    def rows(self) -> list[int]:
        """The dataset rows (probe images) that have views in the log, ascending."""
        return sorted({int(r) for r in self.data["row"].tolist()})

    def select(self, mask: torch.Tensor) -> "ViewWeightLog":
        """The views where ``mask`` (bool V) is True."""
        return ViewWeightLog({k: v[mask] for k, v in self.data.items()}, self.param_names)

    def epoch_rows(self, epoch: int) -> "ViewWeightLog":
        """The views recorded in ``epoch`` (1-based)."""
        return self.select(self.data["epoch"] == int(epoch))

    def image(self, row: int, epoch: int) -> "ViewWeightLog":
        """The M views of dataset row ``row`` in ``epoch``, in plan order (slot)."""
        sel = self.select((self.data["epoch"] == int(epoch)) & (self.data["row"] == int(row)))
        order = torch.argsort(sel.data["slot"], stable=True)
        return ViewWeightLog({k: v[order] for k, v in sel.data.items()}, self.param_names)

    def scores(self) -> torch.Tensor:
        """The weights to score against ground truth: UOTA's where recorded, else the loss's. float32 V."""
        u = self.data["uota_weight"]
        return torch.where(torch.isnan(u), self.data["weight"], u)


def _cpu(t: Any) -> torch.Tensor:
    return torch.as_tensor(t).detach().to("cpu", copy=True)


class ViewWeightRecorder(Callback):
    """Record the weights the loss used for the views of a fixed set of probe images (see the module docstring).

    Args:
        probe: the probe images: an int n (rows 0..n−1 of the training set) or a sequence of dataset rows.
        path: where to write the log after each epoch (atomic); None keeps it in memory only. An existing file
            is read first (a resumed run keeps the epochs it recorded before).
    """

    def __init__(self, probe: int | Sequence[int] | torch.Tensor = 512, path: str | Path | None = None) -> None:
        if isinstance(probe, bool):
            raise GpsvizError("ViewWeightRecorder: probe is a number of images or a list of dataset rows")
        if isinstance(probe, int):
            if probe < 1:
                raise GpsvizError(f"ViewWeightRecorder: probe must be >= 1 images, got {probe}")
            self._limit: int | None = probe
            self._rows: torch.Tensor | None = None
        else:
            self._limit = None
            self._rows = torch.as_tensor(list(probe) if not isinstance(probe, torch.Tensor) else probe).long()
            if self._rows.numel() == 0:
                raise GpsvizError("ViewWeightRecorder: probe rows are empty; give at least one dataset row")
        self.path = None if path is None else Path(path)
        self._parts: list[dict[str, torch.Tensor]] = []
        self._done: list[dict[str, torch.Tensor]] = []
        if self.path is not None and self.path.exists():
            self._done = [load_view_weights(self.path).data]

    def _keep(self, rows: torch.Tensor) -> torch.Tensor:
        if self._limit is not None:
            return rows < self._limit
        return torch.isin(rows, self._rows)

    def on_step(self, batch: Any, outputs: dict[str, Any]) -> None:
        rows = _cpu(batch.rows).long()
        keep = self._keep(rows)
        if not bool(keep.any()):
            return
        m = rows.shape[0]
        w = _cpu(outputs["weights"]).float() * m
        uw_raw = outputs.get("uota_weights")
        uw = _cpu(uw_raw).float() * m if uw_raw is not None else torch.full_like(w, float("nan"))
        ud = outputs.get("uota_distance")
        ud = _cpu(ud).float() if ud is not None else torch.full_like(w, float("nan"))
        # the loss used UOTA's weights when they are the weights it returned (past the warm-up)
        applied = torch.full_like(keep, uw_raw is not None and bool(torch.allclose(
            _cpu(outputs["weights"]).float(), _cpu(uw_raw).float(), rtol=1e-5, atol=1e-9)))
        n = int(keep.sum())
        self._parts.append({
            "epoch": torch.full((n,), int(batch.epoch) + 1, dtype=torch.long),
            "step": torch.full((n,), int(batch.step), dtype=torch.long),
            "row": rows[keep], "instance": _cpu(batch.instance_ids).long()[keep],
            "slot": _cpu(batch.plan.slots).long()[keep], "is_global": _cpu(batch.is_global).bool()[keep],
            "weight": w[keep], "uota_weight": uw[keep], "uota_distance": ud[keep],
            "per_view": _cpu(outputs["per_view"]).float()[keep], "applied": applied[keep],
            "params": _cpu(batch.params.values).float()[keep],
            **self._diagnostics(outputs, w.shape[0], keep),
        })

    @staticmethod
    def _diagnostics(outputs: dict[str, Any], m: int, keep: torch.Tensor) -> dict[str, torch.Tensor]:
        nan = torch.full((m,), float("nan"))
        sigma = outputs.get("uota_sigma")
        sigma = _cpu(sigma).float() if sigma is not None else torch.full((3,), float("nan"))
        got = {"uota_euclidean": outputs.get("uota_euclidean"), "uota_shrunk": outputs.get("uota_shrunk")}
        got = {k: _cpu(v).float() if v is not None else nan for k, v in got.items()}
        got.update(lw_alpha=sigma[0].expand(m), sigma_top8=sigma[1].expand(m))
        return {k: v[keep] for k, v in got.items()}

    def on_epoch(self, row: dict[str, float]) -> None:
        if self._parts:
            epoch = int(self._parts[0]["epoch"][0])
            self._done = [{k: v[d["epoch"] != epoch] for k, v in d.items()} for d in self._done]  # a re-run epoch
            self._done.append(_cat(self._parts))
            self._parts = []
        if self.path is not None and self._done:
            self.save(self.path)

    @property
    def log(self) -> ViewWeightLog:
        """Everything recorded so far (finished epochs and the running one)."""
        parts = self._done + ([_cat(self._parts)] if self._parts else [])
        if not parts:
            return ViewWeightLog({f: torch.empty((0, len(PARAM_NAMES)) if f == "params" else (0,))
                                  for f in FIELDS + DIAGNOSTIC_FIELDS})
        return ViewWeightLog(_cat(parts))

    def save(self, path: str | Path) -> Path:
        """Write the finished epochs to ``path`` atomically; returns the path."""
        buf = io.BytesIO()
        torch.save({"version": 1, "param_names": list(PARAM_NAMES), **_cat(self._done)}, buf)
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)


def _cat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


#: The kind each field must have: "int" (stored as int64), "bool", or "float" (float32; NaN allowed).
_KINDS = {"epoch": "int", "step": "int", "row": "int", "instance": "int", "slot": "int", "is_global": "bool",
          "weight": "float", "uota_weight": "float", "uota_distance": "float", "per_view": "float",
          "applied": "bool", "params": "float", **{f: "float" for f in DIAGNOSTIC_FIELDS}}


def load_view_weights(path: str | Path) -> ViewWeightLog:
    """The log of a run folder (``<run>/view_weights.pt``) or of a file.

    Raises :class:`~gpsviz.errors.CheckpointError` naming the file when it is missing, truncated, not a
    view-weight log, or hand-edited into wrong types or shapes (every field a tensor of V rows, ``params`` V×P
    with P the recorded ``param_names``, which must be this version's :data:`PARAM_NAMES`)."""
    p = Path(path)
    if p.is_dir():
        p = p / FILE_NAME
    if not p.exists():
        raise CheckpointError(f"{p} does not exist: train with callbacks=[ViewWeightRecorder(path=...)] (or use "
                              "gpsviz.experiments.uota.train_uota_run) to record the view weights")
    redo = "delete it and train again (or train into a new folder)"
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file, or one holding objects weights_only refuses
        raise CheckpointError(f"{p} is not a view-weight log ({type(e).__name__}: {str(e)[:200]}); {redo}") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{p} is not a view-weight log (it holds a {type(raw).__name__}, not a dict of "
                              f"fields); {redo}")
    missing = [f for f in FIELDS if f not in raw]
    if missing:
        raise CheckpointError(f"{p} is not a complete view-weight log: it lacks the fields {missing}; {redo}")
    names = raw.get("param_names", list(PARAM_NAMES))
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{p}: param_names must be a list of column names, got {type(names).__name__}; {redo}")
    if tuple(names) != tuple(PARAM_NAMES):
        raise CheckpointError(f"{p} records the parameter columns {list(names)}, not this gpsviz version's "
                              f"{list(PARAM_NAMES)}; {redo}")
    if isinstance(raw["epoch"], torch.Tensor) and raw["epoch"].ndim == 1:    # diagnostics: absent in older logs
        raw = {**{f: torch.full(raw["epoch"].shape, float("nan")) for f in DIAGNOSTIC_FIELDS}, **raw}
    bad = [f"{f} ({type(raw[f]).__name__})" for f in FIELDS + DIAGNOSTIC_FIELDS
           if f in raw and not isinstance(raw[f], torch.Tensor)]
    if bad:
        raise CheckpointError(f"{p}: the fields {', '.join(bad)} are not tensors; {redo}")
    n = int(raw["epoch"].shape[0]) if raw["epoch"].ndim >= 1 else -1
    data: dict[str, torch.Tensor] = {}
    for f in FIELDS + DIAGNOSTIC_FIELDS:
        t, want = raw[f], ((n, len(PARAM_NAMES)) if f == "params" else (n,))
        if tuple(t.shape) != want:
            raise CheckpointError(f"{p}: field {f!r} has shape {tuple(t.shape)}, expected {want} (one row per "
                                  f"recorded view); {redo}")
        kind = _KINDS[f]
        ok = (t.dtype == torch.bool) if kind == "bool" else \
            (not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool) if kind == "int" \
            else t.dtype.is_floating_point
        if not ok:
            raise CheckpointError(f"{p}: field {f!r} has dtype {str(t.dtype).replace('torch.', '')}, expected "
                                  f"{ {'int': 'an integer type', 'bool': 'bool', 'float': 'a float type'}[kind]}; "
                                  f"{redo}")
        data[f] = t.long() if kind == "int" else t.float() if kind == "float" else t
    if n and (int(data["epoch"].min()) < 1 or int(data["row"].min()) < 0 or int(data["slot"].min()) < 0):
        raise CheckpointError(f"{p}: epochs must be ≥ 1 and rows and slots ≥ 0; {redo}")
    return ViewWeightLog(data, tuple(PARAM_NAMES))


def ground_truth(log: ViewWeightLog, dataset: Any, threshold: float = 0.10) -> dict[str, torch.Tensor]:
    """Each recorded view's object coverage (``view_coverage``: dataset masks × the view's crop box) and whether
    it misses the object (coverage < ``threshold``). Returns ``{"coverage": float32 V, "miss": bool V}``."""
    cov = view_coverage(getattr(dataset, "masks", None), log.data["row"], log.data["params"])
    return {"coverage": cov, "miss": cov < threshold}


# ---------------------------------------------------------------------------------------------- UOTA view weights
def _as_vector(x, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64).reshape(-1)
    return a


def uota_auroc(weights: torch.Tensor | np.ndarray, coverage: torch.Tensor | np.ndarray,
               threshold: float = 0.10) -> float:
    """AUROC with which a LOW weight finds the views that miss the object (coverage < ``threshold``).

    Args:
        weights: float V, the views' weights (any scale: only their order matters).
        coverage: float V in [0, 1], share of the object inside each view (NaN views are left out).
        threshold: a view with coverage below it "misses" the object (a positive of the detector).
    Returns:
        P(weight of a missing view < weight of a keeping view), ties counting ½ (Mann–Whitney U / (n₊·n₋));
        1 = every missing view gets a lower weight than every keeping one, 0.5 = chance. NaN when one of the two
        groups is empty.
    """
    w, c = _as_vector(weights, "weights"), _as_vector(coverage, "coverage")
    if w.shape != c.shape:
        raise ConfigError(f"uota_auroc: weights ({w.shape[0]}) and coverage ({c.shape[0]}) need one value per view")
    ok = ~(np.isnan(w) | np.isnan(c))
    w, c = w[ok], c[ok]
    miss = c < threshold
    n_pos, n_neg = int(miss.sum()), int((~miss).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(-w)                                   # score = −weight: high score ⇒ predicted "miss"
    u = ranks[miss].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def weight_coverage_correlation(weights: torch.Tensor | np.ndarray,
                                coverage: torch.Tensor | np.ndarray) -> dict[str, float]:
    """Spearman and Pearson correlation of the views' weights with their object coverage (NaN views left out).
    Returns ``{"spearman": ρ, "pearson": r}`` (NaN with fewer than 3 views or a constant input)."""
    w, c = _as_vector(weights, "weights"), _as_vector(coverage, "coverage")
    if w.shape != c.shape:
        raise ConfigError(f"weight_coverage_correlation: weights ({w.shape[0]}) and coverage ({c.shape[0]}) "
                          "need one value per view")
    ok = ~(np.isnan(w) | np.isnan(c))
    w, c = w[ok], c[ok]
    if w.size < 3 or np.ptp(w) == 0 or np.ptp(c) == 0:
        return {"spearman": float("nan"), "pearson": float("nan")}
    return {"spearman": float(spearmanr(w, c).statistic), "pearson": float(pearsonr(w, c).statistic)}


def uota_report(weights, coverage, threshold: float = 0.10) -> dict[str, float]:
    """:func:`uota_auroc` and :func:`weight_coverage_correlation` together, plus the share of missing views:
    ``{"auroc", "spearman", "pearson", "miss_rate", "n_views"}``."""
    c = _as_vector(coverage, "coverage")
    valid = c[~np.isnan(c)]
    return {"auroc": uota_auroc(weights, coverage, threshold), **weight_coverage_correlation(weights, coverage),
            "miss_rate": float((valid < threshold).mean()) if valid.size else float("nan"),
            "n_views": int(valid.size)}
