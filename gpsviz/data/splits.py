"""Train/test splits of the user's own data (``folder`` and ``arrays``): never the training images by accident.

A probe reported on the images it was fitted on measures memorisation (a linear probe reads 1.00), so the
held-out split of a folder or of arrays must come from somewhere the user named:

==========================  ===============================================================================
held-out split from         how
==========================  ===============================================================================
a test folder               ``DIR/train/<class>/…`` and ``DIR/test/<class>/…`` (``val``, ``valid`` or
                            ``validation`` are accepted for ``test``)
separate test arrays        ``arrays`` with ``test_images=`` (and ``test_labels=`` when ``labels=`` is given)
``holdout=f``               a seeded, stratified fraction ``f`` of every class is held out (option
                            ``holdout_seed``, default 0); the train split is the rest, so the two are disjoint
``test_is_train=true``      the explicit choice to report on the training images; the test split's name gets
                            the suffix ``[test=train]`` so figures and tables say so, and a warning is issued
==========================  ===============================================================================

Anything else — a folder of class folders only, ``DIR/train`` without ``DIR/test``, arrays without test arrays —
is refused with a :class:`~gpsviz.errors.DataError` that lists these choices.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch

from gpsviz.data.core import ImageDataset
from gpsviz.data.local import TEST_DIR_NAMES, from_arrays, from_folder
from gpsviz.errors import DataError
from gpsviz.utils import parse_bool

TEST_IS_TRAIN_SUFFIX = " [test=train]"

_CHOICES = ("or pass holdout=0.2 (hold out a seeded, stratified 20% of every class as the test split), "
            "or test_is_train=true (report on the training images, labelled as such)")


def holdout_indices(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stratified, seeded split of N rows: ``(train rows, test rows)``, both sorted int64, disjoint, covering 0..N−1.

    Each label value (``-1``, unknown, is a stratum of its own) holds out ``round(fraction · n_c)`` of its ``n_c``
    rows, at least one when ``n_c ≥ 2`` and never all of them (a class of one image stays in train)."""
    labels = torch.as_tensor(labels).long().flatten()
    g = torch.Generator().manual_seed(int(seed))
    test = []
    for value in torch.unique(labels).tolist():             # ascending: the same draw for the same labels
        rows = torch.nonzero(labels == value).flatten()
        n_c = rows.numel()
        k = min(max(int(round(fraction * n_c)), 1 if n_c >= 2 else 0), n_c - 1)
        if k > 0:
            test.append(rows[torch.randperm(n_c, generator=g)[:k]])
    test_rows = torch.sort(torch.cat(test)).values if test else torch.empty(0, dtype=torch.long)
    keep = torch.ones(labels.numel(), dtype=torch.bool)
    keep[test_rows] = False
    return torch.nonzero(keep).flatten(), test_rows


def _split_options(where: str, options: dict[str, Any]) -> tuple[float | None, int, bool]:
    """Validate ``holdout``, ``holdout_seed``, ``test_is_train`` → (fraction or None, seed, test_is_train)."""
    holdout, seed = options.get("holdout"), options.get("holdout_seed", 0)
    test_is_train = parse_bool(options.get("test_is_train", False), f"{where}: option test_is_train")
    if holdout is not None:
        if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not math.isfinite(holdout) \
                or not 0 < holdout < 1:
            raise DataError(f"{where}: option holdout={holdout!r} must be a fraction in (0, 1), e.g. holdout=0.2 "
                            f"(20% of every class becomes the test split)")
        holdout = float(holdout)
    elif "holdout_seed" in options:
        raise DataError(f"{where}: option holdout_seed is only used with holdout=<fraction>; add e.g. holdout=0.2")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise DataError(f"{where}: option holdout_seed={seed!r} must be an integer ≥ 0")
    if holdout is not None and test_is_train:
        raise DataError(f"{where}: options holdout and test_is_train exclude each other; pass one of them")
    return holdout, seed, test_is_train


def _take(ds: ImageDataset, rows: torch.Tensor, split: str, what: str) -> ImageDataset:
    if rows.numel() == 0:
        raise DataError(f"{ds.name}: {what} leaves the {split} split empty ({len(ds)} images); raise holdout or "
                        f"add images (each class needs at least 2 images to lend one to the test split)")
    out = ds.subset(rows)
    out.split = split
    return out


def _finish(ds: ImageDataset, split: str, holdout: float | None, seed: int, test_is_train: bool,
            held_out: bool) -> ImageDataset:
    """The ``split`` part of a pool ``ds`` (the images the user gave as training data)."""
    if holdout is not None:
        tr, te = holdout_indices(ds.labels, holdout, seed)
        return _take(ds, te if held_out else tr, split, f"holdout={holdout:g}")
    if held_out:                                          # only reached with test_is_train
        warnings.warn(f"{ds.name}: test_is_train=true: the test split IS the training images; probe accuracies "
                      f"on it measure fitting, not generalisation", UserWarning, stacklevel=4)
        return ImageDataset(images=ds.images, labels=ds.labels, classes=ds.classes, factors=dict(ds.factors),
                            split=split, name=ds.name + TEST_IS_TRAIN_SUFFIX,
                            factor_classes=dict(ds.factor_classes), masks=ds.masks)
    ds.split = split
    return ds


