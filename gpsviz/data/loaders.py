"""``load_dataset``: one entry point for every dataset, and the shapes-world cache.

=================  ===============================  ==========================================================
name (aliases)     splits                           options
=================  ===============================  ==========================================================
``shapes``         train, test                      n, seed, clutter, colour_shift, size, variant, cache
``fashion-mnist``  train, test                      n
``cifar10``        train, test                      n
``cifar100``       train, test                      n (labels: 100 fine classes; factor ``superclass``)
``stl10``          train, test, unlabeled           n, size (resize 96 → size, antialiased)
``folder``         train, test (``path/train`` and  path (required), size, holdout, holdout_seed,
                   ``path/test``; any other split   test_is_train
                   from ``path/<split>``)
``arrays``         train, test (``test_images``)    images (required), labels, classes, name, test_images,
                                                    test_labels, holdout, holdout_seed, test_is_train
=================  ===============================  ==========================================================

The user's own data never gets the training images as its test split by accident: a folder needs
``path/test`` (or ``val``), arrays need ``test_images``, or the user names the choice — ``holdout=0.2`` (a seeded,
stratified 20% of every class becomes the test split) or ``test_is_train=true`` (labelled ``[test=train]``).
See :mod:`gpsviz.data.splits`.

Shapes-world variants (option ``variant``, see :data:`gpsviz.data.shapes.WORLD_VARIANTS`):

- ``"plain"`` (default): plain backgrounds; the world where strong augmentation makes SimCLR learn shape.
- ``"textured"``: the shortcut world (the default before 2026-11-25): plain / gradient / stripes / noise
  backgrounds and small objects; SimCLR with strong augmentation learns colour and background there instead of
  shape (feature suppression, notebook 01's second lesson). Same seed ⇒ the same images as before.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from gpsviz.data import formats
from gpsviz.data.core import ImageDataset
from gpsviz.data.local import _as_tensor, _images_to_nchw, _parse_size, folder_image_size
from gpsviz.data.shapes import DEFAULT_VARIANT, make_shapes, world_variant
from gpsviz.data.splits import check_arrays_splits, check_folder_splits, load_arrays_split, load_folder_split
from gpsviz.errors import DataError
from gpsviz.utils import atomic_torch_save, data_root, parse_bool

USER_SPLIT_OPTIONS = ("holdout", "holdout_seed", "test_is_train")
SHAPES_CACHE_VERSION = 2
SHAPES_DEFAULT_N = {"train": 10000, "test": 2000}

@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: ``load(split, root, download, options) -> ImageDataset`` (split and options already
    checked), its splits (None: any name, the user's own data), its option names, and ``size(options)``: the
    image width in pixels without loading (None when it cannot be told)."""

    name: str
    load: Callable[[str, Path | None, bool, dict[str, Any]], ImageDataset]
    splits: tuple[str, ...] | None
    options: tuple[str, ...]
    size: Callable[[dict[str, Any]], int | None]


#: Every dataset :func:`load_dataset` knows, in registration order (filled by :func:`register_dataset`).
_DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, *, splits: Sequence[str] | None, options: Sequence[str],
                     size: Callable[[dict[str, Any]], int | None]) -> Callable:
    """Decorator: register ``load(split, root, download, options) -> ImageDataset`` as the dataset ``name`` — the
    same idiom as ``register_prior``, ``register_experiment`` and the ingredient registries. Another function
    under a taken name is a DataError."""
    def deco(load: Callable) -> Callable:
        old = _DATASETS.get(name)
        if old is not None and (old.load.__module__, old.load.__qualname__) != (load.__module__, load.__qualname__):
            raise DataError(f"dataset name {name!r} is already registered to {old.load.__qualname__}")
        _DATASETS[name] = DatasetSpec(name, load, None if splits is None else tuple(splits), tuple(options), size)
        return load
    return deco


_ALIASES = {
    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "fashion": "fashion-mnist", "cifar-10": "cifar10", "cifar_10": "cifar10", "cifar-100": "cifar100",
    "cifar_100": "cifar100", "stl-10": "stl10", "stl_10": "stl10", "imagefolder": "folder", "image-folder": "folder",
    "folders": "folder", "array": "arrays", "numpy": "arrays", "tensor": "arrays", "tensors": "arrays",
    "shape": "shapes", "shapes-world": "shapes",
}
_SPLIT_ALIASES = {"unlabelled": "unlabeled", "val": "test", "valid": "test", "validation": "test"}


def available_datasets() -> list[str]:
    """The dataset names :func:`load_dataset` accepts (aliases such as ``"fmnist"`` also work)."""
    return list(_DATASETS)


