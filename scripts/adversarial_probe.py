"""Adversarial probe (issues 12 and 18): try bad inputs as a new user would and count the outcomes.

    PYTHONPATH=$PWD .venv/bin/python scripts/adversarial_probe.py [--seed 7] [--only TEXT] [--json FILE]

Categories (what happened): clean error (GpsvizError / one CLI line, exit 2), legitimately accepted, raw traceback
(also: a valid input refused, or refused with a false reason — issue 18 §4 counts those with the tracebacks),
silently accepted nonsense, code run or data lost.

Classes (what a case targets): ``legacy`` (issue 12's cases), ``data loss``, ``nonsense``, ``traceback`` and
``provenance`` (issue 18's lists), ``fuzz`` (random slot options, CLI flag combinations and file corruptions).
A fixed library reports every case as a clean error or a legitimate acceptance.

Every case runs in one temporary folder (also ``$GPSVIZ_DATA``), under a per-case alarm (a case still running
then took an absurd value at face value: silently accepted) and an address-space limit (``--mem-gb``, so a huge
option value fails at once instead of swapping). The library probed is the one beside this script
(``ROOT/gpsviz``): copy the script into an old checkout to measure that checkout.
Prints the counts by category and by class and every case that is not clean or legit; ``--json`` writes them
with every case's outcome; ``--only`` runs the cases whose "class: name" contains the text.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import io
import json
import math
import os
import pickle
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as `make`: idle OpenMP threads must not spin on a shared CPU

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gpsviz  # noqa: E402
from gpsviz.errors import GpsvizError  # noqa: E402

CLEAN, LEGIT, TRACE, SILENT, LOSS = "clean error", "accepted (legit)", "traceback", "silently accepted", "code run/loss"
CATEGORIES = (CLEAN, LEGIT, TRACE, SILENT, LOSS)
CLASSES = ("legacy", "data loss", "nonsense", "traceback", "provenance", "fuzz")


class Silent(Exception):
    """The input was accepted but the result is nonsense."""


class Loss(Exception):
    """Code ran from a data file, or data was lost."""


class Refused(Exception):
    """A valid input was refused (or a message said something false): counted with the tracebacks."""


class _Signal(BaseException):
    """Raised by the probe inside library code: passes through the library's ``except Exception``."""


class TooLong(_Signal):
    pass


class HookSilent(_Signal):
    pass


class HookHonoured(_Signal):
    pass


def _too_long(signum, frame):
    raise TooLong("accepted and still running at the alarm (an absurd value was taken at face value)")


def _classify(fn) -> tuple[str, str]:
    try:
        fn()
    except GpsvizError as e:
        return CLEAN, (str(e).splitlines() or [""])[0][:160]
    except (Silent, HookSilent, TooLong) as e:
        return SILENT, str(e)[:240]
    except Loss as e:
        return LOSS, str(e)[:240]
    except Refused as e:
        return TRACE, f"refused a valid input / false message: {str(e)[:200]}"
    except HookHonoured as e:
        return LEGIT, str(e)[:160]
    except SystemExit as e:
        return (CLEAN, "argparse") if e.code == 2 else (TRACE, f"SystemExit {e.code}")
    except Exception as e:  # noqa: BLE001
        return TRACE, f"{type(e).__name__}: {str(e)[:180]}"
    return LEGIT, ""


def classify(fn, timeout: int = 60) -> tuple[str, str]:
    """Run one case under an alarm of ``timeout`` seconds."""
    signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(timeout)
    try:
        try:
            return _classify(fn)
        finally:
            signal.alarm(0)
    except TooLong as e:
        return SILENT, str(e)[:200]


# ------------------------------------------------------------------------------------------------ CLI helpers
def run_cli(argv) -> tuple[int, str]:
    """``python -m gpsviz ARGV`` in this process: (exit status, stderr)."""
    from gpsviz.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


TQDM_LINE = re.compile(r"\d+%\||\| *\d+/\d+ \[")


def raise_for(rc: int, text: str) -> None:
    """Exit 2 with one ``error: ...`` line → GpsvizError; any other failure → RuntimeError (a traceback)."""
    if rc == 2:
        i = text.rfind("error: ")            # a progress bar may precede it on the same terminal line
        lines = [ln for ln in text[i:].splitlines() if ln.strip()] if i >= 0 else []
        if not lines:
            raise RuntimeError(f"exit 2 without a clean line: {text.strip().splitlines()[-2:]}")
        rest = [ln for ln in lines[1:] if not TQDM_LINE.search(ln)]   # the bar redrawn when it is closed
        if rest:
            raise RuntimeError(f"exit 2 with an error message of several lines: {lines[:2]}")
        kept = re.search(r"checkpoint \((.+?), epoch \d+\) is kept", lines[0])
        if kept and not Path(kept.group(1)).exists():
            raise Silent(f"false message (no such checkpoint): {lines[0][:200]}")
        raise GpsvizError(lines[0])
    if rc != 0:
        raise RuntimeError(f"exit {rc}")


def cli(argv, expect_ok_check=None):
    def run():
        rc, text = run_cli(argv)
        raise_for(rc, text)
        if expect_ok_check:
            expect_ok_check()
    return run


def must_accept(fn):
    """A valid input: a GpsvizError means it was wrongly refused."""
    def run():
        try:
            fn()
        except GpsvizError as e:
            raise Refused(str(e).splitlines()[0][:200]) from None
    return run


def refused_expected(what: str):
    def check():
        raise Silent(f"accepted {what}")
    return check


# ------------------------------------------------------------------------------------------------ shared state
class Ctx:
    def __init__(self, tmp: Path, seed: int) -> None:
        self.tmp, self.seed = tmp, seed
        self._fixtures: dict[str, tuple[bool, Any]] = {}
        self._n = 0
        self.cases: list[tuple[str, str, Callable[[], None], int]] = []

    def add(self, cls: str, name: str, fn, timeout: int = 60) -> None:
        assert cls in CLASSES
        self.cases.append((cls, name, fn, timeout))

    def new_dir(self, prefix: str) -> Path:
        self._n += 1
        return self.tmp / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', prefix)[:40]}-{self._n}"

    def fixture(self, name: str, make: Callable[[], Any]) -> Any:
        """``make()`` once; a failed fixture fails every case that needs it (as a traceback naming it)."""
        if name not in self._fixtures:
            try:
                self._fixtures[name] = (True, make())
            except (KeyboardInterrupt, _Signal):
                raise                                  # the case's alarm: not the fixture's fault, try again later
            except BaseException as e:  # noqa: BLE001
                self._fixtures[name] = (False, e)
        ok, v = self._fixtures[name]
        if not ok:
            raise RuntimeError(f"probe fixture {name!r} failed: {type(v).__name__}: {str(v)[:150]}")
        return v


def sha(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """relative path → SHA-1 of every visible file under ``folder``."""
    out = {}
    for f in sorted(Path(folder).rglob("*")):
        rel = f.relative_to(folder)
        if f.is_file() and not any(p.startswith(".") for p in rel.parts):
            out[str(rel)] = sha(f)
    return out


def changed(before: dict[str, str], folder: Path) -> list[str]:
    now = snapshot(folder)
    return [k for k, v in before.items() if now.get(k) != v]


def copy_run(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".gpsviz.lock", ".*.tmp"))
    return dst


def tiny(**kw):
    """A TrainConfig of a tiny CPU run (64 images, one epoch, batch 32, narrow heads)."""
    from gpsviz.config import TrainConfig

    d: dict[str, Any] = dict(epochs=1, batch_size=32, data_options={"n": 64}, device="cpu", eval_size=64,
                             proj_hidden=64, proj_dim=32, pred_hidden=64)
    d.update(kw)
    return TrainConfig(**d)


def api_train(cfg, out, **kw):
    from gpsviz.train import train

    return train(cfg, out, progress=False, **kw)


def nonfinite(run_dir: Path) -> list[str]:
    """Names of the non-finite tensors (weights and buffers) of a run's checkpoint."""
    ck = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=True)
    bad = []
    for part in ("model", "backbone"):
        for k, v in (ck.get(part) or {}).items():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                bad.append(f"{part}.{k}")
    return bad


