"""GPS neighbour positives: candidate tables, sampling rules, τ-balls, group ids and refresh from the model."""
from __future__ import annotations

import pytest
import torch

from gpsviz.data import ImageDataset, make_shapes
from gpsviz.errors import ConfigError
from gpsviz.knn import knn_search
from gpsviz.positives import NeighbourPositives, Positives, build_positives, pair_group_ids

N = 300


@pytest.fixture(scope="module")
def data():
    """A dataset of N (unused) images whose precomputed 'prior' has 6 well-separated clusters (= labels)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 6, (N,), generator=g)
    emb = 5 * torch.randn(6, 8, generator=g)[labels] + torch.randn(N, 8, generator=g)
    ds = ImageDataset(images=torch.zeros(N, 1, 4, 4, dtype=torch.uint8), labels=labels,
                      classes=[str(i) for i in range(6)])
    return ds, emb


def prepared(data, **options) -> NeighbourPositives:
    ds, emb = data
    src = NeighbourPositives(**options)
    src.prepare(ds, embedding=emb)
    return src


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_partners_are_among_the_k_nearest_and_never_the_anchor(data):
    src = prepared(data, k=5)
    _, nn = knn_search(data[1], None, 5, exclude_self=True)
    anchors = torch.arange(N).repeat(4)
    pos = src.sample(anchors, gen())
    assert isinstance(pos, Positives) and pos.partners.dtype == torch.int64 and pos.group_ids.shape == (8 * N,)
    assert (pos.partners[:, None] == nn[anchors]).any(1).all()
    assert not (pos.partners == anchors).any()
    assert torch.equal(src.table, nn)


def test_uniform_choice_uses_every_candidate(data):
    src = prepared(data, k=4)
    partners = src.sample(torch.zeros(2000, dtype=torch.long), gen()).partners
    counts = torch.stack([(partners == c).sum() for c in src.table[0]])
    assert counts.min() > 400                                              # ~500 each out of 2000


def test_include_anchor_with_k1_is_plain_ssl(data):
    src = prepared(data, k=1, include_anchor=True)
    anchors = torch.randperm(N, generator=gen())[:64]
    pos = src.sample(anchors, gen())
    assert torch.equal(pos.partners, anchors)
    assert torch.equal(pos.group_ids, torch.arange(64).repeat(2))
    wide = prepared(data, k=3, include_anchor=True)
    assert torch.equal(wide.table[:, 0], torch.arange(N)) and (wide.distances[:, 0] == 0).all()


def test_radius_ball_falls_back_to_the_anchor(data):
    src = prepared(data, k=5, radius=0.0)                                  # no other point at distance 0
    anchors = torch.arange(N)
    assert (src.counts == 0).all()
    assert torch.equal(src.sample(anchors, gen()).partners, anchors)
    idx, dist = src.candidates(7)
    assert idx.tolist() == [7] and dist.tolist() == [0.0]


@pytest.fixture(scope="module")
def spread_clusters():
    """4 clusters of 60 points in 4-d, far apart, of spread 0.3 / 1 / 2 / 4: a τ-ball holds many candidates in the
    tight clusters and few in the loose one, unlike top-k (exactly k everywhere)."""
    g = torch.Generator().manual_seed(1)
    m, d = 60, 4
    labels = torch.arange(4).repeat_interleave(m)
    emb = 40 * torch.eye(4, d)[labels] + torch.tensor([0.3, 1.0, 2.0, 4.0])[labels, None] * torch.randn(4 * m, d,
                                                                                                        generator=g)
    ds = ImageDataset(images=torch.zeros(4 * m, 1, 4, 4, dtype=torch.uint8), labels=labels, classes=list("abcd"))
    return ds, emb


def reference_balls(emb, radius, pool=2047, threshold_k=20, include_anchor=False):
    """Independent transcription of aarashfeizi/gps-ssl (plain torch, float64, full distance matrix).

    main_nn.py: D, I = faiss IndexFlatL2 search of k = 2048 (= pool + 1, self included, squared L2); adaptive:
    τ = np.mean(D[:, 1:threshold_k + 1]) + np.std(D[:, 1:threshold_k + 1]) — one scalar. gps_dataset.py: drop self
    from each row (filter_sim_matrix=True; with False the last column is dropped and self stays), keep every
    neighbour with distance ≤ τ (no num_nns_choice cap), an empty row becomes [idx]. Returns (τ, list of sets).
    """
    x = emb.double()
    dist = (x[:, None, :] - x[None, :, :]).pow(2).sum(-1)
    dd, ii = dist.sort(dim=1, stable=True)
    dd, ii = dd[:, : pool + 1], ii[:, : pool + 1]
    if radius == "adaptive":
        block = dd[:, 1: threshold_k + 1]
        tau = float(block.mean() + block.std(unbiased=False))
    else:
        tau = float(radius)
    balls = []
    for i in range(len(x)):
        keep = torch.ones(ii.shape[1], dtype=torch.bool)
        if include_anchor or not (ii[i] == i).any():
            keep[-1] = False
        else:
            keep[ii[i] == i] = False
        row, drow = ii[i][keep], dd[i][keep]
        ball = set(row[drow <= tau].tolist())
        balls.append(ball or {i})
    return tau, balls, dd


def assert_same_balls(src, balls):
    for a, ball in enumerate(balls):
        idx, dist = src.candidates(a)
        assert set(idx.tolist()) == ball and len(idx) == len(ball), a
        assert (dist[1:] >= dist[:-1]).all()


@pytest.mark.parametrize("radius", [8.0, "adaptive"])
def test_fixed_and_adaptive_radius(spread_clusters, radius):
    ds, emb = spread_clusters
    tau, balls, dd = reference_balls(emb, radius)
    assert ((dd[:, 1:] - tau).abs() > 1e-4 * tau).all()                    # no distance on the edge: a fair test
    src = NeighbourPositives(k=10, radius=radius)
    src.prepare(ds, embedding=emb)
    assert src.tau.ndim == 0 and float(src.tau) == pytest.approx(tau, rel=1e-5)   # one global τ
    assert_same_balls(src, balls)
    counts = torch.tensor([len(b) if a not in b else 0 for a, b in enumerate(balls)])
    assert torch.equal(src.counts, counts) and src.table.shape[1] == int(counts.max())
    per_cluster = [float(src.counts[ds.labels == c].float().mean()) for c in range(4)]
    assert per_cluster[0] == 59 and per_cluster[3] < 10                    # not capped at k = 10, nor padded to it
    assert per_cluster == sorted(per_cluster, reverse=True)
    if radius == "adaptive":
        block = knn_search(emb, None, 20, exclude_self=True)[0]
        assert float(src.tau) == pytest.approx(float(block.mean() + block.std(unbiased=False)), rel=1e-5)
        assert (src.counts == 0).any() and (src.counts > 10).any()


def test_radius_partner_is_uniform_in_the_ball(spread_clusters):
    ds, emb = spread_clusters
    src = NeighbourPositives(radius=8.0)
    src.prepare(ds, embedding=emb)
    ball = set(src.candidates(0)[0].tolist())
    assert len(ball) == 59
    partners = src.sample(torch.zeros(59 * 200, dtype=torch.long), gen()).partners
    hits = torch.bincount(partners, minlength=len(emb))
    assert set(torch.nonzero(hits).flatten().tolist()) == ball              # every candidate, nothing else
    assert hits[list(ball)].min() > 140 and hits[list(ball)].max() < 270    # ~200 each (sd ≈ 14)
    anchors = torch.arange(len(emb)).repeat(5)
    pos = src.sample(anchors, gen(2))
    empty = src.counts[anchors] == 0
    assert empty.any() and torch.equal(pos.partners[empty], anchors[empty])  # empty ball → the anchor itself
    assert not (pos.partners[~empty] == anchors[~empty]).any()
    for a, p in zip(anchors[~empty].tolist(), pos.partners[~empty].tolist()):
        assert p in src.table[a, : src.counts[a]].tolist()
    assert torch.equal(pos.partners, src.sample(anchors, gen(2)).partners)   # exact-seed determinism
    assert not torch.equal(pos.partners, src.sample(anchors, gen(3)).partners)


def test_radius_pool_and_include_anchor(spread_clusters):
    ds, emb = spread_clusters
    src = NeighbourPositives(radius=8.0, pool=30)
    src.prepare(ds, embedding=emb)
    assert_same_balls(src, reference_balls(emb, 8.0, pool=30)[1])
    assert src.counts.max() == 30 and src.describe()["pool"] == 30
    with_anchor = NeighbourPositives(radius=8.0, pool=30, include_anchor=True)
    with_anchor.prepare(ds, embedding=emb)
    assert_same_balls(with_anchor, reference_balls(emb, 8.0, pool=30, include_anchor=True)[1])
    assert (with_anchor.table[:, 0] == torch.arange(len(emb))).all() and (with_anchor.counts >= 1).all()
    wide = NeighbourPositives(k=1, radius=1e6)                              # k does not cap a ball; pool ≤ N − 1
    wide.prepare(ds, embedding=emb)
    assert (wide.counts == len(emb) - 1).all()
    with pytest.raises(ConfigError, match="pool"):
        NeighbourPositives(pool=0)


def test_farthest_choice_picks_max_distance_in_ball(data):
    src = prepared(data, k=8, choice="farthest")
    anchors = torch.arange(N)
    pos = src.sample(anchors, gen())
    assert torch.equal(pos.partners, src.table[:, -1])
    ball = prepared(data, k=8, radius=4.0, choice="farthest")
    pos = ball.sample(anchors, gen())
    for a in range(0, N, 37):
        idx, dist = ball.candidates(a)
        assert pos.partners[a] == idx[dist.argmax()]


def test_same_seed_same_partners(data):
    src = prepared(data, k=10)
    anchors = torch.arange(N)
    a = src.sample(anchors, gen(3)).partners
    assert torch.equal(a, src.sample(anchors, gen(3)).partners)
    assert not torch.equal(a, src.sample(anchors, gen(4)).partners)


def test_group_ids_merge_duplicates(data):
    src = prepared(data, k=3)
    a, b = 0, int(src.table[0, 0])
    anchors = torch.tensor([a, a, 5])
    pos = src.sample(anchors, gen())
    g = pos.group_ids
    assert g[0] == g[1] == g[3] == g[4]                                    # the same image twice → one group
    assert torch.equal(g, pair_group_ids(anchors, pos.partners))
    one = prepared(data, k=1)
    nn1 = one.table[:, 0]
    mutual = torch.nonzero(nn1[nn1] == torch.arange(N)).flatten()          # a's nearest is b and b's is a
    a, b = int(mutual[0]), int(nn1[mutual[0]])
    pos = one.sample(torch.tensor([a, b, 5]), gen())
    assert pos.partners[:2].tolist() == [b, a]
    g = pos.group_ids                                                     # views: a, b, 5, b, a, nn(5)
    assert g[0] == g[1] == g[3] == g[4] and g[2] == g[5] and g[0] != g[2]


def test_purity_and_candidates(data):
    src = prepared(data, k=5)
    assert src.purity() > 0.95
    idx, dist = src.candidates(3)
    assert idx.shape == dist.shape == (5,) and (dist[1:] >= dist[:-1]).all()
    per = src.per_anchor_purity()
    assert per.shape == (N,)
    d = src.describe()
    assert d["name"] == "neighbours" and d["k"] == 5 and d["purity"] == pytest.approx(src.purity())


def test_refresh_from_the_model_changes_the_table(data):
    ds, emb = data
    src = NeighbourPositives(prior="pixels", k=5, refresh_every=1)
    src.prepare(ds, embedding=emb)
    before = src.table.clone()
    shuffled = emb[torch.randperm(N, generator=gen())]
    src.embedding = None
    src.prepare(ds, embed_fn=lambda d: shuffled)                            # what the training loop does
    assert src.source == "model" and not torch.equal(before, src.table)
    _, nn = knn_search(shuffled, None, 5, exclude_self=True)
    assert torch.equal(src.table, nn)


def test_embed_fn_ignored_without_refresh(tmp_path):
    shapes = make_shapes(200, seed=0)
    src = NeighbourPositives(prior="hog-invariant", k=5, root=str(tmp_path), progress=False)
    src.prepare(shapes, embed_fn=lambda d: torch.randn(len(d), 4))
    assert src.source == "prior:hog-invariant"
    assert src.purity() > 0.5
    model = NeighbourPositives(prior="model", k=1, refresh_every=1)
    with pytest.raises(ConfigError, match="embed_fn"):
        model.prepare(shapes)
    model.prepare(shapes, embed_fn=lambda d: d.images.float().flatten(1))
    assert model.source == "model"


def test_state_dict_round_trip(data):
    src = prepared(data, k=4, radius=5.0)
    clone = NeighbourPositives(k=4, radius=5.0)
    clone.load_state_dict(src.state_dict())
    anchors = torch.arange(N)
    assert torch.equal(src.sample(anchors, gen(1)).partners, clone.sample(anchors, gen(1)).partners)


def test_registry_and_bad_options(data):
    src = build_positives("neighbours", k=3, prior="pixels")
    assert isinstance(src, NeighbourPositives)
    with pytest.raises(ConfigError, match="prior"):
        NeighbourPositives(prior="nope")
    with pytest.raises(ConfigError, match="choice"):
        NeighbourPositives(choice="random")
    with pytest.raises(ConfigError, match="radius"):
        NeighbourPositives(radius=-1.0)
    with pytest.raises(ConfigError, match="k must"):
        NeighbourPositives(k=0)
    with pytest.raises(ConfigError, match="prepare"):
        NeighbourPositives().sample(torch.arange(3))
    with pytest.raises(ConfigError, match="kk"):
        build_positives("neighbours", kk=3)
    pca = build_positives("neighbours", prior="pca", dim=8)                  # prior options as keywords
    assert pca.prior_options == {"dim": 8}