def canonical_name(name: str) -> str:
    """Map a dataset name or alias (any case, ``_`` or ``-``) to its canonical name; unknown → DataError."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _DATASETS:
        raise DataError(f"unknown dataset {name!r}; available datasets: {', '.join(available_datasets())} "
                        f"(aliases: {', '.join(sorted(_ALIASES))})")
    return key


# ----------------------------------------------------------------------------------------------- shapes cache
def shapes_variant_name(clutter: float = 0.0, colour_shift: bool = False, size: int = 32,
                        variant: str = DEFAULT_VARIANT) -> str:
    """Dataset name of a shapes-world variant: ``"shapes"``, plus ``-textured`` (a non-default world),
    ``-clutter0.5``, ``-shift``, ``-64px`` if set."""
    name = "shapes"
    if variant != DEFAULT_VARIANT:
        name += f"-{variant}"
    if clutter:
        name += f"-clutter{float(clutter):g}"
    if colour_shift:
        name += "-shift"
    if int(size) != 32:
        name += f"-{int(size)}px"
    return name


def shapes_split_seed(seed: int, split: str) -> int:
    """Seed for one split, derived from the user's seed (train and test never share a seed)."""
    digest = hashlib.sha256(f"gpsviz-shapes:{int(seed)}:{split}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def shapes_cache_path(root: Path, split: str, n: int, seed: int, clutter: float, colour_shift: bool,
                      size: int, variant: str = DEFAULT_VARIANT) -> Path:
    """``root/shapes/<key>.pt``: the key spells out every generation option and the generator version."""
    key = (f"{split}-n{n}-seed{seed}-{variant}-clutter{float(clutter):g}-{'shift' if colour_shift else 'base'}"
           f"-{size}px-v{SHAPES_CACHE_VERSION}")
    return root / "shapes" / f"{key}.pt"


def _dataset_to_dict(ds: ImageDataset) -> dict[str, Any]:
    return {"format": "gpsviz-imagedataset", "version": SHAPES_CACHE_VERSION, "images": ds.images,
            "labels": ds.labels, "classes": list(ds.classes), "factors": dict(ds.factors), "split": ds.split,
            "name": ds.name, "factor_classes": {k: list(v) for k, v in ds.factor_classes.items()}, "masks": ds.masks}


def _dataset_from_dict(d: Any, params: dict[str, Any] | None = None) -> ImageDataset:
    """Rebuild a cached dataset; with ``params`` the cache must record exactly these generation options and
    hold that many images of that size (a copied or renamed cache file is not trusted by its name)."""
    if not isinstance(d, dict) or d.get("format") != "gpsviz-imagedataset" or d.get("version") != SHAPES_CACHE_VERSION:
        raise DataError("not a gpsviz dataset cache of this version")
    if params is not None:
        if d.get("params") != params:
            raise DataError(f"the cache holds {d.get('params')}, not {params}")
        images = d.get("images")
        want = (params["n"], 3, params["size"], params["size"])
        if not isinstance(images, torch.Tensor) or tuple(images.shape) != want:
            raise DataError(f"the cache holds images of shape {tuple(getattr(images, 'shape', ()))}, not {want}")
    return ImageDataset(images=d["images"], labels=d["labels"], classes=d["classes"], factors=d["factors"],
                        split=d["split"], name=d["name"], factor_classes=d["factor_classes"], masks=d["masks"])


def _remove_stale_temp_files(folder: Path, max_age_s: float = 3600.0) -> None:
    """Remove ``.*.tmp`` files of cache writes interrupted by a kill (older than an hour: another process may be
    writing a fresh one right now)."""
    for f in folder.glob(".*.tmp") if folder.is_dir() else ():
        try:
            if time.time() - f.stat().st_mtime > max_age_s:
                f.unlink()
        except OSError:
            pass


SHAPES_MAX_N = 2_000_000
SHAPES_MAX_SIZE = 256
SHAPES_MAX_BYTES = 4 * 2**30      # images (3 bytes/pixel) + masks (1 byte/pixel)


