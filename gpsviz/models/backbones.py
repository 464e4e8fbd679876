"""Backbones: a small CNN for CPU-speed teaching runs and CIFAR-style ResNet-18/50.

Every backbone maps a float image batch B×C×H×W to a feature batch B×out_dim (no classifier layer) and
exposes ``out_dim``. Build them by name with :func:`build_backbone`::

    f = build_backbone("small-cnn", in_channels=3)
    h = f(torch.randn(8, 3, 32, 32))      # 8×f.out_dim
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from gpsviz.errors import ConfigError

__all__ = [
    "SmallCNN",
    "BasicBlock",
    "Bottleneck",
    "CifarResNet",
    "resnet18_cifar",
    "resnet50_cifar",
    "build_backbone",
    "available_backbones",
]


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1, norm: str = "batch") -> nn.Sequential:
    """3×3 conv + BatchNorm + ReLU (``norm="batch"``, conv without bias) or conv (with bias) + ReLU (``"none"``)."""
    bn = norm == "batch"
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=not bn),
        nn.BatchNorm2d(c_out) if bn else nn.Identity(),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Four 3×3 conv blocks (BN + ReLU) and a global average pool, sized for fast CPU training.

    The first conv has stride 2 (no full-resolution activation: on a CPU those dominate the cost), the second
    and third blocks are followed by a 2×2 max-pool. Channels ``width, width, 2·width, 8·width``;
    ``out_dim = 8·width`` unless given (256 at the default width 32). Spatial sizes for a 32×32 input: 16 → 8 → 4 → 4 → 1;
    a 28×28 input goes 14 → 7 → 3 → 3 → 1 (the final adaptive average pool accepts any input of at least 8×8).
    About 6 M multiply-adds per 32×32 image, so an SSL epoch of 10k images × 2 views runs in well under a minute
    on a 2-core CPU.

    Args:
        in_channels: C of the input (1 for Fashion-MNIST, 3 for RGB).
        width: channels of the first block.
        norm: ``"batch"`` (BatchNorm after each conv) or ``"none"`` (no normalisation: a model whose output for
            one image does not depend on the rest of the batch, e.g. to compare multi-process training with one
            process exactly).
        out_dim: channels of the last block, i.e. the representation's dimension (default ``8·width``); changes
            the representation's size while the rest of the network stays as it is (Dubois et al.'s dimension
            experiment, ``reproduce dubois``).

    Input float B×C×H×W, output B×out_dim.
    """

    def __init__(self, in_channels: int = 3, width: int = 32, norm: str = "batch", out_dim: int | None = None) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise ConfigError(f"SmallCNN: in_channels and width must be positive, got {in_channels} and {width}")
        if out_dim is not None and (isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1):
            raise ConfigError(f"SmallCNN: out_dim must be a positive integer (channels of the last block) or None "
                              f"(8·width), got {out_dim!r}")
        if norm not in ("batch", "none"):
            raise ConfigError(f"SmallCNN: norm must be 'batch' or 'none', got {norm!r}")
        w = int(width)
        d = 8 * w if out_dim is None else int(out_dim)                 # the representation's dimension
        self.features = nn.Sequential(
            _conv_bn_relu(in_channels, w, stride=2, norm=norm),            # B×w×H/2×W/2
            _conv_bn_relu(w, w, norm=norm), nn.MaxPool2d(2),               # B×w×H/4×W/4
            _conv_bn_relu(w, 2 * w, norm=norm), nn.MaxPool2d(2),           # B×2w×H/8×W/8
            _conv_bn_relu(2 * w, d, norm=norm),                            # B×d×H/8×W/8
        )
        self.pool = nn.AdaptiveAvgPool2d(1)                     # B×d×1×1
        self.out_dim = d
        self.in_channels = int(in_channels)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float B×C×H×W → features B×out_dim."""
        return torch.flatten(self.pool(self.features(x)), 1)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 convs, identity (or 1×1 projection) shortcut. ``expansion = 1``."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1×1 reduce, 3×3 (carries the stride), 1×1 expand ×4. ``expansion = 4``."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity when shapes match, else 1×1 strided conv + BN."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class CifarResNet(nn.Module):
    """ResNet with the CIFAR stem: 3×3 conv stride 1 + BN + ReLU, **no max-pool**, then four stages
    (64, 128, 256, 512 planes; stride 1, 2, 2, 2) and a global average pool. No fc layer.

    Input float B×C×H×W (32×32 → 4×4 before pooling), output B×out_dim with ``out_dim = 512·expansion``.
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, int, int, int],
                 in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        if in_channels < 1 or width < 1:
            raise ConfigError(f"ResNet: in_channels and width must be positive, got {in_channels} and {width}")
        self.in_channels = int(in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False),   # B×64×H×W
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        c = width
        stages = []
        for i, n_blocks in enumerate(layers):
            planes = width * 2 ** i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(c, planes, stride))
                c = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages             # H, H/2, H/4, H/8
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = c
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float B×C×H×W → features B×out_dim."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)


def resnet18_cifar(in_channels: int = 3, width: int = 64) -> CifarResNet:
    """CIFAR ResNet-18 (BasicBlock ×[2, 2, 2, 2]); out_dim 512 at the default width."""
    return CifarResNet(BasicBlock, (2, 2, 2, 2), in_channels=in_channels, width=width)


def resnet50_cifar(in_channels: int = 3, width: int = 64) -> CifarResNet:
    """CIFAR ResNet-50 (Bottleneck ×[3, 4, 6, 3]); out_dim 2048 at the default width."""
    return CifarResNet(Bottleneck, (3, 4, 6, 3), in_channels=in_channels, width=width)


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal conv weights (fan_out, ReLU); BN weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


_BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small-cnn": SmallCNN,
    "resnet18": resnet18_cifar,
    "resnet50": resnet50_cifar,
}


def available_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`."""
    return sorted(_BACKBONES)


def build_backbone(name: str, in_channels: int = 3, **kw) -> nn.Module:
    """Build a backbone by name (``small-cnn``, ``resnet18``, ``resnet50``).

    Args:
        name: backbone name; unknown names raise :class:`~gpsviz.errors.ConfigError` listing the valid ones.
        in_channels: C of the input images.
        **kw: constructor options (``width``).

    Returns:
        an ``nn.Module`` with attribute ``out_dim``, mapping float B×C×H×W to B×out_dim.
    """
    key = str(name).lower().replace("_", "-")
    if key not in _BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {available_backbones()}")
    factory = _BACKBONES[key]
    allowed = [p for p in inspect.signature(factory).parameters if p != "in_channels"]
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise ConfigError(f"backbone {key!r} has no option(s) {bad}; its options are {allowed}")
    return factory(in_channels=in_channels, **kw)
