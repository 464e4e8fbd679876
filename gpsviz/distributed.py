"""Every cross-process step of training: torchrun + DistributedDataParallel, proven equal to one process.

    torchrun --nproc_per_node=2 -m gpsviz train --recipe gps-simclr ...     # CPU: gloo, CUDA: NCCL

How a global batch of B anchors is shared (``world`` processes, B divisible by ``world``):
- every process draws the same global anchor permutation, the same view plan (so group and instance ids are
  global) and the same augmentation parameters for all views, from one seeded generator;
- process r keeps the instances ``[r·B/world, (r+1)·B/world)`` and makes only their views;
- contrastive objectives gather every process's embeddings **with gradient** (:func:`gather_views`); each
  process's loss is the mean over its own views, and DDP's gradient average makes it the global mean;
- rank 0 alone writes checkpoints, history, config and results (:func:`is_main`).

On one process every function here is an identity, so the loop calls them unconditionally.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Sequence, TextIO

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import parse_args, run

from gpsviz.errors import ConfigError

__all__ = ["is_distributed", "rank", "world_size", "is_main", "setup", "gather_views", "gather_rows",
           "all_reduce_sum", "all_reduce_max", "local_rows",
           "mean_over_processes", "share", "barrier", "broadcast_object", "launch_rank", "report_user_error"]


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """The process that writes files and shows progress (rank 0; the only process without torchrun)."""
    return rank() == 0


def launch_rank() -> int:
    """This process's rank as the launcher set it (``RANK``, else ``LOCAL_RANK``; 0 without torchrun), known
    before any process group exists — a config error stops every process before training starts."""
    for var in ("RANK", "LOCAL_RANK"):
        v = os.environ.get(var, "").strip()
        if v.isdigit():
            return int(v)
    return 0


def report_user_error(message: str, file: TextIO | None = None) -> None:
    """Print a user error's one line (``error: …``) once: on rank 0 only under torchrun, where every process meets
    the same bad option or file; the other ranks stop with the same exit status, silently.

    torchrun itself then reports that its workers failed: a launcher that sees a non-zero exit status always
    raises ``ChildFailedError`` and prints its traceback and failure table (the child cannot prevent it without
    pretending success); the table's root cause reads ``exitcode : 2``."""
    if launch_rank() == 0:
        print(message, file=file if file is not None else sys.stderr, flush=True)


def launch(argv: Sequence[str], nproc: int) -> int:
    """Start ``python -m gpsviz <argv>`` on ``nproc`` local processes, as ``torchrun --standalone
    --nproc_per_node=N`` would, and return their exit status without torchrun's own traceback and failure table:
    a user error appears as the one line rank 0 printed (exit 2), a crash as one line naming the process."""

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    quiet = [logging.getLogger(n) for n in ("torch.distributed.elastic", "torch.distributed.run")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        run(parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "gpsviz", *argv]))
    except ChildFailedError as e:
        rank, failure = min(e.failures.items())
        code = failure.exitcode if isinstance(failure.exitcode, int) else 1
        if code not in (2, 130):                       # 2 / 130: rank 0 has already printed the one line
            print(f"error: training process {rank} of {nproc} failed with exit code {code} (its output is above)",
                  file=sys.stderr)
        return code if code > 0 else 1
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return 0


def setup(device: str) -> str:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1 in the environment), once.

    Backend: NCCL for CUDA, gloo otherwise. Returns the device this process should train on (``cuda:LOCAL_RANK``
    under torchrun with CUDA; ``device`` unchanged otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return device
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or str(device).startswith("cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return "cpu" if device == "auto" else device


def share(n_instances: int) -> slice:
    """This process's share of ``n_instances`` instances (a contiguous block; equal shares required)."""
    w = world_size()
    if n_instances % w:
        raise ConfigError(f"batch_size={n_instances} must be divisible by the number of processes ({w}): the "
                          f"global batch is split evenly (use --batch-size {n_instances - n_instances % w})")
    per = n_instances // w
    return slice(rank() * per, (rank() + 1) * per)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather rows (equal count per process) whose backward returns to each process the *sum* over processes
    of the gradient of its rows (an all-reduce, then its slice: works on gloo, which has no reduce-scatter)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.m, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.m:(ctx.rank + 1) * ctx.m]


def gather_views(z: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather embeddings (M×D, with gradient) and group ids (M) from every process, in rank order.

    Group ids are already global (every process made the same global plan), so they are gathered as they are.
    Single process: returned unchanged."""
    if not is_distributed():
        return z, group_ids
    ids = [torch.empty_like(group_ids) for _ in range(dist.get_world_size())]
    dist.all_gather(ids, group_ids.contiguous())
    return _GatherWithGrad.apply(z), torch.cat(ids)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All processes' rows of ``x`` (equal count each), rank order, without gradient; ``x`` on one process."""
    if not is_distributed():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over processes (no gradient); ``x`` on one process."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y


def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum of ``x`` over processes (no gradient); ``x`` on one process."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.MAX)
    return y


def local_rows(x: torch.Tensor, m: int) -> torch.Tensor:
    """The rows of a gathered tensor (M_all×…) that belong to this process (its ``m`` views, rank order)."""
    if not is_distributed():
        return x
    return x[rank() * m:(rank() + 1) * m]


def mean_over_processes(x: torch.Tensor) -> torch.Tensor:
    """Average a statistic (e.g. a loss for logging) over processes; identity on one process."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every process (e.g. "does the checkpoint exist", decided once)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
