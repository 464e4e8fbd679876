"""Heads on top of a backbone feature: the projector (SimCLR, BYOL) and the BYOL predictor.

    g = MLPHead(in_dim=256, hidden_dim=512, out_dim=128)   # SimCLR paper: d→2048→128
    z = g(h)                                                # h: B×256 → z: B×128
"""
from __future__ import annotations

import torch
from torch import nn

from gpsviz.errors import ConfigError

__all__ = ["MLPHead"]


class MLPHead(nn.Module):
    """An MLP: ``num_layers − 1`` hidden blocks Linear + BatchNorm1d + ReLU, then a final Linear.

    Args:
        in_dim: width of the input (the backbone's ``out_dim``).
        hidden_dim: width of every hidden layer.
        out_dim: width of the output.
        num_layers: number of Linear layers (1 = a single linear map, no hidden layer).
        last_bn: append a BatchNorm1d **without affine parameters** after the final Linear
            (SimCLR-v2 / CISSL style projectors).

    Input float B×in_dim, output B×out_dim. In training mode BatchNorm needs B ≥ 2.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 last_bn: bool = False) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"MLPHead: num_layers must be ≥ 1, got {num_layers}")
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ConfigError(f"MLPHead: dimensions must be positive, got in={in_dim}, hidden={hidden_dim}, out={out_dim}")
        layers: list[nn.Module] = []
        d = int(in_dim)
        for _ in range(num_layers - 1):
            # hidden block: Linear (bias is redundant before BN) + BN + ReLU
            layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            d = int(hidden_dim)
        layers.append(nn.Linear(d, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.hidden_dim, self.out_dim = int(in_dim), int(hidden_dim), int(out_dim)
        self.num_layers, self.last_bn = int(num_layers), bool(last_bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: B×in_dim → B×out_dim."""
        return self.net(x)

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, hidden_dim={self.hidden_dim}, out_dim={self.out_dim}, "
                f"num_layers={self.num_layers}, last_bn={self.last_bn}")
