"""What a representation keeps of the augmentation: CASSLE's analyses (notebook 05, ``reproduce cassle``).

Three questions, one function each:

* **Sensitivity** (:func:`sensitivity`, :func:`strength_sweep`): cosine similarity between the feature of a clean
  image and the feature of one of its augmented views, one augmentation family at a time (crop, flip, colour,
  grayscale, blur), at the **backbone** and at the **projector**. An invariant feature gives 1; a feature that
  still records the augmentation gives less. A conditioned (CASSLE) projector receives the view's descriptor
  (and the clean image the identity descriptor), as in training.
* **Augmentation-parameter prediction** (:func:`param_prediction`): R² of a ridge probe that reads each column of
  the 14-column CASSLE descriptor off the frozen backbone feature of augmented views (fitted on views of the
  train split, reported on views of the held-out split) -- the augmentation information the backbone kept. Hue is
  predicted through its angle code (``hue_cos`` = cos 2πh − 1, ``hue_sin`` = sin 2πh: two columns of the colour
  family), not as the raw shift, which is discontinuous at ±0.5 turn.
* **Task probes** (:func:`task_probes`): the existing kNN/linear probes of the run's backbone (shape class,
  colour factor on shapes; the class on Fashion-MNIST).

    run = load_run("data/runs/nb05-cassle-simclr-…")          # backbone + projector + the training augmenter
    rows = sensitivity(run, test_ds.images[:200])              # [{family, level, similarity, std, …}]
    r2 = param_prediction(run, train_ds, test_ds)              # {"r2": {column: R²}, "r2_mean": …, "r2_family": …}

Evaluation of CASSLE uses the backbone feature (``evaluate_run`` loads ``checkpoint["backbone"]`` only); the
projector appears here only to show what it does with the descriptor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gpsviz.augment import DESCRIPTOR_NAMES, AugmentConfig, Augmenter, AugParams
from gpsviz.augment.config import ALONE_FAMILIES, family_config
from gpsviz.checkpoint import load_checkpoint, load_state, resolve_checkpoint_path
from gpsviz.config import TrainConfig
from gpsviz.data.loaders import dataset_image_size
from gpsviz.errors import CheckpointError, ConfigError, DataError, GpsvizError
from gpsviz.evaluate import ridge_r2
from gpsviz.models.heads import DESCRIPTOR_FAMILIES  # descriptor columns of each family
from gpsviz.recipes import build_ingredients
from gpsviz.runs import evaluate_run

__all__ = ["FAMILIES", "LEVELS", "LoadedRun", "load_run", "run_image_size", "view_similarity",
           "sensitivity", "strength_sweep", "augmented_features",
           "param_prediction", "task_probes", "DESCRIPTOR_FAMILIES"]

#: Augmentation families that :func:`~gpsviz.augment.config.family_config` applies alone.
FAMILIES = ALONE_FAMILIES
#: Where the similarity is measured.
LEVELS = ("backbone", "projector")

# ---------------------------------------------------------------------------------------------- a trained run
def _device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@dataclass
class LoadedRun:
    """A trained run ready for analysis (eval mode, CPU unless moved).

    Attributes:
        name: a display name. backbone: B×C×H×W → B×d. projector: the recipe's head (V×d → V×p; a conditioned
        head reads ``batch.descriptor``). augmenter: the run's training augmentation (its jitter strengths are
        the descriptor's ranges, so a view's descriptor means what it meant in training). config: the run's
        TrainConfig. run_dir: the folder (None for a model built in memory). image_size: the width in pixels of
        the images it was trained on, in_channels: their channels (None when unknown, e.g. built in memory).
    """

    name: str
    backbone: nn.Module
    projector: nn.Module
    augmenter: Augmenter
    config: Any = None
    run_dir: Path | None = None
    image_size: int | None = None
    in_channels: int | None = None

    @property
    def conditioned(self) -> bool:
        """True when the projector reads the augmentation descriptor (CASSLE)."""
        return bool(getattr(self.projector, "needs_descriptor", False))

    def descriptor(self, params: AugParams, image_size: int | tuple[int, int]) -> torch.Tensor:
        """The CASSLE descriptor (float32 B×14) of views with ``params``, with the training augmenter's ranges."""
        return self.augmenter.descriptor(params, image_size)

    @torch.no_grad()
    def embed(self, views: torch.Tensor, params: AugParams | None = None, batch_size: int = 512
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float views B×C×H×W (+ their parameters) → (backbone features B×d, projector outputs B×p),
        float32 on CPU. ``params`` is needed by a conditioned projector."""
        self.backbone.eval()
        self.projector.eval()
        dev = _device(self.backbone)
        if self.conditioned and params is None:
            raise ConfigError(f"run {self.name!r} has a conditioned projector: pass the views' AugParams")
        size = tuple(views.shape[-2:])
        hs, zs = [], []
        for i in range(0, views.shape[0], batch_size):
            v = views[i:i + batch_size].to(dev)
            h = self.backbone(v).float().flatten(1)                                  # b×d
            batch = None
            if params is not None:
                batch = SimpleNamespace(descriptor=self.descriptor(params[i:i + batch_size], size).to(dev))
            zs.append(self.projector(h, batch).float().cpu())                         # b×p
            hs.append(h.cpu())
        return torch.cat(hs), torch.cat(zs)


def run_image_size(ck: dict[str, Any], cfg: Any) -> int | None:
    """The width in pixels of a run's training images: the checkpoint's ``image_size`` when it records one, else
    what the run's dataset and options say (:func:`gpsviz.data.loaders.dataset_image_size`); None if unknown."""
    size = ck.get("image_size") if isinstance(ck, dict) else None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    try:
        return dataset_image_size(cfg.data, cfg.data_options)
    except GpsvizError:
        return None


def load_run(run_dir: str | Path, name: str | None = None, device: str | torch.device = "cpu",
             image_size: int | None = None) -> LoadedRun:
    """Load a run folder's whole model (backbone and projector, from ``checkpoint["model"]``) in eval mode.

    ``image_size``: the width in pixels of the run's training images (its views and descriptors are configured
    for it); default: the run's own (:func:`run_image_size`: 64 for a ``size=64`` shapes run), 32 if unknown."""

    path = resolve_checkpoint_path(run_dir)
    ck = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ck["config"])
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ConfigError(f"load_run: image_size must be a positive number of pixels, got {image_size!r}")
    size = image_size or run_image_size(ck, cfg) or 32
    try:
        parts = build_ingredients(cfg, ck["in_channels"], size)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise CheckpointError(f"{path}: the model in its config cannot be built ({type(e).__name__}: {str(e)[:200]}); "
                              f"the checkpoint was edited or damaged. Use the original file or train again.") from None
    load_state(parts.model, ck["model"], path, "model")
    model = parts.model.to(device).eval()
    return LoadedRun(name or cfg.recipe, model.backbone, model.projector, Augmenter(cfg.aug, cfg.strength),
                     cfg, path.parent, size, int(ck["in_channels"]))


