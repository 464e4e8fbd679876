"""Diagnostics of representations: the conditions of Dubois et al. (invariance, decodability, ETF distance,
effective rank, label efficiency). Positive purity is :mod:`gpsviz.purity`; UOTA's weight-vs-coverage measures
are :mod:`gpsviz.view_weights`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import torch

from gpsviz.augment import Augmenter
from gpsviz.augment.config import family_config
from gpsviz.errors import ConfigError
from gpsviz.evaluate import Features, _labelled, linear_probe, mlp_probe
from gpsviz.utils import resolve_device

# ------------------------------------------------------------------------------------------------------------------
# Dubois et al.: the conditions under which a probe can read every augmentation-invariant task off a representation
# (invariance, decodability of the equivalence class, a simplex-ETF geometry of the class means, effective rank),
# and label efficiency. Every function fits on the train split (or on one set of augmentation draws) and reports on
# a held-out split (or on fresh draws).


#: Augmentation families whose invariance :func:`measure_invariance` reports ("all" = the whole preset), each the
#: families of :func:`~gpsviz.augment.config.family_config` it switches on (colour = jitter + grayscale).
INVARIANCE_FAMILIES = {"crop": ("crop",), "flip": ("flip",), "colour": ("colour", "grayscale"), "blur": ("blur",),
                       "all": ("all",)}


def invariance_ratio(z_a: torch.Tensor, z_b: torch.Tensor) -> float:
    """How close two views of one image are, relative to two different images.

    Args:
        z_a, z_b: float N×D, row i = the features of two views (independent augmentations) of image i.

    Returns:
        mean_i ‖z_a,i − z_b,i‖ / mean_{i≠j} ‖z_a,i − z_b,j‖: 0 = perfectly invariant (views coincide), about 1 =
        a view is no closer to its partner than to another image. NaN when every feature is the same point.
    """
    a, b = torch.as_tensor(z_a).double(), torch.as_tensor(z_b).double()
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2:
        raise ConfigError(f"invariance_ratio: z_a and z_b must both be N×D with N ≥ 2, got {tuple(a.shape)} and "
                          f"{tuple(b.shape)}")
    d = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")   # N×N: view a of i ↔ view b of j
    n = d.shape[0]
    same = d.diagonal().mean()
    other = (d.sum() - d.diagonal().sum()) / (n * (n - 1))
    return float(same / other) if other > 0 else float("nan")


@torch.no_grad()
def view_features(backbone: torch.nn.Module, images: torch.Tensor, augmenter: Any, generator: torch.Generator,
                  batch_size: int = 256, device: Any = None) -> torch.Tensor:
    """Backbone features (eval mode) of one augmented view of each image: uint8 N×C×H×W → float32 N×D (CPU).
    The augmenter's normalisation is the training one; the backbone's mode and device are restored."""
    dev = resolve_device(device) if device is not None else next(backbone.parameters()).device
    was, orig = backbone.training, next(backbone.parameters()).device
    backbone.eval().to(dev)
    out = []
    try:
        for i in range(0, images.shape[0], batch_size):
            views, _ = augmenter(images[i:i + batch_size], generator=generator)
            out.append(backbone(views.to(dev)).float().flatten(1).cpu())
    finally:
        backbone.to(orig).train(was)
    return torch.cat(out)


def measure_invariance(backbone: torch.nn.Module, dataset: Any, preset: str | Any = "strong", strength: float = 1.0,
                       families: Iterable[str] = INVARIANCE_FAMILIES, n: int = 500, seed: int = 0,
                       device: Any = None) -> dict[str, float]:
    """:func:`invariance_ratio` of a backbone per augmentation family, on ``n`` images of ``dataset`` (use the
    held-out split) with two independent draws of the family's augmentation. Families the preset never applies
    are left out. Returns ``{family: ratio}``."""
    images = dataset.images[: int(n)]
    out = {}
    for fam in families:
        cfg = family_config(INVARIANCE_FAMILIES[fam], strength, preset, always=False)
        if cfg is None:
            continue
        aug = Augmenter(cfg)
        g = torch.Generator().manual_seed(seed)
        out[fam] = invariance_ratio(view_features(backbone, images, aug, g, device=device),
                                    view_features(backbone, images, aug, g, device=device))
    return out


class _Split:
    """A minimal labelled split for :mod:`gpsviz.evaluate`'s probes (``split`` + ``targets``)."""

    def __init__(self, labels: torch.Tensor, split: str) -> None:
        self.labels, self.split = torch.as_tensor(labels).long(), split

    def targets(self, target: str) -> tuple[torch.Tensor, list[str]]:
        return self.labels, [str(i) for i in range(int(self.labels.max()) + 1)]


