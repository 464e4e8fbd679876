"""Prior embeddings: shapes, caching, checkpoints, ImageNet weights offline, and purity on the shapes world."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from gpsviz import priors
from gpsviz.data import ImageDataset, make_shapes
from gpsviz.errors import CheckpointError, ConfigError, DataError, DownloadError
from gpsviz.priors import available_priors, compute_prior, embed_images, prior_cache_path, purity

FAST = {"pixels": {}, "pca": {"dim": 16}, "hog": {}, "hog-invariant": {}, "oracle": {},
        "autoencoder": {"epochs": 1, "width": 8}}


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(600, seed=0)


@pytest.fixture(scope="module")
def tiny(shapes):
    return shapes.subset(torch.arange(40))


@pytest.mark.parametrize("name", sorted(FAST))
def test_prior_is_finite_matrix(name, shapes, tmp_path):
    emb = compute_prior(name, shapes, root=tmp_path, progress=False, **FAST[name])
    assert emb.dtype == torch.float32 and emb.ndim == 2 and emb.shape[0] == len(shapes)
    assert torch.isfinite(emb).all() and emb.std() > 0


def test_shifted_prior_trains_caches_and_embeds(tiny, tmp_path, capsys):
    opts = {"n_train": 300, "epochs": 1}
    emb = compute_prior("shifted", tiny, root=tmp_path, progress=True, **opts)
    assert emb.shape == (len(tiny), 256) and torch.isfinite(emb).all()
    assert "accuracy on the shifted test split" in capsys.readouterr().out
    assert len(list((tmp_path / "priors" / "models").glob("shifted-small-cnn-*.pt"))) == 1
    again = compute_prior("shifted", tiny, root=tmp_path, cache=False, progress=False, **opts)   # cached model
    assert torch.allclose(emb, again, atol=1e-5)


def test_shifted_prior_refuses_other_data(tmp_path):
    gray = ImageDataset(images=torch.zeros(4, 1, 28, 28, dtype=torch.uint8), labels=torch.zeros(4), classes=["a"])
    with pytest.raises(DataError, match="shapes-like"):
        compute_prior("shifted", gray, root=tmp_path, progress=False)


def test_cache_hit_returns_same_tensor_without_recomputing(shapes, tmp_path, monkeypatch):
    first = compute_prior("hog", shapes, root=tmp_path, progress=False)
    path = prior_cache_path("hog", shapes, root=tmp_path)
    assert path.is_file() and path.parent.parent.name == "priors"

    def boom(*a, **k):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(priors.PRIORS["hog"], "fn", boom)
    assert torch.equal(compute_prior("hog", shapes, root=tmp_path, progress=False), first)
    with pytest.raises(AssertionError):                                   # other options → other cache file
        compute_prior("hog", shapes, root=tmp_path, progress=False, cell=4)


def test_corrupt_cache_is_recomputed(shapes, tmp_path, monkeypatch):
    first = compute_prior("pixels", shapes, root=tmp_path, progress=False)
    path = prior_cache_path("pixels", shapes, root=tmp_path)
    path.write_bytes(b"not a torch file")
    calls = []
    original = priors.PRIORS["pixels"].fn
    monkeypatch.setattr(priors.PRIORS["pixels"], "fn", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert torch.equal(compute_prior("pixels", shapes, root=tmp_path, progress=False), first)
    assert calls == [1]
    assert torch.equal(torch.load(path, weights_only=True)["embedding"], first)   # rewritten


def test_cache_key_follows_content(shapes, tmp_path):
    other = shapes.subset(torch.arange(600))
    other.images = other.images.clone()
    other.images[0] = 255 - other.images[0]
    assert prior_cache_path("hog", shapes, tmp_path) != prior_cache_path("hog", other, tmp_path)
    assert prior_cache_path("pca", shapes, tmp_path) == prior_cache_path("pca", shapes, tmp_path, dim=64)
    assert prior_cache_path("pca", shapes, tmp_path) != prior_cache_path("pca", shapes, tmp_path, dim=8)


def test_cache_false_writes_nothing(tiny, tmp_path):
    compute_prior("pixels", tiny, root=tmp_path, cache=False)
    assert not (tmp_path / "priors").exists()


def test_unknown_prior_and_option(tiny, tmp_path):
    with pytest.raises(ConfigError, match="hog-invariant"):
        compute_prior("sift", tiny, root=tmp_path)
    with pytest.raises(ConfigError, match="dim"):
        compute_prior("pca", tiny, root=tmp_path, dims=3)
    assert {"pixels", "pca", "hog", "hog-invariant", "autoencoder", "checkpoint", "shifted", "oracle",
            "imagenet-resnet18", "imagenet-resnet50"} <= set(available_priors())


def _write_checkpoint(path, in_channels=3):
    """A checkpoint in the training loop's format (written by gpsviz.checkpoint.save_checkpoint)."""
    from gpsviz.checkpoint import save_checkpoint
    from gpsviz.models import MLPHead, build_backbone
    from gpsviz.models.ssl import SSLModel

    torch.manual_seed(0)
    backbone = build_backbone("small-cnn", in_channels)
    model = SSLModel(backbone, {"projector": MLPHead(backbone.out_dim, 8, 4)})
    save_checkpoint(path, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    generator=torch.Generator(), epoch=1, history=[],
                    config={"recipe": "simclr", "backbone": "small-cnn"}, in_channels=in_channels)
    return backbone.eval()


