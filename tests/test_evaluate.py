"""Probes: accuracy on separable features, train/test separation enforced, factor targets."""
from __future__ import annotations

import pytest
import torch

from gpsviz.data import ImageDataset
from gpsviz.errors import DataError
from gpsviz.evaluate import Features, knn_accuracy, label_fraction_sweep, linear_probe, mlp_probe


def fake(n, split, seed, noise=0.3, d=16, c=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    centres = torch.eye(d)[:c] * 3
    f = centres[y] + noise * torch.randn(n, d, generator=g)
    colour = (torch.arange(n) // c) % 3
    ds = ImageDataset(torch.zeros(n, 3, 4, 4, dtype=torch.uint8), y, [str(i) for i in range(c)],
                      factors={"colour": colour}, split=split)
    return Features(f, ds)


def test_probes_solve_separable_features_and_fail_on_noise():
    tr, te = fake(400, "train", 0), fake(200, "test", 1)
    assert linear_probe(tr, te)["test_acc"] > 0.95
    assert knn_accuracy(tr, te, k=10) > 0.95
    assert mlp_probe(tr, te, epochs=10)["test_acc"] > 0.9
    # colour is not encoded in the features: chance level (3 classes)
    assert linear_probe(tr, te, target="colour")["test_acc"] < 0.55


def test_probe_refuses_same_split_and_test_as_fit():
    tr, tr2, te = fake(100, "train", 0), fake(100, "train", 1), fake(100, "test", 2)
    with pytest.raises(DataError, match="train split"):
        linear_probe(tr, tr2)
    with pytest.raises(DataError, match="'train' split"):
        linear_probe(te, tr)
    with pytest.raises(DataError, match="no categorical target"):
        linear_probe(tr, te, target="hue")


def test_label_fraction_sweep_rows():
    tr, te = fake(400, "train", 0, noise=1.5), fake(200, "test", 1, noise=1.5)
    rows = label_fraction_sweep(tr, te, fractions=(0.05, 1.0))
    assert [r["fraction"] for r in rows] == [0.05, 1.0]
    assert rows[0]["n_train"] < rows[1]["n_train"]
