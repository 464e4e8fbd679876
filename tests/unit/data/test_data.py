"""Tests for gpsviz.data: the shapes world, its cache, the file-format parsers and the user-data loaders."""
from __future__ import annotations

import gzip
import pickle
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gpsviz.data import (ImageDataset, available_datasets, formats, from_arrays, from_folder, load_dataset, loaders,
                         make_shapes)
from gpsviz.data.formats import read_idx
from gpsviz.errors import DataError, DownloadError

CATEGORICAL = ["colour", "bg_kind", "bg_colour", "position", "n_distractors"]
CONTINUOUS = ["pos_x", "pos_y", "scale", "rotation", "box_x0", "box_y0", "box_x1", "box_y1"]


@pytest.fixture(scope="module")
def shapes() -> ImageDataset:
    return make_shapes(400, seed=11)


@pytest.fixture(scope="module")
def cluttered() -> ImageDataset:
    return make_shapes(400, seed=11, clutter=1.0)


# ------------------------------------------------------------------------------------------------ shapes world
def test_shapes_deterministic():
    a, b, c = make_shapes(120, seed=3), make_shapes(120, seed=3), make_shapes(120, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.masks, b.masks)
    assert all(torch.equal(a.factors[k], b.factors[k]) for k in a.factors)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.factors["pos_x"], c.factors["pos_x"])


def test_shapes_factors_shapes_and_dtypes(shapes):
    n = len(shapes)
    assert shapes.images.shape == (n, 3, 32, 32) and shapes.images.dtype == torch.uint8
    assert shapes.masks.shape == (n, 32, 32) and shapes.masks.dtype == torch.bool
    assert shapes.num_classes == 10 and len(set(shapes.classes)) == 10
    for k in CATEGORICAL:
        v = shapes.factors[k]
        assert v.shape == (n,) and v.dtype == torch.int64, k
        if k != "n_distractors":
            assert int(v.max()) < len(shapes.factor_classes[k]) and int(v.min()) >= 0, k
    for k in CONTINUOUS:
        assert shapes.factors[k].shape == (n,) and shapes.factors[k].dtype == torch.float32, k
    counts = torch.bincount(shapes.labels, minlength=10)
    assert int(counts.max() - counts.min()) <= 1  # balanced
    assert set(shapes.target_names()) >= {"label", *CATEGORICAL}
    assert len(shapes.targets("position")[1]) == 9 and shapes.targets("colour")[1][0] == "red"
    f = shapes.factors
    assert float(f["rotation"].min()) >= 0 and float(f["rotation"].max()) < 360
    assert 0.1 < float(f["scale"].min()) and float(f["scale"].max()) < 0.35
    assert int(f["n_distractors"].max()) == 0  # no clutter by default
    assert not bool((f["colour"] == f["bg_colour"]).any())  # background hue differs from the object's


def test_shapes_mask_inside_box(shapes):
    f, m, n = shapes.factors, shapes.masks, len(shapes)
    assert bool(m.flatten(1).any(1).all()), "every object has a mask"
    ys, xs = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    for k in range(n):
        x0, y0, x1, y1 = (int(f[c][k]) for c in ("box_x0", "box_y0", "box_x1", "box_y1"))
        mk = m[k]
        inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        assert not bool((mk & ~inside).any())
        assert bool(mk[:, x0].any() and mk[:, x1 - 1].any() and mk[y0].any() and mk[y1 - 1].any())  # tight
        assert x0 <= float(f["pos_x"][k]) <= x1 and y0 <= float(f["pos_y"][k]) <= y1


