"""Every cross-device step of training lives here, so that torchrun + DistributedDataParallel can be added
without restructuring the loop. Today gpsviz trains on one device and these are identities."""
from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised ``torch.distributed`` process group with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_views(z: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather embeddings (M×D) and group ids (M) from every process, for use as negatives.

    Single process: returned unchanged. (Multi-process training will concatenate with a gradient-carrying
    all-gather and offset the group ids per rank; the loop calls only this function.)
    """
    if not is_distributed():
        return z, group_ids
    raise NotImplementedError("multi-process training is not implemented yet; run on one device")


def local_rows(x: torch.Tensor, m: int) -> torch.Tensor:
    """The rows of a gathered tensor (M_all×…) that belong to this process (its ``m`` views).

    Single process: ``x`` itself (``m`` = M_all)."""
    if not is_distributed():
        return x
    raise NotImplementedError("multi-process training is not implemented yet; run on one device")


def mean_over_processes(x: torch.Tensor) -> torch.Tensor:
    """Average a statistic (e.g. a loss for logging) over processes; identity on one process."""
    if not is_distributed():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()
