"""Probes: accuracy on separable features, train/test separation enforced, factor targets."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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


def test_conjunction_target_needs_both_factors():
    """'label×colour' is one class per (shape, colour) pair: a probe reads it only from features that hold both."""
    tr, te = fake(240, "train", 0), fake(120, "test", 1)
    values, names = tr.dataset.targets("label×colour")
    label, colour = tr.dataset.labels, tr.dataset.factors["colour"]
    assert torch.equal(values, label * 3 + colour) and len(names) == 12 and names[5] == "1·2"
    assert torch.equal(tr.dataset.targets("label*colour")[0], values)          # ASCII spelling
    assert tr.dataset.has_target("label×colour") and not tr.dataset.has_target("label×size")
    assert linear_probe(tr, te, target="label")["test_acc"] > 0.95             # the features hold the label...
    assert linear_probe(tr, te, target="label×colour")["test_acc"] < 0.5       # ...not the colour (1/3 of it)
    g = torch.Generator().manual_seed(3)
    both = lambda f: Features(torch.cat([f.features, 3 * F.one_hot(f.dataset.factors["colour"], 3).float()  # noqa: E731
                                         + 0.3 * torch.randn(len(f.dataset.labels), 3, generator=g)], 1), f.dataset)
    assert linear_probe(both(tr), both(te), target="label×colour")["test_acc"] > 0.9
    with pytest.raises(DataError, match="two targets"):
        tr.dataset.targets("label×colour×colour")


def test_evaluate_run_probes_a_conjunction(tiny_run, tiny_pair):
    from gpsviz.runs import evaluate_run

    res = evaluate_run(tiny_run, targets=["label×colour"], data=tiny_pair, write=False)
    assert 0.0 <= res["linear_label×colour"] <= 1.0 and "knn_label×colour" in res
    with pytest.raises(DataError, match="conjunction"):
        evaluate_run(tiny_run, targets=["label×nothing"], data=tiny_pair, write=False)