def instance_decodability(fit_features: torch.Tensor, fit_ids: torch.Tensor, test_features: torch.Tensor,
                          test_ids: torch.Tensor, seed: int = 0) -> float:
    """Linear accuracy at recovering which image a view came from (the augmentation equivalence class).

    Args:
        fit_features: float M×D features of views used to fit the probe; fit_ids: int64 M, their image (0…N−1).
        test_features, test_ids: other views (fresh augmentation draws) of the same N images, to report on.

    Returns:
        held-out accuracy of :func:`gpsviz.evaluate.linear_probe` among N images (chance = 1/N).
    """
    tr = Features(torch.as_tensor(fit_features).float(), _Split(fit_ids, "train"))
    te = Features(torch.as_tensor(test_features).float(), _Split(test_ids, "test"))
    return float(linear_probe(tr, te, target="instance", seed=seed)["test_acc"])


def measure_decodability(backbone: torch.nn.Module, dataset: Any, preset: str | Any = "strong",
                         strength: float = 1.0, n_images: int = 100, fit_views: int = 8, test_views: int = 4,
                         seed: int = 0, device: Any = None) -> float:
    """:func:`instance_decodability` of a backbone: ``n_images`` images of ``dataset`` (use the held-out split),
    ``fit_views`` augmented views each to fit, ``test_views`` fresh views each to report (chance 1/n_images)."""
    images = dataset.images[: int(n_images)]
    n = images.shape[0]
    aug = Augmenter(family_config("all", strength, preset, always=False))
    g = torch.Generator().manual_seed(seed)
    feats = [view_features(backbone, images, aug, g, device=device) for _ in range(fit_views + test_views)]
    ids = torch.arange(n)
    return instance_decodability(torch.cat(feats[:fit_views]), ids.repeat(fit_views),
                                 torch.cat(feats[fit_views:]), ids.repeat(test_views), seed=seed)


