"""Prior embeddings: where GPS-SSL (and SPPS) look for an anchor's semantic neighbours.

A prior maps every training image to a vector *before* SSL training; Euclidean distance in that space should
reflect semantics. Each prior encodes a different piece of prior knowledge (see its docstring)::

    emb = compute_prior("hog", dataset)                 # N×D float32, cached under data/priors/
    purity(emb, dataset.labels, k=10)                    # share of the 10 nearest neighbours with the same class

Names: ``pixels``, ``pca``, ``hog``, ``hog-invariant``, ``autoencoder``, ``checkpoint``, ``shifted``, ``imagenet-resnet18``,
``imagenet-resnet50``, ``oracle``. Every result is cached under
``data_root(root)/priors/<dataset key>/<prior name>-<options hash>.pt`` (atomic write; an unreadable cache file
is recomputed).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gpsviz.errors import CheckpointError, ConfigError, DataError, DownloadError
from gpsviz.handcrafted import hog_features, invariant_hog_features
from gpsviz.utils import atomic_torch_save, data_root, make_generator, resolve_device

log = logging.getLogger("gpsviz.priors")

#: input normalisation used by gpsviz training (per channel, on images scaled to [0, 1])
NORM_MEAN, NORM_STD = 0.5, 0.25
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class PriorSpec:
    """A registered prior: ``fn(dataset, options, root, progress) -> N×D`` and its default options.

    ``volatile`` options (device, batch size, download) do not change the result and stay out of the cache key.
    """

    fn: Callable[..., torch.Tensor]
    defaults: dict[str, Any]
    volatile: tuple[str, ...] = ("device", "batch_size", "download")


PRIORS: dict[str, PriorSpec] = {}


def register_prior(name: str, **defaults: Any) -> Callable:
    """Decorator: register ``fn(dataset, opts, root, progress) -> Tensor N×D`` as prior ``name``."""
    def deco(fn: Callable) -> Callable:
        PRIORS[name] = PriorSpec(fn, dict(defaults))
        return fn
    return deco


def available_priors() -> list[str]:
    """Names accepted by :func:`compute_prior`."""
    return sorted(PRIORS)


# --------------------------------------------------------------------------------------------- cache keys

def dataset_key(dataset: Any) -> str:
    """``<name>-<split>-n<N>-<C>x<H>x<W>-<hash>``; the hash covers the labels and a strided sample of the images
    (at most ~32 MB of pixels, so the key is cheap even for large datasets)."""
    images, n = dataset.images, len(dataset)
    h = hashlib.sha1()
    h.update(str(tuple(images.shape)).encode())
    row_bytes = max(1, images[0].numel()) if n else 1
    step = max(1, (n * row_bytes) // (32 * 2**20))
    h.update(np.ascontiguousarray(images[::step].cpu().numpy()).tobytes())
    h.update(np.ascontiguousarray(dataset.labels.cpu().numpy()).tobytes())
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(dataset, "name", "data")))
    c, hh, ww = images.shape[1:]
    return f"{name}-{getattr(dataset, 'split', 'train')}-n{n}-{c}x{hh}x{ww}-{h.hexdigest()[:12]}"


def _file_fingerprint(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()[:16]


def _resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    if name not in PRIORS:
        raise ConfigError(f"unknown prior {name!r}; valid priors: {', '.join(available_priors())}")
    spec = PRIORS[name]
    bad = sorted(set(options) - set(spec.defaults))
    if bad:
        raise ConfigError(f"prior {name!r} has no option(s) {bad}; its options (defaults) are {spec.defaults}")
    return {**spec.defaults, **options}


def prior_key(name: str, options: dict[str, Any]) -> str:
    """``<name>-<hash of the result-relevant options>`` (a checkpoint prior also hashes the checkpoint file)."""
    opts = {k: v for k, v in options.items() if k not in PRIORS[name].volatile}
    if name == "checkpoint":
        opts["_file"] = _file_fingerprint(_checkpoint_path(opts.get("run")))
    blob = json.dumps(opts, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def prior_cache_path(name: str, dataset: Any, root: str | Path | None = None, **options: Any) -> Path:
    """Where :func:`compute_prior` caches prior ``name`` of ``dataset`` with ``options``."""
    opts = _resolve_options(name, options)
    return data_root(root) / "priors" / dataset_key(dataset) / f"{prior_key(name, opts)}.pt"


def compute_prior(name: str, dataset: Any, root: str | Path | None = None, cache: bool = True,
                  progress: bool = True, **options: Any) -> torch.Tensor:
    """Prior embedding of every image of ``dataset`` (an ``ImageDataset``), cached on disk.

    Args:
        name: one of :func:`available_priors`.
        dataset: images uint8 N×C×H×W (+ labels for ``oracle``).
        root: data folder (default ``./data`` or ``$GPSVIZ_DATA``).
        cache: read/write ``data/priors/...``; ``False`` always recomputes and writes nothing.
        progress: tqdm bars for the slow priors.
        options: prior-specific options (unknown ones raise :class:`ConfigError` listing the valid ones).

    Returns:
        float32 N×D on CPU.
    """
    opts = _resolve_options(name, options)
    path = prior_cache_path(name, dataset, root, **options) if cache else None
    if path is not None and path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            emb = blob["embedding"]
            if isinstance(emb, torch.Tensor) and emb.ndim == 2 and emb.shape[0] == len(dataset):
                return emb.float()
            log.warning("prior cache %s has the wrong shape; recomputing", path)
        except Exception as e:  # truncated / corrupt / foreign file: recompute
            log.warning("prior cache %s is unreadable (%s); recomputing", path, e)
    emb = PRIORS[name].fn(dataset, opts, root=root, progress=progress)
    emb = torch.as_tensor(emb).detach().float().cpu().contiguous()
    if emb.ndim != 2 or emb.shape[0] != len(dataset) or not torch.isfinite(emb).all():
        raise RuntimeError(f"prior {name!r} returned a bad embedding of shape {tuple(emb.shape)} (NaN/inf or wrong N)")
    if path is not None:
        atomic_torch_save({"embedding": emb, "prior": name,
                           "options": json.loads(json.dumps(opts, default=str))}, path)
    return emb


def purity(embedding: torch.Tensor, labels: torch.Tensor, k: int = 10) -> float:
    """Positive purity of a prior: share of each image's k nearest neighbours (self excluded, squared L2) that
    carry its label, averaged. embedding N×D, labels int64 N."""
    from gpsviz.diagnostics import purity_curve
    return purity_curve(embedding, labels, [k])[k]


# --------------------------------------------------------------------------------------------- helpers

def _floats(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(255.0)                                          # uint8 → float in [0, 1]


def embed_images(backbone: nn.Module, images: torch.Tensor, batch_size: int = 256,
                 device: str | torch.device | None = None, mean: float | Sequence[float] = NORM_MEAN,
                 std: float | Sequence[float] = NORM_STD, progress: bool = False) -> torch.Tensor:
    """Features of ``backbone`` (eval mode, no grad) for uint8 images N×C×H×W → float32 N×D on CPU.

    Inputs are normalised as gpsviz training does: ``(x/255 − mean) / std`` per channel (scalars or C-sequences).
    The backbone's train/eval mode is restored afterwards.
    """
    dev = resolve_device(device)
    c = images.shape[1]
    m = torch.as_tensor(mean, dtype=torch.float32, device=dev).reshape(-1, 1, 1).expand(c, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=dev).reshape(-1, 1, 1).expand(c, 1, 1)
    was_training = backbone.training
    backbone.eval()
    param = next(backbone.parameters(), None)
    orig_dev = param.device if param is not None else dev
    backbone.to(dev)
    out = []
    try:
        with torch.no_grad():
            for i in tqdm(range(0, images.shape[0], batch_size), disable=not progress, desc="embed", leave=False):
                x = (images[i:i + batch_size].to(dev).float() / 255.0 - m) / s
                with torch.autocast(dev.type, enabled=dev.type == "cuda"):
                    out.append(backbone(x).float().flatten(1).cpu())
    finally:
        backbone.to(orig_dev)
        backbone.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 0)


# --------------------------------------------------------------------------------------------- simple priors

@register_prior("pixels")
def _pixels(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Raw pixels in [0, 1], flattened (N × C·H·W). Prior knowledge: none — images that look alike pixel by
    pixel (same colours, same place) are assumed to share a class."""
    return _floats(dataset.images).flatten(1)


