"""SPPS positives: a high-precision *set* of semantic neighbours per image, added next to the anchor's own pair.

Before training, :meth:`SemanticSetPositives.prepare` embeds every image with a prior (any GPS prior, a gpsviz
run's checkpoint with ``prior="checkpoint", run=...``, or the model being trained), L2-normalises it and keeps,
for each image, up to ``k`` nearest others whose cosine similarity is at least a threshold: its semantic set.
Each batch holds the anchor's two augmented views (always) plus ``members`` views of images drawn from its set;
all of them share one group id (positives of each other, multi-positive loss) and one instance id::

    src = SemanticSetPositives(prior="hog-invariant", k=4)   # threshold: the 0.75 quantile of the similarities
    src.prepare(train_ds)
    src.purity(), src.set_sizes()                    # share of set members with the anchor's class; sizes N
    plan = src.plan(anchors, generator=g)             # M = (2 + members)·B views

GPS *replaces* the anchor's augmented partner by one neighbour; SPPS *adds* a set next to it. An anchor whose
set is empty gets extra views of itself (the batch keeps (2 + members)·B views, so processes stay in step).
``target_purity`` picks the threshold from the labels instead (the lowest threshold whose sets reach that
purity): an analysis tool that uses labels, not an SSL method — say so when you report it.
``threshold_quantile`` picks it without labels: the given quantile of all N×K similarities (0.75 with k=4 keeps
about one member per image on average, the most similar pairs of the whole dataset), so one setting suits
encoders whose similarities live on different scales. It is the default rule (:data:`DEFAULT_QUANTILE`): a fixed
``threshold``, when given, wins over it, and ``target_purity`` wins over both. Reports: :meth:`SemanticSetPositives.report` /
:func:`set_report` (per-anchor sets, sizes, purities) and :func:`purity_size_curve` (the trade-off over
thresholds); :func:`semantic_sets` mines and returns a prepared source in one call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from gpsviz.errors import ConfigError, DataError
from gpsviz.knn import knn_search
from gpsviz.positives.base import (PRIOR_OPTS, PositiveSource, ViewPlan, _as_anchors, check_prior_kwargs, merge_groups,
                                   register_positives)
from gpsviz.priors import compute_prior
from gpsviz.purity import per_anchor_purity
from gpsviz.registry import Opt, check_values

__all__ = ["DEFAULT_QUANTILE", "SemanticSetPositives", "SetReport", "threshold_for_purity", "semantic_sets", "set_report",
           "purity_size_curve"]

#: The label-free mining rule when no fixed ``threshold`` is given: this quantile of the N×k mined similarities.
DEFAULT_QUANTILE = 0.75


def threshold_for_purity(sims: torch.Tensor, same: torch.Tensor, target: float) -> float:
    """The lowest cosine threshold t such that the members with similarity ≥ t are at least ``target`` pure.

    Args:
        sims: float N×K similarities of each image's K nearest others (descending per row).
        same: bool N×K, the neighbour has the anchor's label.
    Returns the threshold (``inf`` when no threshold reaches the target)."""
    s, order = sims.flatten().sort(descending=True)
    hits = same.flatten()[order].float().cumsum(0)                     # members kept when cutting after i
    purity = hits / torch.arange(1, s.numel() + 1)
    ok = (purity >= target).nonzero().flatten()
    if ok.numel() == 0:
        return float("inf")
    return float(s[ok[-1]])


@register_positives("semantic")
class SemanticSetPositives(PositiveSource):
    """SPPS: the anchor's pair plus views of members of its semantic set (see the module docstring).

    Args:
        prior: a GPS prior name, ``"checkpoint"`` (with ``run=``), or ``"model"`` (the model being trained).
        prior_options: options of the prior (further keywords are merged into them).
        k: largest set size (nearest others considered).
        threshold: a fixed cosine similarity a member must reach (in [−1, 1]); ``None`` (default) takes the
            ``threshold_quantile`` rule. Ignored when ``target_purity`` is set.
        target_purity: choose the threshold for this label purity (uses labels; for analysis and teaching).
        threshold_quantile: choose the threshold as this quantile (in (0, 1)) of the mined similarities, without
            labels; used when ``threshold`` is ``None`` (default :data:`DEFAULT_QUANTILE` = 0.75, one rule for the
            recipes, notebook 03's reproduction and ``reproduce spps``).
        members: extra views per anchor drawn from its set (with replacement).
        root: data folder for the prior cache. embedding: a precomputed N×D prior. progress: progress bars.
    """

    name = "semantic"
    options = {
        **PRIOR_OPTS,
        "k": Opt(int, 1, 1000, note="largest set size"),
        "threshold": Opt(float, -1.0, 1.0, optional=True, note="a cosine similarity; None: the quantile rule"),
        "target_purity": Opt(float, 0.0, 1.0, lo_open=True, optional=True),
        "members": Opt(int, 1, 32, note="extra views per anchor: a batch holds (2 + members)·B views"),
        "threshold_quantile": Opt(float, 0.0, 1.0, lo_open=True, hi_open=True, optional=True, note="e.g. 0.75"),
    }

    @classmethod
    def view_slots(cls, options: dict[str, Any]) -> tuple[int, int]:
        """2 + members slots (the anchor twice, then the set members), every one needed."""
        n = 2 + int(options.get("members", 1))
        return n, n

    @classmethod
    def validate_options(cls, options: dict[str, Any], owner: str) -> None:
        """The prior options (``prior_options`` and further keywords) against the prior's specs."""
        check_prior_kwargs(owner, options, cls.options)

    def __init__(self, prior: str = "hog-invariant", prior_options: dict[str, Any] | None = None, k: int = 4,
                 threshold: float | None = None, target_purity: float | None = None, members: int = 1,
                 root: str | None = None, embedding: torch.Tensor | None = None, progress: bool = True,
                 threshold_quantile: float | None = None, **prior_kwargs: Any) -> None:
        super().__init__()
        given = dict(prior=prior, prior_options=prior_options, k=k, threshold=threshold, target_purity=target_purity,
                     members=members, root=root, embedding=embedding, progress=progress,
                     threshold_quantile=threshold_quantile)
        o = check_values("positive source 'semantic'", SemanticSetPositives, {**given, **prior_kwargs})
        self.threshold_quantile = threshold_quantile
        self.prior, self.k, self.members = prior, k, members
        self.prior_options = check_prior_kwargs("positive source 'semantic'", o, self.options)
        # the rule: target_purity → a fixed threshold → the quantile (given, else DEFAULT_QUANTILE); ``threshold``
        # holds the fixed value until mine() resolves the others
        self.fixed = threshold is not None
        if not self.fixed and threshold_quantile is None:
            self.threshold_quantile = DEFAULT_QUANTILE
        self.threshold, self.target_purity = (float(threshold) if self.fixed else float("nan")), target_purity
        self.root, self.embedding, self.progress = root, embedding, o["progress"]
        self.table: torch.Tensor | None = None        # N×K neighbour rows
        self.sims: torch.Tensor | None = None         # N×K cosine similarities
        self.valid: torch.Tensor | None = None        # N×K member of the set
        self.labels: torch.Tensor | None = None

    def prepare(self, dataset: Any, generator: torch.Generator | None = None, **ctx: Any) -> None:
        """Embed ``dataset`` (prior, ``embedding`` or ``embed_fn`` for ``prior="model"``) and mine the sets."""
        embed_fn: Callable[[Any], torch.Tensor] | None = ctx.get("embed_fn")
        emb = ctx.get("embedding", self.embedding)
        if emb is None and self.prior == "model":
            if embed_fn is None:
                raise ConfigError("semantic: prior='model' needs prepare(dataset, embed_fn=...) (the loop passes it)")
            emb = embed_fn(dataset)
        elif emb is None:
            emb = compute_prior(self.prior, dataset, root=ctx.get("root", self.root), progress=self.progress,
                                **self.prior_options)
        emb = torch.as_tensor(emb).detach().float().cpu()
        if emb.ndim != 2 or emb.shape[0] != len(dataset):
            raise DataError(f"semantic: the embedding must be N×D with N={len(dataset)}, got {tuple(emb.shape)}")
        labels = getattr(dataset, "labels", None)
        self.mine(emb, None if labels is None else torch.as_tensor(labels))

    def mine(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Sets from an N×D embedding: the ``k`` nearest others by cosine similarity, kept above the threshold."""
        n = embedding.shape[0]
        if n < 2:
            raise DataError(f"semantic: need at least 2 images to mine sets, got {n}")
        dist, idx = knn_search(embedding, None, min(self.k, n - 1), metric="cosine", exclude_self=True)
        self.table, self.sims = idx.long(), (1.0 - dist).float()                  # N×K, descending similarity
        self.labels = None if labels is None else labels.long().cpu()
        if self.target_purity is not None:
            if self.labels is None or bool((self.labels < 0).any()):
                raise ConfigError("semantic: target_purity needs a fully labelled dataset")
            same = self.labels[self.table] == self.labels[:, None]
            self.threshold = threshold_for_purity(self.sims, same, float(self.target_purity))
        elif not self.fixed:
            self.threshold = float(torch.quantile(self.sims.flatten(), float(self.threshold_quantile)))
        self.valid = self.sims >= self.threshold

    # ------------------------------------------------------------------ reports
    def set_sizes(self) -> torch.Tensor:
        """int64 N, the size of each image's semantic set."""
        self._check_ready()
        return self.valid.sum(1)

    def purity(self) -> float:
        """Share of all set members that have their anchor's class (NaN when no set has a member)."""
        self._check_ready()
        if self.labels is None:
            raise ConfigError("semantic: purity needs labels (prepare with a labelled dataset)")
        return self.report().purity

    def report(self, threshold: float | None = None, k: int | None = None) -> "SetReport":
        """Per-anchor sets, sizes and purities for ``threshold`` and ``k`` (default: the source's own) from the
        mined table: no new search, so any ``k`` up to the mined one and any threshold are cheap (see
        :func:`set_report`)."""
        self._check_ready()
        return set_report(self.table, self.sims, self.labels, self.threshold if threshold is None else threshold,
                          self.table.shape[1] if k is None else k)

    def purity_size_curve(self, thresholds: Sequence[float] | None = None, k: int | None = None
                          ) -> dict[str, list[float]]:
        """The purity–size trade-off over ``thresholds`` (see :func:`purity_size_curve`)."""
        self._check_ready()
        return purity_size_curve(self.table, self.sims, self.labels, thresholds,
                                 self.table.shape[1] if k is None else k)

    def _check_ready(self) -> None:
        if self.table is None:
            raise ConfigError("semantic: call prepare(dataset) before using the sets")

    # ------------------------------------------------------------------ sampling
    def plan(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> ViewPlan:
        """anchors int64 B → (2 + members)·B views: the anchor twice, then ``members`` rounds of set members
        (one per anchor each; the anchor itself when its set is empty). Instance = the anchor's position."""
        self._check_ready()
        anchors = _as_anchors(anchors)
        b = anchors.shape[0]
        sizes = self.valid[anchors].sum(1)                                       # B
        u = torch.rand(self.members, b, generator=generator)                     # members×B
        pick = (u * sizes.clamp(min=1)).long()                                   # index into the valid prefix
        chosen = self.table[anchors][torch.arange(b)[None, :], pick]             # members×B (sims sorted)
        extra = torch.where(sizes[None, :] > 0, chosen, anchors[None, :])        # empty set → the anchor
        rows = torch.cat([anchors, anchors, extra.flatten()])                    # M
        inst = torch.arange(b).repeat(2 + self.members)                          # M
        groups = merge_groups(inst, rows)
        m = rows.shape[0]
        return ViewPlan(rows=rows, group_ids=groups, instance_ids=inst,
                        slots=torch.arange(2 + self.members).repeat_interleave(b),
                        is_global=torch.ones(m, dtype=torch.bool), sizes=torch.zeros(m, dtype=torch.long))

    def state_dict(self) -> dict[str, Any]:
        return {"table": self.table, "sims": self.sims, "threshold": self.threshold, "labels": self.labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.table, self.sims, self.labels = state["table"], state["sims"], state["labels"]
        self.threshold = float(state["threshold"])
        self.valid = self.sims >= self.threshold

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(prior=self.prior, k=self.k, threshold=self.threshold, members=self.members,
                 threshold_quantile=self.threshold_quantile)
        return d


# ---------------------------------------------------------------------------------------------- reports
@dataclass
class SetReport:
    """The semantic sets of every image for one (threshold, k), with their sizes and purities.

    Attributes:
        threshold, k: the cosine threshold and the largest set size used.
        members: int64 N×k, the members of each image's set, most similar first; ``-1`` pads a smaller set.
        sims: float32 N×k cosine similarities of the k nearest others (members or not).
        sizes: int64 N, the set size of each image (0 … k).
        anchor_purity: float32 N, share of each set's members with the anchor's class (NaN: empty set or no labels).
        purity: share of *all* members, pooled over sets, with their anchor's class (what
            :meth:`SemanticSetPositives.purity` and :func:`threshold_for_purity` use; NaN when no set has a member).
        mean_size: mean set size over all images (empty sets count as 0).
        empty: share of images whose set is empty (SPPS then adds views of the anchor itself).
    """

    threshold: float
    k: int
    members: torch.Tensor
    sims: torch.Tensor
    sizes: torch.Tensor
    anchor_purity: torch.Tensor
    purity: float
    mean_size: float
    empty: float

    def summary(self) -> dict[str, float]:
        """The scalars: threshold, k, purity, mean_size, empty, images, members (total)."""
        return {"threshold": self.threshold, "k": self.k, "purity": self.purity, "mean_size": self.mean_size,
                "empty": self.empty, "images": int(self.sizes.numel()), "members": int(self.sizes.sum())}

    def size_counts(self) -> torch.Tensor:
        """int64 k+1: how many images have a set of size 0, 1, …, k."""
        return torch.bincount(self.sizes, minlength=self.k + 1)


def _check_table(table: torch.Tensor, sims: torch.Tensor, k: int) -> None:
    if table.ndim != 2 or table.shape != sims.shape:
        raise ConfigError(f"semantic sets: table and sims must both be N×K, got {tuple(table.shape)} and "
                          f"{tuple(sims.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= table.shape[1]:
        raise ConfigError(f"semantic sets: k must be an integer in [1, {table.shape[1]}] (the mined table's width; "
                          f"mine with a larger k to see larger sets), got {k!r}")


def set_report(table: torch.Tensor, sims: torch.Tensor, labels: torch.Tensor | None, threshold: float,
               k: int) -> SetReport:
    """Sets, sizes and purities from a mined neighbour table.

    Args:
        table: int64 N×K, each image's K nearest others (most similar first; e.g. ``source.table``).
        sims: float N×K their cosine similarities (descending per row).
        labels: int64 N classes (``-1`` unknown) or None (purities are then NaN).
        threshold: a member's similarity must be ≥ this (cosine, in [−1, 1]).
        k: keep at most the first k columns (1 ≤ k ≤ K).
    Returns a :class:`SetReport`. Purity goes through :func:`gpsviz.purity.per_anchor_purity`."""
    table, sims = torch.as_tensor(table).long(), torch.as_tensor(sims).float()
    _check_table(table, sims, k)
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"semantic sets: threshold is a cosine similarity in [-1, 1], got {threshold!r}")
    idx, s = table[:, :k], sims[:, :k]
    valid = s >= float(threshold)                                                   # N×k
    sizes = valid.sum(1)
    members = torch.where(valid, idx, torch.full_like(idx, -1))
    n = table.shape[0]
    if labels is None:
        per = torch.full((n,), float("nan"))
        pooled = float("nan")
    else:
        per = per_anchor_purity(idx, torch.as_tensor(labels).long(), valid=valid)    # N, NaN for empty sets
        ok = ~torch.isnan(per)
        w = sizes[ok].float()
        pooled = float((per[ok] * w).sum() / w.sum()) if float(w.sum()) > 0 else float("nan")
    return SetReport(threshold=float(threshold), k=int(k), members=members, sims=s, sizes=sizes,
                     anchor_purity=per, purity=pooled, mean_size=float(sizes.float().mean()),
                     empty=float((sizes == 0).float().mean()))


def purity_size_curve(table: torch.Tensor, sims: torch.Tensor, labels: torch.Tensor | None,
                      thresholds: Sequence[float] | None = None, k: int | None = None) -> dict[str, list[float]]:
    """The purity–size trade-off of semantic sets: raising the threshold makes sets purer and smaller.

    Args:
        table, sims, labels: as in :func:`set_report` (N×K, N×K, N).
        thresholds: cosine thresholds (default: 21 evenly spaced from the 5th to the 99.5th percentile of the
            similarities, so the curve spans nearly-full to nearly-empty sets).
        k: largest set size (default K).
    Returns ``{"threshold": [...], "purity": [...], "mean_size": [...], "empty": [...]}`` (lists of equal length,
    thresholds ascending); purity is pooled over members (NaN where every set is empty)."""
    sims = torch.as_tensor(sims).float()
    k = sims.shape[1] if k is None else k
    if thresholds is None:
        flat = sims[:, :k].flatten()
        lo, hi = torch.quantile(flat, torch.tensor([0.05, 0.995])).tolist()
        thresholds = torch.linspace(lo, hi, 21).clamp(-1, 1).tolist()
    out: dict[str, list[float]] = {"threshold": [], "purity": [], "mean_size": [], "empty": []}
    for t in sorted(float(t) for t in thresholds):
        r = set_report(table, sims, labels, t, k)
        for key in out:
            out[key].append(getattr(r, key))
    return out


def semantic_sets(dataset: Any, prior: str = "hog-invariant", k: int = 4, threshold: float | None = None,
                  target_purity: float | None = None, threshold_quantile: float | None = None,
                  root: str | None = None, embedding: torch.Tensor | None = None, progress: bool = False,
                  **prior_options: Any) -> SemanticSetPositives:
    """Mine the semantic sets of ``dataset`` in one call and return the prepared source (``.report()``,
    ``.purity_size_curve()``, ``.plan()``).

    ``prior`` is any GPS prior name — ``"checkpoint"`` with ``run="path/to/run"`` mines with a gpsviz run's backbone,
    as the paper mines with a pretrained encoder — or pass ``embedding`` (N×D). Further keywords are the prior's
    options (e.g. ``dim=32`` for ``pca``)::

        src = semantic_sets(train_ds, prior="checkpoint", run="data/runs/simclr-…", k=4, threshold=0.9)
        print(src.report().summary())        # purity, mean set size, share of empty sets
    """
    src = SemanticSetPositives(prior=prior, k=k, threshold=threshold, target_purity=target_purity, root=root,
                               embedding=embedding, progress=progress, threshold_quantile=threshold_quantile,
                               **prior_options)
    src.prepare(dataset)
    return src
