"""k-NN search (faiss and torch engines), purity diagnostics and the k-NN benchmark's plumbing."""
from __future__ import annotations

import re

import pytest
import torch

import gpsviz.knn as knn_module
from gpsviz.errors import ConfigError
from gpsviz.knn import HAVE_FAISS, block_plan, knn_search, pick_backend, recall_at_k
from gpsviz.purity import per_anchor_purity, purity, purity_curve

BACKENDS = ["torch"] + (["faiss"] if HAVE_FAISS else [])


def clustered(n: int = 600, dim: int = 16, clusters: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(clusters, dim, generator=g)
    labels = torch.randint(0, clusters, (n,), generator=g)
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def brute(q: torch.Tensor, db: torch.Tensor, k: int, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.cdist(q.double(), db.double()) ** 2
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    v, i = torch.topk(d, k, dim=1, largest=False)
    return v.float(), i


@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_brute_force(backend):
    x, _ = clustered()
    q = x[:100] + 0.1
    d, i = knn_search(q, x, 7, backend=backend)
    bd, bi = brute(q, x, 7)
    assert d.dtype == torch.float32 and i.dtype == torch.int64 and d.shape == i.shape == (100, 7)
    assert torch.equal(i.sort(1).values, bi.sort(1).values)           # same index sets (no ties in random data)
    assert torch.allclose(d, bd, rtol=1e-4, atol=1e-3)                 # squared L2, ascending
    assert (d[:, 1:] >= d[:, :-1]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_exclude_self_and_numpy_input(backend):
    x, _ = clustered()
    _d, i = knn_search(x.numpy(), None, 5, exclude_self=True, backend=backend)
    _bd, bi = brute(x, x, 5, exclude_self=True)
    assert isinstance(i, torch.Tensor)
    assert not (i == torch.arange(600)[:, None]).any()
    assert torch.equal(i.sort(1).values, bi.sort(1).values)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exclude_self_with_exact_duplicates(backend):
    x, _ = clustered(n=200)
    x[10:13] = x[10]                                  # 3 identical rows
    x[50:70] = x[50]                                  # 20 identical rows: more ties than k + 1
    d, i = knn_search(x, x, 4, exclude_self=True, backend=backend)
    rows = torch.arange(200)[:, None]
    assert not (i == rows).any()
    assert set(i[10, :2].tolist()) == {11, 12} and torch.all(d[10, :2] == 0)
    assert (d[50:70] == 0).all()                      # 4 other copies at distance 0, never itself
    assert ((i[50:70] >= 50) & (i[50:70] < 70)).all()
    for r in range(50, 70):
        assert len(set(i[r].tolist())) == 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_equals_unbatched(backend):
    x, _ = clustered()
    d1, i1 = knn_search(x, x, 6, exclude_self=True, backend=backend)
    d2, i2 = knn_search(x, x, 6, exclude_self=True, backend=backend, batch_size=7)
    assert torch.allclose(d1, d2, rtol=1e-5, atol=1e-4)
    # Another query batch size may round distances differently in the last bit, so two neighbours at (almost)
    # the same distance may swap: the answers must agree up to such ties, checked on exact (float64) distances.
    true = lambda i: ((x.double()[:, None, :] - x.double()[i]) ** 2).sum(-1)
    assert torch.allclose(true(i1), true(i2), rtol=1e-5, atol=1e-4)
    assert (i1 == i2).float().mean() > 0.99                          # and in practice the same neighbours


def test_torch_fallback_agrees_with_faiss():
    if not HAVE_FAISS:
        pytest.skip("faiss not installed")
    x, _ = clustered()
    _, i1 = knn_search(x, x, 10, backend="faiss")
    _, i2 = knn_search(x, x, 10, backend="torch")
    assert recall_at_k(i1, i2) > 0.999


@pytest.mark.parametrize("backend", BACKENDS)
def test_cosine_metric(backend):
    x, _ = clustered()
    d, i = knn_search(x, x, 5, metric="cosine", exclude_self=True, backend=backend)
    xn = torch.nn.functional.normalize(x.double(), dim=1)
    sim = xn @ xn.T
    sim.fill_diagonal_(-2)
    bv, bi = torch.topk(sim, 5, dim=1)
    assert torch.equal(i.sort(1).values, bi.sort(1).values)
    assert torch.allclose(d, (1 - bv).float(), atol=1e-5)


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_index_recall(index):
    if not HAVE_FAISS:
        pytest.skip("faiss not installed")
    x, _ = clustered(n=4000, dim=32, clusters=20)
    _, exact = knn_search(x, x, 10, exclude_self=True)
    _, approx = knn_search(x, x, 10, exclude_self=True, index=index)
    assert recall_at_k(approx, exact) > 0.9
    assert not (approx == torch.arange(4000)[:, None]).any()


def test_bad_arguments():
    x, _ = clustered(n=20)
    with pytest.raises(ConfigError, match="between 1 and 19"):
        knn_search(x, x, 20, exclude_self=True)
    with pytest.raises(ConfigError, match="cosine"):
        knn_search(x, x, 3, metric="manhattan")
    with pytest.raises(ConfigError, match="exclude_self"):
        knn_search(x[:5], x, 3, exclude_self=True)
    with pytest.raises(ConfigError, match="dimensions"):
        knn_search(x[:, :3], x, 3)


def test_purity_on_hand_made_neighbours():
    labels = torch.tensor([0, 0, 1, 1, -1])
    nbrs = torch.tensor([[1, 2], [0, 2], [0, 1], [2, 4], [0, 1]])
    per = per_anchor_purity(nbrs, labels)
    assert torch.allclose(per[:4], torch.tensor([0.5, 0.5, 0.0, 1.0]))   # row 3: the unlabelled neighbour is skipped
    assert torch.isnan(per[4])                                           # unlabelled anchor
    assert purity(nbrs, labels) == pytest.approx(0.5)
    valid = torch.tensor([[True, False]] * 5)
    assert purity(nbrs, labels, valid) == pytest.approx((1 + 1 + 0 + 1) / 4)


def test_purity_curve_one_search():
    x, labels = clustered()
    curve = purity_curve(x, labels, [1, 5, 20])
    assert list(curve) == [1, 5, 20]
    assert all(0.9 < v <= 1.0 for v in curve.values())                   # well-separated clusters
    noise = torch.randn(600, 16, generator=torch.Generator().manual_seed(1))
    assert purity_curve(noise, labels, [5])[5] < 0.3


def test_benchmark_main_prints_ratio_last(capsys):
    from gpsviz.bench.knn import main

    assert main(["--size", "800x16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "800 x 16" in lines[0] and "backend=auto runs torch" in lines[0]
    assert re.fullmatch(r"knn_speedup_vs_sklearn=\d+\.\d\d", lines[-1])
    assert re.fullmatch(r"knn_gemm_bound_ratio=\d+\.\d\d", lines[-2])
    assert "recall" in lines[1] and "gemm/search" in lines[1] and "sklearn/search" in lines[1]
    assert "backend=auto" in lines[2] and float(lines[2].split()[-1]) >= 0.99
    rows = [ln for ln in lines if ln.startswith("gpsviz knn_search")]
    assert len(rows) == 2 + HAVE_FAISS and all(float(ln.split()[-1]) >= 0.99 for ln in rows)
    assert any(ln.startswith("GEMM bound") for ln in lines)


# ---- the auto backend: torch GEMM + top-k for exact search, checked against float64 brute force --------------


def exact_answer(q: torch.Tensor, db: torch.Tensor, metric: str, exclude_self: bool) -> torch.Tensor:
    """Q×N float64 distances (inf on the diagonal with exclude_self)."""
    if metric == "cosine":
        qn, dn = (torch.nn.functional.normalize(t.double(), dim=1) for t in (q, db))
        d = 1 - qn @ dn.T
    else:
        d = ((q.double()[:, None, :] - db.double()[None, :, :]) ** 2).sum(-1)
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    return d


def assert_exact(d: torch.Tensor, i: torch.Tensor, true: torch.Tensor, k: int, rtol: float = 1e-4,
                 atol: float = 1e-4) -> None:
    """Distances within ``rtol`` of the exact ones; indices equal to brute force except among (near-)ties."""
    bd, bi = torch.topk(true, k, dim=1, largest=False)
    assert d.dtype == torch.float32 and i.dtype == torch.int64 and d.shape == i.shape == (true.shape[0], k)
    assert torch.allclose(d.double(), bd, rtol=rtol, atol=atol)               # the k smallest distances
    assert torch.allclose(d.double(), true.gather(1, i), rtol=rtol, atol=atol)  # ... and of the rows returned
    assert (d[:, 1:] >= d[:, :-1]).all()                                      # ascending
    assert all(len(set(row)) == k for row in i.tolist())                       # no row twice
    tie = (true.gather(1, i) - bd).abs() <= atol + rtol * bd.abs()            # where indices differ: a tie
    assert ((i == bi) | tie).all()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_auto_matches_brute_force_across_blocks(monkeypatch, metric, exclude_self):
    x, _ = clustered(n=700, dim=24)
    true = exact_answer(x, x, metric, exclude_self)
    d0, i0 = knn_search(x, None, 8, metric=metric, exclude_self=exclude_self)   # one block
    assert_exact(d0, i0, true, 8)
    assert block_plan(700, 700, 64) == (64, 700)
    d1, i1 = knn_search(x, None, 8, metric=metric, exclude_self=exclude_self, batch_size=64)  # 11 row blocks
    assert_exact(d1, i1, true, 8)
    # a database cut into column chunks (merged top-k lists), chunk edges not aligned with the row blocks
    monkeypatch.setattr(knn_module, "BLOCK_BYTES", 4 * 64 * 150)
    monkeypatch.setattr(knn_module, "MIN_BLOCK_COLS", 1)
    assert block_plan(700, 700, 64) == (64, 150)
    d2, i2 = knn_search(x, None, 8, metric=metric, exclude_self=exclude_self, batch_size=64)
    assert_exact(d2, i2, true, 8)
    assert (i0 == i2).float().mean() > 0.99
    if exclude_self:
        assert not (i2 == torch.arange(700)[:, None]).any()
    else:                                            # each row finds itself first, at distance (exactly) 0
        assert torch.equal(i2[:, 0], torch.arange(700))
        if metric == "l2":
            assert (d2[:, 0] == 0).all()


def test_auto_queries_other_than_database(monkeypatch):
    x, _ = clustered(n=500, dim=20)
    q = x[:130] + 0.3 * torch.randn(130, 20, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(knn_module, "MIN_BLOCK_COLS", 1)
    monkeypatch.setattr(knn_module, "BLOCK_BYTES", 4 * 32 * 97)
    for metric in ("l2", "cosine"):
        d, i = knn_search(q, x, 6, metric=metric, batch_size=32)             # 5 row blocks × 6 column chunks
        assert_exact(d, i, exact_answer(q, x, metric, False), 6)


def test_auto_chunks_narrower_than_k(monkeypatch):
    """k = N − 1 with exclude_self and column chunks of 7 < k: the merge must still return every other row."""
    x, _ = clustered(n=40, dim=8)
    monkeypatch.setattr(knn_module, "MIN_BLOCK_COLS", 1)
    monkeypatch.setattr(knn_module, "BLOCK_BYTES", 4 * 16 * 7)
    assert block_plan(40, 40, 16) == (16, 7)
    d, i = knn_search(x, None, 39, exclude_self=True, batch_size=16)
    assert torch.equal(i.sort(1).values, torch.tensor([[j for j in range(40) if j != r] for r in range(40)]))
    assert_exact(d, i, exact_answer(x, x, "l2", True), 39)


def test_auto_duplicates_across_chunks(monkeypatch):
    """Exact duplicates spread over several column chunks: distance exactly 0, never the row itself."""
    x, _ = clustered(n=300, dim=12)
    x[[5, 140, 290]] = x[5].clone()
    monkeypatch.setattr(knn_module, "MIN_BLOCK_COLS", 1)
    monkeypatch.setattr(knn_module, "BLOCK_BYTES", 4 * 50 * 100)
    d, i = knn_search(x, None, 3, exclude_self=True, batch_size=50)
    for r, others in [(5, {140, 290}), (140, {5, 290}), (290, {5, 140})]:
        assert set(i[r, :2].tolist()) == others and (d[r, :2] == 0).all() and d[r, 2] > 0


def test_auto_picks_torch_for_exact_search(monkeypatch):
    assert pick_backend() == pick_backend("flat", "cpu") == "torch"
    assert pick_backend("ivf") == pick_backend("hnsw", None) == ("faiss" if HAVE_FAISS else "torch")
    assert pick_backend("flat", backend="faiss") == "faiss" and pick_backend("ivf", backend="torch") == "torch"
    with pytest.raises(ConfigError, match="backend"):
        pick_backend(backend="sklearn")

    def no_faiss(*a, **kw):
        raise AssertionError("auto ran faiss for an exact search")

    monkeypatch.setattr(knn_module, "_faiss_search", no_faiss)
    x, _ = clustered(n=200)
    for metric in ("l2", "cosine"):
        d, i = knn_search(x, x, 4, metric=metric, exclude_self=True)        # auto, exact: torch
        assert_exact(d, i, exact_answer(x, x, metric, True), 4)


def test_threads_option_is_restored():
    x, _ = clustered(n=100)
    before = torch.get_num_threads()
    d, i = knn_search(x, None, 3, exclude_self=True, threads=1)
    assert torch.get_num_threads() == before
    assert_exact(d, i, exact_answer(x, x, "l2", True), 3)


@pytest.mark.parametrize("backend", ["auto"] + (["faiss"] if HAVE_FAISS else []))
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_far_from_the_origin(metric, backend):
    """Clusters far from the origin and from each other: distances ≪ norms, where float32 GEMM scores round
    more coarsely than the gaps between neighbours; the centring and the float64 re-ranking must still give
    the exact neighbour sets (the boundary row of many a query is decided by a gap of ~1e-4)."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat_interleave(100)
    x = 40 * torch.eye(4, 6)[labels] + torch.tensor([0.3, 1.0, 2.0, 4.0])[labels, None] * torch.randn(400, 6, generator=g)
    x = x + 500.0                                             # and a common offset: the centring removes it
    true = exact_answer(x, x, metric, True)
    for k in (5, 30):
        d, i = knn_search(x, None, k, metric=metric, exclude_self=True, batch_size=96, backend=backend)
        assert_exact(d, i, true, k, rtol=1e-4, atol=1e-7)


def test_auto_measures_the_engines_only_for_big_cpu_searches(monkeypatch):
    if not HAVE_FAISS:
        pytest.skip("faiss not installed")
    calls = []

    def fake(dim, metric="l2", rounds=2):
        calls.append((dim, metric))
        return {"torch": 1.0, "faiss": 0.5 if dim == 64 else 0.95}

    monkeypatch.setattr(knn_module, "measure_exact_engines", fake)
    monkeypatch.setattr(knn_module, "_MEASURED", {})
    big = {"n_queries": 10**4, "n_database": 10**4, "dim": 10**3}             # 1e11 multiply-adds
    assert pick_backend(n_queries=100, n_database=100, dim=64) == "torch" and not calls   # small: no probe
    assert pick_backend(**{**big, "dim": 64}) == "torch" and not calls        # 6.4e9 < MEASURE_ABOVE
    monkeypatch.setattr(knn_module, "MEASURE_ABOVE", 10**6)
    assert pick_backend(**{**big, "dim": 64}) == "faiss"                     # faiss clearly faster
    assert pick_backend(**{**big, "dim": 64}) == "faiss" and len(calls) == 1 # measured once, remembered
    assert pick_backend(**big) == "torch"                                    # within FAISS_MARGIN: torch
    assert pick_backend(device="cpu", **{**big, "dim": 64}) == "faiss"
    assert pick_backend(index="ivf", **big) == "faiss" and pick_backend(backend="torch", **big) == "torch"
    assert calls == [(64, "l2"), (1000, "l2")]
    x, _ = clustered(n=300, dim=64)                                          # knn_search follows the choice
    d, i = knn_search(x, None, 5, exclude_self=True)
    assert_exact(d, i, exact_answer(x, x, "l2", True), 5)
    monkeypatch.setattr(knn_module, "_faiss_search", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("faiss ran")))
    with pytest.raises(RuntimeError, match="faiss ran"):
        knn_search(x, None, 5, exclude_self=True)


def test_measure_exact_engines_runs_both():
    if not HAVE_FAISS:
        pytest.skip("faiss not installed")
    times = knn_module.measure_exact_engines(8, rounds=1)
    assert set(times) == {"torch", "faiss"} and all(0 < t < 10 for t in times.values())
