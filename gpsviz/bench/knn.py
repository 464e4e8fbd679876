"""Benchmark: exact k-NN with :func:`gpsviz.knn.knn_search`, per backend, against the GEMM bound and scikit-learn.

Every method searches the k=10 nearest neighbours of every row of the same clustered float32 vectors (20,000 × 512
by default: a prior embedding of a CIFAR-sized training set) among all rows, timed in one run on this machine's CPU:

* ``knn_search`` itself with ``backend="auto"`` (what users run), ``"torch"`` and ``"faiss"`` (when installed);
* the **GEMM bound**: only the query × database matrix product those searches cannot avoid (Q×D times D×N, float32),
  the faster of one product into a preallocated Q×N matrix (when that is ≤ 2 GiB) and the products in
  ``knn_search``'s own query blocks into one reused block, with torch's BLAS — the floor of the torch engine
  (faiss brings its own BLAS, which may be faster or slower);
* scikit-learn's exact ``NearestNeighbors(algorithm="brute").kneighbors`` (when installed).

For a search this big ``backend="auto"`` first probes both exact engines on this CPU (once per process, see
:func:`gpsviz.knn.pick_backend`); the probe runs before the timings and is printed apart. Each row prints the
search time, ``GEMM bound / search time`` (1 would be a free top-k; the auto backend should
reach ≥ 0.5) and ``scikit-learn time / search time``; the index sets must agree with scikit-learn's (recall ≥ 0.99,
ties aside). Run ``python -m gpsviz bench knn`` (the defaults) or ``python -m gpsviz.bench.knn`` with options,
e.g. ``--size 20000x512 --k 10 --repeats 3``; the last two lines printed are ``knn_gemm_bound_ratio=<ratio>`` and
``knn_speedup_vs_sklearn=<ratio>``, both for the auto backend.
"""
from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gpsviz.knn import (
    HAVE_FAISS,
    MEASURE_ABOVE,
    block_plan,
    knn_search,
    measured_exact_engine,
    pick_backend,
    recall_at_k,
)

__all__ = ["clustered_vectors", "gemm_bound", "main", "run"]

#: largest one-shot Q×N product the GEMM bound also times (bytes)
ONE_SHOT_BYTES = 2 * 2**30