# ---------------------------------------------------------------------------------------------- sensitivity
def _check_channels(run: LoadedRun, images: Any) -> None:
    """DataError when ``images`` (N×C×H×W) have another number of channels than the run was trained on."""
    c = getattr(images, "shape", (0, 0))[1] if getattr(images, "ndim", 0) == 4 else None
    if c is not None and getattr(run, "in_channels", None) not in (None, c):
        raise DataError(f"run {run.name!r} was trained on {run.in_channels}-channel images, but these images have "
                        f"{c} channel(s); use images of the run's own dataset (gpsviz.runs.load_data(run.config))")


def _identity_params(n: int, shape: tuple[int, int, int]) -> AugParams:
    """Parameters of n un-augmented views (whole-image crop, neutral jitter factors, no flags)."""
    return Augmenter("none").sample(n, shape)


def _similarity(a: torch.Tensor, b: torch.Tensor, centre: torch.Tensor | None) -> torch.Tensor:
    if centre is not None:
        a, b = a - centre, b - centre
    return F.cosine_similarity(a, b, dim=1)


@torch.no_grad()
def view_similarity(run: LoadedRun, images: torch.Tensor, config: AugmentConfig, n_views: int = 4, seed: int = 0,
                    centre: bool = False) -> dict[str, Any]:
    """Per-view similarity of ``n_views`` views (made with ``config``) of each image to the clean image.

    Args:
        images: uint8 N×C×H×W. config: the augmentation (e.g. :func:`~gpsviz.augment.config.family_config`). seed: the views' draw.
        centre: subtract the mean clean feature (over these N images) before the cosine, so similarity is
            measured around the data's centre instead of around 0 (ReLU features are all positive).

    Returns ``{"backbone": N×V, "projector": N×V}`` cosine similarities, ``"views"`` (N·V×C×H×W normalised,
    image-major), ``"params"`` (AugParams N·V) and ``"descriptor"`` (N·V×14, the training augmenter's ranges)."""
    if images.ndim != 4:
        raise ConfigError(f"images must be uint8 N×C×H×W, got shape {tuple(images.shape)}")
    _check_channels(run, images)
    if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 1:
        raise ConfigError(f"n_views={n_views!r} is impossible: it must be an integer >= 1")
    n, c, h, w = images.shape
    aug = Augmenter(config, mean=run.augmenter.mean, std=run.augmenter.std)
    clean = aug.normalize(images.clone())
    clean_params = _identity_params(n, (c, h, w))
    g = torch.Generator().manual_seed(int(seed))
    rep = images.repeat_interleave(n_views, dim=0)                                  # N·V×C×H×W, image-major
    views, params = aug(rep, generator=g)
    hc, zc = run.embed(clean, clean_params)                                          # N×d, N×p
    hv, zv = run.embed(views, params)                                                # N·V×d, N·V×p
    out: dict[str, Any] = {"views": views, "params": params, "descriptor": run.descriptor(params, (h, w))}
    for level, clean_f, view_f in (("backbone", hc, hv), ("projector", zc, zv)):
        mu = clean_f.mean(0, keepdim=True) if centre else None
        out[level] = _similarity(clean_f.repeat_interleave(n_views, dim=0), view_f, mu).view(n, n_views)
    return out


