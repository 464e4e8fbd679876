"""Scale-out: torchrun + DistributedDataParallel on CPU (gloo, 2 processes) equals one process.

One torchrun launch (tests/integration/ddp_worker.py) measures everything the two processes must agree on; a second one is
SIGKILLed mid-run and a third resumes it. Tolerances (float32; the gathered batch sums in another order than the
single-process one), each at least 10 × the largest gap measured across CPU kernel families by
scripts/kernel_matrix.py (docs/kernel-matrix.md): NT-Xent loss 5e-6 (gap up to 2.4e-7, one ulp), its gradients
1e-6 (2.2e-8), weights after two SGD steps 1e-5 (3.8e-7; SGD, not AdamW, for this comparison: Adam's
per-parameter normalisation turns float-order differences of near-zero gradients into differences of a sizeable
fraction of a step, seen 1.5e-5 after two steps at lr 2e-3), UOTA scores 1e-4 (1.9e-6), Sinkhorn codes 1e-6 (0).
Within one kernel setting, the BYOL teachers of the two ranks and a killed-and-resumed run against the
uninterrupted one are compared bit for bit: the same kernels on the same batch shapes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gpsviz.checkpoint import load_checkpoint
from gpsviz.objectives import multi_positive_ntxent

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]


def _env(tmp: Path) -> dict:
    env = dict(os.environ, GPSVIZ_DATA=str(tmp / "data"), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    return env


def _port() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    t0 = time.perf_counter()
    r = subprocess.run(TORCHRUN + [f"--master_port={_port()}", str(ROOT / "tests" / "integration" / "ddp_worker.py"), str(out)],
                       env=_env(out), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out.joinpath("wall.txt").write_text(f"{time.perf_counter() - t0:.1f}")
    return out


@pytest.mark.numerics
@pytest.mark.parametrize("kind", ["simclr", "gps", "labels"])
def test_ntxent_loss_and_gradients_equal_one_process(ddp, kind, numerics):
    sys.path.insert(0, str(ROOT / "tests"))
    from ddp_worker import groups_for

    got = json.loads((ddp / "loss_and_grads.json").read_text())[kind]
    g = torch.Generator().manual_seed(5)
    z = torch.randn(16, 8, generator=g).requires_grad_(True)
    ids = groups_for(kind, 16)
    loss = multi_positive_ntxent(z, ids, temperature=0.3).mean()
    loss.backward()
    assert got["ids_gathered"] == ids.tolist()                      # global ids, rank order
    numerics.gap(f"ddp {kind} NT-Xent loss: 2 vs 1 process", abs(got["loss"] - loss.item()), tol=5e-6)
    numerics.gap(f"ddp {kind} NT-Xent grad: 2 vs 1 process",
                 float((torch.tensor(got["grad"]) - z.grad).abs().max()), tol=1e-6)
    assert got["loss"] == pytest.approx(loss.item(), abs=5e-6)
    assert torch.allclose(torch.tensor(got["grad"]), z.grad, atol=1e-6), \
        float((torch.tensor(got["grad"]) - z.grad).abs().max())


@pytest.mark.numerics
@pytest.mark.parametrize("recipe,extra", [("simclr", {}),
                                          ("gps-simclr", {"positives_options": {"prior": "pixels", "k": 3}})])
def test_two_steps_on_two_processes_give_the_weights_of_one_process(ddp, tmp_path, recipe, extra, numerics):
    from gpsviz.config import TrainConfig
    from gpsviz.data import make_shapes
    from gpsviz.train import train

    tr, te = make_shapes(64, seed=1), make_shapes(32, seed=2)
    te.split = "test"
    cfg = TrainConfig(recipe=recipe, epochs=1, batch_size=32, eval_every=0, device="cpu", precision="fp32",
                      proj_hidden=32, proj_dim=16, backbone_options={"norm": "none"},
                      head_options={"num_layers": 1}, seed=3,
                      optimizer="sgd", lr=0.05, **extra)
    one = train(cfg, tmp_path / "one", progress=False, data=(tr, te)).model.state_dict()
    two = load_checkpoint(ddp / f"two-steps-{recipe}")
    assert two["epoch"] == 1 and two["config"] == cfg.to_dict()
    worst = max(float((one[k].float() - two["model"][k].float()).abs().max()) for k in one)
    numerics.gap(f"ddp {recipe} weights after 2 SGD steps: 2 vs 1 process", worst, tol=1e-5)
    assert worst < 1e-5, worst
    from gpsviz.recipes import build_ingredients

    torch.manual_seed(cfg.seed)                              # the initial weights: training really moved them
    init = build_ingredients(cfg, 3, 32).model.state_dict()
    assert max(float((one[k] - init[k]).abs().max()) for k in one) > 1e-4


@pytest.mark.numerics
def test_uota_and_sinkhorn_statistics_are_over_the_global_batch(ddp, numerics):
    from gpsviz.objectives import sinkhorn, uota_scores

    got = json.loads((ddp / "global_statistics.json").read_text())
    g = torch.Generator().manual_seed(9)
    z_all = torch.randn(32, 6, generator=g)
    inst_all = torch.arange(8).repeat(4)
    scores_all = (torch.randn(16, 5, generator=g) * 0.3).clamp(-1, 1)
    one_u = uota_scores(z_all, inst_all, torch.arange(32) < 16)
    one_q = sinkhorn(scores_all, epsilon=0.05, iterations=3)
    numerics.gap("ddp UOTA scores: 2 vs 1 process", float((torch.tensor(got["uota"]) - one_u).abs().max()), tol=1e-4)
    numerics.gap("ddp Sinkhorn codes: 2 vs 1 process", float((torch.tensor(got["codes"]) - one_q).abs().max()),
                 tol=1e-6)
    assert torch.allclose(torch.tensor(got["uota"]), one_u, rtol=1e-4, atol=1e-4)
    assert torch.allclose(torch.tensor(got["codes"]), one_q, atol=1e-6)


@pytest.mark.numerics
def test_byol_teacher_is_the_same_on_both_ranks(ddp, numerics):
    got = json.loads((ddp / "byol.json").read_text())
    numerics.gap("ddp BYOL teacher: rank 0 vs rank 1", got["teacher_max_diff_across_ranks"], tol=0)
    assert got["teacher_max_diff_across_ranks"] == 0.0
    assert got["teacher_moved"] > 0.0                     # the EMA lags the online weights: it really updated


def test_only_rank_zero_writes_files(ddp):
    assert (ddp / "writes-rank0" / "checkpoint.pt").exists()
    assert (ddp / "writes-rank0" / "history.csv").exists()
    assert not (ddp / "writes-rank1").exists()


@pytest.mark.numerics
def test_kill_and_resume_under_torchrun_reach_the_uninterrupted_weights(ddp, tmp_path, numerics):
    args = ["-m", "gpsviz", "train", "--recipe", "gps-simclr", "--prior", "pixels", "--k", "3", "--data-opt",
            "n=96", "--epochs", "3", "--batch-size", "32", "--seed", "1", "--device", "cpu", "--precision", "fp32",
            "--out", str(tmp_path / "cut"), "--no-eval"]
    env = _env(ddp)                                          # same data folder: the same cached shapes
    proc = subprocess.Popen(TORCHRUN + [f"--master_port={_port()}"] + args, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ck = tmp_path / "cut" / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ck.exists() and load_checkpoint(ck)["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)                      # torchrun and both workers, mid-epoch 2
    proc.wait()
    killed_at = load_checkpoint(ck)["epoch"]
    assert killed_at < 3
    r = subprocess.run(TORCHRUN + [f"--master_port={_port()}"] + args + ["--resume"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    full, resumed = load_checkpoint(ddp / "cli-full"), load_checkpoint(ck)
    assert resumed["epoch"] == full["epoch"] == 3
    numerics.gap("ddp gps-simclr killed+resumed vs uninterrupted: weights",
                 max(float((v.double() - resumed["model"][k].double()).abs().max())
                     for k, v in full["model"].items()), tol=0)
    numerics.gap("ddp gps-simclr killed+resumed vs uninterrupted: losses",
                 max(abs(a["loss"] - b["loss"]) for a, b in zip(full["history"], resumed["history"])), tol=0)
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    assert [h["loss"] for h in full["history"]] == [h["loss"] for h in resumed["history"]]