def test_checkpoint_prior(tiny, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    backbone = _write_checkpoint(run / "checkpoint.pt")
    expected = embed_images(backbone, tiny.images, batch_size=16)
    emb = compute_prior("checkpoint", tiny, root=tmp_path, run=str(run), progress=False)   # a run folder
    assert emb.shape == (len(tiny), backbone.out_dim)
    assert torch.allclose(emb, expected, atol=1e-5)
    emb2 = compute_prior("checkpoint", tiny, root=tmp_path, run=str(run / "checkpoint.pt"), progress=False)
    assert torch.allclose(emb2, expected, atol=1e-5)


def test_checkpoint_prior_on_one_channel_images(tmp_path):
    backbone = _write_checkpoint(tmp_path / "checkpoint.pt", in_channels=1)
    gray = ImageDataset(images=torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8), labels=torch.zeros(5),
                        classes=["a"])
    emb = compute_prior("checkpoint", gray, root=tmp_path, run=str(tmp_path), progress=False)
    assert torch.allclose(emb, embed_images(backbone, gray.images), atol=1e-5)


def test_checkpoint_prior_errors(tiny, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        compute_prior("checkpoint", tiny, root=tmp_path, run=str(tmp_path / "missing"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable gpsviz checkpoint"):
        compute_prior("checkpoint", tiny, root=tmp_path, run=str(bad))
    torch.save({"weights": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not written by gpsviz"):
        compute_prior("checkpoint", tiny, root=tmp_path, run=str(tmp_path / "foreign.pt"))
    with pytest.raises(ConfigError, match="run="):
        compute_prior("checkpoint", tiny, root=tmp_path)


def test_embed_images_restores_mode_and_normalises(tiny):
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Identity())
    lin.train()
    out = embed_images(lin, tiny.images[:3], batch_size=2)
    assert lin.training
    assert torch.allclose(out, ((tiny.images[:3].float() / 255 - 0.5) / 0.25).flatten(1), atol=1e-6)


def test_imagenet_prior_offline_names_the_file(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(DownloadError) as err:
        compute_prior("imagenet-resnet18", tiny, root=tmp_path, progress=False)
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    with pytest.raises(DownloadError, match="resnet50-0676ba61.pth"):
        compute_prior("imagenet-resnet50", tiny, root=tmp_path, progress=False, download=False)


def test_imagenet_prior_loads_from_torch_home(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), folder / "resnet18-f37072fd.pth")
    g = torch.Generator().manual_seed(0)
    rgb = ImageDataset(images=torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g),
                       labels=torch.arange(6), classes=list("abcdef"))
    gray = ImageDataset(images=rgb.images[:, :1].clone(), labels=torch.arange(6), classes=list("abcdef"))
    for ds in (rgb, gray):
        emb = compute_prior("imagenet-resnet18", ds, root=tmp_path, progress=False, download=False)
        assert emb.shape == (6, 512) and torch.isfinite(emb).all()
    (folder / "resnet18-f37072fd.pth").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="resnet18-f37072fd.pth"):
        compute_prior("imagenet-resnet18", rgb, root=tmp_path, cache=False, progress=False, download=False)


def test_oracle_purity_is_one(shapes, tmp_path):
    emb = compute_prior("oracle", shapes, root=tmp_path)
    assert purity(emb, shapes.labels, k=10) == 1.0


def test_oracle_needs_labels(tmp_path):
    ds = ImageDataset(images=torch.zeros(3, 1, 8, 8, dtype=torch.uint8), labels=torch.tensor([0, -1, 1]),
                      classes=["a", "b"])
    with pytest.raises(DataError, match="unlabelled"):
        compute_prior("oracle", ds, root=tmp_path)


def test_shape_priors_beat_pixels_on_shapes(tmp_path):
    """The point of a shape prior: its neighbours share the class more often than raw pixels' do."""
    shapes = make_shapes(2000, seed=0)
    p = {name: purity(compute_prior(name, shapes, root=tmp_path, progress=False), shapes.labels, k=10)
         for name in ("pixels", "hog", "hog-invariant")}
    assert p["hog"] > p["pixels"] + 0.02
    assert p["hog-invariant"] > p["hog"] + 0.2
