"""Benchmark: gpsviz's batched ``Augmenter("simclr")`` against torchvision's per-image PIL pipeline.

Both make SimCLR views of 32×32 RGB images on this machine's CPU (torch's default thread count), timed in the
same run: gpsviz on uint8 batches of ``batch`` images, torchvision image by image on PIL images with the same
recipe (``RandomResizedCrop(32, scale=(0.08, 1))``, flip, ``ColorJitter(.4, .4, .4, .1)`` p 0.8, grayscale p 0.2,
``GaussianBlur(3, (0.1, 2.0))`` p 0.5, ``ToTensor``, ``Normalize``). Run ``python -m gpsviz.bench.augment``
(or ``python -m gpsviz bench augment``); the last line printed is
``augment_speedup_vs_torchvision_pil=<ratio>``.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch
from PIL import Image
from torchvision import transforms as T

from gpsviz.augment import Augmenter

__all__ = ["run", "main", "torchvision_pil_pipeline"]


def torchvision_pil_pipeline(size: int = 32, mean: float = 0.5, std: float = 0.25) -> Any:
    """The usual per-image torchvision recipe of SimCLR (the baseline): PIL image → normalised 3×size×size."""
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.08, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(3, sigma=(0.1, 2.0))], p=0.5),
        T.ToTensor(),
        T.Normalize([mean] * 3, [std] * 3),
    ])


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(n: int = 4096, batch: int = 512, repeats: int = 3, pil_n: int = 256, size: int = 32,
        seed: int = 0, pil_chunk: int = 64) -> dict[str, Any]:
    """Time both pipelines; returns views/s of each, their ratio and the settings.

    ``repeats`` rounds, each making ``n`` views with gpsviz (uint8 batches of ``batch``) and then ``pil_n`` views
    with torchvision (PIL images, in chunks of ``pil_chunk``), after one warm-up of each. Every batch and chunk
    is timed on its own and a pipeline's rate is that of its fastest batch/chunk: interleaving the two and
    keeping the least disturbed measurement makes the ratio robust to load from other processes on a small
    shared machine (medians are returned too).
    """
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    aug = Augmenter("simclr")                                 # the recipe torchvision_pil_pipeline makes
    tf = torchvision_pil_pipeline(size)
    pils = [Image.fromarray(a.numpy()) for a in images[:pil_n].permute(0, 2, 3, 1)]
    torch.manual_seed(seed)
    aug(images[:batch], generator=g)                                      # warm-ups
    [tf(p) for p in pils[:pil_chunk]]

    gps_rates: list[float] = []
    pil_rates: list[float] = []
    for _ in range(repeats):
        for i in range(0, n, batch):
            chunk = images[i:i + batch]
            gps_rates.append(chunk.shape[0] / _timed(lambda: aug(chunk, generator=g)))
        for i in range(0, len(pils), pil_chunk):
            part = pils[i:i + pil_chunk]
            pil_rates.append(len(part) / _timed(lambda: torch.stack([tf(p) for p in part])))
    gps_rates.sort()
    pil_rates.sort()
    return {
        "gpsviz_views_per_s": gps_rates[-1],
        "torchvision_pil_views_per_s": pil_rates[-1],
        "speedup": gps_rates[-1] / pil_rates[-1],
        "gpsviz_median_views_per_s": gps_rates[len(gps_rates) // 2],
        "torchvision_pil_median_views_per_s": pil_rates[len(pil_rates) // 2],
        "n": n, "batch": batch, "pil_n": len(pils), "repeats": repeats, "size": size,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    """Print a small table and, last, ``augment_speedup_vs_torchvision_pil=<ratio>``.

    ``argv``: command-line options (``--n``, ``--batch``, ``--pil-n``, ``--repeats``); None = the defaults
    (``python -m gpsviz bench augment`` calls ``main()``)."""
    ap = argparse.ArgumentParser(prog="python -m gpsviz.bench.augment", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4096, help="views made by gpsviz per timed run")
    ap.add_argument("--batch", type=int, default=512, help="gpsviz batch size")
    ap.add_argument("--pil-n", type=int, default=256, help="views made by torchvision per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds")
    args = ap.parse_args([] if argv is None else argv)
    r = run(n=args.n, batch=args.batch, repeats=args.repeats, pil_n=args.pil_n)
    print(f"augmentation benchmark: SimCLR ('simclr' preset) views of {r['size']}x{r['size']} RGB, CPU, "
          f"{r['threads']} torch threads, {r['repeats']} interleaved rounds (best / median batch)")
    print(f"{'pipeline':<44}{'views/s best':>14}{'median':>10}")
    print(f"{'gpsviz Augmenter (batch ' + str(r['batch']) + ', uint8)':<44}"
          f"{r['gpsviz_views_per_s']:>14.0f}{r['gpsviz_median_views_per_s']:>10.0f}")
    print(f"{'torchvision transforms, per PIL image':<44}"
          f"{r['torchvision_pil_views_per_s']:>14.0f}{r['torchvision_pil_median_views_per_s']:>10.0f}")
    print(f"augment_speedup_vs_torchvision_pil={r['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
