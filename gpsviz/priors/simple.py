"""Priors computed from the pixels alone or from the labels: ``pixels``, ``pca``, ``hog``, ``hog-invariant``,
``oracle`` (no training, no download; seconds on a CPU)."""
from __future__ import annotations

from typing import Any

import torch

from gpsviz.errors import ConfigError, DataError
from gpsviz.features import to_float
from gpsviz.handcrafted import hog_features, invariant_hog_features
from gpsviz.priors.registry import CHANNELS, SEED, register_prior
from gpsviz.registry import Opt
from gpsviz.utils import make_generator


@register_prior("pixels")
def _pixels(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Raw pixels in [0, 1], flattened (N × C·H·W). Prior knowledge: none — images that look alike pixel by
    pixel (same colours, same place) are assumed to share a class."""
    return to_float(dataset.images).flatten(1)


@register_prior("pca", dim=64, whiten=False, fit_n=20000, seed=0, options={
    "dim": Opt(int, 1, 4096, note="components"), "whiten": Opt(bool),
    "fit_n": Opt(int, 2, 10_000_000, note="images the PCA is fitted on"), "seed": SEED})
def _pca(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """PCA of the pixels (fit on the dataset itself — unsupervised — on up to ``fit_n`` images; ``dim``
    components, randomised SVD). Prior knowledge: the directions of largest pixel variance carry the semantics;
    fine detail is noise."""
    x = to_float(dataset.images).flatten(1)                                     # N×D
    n, d = x.shape
    dim = int(opts["dim"])
    if dim < 1:
        raise ConfigError(f"prior 'pca': dim must be >= 1, got {dim}")
    g = make_generator(int(opts["seed"]))
    fit = x[torch.randperm(n, generator=g)[: int(opts["fit_n"])]] if n > int(opts["fit_n"]) else x
    dim = min(dim, fit.shape[0], d)
    mean = fit.mean(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(opts["seed"]))
        _, sv, v = torch.svd_lowrank(fit - mean, q=min(dim + 10, fit.shape[0], d), niter=4)   # V: D×q
    z = (x - mean) @ v[:, :dim]                                                 # N×dim
    if opts["whiten"]:
        z = z / (sv[:dim] / max(1.0, fit.shape[0] - 1) ** 0.5).clamp_min(1e-8)
    return z


@register_prior("hog", cell=8, bins=9, block=2, channels="max", options={
    "cell": Opt(int, 4, 256, many=True, note="cell side in pixels; several sizes are concatenated"),
    "bins": Opt(int, 2, 360), "block": Opt(int, 1, 8, note="cells per block side"), "channels": CHANNELS})
def _hog(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Classic HOG on a grid of cells (:func:`gpsviz.handcrafted.hog_features`). Prior knowledge: *edges, not
    colours, carry the class* — gradient orientations, contrast-normalised, at fixed places in the image. Strong on
    aligned data (Fashion-MNIST); weak when objects move and rotate (shapes world: use ``hog-invariant``)."""
    cell = opts["cell"]
    return hog_features(dataset.images, cell=tuple(cell) if isinstance(cell, (list, tuple)) else int(cell),
                        bins=int(opts["bins"]), block=int(opts["block"]), channels=opts["channels"])


@register_prior("hog-invariant", blur=1.0, power=3.0, bins=36, radial_bins=8, angle_bins=8, spectrum_weight=0.5,
                channels="max", options={
                    "blur": Opt(float, 0.0, 10.0, note="Gaussian σ in pixels"),
                    "power": Opt(float, 0.0, 10.0, lo_open=True, note="edge weight |∇|**power"),
                    "bins": Opt(int, 4, 360), "radial_bins": Opt(int, 1, 64), "angle_bins": Opt(int, 1, 64),
                    "spectrum_weight": Opt(float, 0.0, 100.0), "channels": CHANNELS})
def _hog_invariant(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Globally pooled orientation statistics (:func:`gpsviz.handcrafted.invariant_hog_features`). Prior knowledge:
    *only the outline's shape matters* — not the colours, nor where the object is, how large, or how rotated."""
    return invariant_hog_features(dataset.images, **opts)


@register_prior("oracle", scale=1.0, options={
    "scale": Opt(float, 0.0, 1e6, lo_open=True, note="0 would make every image a neighbour of every other")})
def _oracle(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """One-hot class labels (× ``scale``). Prior knowledge: the labels themselves — the upper bound where every
    neighbour has the anchor's class (not available in real SSL; the ceiling to read other priors against)."""
    labels = dataset.labels.long()
    if getattr(dataset, "labelled", True) is False:
        raise DataError(f"prior 'oracle' is the class labels, but {getattr(dataset, 'name', 'the dataset')!r} is "
                        f"unlabelled; use a label-free prior (pixels, pca, hog, hog-invariant, ...)")
    if (labels < 0).any():
        raise DataError(f"prior 'oracle' needs a label for every image; {int((labels < 0).sum())} of "
                        f"{len(labels)} images of {getattr(dataset, 'name', 'the dataset')!r} are unlabelled (-1)")
    c = max(int(labels.max()) + 1, len(getattr(dataset, "classes", [])) or 0)
    return torch.nn.functional.one_hot(labels, c).float() * float(opts["scale"])