def test_shapes_position_matches_centre(shapes):
    f = shapes.factors
    third = 32 / 3
    expected = (f["pos_y"] // third).long() * 3 + (f["pos_x"] // third).long()
    assert torch.equal(f["position"], expected)
    counts = torch.bincount(f["position"], minlength=9)
    assert int(counts.min()) > len(shapes) / 9 * 0.6  # every cell is well populated
    assert float(f["pos_x"].max() - f["pos_x"].min()) > 14  # position really varies


def test_shapes_object_contrasts_with_background(shapes):
    img, m = shapes.images.float() / 255, shapes.masks.unsqueeze(1)
    fg = (img * m).sum((2, 3)) / m.sum((2, 3))
    bg = (img * ~m).sum((2, 3)) / (~m).sum((2, 3))
    assert float((fg - bg).norm(dim=1).min()) > 0.2


def test_clutter_adds_distractors_outside_the_mask(shapes, cluttered):
    nd = cluttered.factors["n_distractors"]
    assert int(nd.max()) > 0 and float(nd.float().mean()) > 2
    assert torch.equal(shapes.labels, cluttered.labels) and torch.equal(shapes.masks, cluttered.masks)
    assert torch.equal(shapes.factors["pos_x"], cluttered.factors["pos_x"])
    changed = (shapes.images != cluttered.images).any(1)  # N×H×W pixels touched by distractors
    visible = (changed & ~shapes.masks).flatten(1).any(1)[nd > 0]
    assert float(visible.float().mean()) > 0.97    # a distractor can hide entirely behind the (large) object
    assert not bool(changed[nd == 0].any())  # images without distractors are unchanged
    diff = (shapes.images.float() - cluttered.images.float()).abs().amax(1)
    assert float(diff[shapes.masks].max()) <= 128  # the object (coverage ≥ 0.5 in its mask) is drawn on top


def _saturation(ds: ImageDataset) -> float:
    img, m = ds.images.float() / 255, ds.masks.unsqueeze(1)
    fg = (img * m).sum((2, 3)) / m.sum((2, 3))
    return float(((fg.amax(1) - fg.amin(1)) / fg.amax(1).clamp_min(1e-6)).mean())


def test_colour_shift_changes_palette(shapes):
    shifted = make_shapes(400, seed=11, colour_shift=True)
    assert shifted.classes == shapes.classes
    assert shifted.factor_classes["colour"] != shapes.factor_classes["colour"]
    assert _saturation(shifted) < _saturation(shapes) - 0.15
    assert not torch.equal(shifted.images, shapes.images)
    assert (shifted.factors["bg_kind"] == 0).all()                   # the plain world stays plain when shifted
    textured = make_shapes(400, seed=11, variant="textured")
    shifted_t = make_shapes(400, seed=11, colour_shift=True, variant="textured")
    assert shifted_t.factor_classes["bg_kind"] != textured.factor_classes["bg_kind"]


def test_world_variants(shapes):
    textured = make_shapes(400, seed=11, variant="textured")
    f, t = shapes.factors, textured.factors
    assert (f["bg_kind"] == 0).all() and set(t["bg_kind"].tolist()) == {0, 1, 2, 3}   # plain vs textured
    assert 0.22 <= float(f["scale"].min()) and float(f["scale"].max()) <= 0.33       # larger objects by default
    assert 0.16 <= float(t["scale"].min()) and float(t["scale"].max()) <= 0.28
    assert torch.equal(shapes.labels, textured.labels) and torch.equal(f["colour"], t["colour"])
    img = shapes.images.float() / 255
    bg = img.permute(0, 2, 3, 1)[~shapes.masks]                       # background pixels × 3
    assert float((bg.amax(1) - bg.amin(1)).mean()) < 0.12             # nearly grey: hue is not an instance id
    assert make_shapes(50, seed=3, variant="PLAIN").images.equal(make_shapes(50, seed=3).images)
    with pytest.raises(DataError, match="variant"):
        make_shapes(10, variant="cartoon")


def test_shapes_bad_arguments():
    with pytest.raises(DataError, match="clutter"):
        make_shapes(10, clutter=-1)
    with pytest.raises(DataError, match="n must be"):
        make_shapes(0)


def test_shapes_other_size():
    ds = make_shapes(40, seed=0, size=64)
    assert ds.images.shape == (40, 3, 64, 64) and ds.masks.shape == (40, 64, 64)


# ------------------------------------------------------------------------------------------------ shapes cache
def test_shapes_cache_round_trip_and_corruption(tmp_path, monkeypatch):
    a = load_dataset("shapes", "train", root=tmp_path, n=60, seed=5, clutter=0.5)
    files = list((tmp_path / "shapes").glob("*.pt"))
    assert len(files) == 1 and a.split == "train" and a.name == "shapes-clutter0.5"

    def boom(*args, **kwargs):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(loaders, "make_shapes", boom)
    b = load_dataset("shapes", "train", root=tmp_path, n=60, seed=5, clutter=0.5)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert all(torch.equal(a.factors[k], b.factors[k]) for k in a.factors) and a.factor_classes == b.factor_classes
    monkeypatch.undo()

    files[0].write_bytes(b"this is not a torch file")
    with pytest.warns(UserWarning, match="regenerating"):
        c = load_dataset("shapes", "train", root=tmp_path, n=60, seed=5, clutter=0.5)
    assert torch.equal(a.images, c.images)
    d = torch.load(files[0], weights_only=True)  # rewritten and valid again
    assert torch.equal(d["images"], a.images)


def test_shapes_variant_is_a_cached_dataset_of_its_own(tmp_path):
    a = load_dataset("shapes", "train", root=tmp_path, n=40, seed=5)
    b = load_dataset("shapes", "train", root=tmp_path, n=40, seed=5, variant="textured")
    assert a.name == "shapes" and b.name == "shapes-textured"
    assert len(list((tmp_path / "shapes").glob("*.pt"))) == 2 and not torch.equal(a.images, b.images)
    with pytest.raises(DataError, match="variant"):
        load_dataset("shapes", "train", root=tmp_path, n=40, variant="cartoon")


def test_shapes_train_test_differ_and_defaults(tmp_path, monkeypatch):
    tr = load_dataset("shapes", "train", root=tmp_path, n=30)
    te = load_dataset("shapes", "test", root=tmp_path, n=30)
    assert te.split == "test" and not torch.equal(tr.images, te.images)
    seen = []
    real = loaders.make_shapes

    def spy(n, **kw):
        seen.append(n)
        return real(8, **kw)

    monkeypatch.setattr(loaders, "make_shapes", spy)
    load_dataset("shapes", "train", root=tmp_path, cache=False)
    load_dataset("shapes", "test", root=tmp_path, cache=False)
    assert seen == [10000, 2000]


# ------------------------------------------------------------------------------------------------- Fashion IDX
def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


def _write_fake_fashion(folder: Path, n: int = 7, compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        for name, arr in zip(formats.FASHION_FILES[split], (x, y)):
            data = _idx_bytes(arr)
            if compress:
                (folder / name).write_bytes(gzip.compress(data))
            else:
                (folder / name.removesuffix(".gz")).write_bytes(data)
    return x, y


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_idx_parser(tmp_path, monkeypatch, compress):
    monkeypatch.setattr(formats, "FASHION_SYSTEM_DIRS", [tmp_path / "no-system-dir"])
    x, y = _write_fake_fashion(tmp_path / "fashion-mnist", compress=compress)
    ds = load_dataset("fmnist", "test", root=tmp_path, download=False)
    assert ds.images.shape == (7, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert np.array_equal(ds.images[:, 0].numpy(), x) and np.array_equal(ds.labels.numpy(), y)
    assert ds.classes[0] == "T-shirt/top" and ds.name == "fashion-mnist"
    assert len(load_dataset("fashion_mnist", root=tmp_path, download=False, n=3)) == 3


def test_idx_truncated_and_bad_files(tmp_path):
    good = _idx_bytes(np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "trunc.gz").write_bytes(gzip.compress(good[:-100]))
    with pytest.raises(DataError, match=r"trunc\.gz.*truncated"):
        read_idx(tmp_path / "trunc.gz")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-20])  # a cut-off gzip stream
    with pytest.raises(DataError, match=r"cut\.gz"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "magic").write_bytes(b"\x12\x34\x08\x03" + good[4:])
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "float").write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(DataError, match="not supported"):
        read_idx(tmp_path / "float")


