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


def test_fixed_and_adaptive_radius(data):
    tau = 4.0
    src = prepared(data, k=10, radius=tau)
    assert (src.distances[src.valid] <= tau).all() and (src.distances[~src.valid] > tau).all()
    pos = src.sample(torch.arange(N), gen())
    inside = src.counts > 0
    assert not (pos.partners[inside] == torch.arange(N)[inside]).any()
    ad = prepared(data, k=30, radius="adaptive")
    d20, _ = knn_search(data[1], None, 20, exclude_self=True)
    expected = d20.mean(1) + d20.std(1)
    assert torch.allclose(ad.tau, expected, rtol=1e-5)
    assert (ad.counts > 0).all() and (ad.counts < 30).any()
    assert (ad.distances[ad.valid] <= ad.tau[:, None].expand_as(ad.valid)[ad.valid]).all()


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
