"""Priors that train a small model first: ``autoencoder`` (unsupervised, on the dataset itself) and ``shifted``
(a supervised small-cnn trained on a colour-shifted shapes world, cached under ``data/priors/models/``)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from gpsviz.data import make_shapes
from gpsviz.data.shapes import DEFAULT_VARIANT
from gpsviz.errors import DataError
from gpsviz.features import DEFAULT_MEAN, DEFAULT_STD, embed_images, normalize, to_float
from gpsviz.models import build_backbone
from gpsviz.priors.registry import BATCH, DEVICE, LR, SEED, register_prior
from gpsviz.registry import Opt
from gpsviz.utils import atomic_torch_save, data_root, make_generator, resolve_device

log = logging.getLogger("gpsviz.priors")


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


def _power_of_two(size: int) -> str | None:
    return None if size & (size - 1) == 0 else "a power of two in [8, 256]"


@register_prior("autoencoder", epochs=5, latent=64, width=16, size=16, lr=2e-3, train_batch=128, seed=0,
                batch_size=512, device="cpu", options={
                    "epochs": Opt(int, 1, 1000), "latent": Opt(int, 1, 4096, note="code width"),
                    "width": Opt(int, 1, 256, note="channels of the first conv"),
                    "size": Opt(int, 8, 256, rule=_power_of_two, note="images are resized to size×size"),
                    "lr": LR, "train_batch": BATCH, "seed": SEED, "batch_size": BATCH, "device": DEVICE})
def _autoencoder(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Latent code of a small conv autoencoder trained (MSE, ``epochs``) on the dataset itself (images resized
    to ``size``×``size``, 16 by default: seconds per epoch on a CPU). Prior knowledge: what is needed to *redraw* an image is what matters — in practice mostly the
    large areas of colour and background, so it is a modest, unsupervised prior."""
    dev = resolve_device(opts["device"])
    images, size = dataset.images, int(opts["size"])
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
            x = _resize(to_float(images[perm[i:i + bs]]).to(dev), size)
            loss = torch.nn.functional.mse_loss(model(x), x)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += float(loss.detach()) * x.shape[0]
        bar.set_postfix(mse=f"{total / n:.4f}")
    model.eval()
    with torch.no_grad():
        return torch.cat([model.encode(_resize(to_float(images[i:i + int(opts["batch_size"])]).to(dev), size)).cpu()
                          for i in range(0, n, int(opts["batch_size"]))])


@register_prior("shifted", n_train=10000, epochs=4, lr=2e-3, train_batch=128, seed=1, batch_size=512, device=None,
                options={"n_train": Opt(int, 100, 200_000, note="colour-shifted images the classifier learns from"),
                         "epochs": Opt(int, 1, 1000), "lr": LR, "train_batch": BATCH, "seed": SEED,
                         "batch_size": BATCH, "device": DEVICE})
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
            x = normalize(to_float(train.images[idx]), DEFAULT_MEAN, DEFAULT_STD, inplace=True)
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