def sensitivity(run: LoadedRun, images: torch.Tensor, families: Sequence[str] = FAMILIES, strength: float = 1.0,
                n_views: int = 4, seed: int = 0, base: str | AugmentConfig | None = None,
                centre: bool = False) -> list[dict[str, Any]]:
    """Mean cosine similarity (clean image vs augmented view) per family and level, one family at a time.

    ``images`` uint8 N×C×H×W (held-out images); ``base``: the preset whose magnitudes the families take
    (default: the run's training augmentation). Returns rows ``{"run", "family", "strength", "level",
    "similarity", "std"}`` (std over the N·V views), families in the given order, backbone then projector."""
    base = run.config.aug if base is None and run.config is not None else (base or "strong")
    rows = []
    for fam in families:
        r = view_similarity(run, images, family_config(fam, strength, base), n_views, seed, centre)
        for level in LEVELS:
            s = r[level].flatten()
            rows.append({"run": run.name, "family": fam, "strength": float(strength), "level": level,
                         "similarity": float(s.mean()), "std": float(s.std()) if s.numel() > 1 else 0.0})
    return rows


def strength_sweep(run: LoadedRun, images: torch.Tensor, family: str = "colour",
                   strengths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0), n_views: int = 4,
                   seed: int = 0, base: str | AugmentConfig | None = None, centre: bool = False) -> list[dict]:
    """:func:`sensitivity` of one family at each strength (rows as there; strength 0 is the identity → 1)."""
    rows = []
    for s in strengths:
        rows += sensitivity(run, images, [family], s, n_views, seed, base, centre)
    return rows


