"""View makers: the ``views`` ingredient. A view maker turns a positive source's :class:`ViewPlan` into the final
plan of the batch (how many views of each instance, global or local, at which size) and augments each size
group in one batched call.

    maker = build_views("multicrop", global_views=2, local_views=4, local_size=16)
    maker.configure("strong", strength=1.0, image_size=32)
    batch = maker(images, source_plan, generator=g)        # Batch: views [2B×C×32×32, 4B×C×16×16], params, plan

``standard`` makes one global view per slot of the source plan (SimCLR, GPS, SupCon: 2 views per anchor, the
plan the positive source produced). ``multicrop`` makes G global views at full size and L local views at a
smaller size (SwAV / UOTA / DINO style); view ``g`` (or local view ``l``) of an instance is made from the
source's slot ``g mod S`` (``l mod S``), so with GPS positives the globals alternate anchor / partner.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gpsviz.augment.config import AugmentConfig
from gpsviz.augment.params import AugParams
from gpsviz.augment.pipeline import Augmenter
from gpsviz.batch import Batch, ViewPlan
from gpsviz.errors import ConfigError
from gpsviz.registry import Opt, Registry, check_values

__all__ = ["ViewMaker", "MultiCrop", "VIEWS", "build_views", "register_views"]


class ViewMaker:
    """Base class of the ``views`` ingredient (see the module docstring). ``options``: an
    :class:`~gpsviz.registry.Opt` per constructor option."""

    name = "base"
    options: dict[str, Opt] = {}

    @classmethod
    def views_made(cls, options: dict[str, Any], slots: int) -> tuple[int, int]:
        """(views per instance, how many leading slots of the source's plan get at least one view) for a plan of
        ``slots`` slots per instance and these options (defaults filled in). Default: one view per slot."""
        return slots, slots

    def configure(self, aug: str | AugmentConfig, strength: float, image_size: int) -> None:
        """Bind the run's augmentation preset, strength and the dataset's image side (pixels)."""
        raise NotImplementedError

    def expand(self, plan: ViewPlan) -> ViewPlan:
        """The batch's final plan (sizes filled in, each size group contiguous) from the source's plan."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor, plan: ViewPlan, generator: torch.Generator | None = None,
                 descriptor: bool = False) -> Batch:
        raise NotImplementedError


VIEWS = Registry("view maker", base=ViewMaker)
register_views = VIEWS.register


def build_views(name: str, **options: Any) -> ViewMaker:
    """Build a view maker by name (``standard``, ``multicrop``, and what other modules register)."""
    return VIEWS.build(name, **options)


