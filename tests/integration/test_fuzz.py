"""Seeded fuzz test (issue 12): random user input ends in one of two outcomes only.

Either a clean ``GpsvizError`` (CLI: exit 2 with one ``error:`` line, argparse: its usage + one error line, never a
traceback) or a *valid* result, checked against this file's own idea of validity (``SANE`` ranges, parsed
booleans, image sizes the backbones accept, class counts, 16-bit scaling, no code run from a data file). A few
hundred cases over the CLI, ``TrainConfig``, ``from_arrays``, ``from_folder`` and ``load_dataset``; < 1 minute.
"""
from __future__ import annotations

import contextlib
import io
import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gpsviz.errors import GpsvizError

SEED = 12
CASES = {"cli": 110, "config": 150, "arrays": 120, "folder": 30, "dataset": 70}

# What a valid config looks like, written independently of gpsviz/config.py (the fuzz test's oracle).
SANE = {"temperature": (1e-3, 10), "strength": (0, 10), "lr": (1e-8, 10), "weight_decay": (0, 1),
        "momentum_base": (1e-12, 1 - 1e-12), "epochs": (1, 100_000), "batch_size": (2, 65_536),
        "proj_hidden": (1, 65_536), "proj_dim": (1, 65_536), "pred_hidden": (1, 65_536), "knn_k": (1, 10_000),
        "eval_every": (0, 100_000), "eval_size": (10, 10**7), "seed": (0, 2**63 - 1), "warmup_epochs": (0, 100_000)}
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")

NUMBERS = [0, 1, -1, 2, 3, 0.5, 1e-30, 1e-4, 1e6, 1e300, 2**63, 2**64, -2**63 - 1, float("nan"), float("inf"),
           float("-inf"), True, False, None, "abc", "", [1], {"a": 1}, 7, 64, 0.2, 0.99, 1.0]


def _assert_sane_config(cfg) -> list[str]:
    bad = []
    for name, (lo, hi) in SANE.items():
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            bad.append(f"{name}={v!r}")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        bad.append(f"precision={cfg.precision!r}")
    if cfg.warmup_epochs > cfg.epochs:
        bad.append("warmup_epochs > epochs")
    return bad


def _as_bool(v) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in TRUE + FALSE:
        return v.strip().lower() in TRUE
    return None