# ------------------------------------------------------------------------------------------------------- CIFAR
def _write_cifar10(root: Path, per_batch: int = 4) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        first = data if first is None else first
        batch = {b"batch_label": name.encode(), b"labels": list(rng.integers(0, 10, per_batch)), b"data": data}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}))
    return first


def test_cifar10_pickled_batches(tmp_path):
    first = _write_cifar10(tmp_path)
    ds = load_dataset("cifar-10", "train", root=tmp_path, download=False)
    assert ds.images.shape == (20, 3, 32, 32) and ds.classes[1] == "automobile"
    assert np.array_equal(ds.images[0, 0].numpy().ravel(), first[0, :1024])  # R plane first, row-major
    assert np.array_equal(ds.images[0, 2].numpy().ravel(), first[0, 2048:])
    assert len(load_dataset("cifar10", "test", root=tmp_path, download=False)) == 4
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", "test", root=tmp_path, download=False)


def test_cifar100_superclass_factor(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 2)):
        batch = {b"data": np.zeros((n, 3072), np.uint8), b"fine_labels": list(range(n)), b"coarse_labels": [1] * n}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    ds = load_dataset("cifar100", root=tmp_path, download=False)
    assert len(ds) == 6 and ds.num_classes == 100 and ds.classes[5] == "f5"
    values, names = ds.targets("superclass")
    assert values.tolist() == [1] * 6 and names[1] == "c1"


