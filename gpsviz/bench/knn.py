"""Benchmark: exact k-NN with :func:`gpsviz.knn.knn_search` (faiss, batched) against scikit-learn's brute force.

Both search the k=10 nearest neighbours of every row of the same clustered float32 vectors (20,000 × 512 by
default: a prior embedding of a CIFAR-sized training set), timed in one run on this machine's CPU; the index sets
must agree (recall ≥ 0.99, ties aside). Run ``python -m gpsviz.bench.knn`` (or ``python -m gpsviz bench knn``);
the last line printed is ``knn_speedup_vs_sklearn=<ratio>``.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from gpsviz.knn import HAVE_FAISS, knn_search, recall_at_k

__all__ = ["clustered_vectors", "run", "main"]


def clustered_vectors(n: int = 20000, dim: int = 512, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """Random but clustered float32 vectors N×dim: Gaussian clusters (centre spread 1, within-cluster 0.5)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, size=n)
    return (centres[which] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)).astype(np.float32)


def _best_time(fn: Any, repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(n: int = 20000, dim: int = 512, k: int = 10, repeats: int = 1, seed: int = 0) -> dict[str, Any]:
    """Time both searches (best of ``repeats``); returns seconds, recall of gpsviz vs sklearn and the ratio."""
    from sklearn.neighbors import NearestNeighbors

    x = clustered_vectors(n, dim, seed=seed)
    knn_search(x[:512], x[:2048], k)                                       # warm-up (thread pools, BLAS)
    t_gps, (_, idx_gps) = _best_time(lambda: knn_search(x, x, k), repeats)

    def sk() -> np.ndarray:
        return NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors(x, return_distance=False)

    t_sk, idx_sk = _best_time(sk, repeats)
    recall = recall_at_k(idx_gps, torch.from_numpy(np.asarray(idx_sk)))
    return {"n": n, "dim": dim, "k": k, "repeats": repeats, "gpsviz_s": t_gps, "sklearn_s": t_sk,
            "recall": recall, "speedup": t_sk / t_gps, "engine": "faiss" if HAVE_FAISS else "torch",
            "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    """Print a small table and, last, ``knn_speedup_vs_sklearn=<ratio>``; exit status 1 if recall < 0.99."""
    ap = argparse.ArgumentParser(prog="python -m gpsviz.bench.knn", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="vectors (queries = database)")
    ap.add_argument("--dim", type=int, default=512, help="dimension")
    ap.add_argument("--k", type=int, default=10, help="neighbours per query")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per method (best is kept)")
    args, _ = ap.parse_known_args(argv)        # tolerate `python -m gpsviz bench knn` putting its words in argv
    r = run(n=args.n, dim=args.dim, k=args.k, repeats=args.repeats)
    print(f"k-NN benchmark: exact k={r['k']} search of {r['n']} x {r['dim']} clustered float32 vectors against "
          f"themselves, CPU, {r['threads']} threads, best of {r['repeats']}")
    print(f"{'method':<46}{'seconds':>10}{'recall':>9}")
    print(f"{'gpsviz knn_search (' + r['engine'] + ' flat, batched)':<46}{r['gpsviz_s']:>10.2f}{r['recall']:>9.4f}")
    print(f"{'sklearn NearestNeighbors(brute).kneighbors':<46}{r['sklearn_s']:>10.2f}{1.0:>9.4f}")
    print(f"knn_speedup_vs_sklearn={r['speedup']:.2f}")
    return 0 if r["recall"] >= 0.99 else 1


if __name__ == "__main__":
    raise SystemExit(main())
