"""Kill test (issue 12, slow): SIGKILL training runs at random moments, some inside file writes, resume each time.

For simclr, byol and gps-simclr a run is killed repeatedly (20 kills in all) and resumed until it finishes. After
every kill each file of the run folder must be readable; no resume may crash; the finished weights must equal an
uninterrupted run's bit for bit; history.csv must hold exactly the checkpoint's history; no temp file or lock
may remain. ``pytest -m slow tests/test_kill.py -s`` prints the figures.

Marked ``numerics`` too: the bit-equality is legitimate (the same kernels and batch shapes both times) and must hold
under every CPU kernel setting; ``scripts/kernel_matrix.py --slow -- tests/test_kill.py`` checks that.
"""
from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
KILLS = {"simclr": 7, "byol": 7, "gps-simclr": 6}

DRIVER = r"""
import os, signal, sys
from pathlib import Path
import gpsviz.utils as U
kill_at = int(os.environ.get("KILL_IN_WRITE", "0"))
calls = [0]
original = U.atomic_write_bytes

def dying_write(path, data):
    calls[0] += 1
    if calls[0] == kill_at:                      # write half of a temp file, then die before the rename
        path = Path(path)
        with open(path.parent / f".{path.name}.killed.tmp", "wb") as f:
            f.write(data[: len(data) // 2]); f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return original(path, data)

U.atomic_write_bytes = dying_write
import gpsviz.train as T
T.atomic_write_bytes = dying_write
from gpsviz.config import TrainConfig
recipe, out = sys.argv[1], Path(sys.argv[2])
pos = {"prior": "pixels", "k": 4} if recipe.startswith("gps") else {}
cfg = TrainConfig(recipe=recipe, data_options={"n": 256}, epochs=4, batch_size=64, eval_every=2, eval_size=60,
                  knn_k=5, proj_hidden=64, proj_dim=32, pred_hidden=64, device="cpu", positives_options=pos, seed=3)
print("start", flush=True)
T.train(cfg, out, resume=(out / "checkpoint.pt").exists(), progress=False)
print("done", flush=True)
"""


def _run(recipe: str, out: Path, env: dict, kill_in_write: int = 0, kill_after: float | None = None):
    """Start the driver; kill it ``kill_after`` s after it has imported everything (or let it run).
    Returns (returncode, killed_by_us, stderr)."""
    p = subprocess.Popen([sys.executable, "-c", DRIVER, recipe, str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**env, "KILL_IN_WRITE": str(kill_in_write)})
    killed = False
    if kill_after is not None:
        line = p.stdout.readline()
        if line.strip() == "start":
            time.sleep(kill_after)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                killed = True
    _, err = p.communicate(timeout=600)
    return p.returncode, killed, err


def _readable(out: Path) -> list[str]:
    """Names of run files that exist but cannot be read."""
    from gpsviz.checkpoint import load_checkpoint
    from gpsviz.errors import GpsvizError

    bad = []
    if (out / "checkpoint.pt").exists():
        try:
            load_checkpoint(out)
        except GpsvizError:
            bad.append("checkpoint.pt")
    if (out / "config.json").exists():
        try:
            json.loads((out / "config.json").read_text())
        except ValueError:
            bad.append("config.json")
    if (out / "history.csv").exists():
        try:
            with open(out / "history.csv") as f:
                rows = list(csv.DictReader(f))
            [float(r["loss"]) for r in rows]
        except (ValueError, KeyError, csv.Error):
            bad.append("history.csv")
    return bad


@pytest.mark.slow
@pytest.mark.numerics
def test_kill_and_resume(tmp_path, numerics):
    from gpsviz.checkpoint import load_checkpoint

    rng = random.Random(2026)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPSVIZ_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
    figures = {"kills": 0, "in_write": 0, "timed": 0, "unreadable": 0, "crashed_resumes": 0, "resumes": 0,
               "bit_identical": 0, "history_consistent": 0, "leftover_tmp": 0}
    problems = []
    for recipe, n_kills in KILLS.items():
        ref = tmp_path / f"ref-{recipe}"
        t0 = time.perf_counter()
        rc, _, err = _run(recipe, ref, env)
        assert rc == 0, err
        duration = time.perf_counter() - t0
        out = tmp_path / f"cut-{recipe}"
        kills = 0
        while kills < n_kills:
            in_write = rng.random() < 0.4
            resuming = (out / "checkpoint.pt").exists()
            rc, killed, err = _run(recipe, out, env, kill_in_write=rng.randint(1, 3) if in_write else 0,
                                   kill_after=None if in_write else rng.uniform(0, duration * 0.8))
            figures["resumes"] += resuming
            if rc == 0 and kills < n_kills:          # finished before the next kill: start the run over
                ck = load_checkpoint(out)
                if ck["epoch"] == 4:
                    import shutil
                    shutil.rmtree(out)
                    figures["restarts"] = figures.get("restarts", 0) + 1
            if rc == -signal.SIGKILL:
                kills += 1
                figures["kills"] += 1
                figures["in_write" if not killed else "timed"] += 1
                bad = _readable(out)
                figures["unreadable"] += len(bad)
                if bad:
                    problems.append(f"{recipe}: unreadable {bad} after kill {kills}")
            elif rc != 0:
                figures["crashed_resumes"] += 1
                problems.append(f"{recipe}: exit {rc}: {err[-500:]}")
                break
        rc, _, err = _run(recipe, out, env)                  # finish (or just reopen a finished run)
        if rc != 0:
            figures["crashed_resumes"] += 1
            problems.append(f"{recipe}: final resume exit {rc}: {err[-500:]}")
            continue
        a, b = load_checkpoint(ref), load_checkpoint(out)
        same = a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k])
                                                               for k in a["model"])
        figures["bit_identical"] += same
        if a["model"].keys() == b["model"].keys():
            numerics.gap(f"kill test {recipe}: resumed vs uninterrupted weights",
                         max(float((a["model"][k].double() - b["model"][k].double()).abs().max()) for k in a["model"]),
                         tol=0)
        if not same:
            problems.append(f"{recipe}: final weights differ from the uninterrupted run")
        with open(out / "history.csv") as f:
            rows = list(csv.DictReader(f))
        consistent = [int(r["epoch"]) for r in rows] == [h["epoch"] for h in b["history"]] == list(range(1, 5)) \
            and [float(r["loss"]) for r in rows] == [h["loss"] for h in b["history"]] \
            and [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
        figures["history_consistent"] += consistent
        if not consistent:
            problems.append(f"{recipe}: history.csv {rows} vs checkpoint {b['history']}")
        leftovers = list(out.glob(".*.tmp")) + list(out.glob(".gpsviz.lock"))
        figures["leftover_tmp"] += len(leftovers)
        if leftovers:
            problems.append(f"{recipe}: left {leftovers}")
    print("kill-test figures:", json.dumps(figures))
    assert figures["kills"] == sum(KILLS.values())
    assert not problems, "\n".join(problems)
    assert figures["bit_identical"] == figures["history_consistent"] == len(KILLS)
