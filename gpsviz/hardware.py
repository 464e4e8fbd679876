"""What the machine can do fast: the autocast precision and the memory layout the training loop uses.

Measured on a 2-core AMD EPYC with AVX-512-BF16 (no AMX), small CNN + projector, batch 512, forward + backward +
SGD (under load from other jobs): fp32 591 views/s, channels_last 630, bf16 527, bf16 + channels_last 1,159.
So on CPU bf16 pays only together with channels_last, and ``auto`` picks both where the CPU has native bf16
matrix instructions (AMX or AVX-512-BF16); CUDA always gets both.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from gpsviz.errors import ConfigError

__all__ = ["cpu_has_native_bf16", "resolve_precision", "pick_layout", "autocast"]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU reports AMX-BF16 or AVX-512-BF16 (Linux ``/proc/cpuinfo``); False elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """``auto | fp32 | bf16 | fp16`` on ``device`` → the autocast dtype, or None for plain float32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ConfigError(f"precision='fp16' needs a CUDA device (got {device.type}); use bf16 or fp32")
        return torch.float16
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    raise ConfigError(f"precision={precision!r} is unknown; choose auto, fp32, bf16 or fp16")


def pick_layout(device: torch.device, dtype: torch.dtype | None, channels_last: bool | None) -> bool:
    """Whether to train in channels_last: the user's choice, else CUDA always and CPU with bf16 autocast."""
    if channels_last is not None:
        return bool(channels_last)
    return device.type == "cuda" or (device.type == "cpu" and dtype == torch.bfloat16)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """An autocast region for ``dtype`` (None = no autocast)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
