"""SwAV against a transcription of the reference training loop (facebookresearch/swav ``main_swav.py``,
``crops_for_assign = [0, 1]``): Sinkhorn per global crop, the 1/(G(V−1)) pair weighting, and the feature queue.

The transcription below is written independently of ``gpsviz.objectives.swav``: plain loops over crops in the
reference's crop-major layout (``output[bs·crop : bs·(crop+1)]``), its own Sinkhorn in float64 following the
reference's algorithm. gpsviz's loss is taken from :func:`gpsviz.step.ssl_step` with uniform view weights (the
mean of the per-view losses, as training computes it).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gpsviz.batch import Batch
from gpsviz.objectives import SwAVObjective, build_weighting
from gpsviz.positives.base import ViewPlan
from gpsviz.step import ssl_step

B, G, L, P, K = 5, 2, 4, 8, 7          # instances, global views, local views, feature size, prototypes
V = G + L
TAU, EPS, ITERS = 0.1, 0.05, 3
REL = 1e-5


# ------------------------------------------------------------------ the reference, transcribed
def ref_sinkhorn(out: torch.Tensor, epsilon: float = EPS, iterations: int = ITERS) -> torch.Tensor:
    """Reference ``distributed_sinkhorn`` on one process, float64: ``out`` B×K scores → B×K codes."""
    q = torch.exp(out.double() / epsilon).T                     # K×B
    b, k = q.shape[1], q.shape[0]
    q = q / q.sum()
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True)
        q = q / k
        q = q / q.sum(dim=0, keepdim=True)
        q = q / b
    q = q * b
    return q.T


class RefSwAV:
    """The reference's per-step loss, with its queue state (``queue``: crops_for_assign × length × p)."""

    def __init__(self, queue_length: int = 0, queue_start_epoch: int = 15, pooled: bool = False) -> None:
        self.queue_length, self.queue_start_epoch, self.pooled = queue_length, queue_start_epoch, pooled
        self.queue: torch.Tensor | None = None
        self.epoch = -1
        self.use_the_queue = False

    def loss(self, embedding: torch.Tensor, prototypes: torch.Tensor, bs: int, epoch: int) -> float:
        """embedding: (V·bs)×p normalised, crop-major; prototypes K×p normalised."""
        if epoch != self.epoch:                                 # the reference's per-epoch bookkeeping
            self.epoch, self.use_the_queue = epoch, False
            if self.queue_length > 0 and epoch >= self.queue_start_epoch and self.queue is None:
                self.queue = torch.zeros(G, self.queue_length, embedding.shape[1], dtype=torch.float64)
        embedding = embedding.double()
        prototypes = prototypes.double()
        output = embedding @ prototypes.T
        if self.pooled:                                         # the regression: one Sinkhorn over both crops
            pooled = ref_sinkhorn(output[:G * bs])
        loss = 0.0
        for i, crop_id in enumerate(range(G)):
            out = output[bs * crop_id: bs * (crop_id + 1)]
            if self.queue is not None:
                if self.use_the_queue or not torch.all(self.queue[i, -1, :] == 0):
                    self.use_the_queue = True
                    out = torch.cat((self.queue[i] @ prototypes.T, out))
                self.queue[i, bs:] = self.queue[i, :-bs].clone()
                self.queue[i, :bs] = embedding[crop_id * bs: (crop_id + 1) * bs]
            q = pooled[bs * crop_id: bs * (crop_id + 1)] if self.pooled else ref_sinkhorn(out)[-bs:]
            subloss = 0.0
            for v in range(V):
                if v == crop_id:
                    continue
                x = output[bs * v: bs * (v + 1)] / TAU
                subloss -= torch.mean(torch.sum(q * F.log_softmax(x, dim=1), dim=1))
            loss += subloss / (V - 1)
        return float(loss / G)


# ------------------------------------------------------------------ gpsviz, through the shared step
class _Projector(nn.Module):
    def forward(self, h, batch):
        return h


