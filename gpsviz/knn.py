"""k-nearest-neighbour search for prior embeddings, probes and diagnostics.

One function, :func:`knn_search`, with two interchangeable exact engines (and faiss's approximate indexes):

* **torch**: squared Euclidean or cosine distances as one float32 matrix product (GEMM) per block of
  queries, then ``torch.topk``, on any device. The database is augmented with a column ``-||db||²/2`` (and
  each query with a ``1``) so that the GEMM itself yields ``q·db − ||db||²/2``, whose largest values are the
  nearest rows; the distance is formed for the winners only, so there is no pass over a block besides the
  GEMM and the top-k. Blocks are sized so that one block of scores stays within :data:`BLOCK_BYTES`
  (256 MB); a database too large for that at :data:`MIN_BLOCK_ROWS` query rows is also cut into column
  chunks whose top-k lists are merged.
* **faiss** (optional): ``IndexFlatL2`` / ``IndexFlatIP`` (exact), ``IndexIVFFlat`` / ``IndexHNSWFlat`` for
  approximate search over millions of images.

Both exact engines give the same answer, up to distances that tie within float32 rounding: L2 vectors are
centred on the database mean first (distances are unchanged, the rounding of ``||q||² − 2q·db + ||db||²``
shrinks with the norms), each query keeps :data:`RERANK_EXTRA` candidates beyond ``k``, and a row whose
k-th and (k+1)-th candidates are closer than the rounding bound is re-ranked on distances computed directly
in float64 (so are L2 distances that cancellation left with few digits: exact duplicates are at exactly 0).
Which engine ``backend="auto"`` runs: :func:`pick_backend`. Queries are processed in blocks, so the full N×N
distance matrix is never held in memory: 50,000 × 2,048 float32 vectors need the database (400 MB) plus one
256 MB block.

Example::

    dist, idx = knn_search(emb, emb, k=10, exclude_self=True)   # N×10 squared L2, N×10 row indices
"""
from __future__ import annotations

import contextlib
import math
import time
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

