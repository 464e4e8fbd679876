"""k-nearest-neighbour search for prior embeddings, probes and diagnostics.

One function, :func:`knn_search`, with two interchangeable engines:

* **faiss** (default when importable): ``IndexFlatL2`` on the *unnormalised* vectors, i.e. exact squared
  Euclidean distance, as in the GPS-SSL reference; ``IndexFlatIP`` on L2-normalised vectors for the cosine
  metric; ``IndexIVFFlat`` / ``IndexHNSWFlat`` for approximate search over millions of images.
* **torch** (fallback when faiss is missing, or when a non-CPU ``device`` is asked for): the same exact
  distances from matrix products, query batch by query batch, with ``torch.topk``.

Queries are processed in batches, so the full N×N distance matrix is never held in memory: 50,000 × 2,048
float32 vectors need the database (400 MB) plus one ``batch × N`` block.

Example::

    dist, idx = knn_search(emb, emb, k=10, exclude_self=True)   # N×10 squared L2, N×10 row indices
"""
from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import torch

from gpsviz.errors import ConfigError
from gpsviz.utils import resolve_device

try:  # faiss is optional: everything works (more slowly on CPU) without it
    import faiss  # type: ignore

    HAVE_FAISS = True
except Exception:  # pragma: no cover - depends on the environment
    faiss = None
    HAVE_FAISS = False

Metric = Literal["l2", "cosine"]
IndexKind = Literal["flat", "ivf", "hnsw"]
METRICS = ("l2", "cosine")
INDEXES = ("flat", "ivf", "hnsw")
BACKENDS = ("auto", "faiss", "torch")

#: bytes allowed for one ``batch × N`` distance block when ``batch_size`` is not given
BLOCK_BYTES = 128 * 2**20