# ------------------------------------------------------------------------------------------------------- CLI
def _cli_case(rng: random.Random, tmp: Path, i: int) -> list[str]:
    pools = {
        "--temperature": ["0.2", "0.5", "1e-30", "inf", "nan", "-1", "0", "1e6", "abc", "0.001"],
        "--strength": ["1", "0", "0.5", "1e6", "-1", "nan", "inf", "x"],
        "--lr": ["1e-3", "0", "-1", "inf", "1e9", "nan"],
        "--weight-decay": ["1e-4", "-1", "nan", "5"],
        "--seed": ["0", "7", "-1", str(2**64), str(2**63), "1.5", "x"],
        "--device": ["cpu", "auto", "foo", "cuda", "cuda:7", "mps", "meta", "", "cpu:3"],
        "--batch-size": ["32", "1", "0", "-4", "100000", "x"],
        "--epochs": ["1", "0", "-1", "1000000000", "x"],
        "--aug": ["strong", "weak", "none", "medium", ""],
        "--recipe": ["simclr", "byol", "gps-simclr", "supcon", "nope", ""],
        "--k": ["3", "0", "-1", "100000"],
        "--prior": ["pixels", "nope"],
        "--optimizer": ["adamw", "sgd", "nope"],
        "--data": ["shapes", "nope", "cifar10", "arrays", "folder"],
        "--data-opt": ["n=64", "n=0", "n=-5", "n=abc", "n=10**12", "size=abc", "size=100000", "size=8", "size=16",
                       "seed=abc", "seed=-1", f"seed={2**70}", "clutter=abc", "clutter=-1", "clutter=nan",
                       "clutter=0.5", "colour_shift=false", "colour_shift=true", "colour_shift=maybe", "cache=no",
                       "cache=yes", "cache=2", "bogus=1", "noequals", "=", "n="],
        "--pos": ["k=3", "k=abc", "nope=1", "prior=pixels"],
        "--out": ["FILE", "/proc", "/dev/null", "/sys/x", "NEW", "FOREIGN"],
    }
    args = ["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval", "--device", "cpu",
            "--data-opt", "cache=no"]
    out = tmp / f"run{i}"
    for flag in rng.sample(sorted(pools), rng.randint(1, 3)):
        v = rng.choice(pools[flag])
        if flag == "--out":
            if v == "FILE":
                out = tmp / f"file{i}"
                out.write_text("x")
            elif v == "FOREIGN":
                out = tmp / f"foreign{i}"
                out.mkdir()
                (out / "notes.txt").write_text("mine")
            elif v != "NEW":
                out = Path(v)
            continue
        args += [flag, v]
    if rng.random() < 0.1:   # a few reproduce / evaluate commands
        args = rng.choice([["reproduce", "baselines", "--seeds", rng.choice(["0", "-1", "x"])],
                           ["reproduce", "gps", "--epochs", rng.choice(["0", "-3"])],
                           ["evaluate", str(tmp / "nowhere")], ["evaluate", str(tmp / f"file{i}")],
                           ["reproduce", "nope"], ["train", "--bogus"]])
        if args[0] == "evaluate":
            (tmp / f"file{i}").write_text("not a checkpoint")
        return args
    return args + ["--out", str(out)]


