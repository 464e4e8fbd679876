"""The user's own data: arrays (numpy / torch) and image folders (one sub-folder per class)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gpsviz.data.core import ImageDataset
from gpsviz.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")   # more than 8 bits per pixel (one channel)
MIN_IMAGE_SIZE = 8      # the smallest side every backbone accepts (SmallCNN: stride 2 and two 2×2 max-pools)
MAX_CLASSES = 100_000   # labels are class indices; a label of 10**7 means unmapped ids, not ten million classes
TEST_DIR_NAMES = ("test", "val", "valid", "validation")   # a held-out split's folder beside train/
SPLIT_DIR_NAMES = ("train",) + TEST_DIR_NAMES


def _to_8bit(pic: Any) -> Any:
    """A PIL image with more than 8 bits per pixel (16-bit PNG: mode I;16 or I, float TIFF: F) → mode "L",
    scaled by its bit depth (65535 → 255), not clipped; other images are returned unchanged."""
    if pic.mode not in _WIDE_MODES:
        return pic
    a = np.asarray(pic).astype(np.float64)
    if pic.mode == "F":
        top = 1.0 if a.size == 0 or float(np.nanmax(a)) <= 1.0 else 65535.0
    elif pic.mode.startswith("I;16") or pic.format == "PNG" or a.size == 0 or float(a.max()) <= 65535:
        top = 65535.0                   # PNG holds at most 16 bits per sample; mode I from a PNG is 16-bit
    else:
        top = 4294967295.0
    a = np.nan_to_num(a, nan=0.0)
    return Image.fromarray(np.clip(np.rint(a / top * 255.0), 0, 255).astype(np.uint8), "L")


def _as_tensor(x: Any, what: str) -> torch.Tensor:
    """numpy array / torch tensor / nested list → torch tensor (CPU); anything else → DataError."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001 - anything numpy refuses is a user error here
        raise DataError(f"{what} must be a numpy array or torch tensor, got {type(x).__name__}: {e}") from e
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise DataError(f"{what} must be a numeric numpy array or torch tensor, got dtype {arr.dtype} "
                        f"(ragged lists of different-sized images cannot be stacked; resize them first)")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _images_to_nchw(x: torch.Tensor, name: str) -> torch.Tensor:
    """Validate and convert images to uint8 N×C×H×W.

    Accepted: N×H×W (grey), N×H×W×C with C = 1 or 3 (channels last), or N×C×H×W with C = 1 or 3 when the last
    axis cannot be channels; uint8 (0..255) or float in [0, 1] (rounded ×255).
    """
    shape = tuple(x.shape)
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    elif x.ndim == 4:
        if x.shape[-1] not in (1, 3):
            if x.shape[1] in (1, 3):
                x = x.permute(0, 2, 3, 1)  # N×C×H×W given: accept it
            else:
                raise DataError(f"{name}: images of shape {shape} have {shape[-1]} channels on the last axis; "
                                f"expected N×H×W×C with C = 1 (grey) or 3 (RGB), e.g. drop alpha with images[..., :3]")
    else:
        raise DataError(f"{name}: images must have rank 3 (N×H×W) or 4 (N×H×W×C with C = 1 or 3); "
                        f"got rank {x.ndim} with shape {shape}")
    if x.shape[0] == 0:
        raise DataError(f"{name}: no images (shape {shape}); expected at least one")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise DataError(f"{name}: images have zero height or width (shape {shape})")
    if x.dtype == torch.uint8:
        pass
    elif x.dtype.is_floating_point:
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            raise DataError(f"{name}: float images contain NaN or infinite values; expected floats in [0, 1]")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            hint = " (they look like 0..255: divide by 255 or convert to uint8)" if hi <= 255.0 and lo >= 0 else ""
            raise DataError(f"{name}: float images must lie in [0, 1]; found values in [{lo:g}, {hi:g}]{hint}")
        x = (x.double() * 255.0).round().to(torch.uint8)
    else:
        raise DataError(f"{name}: images must be uint8 (0..255) or float in [0, 1]; got dtype "
                        f"{str(x.dtype).replace('torch.', '')} (if the values are 0..255 convert with "
                        f".astype(np.uint8))")
    if x.shape[1] < MIN_IMAGE_SIZE or x.shape[2] < MIN_IMAGE_SIZE:
        raise DataError(f"{name}: images of {x.shape[1]}×{x.shape[2]} pixels are too small for the backbones; the "
                        f"minimum is {MIN_IMAGE_SIZE}×{MIN_IMAGE_SIZE} (upsample them first)")
    return x.permute(0, 3, 1, 2).contiguous()


