"""Real datasets on disk: Fashion-MNIST (IDX), CIFAR-10/100 (python pickles), STL-10 (binary).

Each loader looks for the files first (no network), and only then, if ``download=True``, asks torchvision to
download them into the data folder, with a short socket timeout; offline, a :class:`DownloadError` says which
files to put where.
"""
from __future__ import annotations

import contextlib
import copyreg
import gzip
import importlib
import pickle
import socket
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from gpsviz.data.core import ImageDataset
from gpsviz.errors import DataError, DownloadError

DOWNLOAD_TIMEOUT_S = 15.0
FASHION_SYSTEM_DIRS: list[Path] = [Path("/usr/share/datasets/fashion-mnist")]
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
_IDX_TYPES = {0x08: np.uint8}


# --------------------------------------------------------------------------------------------------- helpers
def _torchvision_datasets():
    """``torchvision.datasets``, imported on first download only (it costs about a second at import)."""
    import torchvision.datasets

    return torchvision.datasets


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Temporarily set the default socket timeout (urllib, used by torchvision, has none of its own)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _download(what: str, fetch: Callable[[], Any], howto: str) -> None:
    """Run ``fetch()`` (a torchvision download) with a short timeout; any failure → DownloadError + ``howto``."""
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            fetch()
    except Exception as e:  # noqa: BLE001 - network, checksum and archive errors all mean "download failed"
        raise DownloadError(f"{what}: the download failed ({type(e).__name__}: {e}). {howto}") from e


