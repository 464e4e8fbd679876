"""Run under ``torchrun --nproc_per_node=2`` by tests/test_distributed.py (CPU, gloo). Each task writes its
measurements (as JSON, from rank 0) to ``$OUT/<task>.json``; the test compares them with one process.

    torchrun --nproc_per_node=2 tests/integration/ddp_worker.py OUT_DIR
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from gpsviz import distributed as D
from gpsviz.objectives import multi_positive_ntxent

OUT = Path(sys.argv[1]) if __name__ == "__main__" else Path(".")   # importable (the test reuses groups_for)


def dump(name: str, obj) -> None:
    if D.is_main():
        (OUT / f"{name}.json").write_text(json.dumps(obj))


def groups_for(kind: str, m_all: int) -> torch.Tensor:
    """Global group ids of M_all views, rank 0's views first (the gathered order)."""
    half = m_all // 2
    if kind == "simclr":      # positives are views i and i + M/4 within each rank's block of M/2
        q = half // 2
        return torch.cat([torch.arange(q).repeat(2), q + torch.arange(q).repeat(2)])
    if kind == "gps":         # every positive pair straddles the two ranks: view i (rank 0) ↔ view i + M/2
        return torch.arange(half).repeat(2)
    if kind == "labels":      # 3 classes spread over both ranks
        return torch.arange(m_all) % 3
    raise ValueError(kind)


def loss_and_grads() -> None:
    """NT-Xent with world size 2: each rank's loss is the mean over its rows; the gradient it receives for its
    embeddings, divided by the world size (what DDP's average does to parameter gradients), must equal the
    single-process gradient of the mean loss over the concatenated batch."""
    out = {}
    for kind in ("simclr", "gps", "labels"):
        g = torch.Generator().manual_seed(5)
        z_all = torch.randn(16, 8, generator=g)                      # the same global batch on every rank
        ids_all = groups_for(kind, 16)
        m = 8
        mine = slice(D.rank() * m, (D.rank() + 1) * m)
        z = z_all[mine].clone().requires_grad_(True)
        zg, gg = D.gather_views(z, ids_all[mine])
        loss = D.local_rows(multi_positive_ntxent(zg, gg, temperature=0.3), m).mean()
        loss.backward()
        grad = z.grad / D.world_size()
        parts = [torch.empty_like(grad) for _ in range(D.world_size())]
        dist.all_gather(parts, grad)
        losses = [torch.zeros(()) for _ in range(D.world_size())]
        dist.all_gather(losses, loss.detach())
        out[kind] = {"loss": float(torch.stack(losses).mean()), "grad": torch.cat(parts).tolist(),
                     "ids_gathered": gg.tolist()}
    dump("loss_and_grads", out)


def global_statistics() -> None:
    """UOTA's instance means and covariance and SwAV's Sinkhorn sums run over the global batch: each rank holds
    half the views (whole instances on rank 0, split instances across ranks too)."""
    from gpsviz.objectives import sinkhorn, uota_scores

    g = torch.Generator().manual_seed(9)
    z_all = torch.randn(32, 6, generator=g)
    inst_all = torch.arange(8).repeat(4)                       # instance i's views sit on both ranks
    glob_all = torch.arange(32) < 16
    scores_all = (torch.randn(16, 5, generator=g) * 0.3).clamp(-1, 1)
    mine, half = slice(D.rank() * 16, (D.rank() + 1) * 16), slice(D.rank() * 8, (D.rank() + 1) * 8)
    u = D.gather_rows(uota_scores(z_all[mine], inst_all[mine], glob_all[mine]))
    q = D.gather_rows(sinkhorn(scores_all[half], epsilon=0.05, iterations=3))
    dump("global_statistics", {"uota": u.tolist(), "codes": q.tolist()})


def train_runs() -> None:
    from gpsviz.cli import main
    from gpsviz.config import TrainConfig
    from gpsviz.data import make_shapes
    from gpsviz.train import train

    tr, te = make_shapes(64, seed=1), make_shapes(32, seed=2)
    te.split = "test"
    common = dict(epochs=1, batch_size=32, eval_every=0, device="cpu", precision="fp32", proj_hidden=32,
                  proj_dim=16, backbone_options={"norm": "none"}, head_options={"num_layers": 1}, seed=3,
                  optimizer="sgd", lr=0.05)
    for recipe, extra in (("simclr", {}), ("gps-simclr", {"positives_options": {"prior": "pixels", "k": 3}})):
        cfg = TrainConfig(recipe=recipe, **common, **extra)
        train(cfg, OUT / f"two-steps-{recipe}", progress=False, data=(tr, te))
    # BYOL: the EMA teacher and the logged loss are the same on both ranks
    byol = TrainConfig(recipe="byol", **{**common, "epochs": 2}, pred_hidden=32)
    run = train(byol, OUT / "byol", progress=False, data=(tr, te))
    flat = torch.cat([p.flatten() for p in run.model.teacher.parameters()])
    both = [torch.empty_like(flat) for _ in range(D.world_size())]
    dist.all_gather(both, flat)
    dump("byol", {"teacher_max_diff_across_ranks": float((both[0] - both[1]).abs().max()),
                  "teacher_moved": float((flat - torch.cat([p.flatten() for p in run.model.backbone.parameters()]
                                                           + [p.flatten() for p in run.model.projector.parameters()])
                                          ).abs().max())})
    # only rank 0 writes: each rank is given its own folder; rank 1's must stay absent
    train(cfg, OUT / f"writes-rank{D.rank()}", progress=False, data=(tr, te))
    # the CLI under torchrun: an uninterrupted 3-epoch run (the kill/resume test compares against it)
    main(["train", "--recipe", "gps-simclr", "--prior", "pixels", "--k", "3", "--data-opt", "n=96",
          "--epochs", "3", "--batch-size", "32", "--seed", "1", "--device", "cpu", "--precision", "fp32",
          "--out", str(OUT / "cli-full"), "--no-eval"])


if __name__ == "__main__":
    torch.set_num_threads(1)
    D.setup("cpu")
    os.environ.setdefault("GPSVIZ_DATA", str(OUT / "data"))
    loss_and_grads()
    global_statistics()
    train_runs()
    dist.destroy_process_group()
