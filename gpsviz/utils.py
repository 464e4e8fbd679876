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


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` -> :func:`default_device`; anything else -> ``torch.device(device)``."""
    if device is None or device == "auto":
        return default_device()
    return torch.device(device)


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
