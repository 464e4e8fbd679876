"""Heads on top of a backbone feature: the ``head`` ingredient (the projector a recipe names) and the MLP block
that projectors and predictors are made of.

    g = MLPHead(in_dim=256, hidden_dim=512, out_dim=128)   # SimCLR paper: d→2048→128
    z = g(h)                                                # h: B×256 → z: B×128

    head = build_head("mlp", in_dim=256, cfg=cfg)           # the recipe's projector, sized by cfg.proj_*
    z = head(h, batch)                                      # heads may read the batch (a conditioned head
                                                            # reads batch.descriptor / batch.params)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gpsviz.errors import CheckpointError, ConfigError
from gpsviz.registry import Opt, Registry, check_values

__all__ = ["MLPHead", "Head", "MLPProjector", "ConditionedProjector", "LowRankLinear", "DESCRIPTOR_FAMILIES", "HEADS",
           "build_head",
           "register_head"]


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


class Head(nn.Module):
    """Base of the ``head`` ingredient: ``forward(h, batch, index)`` maps backbone features to the embedding the
    objective reads. ``h``: float V×in_dim, the features of the views ``index`` of ``batch`` (``None`` = all M
    views, in plan order); returns V×out_dim. Set ``needs_descriptor = True`` to have the view maker compute
    the CASSLE descriptor (``batch.descriptor``). ``options``: an :class:`~gpsviz.registry.Opt` per option
    (the constructor's arguments after ``in_dim`` and ``cfg``)."""

    needs_descriptor: bool = False
    options: dict[str, Opt] = {}
    out_dim: int

    def forward(self, h: torch.Tensor, batch: Any = None, index: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


HEADS = Registry("head", base=Head, reserved=("in_dim", "cfg"))
register_head = HEADS.register


def build_head(name: str, in_dim: int, cfg: Any, **options: Any) -> Head:
    """Build the named head for backbone features of width ``in_dim``, sized by ``cfg`` (``proj_hidden``,
    ``proj_dim``); ``options`` are the head's own (unknown ones raise ConfigError)."""
    options = HEADS.check_options(name, options)
    return HEADS.get(name)(in_dim, cfg, **options)


@register_head("mlp")
class MLPProjector(Head):
    """The SimCLR/BYOL projector: an :class:`MLPHead` ``in_dim → proj_hidden → proj_dim`` that ignores the batch.

    Options: ``num_layers`` (Linear layers, default 2), ``last_bn`` (affine-free BatchNorm on the output)."""

    options = {"num_layers": Opt(int, 1, 16, note="Linear layers; 1 = a linear map"), "last_bn": Opt(bool)}

    def __init__(self, in_dim: int, cfg: Any, num_layers: int = 2, last_bn: bool = False) -> None:
        super().__init__()
        o = check_values("head 'mlp'", MLPProjector, dict(num_layers=num_layers, last_bn=last_bn))
        num_layers, last_bn = o["num_layers"], o["last_bn"]
        self.mlp = MLPHead(in_dim, cfg.proj_hidden, cfg.proj_dim, num_layers=num_layers, last_bn=last_bn)
        self.out_dim = self.mlp.out_dim

    def forward(self, h: torch.Tensor, batch: Any = None, index: torch.Tensor | None = None) -> torch.Tensor:
        """h: V×in_dim → V×proj_dim."""
        return self.mlp(h)


#: Descriptor columns of each augmentation family (``gpsviz.augment.DESCRIPTOR_NAMES`` order, 14 columns; colour =
#: brightness, contrast, saturation and the two-column hue angle code).
DESCRIPTOR_FAMILIES: dict[str, tuple[int, ...]] = {
    "crop": (0, 1, 2, 3), "colour": (4, 5, 6, 7, 8), "colour_diff": (9, 10, 11), "blur": (12,), "grayscale": (13,),
}


_HUE_COS, _HUE_SIN = DESCRIPTOR_FAMILIES["colour"][3:5]


def _linear_hue(d: torch.Tensor) -> torch.Tensor:
    """The descriptor with its hue angle code replaced by the linear code 2h (h in turns, from atan2), 0."""
    h = torch.atan2(d[:, _HUE_SIN], d[:, _HUE_COS] + 1.0) / (2 * torch.pi)
    d = d.clone()
    d[:, _HUE_COS], d[:, _HUE_SIN] = 2.0 * h, 0.0
    return d


@register_head("conditioned")
class ConditionedProjector(Head):
    """CASSLE's augmentation-aware projector: the backbone feature joined with a code of the view's augmentation
    descriptor, then the MLP projector. The EMA teacher's copy reads its own views' descriptors.

    Options: ``families`` (which descriptor families enter: crop, colour, colour_diff, blur, grayscale),
    ``encoder_depth`` / ``encoder_width`` (the descriptor MLP, reference 6 × 64),
    ``mode``: ``concat`` (default; projector input d + width), ``add`` or ``multiply`` (code mapped to d).
    Two ablation switches (issue 19's table; the defaults are the reference): ``hue_code`` ``angle`` (default: the
    descriptor's (cos 2πh − 1, sin 2πh)) or ``linear`` (h recovered from the angle and coded 2h ∈ (−1, 1], second
    column 0: the pre-fix code under the full-turn jitter, with its cut at ±0.5 turn); ``last_bn`` (default True)
    False drops the encoder's final BatchNorm.
    h: V×d, batch.descriptor: M×14 → V×proj_dim.

    The descriptor encoder is the reference's ``load_mlp`` (gmum/CASSLE ``models.py``, called with its defaults
    ``last_bn=True, last_bn_affine=True``): ``encoder_depth − 1`` blocks Linear (no bias) + BatchNorm1d + ReLU, then
    a Linear without bias followed by an **affine** BatchNorm1d and no ReLU. A checkpoint of a conditioned head
    from before this layout (13-column descriptor, no final BatchNorm) is refused on load."""

    needs_descriptor = True
    options = {"families": Opt("names", choices=tuple(DESCRIPTOR_FAMILIES)),
               "encoder_depth": Opt(int, 1, 16, note="reference 6"),
               "encoder_width": Opt(int, 1, 65_536, note="reference 64"),
               "mode": Opt(str, choices=("concat", "add", "multiply")),
               "hue_code": Opt(str, choices=("angle", "linear")), "last_bn": Opt(bool)}

    def __init__(self, in_dim: int, cfg: Any, families: tuple[str, ...] = tuple(DESCRIPTOR_FAMILIES),
                 encoder_depth: int = 2, encoder_width: int = 64, mode: str = "concat", hue_code: str = "angle",
                 last_bn: bool = True) -> None:
        super().__init__()
        check_values("head 'conditioned'", ConditionedProjector, dict(
            families=families, encoder_depth=encoder_depth, encoder_width=encoder_width, mode=mode,
            hue_code=hue_code, last_bn=last_bn))
        self.hue_code, self.last_bn = hue_code, bool(last_bn)
        cols = sorted(c for f in families for c in DESCRIPTOR_FAMILIES[f])
        self.register_buffer("columns", torch.tensor(cols, dtype=torch.long), persistent=False)
        code_dim = encoder_width if mode == "concat" else in_dim
        layers: list[nn.Module] = []
        d = len(cols)
        for _ in range(encoder_depth - 1):
            layers += [nn.Linear(d, encoder_width, bias=False), nn.BatchNorm1d(encoder_width), nn.ReLU(inplace=True)]
            d = encoder_width
        layers += [nn.Linear(d, code_dim, bias=False)]
        if self.last_bn:
            layers.append(nn.BatchNorm1d(code_dim))                                  # the reference's last_bn
        self.encoder = nn.Sequential(*layers)
        self.mode = mode
        self.mlp = MLPHead(in_dim + (code_dim if mode == "concat" else 0), cfg.proj_hidden, cfg.proj_dim)
        self.out_dim = self.mlp.out_dim

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # An earlier gpsviz's conditioned head: 13-column descriptor (one hue column h/range, colour_diff around
        # jitter + grayscale) and an encoder ending with a biased Linear, no BatchNorm. Its weights would either
        # not fit or, worse, read the new columns with the old meaning: refuse it by name.
        last = f"{prefix}encoder.{len(self.encoder) - 2}"               # the final Linear (then the BatchNorm)
        bn = f"{prefix}encoder.{len(self.encoder) - 1}"
        if self.last_bn and f"{last}.bias" in state_dict and f"{bn}.running_mean" not in state_dict:
            raise CheckpointError(
                "this CASSLE run was trained with the 13-column augmentation descriptor of an earlier gpsviz (hue "
                "as h/range, colour_diff around jitter + grayscale, no BatchNorm at the end of the descriptor "
                "encoder); its conditioned projector cannot be loaded into the current 14-column head. Retrain "
                "the run (its backbone alone still loads for evaluation).")
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, h: torch.Tensor, batch: Any = None, index: torch.Tensor | None = None) -> torch.Tensor:
        if batch is None or batch.descriptor is None:
            raise ConfigError("conditioned head: the batch carries no augmentation descriptor")
        d = batch.descriptor if index is None else batch.descriptor[index.to(batch.descriptor.device)]
        if self.hue_code == "linear":
            d = _linear_hue(d)
        code = self.encoder(d[:, self.columns.to(d.device)].to(h.dtype))            # V×code_dim
        if self.mode == "concat":
            x = torch.cat([h, code.to(h.dtype)], dim=1)
        elif self.mode == "add":
            x = h + code.to(h.dtype)
        else:
            x = h * code.to(h.dtype)
        return self.mlp(x)


@register_head("lowrank")
class LowRankLinear(Head):
    """A low-rank linear head: ``in_dim → rank`` (no bias) + BatchNorm, then ``rank → proj_dim`` (DISSL's student:
    linear, so it has the probe's architecture, with a bottleneck). h: V×in_dim → V×proj_dim."""

    options = {"rank": Opt(int, 1, 65_536, note="the bottleneck width")}

    def __init__(self, in_dim: int, cfg: Any, rank: int = 512) -> None:
        super().__init__()
        check_values("head 'lowrank'", LowRankLinear, {"rank": rank})
        self.net = nn.Sequential(nn.Linear(in_dim, rank, bias=False), nn.BatchNorm1d(rank), nn.Linear(rank, cfg.proj_dim))
        self.out_dim = int(cfg.proj_dim)

    def forward(self, h: torch.Tensor, batch: Any = None, index: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(h)