def from_arrays(images: Any, labels: Any = None, classes: Sequence[str] | None = None, name: str = "arrays",
                split: str = "train") -> ImageDataset:
    """Wrap in-memory arrays as an :class:`ImageDataset`.

    Args:
        images: numpy array or torch tensor, N×H×W or N×H×W×C (C = 1 or 3; N×C×H×W is also accepted when
            unambiguous), uint8 or float in [0, 1] (→ uint8 by rounding ×255).
        labels: optional integer array of length N (values in ``[0, len(classes))``, or -1 for unknown);
            ``None`` → all zeros with ``classes = ["unlabelled"]``.
        classes: optional class names; default ``["0", "1", ...]`` up to the largest label.
        name: dataset name; split: recorded split name.

    Returns:
        ``ImageDataset`` with ``images`` uint8 N×C×H×W and ``labels`` int64 N.
    """
    x = _images_to_nchw(_as_tensor(images, f"{name}: images"), name)
    n = x.shape[0]
    if labels is None:
        if classes is not None:
            raise DataError(f"{name}: classes were given but labels were not; pass labels (int array of length {n})")
        return ImageDataset(images=x, labels=torch.zeros(n, dtype=torch.long), classes=["unlabelled"],
                            split=split, name=name)
    y = _as_tensor(labels, f"{name}: labels")
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{name}: labels must be a 1-D array of length {n} (one per image); got shape {tuple(y.shape)}")
    if y.dtype == torch.bool or y.dtype.is_floating_point or y.dtype.is_complex:
        raise DataError(f"{name}: labels must be integers (class indices); got dtype "
                        f"{str(y.dtype).replace('torch.', '')}")
    y = y.long()
    if bool((y < -1).any()):
        raise DataError(f"{name}: labels must be class indices ≥ 0 (or -1 for unknown); found {int(y.min())}")
    top = int(y.max())
    if top >= MAX_CLASSES:
        raise DataError(f"{name}: label {top} would mean {top + 1} classes (at most {MAX_CLASSES}); labels must be "
                        f"class indices 0..K-1: remap ids with np.unique(labels, return_inverse=True)[1]")
    if classes is None:
        classes = [str(i) for i in range(top + 1)] or ["unlabelled"]
    else:
        classes = [str(c) for c in classes]
        if top >= len(classes):
            raise DataError(f"{name}: label {top} is out of range for {len(classes)} classes "
                            f"(labels must be in [0, {len(classes) - 1}])")
    return ImageDataset(images=x, labels=y, classes=classes, split=split, name=name)


def _parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``None`` | int | (h, w) → ``None`` | (h, w)."""
    if size is None:
        return None
    def ok(s: Any) -> bool:
        return isinstance(s, (int, np.integer)) and not isinstance(s, bool) and MIN_IMAGE_SIZE <= s <= 1024

    if ok(size):
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(ok(s) for s in size):
        return int(size[0]), int(size[1])
    raise DataError(f"size must be an int or a (height, width) pair of ints in [{MIN_IMAGE_SIZE}, 1024], "
                    f"got {size!r}")


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, hidden files skipped."""
    out = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
           and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(out)


