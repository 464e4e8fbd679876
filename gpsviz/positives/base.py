"""Positive sources: which image is an anchor's partner, and which views are positives of each other.

A training step draws B anchor indices and asks the source for a **view plan** (:class:`ViewPlan`): for each of
M views its dataset row, group id (equal id ⇔ positives), instance id (views of one image or of one anchor–partner
pair), slot (its place within the instance), global/local flag and output size. Pair sources (self, labels,
neighbours) implement :meth:`PositiveSource.sample` (partners + group ids) and inherit :meth:`PositiveSource.plan`,
which lays the views out as ``[anchor views..., partner views...]`` (2B); a source with more views per anchor
(e.g. semantic sets) overrides :meth:`~PositiveSource.plan`::

    source = build_positives("self")
    source.prepare(dataset)                                    # once before training (and on refresh)
    plan = source.plan(anchors, generator=g)                   # anchors int64 B → ViewPlan of M = 2B views
    pos = source.sample(anchors, generator=g)                  # the pair form: partners B, group ids 2B

Views of the **same image** are always in one group (:func:`merge_groups`), so an image drawn twice in a batch, or
drawn as an anchor and as another anchor's partner, is never its own negative.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gpsviz.batch import ViewPlan
from gpsviz.errors import ConfigError
from gpsviz.priors import PRIORS, available_priors, check_prior_options
from gpsviz.registry import Opt, Registry

__all__ = [
    "Positives",
    "ViewPlan",
    "PositiveSource",
    "SelfPositives",
    "LabelPositives",
    "merge_groups",
    "pair_group_ids",
    "register_positives",
    "build_positives",
    "available_positives",
    "PRIOR_OPTS",
    "check_prior_kwargs",
]


@dataclass
class Positives:
    """What a positive source returns for one batch.

    Attributes:
        partners: int64 B, dataset row of each anchor's partner.
        group_ids: int64 2B, one id per view in the order ``[anchor views..., partner views...]``;
            views with equal id are positives of each other.
    """

    partners: torch.Tensor
    group_ids: torch.Tensor

    def __post_init__(self) -> None:
        if self.partners.ndim != 1 or self.group_ids.shape != (2 * self.partners.shape[0],):
            raise ConfigError(f"Positives: partners must be B and group_ids 2B, got {tuple(self.partners.shape)} "
                              f"and {tuple(self.group_ids.shape)}")


# --------------------------------------------------------------------------------------------- grouping helpers

def _connected_roots(u: torch.Tensor, v: torch.Tensor, n: int) -> torch.Tensor:
    """Connected components of an undirected graph on nodes 0..n−1 with edges (u_e, v_e).

    Min-label hooking of roots plus pointer jumping (a vectorised union-find): every round hooks each root to
    the smallest root it shares an edge with, then compresses every path to length one. Each round costs
    O(E + n) tensor work; the number of rounds grows like log n, not like the length of a chain.

    Returns:
        int64 n, the smallest node index of each node's component.
    """
    parent = torch.arange(n, device=u.device)
    while True:
        pu, pv = parent[u], parent[v]                                 # E, E: current roots of edge ends
        low = torch.minimum(pu, pv)                                   # E
        new = parent.clone()
        new.scatter_reduce_(0, pu, low, reduce="amin")               # hook root pu onto the smaller root
        new.scatter_reduce_(0, pv, low, reduce="amin")
        while True:                                                   # pointer jumping: parent ← parent[parent]
            jumped = new[new]
            if torch.equal(jumped, new):
                break
            new = jumped
        if torch.equal(new, parent):
            return parent
        parent = new


def _compact_by_first_appearance(labels: torch.Tensor) -> torch.Tensor:
    """Relabel int64 M to 0..G−1 in the order in which labels first appear (so view 0 is in group 0)."""
    m = labels.shape[0]
    uniq, inv = torch.unique(labels, return_inverse=True)             # G, M
    first = torch.full((uniq.shape[0],), m, dtype=torch.long, device=labels.device)
    first.scatter_reduce_(0, inv, torch.arange(m, device=labels.device), reduce="amin")  # G: first view of each
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(uniq.shape[0], device=labels.device)
    return rank[inv]                                                  # M


def merge_groups(pair_ids: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
    """Union of two groupings of the same M views.

    Two views end up in one group iff a chain of "same pair id" or "same image id" links connects them
    (e.g. pair a = (x, y), pair b = (y, w): the views of x, y and w form one group).

    Args:
        pair_ids: int64 M, e.g. ``[0..B−1, 0..B−1]`` for anchor/partner pairs.
        image_ids: int64 M, the dataset row each view was made from.

    Returns:
        int64 M, compact group ids 0..G−1 numbered in order of first appearance.
    """
    pair_ids = torch.as_tensor(pair_ids).long().flatten()
    image_ids = torch.as_tensor(image_ids, device=pair_ids.device).long().flatten()
    if pair_ids.shape != image_ids.shape:
        raise ConfigError(f"merge_groups: pair_ids and image_ids must have the same length, got "
                          f"{pair_ids.shape[0]} and {image_ids.shape[0]}")
    if pair_ids.numel() == 0:
        return pair_ids.clone()
    # bipartite graph: nodes = distinct pair ids (0..P−1) then distinct image ids (P..P+I−1); each view is an edge
    pu, p_node = torch.unique(pair_ids, return_inverse=True)          # P, M
    iu, i_node = torch.unique(image_ids, return_inverse=True)         # I, M
    n_pairs = pu.shape[0]
    roots = _connected_roots(p_node, i_node + n_pairs, n_pairs + iu.shape[0])   # P+I
    return _compact_by_first_appearance(roots[p_node])               # M


def pair_group_ids(anchors: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """Group ids for the views ``[anchors..., partners...]`` of B (anchor, partner) pairs.

    Each pair is a group, merged with every other pair that shares an image (see :func:`merge_groups`).

    Args:
        anchors, partners: int64 B dataset rows.

    Returns:
        int64 2B.
    """
    b = anchors.shape[0]
    pair = torch.arange(b, device=anchors.device).repeat(2)           # 2B: [0..B−1, 0..B−1]
    images = torch.cat([anchors, partners.to(anchors.device)])        # 2B
    return merge_groups(pair, images)


# --------------------------------------------------------------------------------------------- sources

class PositiveSource:
    """Base class of positive sources.

    Subclasses set ``name`` and override :meth:`sample` (and :meth:`prepare` when they need the dataset, e.g. to
    build a neighbour table). ``refresh_every`` (epochs, 0 = never) asks the training loop to call
    :meth:`prepare` again every that many epochs, with ``ctx`` holding e.g. ``embed_fn`` (the current model as a
    function from a dataset to an N×D embedding) and ``epoch``.

    Class attributes checked when a config is made: ``options``, an :class:`~gpsviz.registry.Opt` per
    constructor option; ``positives_in``, the plan fields that carry the source's positives — ``"group_ids"``
    (views with one group id are positives) and/or ``"instance_ids"`` (views of one instance are positives); an
    objective that reads none of them (see ``Objective.positives_from``) is refused, since it would ignore the
    source. :meth:`view_slots` says how many slots its plan has per instance and how many must get a view.
    """

    name: str = "base"
    refresh_every: int = 0
    options: dict[str, Opt] = {}
    positives_in: tuple[str, ...] = ("group_ids", "instance_ids")

    @classmethod
    def view_slots(cls, options: dict[str, Any]) -> tuple[int, int]:
        """(slots per instance in the plan, leading slots that must each get a view for the source's positives
        to be used) for these options (defaults filled in). Pair sources: 2 slots, the partner's included."""
        return 2, 2

    def __init__(self) -> None:  # explicit, so build_positives can list a subclass's options
        pass

    def prepare(self, dataset: Any, generator: torch.Generator | None = None, **ctx: Any) -> None:
        """Precompute what :meth:`sample` needs from ``dataset`` (an ``ImageDataset``). Default: nothing."""
        return None

    def sample(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> Positives:
        """Map anchors (int64 B dataset rows) to :class:`Positives` (partners B, group ids 2B)."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample() or plan()")

    def plan(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> ViewPlan:
        """Map anchors (int64 B) to the batch's :class:`ViewPlan`. Default: the pair plan of :meth:`sample`
        (2B views ``[anchors..., partners...]``, instance = pair). Sources with more views override this."""
        anchors = _as_anchors(anchors)
        return ViewPlan.from_pairs(anchors, self.sample(anchors, generator=generator))

    def state_dict(self) -> dict[str, Any] | None:
        """What :meth:`prepare` computed, for the checkpoint (so a resumed run uses the same table and a notebook
        can read the sets the loss used). Default: None, nothing to save."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved. Default: nothing to restore."""
        return None

    def describe(self) -> dict[str, Any]:
        """A small JSON-able dict for logs and run folders."""
        return {"name": self.name, "refresh_every": int(self.refresh_every)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _as_anchors(anchors: torch.Tensor) -> torch.Tensor:
    anchors = torch.as_tensor(anchors)
    if anchors.ndim != 1:
        raise ConfigError(f"anchors must be a 1-D tensor of dataset rows, got shape {tuple(anchors.shape)}")
    return anchors.long()


class SelfPositives(PositiveSource):
    """Plain SSL: the partner of an anchor is the anchor itself (two augmentations of one image).

    Group ids merge pairs through shared images, so an image drawn twice in a batch forms one group of four views.
    """

    name = "self"

    @classmethod
    def view_slots(cls, options: dict[str, Any]) -> tuple[int, int]:
        return 2, 1                 # the partner is the anchor itself: any one slot holds every positive

    def sample(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> Positives:
        """anchors int64 B → partners = anchors (B), group ids 2B (``[0..B−1, 0..B−1]`` when anchors are distinct)."""
        anchors = _as_anchors(anchors)
        partners = anchors.clone()
        return Positives(partners=partners, group_ids=pair_group_ids(anchors, partners))


class LabelPositives(PositiveSource):
    """SupCon ceiling: every view with the same class label is a positive ("perfect positives").

    The partner is the anchor itself (two augmentations of one image); the group id of a view is the class label
    of its image. :meth:`prepare` takes the labels from ``dataset.labels``.

    Args:
        labels: optional int64 N class labels (otherwise taken in :meth:`prepare`). Unknown labels (−1) are an error.

    The positives are in the group ids only (the instance is the image itself): objectives that find positives
    through instance ids (BYOL, SwAV, DISSL) would ignore the labels and are refused with it.
    """

    name = "labels"
    options = {"labels": Opt("array", optional=True, note="int64 N class labels; None = the dataset's")}
    positives_in = ("group_ids",)

    @classmethod
    def view_slots(cls, options: dict[str, Any]) -> tuple[int, int]:
        return 2, 1

    def __init__(self, labels: torch.Tensor | None = None) -> None:
        super().__init__()
        self.labels: torch.Tensor | None = None
        if labels is not None:
            self.labels = self._check(torch.as_tensor(labels), "labels")

    @staticmethod
    def _check(labels: torch.Tensor, where: str) -> torch.Tensor:
        labels = labels.long().flatten()
        if labels.numel() == 0:
            raise ConfigError(f"LabelPositives: {where} is empty; label positives need a labelled dataset")
        n_unknown = int((labels < 0).sum())
        if n_unknown:
            raise ConfigError(f"LabelPositives: {n_unknown} of {labels.numel()} images in {where} have no label (−1); "
                              "label positives (the SupCon ceiling) need a fully labelled dataset — use a labelled "
                              "split or another positive source")
        return labels

    def prepare(self, dataset: Any, generator: torch.Generator | None = None, **ctx: Any) -> None:
        """Take ``dataset.labels`` (int64 N)."""
        labels = getattr(dataset, "labels", None)
        if labels is None or getattr(dataset, "labelled", True) is False:
            raise ConfigError(f"positives 'labels' (SupCon) need class labels, but {getattr(dataset, 'name', 'the data')!r} "
                              f"is unlabelled; give labels (from_arrays(x, labels=y), class folders) or use "
                              f"label-free positives (self, neighbours)")
        self.labels = self._check(torch.as_tensor(labels), f"dataset {getattr(dataset, 'name', '')!r}".strip())

    def sample(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> Positives:
        """anchors int64 B → partners = anchors, group ids = labels of ``[anchors, anchors]`` (2B)."""
        if self.labels is None:
            raise ConfigError("LabelPositives: call prepare(dataset) (or pass labels=...) before sample()")
        anchors = _as_anchors(anchors)
        if anchors.numel() and int(anchors.max()) >= self.labels.shape[0]:
            raise ConfigError(f"LabelPositives: anchor index {int(anchors.max())} is out of range for "
                              f"{self.labels.shape[0]} labels; call prepare() with the training dataset")
        if self.labels.device != anchors.device:
            self.labels = self.labels.to(anchors.device)
        partners = anchors.clone()
        group_ids = self.labels[torch.cat([anchors, partners])]       # 2B
        return Positives(partners=partners, group_ids=group_ids)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.labels is not None:
            d["num_classes"] = int(self.labels.max()) + 1
        return d


# --------------------------------------------------------------------------------------------- prior options

def _prior_names() -> list[str]:
    return available_priors() + ["model"]


#: Specs shared by the sources that mine positives in a prior space (neighbours, semantic sets).
PRIOR_OPTS: dict[str, Opt] = {
    "prior": Opt(str, choices=_prior_names, note="'model' = the network being trained"),
    "prior_options": Opt(dict, optional=True, note="the prior's own options, e.g. {'dim': 32} for pca"),
    "root": Opt("path", optional=True, note="data folder of the prior cache"),
    "embedding": Opt("array", optional=True, note="a precomputed N×D prior"),
    "progress": Opt(bool),
}


def check_prior_kwargs(owner: str, options: dict[str, Any], own: Any) -> dict[str, Any]:
    """The prior options of a prior-space source, checked and in normal form: ``options["prior_options"]``
    merged with the options that are not the source's own (``own``: its option names), against the specs of
    ``options["prior"]`` (:func:`gpsviz.priors.check_prior_options`)."""
    prior = options.get("prior")
    merged = {**dict(options.get("prior_options") or {}), **{k: v for k, v in options.items() if k not in own}}
    if prior == "model":
        if merged:
            raise ConfigError(f"{owner}: prior 'model' (the network being trained) takes no prior options, got "
                              f"{sorted(merged, key=str)}")
        return merged
    bad = sorted(set(merged) - set(PRIORS[prior].defaults), key=str)
    if bad:
        raise ConfigError(f"{owner} has no option(s) {bad}; its options are {sorted(own)} and those of prior "
                          f"{prior!r}: {sorted(PRIORS[prior].defaults)}")
    return check_prior_options(prior, merged)


# --------------------------------------------------------------------------------------------- registry

_REGISTRY = Registry("positive source", base=PositiveSource)


def register_positives(name: str, cls: type[PositiveSource] | None = None) -> Any:
    """Register a positive source class under ``name`` (usable as ``register_positives("x", Cls)`` or as a
    class decorator ``@register_positives("x")``). Re-registering the same class (e.g. after a module reload)
    is allowed; a different class under a taken name raises :class:`ConfigError`."""
    return _REGISTRY.register(name, cls)


def available_positives() -> list[str]:
    """Names accepted by :func:`build_positives`."""
    return _REGISTRY.names()


def build_positives(name: str, **options: Any) -> PositiveSource:
    """Build a positive source by name (``self``, ``labels``, and what other modules register, e.g. ``neighbours``).

    Unknown names or options raise :class:`~gpsviz.errors.ConfigError` listing what is accepted.
    """
    return _REGISTRY.build(name, **options)


register_positives("self", SelfPositives)
register_positives("labels", LabelPositives)
