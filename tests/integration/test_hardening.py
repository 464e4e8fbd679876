"""Issue 12 (hardening): no code runs from a data file, no run overwrites another, every user error is one line.

One test (or a small group) per finding of the issue, numbered as there.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import edited_copy

from gpsviz.checkpoint import load_checkpoint
from gpsviz.cli import main
from gpsviz.config import TrainConfig
from gpsviz.data import load_dataset, make_shapes
from gpsviz.data.local import from_arrays, from_folder
from gpsviz.errors import CheckpointError, ConfigError, DataError, GpsvizError
from gpsviz.runs import evaluate_run
from gpsviz.train import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tiny_pair):
    return tiny_pair


def cfg(**kw):
    base = dict(epochs=2, batch_size=64, eval_every=0, eval_size=40, knn_k=5, proj_hidden=32, proj_dim=16,
                pred_hidden=32, device="cpu", data_options={"n": 128})
    base.update(kw)
    return TrainConfig(**base)


def one_line_error(argv, capsys, needle=""):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert needle in err, err
    return err


# ------------------------------------------------------------------------------ 1. no code runs from a CIFAR file
class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _cifar_folder(root: Path, first_batch: object) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = first_batch if name == "data_batch_1" else {
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar_payload_never_runs(tmp_path):
    marker = tmp_path / "marker"
    _cifar_folder(tmp_path / "data", {b"data": _Payload(marker), b"labels": [0]})
    with pytest.raises(DataError, match="refused"):
        load_dataset("cifar10", "train", root=tmp_path / "data", download=False)
    assert not marker.exists()
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(DataError):
        load_dataset("cifar10", "train", root=tmp_path / "data", download=False)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_real_batches_still_load(tmp_path, protocol):
    rng = np.random.default_rng(1)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [5, 6, 7, 8],
             b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"filenames": [b"a.png"] * 4}
    _cifar_folder(tmp_path, batch)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [c.encode() for c in "abcdefghij"], b"num_vis": 3072}
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    ds = load_dataset("cifar10", "train", root=tmp_path, download=False)
    assert len(ds) == 20 and ds.labels[:4].tolist() == [5, 6, 7, 8] and ds.classes[0] == "a"
    assert torch.equal(ds.images[0].flatten(), torch.from_numpy(batch[b"data"][0]))


# ------------------------------------------------------------------------------- 2. one writer per run folder
def test_second_writer_is_refused_and_a_stale_lock_is_not(tmp_path, tiny):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from gpsviz.runfolder import run_folder
        with run_folder({str(out)!r}):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(GpsvizError, match=f"in use by process {holder.pid}"):
            train(cfg(), out, data=tiny, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert (out / ".gpsviz.lock").exists()          # the killed holder left its lock file behind …
    train(cfg(), out, data=tiny, progress=False, stop_after=1)           # … and it does not block
    run = train(cfg(), out, data=tiny, progress=False, resume=True)
    assert len(run.history) == 2 and not (out / ".gpsviz.lock").exists()


def test_two_cli_trainings_into_one_folder(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPSVIZ_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    args = ["train", "--data-opt", "n=256", "--epochs", "3", "--batch-size", "64", "--out", str(out), "--no-eval",
            "--device", "cpu"]
    procs = [subprocess.Popen([sys.executable, "-m", "gpsviz", *args, "--seed", str(s)], stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True, cwd=tmp_path, env=env) for s in (0, 1)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "in use by process" in loser or "already holds a run" in loser, loser
    winner_seed = json.loads((out / "config.json").read_text())["seed"]
    assert load_checkpoint(out)["config"]["seed"] == winner_seed


# ------------------------------------------------------------------------ 3. someone else's folder is not touched
def test_foreign_folder_is_refused(tmp_path, tiny):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "settings"}')
    (out / "history.csv").write_text("a,b\n1,2\n")
    with pytest.raises(GpsvizError, match="not a gpsviz run folder"):
        train(cfg(), out, data=tiny, progress=False)
    assert (out / "config.json").read_text() == '{"my": "settings"}'
    assert (out / "history.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "history.csv"]


# --------------------------------------------------------------------------- 4. evaluations merge their results
def test_evaluate_merges_targets_and_probes(tmp_path, tiny):
    out = tmp_path / "run"
    train(cfg(epochs=1), out, data=tiny, progress=False)
    evaluate_run(out, targets=["label"], probes=["knn"], data=tiny)
    evaluate_run(out, targets=["colour"], probes=["knn", "linear"], data=tiny)
    res = json.loads((out / "results.json").read_text())
    assert {"knn_label", "knn_colour", "linear_colour"} <= set(res), res
    # a checkpoint file path is the run folder (results.json lands beside the checkpoint)
    evaluate_run(out / "checkpoint.pt", targets=["label"], probes=["linear"], data=tiny)
    res = json.loads((out / "results.json").read_text())
    assert {"knn_label", "knn_colour", "linear_colour", "linear_label"} <= set(res), res


# ----------------------------------------------------------------------------------- 5. 16-bit PNGs are scaled
def test_16bit_png_is_scaled_by_its_bit_depth(tmp_path):
    from PIL import Image

    ramp = (np.arange(16 * 16, dtype=np.uint32) * 257).reshape(16, 16).astype(np.uint16)   # 0 … 65535
    (tmp_path / "c").mkdir()
    Image.fromarray(ramp).save(tmp_path / "c" / "a.png")
    assert Image.open(tmp_path / "c" / "a.png").mode.startswith("I")
    ds = from_folder(tmp_path)
    assert ds.images.shape == (1, 1, 16, 16)
    assert ds.images[0, 0].flatten().tolist() == list(range(256))


# ------------------------------------------------------------------------------ 6. booleans are parsed, not bool()
@pytest.mark.parametrize("text,shifted", [("false", False), ("no", False), ("0", False), (False, False),
                                          ("true", True), ("YES", True), ("1", True), (True, True)])
def test_boolean_options(tmp_path, text, shifted):
    ds = load_dataset("shapes", "test", root=tmp_path, n=20, colour_shift=text, cache=False)
    assert ds.name.endswith("-shift") == shifted
    assert not (tmp_path / "shapes").exists()      # cache=False writes nothing


def test_cache_no_from_the_command_line_does_not_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GPSVIZ_DATA", str(tmp_path / "data"))
    main(["train", "--data-opt", "n=64", "--data-opt", "cache=no", "--data-opt", "colour_shift=false",
          "--epochs", "1", "--batch-size", "32", "--no-eval", "--device", "cpu", "--out", str(tmp_path / "r")])
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data_options"]["colour_shift"] == "false"
    assert not (tmp_path / "data" / "shapes").exists()


@pytest.mark.parametrize("value", ["maybe", "2", "", "flase"])
def test_bad_boolean_is_one_line(tmp_path, capsys, value):
    one_line_error(["train", "--data-opt", f"colour_shift={value}", "--epochs", "1", "--device", "cpu",
                    "--out", str(tmp_path / "r")], capsys, "colour_shift")


# ------------------------------------------------------------------------------------- 7. values that ruin a run
@pytest.mark.parametrize("field,value", [
    ("temperature", 1e-30), ("temperature", float("inf")), ("temperature", float("nan")), ("temperature", 0.0),
    ("temperature", 1e6), ("strength", 1e6), ("strength", float("nan")), ("strength", -1.0), ("lr", float("inf")),
    ("lr", 1e9), ("weight_decay", float("nan")), ("warmup_epochs", float("nan")), ("momentum_base", 1.0),
    ("seed", -1), ("seed", 2**64), ("epochs", 10**9), ("batch_size", 10**9), ("proj_dim", 10**8),
    ("knn_k", 0), ("eval_size", 10**12), ("epochs", 2.5), ("precision", "no"), ("device", "foo"), ("device", "meta"),
])
def test_config_ranges(field, value):
    with pytest.raises(ConfigError, match=field):
        cfg(**{field: value})


def test_k_larger_than_the_data(tmp_path, tiny):
    c = cfg(recipe="gps-simclr", positives_options={"prior": "pixels", "k": 500})
    with pytest.raises(ConfigError, match="k=500"):
        train(c, tmp_path / "r", data=tiny, progress=False)


@pytest.mark.parametrize("kw", [dict(seeds=0), dict(seeds=-1), dict(epochs=0), dict(epochs=-2)])
def test_reproduce_zero_is_not_the_default(tmp_path, kw):
    from gpsviz.reproduce import reproduce

    with pytest.raises(ConfigError):
        reproduce("baselines", scale="smoke", out=tmp_path, datasets="shapes", progress=False, **kw)


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--seeds", "-1"], ["--epochs", "0"]])
def test_reproduce_cli_zero(tmp_path, capsys, argv):
    one_line_error(["reproduce", "baselines", "--scale", "smoke", "--out", str(tmp_path), *argv], capsys)


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 4, 4), (3, 7, 30), (3, 4, 4, 3)])
def test_from_arrays_too_small(shape):
    with pytest.raises(DataError, match="minimum is 8×8"):
        from_arrays(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("top", [10**7, 10**12])
def test_from_arrays_absurd_labels(top):
    with pytest.raises(DataError, match="remap"):
        from_arrays(np.zeros((2, 8, 8), np.uint8), labels=np.array([0, top]))


# ------------------------------------------------------------------------------- 8. user errors are one line
@pytest.mark.parametrize("extra,needle", [
    (["--device", "foo"], "device"), (["--device", "cuda"], "device"), (["--device", "cuda:7"], "device"),
    (["--device", "mps"], "device"), (["--device", "meta"], "device"),
    (["--seed", str(2**64)], "seed"), (["--seed", "-5"], "seed"),
    (["--data-opt", "size=abc"], "size"), (["--data-opt", "seed=abc"], "seed"), (["--data-opt", "clutter=abc"],
                                                                             "clutter"),
    (["--data-opt", "size=100000"], "size"), (["--data-opt", "n=10**9"], "n"), (["--temperature", "1e-30"],
                                                                               "temperature"),
    (["--temperature", "inf"], "temperature"), (["--strength", "1e6"], "strength"),
])
def test_cli_user_errors_are_one_line(tmp_path, capsys, monkeypatch, extra, needle):
    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("CUDA present")
    monkeypatch.setenv("GPSVIZ_DATA", str(tmp_path / "data"))
    one_line_error(["train", "--epochs", "1", "--data-opt", "n=64", "--out", str(tmp_path / "r"), *extra],
                   capsys, needle)


@pytest.mark.parametrize("out", ["FILE", "/proc", "/proc/gpsviz-run", "/dev/null", "/sys/x"])
def test_cli_bad_out(tmp_path, capsys, out):
    if out == "FILE":
        out = str(tmp_path / "a-file")
        Path(out).write_text("x")
    one_line_error(["train", "--epochs", "1", "--data-opt", "n=64", "--device", "cpu", "--out", out], capsys, "--out")


def test_unwritable_out(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        one_line_error(["train", "--epochs", "1", "--device", "cpu", "--out", str(ro / "run")], capsys, "write")
    finally:
        ro.chmod(0o700)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    out = tmp_path_factory.mktemp("trained") / "run"
    train(cfg(epochs=2), out, data=tiny, progress=False)
    return out


@pytest.mark.parametrize("edit,needle", [
    (lambda ck: ck.pop("backbone"), "no 'backbone'"),
    (lambda ck: ck.pop("model"), "no 'model'"),
    (lambda ck: ck.__setitem__("epoch", "two"), "'epoch'"),
    (lambda ck: ck["backbone"].pop(next(iter(ck["backbone"]))), "backbone does not fit"),
    (lambda ck: ck["backbone"].__setitem__(next(iter(ck["backbone"])), torch.zeros(3)), "backbone does not fit"),
    (lambda ck: ck["model"].__setitem__(next(iter(ck["model"])), torch.zeros(3)), "model does not fit"),
    (lambda ck: ck.__setitem__("generator", torch.zeros(3, dtype=torch.uint8)), "generator"),
    (lambda ck: ck["config"].pop("backbone"), "backbone"),
])
def test_hand_edited_checkpoints(tmp_path, trained, tiny, edit, needle):
    run = edited_copy(trained, tmp_path / "edited", edit)
    with pytest.raises(CheckpointError, match=needle):
        ck = load_checkpoint(run)
        if "model" in needle or "generator" in needle:
            train(TrainConfig.from_dict(ck["config"]), run, data=tiny, progress=False, resume=True)
        else:
            evaluate_run(run, data=tiny, probes=["knn"], targets=["label"])


def test_evaluate_checkpoint_file_from_cli(trained, capsys, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained, run)
    assert main(["evaluate", str(run / "checkpoint.pt"), "--probes", "knn", "--targets", "label"]) == 0
    assert "knn_label" in json.loads((run / "results.json").read_text())
    one_line_error(["evaluate", str(run), "--probes", "knnn"], capsys, "knnn")
    one_line_error(["evaluate", str(run), "--probes", "knn", "--targets", "flavour"], capsys, "flavour")


# --------------------------------------------------------------------------------- 9. consistency after kills
def test_finished_run_repairs_a_short_history(tmp_path, tiny):
    out = tmp_path / "run"
    train(cfg(epochs=2), out, data=tiny, progress=False)
    rows = (out / "history.csv").read_text().splitlines()
    (out / "history.csv").write_text("\n".join(rows[:-1]) + "\n")          # killed before the last history write
    (out / ".checkpoint.pt.x1y2.tmp").write_bytes(b"\0" * 1000)              # and inside a checkpoint write
    (out / ".history.csv.abc.tmp").write_text("half")
    run = train(cfg(epochs=2), out, data=tiny, progress=False, resume=True)
    with open(out / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2] == [h["epoch"] for h in run.history]
    assert not list(out.glob(".*.tmp"))


def test_shapes_cache_is_checked_for_what_it_holds(tmp_path):
    from gpsviz.data.loaders import shapes_cache_path

    small = load_dataset("shapes", "train", root=tmp_path, n=70)
    src = shapes_cache_path(tmp_path, "train", 70, 0, 0.0, False, 32)
    dst = shapes_cache_path(tmp_path, "train", 80, 0, 0.0, False, 32)
    shutil.copy(src, dst)                                           # a copied cache file, named for n=80
    with pytest.warns(UserWarning, match="regenerating"):
        big = load_dataset("shapes", "train", root=tmp_path, n=80)
    assert len(small) == 70 and len(big) == 80
    assert len(load_dataset("shapes", "train", root=tmp_path, n=80)) == 80      # rewritten correctly


def test_kill_between_lock_and_marker_does_not_orphan_the_folder(tmp_path, tiny):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".gpsviz.lock").write_text("")                     # killed right after taking the lock
    (out / ".config.json.1234.tmp").write_text("{")
    train(cfg(epochs=1), out, data=tiny, progress=False)
    assert (out / "checkpoint.pt").exists() and not list(out.glob(".*.tmp"))


def test_stale_shapes_cache_temp_files_are_removed(tmp_path):
    (tmp_path / "shapes").mkdir()
    old, fresh = tmp_path / "shapes" / ".train-x.pt.abc.tmp", tmp_path / "shapes" / ".train-y.pt.def.tmp"
    old.write_bytes(b"\0" * 100)
    fresh.write_bytes(b"\0" * 100)
    os.utime(old, (0, 0))                          # written by a process killed long ago
    load_dataset("shapes", "train", root=tmp_path, n=20)
    assert not old.exists() and fresh.exists()     # a fresh one may belong to a writer still running


@pytest.mark.parametrize("text,want", [("false", False), ("no", False), ("true", True), (1, True)])
def test_positive_source_booleans_are_parsed(text, want):
    from gpsviz.positives.neighbours import NeighbourPositives

    assert NeighbourPositives(prior="pixels", k=3, include_anchor=text).include_anchor is want
    with pytest.raises(ConfigError, match="include_anchor"):
        NeighbourPositives(prior="pixels", k=3, include_anchor="maybe")
