"""Shared fixtures and helpers of every test folder (``unit/<module>``, ``integration``, ``browser``). Browser
tests: ``chromium_page`` (the harness is ``browser/harness.py``)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))   # `from conftest import …` under any pytest import mode
sys.path.insert(0, str(Path(__file__).resolve().parent / "browser"))   # `from harness import …` likewise


@pytest.fixture
def chromium_page():
    """A Playwright page in headless Debian Chromium (skipped with the reason if missing; a failure when CI=true)."""
    from harness import browser_page

    with browser_page() as page:
        yield page


@pytest.fixture(scope="module")
def tiny_pair():
    """(train, test) of a tiny shapes world: 192 training and 64 test images (separate seeds)."""
    from gpsviz.data import make_shapes

    tr = make_shapes(192, seed=1)
    te = make_shapes(64, seed=2)
    te.split = "test"
    return tr, te


# ------------------------------------------------------------------ numbers that depend on CPU kernels
class NumericRecord:
    """What a ``numerics`` test measured, for ``scripts/kernel_matrix.py`` (issue 18).

    A test calls ``numerics.value(name, got, pinned=…, tol=…)`` for a number it compares with a pinned one, and
    ``numerics.gap(name, gap, tol=…)`` for the largest difference between two results that must agree (``tol=0``:
    bit-equality). The test still asserts by itself; recording never changes an outcome. When the environment
    variable ``GPSVIZ_RECORD_PINS`` names a file, each call appends one JSON line to it (with the test's id and
    the kernel settings); otherwise the calls do nothing.
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self.path = os.environ.get("GPSVIZ_RECORD_PINS")

    def value(self, name: str, got: float, *, pinned: float, tol: float | None) -> None:
        """``tol=None``: recorded for the table only, not asserted by the test."""
        self._write({"kind": "value", "name": name, "got": float(got), "pinned": float(pinned),
                     "tol": None if tol is None else float(tol)})

    def gap(self, name: str, gap: float, *, tol: float) -> None:
        self._write({"kind": "gap", "name": name, "got": float(gap), "tol": float(tol)})

    def _write(self, row: dict) -> None:
        if not self.path:
            return
        row.update(test=self.node, **{k: os.environ.get(k, "") for k in KERNEL_VARIABLES})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


KERNEL_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


@pytest.fixture
def numerics(request) -> NumericRecord:
    """Recorder of kernel-sensitive numbers (see :class:`NumericRecord`); use it in tests marked ``numerics``."""
    return NumericRecord(request.node.nodeid)


def tiny_cfg(**kw):
    """A TrainConfig that trains in about a second on :func:`tiny_pair` (1 epoch, batch 32, narrow heads, fp32)."""
    from gpsviz.config import TrainConfig

    base = dict(epochs=1, batch_size=32, eval_every=0, proj_hidden=32, proj_dim=16, pred_hidden=32, device="cpu",
                precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_pair):
    """A finished one-epoch SimCLR run (:func:`tiny_cfg`) on the tiny shapes world; copy it before editing."""
    from gpsviz.train import train

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    train(tiny_cfg(), out, progress=False, data=tiny_pair)
    return out


def edited_copy(run, dst, edit):
    """A copy of the run folder ``run`` at ``dst`` whose checkpoint dict went through ``edit`` (a hand-edited
    file). Returns ``dst``."""
    import shutil

    import torch

    shutil.copytree(run, dst)
    ck = torch.load(Path(dst) / "checkpoint.pt", weights_only=True)
    edit(ck)
    torch.save(ck, Path(dst) / "checkpoint.pt")
    return Path(dst)


def clustered(n_per: int = 20, classes: int = 4, noise: float = 0.3, seed: int = 0):
    """An N×16 embedding of ``classes`` noisy clusters (N = n_per·classes) and its int64 labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 16, generator=g)
    labels = torch.arange(classes).repeat_interleave(n_per)
    return centres[labels] + noise * torch.randn(len(labels), 16, generator=g), labels
