"""Foundation 3: one shared step for every recipe — view plans, recipe slots, callbacks, precision.

The pinned losses were recorded with the loop as it was before the step was shared (commit cda6e83: two views
hard-coded, one step function per objective), on the same data, seed and settings, with one thread. Only the
first three steps are pinned, each with its own tolerance (:data:`PIN_TOL`): after AdamW updates, float
differences in reductions (thread count, CPU kernels) are amplified by Adam's normalisation (seen: 6e-4 at step 4
with two threads instead of one).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gpsviz.augment.views import build_views
from gpsviz.callbacks import StepRecorder
from gpsviz.config import TrainConfig
from gpsviz.data import make_shapes
from gpsviz.errors import ConfigError
from gpsviz.models.heads import Head, register_head
from gpsviz.objectives import Weighting, register_weighting
from gpsviz.positives import build_positives
from gpsviz.recipes import RECIPES, Recipe, register_recipe
from gpsviz.train import train

PINNED = {  # first five steps' losses: shapes n=512 seed 3, batch 64, seed 7, fp32, the defaults of that time
    #         (the world now named "textured", SimCLR's published preset now named "simclr", BYOL momentum 0.99)
    "simclr": [4.872369289398193, 4.424422740936279, 4.292962074279785, 3.9812698364257812, 4.366238594055176],
    "byol": [2.0567424297332764, 1.8955992460250854, 1.5951037406921387, 1.31407630443573, 1.1437575817108154],
    "supcon": [5.373522758483887, 5.02244758605957, 4.899658679962158, 4.876433372497559, 4.909226417541504],
    "gps-simclr": [5.078586101531982, 4.890937805175781, 4.6917219161987305, 4.6806721687316895,
                   4.603165626525879],
}


# Tolerance of the loss at steps 1, 2, 3: at least 10 × the spread measured across CPU kernel families
# (scripts/kernel_matrix.py: ONEDNN_MAX_CPU_ISA ∈ {best, AVX512_CORE, AVX2, SSE41} × ATEN_CPU_CAPABILITY ∈ {best,
# avx2, default}, the pins included; docs/kernel-matrix.md). Largest spread over the four recipes, and why:
#   step 1  4.8e-7  the forward pass of the seeded initial weights: one float32 ulp at a loss of 5, whatever the
#                   kernels (kernel-independent) → 1e-5
#   step 2  4.0e-5  after one AdamW update (gps-simclr; the others ≤ 1.9e-6): Adam's first step is about
#                   lr · sign(gradient), so a gradient entry near zero that rounds to the other sign moves its
#                   weight by a whole step → 5e-4
#   step 3  2.1e-4  after two updates (gps-simclr: ATen's default kernels +1.1e-4, oneDNN SSE4.1 −9.5e-5; an Intel
#                   Xeon with AMX was seen at +8.9e-5, issue 18) → 3e-3
# Steps 4 and 5 (spread up to 8.3e-4) are recorded for the table, not asserted.
PIN_TOL = (1e-5, 5e-4, 3e-3)


@pytest.fixture(scope="module")
def pin_data():
    from gpsviz.data import load_dataset

    return (load_dataset("shapes", "train", n=512, seed=3, cache=False, variant="textured"),
            load_dataset("shapes", "test", n=256, seed=3, cache=False, variant="textured"))


@pytest.fixture(scope="module")
def tiny(tiny_pair):
    return tiny_pair


def small(**kw):
    base = dict(epochs=1, batch_size=32, eval_every=0, proj_hidden=32, proj_dim=16, pred_hidden=32,
                device="cpu", precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.numerics
@pytest.mark.parametrize("recipe", sorted(PINNED))
def test_shared_step_reproduces_the_losses_of_the_old_loop(tmp_path, pin_data, recipe, numerics):
    extra = {"positives_options": {"prior": "pixels", "k": 5}} if recipe == "gps-simclr" else {}
    rec = StepRecorder(last=100)
    cfg = TrainConfig(recipe=recipe, epochs=1, batch_size=64, eval_every=0, device="cpu", seed=7,
                      precision="fp32", aug="simclr", momentum_base=0.99, **extra)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, tmp_path / recipe, progress=False, data=pin_data, callbacks=[rec])
    finally:
        torch.set_num_threads(threads)
    got = [float(s["loss"]) for s in rec.steps][:5]
    tols = PIN_TOL + (None,) * (len(got) - len(PIN_TOL))
    for i, (g, want, tol) in enumerate(zip(got, PINNED[recipe], tols), 1):
        numerics.value(f"{recipe} loss step {i}", g, pinned=want, tol=tol)
    for i, (g, want, tol) in enumerate(zip(got, PINNED[recipe], PIN_TOL), 1):
        assert g == pytest.approx(want, abs=tol), f"step {i}: {g} vs pinned {want} (tolerance {tol})"


# ------------------------------------------------------------------ dummy ingredients no paper ran
@register_head("test-conditioned")
class ParamConditionedHead(Head):
    """Concatenates the CASSLE descriptor to the feature before a linear map (a stand-in for a real
    conditioned projector)."""

    needs_descriptor = True

    def __init__(self, in_dim, cfg, width: int = 16):
        super().__init__()
        self.lin = nn.Linear(in_dim + 14, cfg.proj_dim)
        self.out_dim = cfg.proj_dim
        self.seen: list[int] = []

    def forward(self, h, batch=None, index=None):
        d = batch.descriptor if index is None else batch.descriptor[index]
        self.seen.append(d.shape[0])
        return self.lin(torch.cat([h, d.to(h.dtype)], dim=1))


@register_weighting("test-by-loss")
class LossSoftmaxWeighting(Weighting):
    """Weights ∝ softmax of the per-view losses (harder views count more)."""

    def __call__(self, per_view, batch, out):
        return torch.softmax(per_view.float(), dim=0)


def test_a_new_combination_is_one_line_of_recipe_and_trains(tmp_path, tiny):
    register_recipe(Recipe("test-gps-byol-cond", "GPS + BYOL + conditioned head + loss weighting",
                           positives="neighbours", objective="byol", head="test-conditioned",
                           weighting="test-by-loss", positives_options={"prior": "pixels", "k": 3}))
    rec = StepRecorder(last=10, keys=None)
    run = train(small(recipe="test-gps-byol-cond"), tmp_path / "combo", progress=False, data=tiny, callbacks=[rec])
    assert torch.isfinite(torch.tensor(run.history[-1]["loss"]))
    head = run.model.projector
    assert isinstance(head, ParamConditionedHead)
    # the teacher's copy of the head is conditioned on its own views (global views only), the student on all
    assert isinstance(run.model.teacher.projector, ParamConditionedHead)
    last = rec.steps[-1]
    w = last["weights"]
    assert w.shape == last["per_view"].shape and float(w.sum()) == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(w, torch.full_like(w, 1 / len(w)))         # the weighting really was used
    assert last["loss"] == pytest.approx(float((w * last["per_view"]).sum()), abs=1e-5)
    assert "teacher_z" in last and "p" in last


@pytest.mark.parametrize("slot,value,check", [
    ("positives", "labels", lambda run: type(run.model.projector).__name__ == "MLPProjector"),
    ("objective", "byol", lambda run: run.model.teacher is not None and "predictor" in run.model.heads),
    ("head", "test-conditioned", lambda run: isinstance(run.model.projector, ParamConditionedHead)),
    ("weighting", "test-by-loss", lambda run: run.model.teacher is None),
    ("views", "multicrop", lambda run: run.model.teacher is None),
])
def test_each_slot_can_be_swapped_alone(tmp_path, tiny, slot, value, check):
    rec = StepRecorder(last=1, keys=None)
    cfg = small(recipe="simclr", **{slot: value})
    others = {s: getattr(cfg, s) for s in ("positives", "views", "head", "objective", "weighting") if s != slot}
    assert others == {s: getattr(RECIPES["simclr"], s) for s in others}     # only this slot changed
    run = train(cfg, tmp_path / slot, progress=False, data=tiny, callbacks=[rec])
    assert check(run)
    out = rec.steps[-1]
    if slot == "views":       # 2 global + 4 local views per anchor
        assert out["per_view"].shape[0] == 6 * 32 and out["is_global"].sum() == 2 * 32
    else:
        assert out["per_view"].shape[0] == 2 * 32
    if slot == "positives":   # label positives: group id = class label
        assert torch.equal(out["group_ids"], tiny[0].labels[out["rows"]])


def test_recipe_defaults_override_config_defaults_and_explicit_values_override_both():
    register_recipe(Recipe("test-cold", "SimCLR at τ = 0.07", defaults={"temperature": 0.07}))
    assert TrainConfig(recipe="test-cold").temperature == 0.07
    assert TrainConfig(recipe="test-cold", temperature=0.2).temperature == 0.2      # explicit 0.2 wins
    assert TrainConfig(recipe="simclr").temperature == 0.2
    c = TrainConfig(recipe="test-cold", temperature=0.5)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig(recipe=register_recipe(Recipe("test-bad", "x", defaults={"tau": 1})).name)


def test_unknown_slot_choices_and_options_are_one_clear_error():
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(objective="dino9")
    with pytest.raises(ConfigError, match="local_views"):
        TrainConfig(views="multicrop", views_options={"local_view": 2})
    with pytest.raises(ConfigError, match="views"):
        register_recipe(Recipe("test-x", "x", views="nope"))


def test_multicrop_plan_sizes_ids_and_one_call_per_size():
    maker = build_views("multicrop", global_views=2, local_views=4, local_size=16)
    maker.configure("strong", 1.0, 32)
    imgs = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8)
    plan = build_positives("self").plan(torch.arange(5))
    batch = maker(imgs, plan, generator=torch.Generator().manual_seed(0), descriptor=True)
    assert [tuple(v.shape) for v in batch.views] == [(10, 3, 32, 32), (20, 3, 16, 16)]
    assert len(batch.params) == 30 and batch.descriptor.shape == (30, 14)
    assert batch.is_global.tolist() == [True] * 10 + [False] * 20
    assert batch.plan.sizes.tolist() == [32] * 10 + [16] * 20
    # every view of instance i is made from image i and is a positive of the instance's other views
    assert torch.equal(batch.plan.rows, batch.plan.instance_ids)
    assert torch.equal(batch.group_ids, batch.instance_ids)
    # local crops are smaller boxes than the preset's global crops can be at minimum (scale ≤ 0.4)
    area = batch.params["crop_h"] * batch.params["crop_w"] / (32 * 32)
    assert float(area[10:].max()) <= 0.4 + 1e-6


def test_gps_plan_keeps_anchor_and_partner_as_one_instance():
    src = build_positives("neighbours", prior="pixels", k=2, progress=False)
    ds = make_shapes(40, seed=4)
    src.prepare(ds)
    anchors = torch.arange(6)
    plan = src.plan(anchors, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plan.rows[:6], anchors) and not torch.equal(plan.rows[6:], anchors)
    assert torch.equal(plan.instance_ids, torch.arange(6).repeat(2))
    assert plan.slots.tolist() == [0] * 6 + [1] * 6


def test_recorder_keeps_the_values_the_loss_used(tmp_path, tiny):
    rec = StepRecorder(last=3)
    train(small(recipe="simclr", epochs=2), tmp_path / "r", progress=False, data=tiny, callbacks=[rec])
    assert len(rec.steps) == 3 and [s["step"] for s in rec.steps] == [9, 10, 11]   # 2 epochs × 6 steps
    assert len(rec.epochs) == 2
    s = rec.steps[-1]
    assert s["per_view"].device.type == "cpu" and not s["per_view"].requires_grad
    assert float(s["loss"]) == pytest.approx(float(s["per_view"].mean()), abs=1e-5)


def test_bf16_autocast_trains_and_keeps_the_loss_in_float32(tmp_path, tiny):
    rec = StepRecorder(last=1, keys=None)
    run = train(small(recipe="byol", precision="bf16"), tmp_path / "bf16", progress=False, data=tiny,
                callbacks=[rec])
    assert torch.isfinite(torch.tensor(run.history[-1]["loss"]))
    assert rec.steps[-1]["per_view"].dtype == torch.float32
    assert rec.steps[-1]["h"].dtype == torch.bfloat16                    # the backbone really ran in bf16


def test_fp16_on_cpu_is_refused(tmp_path, tiny):
    with pytest.raises(ConfigError, match="fp16"):
        train(small(precision="fp16"), tmp_path / "x", progress=False, data=tiny)
