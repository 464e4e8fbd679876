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
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz.errors import DataError
from gpsviz.features import Features, extract, extract_features  # noqa: F401  (re-exported: train, notebooks)
from gpsviz.runfolder import merge_results, run_dir_of
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
    from gpsviz.knn import knn_search

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


def evaluate_run(run_dir: str | Path, targets: Sequence[str] | None = None,
                 probes: Sequence[str] = ("knn", "linear"), device=None, write: bool = True,
                 data: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Evaluate a run folder's backbone on its dataset's train/test splits; writes ``results.json`` beside the
    checkpoint. ``targets`` defaults to the class label plus, for shapes, the colour and position factors.

    The results carry the ``checkpoint`` digest they were measured on and the run's ``provenance`` summary
    (precision, device, versions: :func:`gpsviz.provenance.summary`); results of an earlier model in the folder
    are dropped when they are merged (:func:`gpsviz.runfolder.merge_results`)."""
    from gpsviz.checkpoint import backbone_of, checkpoint_digest, load_checkpoint, resolve_checkpoint_path
    from gpsviz.provenance import summary
    from gpsviz.recipes import TrainConfig
    from gpsviz.runs import load_data

    run_dir = run_dir_of(run_dir)             # a checkpoint file → its run folder
    bad = [p for p in probes if p not in PROBES]
    if bad:
        raise DataError(f"unknown probe(s) {', '.join(map(repr, bad))}; choose from {', '.join(PROBES)}")
    digest = checkpoint_digest(run_dir)
    ck = load_checkpoint(run_dir)
    backbone = backbone_of(ck, resolve_checkpoint_path(run_dir), device=resolve_device(device) if device else "cpu")
    cfg_dict = ck["config"]
    cfg = TrainConfig.from_dict(cfg_dict)
    train_ds, test_ds = data if data is not None else load_data(cfg)
    for ds in (train_ds, test_ds):
        if ds.channels != ck["in_channels"]:
            raise DataError(f"{run_dir} was trained on {ck['in_channels']}-channel images ({cfg.data}); the "
                            f"{ds.split} data given has {ds.channels} channel(s) ({ds.name}). Evaluate it on "
                            f"data like its own (leave data out to use its config's dataset).")
    if targets is None:
        targets = [t for t in ("label", "colour", "position") if t in train_ds.target_names()]
        if not targets:
            raise DataError(f"{train_ds.name} has no labels or categorical factors to probe; evaluate the run on "
                            f"labelled data (pass data=(train, test) with labels)")
    if any(t in ("label", "class", "shape") for t in targets):
        for ds in (train_ds, test_ds):
            ds.targets("label")              # DataError when the images are unlabelled
    unknown = [t for t in targets if not train_ds.has_target(t)]
    if unknown:
        raise DataError(f"{cfg.data} has no target {', '.join(map(repr, unknown))}; choose from "
                        f"{', '.join(train_ds.target_names())} or a conjunction of two, e.g. 'label×colour'")
    tr, te = extract(backbone, train_ds), extract(backbone, test_ds)
    results: dict[str, Any] = {"run": str(run_dir), "recipe": cfg.recipe, "aug": cfg.aug, "seed": cfg.seed,
                               "data": cfg.data, "checkpoint": digest, "epoch": ck["epoch"],
                               "provenance": summary(ck.get("provenance"))}
    results.update(run_probes(tr, te, targets, probes))
    if write:
        merge_results(run_dir, results)      # keeps other targets/probes of earlier evaluations
    return results


FLOOR_NAMES = ("raw pixels", "random init")


def probe_floors(train_ds, test_ds, backbone: str = "small-cnn", seed: int = 0,
                 targets: Sequence[str] | None = None, probes: Sequence[str] = ("knn", "linear"),
                 device=None, backbone_options: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """The floors of a results table: the same probes on raw pixels and on a randomly initialised backbone.

    ``train_ds``/``test_ds``: ImageDatasets (uint8 N×C×H×W); raw pixels are the flattened images in [0, 1]
    (N×C·H·W); the random backbone is ``build_backbone(backbone, **backbone_options)`` after
    ``torch.manual_seed(seed)`` (give the options the trained runs used, e.g. ``{"width": 16}``).
    ``targets`` defaults as in :func:`evaluate_run`. Returns ``{"raw pixels": {"linear_label": acc, ...},
    "random init": {...}}`` — a learned representation that does not beat both floors has learned nothing.
    """
    from gpsviz.models import build_backbone

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