class MultiCrop(ViewMaker):
    """G global views at the dataset's size plus L local views at ``local_size``.

    Args:
        global_views: global views per instance; ``None`` = one per slot of the source plan (the plan as the
            positive source made it).
        local_views: local views per instance (0 = none).
        local_size: side of the local views in pixels (default half the image side).
        local_scale: crop-area range of the local views (the global views keep the preset's).
        global_scale: crop-area range of the global views; ``None`` = the preset's.

    Fewer than 2 views per instance is refused (one view has no positive: the loss is 0 and nothing is learnt).
    """

    name = "multicrop"
    options = {
        "global_views": Opt(int, 1, 16, optional=True, note="None = one per slot of the source's plan"),
        "local_views": Opt(int, 0, 64),
        "local_size": Opt(int, 4, 1024, optional=True, note="pixels; None = half the image side"),
        "local_scale": Opt("pair", 0.0, 1.0, lo_open=True, note="crop area as a fraction of the image"),
        "global_scale": Opt("pair", 0.0, 1.0, lo_open=True, optional=True,
                            note="crop area as a fraction of the image; None = the preset's")}

    @classmethod
    def views_made(cls, options: dict[str, Any], slots: int) -> tuple[int, int]:
        g = slots if options.get("global_views") is None else int(options["global_views"])
        n_local = int(options.get("local_views", 0))
        # global view i is made from slot i mod S, local view i from slot i mod S
        return g + n_local, max(min(g, slots), min(n_local, slots))

    @classmethod
    def validate_options(cls, options: dict[str, Any], owner: str) -> None:
        """At least 2 views per instance when ``global_views`` is set (``None`` makes one per slot, ≥ 2)."""
        g = options.get("global_views")
        if g is not None and g + int(options.get("local_views", 0)) < 2:
            raise ConfigError(f"{owner}: global_views={g} with local_views={options.get('local_views')} makes 1 "
                              "view per instance; an objective needs at least 2 (a view and its positive) — with "
                              "one view the loss is 0 and nothing is learnt")

    def __init__(self, global_views: int | None = 2, local_views: int = 4, local_size: int | None = None,
                 local_scale: tuple[float, float] = (0.05, 0.4),
                 global_scale: tuple[float, float] | None = None) -> None:
        o = check_values("view maker 'multicrop'", MultiCrop, dict(
            global_views=global_views, local_views=local_views, local_size=local_size, local_scale=local_scale,
            global_scale=global_scale))
        self.global_views, self.local_views, self.local_size = global_views, local_views, local_size
        self.local_scale = o["local_scale"]
        self.global_scale = o["global_scale"]
        self.global_aug: Augmenter | None = None
        self.local_aug: Augmenter | None = None
        self.image_size = 0

    def configure(self, aug: str | AugmentConfig, strength: float, image_size: int) -> None:
        base = aug if isinstance(aug, AugmentConfig) else AugmentConfig.preset(aug)
        glob = base if self.global_scale is None else base.replace(crop_scale=self.global_scale)
        self.global_aug = Augmenter(glob, strength=strength)
        if self.local_views:
            self.local_aug = Augmenter(base.replace(crop_scale=self.local_scale, crop_p=1.0), strength=strength)
        self.image_size = int(image_size)
        size = self.local_size or max(4, self.image_size // 2)
        if self.local_views and size > self.image_size:
            raise ConfigError(f"views: local_size {size} is larger than the images ({self.image_size} px)")
        self._local = size

    def expand(self, plan: ViewPlan) -> ViewPlan:
        n_slots = int(plan.slots.max()) + 1 if len(plan) else 1
        g = n_slots if self.global_views is None else self.global_views
        parts = []
        for i in range(g):
            p = plan.select(plan.slots == i % n_slots)
            parts.append(ViewPlan(p.rows, p.group_ids, p.instance_ids, torch.full_like(p.slots, i),
                                  torch.ones_like(p.is_global), torch.full_like(p.sizes, self.image_size)))
        for i in range(self.local_views):
            p = plan.select(plan.slots == i % n_slots)
            parts.append(ViewPlan(p.rows, p.group_ids, p.instance_ids, torch.full_like(p.slots, g + i),
                                  torch.zeros_like(p.is_global), torch.full_like(p.sizes, self._local)))
        return ViewPlan.cat(parts) if len(parts) > 1 else parts[0]

    def __call__(self, images: torch.Tensor, plan: ViewPlan, generator: torch.Generator | None = None,
                 descriptor: bool = False, instances: slice | None = None) -> Batch:
        """images: uint8 N×C×H×W (the whole dataset, on the training device); plan: the source's plan.

        ``instances`` (a range of instance ids, e.g. one process's share of a global batch): the parameters of
        every view are drawn (so the random stream does not depend on the share), only the views of these
        instances are made."""
        if self.global_aug is None:
            raise ConfigError("views: call configure(aug, strength, image_size) before making views")
        full = self.expand(plan)
        keep = torch.ones(len(full), dtype=torch.bool)
        if instances is not None:
            inst = full.instance_ids.cpu()
            keep = (inst >= instances.start) & (inst < instances.stop)
        rows = full.rows.to(images.device)
        n_glob = int(full.is_global.sum())
        shape = tuple(images.shape[1:])
        views, params, desc = [], [], []
        for aug, lo, hi in ((self.global_aug, 0, n_glob), (self.local_aug, n_glob, len(full))):
            if hi == lo:
                continue
            drawn = aug.sample(hi - lo, shape, generator)                    # every view of the size group
            k = keep[lo:hi]
            v, p = aug.augment(images[rows[lo:hi][k.to(rows.device)]], drawn[k])
            if aug is self.local_aug:
                v = F.interpolate(v, size=(self._local, self._local), mode="bilinear", antialias=True,
                                  align_corners=False)
            views.append(v)
            params.append(p)
            if descriptor:
                desc.append(aug.descriptor(p, self.image_size))
        return Batch(views=views, params=AugParams.cat(params) if len(params) > 1 else params[0],
                     plan=full.select(keep.to(full.rows.device)),
                     descriptor=torch.cat(desc) if descriptor else None)


class StandardViews(MultiCrop):
    """One global view per slot of the source plan (2 per anchor for pair sources): SimCLR, BYOL, GPS, SupCon."""

    name = "standard"
    options: dict[str, Opt] = {}

    @classmethod
    def views_made(cls, options: dict[str, Any], slots: int) -> tuple[int, int]:
        return slots, slots

    @classmethod
    def validate_options(cls, options: dict[str, Any], owner: str) -> None:
        return None

    def __init__(self) -> None:
        super().__init__(global_views=None, local_views=0)


register_views("standard", StandardViews)
register_views("multicrop", MultiCrop)
