"""Benchmark: how close ``train()`` gets to what the hardware can do, and the in-memory pipeline vs DataLoader.

1. ``train()`` itself (SimCLR recipe, small CNN + projector, batch 256 of 32×32 RGB images, two views each, the
   machine's best precision/layout as ``precision="auto"`` picks them) is timed per step with a callback, and
   compared, in the same run, with the bare forward + backward + optimiser step of the *same model* (built by
   the same recipe code, same layout and autocast) on a fixed batch of views: no augmentation, no positives,
   no loss beyond a mean, no bookkeeping. Prints last ``train_efficiency_vs_bare_step=<ratio>`` (target ≥ 0.8).
2. Second comparison, as before: gpsviz's batched in-memory pipeline vs torchvision's per-image PIL transforms
   in a ``DataLoader`` with 2 worker processes (``train_speedup_vs_dataloader``).

    python -m gpsviz bench train
"""
from __future__ import annotations

import tempfile
import time

import torch
from PIL import Image
from torchvision import transforms as T

from gpsviz.augment import Augmenter
from gpsviz.config import TrainConfig
from gpsviz.data import ImageDataset, make_shapes
from gpsviz.hardware import autocast, pick_layout, resolve_precision
from gpsviz.models import MLPHead, build_backbone
from gpsviz.objectives import multi_positive_ntxent
from gpsviz.train import train

BATCH = 256


def _model(seed: int = 0):
    torch.manual_seed(seed)
    backbone = build_backbone("small-cnn", in_channels=3)
    return torch.nn.Sequential(backbone, MLPHead(backbone.out_dim, 512, 128))


def _step(model, opt, views: torch.Tensor) -> None:
    b = views.shape[0] // 2
    groups = torch.arange(b).repeat(2)
    loss = multi_positive_ntxent(model(views), groups, temperature=0.2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class _StepTimer:
    """Callback: wall time between consecutive optimiser steps (the whole loop's cost per step)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.views = 0

    def on_step(self, batch, outputs) -> None:
        self.times.append(time.perf_counter())
        self.views = len(batch)

    def on_epoch(self, row) -> None:
        self.times.append(float("nan"))                          # an epoch boundary is not a step interval


def bench_train_loop(images: torch.Tensor, steps: int) -> tuple[float, dict]:
    """views/s of ``train()`` (the loop users run), steady state, and the resolved precision/layout."""

    n = BATCH * (steps + 2)
    ds = ImageDataset(images=images[:n], labels=torch.zeros(n, dtype=torch.long), classes=["x"], name="bench")
    cfg = TrainConfig(recipe="simclr", epochs=1, batch_size=BATCH, eval_every=0, device="cpu", warmup_epochs=0.0)
    timer = _StepTimer()
    with tempfile.TemporaryDirectory() as d:
        run = train(cfg, d, progress=False, data=(ds, ds), callbacks=[timer])
    t = torch.tensor(timer.times[:-1])
    dt = (t[2:] - t[1:-1])                                       # skip the first (warm-up) interval
    dt = dt[torch.isfinite(dt)]
    return timer.views / float(dt.median()), {"model": run.model, "cfg": cfg}


def bench_bare_step(model, cfg, steps: int) -> float:
    """views/s of forward (backbone + projector) + backward + AdamW step of ``model`` on a fixed batch, in the
    precision and layout the loop used."""
    device = torch.device("cpu")
    dtype = resolve_precision(cfg.precision, device)
    x = torch.randn(2 * BATCH, 3, 32, 32)
    if pick_layout(device, dtype, cfg.channels_last):
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with autocast(device, dtype):
            loss = model.projector(model.backbone(x)).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return 2 * BATCH / float(torch.tensor(times[1:]).median())


def bench_gpsviz(images: torch.Tensor, steps: int) -> tuple[float, float]:
    """(images/s, share of step time in augmentation) for the in-memory batched pipeline."""
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    aug = Augmenter("simclr")                                    # the recipe the PIL pipeline makes
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(images.shape[0], generator=g)
    aug_t = total_t = 0.0
    for s in range(steps + 1):                                   # step 0 is warm-up, not timed
        t0 = time.perf_counter()
        idx = perm[(s * BATCH) % (images.shape[0] - BATCH):][:BATCH]
        x = images[idx]
        views, _ = aug(torch.cat([x, x]), generator=g)
        t1 = time.perf_counter()
        _step(model, opt, views)
        t2 = time.perf_counter()
        if s > 0:
            aug_t += t1 - t0
            total_t += t2 - t0
    return steps * BATCH / total_t, aug_t / total_t


class _PilPairs(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, transform) -> None:
        self.pils = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pils)

    def __getitem__(self, i: int):
        im = self.pils[i]
        return self.transform(im), self.transform(im)


def bench_dataloader(images: torch.Tensor, steps: int, workers: int = 2) -> float:
    """images/s for torchvision PIL transforms in a DataLoader with ``workers`` processes."""
    size = images.shape[-1]
    tf = T.Compose([
        T.RandomResizedCrop(size, scale=(0.08, 1.0)), T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
        T.RandomApply([T.GaussianBlur(3, (0.1, 2.0))], p=0.5), T.ToTensor(), T.Normalize([0.5] * 3, [0.25] * 3)])
    loader = torch.utils.data.DataLoader(_PilPairs(images, tf), batch_size=BATCH, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    done, t0 = -1, 0.0
    while done < steps:
        for v1, v2 in loader:
            if done == 0:
                t0 = time.perf_counter()                         # after the warm-up batch (workers started)
            _step(model, opt, torch.cat([v1, v2]))
            done += 1
            if done >= steps:
                break
    return steps * BATCH / (time.perf_counter() - t0)


def main(steps: int = 12) -> dict[str, float]:
    images = make_shapes(BATCH * (steps + 2), seed=0).images
    dtype = resolve_precision("auto", torch.device("cpu"))
    print(f"SimCLR training, small CNN + projector, batch {BATCH} (2 views), 32×32 RGB, {steps} timed steps, "
          f"{torch.get_num_threads()} torch threads, precision auto → {dtype or torch.float32}")
    slow = bench_dataloader(images, steps)
    fast, _ = bench_gpsviz(images, steps)
    loops, bares = [], []
    for _ in range(2):                       # interleaved, best of two each: other jobs on the machine slow either
        loop, made = bench_train_loop(images, steps)
        loops.append(loop)
        bares.append(bench_bare_step(made["model"], made["cfg"], steps))
    loop, bare = max(loops), max(bares)
    print(f"{'gpsviz in-memory batched (fp32 step)':<46}{fast * 2:10.1f} views/s")
    print(f"{'torchvision PIL + DataLoader(2 workers)':<46}{slow * 2:10.1f} views/s")
    print(f"train_speedup_vs_dataloader={fast / slow:.2f}")
    print(f"{'train() (recipe simclr, auto precision)':<46}{loop:10.1f} views/s")
    print(f"{'bare forward+backward+AdamW, same model':<46}{bare:10.1f} views/s")
    print(f"train_efficiency_vs_bare_step={loop / bare:.2f}")
    return {"train": loop, "bare": bare, "gpsviz": fast, "dataloader": slow}


if __name__ == "__main__":
    main()