class _Model(nn.Module):
    """backbone = identity, projector = identity: the views *are* the projections z."""

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.backbone, self.projector, self.teacher = nn.Identity(), _Projector(), None
        self.heads = nn.ModuleDict({"prototypes": nn.Linear(P, K, bias=False)})
        with torch.no_grad():
            self.heads["prototypes"].weight.copy_(prototypes)


def plan_crop_major(bs: int = B) -> ViewPlan:
    """The multi-crop plan's layout: slot 0 of every instance, slot 1, … (globals first, then locals)."""
    inst = torch.arange(bs).repeat(V)
    slots = torch.arange(V).repeat_interleave(bs)
    return ViewPlan(rows=inst.clone(), group_ids=inst.clone(), instance_ids=inst, slots=slots,
                    is_global=slots < G, sizes=torch.zeros(V * bs, dtype=torch.long))


def gpsviz_loss(obj: SwAVObjective, model: _Model, z: torch.Tensor, plan: ViewPlan, epoch: int = 5,
                order: torch.Tensor | None = None) -> dict:
    """Loss of the views ``z`` (crop-major rows), optionally presented to gpsviz in another row ``order``
    (globals still first: the step's size groups)."""
    if order is not None:
        z, plan = z[order], plan.select(order)
    n_glob = int(plan.is_global.sum())
    batch = Batch(views=[z[:n_glob], z[n_glob:]], params=None, plan=plan, epoch=epoch)
    return ssl_step(model, batch, obj, build_weighting("uniform"))


def random_step(g: torch.Generator, bs: int = B):
    z = F.normalize(torch.randn(V * bs, P, generator=g, dtype=torch.float64), dim=1)
    c = F.normalize(torch.randn(K, P, generator=g, dtype=torch.float64), dim=1)
    return z, c


def close(a: float, b: float, rel: float = REL) -> bool:
    return abs(a - b) <= rel * abs(b)


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("layout", ["crop-major", "shuffled"])
def test_loss_equals_the_reference_loop(layout):
    g = torch.Generator().manual_seed(0)
    for trial in range(3):
        z, c = random_step(g)
        order = None
        if layout == "shuffled":                                # rows in any order: crops found from the slots
            order = torch.cat([torch.randperm(G * B, generator=g), G * B + torch.randperm(L * B, generator=g)])
        out = gpsviz_loss(SwAVObjective(prototypes=K, temperature=TAU), _Model(c.float()), z.float(),
                          plan_crop_major(), order=order)
        want = RefSwAV().loss(z, c, B, epoch=5)
        got = float(out["loss"].detach())
        assert close(got, want), f"trial {trial}: gpsviz {got} vs reference {want}"
        assert float(out["weights"].sum()) == pytest.approx(1.0)
        assert out["codes"].shape == (G * B, K)


def test_per_crop_sinkhorn_differs_from_pooled():
    """Codes come from one Sinkhorn per global crop; pooling both crops (the old code) gives another loss."""
    g = torch.Generator().manual_seed(1)
    z, c = random_step(g)
    z[B:2 * B] = F.normalize(z[B:2 * B] + 1.5 * c[0], dim=1)   # crop 1 leans on prototype 0: pooling shifts codes
    got = float(gpsviz_loss(SwAVObjective(prototypes=K, temperature=TAU), _Model(c.float()), z.float(),
                            plan_crop_major())["loss"].detach())
    per_crop, pooled = RefSwAV().loss(z, c, B, 5), RefSwAV(pooled=True).loss(z, c, B, 5)
    assert abs(per_crop - pooled) > 1e3 * REL * abs(per_crop), (per_crop, pooled)   # the test can tell them apart
    assert close(got, per_crop)
    assert not close(got, pooled)


