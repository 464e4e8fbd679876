"""Priors from networks trained elsewhere: ``checkpoint`` (a gpsviz run's backbone) and ``imagenet-resnet18`` /
``imagenet-resnet50`` (torchvision's supervised ImageNet weights, from torch's hub cache or downloaded there)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from gpsviz.checkpoint import load_backbone, resolve_checkpoint_path
from gpsviz.errors import CheckpointError, ConfigError, DataError, DownloadError
from gpsviz.features import IMAGENET_MEAN, IMAGENET_STD, embed_images
from gpsviz.priors.registry import BATCH, DEVICE, register_prior
from gpsviz.registry import Opt
from gpsviz.utils import file_digest


def _checkpoint_path(run: Any) -> Path:
    if not run:
        raise ConfigError("prior 'checkpoint' needs the option run=<run folder or checkpoint.pt file>")

    return resolve_checkpoint_path(run)


def load_backbone_checkpoint(run: str | Path) -> nn.Module:
    """The backbone of a gpsviz run (folder or checkpoint file), via :func:`gpsviz.checkpoint.load_backbone`."""
    _checkpoint_path(run)
    backbone, cfg = load_backbone(run)
    return backbone


def _checkpoint_fingerprint(opts: dict[str, Any]) -> dict[str, Any]:
    """Cache-key part of the checkpoint prior: the checkpoint file's content hash."""
    return {"_file": file_digest(_checkpoint_path(opts.get("run")))}


@register_prior("checkpoint", fingerprint=_checkpoint_fingerprint, run=None, batch_size=256, device=None, options={
    "run": Opt("path", optional=True, note="a run folder or checkpoint.pt; required"), "batch_size": BATCH,
    "device": DEVICE})
def _checkpoint(dataset: Any, opts: dict, root=None, progress=True) -> torch.Tensor:
    """Backbone features of a model trained by gpsviz (option ``run``: run folder or checkpoint file). Prior
    knowledge: whatever that model learnt — e.g. a first SSL run used as the prior of a second (cf. NNCLR)."""
    backbone = load_backbone_checkpoint(opts["run"])
    if getattr(backbone, "in_channels", dataset.images.shape[1]) != dataset.images.shape[1]:
        raise DataError(f"prior 'checkpoint': the model takes {backbone.in_channels}-channel images but the "
                        f"dataset has {dataset.images.shape[1]} channels")
    return embed_images(backbone, dataset.images, int(opts["batch_size"]), opts["device"], progress=progress)


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
    import torchvision  # about a second at import: only when an ImageNet prior is computed

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
    register_prior(f"imagenet-{_arch}", download=True, batch_size=256, device=None, options={
        "download": Opt(bool), "batch_size": BATCH, "device": DEVICE})(_imagenet(_arch))
