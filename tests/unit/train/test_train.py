"""Training loop: recipes run, checkpoints are atomic and exact-resumable, bad input is refused clearly."""
from __future__ import annotations

import json

import pytest
import torch

from gpsviz.checkpoint import load_checkpoint
from gpsviz.config import TrainConfig
from gpsviz.errors import CheckpointError, ConfigError
from gpsviz.recipes import RECIPES
from gpsviz.train import TrainingDiverged, train


@pytest.fixture(scope="module")
def tiny(tiny_pair):
    return tiny_pair


def cfg(**kw):
    base = dict(epochs=2, batch_size=64, eval_size=40, knn_k=5, proj_hidden=64, proj_dim=32, pred_hidden=64,
                device="cpu", precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("recipe", ["simclr", "byol", "supcon"])
def test_recipe_trains_and_writes_run(tmp_path, tiny, recipe):
    run = train(cfg(recipe=recipe), tmp_path / recipe, data=tiny, progress=False)
    assert len(run.history) == 2
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in run.history)
    assert 0.0 <= run.history[-1]["knn_acc"] <= 1.0
    for f in ("checkpoint.pt", "history.csv", "config.json"):
        assert (tmp_path / recipe / f).exists()
    ck = load_checkpoint(tmp_path / recipe)
    assert ck["epoch"] == 2 and ck["config"]["recipe"] == recipe


def test_predictor_lr_scales_only_the_predictor(tmp_path, tiny):
    """BYOL's ``predictor_lr``: the predictor's parameters get their own optimiser group at that multiple of the
    scheduled rate; every other parameter keeps the schedule; an unknown prefix is refused by name."""
    from gpsviz.optim import param_groups
    from gpsviz.train import _Loop

    t = _Loop(cfg(recipe="byol", epochs=1, objective_options={"predictor_lr": 10.0}), tmp_path / "r", tiny, [])
    groups = t.opt.param_groups
    pred = {id(p) for p in t.model.heads["predictor"].parameters()}
    assert [g["lr_scale"] for g in groups] == [10.0, 1.0]
    assert {id(p) for p in groups[0]["params"]} == pred and not pred & {id(p) for p in groups[1]["params"]}
    before = [p.detach().clone() for p in t.model.heads["predictor"].parameters()]
    t.optimise(t.make_batch(torch.arange(32), 0, 0), 1e-3)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-3])
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.heads["predictor"].parameters()))
    with pytest.raises(ConfigError, match="heads.nothing"):
        param_groups(t.model, {"heads.nothing.": 2.0})


@pytest.mark.numerics
@pytest.mark.parametrize("recipe,pos", [("byol", {}), ("gps-simclr", {"prior": "pixels", "k": 4}),
                                        ("nnclr", {})])
def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path, tiny, recipe, pos, numerics):
    c = cfg(recipe=recipe, epochs=3, aug="strong", positives_options=pos)
    full = train(c, tmp_path / "full", data=tiny, progress=False)
    train(c, tmp_path / "cut", data=tiny, progress=False, stop_after=1)       # "killed" after epoch 1
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 1
    resumed = train(c, tmp_path / "cut", data=tiny, progress=False, resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    numerics.gap(f"{recipe} resumed vs uninterrupted: weights",
                 max(float((a[k].double() - b[k].double()).abs().max()) for k in a), tol=0)
    numerics.gap(f"{recipe} resumed vs uninterrupted: losses",
                 max(abs(x["loss"] - y["loss"]) for x, y in zip(full.history, resumed.history)), tol=0)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]


def test_resume_refuses_a_different_config(tmp_path, tiny):
    train(cfg(), tmp_path / "r", data=tiny, progress=False, stop_after=1)
    with pytest.raises(ConfigError, match="different config"):
        train(cfg(lr=0.5), tmp_path / "r", data=tiny, progress=False, resume=True)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    c = cfg(epochs=3)
    train(c, tmp_path / "d", data=tiny, progress=False, stop_after=1)
    before = (tmp_path / "d" / "checkpoint.pt").read_bytes()
    import gpsviz.train as tr

    real = tr.ssl_step

    def poisoned(*a, **k):
        out = real(*a, **k)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(tr, "ssl_step", poisoned)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(c, tmp_path / "d", data=tiny, progress=False, resume=True)
    assert (tmp_path / "d" / "checkpoint.pt").read_bytes() == before


def test_truncated_and_foreign_checkpoints_give_clear_errors(tmp_path, tiny):
    train(cfg(epochs=1), tmp_path / "t", data=tiny, progress=False)
    p = tmp_path / "t" / "checkpoint.pt"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or foreign"):
        load_checkpoint(p)
    torch.save({"weights": torch.zeros(2)}, p)
    with pytest.raises(CheckpointError, match="not written by gpsviz"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize("field,value", [("epochs", -1), ("epochs", 0), ("batch_size", 1), ("lr", 0.0),
                                         ("temperature", -0.1), ("aug", "medium"), ("optimizer", "adam9"),
                                         ("recipe", "simclrr"), ("strength", -1.0)])
def test_impossible_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_batch_larger_than_data(tmp_path, tiny):
    with pytest.raises(ConfigError, match="larger than the training data"):
        train(cfg(batch_size=500), tmp_path / "b", data=tiny, progress=False)


def test_registry_lists_the_recipes():
    assert {"simclr", "byol", "supcon", "gps-simclr", "gps-byol", "nnclr"} <= set(RECIPES)


def test_config_roundtrip_and_unknown_field():
    c = cfg(recipe="supcon")
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({**c.to_dict(), "epoch": 3})


def test_train_or_resume_keys_folders_by_config(tmp_path, tiny):
    from gpsviz.runs import train_or_resume

    a = train_or_resume(cfg(epochs=1), "nb", root=tmp_path, data=tiny, progress=False)
    again = train_or_resume(cfg(epochs=1), "nb", root=tmp_path, data=tiny, progress=False)   # reloads, no clash
    other = train_or_resume(cfg(epochs=1, lr=0.01), "nb", root=tmp_path, data=tiny, progress=False)
    assert again.out_dir == a.out_dir != other.out_dir
    assert again.history == a.history
