"""Adversarial probe (issue 12): try bad inputs as a new user would and count the outcomes.

    PYTHONPATH=$PWD .venv/bin/python scripts/adversarial_probe.py [--seed 7]

Categories: clean error (GpsvizError / one CLI line, exit 2), legitimately accepted, raw traceback, silently
accepted nonsense, code run or data lost. Prints the counts and every input that is not clean or legit.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpsviz.errors import GpsvizError  # noqa: E402

CLEAN, LEGIT, TRACE, SILENT, LOSS = "clean error", "accepted (legit)", "traceback", "silently accepted", "code run/loss"


class Silent(Exception):
    """The input was accepted but the result is nonsense."""


class Loss(Exception):
    """Code ran from a data file, or data was lost."""


def _too_long(signum, frame):
    raise Silent("accepted and still running after 60 s (an absurd value was taken at face value)")


def _classify(fn) -> tuple[str, str]:
    try:
        fn()
    except GpsvizError as e:
        return CLEAN, str(e).splitlines()[0][:120]
    except Silent as e:
        return SILENT, str(e)[:200]
    except Loss as e:
        return LOSS, str(e)[:200]
    except SystemExit as e:
        return (CLEAN, "argparse") if e.code == 2 else (TRACE, f"SystemExit {e.code}")
    except Exception as e:  # noqa: BLE001
        return TRACE, f"{type(e).__name__}: {str(e)[:150]}"
    return LEGIT, ""


def classify(fn) -> tuple[str, str]:
    """Run one case with a 60 s alarm (a case still running then took an absurd value at face value)."""
    import signal

    signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(60)
    try:
        try:
            return _classify(fn)
        finally:
            signal.alarm(0)
    except Silent as e:
        return SILENT, str(e)[:200]


def cli(argv, expect_ok_check=None):
    from gpsviz.cli import main

    def run():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        lines = err.getvalue().strip().splitlines()
        if rc == 2:
            if not lines or not lines[-1].startswith("error: "):
                raise RuntimeError(f"exit 2 without a clean line: {lines[-2:]}")
            raise GpsvizError(lines[-1])
        if rc != 0:
            raise RuntimeError(f"exit {rc}")
        if expect_ok_check:
            expect_ok_check()
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    tmp = Path(tempfile.mkdtemp(prefix="gpsviz-probe-"))
    os.environ["GPSVIZ_DATA"] = str(tmp / "data")
    os.chdir(tmp)
    marker = tmp / "PWNED"
    cases: list[tuple[str, object]] = []
    base = ["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval"]

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
        cases.append((f"train {' '.join(extra)}", cli(base + ["--device", "cpu", "--out", str(out)] + extra
                                                      if "--device" not in extra else base + ["--out", str(out)] + extra,
                                                      sane_run(out))))
    (tmp / "afile").write_text("x")
    for o in (str(tmp / "afile"), "/proc", "/proc/x", "/dev/null", "/sys/x", str(tmp / "afile" / "sub")):
        cases.append((f"train --out {o}", cli(base + ["--device", "cpu", "--out", o])))
    for argv in (["reproduce", "baselines", "--seeds", "0"], ["reproduce", "baselines", "--seeds", "-1"],
                 ["reproduce", "gps", "--epochs", "0"], ["reproduce", "gps", "--epochs", "-2"],
                 ["reproduce", "nope"], ["reproduce", "gps", "--scale", "huge"], ["evaluate", str(tmp / "nowhere")],
                 ["evaluate", str(tmp / "afile")], ["evaluate"], ["bench", "nope"], ["nope"], []):
        cases.append((" ".join(argv) or "(no args)", cli(argv)))

    # --- TrainConfig: random fields
    from gpsviz.config import TrainConfig
    values = [0, -1, 1, 2, 0.5, 1e-30, 1e300, float("nan"), float("inf"), -float("inf"), True, None, "x", "", [1],
              {"a": 1}, 2**64, 2**63, -2**63, 64, 0.2]
    fields = ["temperature", "strength", "lr", "weight_decay", "momentum_base", "epochs", "batch_size", "proj_dim",
              "proj_hidden", "pred_hidden", "knn_k", "eval_every", "eval_size", "seed", "warmup_epochs", "amp",
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
        cases.append((f"TrainConfig({kw})", make))

    # --- from_arrays
    from gpsviz.data.local import from_arrays, from_folder
    nr = np.random.default_rng(a.seed)
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
        cases.append((f"from_arrays {shape} {dt.__name__} labels={labels}", arr))

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
        cases.append((f"from_folder {mode} {wh} size={size}", folder))

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
        cases.append((f"load_dataset shapes {opts}", shapes))

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
        cases.append((f"cifar10 {kind}", cifar))
    for name in ("fashion-mnist", "stl10", "cifar100"):
        cases.append((f"{name} missing", lambda name=name: load_dataset(name, root=tmp / "empty", download=False)))

    # --- run folders and checkpoints
    from gpsviz.checkpoint import load_checkpoint
    from gpsviz.evaluate import evaluate_run

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
    cases.append(("train into a foreign folder", foreign))

    good_run = tmp / "good"
    cli(base + ["--device", "cpu", "--out", str(good_run)])()

    def concurrent():
        d = tmp / "concurrent"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        ps = [subprocess.Popen([sys.executable, "-m", "gpsviz", *base, "--epochs", "2", "--device", "cpu",
                                "--out", str(d), "--seed", str(s)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env) for s in (0, 1)]
        rcs = sorted(p.wait() for p in ps)
        if rcs == [0, 0]:
            raise Loss("both trainings into one folder succeeded")
        if rcs != [0, 2]:
            raise RuntimeError(f"exit codes {rcs}")
        c = json.loads((d / "config.json").read_text())["seed"]
        if load_checkpoint(d)["config"]["seed"] != c:
            raise Loss("checkpoint and config.json of different runs")
    cases.append(("two trainings into one --out", concurrent))

    def two_evals():
        evaluate_run(good_run, targets=["label"], probes=["knn"])
        evaluate_run(good_run, targets=["colour"], probes=["knn"])
        r = json.loads((good_run / "results.json").read_text())
        if "knn_label" not in r:
            raise Loss("results of the first evaluation lost")
    cases.append(("two evaluates, different targets", two_evals))
    cases.append(("evaluate a checkpoint file", lambda: evaluate_run(good_run / "checkpoint.pt", probes=["knn"])))

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
            shutil.copytree(good_run, d)
            ck = torch.load(d / "checkpoint.pt", weights_only=True)
            edit(ck)
            torch.save(ck, d / "checkpoint.pt")
            evaluate_run(d, probes=["knn"], targets=["label"])
        cases.append((f"hand-edited checkpoint, evaluate: {name}", edited))
        cases.append((f"hand-edited checkpoint, train --resume: {name}",
                      cli(base + ["--device", "cpu", "--out", str(d), "--resume"])))
    for name, data in (("truncated", None), ("garbage", b"garbage"), ("pickle payload", None)):
        def bad_ck(name=name, data=data):
            d = tmp / f"ck-{name.replace(' ', '_')}"
            shutil.copytree(good_run, d)
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
        cases.append((f"checkpoint {name}", bad_ck))

    counts = {k: 0 for k in (CLEAN, LEGIT, TRACE, SILENT, LOSS)}
    bad = []
    for what, fn in cases:
        outcome, detail = classify(fn)
        counts[outcome] += 1
        if outcome in (TRACE, SILENT, LOSS) or os.environ.get("PROBE_VERBOSE"):
            bad.append(f"  [{outcome}] {what}: {detail}")
    print(f"tried {len(cases)}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("\n".join(bad))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
