"""Backbones and heads: shapes, out_dim, parameter counts, CIFAR stem, CPU speed of the small CNN."""
from __future__ import annotations

import functools
import os
import time

import pytest
import torch
from torch import nn

from gpsviz.errors import ConfigError
from gpsviz.models import MLPHead, SmallCNN, available_backbones, build_backbone


@functools.lru_cache(maxsize=None)
def backbone(name: str, in_channels: int = 3) -> nn.Module:
    """Built once per test session (ResNet-50 takes seconds to initialise on a small CPU)."""
    torch.manual_seed(0)
    return build_backbone(name, in_channels=in_channels)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", ["small-cnn", "resnet18", "resnet50"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)])
def test_backbone_output_shape(name: str, shape: tuple[int, int, int]) -> None:
    f = backbone(name, shape[0])
    x = torch.randn(4, *shape)
    f.train()
    h = f(x)
    assert h.shape == (4, f.out_dim)
    assert torch.isfinite(h).all()
    f.eval()
    with torch.no_grad():
        assert f(x[:1]).shape == (1, f.out_dim)


def test_out_dims_and_parameter_counts() -> None:
    cnn, r18, r50 = (backbone(n) for n in ("small-cnn", "resnet18", "resnet50"))
    assert cnn.out_dim == 256
    assert r18.out_dim == 512
    assert r50.out_dim == 2048
    # CIFAR ResNet-18 ≈ 11.2 M parameters, ResNet-50 ≈ 23.5 M (no fc); the small CNN stays well under 2 M
    assert 10.5e6 < n_params(r18) < 11.5e6
    assert 22.5e6 < n_params(r50) < 24.5e6
    assert 0.1e6 < n_params(cnn) < 2e6
    assert SmallCNN(width=16).out_dim == 128


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_cifar_stem_has_no_maxpool_and_keeps_resolution(name: str) -> None:
    f = backbone(name)
    assert not any(isinstance(m, nn.MaxPool2d) for m in f.modules())
    first = f.stem[0]
    assert isinstance(first, nn.Conv2d) and first.kernel_size == (3, 3) and first.stride == (1, 1)
    assert not any(isinstance(m, nn.Linear) for m in f.modules())   # no fc
    with torch.no_grad():
        f.eval()
        assert f.stem(torch.randn(1, 3, 32, 32)).shape[-2:] == (32, 32)
        x = f.layer4(f.layer3(f.layer2(f.layer1(f.stem(torch.randn(1, 3, 32, 32))))))
    assert x.shape[-2:] == (4, 4)


def test_build_backbone_errors() -> None:
    with pytest.raises(ConfigError, match="small-cnn"):
        build_backbone("vit-huge")
    with pytest.raises(ConfigError, match="width"):
        build_backbone("small-cnn", depth=3)
    assert available_backbones() == ["resnet18", "resnet50", "small-cnn"]
    assert build_backbone("small-cnn", width=8).out_dim == 64
    assert build_backbone("resnet18", in_channels=1).stem[0].in_channels == 1


def test_mlp_head_shapes_and_layers() -> None:
    g = MLPHead(256, 512, 128)
    assert g(torch.randn(5, 256)).shape == (5, 128)
    linears = [m for m in g.modules() if isinstance(m, nn.Linear)]
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 512), (512, 128)]
    assert len(bns) == 1

    g3 = MLPHead(64, 32, 16, num_layers=3, last_bn=True)
    assert [m.out_features for m in g3.modules() if isinstance(m, nn.Linear)] == [32, 32, 16]
    last = g3.net[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine
    y = g3(torch.randn(64, 64))
    assert y.shape == (64, 16)
    assert torch.allclose(y.mean(0), torch.zeros(16), atol=1e-4)      # final BN centres each output

    g1 = MLPHead(10, 99, 3, num_layers=1)
    assert [type(m) for m in g1.net] == [nn.Linear]
    with pytest.raises(ConfigError):
        MLPHead(10, 10, 10, num_layers=0)


def test_backbone_head_backward() -> None:
    f = build_backbone("small-cnn", width=8)
    g = MLPHead(f.out_dim, 32, 16)
    loss = g(f(torch.randn(6, 3, 32, 32))).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in f.parameters())


def test_small_cnn_epoch_time() -> None:
    """Time an SSL epoch of the small CNN: 10,000 32×32 images × 2 views, batch 256 (2×256 views per step),
    forward + backward + SGD step, projector included. Printed, never asserted (shared CI machines vary).

    By default a few steps are timed and extrapolated to the 40 steps of the epoch, to keep the suite fast;
    set ``GPSVIZ_BENCH_FULL=1`` to time the whole epoch.
    """
    torch.manual_seed(0)
    f = build_backbone("small-cnn")
    g = MLPHead(f.out_dim, 512, 128)
    opt = torch.optim.SGD(list(f.parameters()) + list(g.parameters()), lr=0.01, momentum=0.9)
    n, batch = 10_000, 256
    steps = -(-n // batch)                                             # 40
    timed = steps if os.environ.get("GPSVIZ_BENCH_FULL") else 3
    x = torch.randn(batch, 3, 32, 32)

    def step() -> None:
        views = torch.cat([x, x.flip(-1)])                             # 2B views
        loss = g(f(views)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()                                                             # warm-up (allocator, oneDNN kernels)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(timed):
        step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nsmall-cnn SSL epoch (10k images x 2 views, batch {batch}, {torch.get_num_threads()} threads): "
          f"{wall * steps / timed:.1f} s wall ({cpu * steps / timed:.1f} s CPU), from {timed} of {steps} steps")