#: bytes allowed for one block of float32 scores (query rows × database columns) in the torch engine
BLOCK_BYTES = 256 * 2**20
#: fewest query rows per block when the budget allows it (fewer make the GEMM inefficient: the database
#: operand is re-packed for every product); a larger database is then cut into column chunks instead
MIN_BLOCK_ROWS = 512
#: most query rows per block
MAX_BLOCK_ROWS = 16384
#: fewest database columns per block when the database is cut into column chunks
MIN_BLOCK_COLS = 1024
#: an L2 distance below this share of ``||q||² + ||db||²`` (centred) is recomputed as ``||q − db||²``: there
#: the GEMM formula has lost digits to cancellation, and exact duplicates must come out as exactly 0
REFINE_BELOW = 2.0**-7
#: rounding bound of a float32 GEMM score, as a share of ``||q||² + ||db||²`` (cosine: of 2): rows whose k-th
#: and (k+1)-th candidates are closer than their bounds are re-ranked on directly computed float64 distances
AMBIGUOUS_BELOW = 2.0**-17
#: candidates beyond k kept per query for that re-ranking
RERANK_EXTRA = 8
#: an exact CPU search of at least this many multiply-adds (queries × database rows × dimension) lets
#: ``backend="auto"`` measure both exact engines on this CPU (once) and run the faster (:func:`pick_backend`)
MEASURE_ABOVE = 10**11
#: faiss is chosen only when its probe time is below this share of the torch engine's
FAISS_MARGIN = 0.9
_MEASURED: dict[tuple, tuple[str, dict[str, float]]] = {}


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
    """Query rows per block: ``batch_size`` if given, else as many as keep a rows × N float32 block within
    :data:`BLOCK_BYTES`, between :data:`MIN_BLOCK_ROWS` and :data:`MAX_BLOCK_ROWS`."""
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ConfigError(f"knn_search: batch_size must be >= 1, got {batch_size}")
        return int(batch_size)
    return int(max(MIN_BLOCK_ROWS, min(MAX_BLOCK_ROWS, BLOCK_BYTES // (4 * max(1, n_database)))))


def _block_cols(rows: int, n_database: int) -> int:
    """Database columns per block for ``rows`` query rows: all of them when rows × N float32 fit in
    :data:`BLOCK_BYTES`, else column chunks of that size (at least :data:`MIN_BLOCK_COLS`)."""
    return int(min(n_database, max(MIN_BLOCK_COLS, BLOCK_BYTES // (4 * max(1, rows)))))


def block_plan(n_queries: int, n_database: int, batch_size: int | None = None) -> tuple[int, int]:
    """``(rows, cols)`` of the score blocks the torch engine computes for this search (one GEMM each)."""
    rows = min(max(1, n_queries), _auto_batch(n_database, batch_size))
    return rows, _block_cols(rows, n_database)


@contextlib.contextmanager
def _threads(threads: int | None):
    """Let torch (intra-op) and faiss (OpenMP) use ``threads`` CPU threads inside the block, then restore."""
    if not threads:
        yield
        return
    torch_before = torch.get_num_threads()
    faiss_before = faiss.omp_get_max_threads() if HAVE_FAISS else None
    torch.set_num_threads(int(threads))
    if HAVE_FAISS:
        faiss.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        if HAVE_FAISS:
            faiss.omp_set_num_threads(faiss_before)


def _probe_shape(dim: int) -> tuple[int, int]:
    """(queries, database rows) of the probe search: 1,024 queries, about 4·10⁹ multiply-adds in all."""
    return 1024, int(max(2048, min(16384, 2**32 // (1024 * max(1, dim)))))


def measure_exact_engines(dim: int, metric: str = "l2", rounds: int = 2) -> dict[str, float]:
    """Seconds (best of ``rounds``, the engines alternating) of an exact k=10 probe search with each engine on
    this CPU, with the current thread settings: 1,024 Gaussian queries against 2,048–16,384 rows of ``dim``
    dimensions (:func:`_probe_shape`). Needs faiss."""
    nq, nd = _probe_shape(dim)
    g = torch.Generator().manual_seed(0)
    db = torch.randn(nd, dim, generator=g)
    q = db[:nq] + 0.1 * torch.randn(nq, dim, generator=g)
    cpu = torch.device("cpu")
    batch = _auto_batch(nd, None)
    engines = {"torch": lambda: _torch_search(q, db, 10, metric, False, batch, cpu),
               "faiss": lambda: _faiss_search(q, db, 10, metric, False, batch, "flat", None, None, 32, None)}
    best = dict.fromkeys(engines, math.inf)
    for _ in range(max(1, rounds)):
        for engine, search in engines.items():
            t0 = time.perf_counter()
            search()
            best[engine] = min(best[engine], time.perf_counter() - t0)
    return best


def measured_exact_engine(dim: int, metric: str = "l2") -> tuple[str, dict[str, float]]:
    """The faster exact CPU engine for vectors of ``dim`` dimensions under the current thread settings, and the
    probe times behind it: measured once per process (:func:`measure_exact_engines`), then remembered. faiss
    must beat torch by :data:`FAISS_MARGIN` to be chosen: on a close call the torch engine's blocking and
    re-ranking are this module's own, and its results do not depend on a second library's BLAS."""
    key = (int(dim), metric, torch.get_num_threads(), faiss.omp_get_max_threads())
    if key not in _MEASURED:
        times = measure_exact_engines(dim, metric)
        _MEASURED[key] = ("faiss" if times["faiss"] < FAISS_MARGIN * times["torch"] else "torch", times)
    return _MEASURED[key]


def pick_backend(index: str = "flat", device: str | torch.device | None = None, backend: str = "auto", *,
                 n_queries: int = 0, n_database: int = 0, dim: int = 0, metric: str = "l2") -> str:
    """The engine :func:`knn_search` runs: ``"torch"`` or ``"faiss"``.

    ``backend="faiss"`` / ``"torch"`` force an engine. ``backend="auto"`` picks:

    * exact search (``index="flat"``) on a GPU, or on a CPU without faiss: the torch engine;
    * exact search on a CPU with faiss: the torch engine, unless the search is big enough to matter
      (``n_queries × n_database × dim ≥`` :data:`MEASURE_ABOVE` multiply-adds) and a one-off probe of both
      engines on this CPU (:func:`measured_exact_engine`, about 0.2–0.5 s, once per process, dimension and
      thread setting) finds faiss's flat index faster. Neither engine wins everywhere:
      ``python -m gpsviz bench knn`` (exact k=10 search of 20,000 × 512 float32 vectors against themselves)
      on an Intel AMX CPU (issue 21) a blocked torch matmul + top-k took 4.0 s (the GEMM 1.6 s) and faiss
      flat 15.7 s; on this project's 2-core AMD EPYC (AVX-512, no AMX), timed while the CPU was otherwise
      idle, the torch engine took 2.6 s (torch's MKL GEMM alone 2.0 s) and faiss flat 1.9 s (its OpenBLAS
      GEMM alone 1.7 s), and the probe picks faiss there (torch 0.12 s vs faiss 0.08 s);
    * an approximate index (``"ivf"``, ``"hnsw"``): faiss on the CPU; on a GPU or without faiss the exact
      torch search (with a warning).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"knn_search: unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    on_cpu = device is None or resolve_device(device).type == "cpu"
    if not (HAVE_FAISS and on_cpu):
        return "torch"
    if index != "flat":
        return "faiss"
    if n_queries * n_database * dim < MEASURE_ABOVE:
        return "torch"
    return measured_exact_engine(dim, metric)[0]


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


def _exact_distances(q: torch.Tensor, cand: torch.Tensor, metric: str) -> torch.Tensor:
    """float64 distances between query rows q (m×D) and their candidate rows cand (m×c×D), computed directly
    (on the CPU for an MPS device, which has no float64)."""
    if q.device.type == "mps":
        return _exact_distances(q.cpu(), cand.cpu(), metric).to(q.device, torch.float32)
    q, cand = q.double(), cand.double()
    if metric == "cosine":
        q, cand = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(cand, dim=-1)
        return 1.0 - (cand * q[:, None, :]).sum(-1)
    diff = cand - q[:, None, :]
    return (diff * diff).sum(-1)


def _rounding_bound(idx: torch.Tensor, q_sq: torch.Tensor | None, db_sq: torch.Tensor | None) -> torch.Tensor:
    """Rounding bound of each candidate's float32 distance: ``AMBIGUOUS_BELOW·(||q||² + ||db||²)`` (centred
    vectors; q_sq n×1, db_sq N), or ``2·AMBIGUOUS_BELOW`` for cosine (q_sq None)."""
    if q_sq is None:
        return torch.full(idx.shape, 2 * AMBIGUOUS_BELOW, dtype=torch.float32, device=idx.device)
    return AMBIGUOUS_BELOW * (q_sq + db_sq[idx])


def _finish(dist: torch.Tensor, idx: torch.Tensor, bound: torch.Tensor, q: torch.Tensor, db: torch.Tensor,
            k: int, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k from n×kc ascending candidates (kc ≥ k) with float32 distances and their rounding bounds.

    Rows whose k-th and (k+1)-th candidates lie within the bounds are re-ranked on float64 distances computed
    directly; elsewhere L2 distances below ``REFINE_BELOW/AMBIGUOUS_BELOW`` bounds are recomputed directly.
    q: n×D queries, db: N×D database, as given (not centred). Returns CPU float32 / int64 n×k, ascending.
    """
    device = dist.device
    changed = torch.zeros(dist.shape[0], dtype=torch.bool, device=device)
    if dist.shape[1] > k:
        ambiguous = dist[:, k] - dist[:, k - 1] <= bound[:, k] + bound[:, k - 1]
        if ambiguous.any():
            rr = ambiguous.nonzero().flatten()
            cand = idx[rr]
            exact = _exact_distances(q[rr.to(q.device)].to(device), db[cand], metric)
            ev, pos = torch.sort(exact, dim=1, stable=True)
            dist[rr], idx[rr] = ev.float(), cand.gather(1, pos)
            changed |= ambiguous
    dist, idx, bound = dist[:, :k], idx[:, :k], bound[:, :k]
    if metric == "l2":                                            # cancellation: recompute these directly
        near = (dist <= (REFINE_BELOW / AMBIGUOUS_BELOW) * bound) & ~changed[:, None]
        if near.any():
            rr, kk = near.nonzero(as_tuple=True)
            exact = _exact_distances(q[rr.to(q.device)].to(device), db[idx[rr, kk]][:, None, :], metric)
            dist[rr, kk] = exact[:, 0].float()
            changed[rr] = True
    if changed.any():                                             # keep every row ascending
        rr = changed.nonzero().flatten()
        d_rows, order = torch.sort(dist[rr], dim=1, stable=True)
        dist[rr], idx[rr] = d_rows, idx[rr].gather(1, order)
    return dist.cpu(), idx.cpu()


def _candidates(k: int, n_database: int, exclude_self: bool) -> int:
    """Candidates kept per query for the re-ranking: k + :data:`RERANK_EXTRA`, at most every other row."""
    return min(k + RERANK_EXTRA, n_database - 1 if exclude_self else n_database)


def _torch_search(q: torch.Tensor, db: torch.Tensor, k: int, metric: str, exclude_self: bool,
                  batch: int, device: torch.device, cols: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact search, ``batch`` queries × ``cols`` database rows (default: :func:`_block_cols`) per GEMM.

    Returns CPU float32 distances (ascending) and int64 indices, n×k. With ``exclude_self`` row i of ``q``
    is row i of ``db`` and its own column is masked before the top-k, so duplicates of it may still be found.
    Per block only the GEMM and the top-k run (on a loaded CPU every extra parallel operation costs a
    scheduling round); scores become distances once, for all rows, in :func:`_finish`.
    """
    n, n_db, dim = q.shape[0], db.shape[0], db.shape[1]
    rows = max(1, min(int(batch), n))
    cols = max(1, min(int(cols) if cols else _block_cols(rows, n_db), n_db))
    kc = _candidates(k, n_db, exclude_self)
    db = db.to(device)
    cosine = metric == "cosine"
    if cosine:
        centre = db_sq = None
        db_aug = torch.nn.functional.normalize(db, dim=1)          # N×D: the GEMM gives cos
    else:
        centre = db.mean(0)
        db_aug = torch.empty(n_db, dim + 1, dtype=torch.float32, device=device)
        dbc = torch.sub(db, centre, out=db_aug[:, :dim])
        db_sq = (dbc * dbc).sum(1)                                # N, centred
        torch.mul(db_sq, -0.5, out=db_aug[:, dim])                # the GEMM gives q·db − ||db||²/2 (centred)
    q_aug = torch.ones(rows, db_aug.shape[1], dtype=torch.float32, device=device)  # last column 1 (L2)
    # one reused score buffer: fresh large allocations page-fault on every block and cost as much as the top-k
    scores = torch.empty(rows * cols, dtype=torch.float32, device=device)
    top_v = torch.empty(n, kc, dtype=torch.float32, device=device)  # largest scores, descending
    top_i = torch.empty(n, kc, dtype=torch.int64, device=device)
    for s in range(0, n, rows):
        r = min(rows, n - s)
        qa = q_aug[:r]
        if cosine:
            qa.copy_(torch.nn.functional.normalize(q[s:s + r].to(device), dim=1))
        else:
            torch.sub(q[s:s + r].to(device), centre, out=qa[:, :dim])
        best_v = best_i = None
        for c in range(0, n_db, cols):
            w = min(cols, n_db - c)
            sc = scores[: r * w].view(r, w)
            torch.mm(qa, db_aug[c:c + w].T, out=sc)
            if exclude_self and c < s + r and s < c + w:          # this block holds some queries' own columns
                own = torch.arange(max(s, c), min(s + r, c + w), device=device)
                sc[own - s, own - c] = float("-inf")
            v, i = torch.topk(sc, min(kc, w), dim=1, largest=True, sorted=True)
            if c:
                i += c
            if best_v is None:
                best_v, best_i = v, i
            else:                                                 # merge with the earlier column chunks
                both = torch.cat([best_v, v], 1)
                best_v, pos = torch.topk(both, min(kc, both.shape[1]), dim=1, largest=True, sorted=True)
                best_i = torch.cat([best_i, i], 1).gather(1, pos)
        top_v[s:s + r] = best_v
        top_i[s:s + r] = best_i
    if cosine:
        dist, q_sq = 1.0 - top_v, None
    else:
        qc = q.to(device) - centre
        q_sq = (qc * qc).sum(1, keepdim=True)
        dist = (q_sq - 2.0 * top_v).clamp_min_(0.0)               # ascending, as top_v is descending
    return _finish(dist, top_i, _rounding_bound(top_i, q_sq, db_sq), q, db, k, metric)


def _faiss_index(db: np.ndarray, metric: str, index: str, nlist: int | None, nprobe: int | None,
                 hnsw_m: int, ef_search: int | None, k: int):
    """Build (and train/fill) a faiss index over the database rows ``db`` (N×D float32, C-contiguous)."""
    n, d = db.shape
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if index == "flat":
        ix = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
    elif index == "ivf":
        nl = int(nlist) if nlist else max(1, round(math.sqrt(n)))
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
    """faiss search on the CPU; the flat index keeps the same candidates and re-ranking as the torch engine
    (L2 vectors centred on the database mean), the approximate ones return their own k."""
    q, db = q.cpu(), db.cpu()
    cosine = metric == "cosine"
    if cosine:
        centre = None
        db_np = np.ascontiguousarray(db.numpy(), dtype=np.float32).copy()
        faiss.normalize_L2(db_np)
    else:
        centre = db.mean(0)
        db_np = np.ascontiguousarray((db - centre).numpy(), dtype=np.float32)
    ix = _faiss_index(db_np, metric, index, nlist, nprobe, hnsw_m, ef_search, k)
    kc = _candidates(k, db.shape[0], exclude_self) if index == "flat" else k
    kk = kc + 1 if exclude_self else kc
    n = q.shape[0]
    out_d = torch.empty(n, kc, dtype=torch.float32)
    out_i = torch.empty(n, kc, dtype=torch.int64)
    for s in range(0, n, batch):
        qt = q[s:s + batch]
        if cosine:
            qb = np.ascontiguousarray(qt.numpy(), dtype=np.float32).copy()
            faiss.normalize_L2(qb)
        else:
            qb = np.ascontiguousarray((qt - centre).numpy(), dtype=np.float32)
        d, i = ix.search(qb, kk)
        d, i = torch.from_numpy(d), torch.from_numpy(i).long()
        if cosine:
            d = 1.0 - d
        else:
            d = d.clamp_min(0.0)
        bad = (i < 0).any(dim=1)
        if index != "flat" and bad.any():
            # an approximate index found fewer than kk points for some rows: answer those rows exactly
            rows = torch.nonzero(bad).flatten()
            ed, ei = _torch_search(qt[rows], db, kk, metric, False, batch, torch.device("cpu"))
            d[rows], i[rows] = ed, ei
        if exclude_self:
            d, i = _drop_self(d, i, torch.arange(s, s + qb.shape[0]), kc)
        out_d[s:s + qb.shape[0]] = d
        out_i[s:s + qb.shape[0]] = i
    if cosine:
        q_sq = db_sq = None
    else:
        qc, dbc = q - centre, torch.from_numpy(db_np)
        q_sq, db_sq = (qc * qc).sum(1, keepdim=True), (dbc * dbc).sum(1)
    return _finish(out_d, out_i, _rounding_bound(out_i, q_sq, db_sq), q, db, k, metric)


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
        batch_size: queries per block (default: chosen so that one block of float32 scores is ≤ 256 MB,
            :data:`BLOCK_BYTES`, with at least 512 queries; a larger database is then cut into column chunks).
        index: ``"flat"`` exact; ``"ivf"`` IVF-Flat (``nlist`` ≈ √N lists, ``nprobe`` visited) or ``"hnsw"``
            (graph, ``hnsw_m`` links, ``ef_search``) for approximate search over very large N.
        device: ``None``/``"cpu"`` search on the CPU; a GPU device (``"cuda"``, ``"mps"``, ``"auto"``
            resolving to one) runs the exact torch engine there (in full float32: TF32 is off for the call).
        backend: ``"auto"`` = :func:`pick_backend`: for exact search (``index="flat"``) the torch engine,
            or on a CPU faiss's flat index where a one-off measurement on this CPU finds it faster (big
            searches only); faiss for ``"ivf"``/``"hnsw"`` on the CPU. ``"faiss"`` or ``"torch"`` (exact;
            ignores ``index``) force one.
        threads: CPU threads this call may use (faiss's OpenMP threads or torch's intra-op threads; default:
            the library's own setting).

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
    if backend == "faiss" and not HAVE_FAISS:
        raise ConfigError("knn_search: backend='faiss' asked for but faiss is not installed "
                          "(pip install faiss-cpu), or use backend='auto'")
    with _threads(threads):
        engine = pick_backend(index, dev, backend, n_queries=q.shape[0], n_database=n_db, dim=q.shape[1],
                              metric=metric)
        if engine == "faiss":
            return _faiss_search(q, db, k, metric, exclude_self, batch, index, nlist, nprobe, hnsw_m, ef_search)
        if index != "flat":
            warnings.warn(f"knn_search: index={index!r} needs faiss on the CPU; running the exact torch search "
                          "instead", stacklevel=2)
        dev = dev or torch.device("cpu")
        precision_before = torch.get_float32_matmul_precision()
        exact_fp32 = dev.type == "cuda" and precision_before != "highest"
        if exact_fp32:
            torch.set_float32_matmul_precision("highest")         # no TF32: the search is exact float32
        try:
            return _torch_search(q, db, k, metric, exclude_self, batch, dev)
        finally:
            if exact_fp32:
                torch.set_float32_matmul_precision(precision_before)


def recall_at_k(approx_indices: torch.Tensor, exact_indices: torch.Tensor) -> float:
    """Share of the exact neighbours (Q×k) that an approximate search (Q×k') also returned, averaged over rows."""
    a, e = torch.as_tensor(approx_indices), torch.as_tensor(exact_indices)
    hits = (a[:, :, None] == e[:, None, :]).any(dim=1).float()   # Q×k: exact neighbour j found?
    return float(hits.mean())