def test_global_to_global_pairs_weigh_20_percent_with_6_views():
    """Every view of an instance equal ⇒ every CE(q_s, p_t) of the instance equal: the global views' per-view
    losses (global→global pairs only) then carry 2 of the 10 pairs = 20 % (33 % with per-view averaging)."""
    g = torch.Generator().manual_seed(2)
    base = F.normalize(torch.randn(B, P, generator=g, dtype=torch.float64), dim=1)
    c = F.normalize(torch.randn(K, P, generator=g, dtype=torch.float64), dim=1)
    z = base.repeat(V, 1)                                       # crop-major: view (crop v, instance i) = base[i]
    out = gpsviz_loss(SwAVObjective(prototypes=K, temperature=TAU), _Model(c.float()), z.float(),
                      plan_crop_major())
    contrib = (out["weights"] * out["per_view"]).detach()   # M: each view's share of the loss
    glob = plan_crop_major().is_global
    share = float(contrib[glob].sum() / contrib.sum())
    assert share == pytest.approx(2 / 10, abs=1e-6)
    assert close(float(out["loss"].detach()), RefSwAV().loss(z, c, B, 5))


def test_queue_matches_the_reference():
    """Queue of 2 batches per crop from epoch 1: epoch 0 without, then filled for 2 steps, then used (prepended,
    only the batch's codes kept) and shifted; prototypes change between steps (the queue is scored with the
    current ones)."""
    g = torch.Generator().manual_seed(3)
    qlen = 2 * B
    obj = SwAVObjective(prototypes=K, temperature=TAU, queue_length=qlen, queue_start_epoch=1)
    ref = RefSwAV(queue_length=qlen, queue_start_epoch=1)
    plain = RefSwAV()
    used = 0
    for step, epoch in enumerate([0, 0, 1, 1, 1, 1, 2, 2]):
        z, c = random_step(g)
        got = float(gpsviz_loss(obj, _Model(c.float()), z.float(), plan_crop_major(), epoch=epoch)["loss"].detach())
        want, without = ref.loss(z, c, B, epoch), plain.loss(z, c, B, epoch)
        assert close(got, want), f"step {step} (epoch {epoch}): gpsviz {got} vs reference {want}"
        if ref.use_the_queue:
            used += 1
            assert not close(want, without, 1e-3), f"step {step}: the queue should change the codes"
        else:
            assert close(got, without)
        if ref.queue is None:
            assert obj.queue is None
        else:                                                   # shifted the same way, newest rows first
            assert torch.allclose(obj.queue.double(), ref.queue, atol=1e-6)
    assert used == 4                                            # steps 5–8: after 2 steps of filling


def test_queue_length_zero_is_the_plain_path():
    g = torch.Generator().manual_seed(4)
    off = SwAVObjective(prototypes=K, temperature=TAU, queue_length=0, queue_start_epoch=0)
    plain = SwAVObjective(prototypes=K, temperature=TAU)
    for step in range(4):
        z, c = random_step(g)
        a = gpsviz_loss(off, _Model(c.float()), z.float(), plan_crop_major(), epoch=step)
        b = gpsviz_loss(plain, _Model(c.float()), z.float(), plan_crop_major(), epoch=step)
        assert torch.equal(a["per_view"], b["per_view"]) and torch.equal(a["codes"], b["codes"])
    assert off.queue is None and plain.queue is None


def test_queue_is_not_filled_outside_training():
    g = torch.Generator().manual_seed(5)
    obj = SwAVObjective(prototypes=K, temperature=TAU, queue_length=B, queue_start_epoch=0)
    z, c = random_step(g)
    model = _Model(c.float()).eval()
    gpsviz_loss(obj, model, z.float(), plan_crop_major(), epoch=0)
    assert obj.queue is not None and obj.queue_rows == [0, 0] and not obj.queue.any()
    gpsviz_loss(obj, model.train(), z.float(), plan_crop_major(), epoch=0)
    assert obj.queue_rows == [B, B]
    assert torch.allclose(obj.queue[1], z[B:2 * B].float(), atol=1e-6)


def test_queue_options_are_checked():
    from gpsviz.errors import ConfigError

    with pytest.raises(ConfigError, match="queue_length"):
        SwAVObjective(queue_length=-1)
    with pytest.raises(ConfigError, match="queue_start_epoch"):
        SwAVObjective(queue_start_epoch=-2)
