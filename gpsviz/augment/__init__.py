"""Batched augmentation that returns the views and their parameters (the "how views are made" ingredient).

``Augmenter(preset_or_config, strength, mean, std)``; ``views, params = aug(images, generator=g)``;
``aug.apply(images, params)`` replays; ``aug.normalize(images)`` converts without augmenting.
See :mod:`gpsviz.augment.pipeline` for the op order and :mod:`gpsviz.augment.ops` for the batched ops.
"""
from gpsviz.augment import ops
from gpsviz.augment.config import PRESETS, AugmentConfig, available_presets
from gpsviz.augment.params import DESCRIPTOR_NAMES, PARAM_NAMES, AugParams, cassle_descriptor
from gpsviz.augment.pipeline import DEFAULT_MEAN, DEFAULT_STD, Augmenter

__all__ = [
    "Augmenter", "AugmentConfig", "AugParams", "PARAM_NAMES", "DESCRIPTOR_NAMES", "PRESETS",
    "available_presets", "cassle_descriptor", "DEFAULT_MEAN", "DEFAULT_STD", "ops",
]
from gpsviz.augment.views import VIEWS, MultiCrop, ViewMaker, build_views, register_views  # noqa: E402

__all__ += ["VIEWS", "MultiCrop", "ViewMaker", "build_views", "register_views"]
