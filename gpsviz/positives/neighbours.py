"""GPS-SSL positives: an anchor's partner is another image close to it in a *prior* embedding space.

Before training, :meth:`NeighbourPositives.prepare` embeds every image with a prior (:mod:`gpsviz.priors`), runs
one exact k-NN search (squared L2 on the unnormalised embedding, self excluded) and keeps an N×K candidate table:
the k nearest, or, with a ``radius`` τ, every one of the ``pool`` nearest (2,047, as the reference) within τ.
Each time an anchor is drawn, :meth:`~NeighbourPositives.sample` picks its partner among its candidates
(uniformly, as the reference code; or the farthest one inside the τ-ball, as the paper's formula)::

    src = NeighbourPositives(prior="hog-invariant", k=10)
    src.prepare(train_ds)                      # prior + k-NN once (cached prior)
    pos = src.sample(anchors, generator=g)     # partners int64 B, group ids int64 2B
    src.purity()                               # share of candidates with the anchor's class

With ``include_anchor=True`` and ``k=1`` the partner is the anchor itself: plain SSL. With ``prior="model"`` (or
``refresh_every > 0``) the table is rebuilt from the model being trained (``prepare(..., embed_fn=f)``): NNCLR.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from gpsviz.errors import ConfigError, DataError
from gpsviz.knn import knn_search
from gpsviz.positives.base import (PRIOR_OPTS, Positives, PositiveSource, check_prior_kwargs, pair_group_ids,
                                   register_positives)
from gpsviz.priors import compute_prior
from gpsviz.purity import average_purity, per_anchor_purity
from gpsviz.registry import Opt, check_values

CHOICES = ("uniform", "farthest")


class NeighbourPositives(PositiveSource):
    """Partner = a prior-space neighbour of the anchor (GPS-SSL).

    Args:
        prior: a name of :func:`gpsviz.priors.available_priors`, or ``"model"`` (use the ``embed_fn`` the training
            loop passes to :meth:`prepare`: the model being trained). Default ``"hog-invariant"``: it needs no
            download and no training, takes seconds, and encodes the prior knowledge that fits the default shapes
            world — the outline's shape matters, not colour, position, size or rotation (purity@10 ≈ 0.94 there,
            vs 0.29 for grid ``hog`` and 0.18 for ``pixels``). For aligned data such as Fashion-MNIST prefer
            ``pca``, ``pixels`` or ``hog``. The reference default, an ImageNet ResNet-50
            (``imagenet-resnet50``), needs weights that are not available offline.
        prior_options: options of the prior (e.g. ``{"dim": 32}`` for ``pca``).
        k: candidates per anchor without a ``radius``: its k nearest other images (the reference's
            ``num_nns_choice``). Not used with a ``radius``: as in the reference, the ball is not capped at k.
        include_anchor: the anchor itself is a candidate (distance 0, counted in ``k`` and ``pool``); with ``k=1``
            this is plain SSL (the reference's ``filter_sim_matrix=False``).
        radius: which candidates, following the reference (``main_nn.py`` and ``solo/data/gps_dataset.py`` of
            aarashfeizi/gps-ssl):

            * ``None``: the ``k`` nearest (top-k; the reference without a threshold).
            * a float τ: every image among the anchor's ``pool`` nearest whose prior distance (squared L2 with
              ``metric="l2"``) is ≤ τ — however many that is, from 0 to ``pool``. One τ for all anchors.
            * ``"adaptive"``: the same ball with ONE global τ computed from the data: the mean plus the standard
              deviation (population, ``ddof=0``) of the whole N × ``adaptive_k`` block of distances from every
              image to its ``adaptive_k`` nearest other images (self excluded), i.e. the reference's
              ``np.mean(D[:, 1:21]) + np.std(D[:, 1:21])``. Tight regions of the prior thus get large balls and
              loose ones small balls (unlike top-k, where every anchor has exactly k).

            An empty ball falls back to the anchor itself (the reference's ``[idx]``). ``tau`` holds the τ used
            (a 0-d float32 tensor; ``None`` without a radius). ``radius=0`` is a literal ball of radius 0 (exact
            duplicates only); the reference treats a threshold of 0 as "no threshold".
        choice: ``"uniform"`` (reference code: every candidate in the ball equally likely, drawn afresh each time
            the anchor is drawn) or ``"farthest"`` (the paper's formula: the farthest candidate inside the ball).
        refresh_every: epochs between rebuilds of the table from the current model (0 = never). The training loop
            calls ``prepare(dataset, embed_fn=...)``; the first ``prepare`` still uses ``prior`` unless it is
            ``"model"``.
        metric: ``"l2"`` (squared Euclidean, reference) or ``"cosine"``.
        index: k-NN index (``"flat"`` exact; ``"ivf"``/``"hnsw"`` approximate for millions of images).
        adaptive_k: neighbours per image in the block whose mean + std is the adaptive τ (reference
            ``threshold_k``, 20).
        pool: with a ``radius``, how many nearest images (self excluded; the anchor counts when
            ``include_anchor``) are candidates for the ball: the reference searches 2,048 neighbours including the
            image itself, hence 2,047. Capped at N − 1. Memory: one N × ``pool`` search; the table keeps only as
            many columns as the largest ball.
        root: data folder for the prior cache.
        embedding: a precomputed N×D prior (overrides ``prior``; also accepted as ``prepare(..., embedding=)``).
        progress: show the prior's progress bars.
        prior_kwargs: further keywords are options of the prior, merged into ``prior_options``
            (e.g. ``NeighbourPositives(prior="checkpoint", run="runs/simclr")``); unknown ones raise ConfigError.
    """

    name = "neighbours"
    options = {
        **PRIOR_OPTS,
        "k": Opt(int, 1, 1000, note="candidates per anchor"),
        "include_anchor": Opt(bool),
        "radius": Opt(float, 0.0, None, optional=True, also=("adaptive",), note="a squared prior distance"),
        "choice": Opt(str, choices=CHOICES),
        "refresh_every": Opt(int, 0, 100_000, note="epochs; 0 = never"),
        "metric": Opt(str, choices=("l2", "cosine")),
        "index": Opt(str, choices=("flat", "ivf", "hnsw")),
        "adaptive_k": Opt(int, 2, 1000),
        "pool": Opt(int, 1, 100_000, note="nearest images searched for the τ-ball"),
    }

    @classmethod
    def validate_options(cls, options: dict[str, Any], owner: str) -> None:
        """The prior options (``prior_options`` and further keywords) against the prior's specs."""
        check_prior_kwargs(owner, options, cls.options)

    def __init__(self, prior: str = "hog-invariant", prior_options: dict[str, Any] | None = None, k: int = 10,
                 include_anchor: bool = False, radius: float | str | None = None, choice: str = "uniform",
                 refresh_every: int = 0, metric: str = "l2", index: str = "flat", adaptive_k: int = 20,
                 pool: int = 2047, root: str | None = None, embedding: torch.Tensor | None = None,
                 progress: bool = True, **prior_kwargs: Any) -> None:
        super().__init__()
        given = dict(prior=prior, prior_options=prior_options, k=k, include_anchor=include_anchor, radius=radius,
                     choice=choice, refresh_every=refresh_every, metric=metric, index=index,
                     adaptive_k=adaptive_k, pool=pool, root=root, embedding=embedding, progress=progress)
        o = check_values("positive source 'neighbours'", NeighbourPositives, {**given, **prior_kwargs})
        self.prior = prior
        self.prior_options = check_prior_kwargs("positive source 'neighbours'", o, self.options)
        self.k, self.include_anchor, self.radius, self.choice = k, o["include_anchor"], o["radius"], choice
        self.refresh_every, self.metric, self.index, self.adaptive_k = refresh_every, metric, index, adaptive_k
        self.pool = pool
        self.root, self.embedding, self.progress = root, embedding, o["progress"]
        self.table: torch.Tensor | None = None        # int64 N×K candidate rows (sorted by distance)
        self.distances: torch.Tensor | None = None    # float32 N×K prior distances
        self.valid: torch.Tensor | None = None        # bool N×K: inside the ball (a prefix of each row)
        self.counts: torch.Tensor | None = None       # int64 N valid candidates (0 → partner = anchor)
        self.tau: torch.Tensor | None = None          # float32 0-d: the ball's τ, one for all (None without radius)
        self.labels: torch.Tensor | None = None       # int64 N (for purity)
        self.source: str | None = None                # what the table was built from

    # ----------------------------------------------------------------------------------------- building

    def prepare(self, dataset: Any, generator: torch.Generator | None = None, **ctx: Any) -> None:
        """Embed ``dataset`` and build the candidate table (one k-NN search).

        ctx: ``embedding`` (N×D, used as is), ``embed_fn`` (dataset → N×D current model features; used when
        ``prior == "model"`` or for a refresh, i.e. a later ``prepare`` with ``refresh_every > 0``), ``root``.
        """
        embed_fn: Callable[[Any], torch.Tensor] | None = ctx.get("embed_fn")
        embedding = ctx.get("embedding", self.embedding)
        refreshing = self.table is not None and self.refresh_every > 0 and embed_fn is not None
        if embedding is not None:
            emb, source = embedding, "embedding"
        elif self.prior == "model" or refreshing:
            if embed_fn is None:
                raise ConfigError("neighbours: prior='model' needs the model's features: call "
                                  "prepare(dataset, embed_fn=<dataset → N×D features>) (the training loop does)")
            emb, source = embed_fn(dataset), "model"
        else:
            emb = compute_prior(self.prior, dataset, root=ctx.get("root", self.root), progress=self.progress,
                                **self.prior_options)
            source = f"prior:{self.prior}"
        emb = torch.as_tensor(emb).detach().float().cpu()
        if emb.ndim != 2 or emb.shape[0] != len(dataset):
            raise DataError(f"neighbours: the embedding must be N×D with N={len(dataset)} (one row per image), "
                            f"got shape {tuple(emb.shape)}")
        self.build_table(emb, getattr(dataset, "labels", None))
        self.source = source

    def build_table(self, embedding: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Candidate table from an N×D embedding (see the class docstring); ``labels`` int64 N for purity."""
        n = embedding.shape[0]
        anchor_slot = 1 if self.include_anchor else 0
        ball = self.radius is not None
        adaptive = self.radius == "adaptive"
        # others per row: top-k without a radius; the pool (capped at N − 1) with one
        k_others = min(self.pool - anchor_slot, n - 1) if ball else self.k - anchor_slot
        k_search = max(k_others, self.adaptive_k if adaptive else 0)
        if n < 2 and k_search > 0:
            raise DataError(f"neighbours: need at least 2 images to find neighbours, got {n}")
        if k_others > n - 1:                                                      # top-k only: the pool is capped
            raise ConfigError(f"neighbours: k={self.k} asks for {k_others} neighbours per image but the data has only "
                              f"{n} images ({n - 1} others); use k ≤ {n - 1 + anchor_slot}")
        k_search = min(k_search, n - 1)
        if k_search > 0:
            dist, idx = knn_search(embedding, None, k_search, metric=self.metric, exclude_self=True,
                                   index=self.index)                              # N×k_search, ascending
        else:
            dist, idx = torch.zeros(n, 0), torch.zeros(n, 0, dtype=torch.long)
        cand, cdist = idx[:, :k_others], dist[:, :k_others]
        if self.include_anchor:
            cand = torch.cat([torch.arange(n)[:, None], cand], 1)                 # anchor first, distance 0
            cdist = torch.cat([torch.zeros(n, 1), cdist], 1)
        if not ball:
            tau = None
            valid = torch.ones_like(cand, dtype=torch.bool)
        else:
            if adaptive:                                                          # ONE τ from the N×adaptive_k block
                block = dist[:, : self.adaptive_k].double()
                tau = block.mean() + block.std(unbiased=False) if block.numel() else torch.zeros(())
            else:
                tau = torch.tensor(float(self.radius), dtype=torch.double)
            tau = tau.float()
            valid = cdist <= tau                                                  # a prefix: cdist is sorted
            width = int(valid.sum(1).max()) if n else 0                           # keep only the largest ball
            cand, cdist, valid = cand[:, :width], cdist[:, :width], valid[:, :width]
        self.table, self.distances, self.valid = cand.contiguous(), cdist.float().contiguous(), valid.contiguous()
        self.counts = valid.sum(1)
        self.tau = tau
        self.labels = None if labels is None else torch.as_tensor(labels).long().cpu()

    # ----------------------------------------------------------------------------------------- sampling

    def _check_ready(self) -> None:
        if self.table is None:
            raise ConfigError("neighbours: call prepare(dataset) before sample()/candidates()/purity()")

    def sample(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> Positives:
        """anchors int64 B → partners int64 B (one candidate each) and group ids int64 2B for the views
        ``[anchor views..., partner views...]``; an anchor with no candidate (empty ball) is its own partner."""
        self._check_ready()
        anchors = torch.as_tensor(anchors).long()
        if anchors.ndim != 1:
            raise ConfigError(f"anchors must be a 1-D tensor of dataset rows, got shape {tuple(anchors.shape)}")
        a = anchors.cpu()
        if a.numel() and (int(a.max()) >= self.table.shape[0] or int(a.min()) < 0):
            raise ConfigError(f"neighbours: anchor index out of range for a table of {self.table.shape[0]} images; "
                              "call prepare() with the training dataset")
        counts = self.counts[a]                                                   # B
        if self.table.shape[1] == 0:
            partners = a.clone()
        else:
            if self.choice == "uniform":
                u = torch.rand(a.shape[0], generator=generator)                   # B uniform in [0, 1)
                col = (u * counts.clamp_min(1)).long().clamp_max((counts - 1).clamp_min(0))
            else:  # farthest valid candidate
                d = self.distances[a].masked_fill(~self.valid[a], float("-inf"))
                col = d.argmax(1)
            partners = self.table[a, col]
            partners = torch.where(counts > 0, partners, a)
        partners = partners.to(anchors.device)
        return Positives(partners=partners, group_ids=pair_group_ids(anchors, partners))

    # ----------------------------------------------------------------------------------------- inspection

    def candidates(self, anchor: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The candidate set of one anchor: (int64 indices M, float32 prior distances M), nearest first.
        An empty ball gives the anchor itself at distance 0 (what :meth:`sample` uses)."""
        self._check_ready()
        c = int(self.counts[anchor])
        if c == 0:
            return torch.tensor([int(anchor)]), torch.zeros(1)
        return self.table[anchor, :c].clone(), self.distances[anchor, :c].clone()

    def per_anchor_purity(self) -> torch.Tensor:
        """float32 N: share of each anchor's candidates with its class (NaN: empty ball or unlabelled)."""
        self._check_ready()
        if self.labels is None:
            raise DataError("neighbours: the dataset has no labels, purity cannot be measured")
        return per_anchor_purity(self.table, self.labels, self.valid)

    def purity(self) -> float:
        """Positive purity: share of candidates with the anchor's class, averaged over anchors with candidates."""
        return average_purity(self.per_anchor_purity())

    def describe(self) -> dict[str, Any]:
        d = {**super().describe(), "prior": self.prior, "prior_options": dict(self.prior_options), "k": self.k,
             "include_anchor": self.include_anchor, "radius": self.radius, "choice": self.choice,
             "metric": self.metric}
        if self.radius is not None:
            d["pool"] = self.pool
            if self.tau is not None:
                d["tau"] = float(self.tau)
        if self.table is not None:
            d.update(source=self.source, mean_candidates=float(self.counts.float().mean()),
                     empty_share=float((self.counts == 0).float().mean()))
            if self.labels is not None and (self.labels >= 0).any():
                d["purity"] = self.purity()
        return d

    # ----------------------------------------------------------------------------------------- resume

    def state_dict(self) -> dict[str, Any]:
        """Tensors of the candidate table (for exact resume from a checkpoint)."""
        return {"table": self.table, "distances": self.distances, "valid": self.valid, "tau": self.tau,
                "labels": self.labels, "source": self.source}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a table saved by :meth:`state_dict`."""
        self.table, self.distances, self.valid = state["table"], state["distances"], state["valid"]
        self.tau, self.labels, self.source = state.get("tau"), state.get("labels"), state.get("source")
        self.counts = None if self.valid is None else self.valid.sum(1)


register_positives("neighbours", NeighbourPositives)
