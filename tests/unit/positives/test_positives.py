"""Positive sources: group merging (union-find), self and label positives, the registry."""
from __future__ import annotations

import pytest
import torch

from gpsviz.data.core import ImageDataset
from gpsviz.errors import ConfigError
from gpsviz.positives import (LabelPositives, Positives, PositiveSource, SelfPositives, available_positives,
                              build_positives, merge_groups, pair_group_ids, register_positives)


def t(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.long)


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True when two labelings induce the same partition of the views."""
    return torch.equal(a[:, None] == a[None, :], b[:, None] == b[None, :])


def brute_force_groups(pair_ids: torch.Tensor, image_ids: torch.Tensor) -> torch.Tensor:
    """Reference: transitive closure of 'same pair or same image' by repeated boolean matrix products."""
    adj = (pair_ids[:, None] == pair_ids[None, :]) | (image_ids[:, None] == image_ids[None, :])
    reach = adj.clone()
    while True:
        nxt = (reach.float() @ adj.float()) > 0
        if torch.equal(nxt, reach):
            break
        reach = nxt
    return reach.float().argmax(dim=1)                                 # first view reachable = a group label


def test_merge_groups_plain_pairs() -> None:
    g = merge_groups(t(0, 1, 2, 0, 1, 2), t(10, 11, 12, 10, 11, 12))
    assert torch.equal(g, t(0, 1, 2, 0, 1, 2))
    assert g.dtype == torch.long


def test_merge_groups_chain_is_one_group() -> None:
    # pairs (a, b), (b, c), (c, d): anchors a, b, c; partners b, c, d → all one group
    a, b, c, d = 5, 9, 2, 7
    anchors, partners = t(a, b, c), t(b, c, d)
    g = pair_group_ids(anchors, partners)
    assert torch.equal(g, torch.zeros(6, dtype=torch.long))
    # a chain given in reverse order, and a separate pair beside it
    g2 = merge_groups(t(0, 1, 2, 3, 0, 1, 2, 3), t(30, 20, 10, 99, 20, 10, 0, 98))
    assert torch.equal(g2, t(0, 0, 0, 1, 0, 0, 0, 1))


def test_duplicate_image_is_never_a_negative() -> None:
    # image 4 drawn twice by a sampler with replacement: both pairs collapse into one group of four views
    pos = SelfPositives().sample(t(4, 8, 4, 1))
    assert torch.equal(pos.partners, t(4, 8, 4, 1))
    g = pos.group_ids
    assert g.shape == (8,)
    assert g[0] == g[2] == g[4] == g[6]
    assert len(set(g.tolist())) == 3
    # an anchor that is another anchor's partner (GPS): the two pairs merge
    g = pair_group_ids(t(1, 2, 3), t(2, 5, 6))
    assert g[0] == g[1] == g[3] == g[4] and g[2] == g[5] and g[2] != g[0]


def test_merge_groups_compact_and_first_appearance_order() -> None:
    g = merge_groups(t(40, 7, 40, 7, 3), t(1, 2, 3, 4, 5))
    assert torch.equal(g, t(0, 1, 0, 1, 2))
    assert merge_groups(t(), t()).numel() == 0
    with pytest.raises(ConfigError):
        merge_groups(t(0, 1), t(0))


@pytest.mark.parametrize("seed", range(5))
def test_merge_groups_matches_brute_force(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    b = 60
    anchors = torch.randint(0, 80, (b,), generator=g)
    partners = torch.randint(0, 80, (b,), generator=g)
    pair = torch.arange(b).repeat(2)
    images = torch.cat([anchors, partners])
    got = merge_groups(pair, images)
    assert same_partition(got, brute_force_groups(pair, images))
    assert int(got.max()) + 1 == len(got.unique())                    # compact


def test_merge_groups_long_chain_and_large_batch() -> None:
    b = 4096
    # one chain through every image in a shuffled order: anchor perm[i], partner perm[i + 1]
    perm = torch.randperm(b + 1, generator=torch.Generator().manual_seed(0))
    g = pair_group_ids(perm[:-1], perm[1:])
    assert torch.equal(g, torch.zeros(2 * b, dtype=torch.long))
    # distinct self pairs: B groups
    g = SelfPositives().sample(torch.randperm(50_000)[:b]).group_ids
    assert torch.equal(g, torch.arange(b).repeat(2))


def _dataset(labels: list[int]) -> ImageDataset:
    n = len(labels)
    return ImageDataset(images=torch.zeros(n, 1, 8, 8, dtype=torch.uint8), labels=torch.tensor(labels),
                        classes=[str(i) for i in range(10)], name="tiny")


def test_self_positives() -> None:
    src = SelfPositives()
    assert src.prepare(_dataset([0, 1, 2])) is None
    anchors = t(2, 0, 1)
    pos = src.sample(anchors)
    assert isinstance(pos, Positives)
    assert torch.equal(pos.partners, anchors)
    assert torch.equal(pos.group_ids, t(0, 1, 2, 0, 1, 2))
    assert src.refresh_every == 0
    assert src.describe() == {"name": "self", "refresh_every": 0}


def test_label_positives() -> None:
    ds = _dataset([3, 1, 3, 0, 1])
    src = LabelPositives()
    with pytest.raises(ConfigError, match="prepare"):
        src.sample(t(0, 1))
    src.prepare(ds)
    pos = src.sample(t(0, 2, 4))
    assert torch.equal(pos.partners, t(0, 2, 4))
    assert torch.equal(pos.group_ids, t(3, 3, 1, 3, 3, 1))
    assert src.describe()["num_classes"] == 4
    assert torch.equal(LabelPositives(labels=t(5, 6)).sample(t(1)).group_ids, t(6, 6))
    with pytest.raises(ConfigError, match="out of range"):
        src.sample(t(9))


def test_label_positives_reject_unlabelled_data() -> None:
    with pytest.raises(ConfigError, match="no label"):
        LabelPositives().prepare(_dataset([0, -1, 2]))
    with pytest.raises(ConfigError, match="no label"):
        LabelPositives(labels=t(-1, -1))


def test_registry() -> None:
    assert {"self", "labels"} <= set(available_positives())
    assert isinstance(build_positives("self"), SelfPositives)
    assert isinstance(build_positives("labels", labels=t(0, 1)), LabelPositives)
    with pytest.raises(ConfigError, match="self"):
        build_positives("nope")
    with pytest.raises(ConfigError, match="k"):
        build_positives("self", k=3)
    with pytest.raises(ConfigError):
        register_positives("x", int)                                   # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="already registered"):
        register_positives("self", LabelPositives)

    @register_positives("test-const")
    class ConstPositives(PositiveSource):
        name = "test-const"

        def __init__(self, partner: int = 0) -> None:
            self.partner = partner

        def sample(self, anchors: torch.Tensor, generator: torch.Generator | None = None) -> Positives:
            partners = torch.full_like(anchors, self.partner)
            return Positives(partners, pair_group_ids(anchors, partners))

    register_positives("test-const", ConstPositives)                   # same class again: allowed
    src = build_positives("test-const", partner=7)
    pos = src.sample(t(1, 2))
    assert torch.equal(pos.partners, t(7, 7)) and torch.equal(pos.group_ids, t(0, 0, 0, 0))
    with pytest.raises(NotImplementedError):
        PositiveSource().sample(t(0))
    with pytest.raises(ConfigError):
        Positives(t(0, 1), t(0, 1, 0))