# ---------------------------------------------------------------------------------------------- parameter prediction
@torch.no_grad()
def augmented_features(embed: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, augmenter: Augmenter,
                       n_views: int = 1, seed: int = 0, batch_size: int = 1024
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and descriptors of augmented views: ``embed`` maps normalised views b×C×H×W → b×d.

    Returns (float32 N·V×d features, float32 N·V×14 descriptors with ``augmenter``'s ranges), image-major."""
    g = torch.Generator().manual_seed(int(seed))
    feats, descs = [], []
    size = tuple(images.shape[-2:])
    for i in range(0, images.shape[0], batch_size):
        rep = images[i:i + batch_size].repeat_interleave(n_views, dim=0)
        views, params = augmenter(rep, generator=g)
        feats.append(embed(views).float().flatten(1).cpu())
        descs.append(augmenter.descriptor(params, size).cpu())
    return torch.cat(feats), torch.cat(descs)


def _summary(r2: torch.Tensor) -> dict[str, Any]:
    cols = {name: float(v) for name, v in zip(DESCRIPTOR_NAMES, r2.tolist())}
    ok = [v for v in cols.values() if not math.isnan(v)]
    fam = {}
    for f, idx in DESCRIPTOR_FAMILIES.items():
        vals = [cols[DESCRIPTOR_NAMES[i]] for i in idx if not math.isnan(cols[DESCRIPTOR_NAMES[i]])]
        fam[f] = sum(vals) / len(vals) if vals else float("nan")
    return {"r2": cols, "r2_mean": sum(ok) / len(ok) if ok else float("nan"), "r2_family": fam}


def param_prediction(run: LoadedRun | nn.Module | str, train_images: Any, test_images: Any,
                     augmenter: Augmenter | str | None = None, n_views: int = 1, seed: int = 0,
                     max_images: int | None = 5000) -> dict[str, Any]:
    """How well a ridge probe on the frozen feature recovers each augmentation parameter (R² per column).

    Args:
        run: a :class:`LoadedRun` (its backbone), a backbone module (B×C×H×W → B×d), or ``"pixels"`` (the
            raw-pixel floor: the flattened normalised view).
        train_images / test_images: ImageDatasets or uint8 N×C×H×W (train split to fit, held-out split to report).
        augmenter: the views' augmentation and the descriptor's ranges (default: the run's training augmenter,
            else ``strong``). n_views: views per image. max_images: images used per split (the first ones).

    Returns ``{"r2": {descriptor column: R²}, "r2_mean": mean over the columns that vary, "r2_family":
    {family: mean R² of its columns}}`` (NaN for columns the augmentation never varies)."""
    if augmenter is None:
        augmenter = run.augmenter if isinstance(run, LoadedRun) else Augmenter("strong")
    elif isinstance(augmenter, (str, AugmentConfig)):
        augmenter = Augmenter(augmenter)
    if isinstance(run, str):
        if run != "pixels":
            raise ConfigError(f"param_prediction: run must be a LoadedRun, a backbone or 'pixels', got {run!r}")
        embed: Callable = lambda v: v.flatten(1)  # noqa: E731
    else:
        net = run.backbone if isinstance(run, LoadedRun) else run
        net.eval()
        dev = _device(net)
        embed = lambda v: net(v.to(dev))  # noqa: E731
    tr = getattr(train_images, "images", train_images)
    te = getattr(test_images, "images", test_images)
    if isinstance(run, LoadedRun):
        _check_channels(run, tr)
        _check_channels(run, te)
    if max_images:
        tr, te = tr[:max_images], te[:max_images]
    xtr, ytr = augmented_features(embed, tr, augmenter, n_views, seed)
    xte, yte = augmented_features(embed, te, augmenter, n_views, seed + 1)
    return _summary(ridge_r2(xtr, ytr, xte, yte, seed=seed))


def task_probes(run_dir: str | Path, targets: Sequence[str] | None = None,
                probes: Sequence[str] = ("knn", "linear"), data: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """The run's backbone probed for each target (default: shape class plus colour and position on shapes; the
    class elsewhere): :func:`gpsviz.runs.evaluate_run` without writing ``results.json``."""
    return evaluate_run(run_dir, targets=targets, probes=probes, write=False, data=data)
