"""Issue 18, parts 3 and 4: held-out splits of the user's data, failed writes, hand-edited view-weight logs,
decompression bombs, errors under torchrun, 64-px sensitivity runs, explorers given another dataset's run."""
from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from gpsviz.errors import CheckpointError, DataError, GpsvizError


def _png(path: Path, colour, size=(10, 8), mode="RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def _class_folder(root: Path, classes=("cat", "dog"), per_class=5) -> Path:
    for k, c in enumerate(classes):
        for i in range(per_class):
            _png(root / c / f"{i}.png", (40 * k + i, 10 * i, 200 - 30 * k))
    return root


# ----------------------------------------------------------------------------------- 1. held-out splits
def test_folder_of_class_folders_has_no_silent_test_split(tmp_path):
    from gpsviz.data import load_dataset, load_splits

    root = _class_folder(tmp_path / "pics")
    with pytest.raises(DataError, match=r"class folders only.*pics/train/.*pics/test/.*holdout=0\.2.*test_is_train"):
        load_splits("folder", {"path": root})
    with pytest.raises(DataError, match="class folders only"):
        load_dataset("folder", "test", path=root)
    assert len(load_dataset("folder", "train", path=root)) == 10     # the training split alone is fine


def test_folder_holdout_is_seeded_stratified_and_disjoint(tmp_path):
    from gpsviz.data import load_splits

    root = _class_folder(tmp_path / "pics", per_class=10)
    tr, te = load_splits("folder", {"path": root, "holdout": 0.2})
    assert (len(tr), len(te)) == (16, 4) and tr.split == "train" and te.split == "test"
    assert te.labels.tolist().count(0) == 2 and te.labels.tolist().count(1) == 2      # stratified
    flat = lambda ds: {bytes(x.numpy().tobytes()) for x in ds.images}                 # noqa: E731
    assert not flat(tr) & flat(te)                                                    # disjoint
    tr2, te2 = load_splits("folder", {"path": root, "holdout": 0.2})
    assert torch.equal(te.images, te2.images)                                         # seeded
    _, te3 = load_splits("folder", {"path": root, "holdout": 0.2, "holdout_seed": 5})
    assert not torch.equal(te.images, te3.images)
    for bad in (0, 1, 1.5, -0.1, "x", True, float("nan")):
        with pytest.raises(DataError, match="holdout"):
            load_splits("folder", {"path": root, "holdout": bad})
    with pytest.raises(DataError, match="exclude each other"):
        load_splits("folder", {"path": root, "holdout": 0.2, "test_is_train": True})


def test_folder_test_is_train_is_explicit_and_labelled(tmp_path):
    from gpsviz.data import load_splits

    root = _class_folder(tmp_path / "pics")
    with pytest.warns(UserWarning, match="test_is_train"):
        tr, te = load_splits("folder", {"path": root, "test_is_train": "true"})
    assert torch.equal(tr.images, te.images) and te is not tr
    assert te.name.endswith("[test=train]") and te.split == "test" and tr.split == "train"


def test_folder_train_without_test_is_refused(tmp_path):
    from gpsviz.data import from_folder, load_dataset, load_splits

    root = tmp_path / "d"
    _class_folder(root / "train")
    with pytest.raises(DataError, match=r"has train/ but no test/.*d/test/<class>.*holdout=0\.2"):
        load_splits("folder", {"path": root})
    with pytest.raises(DataError, match="train/ but no test/"):
        load_dataset("folder", "test", path=root)
    with pytest.raises(DataError, match=r"split folders \(train\), not class folders"):
        from_folder(root)                                        # would have made one class called "train"
    tr, te = load_splits("folder", {"path": root, "holdout": 0.4})
    assert tr.classes == te.classes == ["cat", "dog"] and (len(tr), len(te)) == (6, 4)
    _class_folder(root / "val", per_class=2)                     # val/ is a test folder too
    tr, te = load_splits("folder", {"path": root})
    assert (len(tr), len(te)) == (10, 4) and te.classes == ["cat", "dog"]
    with pytest.raises(DataError, match="has a held-out folder val/"):
        load_splits("folder", {"path": root, "holdout": 0.2})
    only_test = tmp_path / "t"
    _class_folder(only_test / "test")
    with pytest.raises(DataError, match="no train/"):
        load_splits("folder", {"path": only_test})


def test_arrays_without_test_arrays_have_no_silent_test_split():
    from gpsviz.data import load_dataset, load_splits

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8)
    y = np.arange(20) % 2
    with pytest.raises(DataError, match=r"training arrays only.*test_images=.*holdout=0\.2.*test_is_train"):
        load_splits("arrays", {"images": list(x), "labels": list(y)})
    with pytest.raises(DataError, match="training arrays only"):
        load_dataset("arrays", "test", images=x, labels=y)
    assert len(load_dataset("arrays", "train", images=x, labels=y)) == 20
    tr, te = load_splits("arrays", {"images": x, "labels": y, "test_images": x[:4], "test_labels": y[:4]})
    assert (len(tr), len(te)) == (20, 4) and te.split == "test"
    tr, te = load_splits("arrays", {"images": x, "labels": y, "holdout": 0.3})
    assert (len(tr), len(te)) == (14, 6) and sorted(te.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    with pytest.warns(UserWarning):
        _, te = load_splits("arrays", {"images": x, "labels": y, "test_is_train": True})
    assert te.name == "arrays [test=train]"
    with pytest.raises(DataError, match="test_labels were given without test_images"):
        load_splits("arrays", {"images": x, "labels": y, "test_labels": y})
    with pytest.raises(DataError, match="labels and test_labels together"):
        load_splits("arrays", {"images": x, "labels": y, "test_images": x})
    with pytest.raises(DataError, match="test_images are"):
        load_splits("arrays", {"images": x, "test_images": np.zeros((3, 9, 9), np.uint8)})


def test_train_refuses_a_folder_without_held_out_split(tmp_path, capsys):
    from gpsviz.cli import main

    root = _class_folder(tmp_path / "pics", per_class=4)
    rc = main(["train", "--data", "folder", "--data-opt", f"path={str(root)!r}", "--data-opt", "size=16",
               "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-eval", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "class folders only" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    rc = main(["train", "--data", "folder", "--data-opt", f"path={str(root)!r}", "--data-opt", "size=16",
               "--data-opt", "holdout=0.25", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-eval",
               "--out", str(tmp_path / "run")])
    assert rc == 0 and (tmp_path / "run" / "checkpoint.pt").exists(), capsys.readouterr().err[-2000:]


# ----------------------------------------------------------------------------------- 2. failed writes
@pytest.mark.parametrize("err,cause,advice", [
    (errno.ENOSPC, "no space left on device", "free some disk space"),
    (errno.EROFS, "read-only file system", "choose a writable folder"),
    (errno.EACCES, "permission denied", "choose a folder you own"),
])
@pytest.mark.parametrize("stage", ["write", "replace"])
def test_atomic_write_failure_is_a_clear_error(tmp_path, monkeypatch, err, cause, advice, stage):
    from gpsviz import utils

    target = tmp_path / "run" / "results.json"
    utils.atomic_write_json(target, {"old": 1})
    before = target.read_bytes()
    boom = OSError(err, os.strerror(err))
    if stage == "replace":
        def fail(*a, **k):
            raise boom
        monkeypatch.setattr(utils.os, "replace", fail)
    else:
        real_fsync = utils.os.fsync

        def fail(fd):
            real_fsync(fd)
            raise boom
        monkeypatch.setattr(utils.os, "fsync", fail)
    with pytest.raises(GpsvizError) as e:
        utils.atomic_write_json(target, {"new": 2})
    msg = str(e.value)
    assert str(target) in msg and cause in msg and advice in msg and "previous file is untouched" in msg
    assert "\n" not in msg and isinstance(e.value, OSError) and e.value.errno == err
    assert target.read_bytes() == before                                   # nothing lost
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]   # temp file removed


def test_atomic_torch_save_failure_names_the_checkpoint(tmp_path, monkeypatch):
    from gpsviz import utils

    target = tmp_path / "checkpoint.pt"
    monkeypatch.setattr(utils.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(GpsvizError,
                       match=r"cannot write .*checkpoint\.pt: no space left on device.*--out.*nothing was written"):
        utils.atomic_torch_save({"x": torch.zeros(3)}, target)
    assert list(tmp_path.iterdir()) == []


def test_real_name_too_long(tmp_path):
    from gpsviz import utils

    target = tmp_path / ("r" * 300 + ".json")
    with pytest.raises(GpsvizError, match=r"file name too long.*shorter --out") as e:
        utils.atomic_write_json(target, {"a": 1})
    assert e.value.errno == errno.ENAMETOOLONG and list(tmp_path.iterdir()) == []
    ok = tmp_path / ("s" * 250 + ".json")          # a long name that fits: its temp name must fit too
    utils.atomic_write_json(ok, {"a": 1})
    assert ok.exists() and len(list(tmp_path.iterdir())) == 1


def test_unwritable_parent_folder(tmp_path):
    from gpsviz import utils

    (tmp_path / "file").write_text("x")
    with pytest.raises(GpsvizError, match=r"cannot write .*file/sub/h\.csv: not a directory"):
        utils.atomic_write_bytes(tmp_path / "file" / "sub" / "h.csv", b"a")


def test_history_write_failure_in_training_is_one_line(tmp_path, monkeypatch, capsys):
    """A full disk while training: the CLI prints one line naming the file, exit 2; the folder has no temp files."""
    from gpsviz import utils
    from gpsviz.cli import main

    real = utils.os.replace

    def replace(src, dst):
        if str(dst).endswith("history.csv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)
    monkeypatch.setattr(utils.os, "replace", replace)
    out = tmp_path / "run"
    rc = main(["train", "--epochs", "1", "--data-opt", "n=64", "--data-opt", "cache=no", "--batch-size", "32",
               "--device", "cpu", "--no-eval", "--out", str(out)])
    err = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if "error" in line]
    assert rc == 2 and len(err) == 1 and "history.csv: no space left on device" in err[0], err
    assert err[0].rstrip().endswith("nothing was written")
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------------- 3. hand-edited view weights
def _good_log(tmp_path) -> Path:
    from gpsviz.view_weights import ViewWeightRecorder

    path = tmp_path / "run" / "view_weights.pt"
    rec = ViewWeightRecorder(probe=4, path=None)
    v = 6
    from gpsviz.augment.params import PARAM_NAMES
    rec._done = [{"epoch": torch.ones(v, dtype=torch.long), "step": torch.zeros(v, dtype=torch.long),
                  "row": torch.arange(v) % 3, "instance": torch.arange(v), "slot": torch.arange(v) % 2,
                  "is_global": torch.ones(v, dtype=torch.bool), "weight": torch.ones(v),
                  "uota_weight": torch.full((v,), float("nan")), "uota_distance": torch.zeros(v),
                  "per_view": torch.zeros(v), "applied": torch.zeros(v, dtype=torch.bool),
                  "params": torch.zeros(v, len(PARAM_NAMES))}]
    rec.save(path)
    return path


def _edit(path: Path, **changes) -> None:
    raw = torch.load(path, weights_only=True)
    for k, v in changes.items():
        if v is None:
            raw.pop(k)
        else:
            raw[k] = v
    torch.save(raw, path)


@pytest.mark.parametrize("case,pattern", [
    ("truncated", "not a view-weight log"),
    ("garbage", "not a view-weight log"),
    ("list", "holds a list, not a dict"),
    ("missing", r"lacks the fields \['weight'\]"),
    ("not-tensor", r"weight \(list\) are not tensors"),
    ("short", r"'weight' has shape \(5,\), expected \(6,\)"),
    ("params-2d", r"'params' has shape \(6, 3\)"),
    ("scalar", r"'epoch' has shape \(\)"),
    ("dtype", "'row' has dtype float32, expected an integer type"),
    ("flag", "'applied' has dtype int64, expected bool"),
    ("names", "records the parameter columns"),
    ("names-type", "param_names must be a list"),
    ("negative", "rows and slots ≥ 0"),
])
def test_hand_edited_view_weights(tmp_path, case, pattern):
    from gpsviz.view_weights import ViewWeightRecorder, load_view_weights

    path = _good_log(tmp_path)
    assert len(load_view_weights(path)) == 6
    if case == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif case == "garbage":
        path.write_bytes(os.urandom(300))
    elif case == "list":
        torch.save([1, 2], path)
    else:
        _edit(path, **{"missing": dict(weight=None), "not-tensor": dict(weight=[1.0] * 6),
                       "short": dict(weight=torch.ones(5)), "params-2d": dict(params=torch.zeros(6, 3)),
                       "scalar": dict(epoch=torch.tensor(1)), "dtype": dict(row=torch.zeros(6)),
                       "flag": dict(applied=torch.zeros(6, dtype=torch.long)),
                       "names": dict(param_names=["a", "b"]), "names-type": dict(param_names=3),
                       "negative": dict(row=torch.full((6,), -1))}[case])
    with pytest.raises(CheckpointError, match=pattern) as e:
        load_view_weights(path.parent)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(CheckpointError):
        ViewWeightRecorder(probe=4, path=path)                  # a resumed run reads it first


# ----------------------------------------------------------------------------------- 4. decompression bombs
def _bomb_png(path: Path, side: int = 20000) -> None:
    """A valid 1-bit side×side PNG of zeros, written without ever holding the image (≈ 60 kB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_decompression_bomb_is_a_data_error(tmp_path):
    from gpsviz.data import from_folder

    _png(tmp_path / "pics" / "a" / "ok.png", (1, 2, 3), size=(16, 16))
    _bomb_png(tmp_path / "pics" / "a" / "huge.png")
    assert (tmp_path / "pics" / "a" / "huge.png").stat().st_size < 200_000
    with pytest.raises(DataError, match=r"huge\.png is too large to decode safely.*limit is [\d,]+ pixels"):
        from_folder(tmp_path / "pics", size=16)


def test_decompression_limit_named_and_large_image_loads(tmp_path, monkeypatch):
    from PIL import Image

    from gpsviz.data import from_folder

    big = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    (tmp_path / "pics" / "a").mkdir(parents=True)
    Image.fromarray(big).save(tmp_path / "pics" / "a" / "photo.png")
    ds = from_folder(tmp_path / "pics", size=32)                # a 3-megapixel photo is fine
    assert ds.images.shape == (1, 3, 32, 32)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(DataError, match=r"photo\.png.*the limit is 2,000,000 pixels"):
        from_folder(tmp_path / "pics", size=32)


# ----------------------------------------------------------------------------------- 5. errors under torchrun
ROOT = Path(__file__).resolve().parents[3]


def test_only_rank_zero_prints_a_user_error(monkeypatch, capsys):
    from gpsviz.cli import main

    bad = ["train", "--device", "cpu", "--temperature", "-1", "--out", "/nonexistent/x"]
    for var, value, lines in (("RANK", "1", 0), ("LOCAL_RANK", "1", 0), ("RANK", "0", 1)):
        monkeypatch.delenv("RANK", raising=False)
        monkeypatch.delenv("LOCAL_RANK", raising=False)
        monkeypatch.setenv(var, value)
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == lines and (not lines or err.startswith("error: temperature=-1.0"))
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as e:                     # argparse's usage error: silent on rank 1
        main(["train", "--bogus"])
    assert e.value.code == 2 and capsys.readouterr().err == ""


def test_torchrun_prints_gpsviz_error_once(tmp_path):
    """Under ``torchrun --nproc_per_node=2`` a config error is printed by rank 0 alone: one ``error:`` line.
    (torchrun then prints its own ChildFailedError report; a child cannot stop that without exiting 0.)"""
    import subprocess
    import sys

    env = dict(os.environ, GPSVIZ_DATA=str(tmp_path / "data"), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    for args, marker in ((["--temperature", "-1"], "error: temperature=-1.0 is impossible"),):
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                            "--master_addr=127.0.0.1", "--master_port=0", "-m", "gpsviz", "train", "--device", "cpu",
                            *args, "--out", str(tmp_path / "x")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and out.count(marker) == 1, out[-3000:]
        assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------- 6./7. runs of other sizes/data
@pytest.fixture(scope="module")
def run64(tmp_path_factory):
    """A tiny valid 64-px shapes run whose multi-crop local views (48 px) do not fit 32-px images."""
    from gpsviz.config import TrainConfig
    from gpsviz.train import train

    out = tmp_path_factory.mktemp("r64") / "run"
    cfg = TrainConfig(recipe="cassle-simclr", data="shapes", data_options={"size": 64, "n": 64, "cache": False},
                      epochs=1, batch_size=32, eval_every=0, device="cpu", precision="fp32", proj_hidden=16,
                      proj_dim=8, backbone_options={"width": 8}, views="multicrop",
                      views_options={"global_views": 2, "local_views": 2, "local_size": 48})
    train(cfg, out, progress=False)
    return out


def test_sensitivity_on_a_64px_run(run64):
    from gpsviz.data import make_shapes
    from gpsviz.sensitivity import load_run, param_prediction, sensitivity

    run = load_run(run64)
    assert run.image_size == 64 and run.in_channels == 3
    imgs = make_shapes(8, seed=5, size=64)
    rows = sensitivity(run, imgs.images, families=["crop", "colour"], n_views=2)
    assert len(rows) == 4 and all(-1.0 <= r["similarity"] <= 1.0 for r in rows)
    r2 = param_prediction(run, make_shapes(24, seed=6, size=64), imgs)
    assert "r2_mean" in r2
    with pytest.raises(GpsvizError, match="local_size 48 is larger than the images"):
        load_run(run64, image_size=32)                  # the override is honoured


def test_explorer_refuses_a_run_of_other_image_size(run64):
    from gpsviz.data import make_shapes
    from gpsviz.widgets import SensitivityExplorer

    with pytest.raises(DataError, match=r"run 'r64' was trained on shapes\(size=64.*3-channel, 64 px\), but the "
                                        r"explorer's dataset is shapes \(3-channel, 32 px\).*image size"):
        SensitivityExplorer(make_shapes(16, seed=1), {"r64": run64})


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory):
    """A tiny run on 1-channel 28-px images recorded as Fashion-MNIST (no download: the data is passed in)."""
    from gpsviz.config import TrainConfig
    from gpsviz.data import from_arrays
    from gpsviz.train import train

    rng = np.random.default_rng(0)
    tr = from_arrays(rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), labels=np.arange(64) % 4,
                     name="fashion-mnist")
    te = from_arrays(rng.integers(0, 256, (16, 28, 28), dtype=np.uint8), labels=np.arange(16) % 4,
                     name="fashion-mnist", split="test")
    out = tmp_path_factory.mktemp("fm") / "fm-run"
    cfg = TrainConfig(recipe="simclr", data="fashion-mnist", epochs=1, batch_size=32, eval_every=0, device="cpu",
                      precision="fp32", proj_hidden=16, proj_dim=8, backbone_options={"width": 8})
    train(cfg, out, progress=False, data=(tr, te))
    return out


def test_explorers_refuse_a_run_of_another_dataset(grey_run, tmp_path):
    from gpsviz.data import from_arrays, make_shapes
    from gpsviz.widgets import NeighbourExplorer, OODExplorer, SensitivityExplorer

    shapes = make_shapes(16, seed=1, clutter=1.0)
    with pytest.raises(DataError, match=r"run 'fm' was trained on fashion-mnist \(1-channel, 28 px\), but the "
                                        r"explorer's dataset is shapes \(3-channel, 32 px\) \(different "
                                        r"channels, image size and dataset\): give the run's own dataset"):
        SensitivityExplorer(shapes, {"fm": grey_run})
    grey = from_arrays(np.zeros((16, 28, 28), np.uint8), name="mine")
    with pytest.raises(DataError, match=r"probe_data is shapes.*different channels"):   # RGB probe data, grey run
        SensitivityExplorer(grey, {"fm": grey_run}, probe_data=make_shapes(16, seed=2))
    log_dir = _good_log(tmp_path).parent                     # a view-weight log in a folder of a grey run
    (log_dir / "config.json").write_text((grey_run / "config.json").read_text())
    with pytest.raises(DataError, match=r"run 'uota' was trained on fashion-mnist.*the explorer's dataset is shapes"):
        OODExplorer(shapes, {"uota": log_dir})
    with pytest.raises(DataError, match=r"fm-run' was trained on fashion-mnist"):
        NeighbourExplorer(shapes, priors=["checkpoint"], prior_options={"checkpoint": {"run": str(grey_run)}})


def test_check_run_dataset_passes_matching_and_unknown():
    from gpsviz.data import from_arrays, make_shapes
    from gpsviz.widgets.controls import check_run_dataset

    ds = make_shapes(8, seed=1, clutter=1.0)
    check_run_dataset("a", ds, "shapes", {"clutter": 1.0}, 3, 32)          # same world, another variant name
    check_run_dataset("b", ds, None, None, None, None)                     # nothing known: nothing to refuse
    check_run_dataset("c", from_arrays(np.zeros((2, 32, 32, 3), np.uint8), name="pets"), "folder", {}, 3, 32)
    with pytest.raises(DataError, match="different dataset"):
        check_run_dataset("d", ds, "cifar10", {}, 3, 32)