def _as_float_tensor(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """N×D float32 CPU-or-device tensor from a tensor or array (raises ConfigError on a bad shape)."""
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    if t.ndim != 2:
        raise ConfigError(f"knn_search: {name} must be a 2-d array N×D, got shape {tuple(t.shape)}")
    t = t.detach().float()
    if not torch.isfinite(t).all():
        raise ConfigError(f"knn_search: {name} contains NaN or infinite values; clean the embedding first")
    return t


def _auto_batch(n_database: int, batch_size: int | None) -> int:
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ConfigError(f"knn_search: batch_size must be >= 1, got {batch_size}")
        return int(batch_size)
    return int(max(64, min(16384, BLOCK_BYTES // (4 * max(1, n_database)))))


def _drop_self(dist: torch.Tensor, idx: torch.Tensor, row_ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """From k+1 results per row remove the row's own index (or, if absent because of ties, the last column).

    dist, idx: n×(k+1); row_ids: n (database index of each query). Returns n×k, order otherwise kept.
    """
    remove = idx == row_ids[:, None]
    missing = ~remove.any(dim=1)
    remove[missing, -1] = True
    # stable sort moves the single removed column to the end, keeping the others' order
    order = torch.argsort(remove.to(torch.int8), dim=1, stable=True)[:, :k]
    return dist.gather(1, order), idx.gather(1, order)


def _torch_search(q: torch.Tensor, db: torch.Tensor, k: int, metric: str, exclude_self: bool,
                  batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact search with matrix products, ``batch`` queries at a time. Returns CPU float32 / int64 n×k."""
    db = db.to(device)
    if metric == "cosine":
        db = torch.nn.functional.normalize(db, dim=1)
    db_sq = (db * db).sum(1)                                      # N
    db_t = db.T.contiguous()                                      # D×N
    n = q.shape[0]
    out_d = torch.empty(n, k, dtype=torch.float32)
    out_i = torch.empty(n, k, dtype=torch.int64)
    # one reused b×N block: fresh large allocations page-fault on every batch and dominate the cost
    block = torch.empty(min(batch, n), db.shape[0], dtype=db.dtype, device=device)
    for s in range(0, n, batch):
        qb = q[s:s + batch].to(device)
        d = block[: qb.shape[0]]
        if metric == "cosine":
            qb = torch.nn.functional.normalize(qb, dim=1)
            torch.mm(qb, db_t, out=d)
            d.neg_().add_(1.0)                                    # b×N cosine distance 1 − cos
        else:
            torch.mm(qb, db_t, out=d)
            d.mul_(-2.0).add_(db_sq[None, :]).add_((qb * qb).sum(1)[:, None]).clamp_min_(0.0)  # b×N squared L2
        if exclude_self:
            rows = torch.arange(s, s + qb.shape[0], device=device)
            d[torch.arange(qb.shape[0], device=device), rows] = float("inf")
        vals, ids = torch.topk(d, k, dim=1, largest=False, sorted=True)
        out_d[s:s + qb.shape[0]] = vals.float().cpu()
        out_i[s:s + qb.shape[0]] = ids.cpu()
    return out_d, out_i


def _faiss_index(db: np.ndarray, metric: str, index: str, nlist: int | None, nprobe: int | None,
                 hnsw_m: int, ef_search: int | None, k: int):
    """Build (and train/fill) a faiss index over the database rows ``db`` (N×D float32, C-contiguous)."""
    n, d = db.shape
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if index == "flat":
        ix = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    elif index == "ivf":
        nl = int(nlist) if nlist else max(1, int(round(math.sqrt(n))))
        nl = max(1, min(nl, n // 39 if n >= 39 else 1))      # faiss wants >= 39 training points per list
        quantizer = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
        ix = faiss.IndexIVFFlat(quantizer, d, nl, faiss_metric)
        ix.cp.seed = 1234                                       # deterministic k-means
        train = db if n <= 256 * nl else db[np.random.default_rng(0).choice(n, 256 * nl, replace=False)]
        ix.train(np.ascontiguousarray(train))
        ix.nprobe = int(nprobe) if nprobe else min(nl, max(8, nl // 8))
    else:  # hnsw
        ix = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss_metric)
        ix.hnsw.efSearch = int(ef_search) if ef_search else max(64, 4 * k)
    ix.add(db)
    return ix


def _faiss_search(q: torch.Tensor, db: torch.Tensor, k: int, metric: str, exclude_self: bool, batch: int,
                  index: str, nlist: int | None, nprobe: int | None, hnsw_m: int,
                  ef_search: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    db_np = np.ascontiguousarray(db.cpu().numpy(), dtype=np.float32)
    if metric == "cosine":
        db_np = db_np.copy()
        faiss.normalize_L2(db_np)
    ix = _faiss_index(db_np, metric, index, nlist, nprobe, hnsw_m, ef_search, k)
    kk = k + 1 if exclude_self else k
    n = q.shape[0]
    out_d = torch.empty(n, k, dtype=torch.float32)
    out_i = torch.empty(n, k, dtype=torch.int64)
    for s in range(0, n, batch):
        qb = np.ascontiguousarray(q[s:s + batch].cpu().numpy(), dtype=np.float32)
        if metric == "cosine":
            qb = qb.copy()
            faiss.normalize_L2(qb)
        d, i = ix.search(qb, kk)
        d, i = torch.from_numpy(d), torch.from_numpy(i).long()
        if metric == "cosine":
            d = 1.0 - d
        else:
            d = d.clamp_min(0.0)
        bad = (i < 0).any(dim=1)
        if index != "flat" and bad.any():
            # an approximate index found fewer than kk points for some rows: answer those rows exactly
            rows = torch.nonzero(bad).flatten()
            ed, ei = _torch_search(q[s:s + batch][rows], db, kk, metric, False, batch, torch.device("cpu"))
            d[rows], i[rows] = ed, ei
        if exclude_self:
            d, i = _drop_self(d, i, torch.arange(s, s + qb.shape[0]), k)
        out_d[s:s + qb.shape[0]] = d
        out_i[s:s + qb.shape[0]] = i
    return out_d, out_i


def knn_search(
    queries: torch.Tensor | np.ndarray,
    database: torch.Tensor | np.ndarray | None = None,
    k: int = 10,
    metric: Metric = "l2",
    exclude_self: bool = False,
    batch_size: int | None = None,
    index: IndexKind = "flat",
    device: str | torch.device | None = None,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    hnsw_m: int = 32,
    ef_search: int | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest database rows of every query row.

    Args:
        queries: Q×D float vectors (torch tensor or numpy array).
        database: N×D float vectors; ``None`` means the queries themselves.
        k: neighbours per query (``k <= N``, or ``k <= N - 1`` with ``exclude_self``).
        metric: ``"l2"`` = squared Euclidean distance on the vectors as given (not normalised);
            ``"cosine"`` = cosine distance ``1 - cos`` (inner product of L2-normalised vectors).
        exclude_self: queries are the database (row i of ``queries`` is row i of ``database``); drop each
            query's own row from its result even when other rows are exact duplicates of it.
        batch_size: queries per search call (default: chosen so that one batch×N float32 block is ≤ 128 MB).
        index: ``"flat"`` exact; ``"ivf"`` IVF-Flat (``nlist`` ≈ √N lists, ``nprobe`` visited) or ``"hnsw"``
            (graph, ``hnsw_m`` links, ``ef_search``) for approximate search over very large N.
        device: ``None``/``"cpu"`` use faiss on CPU; a GPU device (``"cuda"``, ``"mps"``, ``"auto"``
            resolving to one) runs the exact torch engine there.
        backend: ``"auto"`` (faiss when importable), ``"faiss"`` or ``"torch"`` (exact; ignores ``index``).
        threads: OpenMP threads faiss may use during this call (default: faiss's own setting).

    Returns:
        ``(distances, indices)``: float32 Q×k (ascending) and int64 Q×k database row indices, on CPU.
    """
    if metric not in METRICS:
        raise ConfigError(f"knn_search: unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    if index not in INDEXES:
        raise ConfigError(f"knn_search: unknown index {index!r}; valid indexes: {', '.join(INDEXES)}")
    if backend not in BACKENDS:
        raise ConfigError(f"knn_search: unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    q = _as_float_tensor(queries, "queries")
    db = q if database is None else _as_float_tensor(database, "database")
    if q.shape[1] != db.shape[1]:
        raise ConfigError(f"knn_search: queries have {q.shape[1]} dimensions but the database has {db.shape[1]}")
    n_db = db.shape[0]
    if exclude_self and q.shape[0] != n_db:
        raise ConfigError("knn_search: exclude_self=True needs the queries to be the database rows "
                          f"(got {q.shape[0]} queries for {n_db} database rows)")
    k_max = n_db - 1 if exclude_self else n_db
    if not 1 <= int(k) <= k_max:
        raise ConfigError(f"knn_search: k must be between 1 and {k_max} for a database of {n_db} rows"
                          f"{' (excluding self)' if exclude_self else ''}, got k={k}")
    k = int(k)
    batch = _auto_batch(n_db, batch_size)

    dev = None if device is None else resolve_device(device)
    use_torch = backend == "torch" or (backend == "auto" and (not HAVE_FAISS or (dev is not None and dev.type != "cpu")))
    if backend == "faiss" and not HAVE_FAISS:
        raise ConfigError("knn_search: backend='faiss' asked for but faiss is not installed "
                          "(pip install faiss-cpu), or use backend='auto'")
    if use_torch:
        if index != "flat":
            warnings.warn(f"knn_search: index={index!r} needs faiss; running the exact torch search instead",
                          stacklevel=2)
        return _torch_search(q, db, k, metric, exclude_self, batch, dev or torch.device("cpu"))
    before = faiss.omp_get_max_threads()
    if threads:
        faiss.omp_set_num_threads(int(threads))
    try:
        return _faiss_search(q, db, k, metric, exclude_self, batch, index, nlist, nprobe, hnsw_m, ef_search)
    finally:
        faiss.omp_set_num_threads(before)


def recall_at_k(approx_indices: torch.Tensor, exact_indices: torch.Tensor) -> float:
    """Share of the exact neighbours (Q×k) that an approximate search (Q×k') also returned, averaged over rows."""
    a, e = torch.as_tensor(approx_indices), torch.as_tensor(exact_indices)
    hits = (a[:, :, None] == e[:, None, :]).any(dim=1).float()   # Q×k: exact neighbour j found?
    return float(hits.mean())