def _shapes_options(split: str, n: Any, seed: Any, clutter: Any, colour_shift: Any, size: Any,
                    cache: Any) -> tuple[int, int, float, bool, int, bool]:
    """Validate the shapes options (types and ranges; booleans parsed, never ``bool("false")``)."""
    def integer(name: str, v: Any, lo: int, hi: int) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise DataError(f"shapes: option {name}={v!r} must be an integer in [{lo}, {hi}]")
        return int(v)

    n = integer("n", SHAPES_DEFAULT_N[split] if n is None else n, 1, SHAPES_MAX_N)
    seed = integer("seed", seed, 0, 2**63 - 1)
    size = integer("size", size, 16, SHAPES_MAX_SIZE)
    if isinstance(clutter, bool) or not isinstance(clutter, (int, float)) or not math.isfinite(clutter) \
            or not 0 <= clutter <= 10:
        raise DataError(f"shapes: option clutter={clutter!r} must be a number in [0, 10] (e.g. 0.5)")
    colour_shift = parse_bool(colour_shift, "shapes: option colour_shift")
    cache = parse_bool(cache, "shapes: option cache")
    if n * size * size * 4 > SHAPES_MAX_BYTES:
        raise DataError(f"shapes: n={n} images of {size}×{size} need {n * size * size * 4 / 2**30:.1f} GiB; the "
                        f"limit is {SHAPES_MAX_BYTES / 2**30:.0f} GiB: lower n or size")
    return n, seed, float(clutter), colour_shift, size, cache


def load_shapes(split: str = "train", root: str | Path | None = None, n: int | None = None, seed: int = 0,
                clutter: float = 0.0, colour_shift: bool = False, size: int = 32, variant: str = DEFAULT_VARIANT,
                cache: bool = True) -> ImageDataset:
    """The shapes world for one split, cached under ``data_root(root)/shapes/``.

    ``n`` defaults to 10000 (train) / 2000 (test); the split seed is derived from ``seed`` and ``split``;
    ``variant`` names the world (``"plain"``, the default, or ``"textured"``, the shortcut world).
    A cache file that cannot be read is regenerated (with a warning), never a crash.
    Returns ``ImageDataset`` (images uint8 n×3×size×size, labels int64 n, factors, masks bool n×size×size).
    """
    n, seed, clutter, colour_shift, size, cache = _shapes_options(split, n, seed, clutter, colour_shift, size, cache)
    if not isinstance(variant, str):
        raise DataError(f"shapes: option variant={variant!r} must be a world name, e.g. 'plain' or 'textured'")
    world_variant(variant)  # unknown name → DataError before anything is generated
    variant = variant.strip().lower()
    path = shapes_cache_path(data_root(root), split, n, seed, clutter, colour_shift, size, variant)
    params = dict(split=split, n=n, seed=seed, clutter=clutter, colour_shift=colour_shift, size=size, variant=variant)
    if cache and path.is_file():
        try:
            return _dataset_from_dict(torch.load(path, map_location="cpu", weights_only=True), params)
        except Exception as e:  # noqa: BLE001 - any unreadable cache is simply rebuilt
            warnings.warn(f"shapes cache {path} cannot be used ({type(e).__name__}: {e}); regenerating it", stacklevel=2)
    ds = make_shapes(n, seed=shapes_split_seed(int(seed), split), clutter=clutter, colour_shift=bool(colour_shift),
                     size=int(size), variant=variant)
    ds.split = split
    ds.name = shapes_variant_name(clutter, bool(colour_shift), int(size), variant)
    if cache:
        _remove_stale_temp_files(path.parent)
        try:
            atomic_torch_save({**_dataset_to_dict(ds), "params": params}, path)
        except OSError as e:
            warnings.warn(f"could not write the shapes cache {path} ({e}); continuing without it", stacklevel=2)
    return ds


# ------------------------------------------------------------------------------------------------- dispatch
def load_dataset(name: str, split: str = "train", root: str | Path | None = None, download: bool = True,
                 **options: Any) -> ImageDataset:
    """Load a dataset by name as an :class:`ImageDataset` (images uint8 N×C×H×W, labels int64 N).

    Args:
        name: one of :func:`available_datasets` (or an alias, e.g. ``"fmnist"``).
        split: ``"train"``, ``"test"`` (``"unlabeled"`` for STL-10; folders and arrays accept any split name).
        root: the data folder (default :func:`gpsviz.utils.data_root`: ``$GPSVIZ_DATA`` or ``./data``).
        download: allow a torchvision download when the files are missing (real datasets only).
        **options: per-dataset options (see the module docstring); an unknown option raises :class:`DataError`.

    Raises:
        DataError: unknown name / split / option, or missing/corrupt files with ``download=False``.
        DownloadError: the files are missing and the download failed (offline); the message says what to put where.
    """
    key = canonical_name(name)
    spec = _DATASETS[key]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise DataError(f"dataset {key!r} has no option {', '.join(map(repr, unknown))}; "
                        f"its options are: {', '.join(spec.options) or 'none'}")
    split = str(split).strip().lower() if spec.splits is not None else str(split)
    if spec.splits is None and split.strip().lower() in ("train", "test", *_SPLIT_ALIASES):
        split = _SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())   # user data: val → test
    if spec.splits is not None:
        split = _SPLIT_ALIASES.get(split, split)
        if split not in spec.splits:
            raise DataError(f"dataset {key!r} has no split {split!r}; valid splits: {', '.join(spec.splits)}")
    n = options.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DataError(f"option n must be a positive integer (number of images), got {n!r}")
    return spec.load(split, None if root is None else Path(root), download, options)


