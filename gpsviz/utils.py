"""Small shared helpers: device choice, seeding, atomic file writes."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


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
    from gpsviz.errors import ConfigError

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
    from gpsviz.errors import ConfigError

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
    from gpsviz.errors import ConfigError

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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON-dump ``obj`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically: temp file in the same folder, fsync, rename."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


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