def test_fuzz_cli(tmp_path, monkeypatch):
    from gpsviz.checkpoint import load_checkpoint
    from gpsviz.cli import main
    from gpsviz.config import TrainConfig

    monkeypatch.setenv("GPSVIZ_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    rng = random.Random(SEED)
    failures, outcomes = [], {"error": 0, "valid": 0}
    for i in range(CASES["cli"]):
        argv = _cli_case(rng, tmp_path, i)
        err, out = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                rc = main(argv)
        except SystemExit as e:          # argparse: usage line + "error: ..." line, exit 2
            rc = e.code
            if rc != 2 or "error:" not in err.getvalue():
                failures.append((argv, f"SystemExit {rc}: {err.getvalue()[-300:]}"))
            outcomes["error"] += 1
            continue
        except Exception as e:  # noqa: BLE001 - the fuzz target: anything else is a traceback for the user
            failures.append((argv, f"traceback: {type(e).__name__}: {e}"[:300]))
            continue
        msg = err.getvalue().strip().splitlines()
        if rc == 2:
            if not msg or not msg[-1].startswith("error: ") or any("Traceback" in m for m in msg):
                failures.append((argv, f"unclear error: {msg[-3:]}"))
            outcomes["error"] += 1
            continue
        if rc != 0:
            failures.append((argv, f"exit {rc}"))
            continue
        outcomes["valid"] += 1
        run = Path(argv[argv.index("--out") + 1])
        ck = load_checkpoint(run)
        cfg = TrainConfig.from_dict(ck["config"])
        problems = _assert_sane_config(cfg)
        losses = [h["loss"] for h in ck["history"]]
        if len(losses) != cfg.epochs or not all(math.isfinite(v) and abs(v) < 1e4 for v in losses):
            problems.append(f"losses {losses}")
        opts = cfg.data_options
        for key in ("colour_shift", "cache"):
            if key in opts and _as_bool(opts[key]) is None:
                problems.append(f"{key}={opts[key]!r} accepted")
        if "colour_shift" in opts and cfg.data == "shapes":
            from gpsviz.runs import load_data
            shifted = load_data(cfg)[0].name.endswith("-shift")
            if shifted != _as_bool(opts["colour_shift"]):
                problems.append(f"colour_shift={opts['colour_shift']!r} gave shifted={shifted}")
        if _as_bool(opts.get("cache", True)) is False and (tmp_path / "data" / "shapes").exists():
            problems.append("cache=no wrote a cache")
        if problems:
            failures.append((argv, f"silently accepted: {problems}"))
    assert not failures, "\n".join(f"{a}: {m}" for a, m in failures)
    print("cli outcomes", outcomes)
    assert outcomes["error"] > 30 and outcomes["valid"] > 5, outcomes


# ---------------------------------------------------------------------------------------------- TrainConfig
def test_fuzz_train_config():
    from gpsviz.config import TrainConfig

    rng = random.Random(SEED + 1)
    fields = list(SANE) + ["recipe", "aug", "optimizer", "device", "precision", "data_options",
                              "positives_options", "objective", "views_options"]
    names = {"recipe": ["simclr", "byol", "nope", 3, None], "aug": ["weak", "strong", "x", None],
             "optimizer": ["adamw", "lars", "nope", 1], "device": ["cpu", "auto", "meta", "foo", 0, "cuda:0"],
             "precision": ["auto", "fp32", "bf16", "half", 0, None], "data_options": [{}, {"n": 5}, "n=5", None],
             "positives_options": [{}, [], "k=3"], "objective": ["byol", "ntxent", "dino9", 3],
             "views_options": [{}, {"local_views": 2}, {"local_view": 2}, "x"]}
    failures, valid = [], 0
    for _ in range(CASES["config"]):
        kw = {}
        for f in rng.sample(fields, rng.randint(1, 4)):
            kw[f] = rng.choice(names.get(f, NUMBERS))
        try:
            cfg = TrainConfig(**kw)
        except GpsvizError as e:
            if "\n" in str(e) or not str(e):
                failures.append((kw, f"unclear message {e!r}"))
            continue
        except Exception as e:  # noqa: BLE001
            failures.append((kw, f"traceback: {type(e).__name__}: {e}"))
            continue
        valid += 1
        bad = _assert_sane_config(cfg)
        if bad:
            failures.append((kw, f"silently accepted: {bad}"))
    assert not failures, "\n".join(f"{a}: {m}" for a, m in failures)
    print("valid", valid)
    assert valid >= 5, valid


# ---------------------------------------------------------------------------------------------- from_arrays
def test_fuzz_from_arrays():
    from gpsviz.data.local import from_arrays
    from gpsviz.models import build_backbone

    rng = random.Random(SEED + 2)
    nrng = np.random.default_rng(SEED)
    nets = {c: build_backbone("small-cnn", in_channels=c).eval() for c in (1, 3)}
    failures, valid = [], 0
    for _ in range(CASES["arrays"]):
        rank = rng.choice([2, 3, 3, 4, 4, 4, 5])
        shape = tuple(rng.choice([0, 1, 4, 7, 8, 9, 12, 16, 16, 16]) if d else rng.choice([1, 2, 3, 0])
                      for d in range(rank))
        if rng.random() < 0.4:                               # plausible images, with one thing perhaps wrong
            shape = (rng.choice([1, 2, 3]), rng.choice([8, 16, 7]), 16) + rng.choice([(), (1,), (3,), (4,)])
        elif rank == 4 and rng.random() < 0.6:
            shape = shape[:3] + (rng.choice([1, 3, 4]),)
        dtype = rng.choice([np.uint8, np.uint8, np.uint8, np.float32, np.float64, np.int64, np.bool_, np.uint16])
        kind = rng.choice(["unit", "unit", "byte", "byte", "big", "nan", "neg"])
        vals = {"unit": nrng.random(shape), "byte": nrng.integers(0, 256, shape), "big": nrng.random(shape) * 1e5,
                "nan": np.full(shape, np.nan), "neg": -nrng.random(shape)}[kind]
        with np.errstate(invalid="ignore"):
            images = vals.astype(dtype) if kind != "nan" or np.issubdtype(dtype, np.floating) else vals
        n = shape[0]
        labels = rng.choice([None, "ok", "ok", "short", "float", "huge", "neg", "minus1", "2d"])
        lab = {None: None, "ok": list(range(n)), "short": [0] * max(0, n - 1), "float": [0.5] * n,
               "huge": [10**7] * n, "neg": [-5] * n, "minus1": [-1] * n, "2d": [[0]] * n}[labels]
        classes = rng.choice([None, None, ["a"], ["a", "b", "c"]])
        try:
            ds = from_arrays(images, labels=lab, classes=classes)
        except GpsvizError:
            continue
        except Exception as e:  # noqa: BLE001
            failures.append((shape, dtype, kind, labels, classes, f"traceback: {type(e).__name__}: {e}"))
            continue
        valid += 1
        x = ds.images
        problems = []
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3) or min(x.shape[2:]) < 8:
            problems.append(f"images {x.dtype} {tuple(x.shape)}")
        if ds.num_classes > 100_000 or int(ds.labels.max()) >= max(1, ds.num_classes):
            problems.append(f"{ds.num_classes} classes, labels up to {int(ds.labels.max())}")
        if not problems:
            with torch.no_grad():
                try:
                    nets[x.shape[1]](x[:2].float() / 255)
                except Exception as e:  # noqa: BLE001
                    problems.append(f"backbone fails: {type(e).__name__}")
        if problems:
            failures.append((shape, dtype, kind, labels, classes, f"silently accepted: {problems}"))
    assert not failures, "\n".join(map(str, failures))
    print("valid", valid)
    assert valid >= 5, valid