def class_means(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred, unit-norm class means: features float N×D, labels int64 N (``-1`` = unknown, skipped) →
    (U float C×D, the means minus their average, each scaled to norm 1; classes int64 C present)."""
    f = torch.as_tensor(features).double()
    y = torch.as_tensor(labels).long()
    classes = torch.unique(y[y >= 0])
    if classes.numel() < 2:
        raise ConfigError("class_means: need at least two labelled classes")
    mu = torch.stack([f[y == c].mean(0) for c in classes])       # C×D
    mu = mu - mu.mean(0, keepdim=True)
    return mu / mu.norm(dim=1, keepdim=True).clamp_min(1e-12), classes


def class_means_etf_distance(features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Distance of the **label class means** from a simplex equiangular tight frame (neural collapse; not the
    Dubois condition, which is the instance-level :func:`dist_to_etf`).

    With U the centred unit-norm class means (:func:`class_means`), a simplex ETF has pairwise cosines
    −1/(C−1). Returns ``{"etf_distance": mean_{c≠c'} |cos(u_c, u_c') + 1/(C−1)|`` (0 = a perfect simplex),
    ``"norm_cv"``: std/mean of the centred means' norms before scaling (0 = equal norms), ``"mean_cos"``}.
    Compute it on the held-out split."""
    f = torch.as_tensor(features).double()
    y = torch.as_tensor(labels).long()
    u, classes = class_means(f, y)
    c = u.shape[0]
    cos = u @ u.T
    off = ~torch.eye(c, dtype=torch.bool)
    raw = torch.stack([f[y == k].mean(0) for k in classes])
    norms = (raw - raw.mean(0, keepdim=True)).norm(dim=1)
    return {"etf_distance": float((cos[off] + 1.0 / (c - 1)).abs().mean()),
            "norm_cv": float(norms.std() / norms.mean().clamp_min(1e-12)), "mean_cos": float(cos[off].mean())}


# Dubois et al.'s ETF condition as the reference measures it: instance-level, on two views of each image
# (YannDubs/Invariant-Self-Supervised-Learning, issl/helpers.py: DistToEtf and RunningMean; issl/issl.py: ISSLModule
# .step logs pos_loss + neg_loss as "dist_to_etf", on the encoder's representation z of the two views of a batch).
def _etf_terms(u_a: torch.Tensor, u_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pos, neg) of unit rows u_a, u_b (N×D, row i = two views of image i): pos = mean_i (1 − u_a,i·u_b,i),
    neg = mean_{i≠j} u_a,i·u_b,j."""
    m = u_a @ u_b.T
    n = m.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=m.device)
    return (1.0 - m.diagonal()).mean(), m[off].mean()


def dist_to_etf(z_a: torch.Tensor, z_b: torch.Tensor, centre: str | torch.Tensor = "pooled") -> dict[str, float]:
    """Dubois et al.'s distance to a simplex ETF, instance-level, as the reference's ``DistToEtf`` computes it.

    Each view's features are centred, then scaled to unit norm (u_a,i, u_b,i); with M = U_a U_bᵀ (N×N):
    ``pos`` = mean_i (1 − M_ii) (0 when the two views of every image point the same way), ``neg`` = mean of the
    off-diagonal M_ij (the cosine between views of different images), ``dist_to_etf`` = pos + neg. Since
    Σ_{i≠j} M_ij = (Σu_a)·(Σu_b) − Σ M_ii, ``dist_to_etf`` = 1 − 1/(N−1)·Σ_i (u_a,i − ū_a)·(u_b,i − ū_b) (ū the
    mean unit vector of a view) ≥ −1/(N−1) = ``floor``, with equality exactly when the two views coincide and
    Σ u = 0, e.g. a perfect simplex of N instances (then pos = 0 and neg = −1/(N−1); the reference's comment says
    "best: −1/dim").

    Centring. The reference centres by a running mean (:class:`RunningDistToEtf`: the batch mean of the view
    weighted 0.5 against a stored mean updated with momentum 0.1, starting at 0, across training steps). For a
    one-shot evaluation there is no training history; the stored mean is an average of both views' batch means, so
    ``centre="pooled"`` (default) subtracts the mean over both views of all N images, what the running mean
    tracks; ``"per-view"`` subtracts each view's own mean; a tensor (D) is subtracted from both views.

    Args:
        z_a, z_b: float N×D, row i = the features of two augmented views of image i (N ≥ 2).

    Returns:
        ``{"dist_to_etf", "pos", "neg", "cosine_pos": 1 − pos, "floor": −1/(N−1)}`` (float64 arithmetic).
    """
    a, b = torch.as_tensor(z_a).double(), torch.as_tensor(z_b).double()
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2:
        raise ConfigError(f"dist_to_etf: z_a and z_b must both be N×D with N ≥ 2, got {tuple(a.shape)} and "
                          f"{tuple(b.shape)}")
    if isinstance(centre, str):
        if centre == "pooled":
            mu_a = mu_b = torch.cat([a, b]).mean(0)
        elif centre == "per-view":
            mu_a, mu_b = a.mean(0), b.mean(0)
        else:
            raise ConfigError(f"dist_to_etf: centre={centre!r} is unknown; choose 'pooled', 'per-view' or a "
                              f"D-vector")
    else:
        mu_a = mu_b = torch.as_tensor(centre).double().reshape(-1)
        if mu_a.shape[0] != a.shape[1]:
            raise ConfigError(f"dist_to_etf: centre must have {a.shape[1]} entries, got {mu_a.shape[0]}")
    unit = torch.nn.functional.normalize
    pos, neg = _etf_terms(unit(a - mu_a, dim=1), unit(b - mu_b, dim=1))
    n = a.shape[0]
    return {"dist_to_etf": float(pos + neg), "pos": float(pos), "neg": float(neg), "cosine_pos": float(1 - pos),
            "floor": -1.0 / (n - 1)}


class RunningDistToEtf:
    """The reference's ``DistToEtf`` with its running centring, for monitoring during training: each call
    ``(z_a, z_b)`` (one batch's two views, N×D) centres view a by 0.5·mean(z_a) + 0.5·stored, then updates
    stored ← 0.1·mean(z_a) + 0.9·stored, then does the same for view b (stored starts at 0, D entries), and returns
    (pos, neg) as :func:`dist_to_etf` defines them (dist_to_etf = pos + neg). float64 throughout."""

    def __init__(self, dim: int, alpha_use: float = 0.5, alpha_store: float = 0.1) -> None:
        if not (0.0 <= alpha_use <= 1.0 and 0.0 <= alpha_store <= 1.0):
            raise ConfigError(f"RunningDistToEtf: alpha_use and alpha_store must lie in [0, 1], got {alpha_use}, "
                              f"{alpha_store}")
        self.stored = torch.zeros(int(dim), dtype=torch.float64)
        self.alpha_use, self.alpha_store = float(alpha_use), float(alpha_store)

    def _unit(self, z: torch.Tensor) -> torch.Tensor:
        z = torch.as_tensor(z).detach().double().cpu()
        m = z.mean(0)
        use = self.alpha_use * m + (1 - self.alpha_use) * self.stored
        self.stored = self.alpha_store * m + (1 - self.alpha_store) * self.stored
        return torch.nn.functional.normalize(z - use, dim=1)

    def __call__(self, z_a: torch.Tensor, z_b: torch.Tensor) -> tuple[float, float]:
        u_a = self._unit(z_a)
        u_b = self._unit(z_b)
        pos, neg = _etf_terms(u_a, u_b)
        return float(pos), float(neg)


def measure_dist_to_etf(backbone: torch.nn.Module, dataset: Any, preset: str | Any = "strong", strength: float = 1.0,
                        n: int = 500, seed: int = 0, device: Any = None) -> dict[str, float]:
    """:func:`dist_to_etf` of a backbone's features of two independent augmented views (the whole preset, as
    :func:`measure_invariance`'s ``"all"``: the same draws) of ``n`` images of ``dataset`` (use the held-out
    split)."""
    images = dataset.images[: int(n)]
    aug = Augmenter(family_config("all", strength, preset, always=False))
    g = torch.Generator().manual_seed(seed)
    return dist_to_etf(view_features(backbone, images, aug, g, device=device),
                       view_features(backbone, images, aug, g, device=device))


def simplex_etf(c: int) -> torch.Tensor:
    """The ideal: C unit vectors (rows of a C×C float64 matrix, in the span orthogonal to the all-ones vector)
    with pairwise cosine −1/(C−1)."""
    if c < 2:
        raise ConfigError(f"simplex_etf: need at least 2 classes, got {c}")
    m = torch.eye(c, dtype=torch.float64) - 1.0 / c
    return m / m.norm(dim=1, keepdim=True)


def etf_view_2d(features: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D picture of the class means against the ideal simplex.

    The centred unit-norm class means U (C×D) are rotated onto the ideal ETF V (C×C, :func:`simplex_etf`) by
    orthogonal Procrustes (class c ↔ vertex c), then both are projected on the plane in which the ideal is a
    regular C-gon (vertex c at angle 2πc/C, radius 1). Returns (means C×2, ideal C×2) as numpy arrays: a perfect
    simplex puts each mean on its vertex; collapsed or clumped classes fall towards the centre or each other."""
    u, _ = class_means(features, labels)
    c = u.shape[0]
    v = simplex_etf(c)
    a, _, bt = torch.linalg.svd(u.T @ v, full_matrices=False)     # D×C, C×C: argmax tr(RᵀUᵀV)
    aligned = u @ (a @ bt)                                        # C×C in the ideal's coordinates
    ang = 2 * math.pi * torch.arange(c, dtype=torch.float64) / c
    plane = torch.stack([torch.cos(ang), torch.sin(ang)], 1) * math.sqrt((c - 1) / c)   # C×2, radius 1
    ideal = v @ plane
    return (aligned @ plane).numpy(), ideal.numpy()


def effective_rank(features: torch.Tensor, eps: float = 1e-7) -> float:
    """Entropy-based effective rank (RankMe): exp(−Σ p_k log p_k), p_k = σ_k/Σσ + eps, σ the singular values of
    the (uncentred) feature matrix float N×D. 1 = every feature on one line (collapse); min(N, D) = isotropic."""
    f = torch.as_tensor(features).double()
    if f.ndim != 2 or min(f.shape) < 1:
        raise ConfigError(f"effective_rank: features must be N×D, got {tuple(f.shape)}")
    s = torch.linalg.svdvals(f)
    if float(s.sum()) == 0.0:
        return float("nan")
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


#: Labelled images per class of :func:`label_efficiency` (``None`` = all of them).
PER_CLASS = (1, 5, 10, 50, None)


def label_efficiency(train: Any, test: Any, per_class: Iterable[int | None] = PER_CLASS,
                     probes: Iterable[str] = ("linear", "mlp"), target: str = "label", seed: int = 0,
                     full: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Probe accuracy against the number of labelled training images per class.

    Args:
        train, test: :class:`gpsviz.evaluate.Features` of the train and held-out splits.
        per_class: images per class drawn (seeded) from train; ``None`` = all (classes with fewer keep all theirs).
        probes: ``linear`` and/or ``mlp`` (:func:`gpsviz.evaluate.linear_probe` / ``mlp_probe``).
        full: optional ``{probe: accuracy}`` already measured on all of train (reused instead of refitting).

    Returns:
        rows ``{"per_class": n or "all", "probe", "n_train", "test_acc"}``.
    """
    fns = {"linear": linear_probe, "mlp": mlp_probe}
    bad = [p for p in probes if p not in fns]
    if bad:
        raise ConfigError(f"label_efficiency: unknown probe(s) {bad}; choose linear and/or mlp")
    y = _labelled(train.features, train.targets(target)[0])[1]
    rows = []
    for k in per_class:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(f"label_efficiency: per_class entries must be positive integers or None, got {k!r}")
        sub = None
        if k is not None:
            g = torch.Generator().manual_seed(seed)
            sub = torch.cat([idx[torch.randperm(idx.numel(), generator=g)[:k]]
                             for idx in (torch.nonzero(y == c).flatten() for c in torch.unique(y))])
        for p in probes:
            if k is None and full and p in full:
                acc, n = float(full[p]), int(y.numel())
            else:
                r = fns[p](train, test, target=target, seed=seed, train_subset=sub)
                acc, n = float(r["test_acc"]), int(r["n_train"])
            rows.append({"per_class": "all" if k is None else int(k), "probe": p, "n_train": n, "test_acc": acc})
    return rows


# ------------------------------------------------------------------------- Dubois et al.: representations with known answers
#: Kinds of :func:`constructed_representation`.
CONSTRUCTED_KINDS = ("ideal", "simplex", "collapsed", "invariant-undecodable", "not-invariant")


def constructed_representation(kind: str, n_images: int = 100, n_classes: int = 10, views: int = 4,
                               dim: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """A representation whose conditions are known, for tests and notebook 06.

    Kinds (N = ``n_images`` images in C = ``n_classes`` balanced classes, V = ``views`` views each, D = ``dim``):

    - ``simplex``: every view of every image of class c is the simplex-ETF vertex c (scaled by 3): invariant,
      ETF distance 0, effective rank C−1, but images of one class cannot be told apart.
    - ``invariant-undecodable``: the same construction under its teaching name (invariance 0, instance
      decodability C/N = chance within a class).
    - ``ideal``: vertex c plus a per-image offset (zero mean within each class, in the D−C other dimensions),
      identical across views: invariant, decodable, class means exactly on the simplex.
    - ``collapsed``: one random direction times a random positive scale per view: effective rank 1.
    - ``not-invariant``: an independent random vector per view: invariance ratio about 1, decodability chance.

    Returns ``{"views": float V×N×D, "labels": int64 N}`` (view v of image i = ``views[v, i]``).
    """
    if kind not in CONSTRUCTED_KINDS:
        raise ConfigError(f"constructed_representation: kind {kind!r} is unknown; choose from "
                          f"{', '.join(CONSTRUCTED_KINDS)}")
    if dim < n_classes + 1 or n_images < 2 * n_classes:
        raise ConfigError(f"constructed_representation: need dim > n_classes and at least two images per class, "
                          f"got dim={dim}, n_classes={n_classes}, n_images={n_images}")
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_images) % n_classes
    vert = torch.zeros(n_classes, dim, dtype=torch.float64)
    vert[:, :n_classes] = 3.0 * simplex_etf(n_classes)
    if kind in ("simplex", "invariant-undecodable"):
        one = vert[labels]
        v = one.expand(views, -1, -1).clone()
    elif kind == "ideal":
        off = torch.zeros(n_images, dim, dtype=torch.float64)
        off[:, n_classes:] = torch.randn(n_images, dim - n_classes, generator=g, dtype=torch.float64)
        for c in range(n_classes):
            off[labels == c] -= off[labels == c].mean(0)
        v = (vert[labels] + off).expand(views, -1, -1).clone()
    elif kind == "collapsed":
        u = torch.randn(dim, generator=g, dtype=torch.float64)
        v = (0.5 + torch.rand(views, n_images, 1, generator=g, dtype=torch.float64)) * u
    else:
        v = torch.randn(views, n_images, dim, generator=g, dtype=torch.float64)
    return {"views": v.float(), "labels": labels}


def conditions_of(rep: dict[str, torch.Tensor], fit_views: int | None = None, seed: int = 0) -> dict[str, float]:
    """The four conditions of a :func:`constructed_representation` (or any ``{"views": V×N×D, "labels": N}``):
    invariance (views 0 and 1), instance decodability (fit on the first ``fit_views`` views, default V−1, report
    on the rest), distance to a simplex ETF (:func:`dist_to_etf` of views 0 and 1, the instance-level Dubois
    condition; ``class_means_etf``: :func:`class_means_etf_distance` of view 0) and effective rank (of view 0)."""
    v, y = rep["views"], rep["labels"]
    nv, n = v.shape[0], v.shape[1]
    k = nv - 1 if fit_views is None else int(fit_views)
    if not 1 <= k < nv or nv < 2:
        raise ConfigError(f"conditions_of: need ≥ 2 views and 1 ≤ fit_views < {nv}, got {fit_views}")
    ids = torch.arange(n)
    return {"invariance": invariance_ratio(v[0], v[1]),
            "decodability": instance_decodability(v[:k].reshape(-1, v.shape[2]), ids.repeat(k),
                                                   v[k:].reshape(-1, v.shape[2]), ids.repeat(nv - k), seed=seed),
            "etf_distance": dist_to_etf(v[0], v[1])["dist_to_etf"], "effective_rank": effective_rank(v[0]),
            "class_means_etf": class_means_etf_distance(v[0], y)["etf_distance"]}