# ------------------------------------------------------------------------------------------------------ STL-10
def test_stl10_binary(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)
    (folder / "train_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())  # column-major
    (folder / "train_y.bin").write_bytes(bytes([1, 5, 10]))
    (folder / "unlabeled_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())
    ds = load_dataset("stl10", "train", root=tmp_path, download=False)
    assert np.array_equal(ds.images.numpy(), x) and ds.labels.tolist() == [0, 4, 9] and ds.classes[2] == "car"
    small = load_dataset("stl-10", "unlabelled", root=tmp_path, download=False, size=32)
    assert small.images.shape == (3, 3, 32, 32) and small.labels.tolist() == [-1, -1, -1]
    assert small.split == "unlabeled" and small.name == "stl10-32px"
    (folder / "test_X.bin").write_bytes(b"\0" * 1000)
    (folder / "test_y.bin").write_bytes(b"\1")
    with pytest.raises(DataError, match=r"test_X\.bin.*truncated"):
        load_dataset("stl10", "test", root=tmp_path, download=False)


# ---------------------------------------------------------------------------------------- offline downloading
@pytest.fixture()
def offline(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(formats, "FASHION_SYSTEM_DIRS", [tmp_path / "no-system-dir"])
    return tmp_path / "empty-root"


def test_offline_download_errors_are_fast_and_helpful(offline):
    t = time.perf_counter()
    with pytest.raises(DownloadError) as e:
        load_dataset("fashion-mnist", root=offline)
    msg = str(e.value)
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
              "t10k-labels-idx1-ubyte.gz", "apt-get install -y dataset-fashion-mnist", str(offline / "fashion-mnist")):
        assert f in msg
    with pytest.raises(DownloadError, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=offline)
    with pytest.raises(DownloadError, match="cifar-100-python"):
        load_dataset("cifar100", "test", root=offline)
    with pytest.raises(DownloadError, match="stl10_binary"):
        load_dataset("stl10", "unlabeled", root=offline)
    assert time.perf_counter() - t < 20
    with pytest.raises(DataError, match="download=True"):
        load_dataset("cifar10", root=offline, download=False)


# ----------------------------------------------------------------------------------------------------- folders
def _png(path: Path, colour, size=(10, 8), mode="RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def test_from_folder(tmp_path):
    _png(tmp_path / "pics" / "b_class" / "1.png", (0, 0, 255))
    _png(tmp_path / "pics" / "a_class" / "1.png", (255, 0, 0))
    _png(tmp_path / "pics" / "a_class" / "2.PNG", (0, 255, 0))
    ds = from_folder(tmp_path / "pics")
    assert ds.classes == ["a_class", "b_class"] and ds.labels.tolist() == [0, 0, 1]
    assert ds.images.shape == (3, 3, 8, 10) and ds.images[0, :, 0, 0].tolist() == [255, 0, 0]
    assert from_folder(tmp_path / "pics", size=8).images.shape == (3, 3, 8, 8)
    _png(tmp_path / "grey" / "x" / "1.png", 128, mode="L")
    _png(tmp_path / "grey" / "y" / "1.png", 7, mode="L")
    with pytest.warns(UserWarning, match="test_is_train"):   # class folders only: the test split is named so
        g = load_dataset("folder", "test", path=tmp_path / "grey", test_is_train=True)
    assert g.images.shape == (2, 1, 8, 10) and g.images[1, 0, 0, 0] == 7 and g.split == "test"
    _png(tmp_path / "split" / "test" / "k" / "1.png", (1, 2, 3))
    _png(tmp_path / "split" / "train" / "j" / "1.png", (1, 2, 3))
    assert load_dataset("folder", "test", path=tmp_path / "split").classes == ["k"]


def test_from_folder_errors(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images.*empty"):
        from_folder(tmp_path / "empty")
    _png(tmp_path / "bad" / "c" / "ok.png", (1, 2, 3))
    (tmp_path / "bad" / "c" / "broken.png").write_bytes(b"not really a png")
    with pytest.raises(DataError, match=r"broken\.png"):
        from_folder(tmp_path / "bad")
    _png(tmp_path / "mixed" / "c" / "1.png", (1, 2, 3), size=(8, 8))
    _png(tmp_path / "mixed" / "c" / "2.png", (1, 2, 3), size=(9, 8))
    with pytest.raises(DataError, match=r"2\.png.*size="):
        from_folder(tmp_path / "mixed")
    with pytest.raises(DataError, match="does not exist"):
        from_folder(tmp_path / "nowhere")
    with pytest.raises(DataError, match="path"):
        load_dataset("folder")


# ------------------------------------------------------------------------------------------------------ arrays
def test_from_arrays_valid_forms():
    u = np.random.default_rng(0).integers(0, 256, (5, 8, 9), dtype=np.uint8)
    assert from_arrays(u).images.shape == (5, 1, 8, 9)
    assert torch.equal(from_arrays(u[..., None]).images[:, 0], torch.from_numpy(u))
    rgb = np.stack([u, u // 2, u // 3], -1)
    d = from_arrays(torch.from_numpy(rgb), labels=[0, 1, 2, 1, 0], classes=["a", "b", "c"], name="mine")
    assert d.images.shape == (5, 3, 8, 9) and d.images[0, 1, 0, 0] == rgb[0, 0, 0, 1] and d.name == "mine"
    assert d.labels.dtype == torch.int64 and d.classes == ["a", "b", "c"]
    assert torch.equal(from_arrays(rgb.transpose(0, 3, 1, 2)).images, d.images)  # N×C×H×W also accepted
    fl = np.zeros((1, 8, 8), dtype=np.float32)
    fl[0, 0, :4] = [0.0, 1.0, 0.5, 0.2]
    f = from_arrays(fl)
    assert f.images.flatten()[:4].tolist() == [0, 255, 128, 51]
    nolab = from_arrays(u)
    assert nolab.labels.tolist() == [0] * 5 and nolab.classes == ["unlabelled"]
    assert from_arrays(u, labels=np.array([0, 3, 1, 1, 0])).classes == ["0", "1", "2", "3"]
    arr = load_dataset("arrays", "test", images=u, labels=np.zeros(5, np.int64), test_images=u[:2],
                       test_labels=np.zeros(2, np.int64))
    assert arr.split == "test" and len(arr) == 2


@pytest.mark.parametrize("images,labels,classes,pattern", [
    (np.zeros((5, 6), np.uint8), None, None, "rank 2"),
    (np.zeros((1, 2, 3, 4, 3), np.uint8), None, None, "rank 5"),
    (np.zeros((2, 6, 6, 4), np.uint8), None, None, "4 channels"),
    (np.zeros((2, 6, 6), np.int64), None, None, "uint8.*int64"),
    (np.zeros((2, 6, 6), bool), None, None, "uint8.*bool"),
    (np.full((2, 6, 6), 2.0), None, None, r"\[0, 1\].*\[2, 2\]"),
    (np.full((2, 6, 6), -0.1), None, None, r"\[0, 1\]"),
    (np.full((2, 6, 6), np.nan), None, None, "NaN"),
    (np.zeros((0, 6, 6), np.uint8), None, None, "no images"),
    (np.zeros((3, 8, 8), np.uint8), [0, 1], None, "length 3.*shape \\(2,\\)"),
    (np.zeros((2, 8, 8), np.uint8), np.zeros((2, 1), int), None, "1-D"),
    (np.zeros((2, 8, 8), np.uint8), [0.0, 1.0], None, "integers.*float"),
    (np.zeros((2, 8, 8), np.uint8), [0, 3], ["a", "b"], "label 3 is out of range for 2 classes"),
    (np.zeros((2, 8, 8), np.uint8), [0, -2], None, "-1"),
    (np.zeros((2, 8, 8), np.uint8), None, ["a"], "classes were given but labels"),
])
def test_from_arrays_errors(images, labels, classes, pattern):
    with pytest.raises(DataError, match=pattern):
        from_arrays(images, labels=labels, classes=classes)


# ---------------------------------------------------------------------------------------------------- dispatch
def test_dispatch_errors():
    with pytest.raises(DataError) as e:
        load_dataset("imagenet")
    assert all(name in str(e.value) for name in available_datasets())
    with pytest.raises(DataError, match="valid splits: train, test"):
        load_dataset("cifar10", "unlabeled")
    with pytest.raises(DataError, match="'colour_shfit'"):
        load_dataset("shapes", colour_shfit=True)
    with pytest.raises(DataError, match="positive integer"):
        load_dataset("shapes", n=0)
    assert set(available_datasets()) == {"shapes", "fashion-mnist", "cifar10", "cifar100", "stl10", "folder", "arrays"}


# -------------------------------------------------------------------------------------- real Fashion-MNIST
@pytest.mark.skipif(not (formats.FASHION_SYSTEM_DIRS[0] / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist(tmp_path):
    train = load_dataset("fashion-mnist", "train", root=tmp_path, download=False)
    test = load_dataset("fashion-mnist", "test", root=tmp_path, download=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.images.shape[1:] == (1, 28, 28) and test.images.dtype == torch.uint8
    assert int(train.labels.min()) == 0 and int(train.labels.max()) == 9
    assert torch.bincount(test.labels).tolist() == [1000] * 10