# ---------------------------------------------------------------------------------------------- from_folder
def test_fuzz_from_folder(tmp_path):
    from PIL import Image

    from gpsviz.data.local import from_folder

    rng = random.Random(SEED + 3)
    nrng = np.random.default_rng(SEED + 3)
    failures, valid = [], 0
    for i in range(CASES["folder"]):
        root = tmp_path / f"f{i}"
        expect16 = {}
        for j in range(rng.randint(0, 3)):
            mode = rng.choice(["L", "RGB", "RGBA", "P", "I;16", "I;16", "1", "LA"])
            w, h = rng.choice([(1, 1), (4, 4), (8, 8), (12, 10), (16, 16)]) if rng.random() < 0.3 else (16, 16)
            sub = root / rng.choice(["a", "b", "."]) if rng.random() < 0.9 else root
            sub.mkdir(parents=True, exist_ok=True)
            path = sub / f"{j}.png"
            if mode == "I;16":
                arr = nrng.integers(0, 65536, (h, w), dtype=np.uint16)
                Image.fromarray(arr).save(path)
                expect16[path.name + sub.name] = arr
            elif rng.random() < 0.1:
                path.write_bytes(b"\x89PNG broken")
            else:
                Image.fromarray(nrng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode).save(path)
        size = rng.choice([None, None, 16, 8, 4, 0, -3, (16, 12), "x", 100000, True])
        try:
            ds = from_folder(root, size=size)
        except GpsvizError:
            continue
        except Exception as e:  # noqa: BLE001
            failures.append((i, size, f"traceback: {type(e).__name__}: {e}"))
            continue
        valid += 1
        x = ds.images
        if x.dtype != torch.uint8 or min(x.shape[2:]) < 8 or max(x.shape[2:]) > 1024:
            failures.append((i, size, f"silently accepted {tuple(x.shape)}"))
        if expect16 and ds.channels == 1 and size is None and len(expect16) == len(ds):
            got = x.float().mean().item()
            want = np.mean([a.astype(np.float64).mean() / 257 for a in expect16.values()])
            if abs(got - want) > 2:
                failures.append((i, size, f"16-bit pixels mean {got:.1f}, expected {want:.1f}"))
    assert not failures, "\n".join(map(str, failures))
    print("valid", valid)
    assert valid >= 5, valid