def same_weights(a: Path, b: Path) -> bool:
    ma = torch.load(Path(a) / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    mb = torch.load(Path(b) / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    return ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def poison(run_dir: Path, what: str = "running_var", value: float = float("nan"), whole: bool = False) -> str:
    """Write ``value`` into the first backbone tensor whose name contains ``what`` (its first element, or all of it
    with ``whole``), in both the backbone and the whole-model state of the checkpoint."""
    p = Path(run_dir) / "checkpoint.pt"
    ck = torch.load(p, map_location="cpu", weights_only=True)
    key = next(k for k in ck["backbone"] if what in k)
    for t in [ck["backbone"][key]] + [v for k, v in ck["model"].items() if k.endswith("backbone." + key) or k == key]:
        if whole:
            t.fill_(value)
        else:
            t[(0,) * t.ndim] = value           # (a channels_last weight cannot be viewed flat)
    torch.save(ck, p)
    return key


def overlap(train_ds, test_ds) -> int:
    """How many test images equal a training image."""
    seen = {x.numpy().tobytes() for x in train_ds.images}
    return sum(x.numpy().tobytes() in seen for x in test_ds.images)


def write_images(folder: Path, n: int, size: int, seed: int, mode: str = "RGB") -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    for i in range(n):
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        Image.fromarray(g.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"img{i}.png")


@contextlib.contextmanager
def failing_replace(err: int):
    """Every ``os.replace`` raises OSError(err): a full disk, read-only or quota-exceeded file system at the moment
    a file is committed (the temp file itself was written)."""
    real = os.replace

    def boom(src, dst, *a, **k):
        raise OSError(err, os.strerror(err), str(dst))
    os.replace = boom
    try:
        yield
    finally:
        os.replace = real


@contextlib.contextmanager
def replace_everywhere(original, replacement):
    """Swap a function for ``replacement`` in every loaded module that holds it (import-time copies included)."""
    swapped = []
    for mod in list(sys.modules.values()):
        d = getattr(mod, "__dict__", None)
        if not isinstance(d, dict):
            continue
        for k, v in list(d.items()):
            if v is original:
                d[k] = replacement
                swapped.append((d, k))
    try:
        yield
    finally:
        for d, k in swapped:
            d[k] = original


@contextlib.contextmanager
def small_smoke():
    """``reproduce --scale smoke`` on 128 images (batch 64) instead of 512, so a grid takes seconds. Touches the
    scale table only where it has today's shape (otherwise the smoke scale runs as it is, only slower)."""
    try:
        import gpsviz.experiments.grid as G
        s = G.SCALES["smoke"]
    except Exception:  # noqa: BLE001
        yield
        return
    saved = {k: (dict(v) if isinstance(v, dict) else v) for k, v in s.items()}
    for key in ("common", "fmnist"):
        if isinstance(s.get(key), dict):
            s[key] = {**s[key], "data_options": {**s[key].get("data_options", {}), "n": 128}, "batch_size": 64,
                      "eval_size": 64}
    try:
        yield
    finally:
        s.clear()
        s.update(saved)


@contextlib.contextmanager
def env(**kw):
    old = {k: os.environ.get(k) for k in kw}
    os.environ.update({k: str(v) for k, v in kw.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def flatten(obj: Any, path: tuple = (), depth: int = 0) -> list[tuple[tuple, Any]]:
    if depth > 6:
        return []
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in flatten(v, path + (str(k),), depth + 1)]
    if isinstance(obj, (list, tuple)) and len(obj) <= 50:
        return [x for i, v in enumerate(obj) for x in flatten(v, path + (str(i),), depth + 1)]
    return [(path, obj)]


def provenance_items(run_dir: Path) -> list[tuple[tuple, Any]]:
    """Every (key path, value) of the run folder's JSON files and of the checkpoint's non-tensor entries."""
    items: list[tuple[tuple, Any]] = []
    for f in sorted(Path(run_dir).rglob("*.json")):
        try:
            items += flatten(json.loads(f.read_text()), (f.name,))
        except (OSError, ValueError):
            pass
    ck_path = Path(run_dir) / "checkpoint.pt"
    if ck_path.exists():
        ck = torch.load(ck_path, map_location="cpu", weights_only=True)
        for k, v in ck.items():
            if k not in ("model", "backbone", "optimizer", "generator", "positives", "history"):
                items += flatten(v, ("checkpoint.pt", k))
    return items


def tokens(key: str) -> list[str]:
    return [t for t in re.split(r"[^a-z]+", key.lower()) if t]


def timelike(v: Any) -> bool:
    if isinstance(v, str):
        return bool(re.search(r"\d{4}-\d\d-\d\d|\d\d:\d\d", v))
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 1e9


def number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ================================================================================================ legacy (issue 12)
def legacy(ctx: Ctx, seed: int) -> None:
    tmp = ctx.tmp
    rng = random.Random(seed)
    marker = tmp / "PWNED"
    base = ["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval"]

    def add(name, fn):
        ctx.add("legacy", name, fn)

    # --- CLI: every finding of the issue, then random combinations
    def sane_run(out):
        def check():
            from gpsviz.checkpoint import load_checkpoint
            ck = load_checkpoint(out)
            c = ck["config"]
            if not (1e-3 <= c["temperature"] <= 10 and 0 <= c["strength"] <= 10):
                raise Silent(f"accepted temperature={c['temperature']} strength={c['strength']}")
            if not all(math.isfinite(h["loss"]) and h["loss"] < 1e4 for h in ck["history"]):
                raise Silent(f"losses {[h['loss'] for h in ck['history']]}")
        return check

    singles = [["--temperature", v] for v in ("1e-30", "inf", "-inf", "nan", "0", "-1", "1e5", "0.0009", "0.2")] + \
        [["--strength", v] for v in ("1e6", "inf", "nan", "-1", "11", "0", "2")] + \
        [["--lr", v] for v in ("0", "-1", "inf", "nan", "1e9", "1e-12", "1e-3")] + \
        [["--weight-decay", v] for v in ("-1", "nan", "inf", "2", "0")] + \
        [["--seed", v] for v in (str(2**64), str(2**63), "-1", "x", "1.5", "5")] + \
        [["--device", v] for v in ("foo", "cuda", "cuda:7", "mps", "meta", "", "cpu:1", "xla", "cpu")] + \
        [["--batch-size", v] for v in ("0", "1", "-3", "100000", "x")] + \
        [["--epochs", v] for v in ("0", "-1", "1000000000", "x")] + \
        [["--data-opt", v] for v in ("size=abc", "seed=abc", "clutter=abc", "size=100000", "size=8", "n=0",
                                     "n=10**12", "n=1e3", "colour_shift=false", "colour_shift=maybe", "cache=no",
                                     "cache=2", "clutter=nan", "clutter=-1", "clutter=1e9", "seed=-1",
                                     f"seed={2**70}", "bogus=1", "noequals", "=", "n=", "size=[1,2]")] + \
        [["--k", v] for v in ("0", "-1", "100000")] + [["--recipe", "gps-simclr", "--k", "1000"]] + \
        [["--recipe", v] for v in ("nope", "", "SIMCLR")] + [["--aug", v] for v in ("medium", "")] + \
        [["--optimizer", v] for v in ("nope", "")] + [["--data", v] for v in ("nope", "cifar10", "folder", "arrays",
                                                                          "stl10", "fashion-mnist")] + \
        [["--pos", v] for v in ("k=abc", "nope=1", "k")] + [["--backbone", v] for v in ("nope", "")]
    for i, extra in enumerate(singles):
        out = tmp / f"s{i}"
        add(f"train {' '.join(extra)}", cli(base + ["--device", "cpu", "--out", str(out)] + extra
                                            if "--device" not in extra else base + ["--out", str(out)] + extra,
                                            sane_run(out)))
    (tmp / "afile").write_text("x")
    for o in (str(tmp / "afile"), "/proc", "/proc/x", "/dev/null", "/sys/x", str(tmp / "afile" / "sub")):
        add(f"train --out {o}", cli(base + ["--device", "cpu", "--out", o]))
    for argv in (["reproduce", "baselines", "--seeds", "0"], ["reproduce", "baselines", "--seeds", "-1"],
                 ["reproduce", "gps", "--epochs", "0"], ["reproduce", "gps", "--epochs", "-2"],
                 ["reproduce", "nope"], ["reproduce", "gps", "--scale", "huge"], ["evaluate", str(tmp / "nowhere")],
                 ["evaluate", str(tmp / "afile")], ["evaluate"], ["bench", "nope"], ["nope"], []):
        add(" ".join(argv) or "(no args)", cli(argv))

    # --- TrainConfig: random fields ("amp" of issue 12's list is now "precision": the field was renamed)
    from gpsviz.config import TrainConfig
    values = [0, -1, 1, 2, 0.5, 1e-30, 1e300, float("nan"), float("inf"), -float("inf"), True, None, "x", "", [1],
              {"a": 1}, 2**64, 2**63, -2**63, 64, 0.2]
    fields = ["temperature", "strength", "lr", "weight_decay", "momentum_base", "epochs", "batch_size", "proj_dim",
              "proj_hidden", "pred_hidden", "knn_k", "eval_every", "eval_size", "seed", "warmup_epochs", "precision",
              "device", "recipe", "aug", "optimizer", "data_options", "positives_options", "backbone"]
    limits = {"temperature": (1e-3, 10), "strength": (0, 10), "lr": (1e-8, 10), "weight_decay": (0, 1),
              "epochs": (1, 1e5), "batch_size": (2, 65536), "seed": (0, 2**63 - 1), "knn_k": (1, 1e4)}
    for _ in range(90):
        kw = {f: rng.choice(values) for f in rng.sample(fields, rng.randint(1, 3))}

        def make(kw=kw):
            c = TrainConfig(**kw)
            for f, (lo, hi) in limits.items():
                v = getattr(c, f)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
                    raise Silent(f"{f}={v!r}")
        add(f"TrainConfig({kw})", make)

    # --- from_arrays
    from gpsviz.data.local import from_arrays, from_folder
    nr = np.random.default_rng(seed)
    for _ in range(50):
        shape = tuple(rng.choice([0, 1, 4, 8, 16, 3]) for _ in range(rng.choice([2, 3, 4, 5])))
        dt = rng.choice([np.uint8, np.float32, np.int32, np.uint16, np.bool_])
        labels = rng.choice([None, "ok", 10**7, 10**12, -3, "float"])

        def arr(shape=shape, dt=dt, labels=labels):
            x = (nr.random(shape) * (255 if dt in (np.uint8, np.int32, np.uint16) else 1)).astype(dt)
            n = shape[0] if shape else 0
            lab = None if labels is None else (list(range(n)) if labels == "ok" else
                                               [0.5] * n if labels == "float" else [labels] * n)
            ds = from_arrays(x, labels=lab)
            if min(ds.images.shape[2:]) < 8 or ds.num_classes > 100_000:
                raise Silent(f"accepted {tuple(ds.images.shape)} with {ds.num_classes} classes")
        add(f"from_arrays {shape} {dt.__name__} labels={labels}", arr)

    # --- from_folder (16-bit, tiny, broken, odd sizes)
    from PIL import Image
    for i in range(25):
        d = tmp / f"folder{i}"
        mode = rng.choice(["I;16", "L", "RGB", "RGBA", "P", "1", "broken"])
        wh = rng.choice([(1, 1), (4, 4), (16, 16), (16, 12)])
        size = rng.choice([None, 8, 4, 0, -1, "x", 100000, (8, 9)])
        (d / "c").mkdir(parents=True)
        if mode == "I;16":
            ramp = (np.arange(wh[0] * wh[1]) * (65535 // max(1, wh[0] * wh[1] - 1))).astype(np.uint16)
            Image.fromarray(ramp.reshape(wh[1], wh[0])).save(d / "c" / "a.png")
        elif mode == "broken":
            (d / "c" / "a.png").write_bytes(b"\x89PNG\r\n")
        else:
            Image.new(mode, wh).save(d / "c" / "a.png")

        def folder(d=d, size=size, mode=mode):
            ds = from_folder(d, size=size)
            if min(ds.images.shape[2:]) < 8:
                raise Silent(f"accepted {tuple(ds.images.shape)}")
            if mode == "I;16" and size is None and float(ds.images.float().mean()) > 200:
                raise Silent("16-bit image saturated")
        add(f"from_folder {mode} {wh} size={size}", folder)

    # --- load_dataset: shapes options, CIFAR files (malicious too), other datasets without files
    from gpsviz.data import load_dataset
    for _ in range(40):
        opts = {k: rng.choice(v) for k, v in {
            "n": [5, 0, -1, "7", 1.5, True, 10**12], "seed": [0, -1, "x", 2**70], "clutter": [0, -1, "x", 1e9],
            "colour_shift": [True, "false", "no", "maybe", 2], "cache": [False, "no", "x"], "size": [16, 8, "x", 10**5],
        }.items() if rng.random() < 0.4}

        def shapes(opts=opts):
            o = {"n": 5, **opts}
            ds = load_dataset("shapes", "test", **o)
            cs = o.get("colour_shift", False)
            want = cs is True or (isinstance(cs, str) and cs.lower() in ("true", "yes", "1"))
            if ds.name.endswith("-shift") != want or len(ds) != o["n"]:
                raise Silent(f"{o} → {ds.name} n={len(ds)}")
        add(f"load_dataset shapes {opts}", shapes)

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    for i, kind in enumerate(["payload-in-dict", "payload-bare", "payload-meta", "truncated", "list", "badshape",
                              "ok", "protocol5", "os.system"]):
        root = tmp / f"cifar{i}"
        f = root / "cifar-10-batches-py"
        f.mkdir(parents=True)
        good = {b"data": nr.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [0, 1]}
        for b in [f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]:
            obj = good
            if b == "data_batch_1":
                obj = {"payload-in-dict": {b"data": Payload(), b"labels": [0]}, "payload-bare": Payload(),
                       "list": [1], "badshape": {b"data": np.zeros((2, 7)), b"labels": [0, 1]}}.get(kind, good)
            raw = pickle.dumps(obj, protocol=5 if kind == "protocol5" else 2)
            if kind == "truncated" and b == "data_batch_1":
                raw = raw[:30]
            if kind == "os.system" and b == "data_batch_1":
                raw = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
            (f / b).write_bytes(raw)
        if kind == "payload-meta":
            (f / "batches.meta").write_bytes(pickle.dumps({b"label_names": Payload()}))

        def cifar(root=root):
            try:
                load_dataset("cifar10", "train", root=root, download=False)
            finally:
                if marker.exists():
                    marker.unlink()
                    raise Loss("the CIFAR file ran code")
        add(f"cifar10 {kind}", cifar)
    for name in ("fashion-mnist", "stl10", "cifar100"):
        add(f"{name} missing", lambda name=name: load_dataset(name, root=tmp / "empty", download=False))

    # --- run folders and checkpoints
    from gpsviz.checkpoint import load_checkpoint
    from gpsviz.runs import evaluate_run

    def foreign():
        d = tmp / "foreign"
        d.mkdir()
        (d / "config.json").write_text('{"mine": 1}')
        (d / "history.csv").write_text("x\n1\n")
        try:
            cli(base + ["--device", "cpu", "--out", str(d)])()
        finally:
            if (d / "config.json").read_text() != '{"mine": 1}' or (d / "history.csv").read_text() != "x\n1\n":
                raise Loss("someone's config.json/history.csv overwritten")
    add("train into a foreign folder", foreign)

    good_run = tmp / "good"

    def legacy_good() -> Path:
        return ctx.fixture("legacy good run", lambda: (cli(base + ["--device", "cpu", "--out", str(good_run)])(),
                                                       good_run)[1])

    def concurrent():
        d = tmp / "concurrent"
        env_ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        ps = [subprocess.Popen([sys.executable, "-m", "gpsviz", *base, "--epochs", "2", "--device", "cpu",
                                "--out", str(d), "--seed", str(s)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env_) for s in (0, 1)]
        rcs = sorted(p.wait() for p in ps)
        if rcs == [0, 0]:
            raise Loss("both trainings into one folder succeeded")
        if rcs != [0, 2]:
            raise RuntimeError(f"exit codes {rcs}")
        c = json.loads((d / "config.json").read_text())["seed"]
        if load_checkpoint(d)["config"]["seed"] != c:
            raise Loss("checkpoint and config.json of different runs")
    add("two trainings into one --out", concurrent)

    def two_evals():
        legacy_good()
        evaluate_run(good_run, targets=["label"], probes=["knn"])
        evaluate_run(good_run, targets=["colour"], probes=["knn"])
        r = json.loads((good_run / "results.json").read_text())
        if "knn_label" not in r:
            raise Loss("results of the first evaluation lost")
    add("two evaluates, different targets", two_evals)

    def eval_file():
        legacy_good()
        evaluate_run(good_run / "checkpoint.pt", probes=["knn"])
    add("evaluate a checkpoint file", eval_file)

    edits = {"no model": lambda c: c.pop("model"), "no backbone": lambda c: c.pop("backbone"),
             "no config": lambda c: c.pop("config"), "epoch str": lambda c: c.__setitem__("epoch", "x"),
             "backbone shape": lambda c: c["backbone"].__setitem__(next(iter(c["backbone"])), torch.zeros(2)),
             "model shape": lambda c: c["model"].__setitem__(next(iter(c["model"])), torch.zeros(2)),
             "model key gone": lambda c: c["model"].pop(next(iter(c["model"]))),
             "generator": lambda c: c.__setitem__("generator", torch.zeros(1, dtype=torch.uint8)),
             "config backbone": lambda c: c["config"].__setitem__("backbone", "nope"),
             "in_channels": lambda c: c.__setitem__("in_channels", 7), "format": lambda c: c.pop("format")}
    for name, edit in edits.items():
        d = tmp / f"edit-{name.replace(' ', '_')}"

        def edited(d=d, edit=edit):
            shutil.copytree(legacy_good(), d)
            ck = torch.load(d / "checkpoint.pt", weights_only=True)
            edit(ck)
            torch.save(ck, d / "checkpoint.pt")
            evaluate_run(d, probes=["knn"], targets=["label"])
        add(f"hand-edited checkpoint, evaluate: {name}", edited)
        add(f"hand-edited checkpoint, train --resume: {name}",
            cli(base + ["--device", "cpu", "--out", str(d), "--resume"]))
    for name, data in (("truncated", None), ("garbage", b"garbage"), ("pickle payload", None)):
        def bad_ck(name=name, data=data):
            d = tmp / f"ck-{name.replace(' ', '_')}"
            shutil.copytree(legacy_good(), d)
            raw = (d / "checkpoint.pt").read_bytes()
            if name == "truncated":
                data = raw[: len(raw) // 2]
            if name == "pickle payload":
                data = pickle.dumps(Payload())
            (d / "checkpoint.pt").write_bytes(data)
            try:
                evaluate_run(d)
            finally:
                if marker.exists():
                    raise Loss("checkpoint ran code")
        add(f"checkpoint {name}", bad_ck)


# ================================================================================================ issue 18
BASE = ["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval", "--device", "cpu"]


def good_run(ctx: Ctx) -> Path:
    """One finished CLI run (64 images, one epoch; no --device: the config says "auto"), copied by many cases."""
    out = ctx.tmp / "fx-good"
    argv = ["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval", "--out", str(out)]
    return ctx.fixture("good run", lambda: (cli(argv)(), out)[1])


def good_argv(out: Path) -> list[str]:
    return ["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval", "--out", str(out)]


def good_copy(ctx: Ctx, name: str) -> Path:
    return copy_run(good_run(ctx), ctx.new_dir(name))


def uota_run(ctx: Ctx) -> Path:
    """A finished UOTA-SimCLR run with its recorded view weights."""
    def make():
        from gpsviz.view_weights import ViewWeightRecorder

        out = ctx.tmp / "fx-uota"
        api_train(tiny(recipe="uota-simclr"), out, callbacks=[ViewWeightRecorder(probe=16, path=out / "view_weights.pt")])
        return out
    return ctx.fixture("uota run", make)


def half_run(ctx: Ctx, name: str, **kw) -> tuple[Path, Any]:
    """A CLI-equivalent run of 2 epochs stopped after the first (to resume), and its config."""
    from gpsviz.config import TrainConfig

    fields = dict(recipe="simclr", data="shapes", data_options={"n": 64}, aug="strong", epochs=2, batch_size=32,
                  device="cpu", positives_options={})
    fields.update(kw)
    cfg = TrainConfig(**fields)
    out = ctx.new_dir(name)
    api_train(cfg, out, stop_after=1)
    return out, cfg


# ------------------------------------------------------------------------------------------------ data loss
REP_ARGV = ["reproduce", "baselines", "--scale", "smoke", "--seeds", "1"]


def rep_first(ctx: Ctx) -> dict[str, Any]:
    """``reproduce baselines --scale smoke --seeds 1`` into the default folder (under $GPSVIZ_DATA); a pristine copy
    of it for the --out case; snapshots of both."""
    def make():
        tmp = ctx.tmp
        with small_smoke():
            raise_for(*run_cli(REP_ARGV))
        tables = sorted((tmp / "data" / "reproduce").rglob("table.md"), key=lambda t: (len(t.parts), str(t)))
        if not tables:
            raise RuntimeError("the reproduction wrote no table.md under $GPSVIZ_DATA/reproduce")
        folder = tables[0].parent
        copy = copy_run(folder, tmp / "rep-explicit")
        return {"folder": folder, "root": tmp / "data" / "reproduce", "snap": snapshot(tmp / "data" / "reproduce"),
                "copy": copy, "copy_snap": snapshot(copy)}
    return ctx.fixture("first reproduction", make)


def data_loss(ctx: Ctx) -> None:
    tmp = ctx.tmp
    add = lambda name, fn, t=60: ctx.add("data loss", name, fn, t)  # noqa: E731
    rep_argv = REP_ARGV

    def second(extra: list[str], explicit: bool):
        def run():
            f = rep_first(ctx)
            root, snap = (f["copy"], f["copy_snap"]) if explicit else (f["root"], f["snap"])
            argv = rep_argv + extra + (["--out", str(f["copy"])] if explicit else [])
            try:
                with small_smoke():
                    raise_for(*run_cli(argv))
            finally:
                lost = changed(snap, root)
                if lost:
                    raise Loss(f"the first reproduction's files were overwritten: {', '.join(lost[:4])}"
                               f"{' …' if len(lost) > 4 else ''} ({len(lost)} of {len(snap)})")
        return run
    add("reproduce baselines smoke, then again with --epochs 2 (default folder)", second(["--epochs", "2"], False), 400)
    add("reproduce baselines smoke, then again with --epochs 2 --out <the same folder>", second(["--epochs", "2"], True),
        400)

    def user_folder():
        d = tmp / "my-notes"
        d.mkdir()
        (d / "table.md").write_text("my own table\n")
        (d / "results.json").write_text('{"mine": 1}\n')
        snap = snapshot(d)
        try:
            with small_smoke():
                raise_for(*run_cli(rep_argv + ["--out", str(d)]))
        finally:
            lost = changed(snap, d)
            if lost:
                raise Loss(f"reproduce overwrote the user's {', '.join(lost)} in a folder it did not make")
    add("reproduce --out a user's folder holding table.md/results.json", user_folder, 400)

    # 2. the Python API train(cfg, OUT) on a finished run
    from gpsviz.config import TrainConfig

    def api_over(change: dict, how: str):
        def run():
            d = good_copy(ctx, "api-over")
            before = sha(d / "checkpoint.pt")
            cfg = TrainConfig.from_dict({**json.loads((d / "config.json").read_text()), **change})
            try:
                if how == "train":
                    api_train(cfg, d)
                else:
                    api_train(cfg, d, resume=False)
            finally:
                if not (d / "checkpoint.pt").exists() or sha(d / "checkpoint.pt") != before:
                    raise Loss(f"train(cfg{', ' + str(change) if change else ''}) replaced the finished run's "
                               f"checkpoint")
        return run
    add("API train(cfg, OUT) on a finished run, same config", api_over({}, "train"))
    add("API train(cfg, OUT) on a finished run, other seed", api_over({"seed": 3}, "train"))
    add("API train(cfg, OUT, resume=False) on a finished run, other recipe", api_over({"recipe": "byol"}, "resume"))

    def api_over_tor():
        from gpsviz.runs import train_or_resume

        cfg = tiny()
        run = train_or_resume(cfg, "tor", root=tmp / "tor-root", progress=False)
        before = sha(run.out_dir / "checkpoint.pt")
        try:
            api_train(cfg, run.out_dir)
        finally:
            if sha(run.out_dir / "checkpoint.pt") != before:
                raise Loss("train(cfg, OUT) replaced train_or_resume's finished checkpoint")
    add("API train(cfg, OUT) on a train_or_resume folder", api_over_tor)

    # 3. results.json mixing two models
    def mixing(how: str, change: dict, first_targets: list[str], probes2: list[str], targets2: list[str]):
        def run():
            from gpsviz.runs import evaluate_run

            d = good_copy(ctx, f"mix-{how}")
            evaluate_run(d, targets=first_targets, probes=["knn", "linear"])
            old = json.loads((d / "results.json").read_text())
            (d / "checkpoint.pt").unlink()
            if how == "api":
                cfg = TrainConfig.from_dict({**json.loads((d / "config.json").read_text()), **change})
                api_train(cfg, d)
            else:
                raise_for(*run_cli(good_argv(d) + [x for k, v in change.items()
                                                   for x in (f"--{k.replace('_', '-')}", str(v))]))
            evaluate_run(d, targets=targets2, probes=probes2)
            new = json.loads((d / "results.json").read_text())
            stale = sorted(k for k, v in old.items() if k.split("_")[0] in ("knn", "linear", "mlp")
                           and k not in {f"{p}_{t}" for p in probes2 for t in targets2} and new.get(k) == v)
            if stale:
                raise Loss(f"results.json holds the old model's {', '.join(stale)} beside the new model's "
                           f"{', '.join(f'{p}_{t}' for p in probes2 for t in targets2)}")
        return run
    add("results.json: evaluate, delete checkpoint, retrain --temperature 0.5 (CLI), evaluate --probes knn",
        mixing("cli", {"temperature": 0.5}, ["label"], ["knn"], ["label"]))
    add("results.json: evaluate, delete checkpoint, retrain lr=1e-3 (API), evaluate --probes knn",
        mixing("api", {"lr": 1e-3}, ["label"], ["knn"], ["label"]))
    add("results.json: evaluate label+colour, retrain epochs=2 (API), evaluate label only",
        mixing("api", {"epochs": 2}, ["label", "colour"], ["knn", "linear"], ["label"]))


# ------------------------------------------------------------------------------------------------ nonsense
def nonsense(ctx: Ctx) -> None:
    tmp = ctx.tmp
    add = lambda name, fn, t=60: ctx.add("nonsense", name, fn, t)  # noqa: E731
    from gpsviz.runs import evaluate_run

    # non-finite weights or BatchNorm buffers reported as trained
    def finite_after(out: Path):
        def check():
            bad = nonfinite(out)
            if bad:
                raise Silent(f"exit 0 with {len(bad)} non-finite tensors ({bad[0]}, …)")
        return check
    for recipe, extra in (("simclr", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1"]),
                          ("simclr", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1", "--precision", "fp32"]),
                          ("cissl", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1"]),
                          ("simclr", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "0"]),
                          ("byol", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1"]),
                          ("supcon", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1"]),
                          ("simclr", ["--optimizer", "lars", "--lr", "10", "--weight-decay", "1"]),
                          ("simclr", ["--optimizer", "adamw", "--lr", "10", "--weight-decay", "1"]),
                          ("swav", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1"]),
                          ("simclr", ["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1", "--strength", "0"])):
        out = ctx.new_dir("nonfinite")
        add(f"train --epochs 5 --recipe {recipe} {' '.join(extra)}: finite weights and buffers?",
            cli(BASE + ["--recipe", recipe, "--epochs", "5", "--out", out] + extra, finite_after(out)))

    # using a non-finite checkpoint
    def poisoned(op: str, what: str, value: float, whole: bool = False):
        def run():
            d = good_copy(ctx, f"nan-{op}")
            key = poison(d, what, value, whole)
            if op == "evaluate":
                r = evaluate_run(d, targets=["label"], probes=["knn", "linear"])
                raise Silent(f"evaluated a checkpoint with {value} in {key}: {r.get('linear_label')}")
            if op == "cli-evaluate":
                raise_for(*run_cli(["evaluate", d, "--targets", "label", "--probes", "knn"]))
                raise Silent(f"`evaluate` accepted a checkpoint with {value} in {key}")
            if op == "prior":
                from gpsviz.data import load_dataset
                from gpsviz.priors import compute_prior

                ds = load_dataset("shapes", "test", n=64)
                compute_prior("checkpoint", ds, root=tmp / "data", run=str(d), progress=False)
                raise Silent(f"checkpoint prior built from a checkpoint with {value} in {key}")
            if op == "load_run":
                from gpsviz.sensitivity import load_run
                load_run(d)
                raise Silent(f"load_run accepted a checkpoint with {value} in {key}")
            if op == "resume":
                raise_for(*run_cli(good_argv(d) + ["--resume"]))
                raise Silent(f"train --resume accepted a checkpoint with {value} in {key}")
        return run
    for op in ("evaluate", "cli-evaluate", "prior", "load_run", "resume"):
        add(f"{op} of a checkpoint with NaN in a BatchNorm running_var", poisoned(op, "running_var", float("nan")))
    for op in ("evaluate", "cli-evaluate", "prior", "load_run"):
        add(f"{op} of a checkpoint whose first BatchNorm running_var is all inf",
            poisoned(op, "running_var", float("inf"), True))
    for op in ("evaluate", "prior"):
        add(f"{op} of a checkpoint with inf in a conv weight", poisoned(op, "weight", float("inf")))
        add(f"{op} of a checkpoint with -inf in a running_mean", poisoned(op, "running_mean", -float("inf")))

    # the test split equals the training split
    def class_folders(d: Path, sub: str = "", n: int = 12, seed: int = 0) -> Path:
        for j, c in enumerate(("cat", "dog")):
            write_images(d / sub / c if sub else d / c, n, 16, seed + j)
        return d

    def splits_disjoint(name, options, what):
        from gpsviz.data import load_splits

        tr, te = load_splits(name, options)
        k = overlap(tr, te)
        if k:
            raise Silent(f"{what}: {k} of {len(te)} test images are training images (classes {tr.classes})")

    def folder_train(layout: str):
        def run():
            d = ctx.new_dir(f"imgs-{layout}")
            if layout == "classes":
                class_folders(d)
            elif layout == "train-only":
                class_folders(d, "train")
            else:
                class_folders(d, "train")
                class_folders(d, "test", n=6, seed=10)
            out = ctx.new_dir("folder-run")
            raise_for(*run_cli(["train", "--data", "folder", "--data-opt", f"path={d}", "--epochs", "1",
                                "--batch-size", "8", "--no-eval", "--device", "cpu", "--out", out]))
            splits_disjoint("folder", {"path": str(d)}, f"--data folder ({layout})")
        return run
    add("train --data folder with only class folders (test = train?)", folder_train("classes"))
    add("train --data folder with DIR/train but no DIR/test", folder_train("train-only"))
    add("train --data folder with DIR/train and DIR/test (control)", folder_train("both"))

    def load_splits_folder(layout: str):
        def run():
            d = ctx.new_dir(f"ls-{layout}")
            class_folders(d, "train" if layout == "train-only" else "")
            splits_disjoint("folder", {"path": str(d)}, f"load_splits('folder', {layout})")
        return run
    add("load_splits('folder') of class folders only", load_splits_folder("classes"))
    add("load_splits('folder') of DIR/train only", load_splits_folder("train-only"))

    nr = np.random.default_rng(ctx.seed + 18)
    imgs = nr.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8)
    labels = [i % 3 for i in range(48)]

    def arrays_train(as_lists: bool):
        def run():
            opts = {"images": (imgs / 255.0).tolist() if as_lists else imgs, "labels": labels}
            out = ctx.new_dir("arrays-run")
            api_train(tiny(data="arrays", data_options=opts, batch_size=16), out)
            splits_disjoint("arrays", opts, "data='arrays'")
        return run
    add("train data='arrays' given lists, no separate test split", arrays_train(True))
    add("train data='arrays' given a numpy array, no separate test split", arrays_train(False))
    add("load_splits('arrays') without a test split",
        lambda: splits_disjoint("arrays", {"images": imgs, "labels": labels}, "load_splits('arrays')"))

    # a slot option ignored: --positives labels with recipes that cannot use a positive set
    def plain(recipe: str) -> Path:
        def make():
            out = ctx.new_dir(f"self-{recipe}")
            raise_for(*run_cli(BASE + ["--recipe", recipe, "--positives", "self", "--out", out]))
            return out
        return ctx.fixture(f"{recipe} with positives self", make)

    def positives_honoured(recipe: str, source: str, extra: list[str] = ()):
        def run():
            out = ctx.new_dir(f"pos-{recipe}-{source}")
            raise_for(*run_cli(BASE + ["--recipe", recipe, "--positives", source, *extra, "--out", out]))
            if same_weights(out, plain(recipe)):
                raise Silent(f"--positives {source} with {recipe} trains bit-identical to --positives self")
        return run
    for recipe in ("byol", "swav", "dissl", "uota-swav", "cassle-byol", "cissl", "uota-byol", "simclr"):
        add(f"train --recipe {recipe} --positives labels (honoured or refused?)", positives_honoured(recipe, "labels"))
    for recipe in ("swav", "dissl"):
        add(f"train --recipe {recipe} --positives neighbours --prior pixels (honoured or refused?)",
            positives_honoured(recipe, "neighbours", ["--prior", "pixels"]))

    # one view per instance
    for recipe in ("simclr", "byol", "swav", "uota-simclr", "dissl"):
        add(f"train --recipe {recipe} --views multicrop global_views=1 local_views=0 (one view per instance)",
            cli(BASE + ["--recipe", recipe, "--views", "multicrop", "--views-opt", "global_views=1", "--views-opt",
                        "local_views=0", "--out", ctx.new_dir("oneview")], refused_expected("one view per instance")))
    add("train --views multicrop global_views=1 local_views=1 (two views: control)",
        cli(BASE + ["--views", "multicrop", "--views-opt", "global_views=1", "--views-opt", "local_views=1",
                    "--views-opt", "local_size=16", "--out", ctx.new_dir("twoview")]))

    # resume / train_or_resume with other data
    from gpsviz.data import load_splits
    data_a = lambda: load_splits("shapes", {"n": 64})                    # noqa: E731
    data_b = lambda: load_splits("shapes", {"n": 64, "seed": 5})         # noqa: E731

    def resume_data(same: bool):
        def run():
            cfg = tiny(epochs=2)
            out = ctx.new_dir("resume-data")
            api_train(cfg, out, data=data_a(), stop_after=1)
            api_train(cfg, out, resume=True, data=data_a() if same else data_b())
            if not same:
                raise Silent("train(resume=True, data=other images) continued a run made on other data")
        return run
    add("API train(resume=True) with other data than the run was made with", resume_data(False))
    add("API train(resume=True) with the same data (control)", resume_data(True))

    def tor_data(same: bool):
        def run():
            from gpsviz.runs import train_or_resume

            cfg, root = tiny(), ctx.new_dir("tor-data")
            train_or_resume(cfg, "x", root=root, data=data_a(), progress=False)
            train_or_resume(cfg, "x", root=root, data=data_a() if same else data_b(), progress=False)
            if not same:
                raise Silent("train_or_resume with other data returned the run made on the first data")
        return run
    add("train_or_resume with other data than the run was made with", tor_data(False))
    add("train_or_resume with the same data (control)", tor_data(True))

    def folder_resume(change: bool):
        def run():
            d = ctx.new_dir("resume-folder")
            class_folders(d, "train")
            class_folders(d, "test", n=6, seed=10)
            out, _ = half_run(ctx, "resume-folder-run", data="folder", data_options={"path": str(d)}, batch_size=8)
            if change:
                for j, c in enumerate(("cat", "dog")):
                    write_images(d / "train" / c, 12, 16, 100 + j)
            raise_for(*run_cli(["train", "--data", "folder", "--data-opt", f"path={d}", "--epochs", "2",
                                "--batch-size", "8", "--no-eval", "--device", "cpu", "--out", out, "--resume"]))
            if change:
                raise Silent("train --resume continued on a data folder whose images changed")
        return run
    add("train --resume after the --data folder's images changed", folder_resume(True))
    add("train --resume with the --data folder unchanged (control)", folder_resume(False))

    # --out '~/x' (quoted tilde)
    def tilde(target: str, api: bool):
        def run():
            home = ctx.new_dir("home")
            home.mkdir()
            cwd = ctx.new_dir("cwd")
            cwd.mkdir()
            old = os.getcwd()
            os.chdir(cwd)
            try:
                with env(HOME=home):
                    if api:
                        api_train(tiny(), target)
                    else:
                        raise_for(*run_cli(BASE + ["--out", target]))
            finally:
                os.chdir(old)
                if (cwd / "~").exists():
                    raise Silent(f"--out {target!r} wrote into ./~ ({sorted(p.name for p in (cwd / '~').rglob('*'))[:4]}) "
                                 f"while {home / target[2:]} holds {sorted(p.name for p in (home / target[2:]).glob('*')) if (home / target[2:]).exists() else 'nothing'}")
            if not (home / target[2:] / "checkpoint.pt").exists():
                raise Silent(f"exit 0 but no checkpoint in $HOME/{target[2:]}")
        return run
    add("train --out '~/x' (quoted tilde, HOME set)", tilde("~/x", False))
    add("train --out '~/a/b' (quoted tilde, HOME set)", tilde("~/a/b", False))
    add("API train(cfg, '~/y') (HOME set)", tilde("~/y", True))

    # prior cache key collision
    def cache_collision(kind: str):
        def run():
            from gpsviz.data.core import ImageDataset
            try:
                from gpsviz.priors import prior_cache_path
            except ImportError:
                from gpsviz.priors.registry import prior_cache_path
            n = 22_000 if kind != "small" else 64                           # 22,000 × 3 KB = 68 MB of pixels
            g = torch.Generator().manual_seed(0)
            a = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
            la = torch.zeros(n, dtype=torch.long)
            b, lb = a.clone(), la.clone()
            row = {"one image (odd row)": 1, "last image": n - 1, "first image": 0, "small": 1}.get(kind)
            if kind == "labels":
                lb[1] = 1
            else:
                b[row, 0, 5, 5] ^= 1
            pa = prior_cache_path("pixels", ImageDataset(a, la, ["c", "d"], name="big"), root=tmp / "data")
            pb = prior_cache_path("pixels", ImageDataset(b, lb, ["c", "d"], name="big"), root=tmp / "data")
            if pa == pb:
                raise Silent(f"two datasets differing in {kind} share the prior cache entry {pa.parent.name}")
        return run
    for kind in ("one image (odd row)", "last image", "first image", "labels", "small"):
        add(f"prior cache key of two 68 MB datasets differing in {kind}" if kind != "small" else
            "prior cache key of two small datasets differing in one pixel (control)", cache_collision(kind))

    # ingredient options never range- or type-checked
    opts = [("simclr", ["--objective-opt", "temperature=1e-9"]), ("simclr", ["--objective-opt", "temperature=True"]),
            ("simclr", ["--objective-opt", "temperature=-0.5"]), ("simclr", ["--objective-opt", "temperature=0"]),
            ("cissl", ["--objective-opt", "temperature=-1"]), ("cissl", ["--objective-opt", "teacher_hidden=0"]),
            ("dissl", ["--objective-opt", "lam=-50"]), ("dissl", ["--objective-opt", "beta=-3"]),
            ("dissl", ["--objective-opt", "teacher_temperature=-1"]),
            ("dissl", ["--objective-opt", "student_temperature=0"]),
            ("swav", ["--objective-opt", "iterations=-3"]), ("swav", ["--objective-opt", "freeze_epochs=-1"]),
            ("swav", ["--objective-opt", "temperature=True"]), ("swav", ["--objective-opt", "epsilon=True"]),
            ("uota-simclr", ["--weighting-opt", "eps=-1"]), ("uota-simclr", ["--weighting-opt", "tau=True"]),
            ("uota-simclr", ["--weighting-opt", "start=True"]), ("uota-simclr", ["--weighting-opt", "restart_lr=True"]),
            ("spps-simclr", ["--pos", "threshold=True"]), ("spps-simclr", ["--pos", "threshold=-5"]),
            ("spps-simclr", ["--pos", "members=100000"]), ("spps-simclr", ["--pos", "members=0"]),
            ("spps-simclr", ["--pos", "k=0"]),
            ("gps-simclr", ["--prior", "pca", "--pos", "fit_n=-1"]), ("gps-simclr", ["--prior", "pca", "--pos", "dim=-2"]),
            ("gps-simclr", ["--prior", "oracle", "--pos", "scale=0"]),
            ("gps-simclr", ["--prior", "oracle", "--pos", "scale=nan"]),
            ("gps-simclr", ["--pos", "refresh_every=-1"]), ("gps-simclr", ["--pos", "include_anchor=maybe"]),
            ("gps-simclr", ["--pos", "adaptive_k=-1"]),
            ("cassle-simclr", ["--head-opt", "encoder_depth=-1"]), ("dissl", ["--head-opt", "rank=True"]),
            ("simclr", ["--head-opt", "num_layers=True"]),
            ("swav", ["--views-opt", "local_scale=(0.9,0.1)"]), ("swav", ["--views-opt", "local_scale=(-1,2)"]),
            ("swav", ["--views-opt", "global_scale=(0,0)"])]
    for recipe, extra in opts:
        add(f"train --recipe {recipe} {' '.join(extra)}",
            cli(BASE + ["--recipe", recipe, "--out", ctx.new_dir("opt")] + extra,
                refused_expected(f"{' '.join(extra)} with {recipe}")), 40)

    def bool_text(recipe: str, text: str, canonical: str):
        def run():
            a, b = ctx.new_dir("lastbn-text"), ctx.new_dir("lastbn-bool")
            raise_for(*run_cli(BASE + ["--recipe", recipe, "--head-opt", f"last_bn={canonical}", "--out", b]))
            raise_for(*run_cli(BASE + ["--recipe", recipe, "--head-opt", f"last_bn={text}", "--out", a]))
            if not same_weights(a, b):
                raise Silent(f"--head-opt last_bn={text} trained a different model from last_bn={canonical}")
        return run
    add("train --head-opt last_bn=false (a string) vs last_bn=False", bool_text("simclr", "false", "False"))
    add("train --head-opt last_bn=no vs last_bn=False", bool_text("simclr", "no", "False"))
    add("train --recipe cissl --head-opt last_bn=true vs last_bn=True", bool_text("cissl", "true", "True"))

    # reproduce ... --datasets X ignored
    def datasets_honoured(experiment: str, wanted: str):
        def run():
            import gpsviz.reproduce as R
            import gpsviz.train as T

            R.experiment_names()                                 # imports every experiment module
            real = T.train

            def hook(cfg, out_dir=None, *a, **k):
                data = getattr(cfg, "data", None)
                if data != wanted and not str(data).startswith(wanted):
                    raise HookSilent(f"reproduce {experiment} --datasets {wanted} trains on {data!r}")
                raise HookHonoured(f"trains on {data}")
            with replace_everywhere(real, hook):
                raise_for(*run_cli(["reproduce", experiment, "--scale", "smoke", "--seeds", "1", "--datasets",
                                    wanted, "--out", ctx.new_dir(f"rep-ds-{experiment}")]))
            raise Silent(f"reproduce {experiment} --datasets {wanted} trained nothing and reported success")
        return run
    for experiment in ("baselines", "gps-priors", "precision", "gps", "cassle", "spps", "uota", "dubois"):
        add(f"reproduce {experiment} --datasets fashion-mnist (honoured or refused?)",
            datasets_honoured(experiment, "fashion-mnist"), 120)

    # own: labels that do not exist
    def unlabelled(what: str):
        def run():
            from gpsviz.data import from_arrays

            g = np.random.default_rng(1)
            tr = from_arrays(g.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
            te = from_arrays(g.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), split="test")
            if what == "supcon":
                api_train(tiny(recipe="supcon"), ctx.new_dir("unlab"), data=(tr, te))
                raise Silent("SupCon trained on unlabelled images (every image a positive of every other)")
            if what == "oracle":
                api_train(tiny(recipe="gps-simclr", positives_options={"prior": "oracle"}), ctx.new_dir("unlab"),
                          data=(tr, te))
                raise Silent("the oracle prior (labels) used on unlabelled images")
            r = evaluate_run(good_run(ctx), targets=["label"], probes=["linear"], write=False, data=(tr, te))
            raise Silent(f"linear probe of labels on unlabelled images: {r.get('linear_label')}")
        return run
    for what in ("supcon", "oracle", "evaluate"):
        add(f"{what} on from_arrays images without labels", unlabelled(what))


# ------------------------------------------------------------------------------------------------ tracebacks
def tracebacks(ctx: Ctx) -> None:
    tmp = ctx.tmp
    add = lambda name, fn, t=60: ctx.add("traceback", name, fn, t)  # noqa: E731
    from gpsviz.runs import evaluate_run

    # wrong-typed ingredient options
    wrong = [("simclr", ["--head-opt", "num_layers=abc"]), ("simclr", ["--head-opt", "last_bn=[1]"]),
             ("uota-simclr", ["--weighting-opt", "tau=abc"]), ("uota-simclr", ["--weighting-opt", "start=abc"]),
             ("uota-simclr", ["--weighting-opt", "eps=abc"]),
             ("byol", ["--objective-opt", "x=1"]), ("byol", ["--objective-opt", "temperature=0.1"]),
             ("simclr", ["--objective-opt", "temperature=abc"]), ("cissl", ["--objective-opt", "teacher_hidden=abc"]),
             ("dissl", ["--objective-opt", "lam=abc"]), ("dissl", ["--objective-opt", "bottleneck=abc"]),
             ("dissl", ["--head-opt", "rank=abc"]), ("swav", ["--objective-opt", "iterations=abc"]),
             ("swav", ["--objective-opt", "freeze_epochs=abc"]), ("swav", ["--objective-opt", "temperature=abc"]),
             ("swav", ["--views-opt", "local_scale=abc"]), ("swav", ["--views-opt", "local_size=abc"]),
             ("cassle-simclr", ["--head-opt", "encoder_depth=abc"]), ("cassle-simclr", ["--head-opt", "mode=1"]),
             ("cassle-simclr", ["--head-opt", "families=5"]),
             ("spps-simclr", ["--pos", "threshold=abc"]), ("spps-simclr", ["--pos", "members=abc"]),
             ("gps-simclr", ["--pos", "radius=abc"]), ("gps-simclr", ["--pos", "prior_options=abc"]),
             ("gps-simclr", ["--prior", "pca", "--pos", "dim=abc"]), ("gps-simclr", ["--pos", "metric=5"]),
             ("simclr", ["--views", "standard", "--views-opt", "x=1"])]
    for recipe, extra in wrong:
        add(f"train --recipe {recipe} {' '.join(extra)}",
            cli(BASE + ["--recipe", recipe, "--out", ctx.new_dir("typed")] + extra,
                refused_expected(f"{' '.join(extra)} with {recipe}")), 40)

    # huge option values (memory)
    huge = [("swav", ["--objective-opt", "prototypes=10**9"]), ("swav", ["--objective-opt", "prototypes=1000000000"]),
            ("dissl", ["--head-opt", "rank=1000000000"]), ("dissl", ["--objective-opt", "teacher_hidden=1000000000"]),
            ("dissl", ["--objective-opt", "bottleneck=1000000000"]),
            ("cissl", ["--objective-opt", "teacher_hidden=1000000000"]),
            ("cassle-simclr", ["--head-opt", "encoder_width=1000000000"]),
            ("simclr", ["--views", "multicrop", "--views-opt", "local_views=1000000"]),
            ("simclr", ["--views", "multicrop", "--views-opt", "global_views=1000000"]),
            ("gps-simclr", ["--k", "1000000000"]), ("spps-simclr", ["--pos", "k=1000000000"]),
            ("gps-simclr", ["--prior", "pca", "--pos", "dim=1000000000"])]
    for recipe, extra in huge:
        add(f"train --recipe {recipe} {' '.join(extra)} (huge)",
            cli(BASE + ["--recipe", recipe, "--out", ctx.new_dir("huge")] + extra,
                refused_expected(f"{' '.join(extra)} with {recipe}")), 40)

    # OSError while writing
    def enospc(target: str, err: int):
        def run():
            if target == "train":
                with failing_replace(err):
                    raise_for(*run_cli(BASE + ["--out", ctx.new_dir("enospc")]))
                return
            if target == "resume":
                out, _ = half_run(ctx, "enospc-resume")
                before = sha(out / "checkpoint.pt")
                try:
                    with failing_replace(err):
                        raise_for(*run_cli(["train", "--epochs", "2", "--data-opt", "n=64", "--batch-size", "32",
                                            "--no-eval", "--device", "cpu", "--out", out, "--resume"]))
                finally:
                    if sha(out / "checkpoint.pt") != before:
                        raise Loss("the last good checkpoint changed although its replacement failed")
                return
            if target in ("evaluate", "cli-evaluate"):
                d = good_copy(ctx, "enospc-eval")
                (d / "results.json").write_text('{"knn_colour": 0.5}\n')
                try:
                    with failing_replace(err):
                        if target == "evaluate":
                            evaluate_run(d, targets=["label"], probes=["knn"])
                        else:
                            raise_for(*run_cli(["evaluate", d, "--targets", "label", "--probes", "knn"]))
                finally:
                    if (d / "results.json").read_text() != '{"knn_colour": 0.5}\n':
                        raise Loss("results.json damaged by a failed write")
                return
            if target == "prior":
                from gpsviz.data import load_dataset
                from gpsviz.priors import compute_prior

                ds = load_dataset("shapes", "test", n=64)
                with failing_replace(err):
                    compute_prior("pca", ds, root=ctx.new_dir("prior-root"), progress=False, dim=8)
        return run
    for err in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        for target in ("train", "resume", "evaluate", "cli-evaluate", "prior"):
            add(f"{errno.errorcode[err]} while writing ({target})", enospc(target, err))
    add("train --out with a 300-character folder name",
        cli(BASE + ["--out", tmp / ("n" * 300)], refused_expected("a 300-character name")))

    # truncated / hand-edited results.json and caches
    broken = {"truncated": b'{"config": {"recipe": "sim', "list": b"[1, 2]\n", "null": b"null\n",
              "config is a number": b'{"config": 5}\n', "not utf-8": b"\xff\xfe\x00garbage"}

    def cell_results(kind: str):
        def run():
            from gpsviz.experiments.grid import Cell, run_cell

            out = ctx.new_dir("cell")
            cell = Cell("SimCLR", "simclr", "strong", experiment="baselines")
            run_dir = copy_run(good_run(ctx), out / "runs" / "shapes-simclr-strong-s0")   # a finished run there
            if kind == "directory":
                (run_dir / "results.json").mkdir()
            else:
                (run_dir / "results.json").write_bytes(broken[kind])
            with small_smoke():
                run_cell(cell, "smoke", 0, out, progress=False)
        return run
    for kind in list(broken) + ["directory"]:
        add(f"reproduce cell whose results.json is {kind}", cell_results(kind), 120)

    def floors_cache(kind: str):
        def run():
            from gpsviz.experiments.grid import config_floor_rows

            path = ctx.new_dir("floors") / "results.json"
            path.parent.mkdir(parents=True)
            path.write_bytes(broken[kind])
            config_floor_rows(tiny(), "shapes", 0, path)
        return run
    for kind in ("truncated", "list", "not utf-8"):
        add(f"floor rows whose cache results.json is {kind}", floors_cache(kind))

    def uota_results(kind: str):
        def run():
            from gpsviz.experiments.uota import train_uota_run

            d = ctx.new_dir("uota-res")
            d.mkdir()
            (d / "results.json").write_bytes(broken[kind])
            train_uota_run(tiny(recipe="uota-simclr"), d, probe=16, progress=False)
        return run
    for kind in ("truncated", "list"):
        add(f"train_uota_run whose results.json is {kind}", uota_results(kind))

    def comparison(kind: str):
        def run():
            from gpsviz.experiments.uota import comparison_table

            d = good_copy(ctx, "cmp")
            if kind == "knn only":
                evaluate_run(d, targets=["label"], probes=["knn"])
            else:
                (d / "results.json").write_bytes(broken[kind])
            comparison_table({"run": d})
        return run
    for kind in ("knn only", "truncated"):
        add(f"uota comparison_table of a run whose results.json is {kind}", comparison(kind), 90)

    def cached_analysis(which: str):
        def run():
            d = good_copy(ctx, f"cache-{which}")
            if which == "cassle":
                from gpsviz.experiments.cassle import run_analysis
                (d / "cassle_analysis.json").write_bytes(broken["truncated"])
                run_analysis(d, scale="smoke")
            elif which == "dubois":
                from gpsviz.experiments.dubois import measure_run
                (d / "conditions.json").write_bytes(broken["truncated"])
                measure_run(d, n_invariance=32, n_instances=16)
            else:
                from gpsviz.widgets.probe_explorer import ProbeExplorer
                (d / "results.json").write_bytes(broken["truncated"])
                ProbeExplorer.from_results(d)
        return run
    add("cassle run_analysis with a truncated cassle_analysis.json", cached_analysis("cassle"), 120)
    add("dubois measure_run with a truncated conditions.json", cached_analysis("dubois"), 120)
    add("ProbeExplorer.from_results of a truncated results.json", cached_analysis("probe"))

    def results_shape(kind: str):
        def run():
            d = good_copy(ctx, "res-shape")
            if kind == "directory":
                (d / "results.json").mkdir()
            else:
                (d / "results.json").write_bytes(broken[kind])
            evaluate_run(d, targets=["label"], probes=["knn"])
        return run
    add("evaluate a run whose results.json is a directory", results_shape("directory"))
    add("evaluate a run whose results.json is a list (control)", results_shape("list"))
    add("evaluate a run whose results.json is truncated (control)", results_shape("truncated"))

    # view_weights.pt hand-edited
    def view_weights(kind: str):
        def run():
            from gpsviz.experiments.uota import weight_analysis
            from gpsviz.view_weights import FIELDS

            d = copy_run(uota_run(ctx), ctx.new_dir("vw"))
            p = d / "view_weights.pt"
            raw = torch.load(p, weights_only=True)
            n = raw["epoch"].shape[0]
            if kind == "truncated":
                p.write_bytes(p.read_bytes()[:100])
            elif kind == "config.json truncated":
                (d / "config.json").write_bytes(broken["truncated"])
            else:
                obj = {"list": [1, 2], "None": None, "tensor": torch.zeros(3),
                       "ints": {f: 5 for f in FIELDS},
                       "epoch NaN": {**raw, "epoch": torch.full((n,), float("nan"))},
                       "row out of range": {**raw, "row": torch.full((n,), 10**6, dtype=torch.long)},
                       "params 1-D": {**raw, "params": torch.zeros(n)},
                       "missing field": {k: v for k, v in raw.items() if k != "weight"},
                       "short field": {**raw, "weight": raw["weight"][:1]}}[kind]
                torch.save(obj, p)
            weight_analysis(d)
        return run
    for kind in ("truncated", "list", "None", "tensor", "ints", "epoch NaN", "row out of range", "params 1-D",
                 "missing field", "short field", "config.json truncated"):
        add(f"uota weight_analysis with view_weights.pt {kind}" if kind != "config.json truncated" else
            "uota weight_analysis with config.json truncated", view_weights(kind))

    # checkpoint options: the config inside a checkpoint with bad values
    edits = {"head num_layers='abc'": ("head_options", {"num_layers": "abc"}),
             "head num_layers=0": ("head_options", {"num_layers": 0}),
             "backbone width='abc'": ("backbone_options", {"width": "abc"}),
             "backbone width=-4": ("backbone_options", {"width": -4}),
             "backbone option zzz": ("backbone_options", {"zzz": 1}),
             "data n='abc'": ("data_options", {"n": "abc"}),
             "proj_dim=7": ("proj_dim", 7), "views local_views='abc'": ("views_options", {"local_views": "abc"}),
             "objective temperature='abc'": ("objective_options", {"temperature": "abc"})}

    def ck_config(field: str, value: Any, op: str):
        def run():
            d = good_copy(ctx, "ckcfg")
            ck = torch.load(d / "checkpoint.pt", weights_only=True)
            ck["config"][field] = value
            torch.save(ck, d / "checkpoint.pt")
            if op == "evaluate":
                evaluate_run(d, targets=["label"], probes=["knn"])
            elif op == "load_run":
                from gpsviz.sensitivity import load_run
                load_run(d)
            else:
                from gpsviz.data import load_dataset
                from gpsviz.priors import compute_prior
                compute_prior("checkpoint", load_dataset("shapes", "test", n=64), root=tmp / "data", run=str(d),
                              progress=False)
        return run
    for name, (field, value) in edits.items():
        for op in ("evaluate", "load_run", "prior"):
            add(f"checkpoint config {name}: {op}", ck_config(field, value, op))

    # incompatible data
    def other_data(kind: str, op: str):
        def run():
            from gpsviz.data import from_arrays

            g = np.random.default_rng(2)
            shape = {"grey": (64, 32, 32), "16 px RGB": (64, 16, 16, 3), "64 px RGB": (64, 64, 64, 3)}[kind]
            tr = from_arrays(g.integers(0, 256, shape, dtype=np.uint8), labels=[i % 2 for i in range(64)])
            te = from_arrays(g.integers(0, 256, shape, dtype=np.uint8), labels=[i % 2 for i in range(64)],
                             split="test")
            d = good_run(ctx)
            if op == "evaluate":
                evaluate_run(d, targets=["label"], probes=["knn"], write=False, data=(tr, te))
            elif op == "sensitivity":
                from gpsviz.sensitivity import load_run, sensitivity
                sensitivity(load_run(d), te.images[:8], n_views=2)
            else:
                from gpsviz.sensitivity import load_run, param_prediction
                param_prediction(load_run(d), tr.images[:32], te.images[:16])
        return run
    for kind in ("grey", "16 px RGB", "64 px RGB"):
        for op in ("evaluate", "sensitivity", "param_prediction"):
            add(f"{op} of an RGB 32 px run on {kind} data", other_data(kind, op))

    # an explorer given a run of another dataset
    def explorer(which: str, right: bool):
        def run():
            from gpsviz.data import from_arrays, load_dataset

            if which == "sensitivity":
                from gpsviz.widgets.sensitivity_explorer import SensitivityExplorer

                ds = load_dataset("shapes", "test", n=64) if right else from_arrays(
                    np.random.default_rng(3).integers(0, 256, (64, 32, 32), dtype=np.uint8), split="test")
                SensitivityExplorer(ds, {"run": good_run(ctx)}, n_views=2, probe_images=32)
            else:
                from gpsviz.widgets.ood_explorer import OODExplorer

                ds = load_dataset("shapes", "train", n=64, seed=0 if right else 5)
                OODExplorer(ds, uota_run(ctx))
                if not right:
                    raise Silent("OODExplorer showed a run's view weights over another dataset's images")
        return run
    add("SensitivityExplorer of an RGB run on grey images", explorer("sensitivity", False), 90)
    add("SensitivityExplorer of a run on its own test images (control)", explorer("sensitivity", True), 90)
    add("OODExplorer of a UOTA run on shapes of another seed", explorer("ood", False), 90)
    add("OODExplorer of a UOTA run on its own training images (control)", explorer("ood", True), 90)

    # a 20,000² PNG in an image folder
    def bomb(op: str):
        def run():
            from PIL import Image

            d = ctx.new_dir("bomb")
            write_images(d / "a", 4, 16, 0)
            (d / "b").mkdir()
            Image.new("1", (20_000, 20_000)).save(d / "b" / "huge.png")
            if op == "from_folder":
                from gpsviz.data import from_folder
                from_folder(d)
            else:
                raise_for(*run_cli(["train", "--data", "folder", "--data-opt", f"path={d}", "--epochs", "1",
                                    "--batch-size", "2", "--no-eval", "--device", "cpu", "--out", ctx.new_dir("bomb-run")]))
        return run
    add("from_folder with a 20,000² PNG", bomb("from_folder"))
    add("train --data folder with a 20,000² PNG", bomb("cli"))

    # misleading messages
    def diverge(extra: list[str]):
        def run():
            out = ctx.new_dir("diverge")
            rc, text = run_cli(["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval",
                                "--device", "cpu", "--out", out] + extra)
            if rc == 2 and not (out / "checkpoint.pt").exists() and "is kept" in text and "last good" in text:
                i = text.rfind("error: ")
                raise Silent(f"no checkpoint exists, yet: {text[i:].strip()[:200]}")
            raise_for(rc, text)
        return run
    add("divergence in the first epoch: message about the last good checkpoint (sgd lr 10)",
        diverge(["--optimizer", "sgd", "--lr", "10", "--weight-decay", "1", "--data-opt", "n=256", "--batch-size", "8"]), 90)
    add("divergence in the first epoch: message about the last good checkpoint (temperature 1e-40)",
        diverge(["--objective-opt", "temperature=1e-40"]))

    def device_resume(first: str, then: str):
        def run():
            out, _ = half_run(ctx, "dev-resume", device=first)
            raise_for(*run_cli(["train", "--epochs", "2", "--data-opt", "n=64", "--batch-size", "32", "--no-eval",
                                "--device", then, "--out", out, "--resume"]))
        return must_accept(run)
    add("resume a --device cpu run with --device auto (CPU-only machine)", device_resume("cpu", "auto"))
    add("resume a --device auto run with --device cpu (CPU-only machine)", device_resume("auto", "cpu"))
    add("resume a --device cpu run with --device cpu (control)", device_resume("cpu", "cpu"))

    def sens64(recipe: str, views: dict):
        def run():
            from gpsviz.runs import load_data
            from gpsviz.sensitivity import load_run, sensitivity

            cfg = tiny(recipe=recipe, data_options={"n": 64, "size": 64}, views_options=views)
            out = ctx.new_dir(f"px64-{recipe}")
            api_train(cfg, out)
            sensitivity(load_run(out), load_data(cfg)[1].images[:8], n_views=2)
        return must_accept(run)
    add("sensitivity of a valid 64 px simclr run", sens64("simclr", {}))
    add("sensitivity of a valid 64 px uota-simclr run with local_size=40", sens64("uota-simclr", {"local_size": 40}))
    add("sensitivity of a valid 64 px swav run with local_size=48", sens64("swav", {"local_size": 48}))

    def torchrun_error():
        torchrun = Path(sys.executable).with_name("torchrun")
        if not torchrun.exists():
            raise RuntimeError("probe: torchrun not found beside python")
        p = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "gpsviz", *BASE,
                            "--recipe", "nope", "--out", str(ctx.new_dir("torchrun-err"))],
                           capture_output=True, text=True, timeout=150,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
        errs = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
        if "Traceback" in p.stderr or len(errs) != 1:
            raise RuntimeError(f"torchrun: {len(errs)} error lines, traceback: {'Traceback' in p.stderr}, "
                               f"{len(p.stderr.splitlines())} lines of stderr")
        raise GpsvizError(errs[0])
    add("torchrun --nproc_per_node 2 train --recipe nope (one error line, once?)", torchrun_error, 160)

    def launcher_error(extra: list[str], finished: bool):
        def run():
            out = ctx.new_dir("launch-err")
            env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, "-m", "gpsviz", BASE[0], "--nproc-per-node", "2", *BASE[1:], *extra,
                   "--out", str(out)]
            if finished:                           # the processes themselves meet the error: a finished run
                subprocess.run([sys.executable, "-m", "gpsviz", *BASE, "--out", str(out)], capture_output=True,
                               timeout=150, env=env)
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
            errs = [ln for ln in p.stderr.splitlines() if ln.startswith("error: ")]
            if p.returncode == 0:
                raise Silent("gpsviz train --nproc-per-node accepted it")
            if "Traceback" in p.stderr or len(errs) != 1:
                raise RuntimeError(f"--nproc-per-node: {len(errs)} error lines, traceback: "
                                   f"{'Traceback' in p.stderr}, {len(p.stderr.splitlines())} lines of stderr")
            raise GpsvizError(errs[0])
        return run
    add("gpsviz train --nproc-per-node 2 --recipe nope (one error line, once?)", launcher_error(["--recipe", "nope"],
                                                                                                 False), 160)
    add("gpsviz train --nproc-per-node 2 into a finished run (one error line, once?)", launcher_error([], True), 160)


# ------------------------------------------------------------------------------------------------ provenance
def provenance(ctx: Ctx) -> None:
    add = lambda name, fn, t=60: ctx.add("provenance", name, fn, t)  # noqa: E731

    def case(label: str, pred: Callable[[tuple, Any], bool], where: Callable[[], Path] = lambda: good_run(ctx)):
        def run():
            items = provenance_items(where())
            if not any(pred(path, v) for path, v in items):
                raise Silent(f"the run folder records no {label}")
        return run
    def has(path: tuple, *words: str) -> bool:            # a key of the path (not the file name) holds a word
        return any(w in k.lower() for k in path[1:] for w in words)

    def starts(path: tuple, *words: str) -> bool:         # a word of the last key starts with one of these
        return any(t.startswith(w) for t in tokens(path[-1] if path else "") for w in words)
    checks = {
        "resolved precision (not 'auto')": lambda p, v: has(p, "precision", "dtype", "autocast")
        and isinstance(v, str) and v.lower() not in ("auto", ""),
        "resolved memory layout": lambda p, v: has(p, "layout", "channels_last", "memory_format") and v is not None,
        "world size": lambda p, v: has(p, "world") and number(v) and v >= 1,
        "device actually used (not 'auto')": lambda p, v: has(p, "device", "processor", "hardware", "cpu_name",
                                                             "cpu_model", "gpu") and isinstance(v, str)
        and v.lower() not in ("auto", ""),
        "torch version": lambda p, v: has(p, "torch") and isinstance(v, str) and bool(re.search(r"\d+\.\d+", v)),
        "gpsviz version": lambda p, v: has(p, "gpsviz") and isinstance(v, str) and bool(re.search(r"\d", v)),
        "start time": lambda p, v: starts(p, "start", "begin", "began") and timelike(v),
        "end time": lambda p, v: starts(p, "end", "finish", "stop") and timelike(v),
        "wall-clock seconds": lambda p, v: has(p, "wall", "elapsed", "duration") and number(v),
        "CPU seconds": lambda p, v: starts(p, "cpu") and number(v),
    }
    for label, pred in checks.items():
        add(f"after a CLI train the run folder records the {label}", case(label, pred))

    def evaluated():
        from gpsviz.runs import evaluate_run

        d = good_copy(ctx, "prov-eval")
        evaluate_run(d, targets=["label"], probes=["knn"])
        r = json.loads((d / "results.json").read_text())
        if not any(any(w in "_".join(p).lower() for w in ("checkpoint", "sha", "hash", "digest"))
                   and isinstance(v, str) and len(v) >= 8 for p, v in flatten(r)):
            raise Silent("results.json does not say which checkpoint it measured (no hash)")
    add("evaluate's results.json names the checkpoint it measured", evaluated)

    def reproduce_rows():
        r = json.loads((rep_first(ctx)["folder"] / "results.json").read_text())
        rows = [row for row in r.get("runs", []) if isinstance(row, dict) and "config" in row]
        told = lambda row: any(any(w in k.lower() for w in ("torch", "provenance", "version"))  # noqa: E731
                               for path, _ in flatten(row) for k in path)
        if not rows or not all(told(row) for row in rows):
            raise Silent("the rows of reproduce's results.json do not say what produced them (no versions)")
    add("reproduce's results.json rows record what produced them (data-loss reproduction)", reproduce_rows, 400)

    def torchrun_world():
        torchrun = Path(sys.executable).with_name("torchrun")
        out = ctx.new_dir("torchrun-2")
        p = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "gpsviz", *BASE,
                            "--out", str(out)], capture_output=True, text=True, timeout=200,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
        if p.returncode != 0:
            raise RuntimeError(f"torchrun exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
        if not any("world" in (path[-1].lower() if path else "") and v == 2 for path, v in provenance_items(out)):
            raise Silent("a 2-process torchrun run records no world size 2")
    add("a 2-process torchrun run records its world size", torchrun_world, 220)


# ------------------------------------------------------------------------------------------------ fuzz (own)
SLOT_OPTIONS = {   # (recipe, slot, option): today's options of each ingredient (a fixed list: the cases must not
    # depend on the library version)
    ("gps-simclr", "positives"): ["prior", "prior_options", "k", "include_anchor", "radius", "choice",
                                  "refresh_every", "metric", "index", "adaptive_k"],
    ("spps-simclr", "positives"): ["prior", "prior_options", "k", "threshold", "target_purity", "members",
                                   "threshold_quantile"],
    ("swav", "views"): ["global_views", "local_views", "local_size", "local_scale", "global_scale"],
    ("simclr", "head"): ["num_layers", "last_bn"],
    ("cassle-simclr", "head"): ["families", "encoder_depth", "encoder_width", "mode"],
    ("dissl", "head"): ["rank"],
    ("simclr", "objective"): ["temperature"],
    ("cissl", "objective"): ["teacher_hidden", "temperature"],
    ("dissl", "objective"): ["lam", "beta", "teacher_temperature", "student_temperature", "teacher_hidden",
                             "bottleneck"],
    ("swav", "objective"): ["prototypes", "temperature", "epsilon", "iterations", "freeze_epochs", "queue_length", "queue_start_epoch"],
    ("uota-simclr", "weighting"): ["tau", "start", "eps", "restart_lr"],
}
BAD_VALUES = ["abc", float("nan"), float("inf"), -float("inf"), -10**9, {"zz": 1}, []]


def fuzz(ctx: Ctx) -> None:
    add = lambda name, fn, t=40: ctx.add("fuzz", name, fn, t)  # noqa: E731
    rng = random.Random(ctx.seed * 7919 + 18)

    # random slot options with random nonsense values (Python API)
    combos = [(r, s, o, v) for (r, s), names in SLOT_OPTIONS.items() for o in names for v in BAD_VALUES]
    for recipe, slot, opt, value in rng.sample(combos, 90):
        def slot_case(recipe=recipe, slot=slot, opt=opt, value=value):
            cfg = tiny(recipe=recipe, **{f"{slot}_options": {opt: value}})
            api_train(cfg, ctx.new_dir("fz-slot"))
            raise Silent(f"trained with {slot} option {opt}={value!r}")
        add(f"TrainConfig(recipe={recipe}, {slot}_options={{{opt!r}: {value!r}}}) + train", slot_case)

    # CLI: one bad flag value with another (valid) setting
    bad = {"--temperature": ["0", "-1", "nan", "1e9"], "--strength": ["-1", "nan", "1e9"],
           "--lr": ["0", "-1", "nan", "1e12"], "--weight-decay": ["-1", "nan", "5"], "--epochs": ["0", "-5"],
           "--batch-size": ["0", "1", "-2", "65"], "--seed": ["-1"], "--k": ["0", "-1"],
           "--data-opt": ["n=0", "size=2", "clutter=-1", "n=abc", "n=1"],
           "--views-opt": ["local_views=-1", "global_views=0", "local_size=2", "local_scale=(0.5,0.1)"],
           "--objective-opt": ["temperature=0", "temperature=nan"], "--precision": ["fp8", "half"],
           "--head-opt": ["num_layers=0", "num_layers=-1"], "--weighting-opt": ["tau=0", "start=2"]}
    valid = [["--aug", "weak"], ["--aug", "none"], ["--precision", "fp32"], ["--optimizer", "sgd"],
             ["--strength", "0.5"], ["--recipe", "byol"], ["--recipe", "swav"], ["--recipe", "uota-simclr"],
             ["--recipe", "gps-simclr"], ["--recipe", "cissl"], ["--recipe", "dissl"], ["--seed", "3"]]
    pairs = [(f, v, ok) for f, vs in bad.items() for v in vs for ok in range(len(valid)) if valid[ok][0] != f]
    for flag, value, ok in rng.sample(pairs, 40):
        extra = [flag, value] + valid[ok]
        add(f"train {' '.join(extra)}", cli(BASE + ["--out", ctx.new_dir("fz-cli")] + extra,
                                            refused_expected(" ".join(extra))))

    # random file corruptions, then a reader
    readers = {"checkpoint.pt": ["evaluate", "cli-evaluate", "resume", "prior", "load_run"],   # who reads each file
               "config.json": ["resume", "cli-evaluate"], "history.csv": ["resume"],
               "results.json": ["evaluate", "cli-evaluate"], ".gpsviz-run": ["resume", "evaluate"]}
    files = ["checkpoint.pt"] * 3 + ["config.json", "history.csv", "results.json", ".gpsviz-run"]
    kinds = ["truncate", "bitflip", "bitflip", "empty", "garbage", "directory"]
    for i in range(60):
        f, kind = rng.choice(files), rng.choice(kinds)
        op = rng.choice(readers[f])
        seed = rng.randrange(2**31)

        def corrupt(f=f, kind=kind, op=op, seed=seed):
            r = random.Random(seed)
            d = good_copy(ctx, "fz-file")
            p = d / f
            if f == "results.json":
                p.write_text('{"knn_label": 0.5, "recipe": "simclr", "aug": "strong", "seed": 0, "data": "shapes"}\n')
            raw = p.read_bytes()
            if kind == "truncate":
                p.write_bytes(raw[: r.randrange(max(1, len(raw)))])
            elif kind == "bitflip":
                b = bytearray(raw)
                for _ in range(r.randint(1, 3)):
                    j = r.randrange(len(b))
                    b[j] ^= 1 << r.randrange(8)
                p.write_bytes(bytes(b))
            elif kind == "empty":
                p.write_bytes(b"")
            elif kind == "garbage":
                p.write_bytes(bytes(r.randrange(256) for _ in range(200)))
            else:
                p.unlink()
                p.mkdir()
            if op == "evaluate":
                from gpsviz.runs import evaluate_run
                evaluate_run(d, targets=["label"], probes=["knn"])
            elif op == "cli-evaluate":
                raise_for(*run_cli(["evaluate", d, "--targets", "label", "--probes", "knn"]))
            elif op == "resume":
                raise_for(*run_cli(good_argv(d) + ["--resume"]))
            elif op == "prior":
                from gpsviz.data import load_dataset
                from gpsviz.priors import compute_prior
                compute_prior("checkpoint", load_dataset("shapes", "test", n=64), root=ctx.tmp / "data",
                              run=str(d), progress=False)
            else:
                from gpsviz.sensitivity import load_run
                load_run(d)
            if f == "checkpoint.pt" and p.is_file():
                try:
                    bad_t = nonfinite(d)
                except Exception:  # noqa: BLE001
                    bad_t = []
                if bad_t:
                    raise Silent(f"{op} accepted a corrupted checkpoint with non-finite {bad_t[0]}")
        add(f"{f} {kind} (#{i}), then {op}", corrupt)


# ================================================================================================ main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--only", default=None, help="run the cases whose 'class: name' contains this text")
    ap.add_argument("--json", default=None, help="write the counts and every case's outcome to this file")
    ap.add_argument("--mem-gb", type=float, default=8.0, help="address-space limit of the probe (GiB; 0 = none)")
    ap.add_argument("--list", action="store_true", help="print the selected cases and exit")
    a = ap.parse_args()
    json_out = Path(a.json).resolve() if a.json else None
    if a.mem_gb > 0:
        lim = int(a.mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    print(f"gpsviz: {gpsviz.__file__}  torch {torch.__version__}  seed {a.seed}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="gpsviz-probe-"))
    os.environ["GPSVIZ_DATA"] = str(tmp / "data")
    os.chdir(tmp)
    ctx = Ctx(tmp, a.seed)
    t_start = time.time()
    legacy(ctx, a.seed)
    for section in (data_loss, nonsense, tracebacks, provenance, fuzz):
        section(ctx)
    selected = [c for c in ctx.cases if a.only is None or a.only.lower() in f"{c[0]}: {c[1]}".lower()]
    if a.list:
        for cls, what, _, timeout in selected:
            print(f"({cls}) {what}  [alarm {timeout} s]")
        print(f"{len(selected)} cases: " + ", ".join(f"{c} {sum(x[0] == c for x in selected)}" for c in CLASSES))
        os.chdir("/")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    counts = {k: 0 for k in CATEGORIES}
    by_class = {c: {k: 0 for k in CATEGORIES} for c in CLASSES}
    bad, records = [], []
    for cls, what, fn, timeout in selected:
        t0 = time.time()
        outcome, detail = classify(fn, timeout)
        dt = time.time() - t0
        counts[outcome] += 1
        by_class[cls][outcome] += 1
        records.append({"class": cls, "name": what, "outcome": outcome, "detail": detail, "seconds": round(dt, 2)})
        if outcome in (TRACE, SILENT, LOSS) or os.environ.get("PROBE_VERBOSE"):
            bad.append(f"  [{outcome}] ({cls}) {what}: {detail}")
        if os.environ.get("PROBE_PROGRESS"):
            print(f"{len(records)}/{len(selected)} {dt:5.1f}s [{outcome}] ({cls}) {what}", flush=True)
    elapsed = time.time() - t_start
    print(f"tried {len(selected)} in {elapsed:.0f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    w = max(len(c) for c in CLASSES) + 2
    print(f"{'class':<{w}}" + "".join(f"{k:>19}" for k in CATEGORIES) + f"{'total':>8}")
    for c in CLASSES:
        row = by_class[c]
        if sum(row.values()):
            print(f"{c:<{w}}" + "".join(f"{row[k]:>19}" for k in CATEGORIES) + f"{sum(row.values()):>8}")
    print(f"{'all':<{w}}" + "".join(f"{counts[k]:>19}" for k in CATEGORIES) + f"{len(selected):>8}")
    print("\n".join(bad))
    if json_out:
        json_out.write_text(json.dumps({
            "gpsviz": gpsviz.__file__, "torch": torch.__version__, "seed": a.seed, "only": a.only,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(elapsed, 1), "cases": len(selected),
            "counts": counts, "by_class": by_class, "results": records}, indent=1) + "\n")
    os.chdir("/")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