# ---------------------------------------------------------------------------------------------------- folders
def _folder_layout(path: Path, split: str, options: dict[str, Any]) -> tuple[Path, bool | None]:
    """Where the ``split`` images of a folder dataset come from: ``(folder to read, part)`` where part is None
    for a folder that is the split, False for the training part of the pool (DIR/train or DIR), True for its
    held-out part. Raises DataError when the held-out split would silently be the training images."""
    holdout, _, test_is_train = _split_options("dataset 'folder'", options)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist (expected {path}/train/<class>/<image> and "
                        f"{path}/test/<class>/<image>, or one sub-folder per class with holdout=0.2)")
    train_dir = path / "train" if (path / "train").is_dir() else None
    test_dir = next((path / d for d in TEST_DIR_NAMES if (path / d).is_dir()), None)
    explicit = "holdout" if holdout is not None else "test_is_train" if test_is_train else None
    if explicit and test_dir is not None:
        raise DataError(f"image folder {path} has a held-out folder {test_dir.name}/; the option {explicit} would "
                        f"ignore it: drop {explicit} (or move {test_dir} away to split the training images)")
    if test_dir is not None and train_dir is None:
        raise DataError(f"image folder {path} has {test_dir.name}/ but no train/: put the training images in "
                        f"{path}/train/<class>/ beside {test_dir}")
    pool = train_dir or path
    if split == "train":
        return pool, False
    if split == "test":
        if test_dir is not None:
            return test_dir, None
        if explicit:
            return pool, True
        if train_dir is not None:
            raise DataError(f"image folder {path} has train/ but no test/ folder, so there is no held-out split: "
                            f"add the held-out images as {path}/test/<class>/<image>, {_CHOICES}")
        raise DataError(f"image folder {path} has class folders only, so its test split would be the training "
                        f"images: add {path}/train/<class>/… and {path}/test/<class>/…, {_CHOICES}")
    if (path / split).is_dir():
        return path / split, None
    raise DataError(f"image folder {path} has no {split}/ folder; add {path}/{split}/<class>/<image> "
                    f"(or load the split 'train' or 'test')")


def load_folder_split(split: str, options: dict[str, Any]) -> ImageDataset:
    """The ``split`` of a ``folder`` dataset (see the module docstring for where each split comes from)."""
    if options.get("path") is None:
        raise DataError("dataset 'folder' needs the option path=..., a folder with train/<class>/ and "
                        "test/<class>/ sub-folders (or class folders and holdout=0.2)")
    path = Path(options["path"]).expanduser()
    folder, part = _folder_layout(path, split, options)
    holdout, seed, test_is_train = _split_options("dataset 'folder'", options)
    ds = from_folder(folder, size=options.get("size"), split=split, name=path.name or "folder")
    if part is None:
        return ds                                           # a folder of its own: nothing to split
    return _finish(ds, split, holdout, seed, test_is_train, held_out=part)


def check_folder_splits(options: dict[str, Any]) -> None:
    """Refuse a folder dataset without a held-out split before any image is read (for :func:`load_splits`)."""
    if options.get("path") is not None:
        _folder_layout(Path(options["path"]).expanduser(), "test", options)


# ----------------------------------------------------------------------------------------------------- arrays
def load_arrays_split(split: str, options: dict[str, Any]) -> ImageDataset:
    """The ``split`` of an ``arrays`` dataset: ``images``/``labels`` are the training arrays, ``test_images``/
    ``test_labels`` the held-out ones; without them, ``holdout`` or ``test_is_train`` must be given."""
    check_arrays_splits(options, split)
    name = options.get("name") or "arrays"
    holdout, seed, test_is_train = _split_options("dataset 'arrays'", options)
    classes = options.get("classes")
    train = from_arrays(options["images"], labels=options.get("labels"), classes=classes, name=name, split="train")
    if options.get("test_images") is None:
        return _finish(train, split, holdout, seed, test_is_train, held_out=split != "train")
    if split == "train":
        return train
    test = from_arrays(options["test_images"], labels=options.get("test_labels"), classes=classes,
                       name=name, split=split)
    if test.images.shape[1:] != train.images.shape[1:]:
        raise DataError(f"{name}: test_images are {tuple(test.images.shape[1:])} (C×H×W) but images are "
                        f"{tuple(train.images.shape[1:])}; give held-out images of the training images' shape")
    if classes is None and options.get("labels") is not None:   # default names "0".."K−1": the longer list wins
        train.classes = test.classes = max(train.classes, test.classes, key=len)
    return test


def check_arrays_splits(options: dict[str, Any], split: str = "test") -> None:
    """Refuse inconsistent ``arrays`` options, and a held-out ``split`` that would be the training arrays."""
    if options.get("images") is None:
        raise DataError("dataset 'arrays' needs the option images=... (N×H×W or N×H×W×C array)")
    holdout, _, test_is_train = _split_options("dataset 'arrays'", options)
    has_test = options.get("test_images") is not None
    if options.get("test_labels") is not None and not has_test:
        raise DataError("dataset 'arrays': test_labels were given without test_images; pass test_images=... too")
    if has_test and (options.get("labels") is None) != (options.get("test_labels") is None):
        raise DataError("dataset 'arrays': give labels and test_labels together (or neither)")
    explicit = "holdout" if holdout is not None else "test_is_train" if test_is_train else None
    if has_test and explicit:
        raise DataError(f"dataset 'arrays': test_images are the held-out split; the option {explicit} would "
                        f"ignore them: drop {explicit}")
    if not has_test and not explicit and split != "train":
        raise DataError("dataset 'arrays' was given training arrays only, so its test split would be the "
                        "training images: pass test_images=... (and test_labels=...) for a held-out split, "
                        + _CHOICES)
