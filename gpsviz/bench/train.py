"""Benchmark: SimCLR training throughput, gpsviz's in-memory batched pipeline vs the usual DataLoader pipeline.

Both sides train the same model (small CNN + projector, NT-Xent, AdamW, batch 256 of 32×32 RGB images, two
views each) in one run on this machine. The usual pipeline is torchvision's per-image PIL transforms in a
``DataLoader`` with 2 worker processes. Prints images/s of each, the share of gpsviz's step time spent in
augmentation, and finally ``train_speedup_vs_dataloader=<ratio>``.

    python -m gpsviz bench train
"""
from __future__ import annotations

import time

import torch

BATCH = 256


def _model(seed: int = 0):
    from gpsviz.models import MLPHead, build_backbone

    torch.manual_seed(seed)
    backbone = build_backbone("small-cnn", in_channels=3)
    return torch.nn.Sequential(backbone, MLPHead(backbone.out_dim, 512, 128))


def _step(model, opt, views: torch.Tensor) -> None:
    from gpsviz.objectives import multi_positive_ntxent

    b = views.shape[0] // 2
    groups = torch.arange(b).repeat(2)
    loss = multi_positive_ntxent(model(views), groups, temperature=0.2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def bench_gpsviz(images: torch.Tensor, steps: int) -> tuple[float, float]:
    """(images/s, share of step time in augmentation) for the in-memory batched pipeline."""
    from gpsviz.augment import Augmenter

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
        from PIL import Image

        self.pils = [Image.fromarray(im.permute(1, 2, 0).numpy()) for im in images]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pils)

    def __getitem__(self, i: int):
        im = self.pils[i]
        return self.transform(im), self.transform(im)


def bench_dataloader(images: torch.Tensor, steps: int, workers: int = 2) -> float:
    """images/s for torchvision PIL transforms in a DataLoader with ``workers`` processes."""
    from torchvision import transforms as T

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
    from gpsviz.data import make_shapes

    images = make_shapes(4096, seed=0).images
    print(f"SimCLR training throughput, small CNN, batch {BATCH}, 32×32 RGB, 2 views, {steps} timed steps, "
          f"{torch.get_num_threads()} torch threads")
    fast, aug_share = bench_gpsviz(images, steps)
    slow = bench_dataloader(images, steps)
    print(f"{'gpsviz in-memory batched':<42}{fast:10.1f} images/s")
    print(f"{'torchvision PIL + DataLoader(2 workers)':<42}{slow:10.1f} images/s")
    print(f"augmentation_share_of_step={aug_share:.3f}")
    print(f"train_speedup_vs_dataloader={fast / slow:.2f}")
    return {"gpsviz": fast, "dataloader": slow, "aug_share": aug_share}


if __name__ == "__main__":
    main()