def folder_image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) of the image :func:`from_folder` would read first (its size is every image's size when no
    ``size=`` is given), read from the file header only; None when the folder holds no readable image."""
    root = Path(path).expanduser()
    try:
        class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        files = next((fs for fs in ([_image_files(d) for d in class_dirs] if class_dirs else [_image_files(root)])
                      if fs), [])
        if not files:
            return None
        with Image.open(files[0]) as im:
            return int(im.size[1]), int(im.size[0])
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def from_folder(path: str | os.PathLike, size: int | Sequence[int] | None = None, split: str = "train",
                name: str | None = None) -> ImageDataset:
    """Read an image folder with one sub-folder per class (``path/<class>/<image>``).

    Images are read with PIL and converted to RGB (or to grey "L" if every image is greyscale), then resized
    (antialiased, bicubic) to ``size`` — an int or (height, width); by default the first image's size, and then
    all images must share it. A folder without sub-folders but with images gives one class ``"unlabelled"``.

    Returns:
        ``ImageDataset`` with ``images`` uint8 N×C×H×W (C = 1 or 3), ``labels`` int64 N (sub-folder index,
        folders sorted by name), ``classes`` the sub-folder names.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist (expected one sub-folder per class, "
                        f"e.g. {root}/cat/1.png)")
    name = name or root.name or "folder"
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    splits = [d.name for d in class_dirs if d.name.lower() in SPLIT_DIR_NAMES]
    if splits and len(splits) == len(class_dirs):
        raise DataError(f"image folder {root} holds split folders ({', '.join(splits)}), not class folders: read "
                        f"one split with from_folder({str(root / splits[0])!r}), or both with "
                        f"load_splits('folder', {{'path': {str(root)!r}}})")
    if class_dirs:
        classes = [d.name for d in class_dirs]
        entries = [(f, k) for k, d in enumerate(class_dirs) for f in _image_files(d)]
    else:
        classes = ["unlabelled"]
        entries = [(f, 0) for f in _image_files(root)]
    if not entries:
        raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in folder {root}; expected one "
                        f"sub-folder per class, e.g. {root}/cat/1.png")
    target = _parse_size(size)
    pics, grey = [], True
    for f, _ in entries:
        try:
            with Image.open(f) as im:
                im.load()
                pic = _to_8bit(im)
                pic = pic.copy() if pic is im else pic
        except Image.DecompressionBombError as e:
            limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 0
            raise DataError(f"image {f} is too large to decode safely ({e}); the limit is {limit:,} pixels "
                            f"(Pillow's decompression-bomb guard, 2 × PIL.Image.MAX_IMAGE_PIXELS): shrink the "
                            f"image or remove it from the folder") from e
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise DataError(f"cannot read image {f}: {e} (remove or replace this file)") from e
        grey = grey and pic.mode in _GREY_MODES
        pics.append(pic)
    mode = "L" if grey else "RGB"
    if target is None:
        w, h = pics[0].size
        target = (h, w)
        if min(target) < MIN_IMAGE_SIZE:
            raise DataError(f"images in {root} are {w}×{h} pixels, smaller than the minimum "
                            f"{MIN_IMAGE_SIZE}×{MIN_IMAGE_SIZE}; pass size=32 (or another size) to resize them")
    arrays = []
    for (f, _), pic in zip(entries, pics):
        pic = pic.convert(mode)
        if pic.size != (target[1], target[0]):
            if size is None:
                raise DataError(f"image {f} is {pic.size[0]}×{pic.size[1]} (w×h) but the first image "
                                f"{entries[0][0]} is {target[1]}×{target[0]}; pass size=... to resize all images")
            pic = pic.resize((target[1], target[0]), Image.BICUBIC)
        arrays.append(np.asarray(pic, dtype=np.uint8))
    x = torch.from_numpy(np.stack(arrays))
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([k for _, k in entries], dtype=torch.long)
    return ImageDataset(images=x, labels=labels, classes=classes, split=split, name=name)
