"""Objectives: multi-positive NT-Xent against plain NT-Xent and a hand computation; BYOL loss, momentum, EMA."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gpsviz.errors import ConfigError
from gpsviz.objectives import byol_loss, byol_momentum, ema_update, multi_positive_ntxent, nt_xent


def _pair_groups(b: int) -> torch.Tensor:
    return torch.arange(b).repeat(2)                                   # [0..B-1, 0..B-1]


@pytest.mark.parametrize("b", [1, 2, 7, 64])
@pytest.mark.parametrize("tau", [0.07, 0.2, 0.5, 1.0])
def test_multi_positive_equals_nt_xent_with_one_positive(b: int, tau: float) -> None:
    g = torch.Generator().manual_seed(b * 1000 + int(tau * 100))
    z1, z2 = torch.randn(b, 16, generator=g), torch.randn(b, 16, generator=g) * 3.0   # scale is irrelevant
    ref = nt_xent(z1, z2, tau)
    got = multi_positive_ntxent(torch.cat([z1, z2]), _pair_groups(b), tau)
    assert ref.shape == got.shape == (2 * b,)
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)


def test_gradients_match_nt_xent() -> None:
    z = torch.randn(20, 8, requires_grad=True)
    multi_positive_ntxent(z, _pair_groups(10)).mean().backward()
    g1 = z.grad.clone()
    z.grad = None
    nt_xent(z[:10], z[10:]).mean().backward()
    assert torch.allclose(g1, z.grad, atol=1e-6)


def test_permutation_invariance() -> None:
    torch.manual_seed(1)
    z = torch.randn(24, 8)
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 2, 10])
    loss = multi_positive_ntxent(z, groups, 0.3)
    perm = torch.randperm(24)
    loss_p = multi_positive_ntxent(z[perm], groups[perm], 0.3)
    assert torch.allclose(loss_p, loss[perm], atol=1e-6)
    # relabelling the groups changes nothing either
    relabel = torch.randperm(11)
    assert torch.allclose(multi_positive_ntxent(z, relabel[groups], 0.3), loss, atol=1e-6)


def test_loss_decreases_when_positives_get_closer() -> None:
    torch.manual_seed(2)
    b = 16
    z1 = torch.randn(b, 32)
    noise = torch.randn(b, 32)
    losses = []
    for alpha in (2.0, 1.0, 0.5, 0.1, 0.0):
        z2 = z1 + alpha * noise                                        # positives more similar as alpha → 0
        losses.append(float(multi_positive_ntxent(torch.cat([z1, z2]), _pair_groups(b), 0.2).mean()))
    assert all(a > b_ for a, b_ in zip(losses, losses[1:])), losses


def test_multiple_positives_match_hand_computation() -> None:
    torch.manual_seed(3)
    z = torch.randn(5, 4)
    groups = torch.tensor([7, 7, 7, 3, 3])                             # views 0,1,2 one set; 3,4 another
    tau = 0.5
    got = multi_positive_ntxent(z, groups, tau)
    zn = z / z.norm(dim=1, keepdim=True)
    s = (zn @ zn.T / tau).tolist()
    expected = []
    for i in range(5):
        denom = sum(math.exp(s[i][k]) for k in range(5) if k != i)
        pos = [p for p in range(5) if p != i and groups[p] == groups[i]]
        expected.append(-sum(math.log(math.exp(s[i][p]) / denom) for p in pos) / len(pos))
    assert torch.allclose(got, torch.tensor(expected), atol=1e-5)


def test_view_without_positive_gets_zero_loss_and_no_nan() -> None:
    torch.manual_seed(4)
    z = torch.randn(5, 6, requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1, 2])                             # view 4 is alone
    loss = multi_positive_ntxent(z, groups)
    assert loss[4] == 0 and torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(z.grad).all()
    # the lonely view is still a negative for the others: moving it changes their loss
    z2 = z.detach().clone()
    z2[4] = z2[0]
    assert not torch.allclose(multi_positive_ntxent(z2, groups)[:4], loss[:4].detach())
    # no positive anywhere, and a single view: zeros, finite gradients
    z3 = torch.randn(3, 6, requires_grad=True)
    l3 = multi_positive_ntxent(z3, torch.tensor([0, 1, 2]))
    l3.sum().backward()
    assert torch.equal(l3.detach(), torch.zeros(3)) and torch.isfinite(z3.grad).all()
    assert multi_positive_ntxent(torch.randn(1, 6), torch.tensor([0])).shape == (1,)


def test_low_precision_and_extreme_temperature_are_stable() -> None:
    torch.manual_seed(5)
    z = torch.randn(32, 16)
    groups = _pair_groups(16)
    ref = multi_positive_ntxent(z, groups, 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = multi_positive_ntxent(z.bfloat16(), groups, 0.2)
        low_nt = nt_xent(z[:16].bfloat16(), z[16:].bfloat16(), 0.2)
    assert low.dtype == torch.float32 and low_nt.dtype == torch.float32
    assert torch.allclose(low, ref, atol=0.1)
    assert torch.allclose(low_nt, ref, atol=0.1)
    tiny = multi_positive_ntxent(z, groups, 1e-3)                      # logits up to 1000: logsumexp keeps it finite
    assert torch.isfinite(tiny).all()
    half = multi_positive_ntxent(z.half(), groups, 0.05)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()


def test_argument_errors() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        multi_positive_ntxent(torch.randn(4, 2), torch.arange(4), 0.0)
    with pytest.raises(ConfigError, match="group_ids"):
        multi_positive_ntxent(torch.randn(4, 2), torch.arange(3))
    with pytest.raises(ConfigError):
        nt_xent(torch.randn(4, 2), torch.randn(3, 2))
    with pytest.raises(ConfigError):
        byol_loss(torch.randn(4, 2), torch.randn(4, 3))
    with pytest.raises(ConfigError):
        byol_momentum(0, 0)


def test_byol_loss_range_and_gradient() -> None:
    torch.manual_seed(6)
    p = torch.randn(50, 8)
    assert torch.allclose(byol_loss(p, p), torch.zeros(50), atol=1e-6)
    assert torch.allclose(byol_loss(p, 3 * p), torch.zeros(50), atol=1e-6)   # scale-free
    assert torch.allclose(byol_loss(p, -p), torch.full((50,), 4.0), atol=1e-6)
    r = byol_loss(p, torch.randn(50, 8))
    assert r.shape == (50,) and (r >= 0).all() and (r <= 4).all()
    # stop-gradient on the target
    p.requires_grad_(True)
    z = torch.randn(50, 8, requires_grad=True)
    byol_loss(p, z).sum().backward()
    assert p.grad is not None and z.grad is None


def test_byol_momentum_schedule() -> None:
    assert byol_momentum(0, 100) == pytest.approx(0.99)
    assert byol_momentum(100, 100) == pytest.approx(1.0)
    assert byol_momentum(50, 100) == pytest.approx(0.995)
    assert byol_momentum(0, 10, base=0.996) == pytest.approx(0.996)
    assert byol_momentum(500, 100) == pytest.approx(1.0)                # clamped
    # the cosine form τ = 1 − (1 − τ_base)(cos(πk/K) + 1)/2, pinned where it differs from a linear ramp (at k = K/2
    # both give 0.995): at k = K/4 cosine gives 0.991464, linear 0.9925
    assert byol_momentum(25, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2, abs=1e-12)
    assert byol_momentum(25, 100) == pytest.approx(0.9914645, abs=1e-7)
    assert byol_momentum(75, 100) == pytest.approx(0.9985355, abs=1e-7)
    ms = [byol_momentum(t, 20) for t in range(21)]
    assert all(a <= b for a, b in zip(ms, ms[1:]))


def test_ema_update_math() -> None:
    torch.manual_seed(7)
    online = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    target = copy.deepcopy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    online(torch.randn(8, 4))                                          # changes BN running stats
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update(target, online, 0.9)
    for name, p in online.named_parameters():
        expected = 0.9 * before[name] + 0.1 * p.detach()
        assert torch.allclose(target.get_parameter(name), expected, atol=1e-6)
        assert not target.get_parameter(name).requires_grad or target.get_parameter(name).grad is None
    for name, buf in online.named_buffers():
        assert torch.equal(target.get_buffer(name), buf)
    ema_update(target, online, 0.0)                                    # momentum 0 copies
    for (_, a), (_, b) in zip(target.named_parameters(), online.named_parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="structure"):
        ema_update(nn.Linear(4, 3), online, 0.5)