@register_prior("pca", dim=64, whiten=False, fit_n=20000, seed=0)
def _pca(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """PCA of the pixels (fit on the dataset itself — unsupervised — on up to ``fit_n`` images; ``dim``
    components, randomised SVD). Prior knowledge: the directions of largest pixel variance carry the semantics;
    fine detail is noise."""
    x = _floats(dataset.images).flatten(1)                                     # N×D
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


@register_prior("hog", cell=8, bins=9, block=2, channels="max")
def _hog(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Classic HOG on a grid of cells (:func:`gpsviz.handcrafted.hog_features`). Prior knowledge: *edges, not
    colours, carry the class* — gradient orientations, contrast-normalised, at fixed places in the image. Strong on
    aligned data (Fashion-MNIST); weak when objects move and rotate (shapes world: use ``hog-invariant``)."""
    cell = opts["cell"]
    return hog_features(dataset.images, cell=tuple(cell) if isinstance(cell, (list, tuple)) else int(cell),
                        bins=int(opts["bins"]), block=int(opts["block"]), channels=opts["channels"])


@register_prior("hog-invariant", blur=1.0, power=3.0, bins=36, radial_bins=8, angle_bins=8, spectrum_weight=0.5,
                channels="max")
def _hog_invariant(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Globally pooled orientation statistics (:func:`gpsviz.handcrafted.invariant_hog_features`). Prior knowledge:
    *only the outline's shape matters* — not the colours, nor where the object is, how large, or how rotated."""
    return invariant_hog_features(dataset.images, **opts)


@register_prior("oracle", scale=1.0)
def _oracle(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """One-hot class labels (× ``scale``). Prior knowledge: the labels themselves — the upper bound where every
    neighbour has the anchor's class (not available in real SSL; the ceiling to read other priors against)."""
    labels = dataset.labels.long()
    if (labels < 0).any():
        raise DataError(f"prior 'oracle' needs a label for every image; {int((labels < 0).sum())} of "
                        f"{len(labels)} images of {getattr(dataset, 'name', 'the dataset')!r} are unlabelled (-1)")
    c = max(int(labels.max()) + 1, len(getattr(dataset, "classes", [])) or 0)
    return torch.nn.functional.one_hot(labels, c).float() * float(opts["scale"])


# --------------------------------------------------------------------------------------------- learned priors

class ConvAutoencoder(nn.Module):
    """Small conv autoencoder for ``size``×``size`` inputs (size = 4·2^s): s stride-2 convs (widths w, 2w, …) down
    to 4×4 → linear ``latent`` → mirror image with transposed convs.

    ``encode``: float B×C×size×size in [0, 1] → B×latent; ``forward`` returns the reconstruction (same shape).
    """

    def __init__(self, in_channels: int = 3, latent: int = 64, width: int = 16, size: int = 16) -> None:
        super().__init__()
        stages = max(1, (int(size) // 4).bit_length() - 1)
        widths = [in_channels] + [width * 2 ** i for i in range(stages)]
        enc: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(c_in, c_out, 3, 2, 1), nn.ReLU(inplace=True)]     # halves H and W
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(widths[-1] * 16, latent))
        dec: list[nn.Module] = [nn.Linear(latent, widths[-1] * 16), nn.ReLU(inplace=True),
                                nn.Unflatten(1, (widths[-1], 4, 4))]
        for c_in, c_out in zip(widths[::-1][:-1], widths[::-1][1:]):
            dec += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.ReLU(inplace=True)]  # doubles H and W
        self.decoder = nn.Sequential(*dec[:-1], nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)                                                  # B×latent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-2:] == (size, size) else torch.nn.functional.interpolate(x, size=(size, size), mode="area")


@register_prior("autoencoder", epochs=5, latent=64, width=16, size=16, lr=2e-3, train_batch=128, seed=0,
                batch_size=512, device="cpu")
def _autoencoder(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Latent code of a small conv autoencoder trained (MSE, ``epochs``) on the dataset itself (images resized
    to ``size``×``size``, 16 by default: seconds per epoch on a CPU). Prior knowledge: what is needed to *redraw* an image is what matters — in practice mostly the
    large areas of colour and background, so it is a modest, unsupervised prior."""
    dev = resolve_device(opts["device"])
    images, size = dataset.images, int(opts["size"])
    if size < 8 or size & (size - 1):
        raise ConfigError(f"prior 'autoencoder': size must be a power of two >= 8, got {size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(opts["seed"]))
        model = ConvAutoencoder(images.shape[1], int(opts["latent"]), int(opts["width"]), size).to(dev)
    g = make_generator(int(opts["seed"]))
    optim = torch.optim.Adam(model.parameters(), lr=float(opts["lr"]))
    n, bs = images.shape[0], int(opts["train_batch"])
    bar = tqdm(range(int(opts["epochs"])), disable=not progress, desc="autoencoder", leave=False)
    for _ in bar:
        model.train()
        perm, total = torch.randperm(n, generator=g), 0.0
        for i in range(0, n, bs):
            x = _resize(_floats(images[perm[i:i + bs]]).to(dev), size)
            loss = torch.nn.functional.mse_loss(model(x), x)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += float(loss.detach()) * x.shape[0]
        bar.set_postfix(mse=f"{total / n:.4f}")
    model.eval()
    with torch.no_grad():
        return torch.cat([model.encode(_resize(_floats(images[i:i + int(opts["batch_size"])]).to(dev), size)).cpu()
                          for i in range(0, n, int(opts["batch_size"]))])


def _checkpoint_path(run: Any) -> Path:
    if not run:
        raise ConfigError("prior 'checkpoint' needs the option run=<run folder or checkpoint.pt file>")
    from gpsviz.checkpoint import resolve_checkpoint_path

    return resolve_checkpoint_path(run)


def load_backbone_checkpoint(run: str | Path) -> nn.Module:
    """The backbone of a gpsviz run (folder or checkpoint file), via :func:`gpsviz.checkpoint.load_backbone`."""
    from gpsviz.checkpoint import load_backbone

    _checkpoint_path(run)
    backbone, cfg = load_backbone(run)
    return backbone


@register_prior("checkpoint", run=None, batch_size=256, device=None)
def _checkpoint(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Backbone features of a model trained by gpsviz (option ``run``: run folder or checkpoint file). Prior
    knowledge: whatever that model learnt — e.g. a first SSL run used as the prior of a second (cf. NNCLR)."""
    backbone = load_backbone_checkpoint(opts["run"])
    if getattr(backbone, "in_channels", dataset.images.shape[1]) != dataset.images.shape[1]:
        raise DataError(f"prior 'checkpoint': the model takes {backbone.in_channels}-channel images but the "
                        f"dataset has {dataset.images.shape[1]} channels")
    return embed_images(backbone, dataset.images, int(opts["batch_size"]), opts["device"], progress=progress)


@register_prior("shifted", n_train=10000, epochs=4, lr=2e-3, train_batch=128, seed=1, batch_size=512, device=None)
def _shifted(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Features of a supervised small-cnn classifier trained on a *colour-shifted* shapes world (other palette
    and backgrounds, same classes). Prior knowledge: labelled data from a related but different distribution —
    the analogue of an ImageNet-pretrained network used on CIFAR. Only for shapes-like 32×32 RGB images."""
    if tuple(dataset.images.shape[1:]) != (3, 32, 32):
        raise DataError(f"prior 'shifted' is a classifier trained on the 32×32 RGB shapes world and only fits "
                        f"shapes-like data; {getattr(dataset, 'name', 'this dataset')!r} has images "
                        f"{tuple(dataset.images.shape[1:])} — use 'hog', 'pca', 'autoencoder' or 'imagenet-resnet18'")
    backbone = shifted_model(root=root, progress=progress, **{k: opts[k] for k in
                                                             ("n_train", "epochs", "lr", "train_batch", "seed", "device")})
    return embed_images(backbone, dataset.images, int(opts["batch_size"]), opts["device"], progress=progress)


def shifted_model(root: str | Path | None = None, n_train: int = 10000, epochs: int = 4, lr: float = 2e-3,
                  train_batch: int = 128, seed: int = 1, device: str | None = None, progress: bool = True) -> nn.Module:
    """The small-cnn trained on ``make_shapes(n_train, seed, colour_shift=True)`` (cached under
    ``data/priors/models/``). Logs its accuracy on a held-out colour-shifted test set; returns the backbone."""
    from gpsviz.data import make_shapes
    from gpsviz.data.shapes import DEFAULT_VARIANT
    from gpsviz.models import build_backbone

    cfg = {"n_train": int(n_train), "epochs": int(epochs), "lr": float(lr), "train_batch": int(train_batch),
           "seed": int(seed), "backbone": "small-cnn", "world": DEFAULT_VARIANT}  # a new default world retrains
    tag = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    path = data_root(root) / "priors" / "models" / f"shifted-small-cnn-{tag}.pt"
    backbone = build_backbone("small-cnn", 3)
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            backbone.load_state_dict(blob["backbone"])
            log.info("shifted prior model %s (shifted-test accuracy %.3f)", path, blob.get("accuracy", float("nan")))
            return backbone.eval()
        except Exception as e:
            log.warning("shifted prior model %s is unreadable (%s); retraining", path, e)
    dev = resolve_device(device)
    train = make_shapes(int(n_train), seed=int(seed), colour_shift=True)
    test = make_shapes(max(500, int(n_train) // 5), seed=int(seed) + 10_000, colour_shift=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        backbone = build_backbone("small-cnn", 3)
        head = nn.Linear(backbone.out_dim, max(len(train.classes), int(train.labels.max()) + 1))
    model = nn.Sequential(backbone, head).to(dev)
    optim = torch.optim.Adam(model.parameters(), lr=float(lr))
    g = make_generator(int(seed))
    n, bs = len(train), int(train_batch)
    steps = max(1, int(epochs) * ((n + bs - 1) // bs))
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=float(lr), total_steps=steps)
    bar = tqdm(range(int(epochs)), disable=not progress, desc="shifted prior", leave=False)
    for _ in bar:
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            x = (_floats(train.images[idx]) - NORM_MEAN) / NORM_STD
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = torch.nn.functional.cross_entropy(model(x.to(dev)), train.labels[idx].to(dev))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            sched.step()
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    model.eval()
    with torch.no_grad():
        feats = embed_images(backbone, test.images, 512, dev)
        acc = float((head.cpu()(feats).argmax(1) == test.labels).float().mean())
    msg = f"shifted prior: small-cnn trained on {n} colour-shifted shapes, accuracy on the shifted test split {acc:.3f}"
    log.info(msg)
    if progress:
        print(msg)
    backbone.cpu()
    atomic_torch_save({"backbone": backbone.state_dict(), "accuracy": acc, "config": cfg}, path)
    return backbone.eval()


# --------------------------------------------------------------------------------------------- ImageNet priors

#: torchvision file names (first = the one downloaded) and download URLs of the ImageNet weights
IMAGENET_WEIGHTS = {
    "resnet18": (("resnet18-f37072fd.pth",), "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    "resnet50": (("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),
                 "https://download.pytorch.org/models/resnet50-0676ba61.pth"),
}


def imagenet_backbone(arch: str, download: bool = True, progress: bool = True) -> nn.Module:
    """torchvision ``resnet18``/``resnet50`` with ImageNet weights from torch's hub cache
    (``$TORCH_HOME/hub/checkpoints/``), downloaded there if allowed; ``fc`` replaced by identity (B×512 / B×2048).
    Offline without the file: :class:`DownloadError` naming the file and the folder to put it in."""
    import torchvision

    files, url = IMAGENET_WEIGHTS[arch]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = next((folder / f for f in files if (folder / f).is_file()), None)
    if path is None:
        hint = (f"no ImageNet weights for {arch}: put the file {files[0]} (from {url}) into the folder {folder} "
                f"(or set TORCH_HOME), or choose an offline prior such as 'hog' or 'shifted'")
        if not download:
            raise DownloadError(hint)
        try:
            torch.hub.load_state_dict_from_url(url, model_dir=str(folder), progress=progress, map_location="cpu")
        except Exception as e:
            raise DownloadError(f"download failed ({type(e).__name__}: {e}); {hint}") from None
        path = folder / files[0]
    model = getattr(torchvision.models, arch)(weights=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:
        raise CheckpointError(f"{path} is not a usable {arch} state_dict ({type(e).__name__}: {e}); delete it and "
                              f"put a fresh copy of {files[0]} from {url} there") from None
    model.fc = nn.Identity()
    return model.eval()


def _imagenet(arch: str) -> Callable:
    def fn(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
        model = imagenet_backbone(arch, download=bool(opts["download"]), progress=progress)
        images = dataset.images
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)                              # gray → RGB, no copy
        return embed_images(model, images, int(opts["batch_size"]), opts["device"], IMAGENET_MEAN, IMAGENET_STD,
                            progress=progress)
    fn.__doc__ = (f"Pooled features of a supervised ImageNet {arch} (torchvision weights), eval mode, images at "
                  "their native resolution (no upsampling, as the GPS-SSL reference), ImageNet normalisation, "
                  "1-channel images repeated to 3. Prior knowledge: labelled ImageNet — the reference default.")
    return fn


for _arch in IMAGENET_WEIGHTS:
    register_prior(f"imagenet-{_arch}", download=True, batch_size=256, device=None)(_imagenet(_arch))