def clustered_vectors(n: int = 20000, dim: int = 512, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """Random but clustered float32 vectors N×dim: Gaussian clusters (centre spread 1, within-cluster 0.5)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, size=n)
    return (centres[which] + 0.5 * rng.normal(size=(n, dim)).astype(np.float32)).astype(np.float32)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def gemm_bound(q: torch.Tensor, db: torch.Tensor) -> Callable[[], float]:
    """A function timing (seconds, best of its two variants) the bare float32 products ``q @ db.T``.

    Buffers are allocated and touched here, outside the timing: the bound is the arithmetic alone.
    """
    rows, cols = block_plan(q.shape[0], db.shape[0])
    block = torch.zeros(rows * cols)
    full = torch.zeros(q.shape[0], db.shape[0]) if 4 * q.shape[0] * db.shape[0] <= ONE_SHOT_BYTES else None

    def blocked() -> None:
        for s in range(0, q.shape[0], rows):
            r = min(rows, q.shape[0] - s)
            for c in range(0, db.shape[0], cols):
                w = min(cols, db.shape[0] - c)
                torch.mm(q[s:s + r], db[c:c + w].T, out=block[: r * w].view(r, w))

    def once() -> float:
        t = _timed(blocked)[0]
        if full is not None:
            t = min(t, _timed(lambda: torch.mm(q, db.T, out=full))[0])
        return t

    return once


def run(n: int = 20000, dim: int = 512, k: int = 10, repeats: int = 1, seed: int = 0,
        backends: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Time every method (best of ``repeats``, methods interleaved in each round so that load changes hit all).

    Returns ``{"n", "dim", "k", "repeats", "threads", "auto_engine", "auto_probe" (probe seconds per engine, or
    None when auto did not measure), "auto_pick_s", "gemm_s", "sklearn_s", "rows": [{"method", "seconds",
    "recall"}, ...], "gemm_ratio", "speedup"}`` (ratios of the auto backend).
    """
    try:
        from sklearn.neighbors import NearestNeighbors
    except ImportError:  # pragma: no cover - scikit-learn is a test dependency
        NearestNeighbors = None
    if backends is None:
        backends = ("auto", "torch") + (("faiss",) if HAVE_FAISS else ())
    x = clustered_vectors(n, dim, seed=seed)
    xt = torch.from_numpy(x)
    for b in backends:                                                     # warm-up (thread pools, BLAS)
        knn_search(x[:512], x[:2048], k, backend=b)
    # auto's one-off choice for a search of this size (for a big one: a probe of both engines, once per
    # process, which the first such knn_search call would otherwise pay): timed apart, as a warm-up
    t_pick, auto_engine = _timed(lambda: pick_backend("flat", n_queries=n, n_database=n, dim=dim))
    measured = HAVE_FAISS and n * n * dim >= MEASURE_ABOVE
    probe = measured_exact_engine(dim)[1] if measured else None
    methods: dict[str, Callable[[], Any]] = {f"backend={b}": (lambda b=b: knn_search(x, x, k, backend=b)[1])
                                             for b in backends}
    if NearestNeighbors is not None:
        methods["sklearn"] = lambda: torch.from_numpy(np.asarray(
            NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors(x, return_distance=False)))
    gemm = gemm_bound(xt, xt)
    best = {m: float("inf") for m in methods}
    found: dict[str, torch.Tensor] = {}
    gemm_s = float("inf")
    for _ in range(max(1, repeats)):
        gemm_s = min(gemm_s, gemm())
        for m, fn in methods.items():
            t, found[m] = _timed(fn)
            best[m] = min(best[m], t)
    ref = found.get("sklearn", found.get("backend=torch", next(iter(found.values()))))
    rows = [{"method": m, "seconds": best[m], "recall": recall_at_k(found[m], ref)} for m in methods]
    sk = best.get("sklearn", float("nan"))
    auto = best.get("backend=auto", float("nan"))
    return {"n": n, "dim": dim, "k": k, "repeats": repeats, "threads": torch.get_num_threads(),
            "auto_engine": auto_engine, "auto_probe": probe, "auto_pick_s": t_pick,
            "gemm_s": gemm_s, "sklearn_s": sk, "rows": rows,
            "gemm_ratio": gemm_s / auto, "speedup": sk / auto}


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[x×X*]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"size must look like 20000x512 (vectors x dimension), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def main(argv: list[str] | None = None) -> int:
    """Print a table and, last, the auto backend's two ratios; exit status 1 if a recall is < 0.99."""
    ap = argparse.ArgumentParser(prog="python -m gpsviz.bench.knn", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="vectors (queries = database)")
    ap.add_argument("--dim", type=int, default=512, help="dimension")
    ap.add_argument("--size", type=_size, default=None, help="vectors x dimension, e.g. 20000x512 (overrides --n/--dim)")
    ap.add_argument("--k", type=int, default=10, help="neighbours per query")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per method (best is kept)")
    ap.add_argument("--backends", default=None,
                    help="comma-separated knn_search backends to time (default: auto,torch and faiss if installed)")
    args, _ = ap.parse_known_args(argv)        # tolerate `python -m gpsviz bench knn` putting its words in argv
    n, dim = args.size if args.size else (args.n, args.dim)
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip()) if args.backends else None
    r = run(n=n, dim=dim, k=args.k, repeats=args.repeats, backends=backends)
    print(f"k-NN benchmark: exact k={r['k']} search of {r['n']} x {r['dim']} clustered float32 vectors against "
          f"themselves, CPU, {r['threads']} threads, best of {r['repeats']}; backend=auto runs {r['auto_engine']}")
    print(f"{'method':<50}{'seconds':>9}{'gemm/search':>13}{'sklearn/search':>16}{'recall':>9}")
    label = {"backend=auto": f"gpsviz knn_search backend=auto ({r['auto_engine']})",
             "backend=torch": "gpsviz knn_search backend=torch (GEMM + topk)",
             "backend=faiss": "gpsviz knn_search backend=faiss (flat)",
             "sklearn": "sklearn NearestNeighbors(brute).kneighbors"}
    for row in r["rows"]:
        t = row["seconds"]
        print(f"{label.get(row['method'], row['method']):<50}{t:>9.2f}{r['gemm_s'] / t:>13.2f}"
              f"{r['sklearn_s'] / t:>16.2f}{row['recall']:>9.4f}")
    print(f"{'GEMM bound (query x database float32 matmul only)':<50}{r['gemm_s']:>9.2f}{1.0:>13.2f}"
          f"{r['sklearn_s'] / r['gemm_s']:>16.2f}{'-':>9}")
    if r["auto_probe"]:
        p = r["auto_probe"]
        print(f"auto's one-off probe of both engines on this CPU ({r['auto_pick_s']:.2f} s, before the timings): "
              f"torch {p['torch']:.3f} s, faiss flat {p['faiss']:.3f} s -> {r['auto_engine']}")
    print(f"knn_gemm_bound_ratio={r['gemm_ratio']:.2f}")
    print(f"knn_speedup_vs_sklearn={r['speedup']:.2f}")
    return 0 if all(row["recall"] >= 0.99 for row in r["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