def dataset_image_size(name: str, options: dict[str, Any] | None = None) -> int | None:
    """The width in pixels (:attr:`ImageDataset.image_size`) of a dataset's images, from its name and options
    without loading it: shapes ``size`` (32), Fashion-MNIST 28, CIFAR 32, STL-10 ``size`` (96), a folder's
    ``size`` or its first image's header, arrays' shape. None when it cannot be told (e.g. a missing folder)."""
    options = dict(options or {})
    try:
        return _DATASETS[canonical_name(name)].size(options)
    except (DataError, TypeError, ValueError):
        return None


def load_splits(name: str, options: dict[str, Any] | None = None) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) splits of a dataset with the same options; the test split feeds held-out evaluation.

    For ``folder`` and ``arrays`` a missing held-out split is refused before any image is read (DataError
    naming ``path/test``, ``test_images``, ``holdout=`` and ``test_is_train=``)."""
    options = dict(options or {})
    key = canonical_name(name)
    if key == "folder" and not set(options) - set(_DATASETS[key].options):
        check_folder_splits(options)
    elif key == "arrays" and not set(options) - set(_DATASETS[key].options):
        check_arrays_splits(options)
    return load_dataset(name, "train", **options), load_dataset(name, "test", **options)


# ---------------------------------------------------------------------------------------------- built-in datasets
def _folder_size(options: dict[str, Any]) -> int | None:
    if options.get("size") is not None:
        return _parse_size(options["size"])[1]
    if options.get("path") is None:
        return None
    path = Path(options["path"]).expanduser()
    hw = folder_image_size(path / "train" if (path / "train").is_dir() else path)
    return None if hw is None else hw[1]


def _arrays_size(options: dict[str, Any]) -> int | None:
    if options.get("images") is None:
        return None
    return int(_images_to_nchw(_as_tensor(options["images"], "images"), "arrays").shape[-1])


def _stl_size(options: dict[str, Any]) -> int | None:
    size = options.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"stl10: option size must be a positive integer (e.g. 32 or 64), got {size!r}")
    return 96 if size is None else int(size)


@register_dataset("shapes", splits=("train", "test"),
                  options=("n", "seed", "clutter", "colour_shift", "size", "variant", "cache"),
                  size=lambda o: int(o["size"]) if o.get("size") is not None else 32)
def _shapes(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """The procedural shapes world: 10 shape classes with known factors (colour, position, background, …)."""
    return load_shapes(split, root=root, **options)


@register_dataset("fashion-mnist", splits=("train", "test"), options=("n",), size=lambda o: 28)
def _fashion_mnist(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """Fashion-MNIST, 28 px grey (IDX files; offline from the Debian package dataset-fashion-mnist)."""
    return formats.load_fashion_mnist(split, data_root(root), download=download, n=options.get("n"))


@register_dataset("cifar10", splits=("train", "test"), options=("n",), size=lambda o: 32)
def _cifar10(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """CIFAR-10, 32 px colour, 10 classes (the python pickles)."""
    return formats.load_cifar("cifar10", split, data_root(root), download=download, n=options.get("n"))


@register_dataset("cifar100", splits=("train", "test"), options=("n",), size=lambda o: 32)
def _cifar100(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """CIFAR-100, 32 px colour, 100 fine classes; the 20 superclasses are the factor ``superclass``."""
    return formats.load_cifar("cifar100", split, data_root(root), download=download, n=options.get("n"))


@register_dataset("stl10", splits=("train", "test", "unlabeled"), options=("n", "size"), size=_stl_size)
def _stl10(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """STL-10, 96 px colour (``size`` resizes), with its unlabeled split."""
    size = _stl_size(options) if options.get("size") is not None else None
    return formats.load_stl10(split, data_root(root), download=download, n=options.get("n"), size=size)


@register_dataset("folder", splits=None, options=("path", "size") + USER_SPLIT_OPTIONS, size=_folder_size)
def _folder(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """The user's own images in class folders (``path/train``, ``path/test``; held-out split rules)."""
    return load_folder_split(split, options)


@register_dataset("arrays", splits=None,
                  options=("images", "labels", "classes", "name", "test_images", "test_labels") + USER_SPLIT_OPTIONS,
                  size=_arrays_size)
def _arrays(split: str, root: Path | None, download: bool, options: dict[str, Any]) -> ImageDataset:
    """The user's own images as arrays (``images``, ``labels``, ``test_images``; held-out split rules)."""
    return load_arrays_split(split, options)
