"""The prior registry, cache keys and :func:`compute_prior` (the one entry point that computes or loads a prior).

A prior is registered with :func:`register_prior` as ``fn(dataset, opts, root, progress) -> N×D`` plus its
default options and an :class:`~gpsviz.registry.Opt` spec per option; :func:`compute_prior` validates the options
(names, types and ranges: :func:`check_prior_options`, which positive sources also call for their
``prior_options``), looks in the cache
``data_root(root)/priors/<dataset key>/<prior name>-<options hash>.pt`` and otherwise calls ``fn`` and writes the
result atomically (an unreadable cache file is recomputed). The registry knows no prior by name: a prior whose
result depends on more than its options (the ``checkpoint`` prior: the checkpoint file's content) passes a
``fingerprint`` function that adds to its cache key.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from gpsviz.errors import ConfigError
from gpsviz.registry import Opt
from gpsviz.utils import atomic_torch_save, data_root, tensor_digest

log = logging.getLogger("gpsviz.priors")


@dataclass
class PriorSpec:
    """A registered prior: ``fn(dataset, options, root, progress) -> N×D``, its default options and their specs
    (``options``: name → :class:`~gpsviz.registry.Opt`, one per default).

    ``volatile`` options (device, batch size, download) do not change the result and stay out of the cache key;
    ``fingerprint(options) -> dict`` (optional) adds what else the result depends on (e.g. a file's hash).
    """

    fn: Callable[..., torch.Tensor]
    defaults: dict[str, Any]
    volatile: tuple[str, ...] = ("device", "batch_size", "download")
    fingerprint: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    options: dict[str, Opt] | None = None


PRIORS: dict[str, PriorSpec] = {}

#: Specs shared by several priors.
SEED = Opt(int, 0, 2**63 - 1)
BATCH = Opt(int, 1, 65_536, note="images per forward pass")
DEVICE = Opt("device", optional=True, note="None = the fastest available")
LR = Opt(float, 0.0, 10.0, lo_open=True)
CHANNELS = Opt(str, choices=("max", "gray"))


def register_prior(name: str, *, fingerprint: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                   options: dict[str, Opt] | None = None, **defaults: Any) -> Callable:
    """Decorator: register ``fn(dataset, opts, root, progress) -> Tensor N×D`` as prior ``name`` with the
    default options ``defaults``, their specs ``options`` (an :class:`~gpsviz.registry.Opt` per default; a
    prior defined in gpsviz must give one for each) and an optional cache-key ``fingerprint`` (see
    :class:`PriorSpec`)."""
    def deco(fn: Callable) -> Callable:
        specs = dict(options or {})
        if str(getattr(fn, "__module__", "")).split(".")[0] == "gpsviz":
            bad = sorted(set(defaults) ^ set(specs))
            if bad:
                raise ConfigError(f"register prior {name!r}: options and specs differ on {bad}; give an Opt for "
                                  "every default option (options={...})")
        for k, v in defaults.items():                   # the defaults must satisfy their own specs
            if k in specs:
                specs[k].check(f"prior {name!r} (default)", k, v)
        PRIORS[name] = PriorSpec(fn, dict(defaults), fingerprint=fingerprint, options=specs)
        return fn
    return deco


def available_priors() -> list[str]:
    """Names accepted by :func:`compute_prior`."""
    return sorted(PRIORS)


# --------------------------------------------------------------------------------------------- cache keys

def dataset_key(dataset: Any) -> str:
    """``<name>-<split>-n<N>-<C>x<H>x<W>-<hash>``; the hash covers every byte of the images and of the labels,
    so two datasets that differ in one pixel get different keys (SHA-1 at about 1 GB/s: ≈ 0.2 s for 50,000
    32×32 RGB images)."""
    images, n = dataset.images, len(dataset)
    digest = tensor_digest(images, torch.as_tensor(dataset.labels))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(getattr(dataset, "name", "data")))
    c, hh, ww = images.shape[1:]
    return f"{name}-{getattr(dataset, 'split', 'train')}-n{n}-{c}x{hh}x{ww}-{digest[:12]}"


def check_prior_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Check ``options`` of prior ``name`` (names, then values against the prior's specs); return them in normal
    form (bool words parsed, …) without the defaults. ConfigError ``"prior '<name>': <option> must be …"``."""
    if name not in PRIORS:
        raise ConfigError(f"unknown prior {name!r}; valid priors: {', '.join(available_priors())}")
    if not isinstance(options, dict):
        raise ConfigError(f"prior {name!r}: options must be a dict, got {options!r}")
    spec = PRIORS[name]
    bad = sorted(set(options) - set(spec.defaults), key=str)
    if bad:
        raise ConfigError(f"prior {name!r} has no option(s) {bad}; its options (defaults) are {spec.defaults}")
    specs = spec.options or {}
    return {k: specs[k].check(f"prior {name!r}", k, v) if k in specs else v for k, v in options.items()}


def _resolve_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    checked = check_prior_options(name, options)           # raises for an unknown prior
    return {**PRIORS[name].defaults, **checked}


def prior_key(name: str, options: dict[str, Any]) -> str:
    """``<name>-<hash of the result-relevant options>`` (plus the prior's fingerprint, e.g. a checkpoint's hash)."""
    spec = PRIORS[name]
    opts = {k: v for k, v in options.items() if k not in spec.volatile}
    if spec.fingerprint is not None:
        opts.update(spec.fingerprint(options))
    blob = json.dumps(opts, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"


def prior_cache_path(name: str, dataset: Any, root: str | Path | None = None, **options: Any) -> Path:
    """Where :func:`compute_prior` caches prior ``name`` of ``dataset`` with ``options``."""
    opts = _resolve_options(name, options)
    return data_root(root) / "priors" / dataset_key(dataset) / f"{prior_key(name, opts)}.pt"


def compute_prior(name: str, dataset: Any, root: str | Path | None = None, cache: bool = True,
                  progress: bool = True, **options: Any) -> torch.Tensor:
    """Prior embedding of every image of ``dataset`` (an ``ImageDataset``), cached on disk.

    Args:
        name: one of :func:`available_priors`.
        dataset: images uint8 N×C×H×W (+ labels for ``oracle``).
        root: data folder (default ``./data`` or ``$GPSVIZ_DATA``).
        cache: read/write ``data/priors/...``; ``False`` always recomputes and writes nothing.
        progress: tqdm bars for the slow priors.
        options: prior-specific options (unknown ones raise :class:`ConfigError` listing the valid ones).

    Returns:
        float32 N×D on CPU.
    """
    opts = _resolve_options(name, options)
    path = prior_cache_path(name, dataset, root, **options) if cache else None
    if path is not None and path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            emb = blob["embedding"]
            if isinstance(emb, torch.Tensor) and emb.ndim == 2 and emb.shape[0] == len(dataset):
                return emb.float()
            log.warning("prior cache %s has the wrong shape; recomputing", path)
        except Exception as e:  # truncated / corrupt / foreign file: recompute
            log.warning("prior cache %s is unreadable (%s); recomputing", path, e)
    emb = PRIORS[name].fn(dataset, opts, root=root, progress=progress)
    emb = torch.as_tensor(emb).detach().float().cpu().contiguous()
    if emb.ndim != 2 or emb.shape[0] != len(dataset) or not torch.isfinite(emb).all():
        raise RuntimeError(f"prior {name!r} returned a bad embedding of shape {tuple(emb.shape)} (NaN/inf or wrong N)")
    if path is not None:
        atomic_torch_save({"embedding": emb, "prior": name,
                           "options": json.loads(json.dumps(opts, default=str))}, path)
    return emb
