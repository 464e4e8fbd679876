"""k-NN search (faiss and torch engines), purity diagnostics and the k-NN benchmark's plumbing."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from gpsviz.diagnostics import per_anchor_purity, purity, purity_curve
from gpsviz.errors import ConfigError
from gpsviz.knn import HAVE_FAISS, knn_search, recall_at_k

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
    d, i = knn_search(x.numpy(), None, 5, exclude_self=True, backend=backend)
    bd, bi = brute(x, x, 5, exclude_self=True)
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
    true = lambda i: ((x.double()[:, None, :] - x.double()[i]) ** 2).sum(-1)  # noqa: E731  N×6
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

    assert main(["--n", "800", "--dim", "16"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"knn_speedup_vs_sklearn=\d+\.\d\d", lines[-1])
    assert "recall" in lines[1] and float(lines[2].split()[-1]) >= 0.99