# ---------------------------------------------------------------------------------------------- load_dataset
class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _write_cifar(root: Path, kind: str, marker: Path, rng: np.random.Generator) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        good = {b"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), b"labels": [1, 2, 3]}
        payload = {"ok": good, "payload": {b"data": _Payload(str(marker)), b"labels": [0]},
                   "bare": _Payload(str(marker)), "list": [1, 2], "shape": {b"data": np.zeros((2, 5)), b"labels": [0]},
                   "labels": {b"data": good[b"data"], b"labels": [99, 0, 0]}, "truncated": good}[kind]
        raw = pickle.dumps(payload if name == "data_batch_1" else good, protocol=rng.choice([2, 4, 5]))
        if kind == "truncated" and name == "data_batch_1":
            raw = raw[: len(raw) // 2]
        (folder / name).write_bytes(raw)


def test_fuzz_load_dataset(tmp_path):
    from gpsviz.data import load_dataset

    rng = random.Random(SEED + 4)
    nrng = np.random.default_rng(SEED + 4)
    marker = tmp_path / "payload-ran"
    failures, valid = [], 0
    opt_pool = {"n": [5, 20, 0, -1, "abc", 1.5, None, True, 10**12], "seed": [0, 3, -1, "abc", 2**70, 1.5],
                "clutter": [0, 0.5, -1, "abc", float("nan"), float("inf"), 100],
                "colour_shift": [True, False, "false", "true", "no", "yes", "maybe", 2, 0, 1],
                "cache": [True, False, "no", "yes", "2", None], "size": [16, 32, 8, "abc", 100000, -1, 0],
                "bogus": [1]}
    for i in range(CASES["dataset"]):
        root = tmp_path / f"d{i}"
        name = rng.choice(["shapes", "shapes", "shapes", "SHAPES", "cifar10", "cifar-10", "cifar10", "nope", 3,
                           "fashion-mnist", "stl10", "arrays", "folder"])
        split = rng.choice(["train", "test", "test", "val", "bogus", "unlabeled"])
        opts = {}
        if name in ("shapes", "SHAPES"):
            for k in rng.sample(sorted(opt_pool), rng.randint(0, 3)):
                opts[k] = rng.choice(opt_pool[k])
            opts.setdefault("n", rng.choice([5, 20]))
        if name in ("cifar10", "cifar-10"):
            _write_cifar(root, rng.choice(["ok", "payload", "payload", "bare", "list", "shape", "labels",
                                           "truncated"]), marker, nrng)
        try:
            ds = load_dataset(name, split, root=root, download=False, **opts)
        except GpsvizError:
            continue
        except Exception as e:  # noqa: BLE001
            failures.append((name, split, opts, f"traceback: {type(e).__name__}: {e}"[:300]))
            continue
        valid += 1
        problems = []
        if "n" in opts and opts["n"] is not None and len(ds) != opts["n"]:
            problems.append(f"{len(ds)} images for n={opts['n']}")
        if "colour_shift" in opts and ds.name.endswith("-shift") != _as_bool(opts["colour_shift"]):
            problems.append(f"colour_shift={opts['colour_shift']!r} gave {ds.name}")
        if _as_bool(opts.get("cache", True)) is False and (root / "shapes").exists():
            problems.append("cache off but a cache file was written")
        if "cache" in opts and _as_bool(opts["cache"]) is None:
            problems.append(f"cache={opts['cache']!r} accepted")
        if problems:
            failures.append((name, split, opts, f"silently accepted: {problems}"))
    assert not marker.exists(), "a CIFAR file ran code"
    assert not failures, "\n".join(map(str, failures))
    print("valid", valid)
    assert valid >= 5, valid


@pytest.mark.parametrize("category", sorted(CASES))
def test_fuzz_case_counts(category):
    assert CASES[category] >= 30        # "a few hundred cases" in all: keep each category meaningful