def _take(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` rows of images ``x`` and labels ``y`` (all when ``n`` is None)."""
    if n is None:
        return x, y
    return x[: int(n)], y[: int(n)]


def _extract(archive: Path, dest: Path) -> None:
    """Extract a .tar.gz archive into ``dest`` (data-only filter: no absolute paths, links or devices)."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot extract archive {archive}: {e} (delete it and download it again)") from e


# ----------------------------------------------------------------------------------------------- IDX (MNIST)
def read_idx(path: str | Path) -> torch.Tensor:
    """Parse an IDX file (optionally gzip-compressed, detected from its content) into a uint8 tensor.

    Returns a tensor with the dimensions stored in the header, e.g. N×28×28 for images, N for labels.
    A bad magic number, an unsupported element type or a truncated file raises :class:`DataError` naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read IDX file {path}: {e} (the file is corrupt or truncated; replace it)") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; "
                        f"expected 0000 08 0N). Replace it with the original dataset file.")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_TYPES:
        raise DataError(f"{path}: IDX element type 0x{dtype:02x} is not supported (expected 0x08 = uint8)")
    if not 1 <= ndim <= 4 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header is truncated or has {ndim} dimensions (expected 1 to 4)")
    dims = struct.unpack(f">{ndim}I", raw[4: 4 + 4 * ndim])
    expected = int(np.prod(dims))
    data = raw[4 + 4 * ndim:]
    if len(data) != expected:
        raise DataError(f"{path}: IDX file is truncated or padded: header says {'×'.join(map(str, dims))} = "
                        f"{expected} bytes of data, found {len(data)}. Replace the file.")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy().reshape(dims))


def _find_idx(folder: Path, filename: str) -> Path | None:
    """``folder/filename`` as given or without its ``.gz`` (torchvision keeps both), when it exists."""
    for cand in (folder / filename, folder / filename.removesuffix(".gz")):
        if cand.is_file():
            return cand
    return None


def load_fashion_mnist(split: str, root: Path, download: bool = True, n: int | None = None) -> ImageDataset:
    """Fashion-MNIST: images uint8 N×1×28×28 (60000 train / 10000 test), labels int64 N in 0..9.

    Looked up in ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``), then in
    ``root/fashion-mnist/`` and ``root/FashionMNIST/raw/``; else downloaded by torchvision into ``root``.
    """
    img_name, lab_name = FASHION_FILES[split]
    folders = [*FASHION_SYSTEM_DIRS, root / "fashion-mnist", root / "FashionMNIST" / "raw"]

    def found() -> tuple[Path, Path] | None:
        for d in folders:
            a, b = _find_idx(d, img_name), _find_idx(d, lab_name)
            if a is not None and b is not None:
                return a, b
        return None

    files = found()
    names = ", ".join(f for pair in FASHION_FILES.values() for f in pair)
    howto = (f"Install the Debian/Ubuntu package (`sudo apt-get install -y dataset-fashion-mnist`, files land in "
             f"{FASHION_SYSTEM_DIRS[0]}/), or download the 4 files {names} from "
             f"https://github.com/zalandoresearch/fashion-mnist and put them in {root / 'fashion-mnist'}/.")
    if files is None:
        if not download:
            raise DataError(f"Fashion-MNIST not found (looked in {', '.join(map(str, folders))}). {howto} "
                            f"Or pass download=True.")

        _download("Fashion-MNIST", lambda: _torchvision_datasets().FashionMNIST(str(root), train=(split == "train"),
                                                                                 download=True), howto)
        files = found()
        if files is None:
            raise DownloadError(f"Fashion-MNIST: download finished but the files are missing. {howto}")
    x, y = read_idx(files[0]), read_idx(files[1])
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"Fashion-MNIST files {files[0]} ({tuple(x.shape)}) and {files[1]} ({tuple(y.shape)}) do "
                        f"not match: expected N×28×28 images and N labels")
    if y.numel() and int(y.max()) >= len(FASHION_CLASSES):
        raise DataError(f"{files[1]}: label {int(y.max())} out of range 0..9; replace the file")
    x, y = _take(x.unsqueeze(1), y.long(), n)
    return ImageDataset(images=x, labels=y, classes=list(FASHION_CLASSES), split=split, name="fashion-mnist")


# ----------------------------------------------------------------------------------------------------- CIFAR
CIFAR_SPECS = {
    "cifar10": dict(folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz", title="CIFAR-10",
                    train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta",
                    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "cifar100": dict(folder="cifar-100-python", archive="cifar-100-python.tar.gz", title="CIFAR-100",
                     train=["train"], test=["test"], meta="meta",
                     url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` restricted to str → bytes with latin-1 (what pickle protocol 2 uses for bytes)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused: only latin-1 byte strings occur in a CIFAR batch")
    return text.encode("latin-1")


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only what a CIFAR batch holds: dicts, lists, tuples, str/bytes, numbers and
    numpy arrays. Every other global (``os.system``, ``builtins.eval``, any ``__reduce__`` payload) is refused
    before it is called, so no code from the file runs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),   # arrays, protocol 5
        ("_codecs", "encode"),          # how Python 3 pickles bytes at protocol ≤ 2 (latin-1 only, see below)
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR batch holds only dicts, lists, "
                                         f"strings, numbers and numpy arrays")
        if module == "_codecs":
            return _latin1_encode
        if module in ("copy_reg", "copyreg"):
            return copyreg._reconstructor
        if module in ("__builtin__", "builtins"):
            return object
        if name == "ndarray":
            return np.ndarray
        if name == "dtype":
            return np.dtype

        try:
            mod = importlib.import_module(module.replace("numpy.core.", "numpy._core."))
        except ImportError:  # numpy < 2
            mod = importlib.import_module(module.replace("numpy._core.", "numpy.core."))
        return getattr(mod, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused: persistent ids do not occur in a CIFAR batch")


def _unpickle(path: Path) -> dict[str, Any]:
    """Load one CIFAR python pickle with its keys as str, through :class:`_CifarUnpickler` (no code runs).
    Unreadable, foreign or malicious → DataError naming the file."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as e:  # noqa: BLE001 - truncated / not a pickle / refused global
        raise DataError(f"cannot read CIFAR batch {path}: {type(e).__name__}: {e} (corrupt or foreign file: "
                        f"replace it with the original from the CIFAR archive)") from None
    if not isinstance(d, dict):
        raise DataError(f"{path} is not a CIFAR batch (expected a pickled dict, got {type(d).__name__})")
    return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in d.items()}


def _names(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def load_cifar(name: str, split: str, root: Path, download: bool = True, n: int | None = None) -> ImageDataset:
    """CIFAR-10 / CIFAR-100 from ``root/cifar-10-batches-py/`` or ``root/cifar-100-python/`` (python version).

    Returns images uint8 N×3×32×32 (50000 train / 10000 test) and labels int64 N; for CIFAR-100 the labels are
    the 100 fine classes and the 20 superclasses are the categorical factor ``superclass``.
    """
    spec = CIFAR_SPECS[name]
    folder, archive = root / spec["folder"], root / spec["archive"]
    files = [folder / b for b in spec[split]]
    howto = (f"Download {spec['url']} (on a machine with internet) and put the archive at {archive} or extract it "
             f"so that {folder}/ holds {', '.join(spec['train'] + spec['test'])} and {spec['meta']}.")
    if not all(f.is_file() for f in files) and archive.is_file():
        _extract(archive, root)
    if not all(f.is_file() for f in files):
        if not download:
            raise DataError(f"{spec['title']} not found in {folder}/. {howto} Or pass download=True.")

        tv = _torchvision_datasets()
        cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100
        _download(spec["title"], lambda: cls(str(root), train=(split == "train"), download=True), howto)
        if not all(f.is_file() for f in files):
            raise DownloadError(f"{spec['title']}: download finished but {folder}/ is incomplete. {howto}")
    xs, ys, coarse = [], [], []
    for f in files:
        d = _unpickle(f)
        key = "labels" if "labels" in d else "fine_labels"
        if "data" not in d or key not in d:
            raise DataError(f"{f}: not a CIFAR batch (keys {sorted(d)}; expected 'data' and '{key}')")
        data = np.asarray(d["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(d[key]):
            raise DataError(f"{f}: expected data of shape N×3072 with N labels, got {data.shape} and "
                            f"{len(d[key])} labels")
        xs.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        ys.append(torch.as_tensor(list(d[key]), dtype=torch.long))
        if "coarse_labels" in d:
            coarse.append(torch.as_tensor(list(d["coarse_labels"]), dtype=torch.long))
    x, y = torch.cat(xs), torch.cat(ys)
    meta_path = folder / spec["meta"]
    meta = _unpickle(meta_path) if meta_path.is_file() else {}
    factors: dict[str, torch.Tensor] = {}
    factor_classes: dict[str, list[str]] = {}
    if name == "cifar10":
        classes = _names(meta.get("label_names", CIFAR10_CLASSES))
    else:
        classes = _names(meta.get("fine_label_names", [str(i) for i in range(100)]))
        if coarse:
            factors["superclass"] = torch.cat(coarse)
            factor_classes["superclass"] = _names(meta.get("coarse_label_names", [str(i) for i in range(20)]))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise DataError(f"{spec['title']} in {folder}: labels outside 0..{len(classes) - 1}; the files are corrupt")
    keep = slice(None) if n is None else slice(0, int(n))
    return ImageDataset(images=x[keep], labels=y[keep], classes=classes, split=split, name=name,
                        factors={k: v[keep] for k, v in factors.items()}, factor_classes=factor_classes)


# ---------------------------------------------------------------------------------------------------- STL-10
STL_FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
             "unlabeled": ("unlabeled_X.bin", None)}
_STL_BYTES = 3 * 96 * 96


def resize_images(x: torch.Tensor, size: int, chunk: int = 2000) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 N×C×H×W images to N×C×size×size (in chunks to bound memory)."""
    out = torch.empty(x.shape[0], x.shape[1], size, size, dtype=torch.uint8)
    for a in range(0, x.shape[0], chunk):
        part = torch.as_tensor(x[a: a + chunk]).float()
        out[a: a + chunk] = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True,
                                          align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_stl10(split: str, root: Path, download: bool = True, n: int | None = None,
               size: int | None = None) -> ImageDataset:
    """STL-10 from ``root/stl10_binary/``: images uint8 N×3×96×96 (or N×3×size×size when ``size`` is given).

    5000 train / 8000 test labelled images (labels int64 0..9) and 100000 unlabeled ones (labels -1).
    """
    folder, archive = root / "stl10_binary", root / "stl10_binary.tar.gz"
    xname, yname = STL_FILES[split]
    needed = [folder / xname] + ([folder / yname] if yname else [])
    howto = (f"Download http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz (2.5 GB) and put it at {archive} "
             f"or extract it so that {folder}/ holds train_X.bin, train_y.bin, test_X.bin, test_y.bin, "
             f"unlabeled_X.bin and class_names.txt.")
    if not all(f.is_file() for f in needed) and archive.is_file():
        _extract(archive, root)
    if not all(f.is_file() for f in needed):
        if not download:
            raise DataError(f"STL-10 not found in {folder}/. {howto} Or pass download=True.")

        _download("STL-10", lambda: _torchvision_datasets().STL10(str(root), split=split, download=True), howto)
        if not all(f.is_file() for f in needed):
            raise DownloadError(f"STL-10: download finished but {folder}/ is incomplete. {howto}")
    xpath = folder / xname
    nbytes = xpath.stat().st_size
    if nbytes == 0 or nbytes % _STL_BYTES:
        raise DataError(f"{xpath}: size {nbytes} bytes is not a multiple of 3×96×96 = {_STL_BYTES}; the file is "
                        f"truncated. Replace it.")
    total = nbytes // _STL_BYTES
    count = total if n is None else min(total, int(n))
    raw = np.memmap(xpath, dtype=np.uint8, mode="r", shape=(total, 3, 96, 96))

    def rows(a: int, b: int) -> torch.Tensor:  # images are stored column-major per channel
        return torch.from_numpy(np.ascontiguousarray(raw[a:b].transpose(0, 1, 3, 2)))

    name, step = "stl10", 5000
    if size is not None and int(size) != 96:  # resize chunk by chunk straight from the memory map
        x = torch.cat([resize_images(rows(a, min(count, a + step)), int(size)) for a in range(0, count, step)])
        name = f"stl10-{int(size)}px"
    else:
        x = rows(0, count)
    del raw
    if yname is None:
        y = torch.full((count,), -1, dtype=torch.long)
    else:
        ypath = folder / yname
        labels = np.fromfile(ypath, dtype=np.uint8)
        if labels.shape[0] != total:
            raise DataError(f"{ypath}: {labels.shape[0]} labels for {total} images in {xpath}; replace the files")
        if labels.size and (labels.min() < 1 or labels.max() > 10):
            raise DataError(f"{ypath}: labels must be 1..10, found {labels.min()}..{labels.max()}; replace the file")
        y = torch.from_numpy(labels[:count].astype(np.int64) - 1)
    names_file = folder / "class_names.txt"
    classes = names_file.read_text().split() if names_file.is_file() else list(STL10_CLASSES)
    if len(classes) != 10:
        classes = list(STL10_CLASSES)
    return ImageDataset(images=x, labels=y, classes=classes, split=split, name=name)
