"""Provenance: what produced a run — resolved settings, the machine, the software and the time it took.

A run folder's ``provenance.json`` (also stored in each checkpoint) holds what the config alone cannot say:

    {"precision": "bf16", "channels_last": true, "world_size": 2, "backend": "gloo", "device": "cpu",
     "device_name": "AMD EPYC (avx512)", "torch": "2.14.1", "gpsviz": "0.1.0", "git_commit": "3cd9920…",
     "sessions": [{"start": "2026-12-06T03:40:00", "end": "…", "wall_s": 61.2, "cpu_s": 118.0,
                   "epochs": [0, 3], "resumed": false}]}

One *session* per call of :func:`gpsviz.train.train` (a resumed run has several). ``evaluate_run`` copies the short
form (:func:`summary`) into ``results.json`` so every table row can say what produced it.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

import gpsviz
from gpsviz import distributed as D

__all__ = ["machine", "Session", "summary", "git_commit", "SUMMARY_KEYS"]

#: The keys of the short form kept beside results (one table row each).
SUMMARY_KEYS = ("precision", "channels_last", "world_size", "device", "device_name", "torch", "gpsviz",
                "git_commit")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the gpsviz source tree when it is a git checkout (``+dirty`` when it has changes), else None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """A readable name of the device: the GPU's name, or the CPU model with the kernel level ATen uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        cap = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "?")()
        return f"{_cpu_name()} ({cap})"
    return device.type


def machine(device: torch.device, dtype: torch.dtype | None, channels_last: bool) -> dict[str, Any]:
    """What a run resolved and where it runs: precision and layout, world size and backend, device, versions."""

    backend = torch.distributed.get_backend() if D.is_distributed() else None
    return {"precision": {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype)),
            "channels_last": bool(channels_last), "world_size": D.world_size(), "backend": backend,
            "device": str(device), "device_name": device_name(device), "torch": str(torch.__version__),
            "gpsviz": gpsviz.__version__, "git_commit": git_commit(), "python": platform.python_version(),
            "host": platform.node(), "threads": torch.get_num_threads(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY")}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class Session:
    """The provenance record of one run, with the session of this call open: ``record()`` returns the dict to
    save (after each epoch), with the session's end time, wall and CPU seconds so far."""

    def __init__(self, machine_info: dict[str, Any], earlier: dict[str, Any] | None, start_epoch: int) -> None:
        sessions = list((earlier or {}).get("sessions") or []) if isinstance(earlier, dict) else []
        self.info = dict(machine_info)
        self.sessions = [s for s in sessions if isinstance(s, dict)]
        self.current = {"start": _now(), "end": None, "wall_s": 0.0, "cpu_s": 0.0,
                        "epochs": [int(start_epoch), int(start_epoch)], "resumed": bool(self.sessions),
                        "device": self.info["device"], "world_size": self.info["world_size"]}
        self._t0, self._c0 = time.perf_counter(), time.process_time()

    def record(self, epoch: int) -> dict[str, Any]:
        self.current.update(end=_now(), wall_s=round(time.perf_counter() - self._t0, 2),
                            cpu_s=round(time.process_time() - self._c0, 2))
        self.current["epochs"][1] = int(epoch)
        sessions = self.sessions + [dict(self.current)]
        return {**self.info, "sessions": sessions, "wall_s": round(sum(s.get("wall_s", 0) for s in sessions), 2),
                "cpu_s": round(sum(s.get("cpu_s", 0) for s in sessions), 2)}


def summary(record: dict[str, Any] | None) -> dict[str, Any]:
    """The short form of a provenance record (:data:`SUMMARY_KEYS` plus total wall/CPU seconds); ``{}`` for a
    run made before provenance was recorded."""
    if not isinstance(record, dict):
        return {}
    out = {k: record.get(k) for k in SUMMARY_KEYS}
    out.update(wall_s=record.get("wall_s"), cpu_s=record.get("cpu_s"))
    return out
