"""Small shared helpers: device choice, seeding, atomic file writes."""
from __future__ import annotations

import errno
import hashlib
import inspect
import io
import json
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpsviz.errors import ConfigError, DataError, GpsvizError, WriteError  # noqa: F401  (WriteError re-exported)


def default_device() -> torch.device:
    """CUDA when present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def parse_device(device: str | torch.device) -> torch.device:
    """A device name → ``torch.device`` without checking availability; ``ConfigError`` for names that are not
    ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    try:
        d = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):
        d = None
    if d is None or d.type not in DEVICE_TYPES:
        raise ConfigError(f"device {str(device)!r} is not a training device; use auto, cpu, cuda, cuda:N or mps")
    return d


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` -> :func:`default_device`; otherwise the named device, checked to exist on this
    machine (``ConfigError`` naming what is available otherwise)."""
    if device is None or device == "auto":
        return default_device()
    d = parse_device(device)
    mps = getattr(torch.backends, "mps", None)
    here = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
                      if torch.cuda.is_available() else []) + (["mps"] if mps is not None and mps.is_available() else [])
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {str(device)!r}: CUDA is not available on this machine; use --device cpu "
                              f"(or auto). Available: {', '.join(here)}")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ConfigError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                              f"available: {', '.join(here)}")
    if d.type == "mps" and not (mps is not None and mps.is_available()):
        raise ConfigError(f"device {str(device)!r}: Apple MPS is not available on this machine; use --device cpu "
                          f"(or auto). Available: {', '.join(here)}")
    if d.type == "cpu" and d.index not in (None, 0):
        raise ConfigError(f"device {str(device)!r}: use cpu")
    return d


_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


def parse_bool(value: object, name: str) -> bool:
    """True/False from a bool, 0/1, or the strings true/false/yes/no/on/off/1/0 (any case); else ConfigError.

    Never ``bool(str)``: the string ``"false"`` is False here."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use true/false (also yes/no, 1/0)")


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A seeded ``torch.Generator`` (every random choice in gpsviz takes one)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


_WRITE_ADVICE = {
    errno.ENOSPC: "free some disk space or write elsewhere (another --out folder, or GPSVIZ_DATA for caches)",
    errno.EDQUOT: "free some of your disk quota or write elsewhere (another --out folder, or GPSVIZ_DATA)",
    errno.EROFS: "the file system is read-only: choose a writable folder (--out, or GPSVIZ_DATA for caches)",
    errno.EACCES: "you may not write there: choose a folder you own (--out, or GPSVIZ_DATA for caches)",
    errno.EPERM: "you may not write there: choose a folder you own (--out, or GPSVIZ_DATA for caches)",
    errno.ENAMETOOLONG: "choose a shorter --out folder name (file names are limited to 255 bytes)",
    errno.ENOTDIR: "a file stands where a folder is needed: choose another --out folder",
    errno.EEXIST: "a file stands where a folder is needed: choose another --out folder",
}


def write_error(path: str | os.PathLike, e: OSError, existed: bool | None = None) -> WriteError:
    """The :class:`WriteError` for an ``OSError`` met while writing ``path``: file, cause, what to do."""
    cause = os.strerror(e.errno).lower() if e.errno else (e.strerror or str(e) or type(e).__name__)
    advice = _WRITE_ADVICE.get(e.errno, "check the folder and the free space, or write elsewhere (another --out)")
    kept = "" if existed is None else "; the previous file is untouched" if existed else "; nothing was written"
    return WriteError(f"cannot write {path}: {cause}; {advice}{kept}", e.errno, str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename (never a half-written file).

    Any ``OSError`` (disk full, read-only file system, name too long, permission) becomes a :class:`WriteError`
    naming the file, the cause and what to do; the temp file is removed and the previous ``path`` is untouched."""
    path = Path(path)
    try:
        existed = path.exists()
    except OSError:
        existed = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the temp name stays short enough for the file system even when path's own name is near the limit
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")
    except OSError as e:
        raise write_error(path, e, existed) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise write_error(path, e, existed) from e
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON-dump ``obj`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically: temp file in the same folder, fsync, rename."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def hash_tensor(h: Any, t: torch.Tensor, chunk_bytes: int = 16 * 2**20) -> None:
    """Feed the shape, dtype and every byte of ``t`` to the hashlib object ``h``, a chunk of rows at a time (no
    full copy of a large or GPU tensor)."""
    t = t.detach()
    h.update(f"{tuple(t.shape)}{t.dtype};".encode())
    if t.ndim == 0 or t.shape[0] == 0:
        h.update(np.ascontiguousarray(t.cpu().numpy()).tobytes())
        return
    rows = max(1, chunk_bytes // max(1, t[0].numel() * t.element_size()))
    for s in range(0, t.shape[0], rows):
        h.update(np.ascontiguousarray(t[s:s + rows].cpu().numpy()).data)


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-1 (hex) over every byte of ``tensors``: tensors that differ in one element get different digests, however
    large they are (about 1 GB/s: 0.1–0.2 s for 50,000 32×32 RGB images)."""
    h = hashlib.sha1()
    for t in tensors:
        hash_tensor(h, torch.as_tensor(t))
    return h.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of the SHA-1 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()[:16]


def project_root() -> Path | None:
    """The gpsviz checkout containing the current folder (it holds pyproject.toml and gpsviz/), if any."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "gpsviz" / "__init__.py").is_file():
            return p
    return None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$GPSVIZ_DATA`` if set, else ``data/`` of the checkout the
    current folder lies in (so notebooks under notebooks/ share it), else ``./data``."""
    if root is not None:
        return Path(root)
    if os.environ.get("GPSVIZ_DATA"):
        return Path(os.environ["GPSVIZ_DATA"])
    top = project_root()
    return (top / "data") if top is not None else Path("data")


def smoke_mode() -> bool:
    """True when ``GPSVIZ_SMOKE`` is set to a non-empty value other than 0 (notebooks run in ~1 minute)."""
    return os.environ.get("GPSVIZ_SMOKE", "") not in ("", "0", "false", "False")


def source_of(obj: Any, max_lines: int | None = None) -> str:
    """The source code of a function, class or method (``inspect.getsource``, dedented), e.g. the loss a notebook
    teaches; ``max_lines`` keeps the first lines and says how many were left out. An object without Python
    source (a builtin, a C extension) is a ConfigError naming it."""
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError) as e:
        raise ConfigError(f"source_of: {getattr(obj, '__qualname__', obj)!r} has no Python source ({e})") from None
    lines = textwrap.dedent(text).rstrip().splitlines()
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines] + [f"# … {len(lines) - max_lines} more lines ({inspect.getsourcefile(obj)})"]
    return "\n".join(lines)


def show_source(*objs: Any, max_lines: int | None = None) -> Any:
    """Show the source of each object in a notebook, highlighted, under its dotted name and file — so a student
    reads the ingredient (the loss, the sampler) beside its result. Returns the IPython Markdown object (displayed
    when it is a cell's last value; outside IPython, print its ``.data``)."""
    from IPython.display import Markdown  # only where a notebook shows it

    parts = []
    for obj in objs:
        name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
        where = Path(inspect.getsourcefile(obj) or "?")
        here = project_root()
        shown = where.relative_to(here) if here is not None and where.is_relative_to(here) else where.name
        parts.append(f"**`{name}`** — `{shown}`\n\n```python\n{source_of(obj, max_lines)}\n```")
    return Markdown("\n\n".join(parts))


def smoke_banner(smoke: bool | None = None, what: str = "the numbers below") -> Any:
    """A notebook's on-screen warning in smoke mode (``smoke`` None reads :func:`smoke_mode`): ``what`` came from
    tiny runs of one epoch and are noise, not the lesson; an empty Markdown object in teach mode."""
    from IPython.display import Markdown  # only where a notebook shows it

    if not (smoke_mode() if smoke is None else smoke):
        return Markdown("")
    return Markdown(f"> **Smoke mode** (`GPSVIZ_SMOKE=1`): {what} come from tiny runs (a few hundred images, one "
                    "epoch). They are noise: a floor may beat a method and the ceiling may sit below it. Run the "
                    "notebook without `GPSVIZ_SMOKE` (teach mode) before reading anything into them.")


def read_json(path: str | os.PathLike, unreadable: Any = None) -> Any:
    """The JSON in the file ``path``: None when it is missing, ``unreadable`` when it cannot be read or parsed
    (truncated, not UTF-8, a directory, no permission)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):                  # ValueError covers JSONDecodeError and UnicodeDecodeError
        return unreadable


def read_json_cache(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON cache (a dict written by gpsviz): None when it is missing or unusable (truncated, hand-edited,
    not a JSON object), which the caller treats as a cache miss and recomputes; one line says so."""
    data = read_json(path, unreadable=[])
    if data is None:
        return None
    if not isinstance(data, dict):
        print(f"({path} is unreadable (truncated or hand-edited); recomputing it)")
        return None
    return data


def read_json_file(path: str | os.PathLike, what: str, hint: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object a user asked for (``what``: e.g. "the run's results"), with ``keys``: a
    :class:`~gpsviz.errors.DataError` naming the file and saying ``hint`` (what to do) when it is missing,
    unreadable, not a JSON object or lacks one of ``keys``."""
    data = read_json(path, unreadable=[])
    if data is None:
        raise DataError(f"{path} ({what}) does not exist; {hint}")
    if not isinstance(data, dict):
        raise DataError(f"{path} ({what}) is unreadable (truncated, hand-edited or not JSON); {hint}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise DataError(f"{path} ({what}) has no {', '.join(map(repr, missing))} entry; {hint}")
    return data
