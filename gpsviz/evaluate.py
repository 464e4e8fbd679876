"""Evaluation of a frozen backbone: kNN, linear and MLP probes, label-fraction sweeps.

Train/test separation is enforced by the API: every probe takes a *train* :class:`Features` and a *test*
:class:`Features` (each remembers the split it came from) and refuses two of the same split; the linear probe
chooses its regularisation on a validation part carved out of train, never on test. Feature extraction
(:func:`extract`, :func:`extract_features`, :class:`Features`) lives one layer below, in :mod:`gpsviz.features`,
and is re-exported here.

    >>> tr = extract(backbone, train_ds); te = extract(backbone, test_ds)
    >>> linear_probe(tr, te, target="label")["test_acc"]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz.errors import ConfigError, DataError
from gpsviz.features import Features, extract, extract_features  # noqa: F401  (re-exported: train, notebooks)
from gpsviz.knn import knn_search
from gpsviz.models import build_backbone
from gpsviz.utils import resolve_device

PROBES = ("knn", "linear", "mlp")


def _check_split(train: Features, test: Features) -> None:
    if train.dataset is test.dataset or train.split == test.split:
        raise DataError(f"a probe must be fitted on the train split and reported on another split; got "
                        f"train={train.split!r}, test={test.split!r}. Load both with load_dataset(name, split=...)")
    if train.split != "train":
        raise DataError(f"probes fit on the 'train' split; got {train.split!r} as the fitting split")


def _labelled(f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    keep = y >= 0
    return f[keep], y[keep]


def knn_accuracy(train_feats: Features | torch.Tensor, test_feats: Features | torch.Tensor, k: int = 20,
                 temperature: float = 0.07, target: str = "label", train_labels: torch.Tensor | None = None,
                 test_labels: torch.Tensor | None = None) -> float:
    """Weighted kNN (cosine similarity, votes weighted by exp(sim/τ)) accuracy on the test features.

    Accepts :class:`Features` (labels from ``target``) or raw tensors N×d with ``*_labels`` given.
    """
    if isinstance(train_feats, Features):
        _check_split(train_feats, test_feats)
        train_labels, test_labels = train_feats.targets(target)[0], test_feats.targets(target)[0]
        train_feats, test_feats = train_feats.features, test_feats.features
    if train_labels is None or test_labels is None:
        raise DataError("knn_accuracy on raw tensors needs train_labels and test_labels")

    ftr, ytr = _labelled(train_feats, train_labels)
    fte, yte = _labelled(test_feats, test_labels)
    k = min(k, ftr.shape[0])
    dist, idx = knn_search(fte, ftr, k=k, metric="cosine")           # Nte×k cosine distances (1 − cos), indices
    sims = 1.0 - dist
    num_classes = int(max(ytr.max(), yte.max())) + 1
    votes = torch.zeros(fte.shape[0], num_classes)
    votes.scatter_add_(1, ytr[idx], torch.exp(sims.float() / temperature))
    return float((votes.argmax(1) == yte).float().mean())


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mu, sd = train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp_min(1e-6)
    return [(t - mu) / sd for t in (train, *others)]


def _fit_softmax(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                 hidden: int = 0, epochs: int = 100, seed: int = 0) -> nn.Module:
    """Full-batch L-BFGS for a linear model (hidden=0), or Adam mini-batches for a 1-hidden-layer MLP."""
    torch.manual_seed(seed)
    d = x.shape[1]
    model = nn.Linear(d, num_classes) if hidden == 0 else nn.Sequential(
        nn.Linear(d, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    if hidden == 0:
        opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=epochs, history_size=10,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y) + weight_decay * model.weight.pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=weight_decay)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], 256):
                j = perm[i:i + 256]
                if j.numel() < 2:
                    continue
                opt.zero_grad()
                F.cross_entropy(model(x[j]), y[j]).backward()
                opt.step()
    return model.eval()


@torch.no_grad()
def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def _split_train_val(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction)))
    return perm[n_val:], perm[:n_val]


def _probe(train: Features, test: Features, target: str, hidden: int, grid: Sequence[float], epochs: int,
           val_fraction: float, seed: int, train_subset: torch.Tensor | None = None) -> dict[str, Any]:
    _check_split(train, test)
    ytr_all, names = train.targets(target)
    ftr, ytr = _labelled(train.features, ytr_all)
    if train_subset is not None:
        ftr, ytr = ftr[train_subset], ytr[train_subset]
    fte, yte = _labelled(test.features, test.targets(target)[0])
    if ftr.shape[0] < 4:
        raise DataError(f"too few labelled training samples ({ftr.shape[0]}) for a probe on {target!r}")
    num_classes = max(len(names), int(max(ytr.max(), yte.max())) + 1)
    fit_idx, val_idx = _split_train_val(ftr.shape[0], val_fraction, seed)
    xf, xv = _standardise(ftr[fit_idx], ftr[val_idx])
    scores = {}
    for wd in grid:
        m = _fit_softmax(xf, ytr[fit_idx], num_classes, wd, hidden, epochs, seed)
        scores[wd] = _acc(m, xv, ytr[val_idx])
    best = max(scores, key=lambda w: (scores[w], w))          # ties → stronger regularisation
    x_all, x_te = _standardise(ftr, fte)
    model = _fit_softmax(x_all, ytr, num_classes, best, hidden, epochs, seed)
    return {"target": target, "test_acc": _acc(model, x_te, yte), "train_acc": _acc(model, x_all, ytr),
            "val_acc": scores[best], "weight_decay": best, "n_train": int(ftr.shape[0]),
            "n_test": int(fte.shape[0])}


def linear_probe(train: Features, test: Features, target: str = "label", val_fraction: float = 0.2,
                 grid: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2), seed: int = 0,
                 train_subset: torch.Tensor | None = None) -> dict[str, Any]:
    """Multinomial logistic regression on standardised features; L2 strength chosen on a validation part of
    train, refitted on all of train, accuracy reported on test. Returns a dict with ``test_acc`` and details."""
    return _probe(train, test, target, 0, grid, 100, val_fraction, seed, train_subset)


def mlp_probe(train: Features, test: Features, target: str = "label", hidden: int = 512, epochs: int = 30,
              val_fraction: float = 0.2, grid: Sequence[float] = (1e-4, 1e-2), seed: int = 0,
              train_subset: torch.Tensor | None = None) -> dict[str, Any]:
    """One-hidden-layer MLP probe (BN + ReLU), weight decay chosen on a validation part of train."""
    return _probe(train, test, target, hidden, grid, epochs, val_fraction, seed, train_subset)


def label_fraction_sweep(train: Features, test: Features, fractions: Sequence[float] = (0.01, 0.1, 1.0),
                         target: str = "label", probe: str = "linear", seed: int = 0) -> list[dict[str, Any]]:
    """Probe accuracy against the fraction of training labels used (class-stratified subsets)."""
    y = _labelled(train.features, train.targets(target)[0])[1]
    rows = []
    for frac in fractions:
        if not 0 < frac <= 1:
            raise DataError(f"label fraction {frac} must lie in (0, 1]")
        g = torch.Generator().manual_seed(seed)
        keep = []
        for c in torch.unique(y):
            idx = torch.nonzero(y == c).flatten()
            n = max(2, int(math.ceil(frac * idx.numel())))
            keep.append(idx[torch.randperm(idx.numel(), generator=g)[:n]])
        sub = torch.cat(keep)
        fn = linear_probe if probe == "linear" else mlp_probe
        r = fn(train, test, target=target, seed=seed, train_subset=sub)
        rows.append({"fraction": frac, **r})
    return rows


def run_probes(train: Features, test: Features, targets: Sequence[str], probes: Sequence[str]
               ) -> dict[str, float]:
    """Test accuracy of each probe (knn, linear, mlp) for each target: ``{"<probe>_<target>": acc}``."""
    fits = {"knn": lambda t: knn_accuracy(train, test, target=t),
            "linear": lambda t: linear_probe(train, test, target=t)["test_acc"],
            "mlp": lambda t: mlp_probe(train, test, target=t)["test_acc"]}
    bad = [p for p in probes if p not in fits]
    if bad:
        raise DataError(f"unknown probe(s) {', '.join(map(repr, bad))}; choose from {', '.join(PROBES)}")
    return {f"{p}_{t}": fits[p](t) for t in targets for p in probes}


FLOOR_NAMES = ("raw pixels", "random init")


def probe_floors(train_ds, test_ds, backbone: str = "small-cnn", seed: int = 0,
                 targets: Sequence[str] | None = None, probes: Sequence[str] = ("knn", "linear"),
                 device=None, backbone_options: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """The floors of a results table: the same probes on raw pixels and on a randomly initialised backbone.

    ``train_ds``/``test_ds``: ImageDatasets (uint8 N×C×H×W); raw pixels are the flattened images in [0, 1]
    (N×C·H·W); the random backbone is ``build_backbone(backbone, **backbone_options)`` after
    ``torch.manual_seed(seed)`` (give the options the trained runs used, e.g. ``{"width": 16}``).
    ``targets`` defaults as in :func:`~gpsviz.runs.evaluate_run`. Returns ``{"raw pixels": {"linear_label": acc, ...},
    "random init": {...}}`` — a learned representation that does not beat both floors has learned nothing.
    """
    if targets is None:
        targets = [t for t in ("label", "colour", "position") if t in train_ds.target_names()]
    flat = lambda ds: Features(ds.images.float().flatten(1) / 255.0, ds)  # noqa: E731
    torch.manual_seed(seed)
    net = build_backbone(backbone, in_channels=train_ds.channels, **(backbone_options or {}))
    dev = resolve_device(device) if device else "cpu"
    feats = {"raw pixels": (flat(train_ds), flat(test_ds)),
             "random init": (extract(net, train_ds, device=dev), extract(net, test_ds, device=dev))}
    out: dict[str, dict[str, float]] = {}
    for name, (tr, te) in feats.items():
        out[name] = run_probes(tr, te, targets, probes)
    return out


# ---------------------------------------------------------------------------------------------- ridge probe
# A regression probe (CASSLE's augmentation-parameter prediction reads it): ridge on centred features, α chosen on a
# validation part of the training rows.
def _ridge_weights(x: torch.Tensor, y: torch.Tensor, alphas: Sequence[float]) -> list[torch.Tensor]:
    """Ridge solutions (d×P each) of centred x (n×d), y (n×P) for each α, from one SVD."""
    u, s, vh = torch.linalg.svd(x, full_matrices=False)                             # n×r, r, r×d
    uty = u.T @ y                                                                     # r×P
    return [vh.T @ ((s / (s * s + a)).unsqueeze(1) * uty) for a in alphas]


ALPHAS = (1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4)


@dataclass
class RidgeProbe:
    """A fitted ridge regression (float64): ``predict(x)`` maps N×d features to N×P targets."""

    mean: torch.Tensor      # d, feature mean (standardisation)
    scale: torch.Tensor     # d, feature std
    x_centre: torch.Tensor  # d, mean of the standardised training features
    y_centre: torch.Tensor  # P
    weight: torch.Tensor    # d×P
    alpha: torch.Tensor     # P, the α chosen per column

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """N×d → float64 N×P."""
        xs = (x.double() - self.mean) / self.scale
        return (xs - self.x_centre) @ self.weight + self.y_centre


def fit_ridge(x: torch.Tensor, y: torch.Tensor, alphas: Sequence[float] = ALPHAS, val_fraction: float = 0.2,
              seed: int = 0) -> RidgeProbe:
    """Fit a ridge probe on train features x (N×d) → targets y (N×P): features standardised, α chosen per
    column on a validation part (``val_fraction``) of these rows, then refitted on all of them."""
    if x.shape[0] != y.shape[0]:
        raise ConfigError("fit_ridge: features and targets must have the same number of rows")
    if x.shape[0] < 5:
        raise ConfigError(f"fit_ridge: need at least 5 training rows, got {x.shape[0]}")
    xt, yt = x.double(), y.double()
    mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-8)
    xt = (xt - mu) / sd
    n = xt.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(val_fraction * n)))
    va, fi = perm[:n_val], perm[n_val:]
    xm, ym = xt[fi].mean(0), yt[fi].mean(0)
    ws = _ridge_weights(xt[fi] - xm, yt[fi] - ym, alphas)
    val_err = torch.stack([(((xt[va] - xm) @ w + ym - yt[va]) ** 2).mean(0) for w in ws])   # A×P
    best = val_err.argmin(0)                                                                 # P
    xm_all, ym_all = xt.mean(0), yt.mean(0)
    ws_all = _ridge_weights(xt - xm_all, yt - ym_all, alphas)
    w = torch.stack([ws_all[int(best[j])][:, j] for j in range(yt.shape[1])], dim=1)       # d×P
    return RidgeProbe(mu, sd, xm_all, ym_all, w, torch.tensor([alphas[int(b)] for b in best], dtype=torch.float64))


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """R² per column (float64 P): ``1 − SSE/SST``, SST around the target's mean; NaN for a constant column."""
    pred, target = pred.double(), target.double()
    sse = ((pred - target) ** 2).sum(0)
    sst = ((target - target.mean(0)) ** 2).sum(0)
    r2 = 1.0 - sse / sst.clamp_min(1e-300)
    return torch.where(sst > 1e-12 * target.shape[0], r2, torch.full_like(r2, float("nan")))


def ridge_r2(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
             alphas: Sequence[float] = ALPHAS, val_fraction: float = 0.2, seed: int = 0) -> torch.Tensor:
    """Held-out R² per target column of a ridge regression (:func:`fit_ridge` on train, :func:`r2_score` on
    test). train_x N×d, train_y N×P, test_x M×d, test_y M×P → float64 P (1 = perfect, 0 = no better than the
    test mean, < 0 worse; NaN for a column constant on test, e.g. blur σ when the augmentation never blurs)."""
    if train_x.shape[1] != test_x.shape[1] or train_y.shape[1] != test_y.shape[1]:
        raise ConfigError("ridge_r2: train and test must have the same feature and target widths")
    if test_x.shape[0] != test_y.shape[0]:
        raise ConfigError("ridge_r2: features and targets must have the same number of rows")
    probe = fit_ridge(train_x, train_y, alphas, val_fraction, seed)
    return r2_score(probe.predict(test_x), test_y)
