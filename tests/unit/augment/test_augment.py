"""Tests of the batched augmentation ingredient (gpsviz.augment), its plot and its benchmark.

Every batched op is compared with ``torchvision.transforms.v2.functional`` applied image by image with the
same parameters (50 random draws each). Tolerances (max abs difference, values in [0, 1]):
- ``TOL = 1e-5`` for crop/flip/brightness/contrast/saturation/grayscale/blur/solarize: only float rounding
  differs (separable blur and matrix-product resampling sum in another order; observed ≤ 6e-7);
- ``HUE_TOL = 1e-4`` for hue: torchvision goes RGB→HSV→RGB, gpsviz rotates the hexcone directly; both divide
  by the channel range, so rounding is amplified where the range is small (observed ≤ 2e-6);
- the full pipeline against the per-image reference: ``4·TOL`` in normalised units (std 0.25);
- replay: the same batch replays bit for bit; a *subset* of a batch replays within ``REPLAY_TOL = 1e-6``
  (normalised units). Results may differ in the last float bit with the batch's size — e.g. MKL on
  AVX-512/AMX CPUs picks matrix-product kernels by shape — so bit-equality across batch shapes is no contract.
"""
from __future__ import annotations

import re

import matplotlib
import pytest
import torch
import torchvision.transforms.v2.functional as TF

matplotlib.use("Agg")

from gpsviz.augment import PARAM_NAMES, AugmentConfig, Augmenter, AugParams, available_presets, cassle_descriptor, ops  # noqa: E402
from gpsviz.errors import ConfigError, DataError  # noqa: E402

TOL = 1e-5
HUE_TOL = 1e-4
REPLAY_TOL = 1e-6
N_DRAWS = 50


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_images(n: int = N_DRAWS, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Random float images in [0, 1] with some exact ties/greys/saturated pixels mixed in (hue edge cases)."""
    g = gen(seed)
    x = torch.rand(n, c, h, w, generator=g)
    x[: n // 5] = (x[: n // 5] * 4).round() / 4                     # ties between channels, 0 and 1
    if c == 3:
        x[n // 5: n // 4] = x[n // 5: n // 4, :1]                   # grey images
    return x


def per_image(fn, x: torch.Tensor, *args) -> torch.Tensor:
    """torchvision applied image by image; ``args`` are per-sample tensors (B,)."""
    return torch.stack([fn(x[i], *[a[i].item() for a in args]) for i in range(x.shape[0])])


def maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------------- ops vs torchvision
@pytest.mark.parametrize("hw", [(32, 32), (24, 40)])
def test_resized_crop_and_flip_match_torchvision(hw):
    h, w = hw
    x = rand_images(h=h, w=w)
    g = gen(1)
    ch = torch.randint(1, h + 1, (N_DRAWS,), generator=g)
    cw = torch.randint(1, w + 1, (N_DRAWS,), generator=g)
    top = (torch.rand(N_DRAWS, generator=g) * (h - ch + 1)).floor().long()
    left = (torch.rand(N_DRAWS, generator=g) * (w - cw + 1)).floor().long()
    ch[0], cw[0], top[0], left[0] = h, w, 0, 0                      # identity box
    flip = torch.rand(N_DRAWS, generator=g) < 0.5
    ref = torch.stack([TF.resized_crop(x[i], int(top[i]), int(left[i]), int(ch[i]), int(cw[i]), [h, w],
                                       antialias=True) for i in range(N_DRAWS)])
    assert maxdiff(ops.resized_crop(x, top, left, ch, cw), ref) <= TOL
    ref_f = torch.stack([TF.horizontal_flip(r) if f else r for r, f in zip(ref, flip)])
    assert maxdiff(ops.resized_crop(x, top, left, ch, cw, flip=flip), ref_f) <= TOL
    assert torch.equal(ops.hflip(x, flip), torch.stack([TF.horizontal_flip(a) if f else a for a, f in zip(x, flip)]))
    u8 = (x * 255).round().to(torch.uint8)                            # uint8 input with the 1/255 folded in
    out = ops.resized_crop(u8, top, left, ch, cw, scale=torch.full((N_DRAWS,), 1 / 255))
    ref8 = torch.stack([TF.resized_crop(u8[i].float() / 255, int(top[i]), int(left[i]), int(ch[i]), int(cw[i]),
                                        [h, w], antialias=True) for i in range(N_DRAWS)])
    assert maxdiff(out, ref8) <= TOL


def test_resized_crop_grid_method_for_large_images():
    """Above ops.MATMUL_MAX_SIZE px the crop uses grid_sample; its normalised coordinates cost some float
    precision at 96 px (observed ≤ 2e-5), hence ``GRID_TOL = 1e-4``."""
    grid_tol = 1e-4
    n, s = 12, 96
    x = torch.randint(0, 256, (n, 3, s, s), dtype=torch.uint8, generator=gen(30))
    g = gen(31)
    ch, cw = torch.randint(8, s + 1, (n,), generator=g), torch.randint(8, s + 1, (n,), generator=g)
    top = (torch.rand(n, generator=g) * (s - ch + 1)).floor().long()
    left = (torch.rand(n, generator=g) * (s - cw + 1)).floor().long()
    flip = torch.rand(n, generator=g) < 0.5
    ref = torch.stack([TF.resized_crop(x[i].float() / 255, int(top[i]), int(left[i]), int(ch[i]), int(cw[i]),
                                       [s, s], antialias=True) for i in range(n)])
    ref = torch.stack([TF.horizontal_flip(r) if f else r for r, f in zip(ref, flip)])
    for method in ("grid", "matmul", "auto"):
        out = ops.resized_crop(x, top, left, ch, cw, flip=flip, scale=torch.full((n,), 1 / 255), method=method)
        assert maxdiff(out, ref) <= grid_tol, method


@pytest.mark.parametrize("name, op, ref_fn, lo, hi, tol", [
    ("brightness", ops.adjust_brightness, TF.adjust_brightness, 0.0, 2.0, TOL),
    ("contrast", ops.adjust_contrast, TF.adjust_contrast, 0.0, 2.0, TOL),
    ("saturation", ops.adjust_saturation, TF.adjust_saturation, 0.0, 2.0, TOL),
    ("hue", ops.adjust_hue, TF.adjust_hue, -0.5, 0.5, HUE_TOL),
])
@pytest.mark.parametrize("channels", [3, 1])
def test_colour_ops_match_torchvision(name, op, ref_fn, lo, hi, tol, channels):
    x = rand_images(c=channels, seed=2)
    f = lo + (hi - lo) * torch.rand(N_DRAWS, generator=gen(3))
    f[0] = hi                                                        # extremes included
    f[1] = lo
    ref = per_image(ref_fn, x, f)
    out = op(x, f)
    assert out.shape == x.shape
    assert maxdiff(out, ref) <= tol, name
    y = x.clone()
    op(y, f, inplace=True)
    assert maxdiff(y, ref) <= tol                                     # the in-place variant agrees
    if channels == 1 and name in ("saturation", "hue"):
        assert torch.equal(out, x)                                    # documented no-op on one channel


def test_grayscale_solarize_match_torchvision():
    x = rand_images(seed=4)
    mask = torch.rand(N_DRAWS, generator=gen(5)) < 0.5
    ref = torch.stack([TF.rgb_to_grayscale(a, 3) if m else a for a, m in zip(x, mask)])
    assert maxdiff(ops.rgb_to_grayscale(x, mask), ref) <= TOL
    assert maxdiff(ops.rgb_to_grayscale(x), per_image(lambda a: TF.rgb_to_grayscale(a, 3), x)) <= TOL
    ref = torch.stack([TF.solarize(a, 0.5) if m else a for a, m in zip(x, mask)])
    assert maxdiff(ops.solarize(x, mask), ref) <= TOL
    x1 = rand_images(c=1, seed=4)
    assert torch.equal(ops.rgb_to_grayscale(x1, mask), x1)


@pytest.mark.parametrize("k", [3, 5, 9])
def test_gaussian_blur_matches_torchvision(k):
    x = rand_images(seed=6)
    sigma = 0.1 + 1.9 * torch.rand(N_DRAWS, generator=gen(7))
    ref = torch.stack([TF.gaussian_blur(x[i], [k, k], [sigma[i].item()] * 2) for i in range(N_DRAWS)])
    assert maxdiff(ops.gaussian_blur(x, sigma, k), ref) <= TOL
    mask = torch.rand(N_DRAWS, generator=gen(8)) < 0.4
    ref_m = torch.where(mask.view(-1, 1, 1, 1), ref, x)
    assert maxdiff(ops.gaussian_blur(x, torch.where(mask, sigma, 0.0), k, mask=mask), ref_m) <= TOL
    assert ops.default_blur_kernel_size(32) == 3 and ops.default_blur_kernel_size(96) == 9


# ------------------------------------------------------------------------------------------- the pipeline
def reference_views(images: torch.Tensor, params: AugParams, k: int = 3, mean: float = 0.5, std: float = 0.25):
    """torchvision, image by image, with the parameters gpsviz drew; returns (views, mean_diff B×3)."""
    views, diffs = [], []
    h, w = images.shape[-2:]
    for i in range(images.shape[0]):
        r = params.row(i)
        x = images[i].float() / 255 if images.dtype == torch.uint8 else images[i].float()
        x = TF.resized_crop(x, int(r["crop_y"]), int(r["crop_x"]), int(r["crop_h"]), int(r["crop_w"]), [h, w],
                            antialias=True)
        if r["flip"]:
            x = TF.horizontal_flip(x)
        d = torch.zeros(3)
        if r["jitter"]:                                               # mean_diff: around the jitter alone
            before = x.mean((1, 2))
            x = TF.adjust_brightness(x, r["brightness"])
            x = TF.adjust_contrast(x, r["contrast"])
            x = TF.adjust_saturation(x, r["saturation"])
            x = TF.adjust_hue(x, r["hue"])
            d[: x.shape[0]] = before - x.mean((1, 2))
        if r["grayscale"]:
            x = TF.rgb_to_grayscale(x, 3)
        diffs.append(d)
        if r["blur_sigma"] > 0:
            x = TF.gaussian_blur(x, [k, k], [r["blur_sigma"]] * 2)
        if r["solarize"]:
            x = TF.solarize(x, 0.5)
        views.append((x - mean) / std)
    return torch.stack(views), torch.stack(diffs)


@pytest.mark.parametrize("preset, shape, n, tol", [
    ("simclr", (3, 32, 32), 32, 4 * TOL), ("gps-strong", (3, 24, 40), 16, 4 * TOL),
    ("simclr", (1, 28, 28), 16, 4 * TOL),
    ("simclr", (3, 96, 96), 6, 4e-4),                                 # grid_sample crop, 9×9 blur (see above)
    ("strong", (3, 32, 32), 32, 4 * TOL),                             # full-turn hue, no blur
])
def test_pipeline_matches_per_image_reference(preset, shape, n, tol):
    cfg = AugmentConfig.preset(preset, solarize_p=0.3)               # exercise solarize too
    aug = Augmenter(cfg)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen(9))
    views, params = aug(x, generator=gen(10))
    assert views.shape == x.shape and views.dtype == torch.float32
    assert params.values.shape == (n, len(PARAM_NAMES)) and params.names == PARAM_NAMES
    ref, diffs = reference_views(x, params, k=ops.default_blur_kernel_size(min(shape[1:])))
    assert maxdiff(views, ref) <= tol
    assert maxdiff(params.values[:, -3:], diffs) <= TOL
    assert torch.equal(aug.apply(x, params), views)                  # deterministic replay, same batch
    assert maxdiff(aug.apply(x[2:5], params[2:5]), views[2:5]) <= REPLAY_TOL      # a subset: within rounding
    idx = torch.tensor([3, 1, 4])
    assert maxdiff(aug.apply(x[idx], params[idx]), views[idx]) <= REPLAY_TOL
    assert (params["blur_sigma"] > 0).any() == (cfg.blur_p > 0) and (params["jitter"] > 0).any()


def test_seeds_and_devices_of_draws():
    aug = Augmenter("strong")
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=gen(11))
    v1, p1 = aug(x, generator=gen(5))
    v2, p2 = aug(x, generator=gen(5))
    v3, p3 = aug(x, generator=gen(6))
    assert torch.equal(v1, v2) and torch.equal(p1.values, p2.values)
    assert not torch.equal(v1, v3) and not torch.equal(p1.values, p3.values)
    torch.manual_seed(0)
    _, pa = aug(x)                                                    # no generator: global RNG
    torch.manual_seed(0)
    _, pb = aug(x)
    assert torch.equal(pa.values, pb.values)
    assert v1.device == x.device and p1.device == x.device


def test_param_ranges_and_frequencies():
    n, h, w = 4000, 32, 32
    p = Augmenter("simclr").sample(n, (3, h, w), gen(12))
    v = p.to_dict()
    assert ((v["crop_h"] >= 1) & (v["crop_w"] >= 1)).all()
    assert ((v["crop_y"] >= 0) & (v["crop_y"] + v["crop_h"] <= h)).all()
    assert ((v["crop_x"] >= 0) & (v["crop_x"] + v["crop_w"] <= w)).all()
    area = v["crop_h"] * v["crop_w"] / (h * w)
    assert area.min() >= 0.06 and area.max() <= 1.0                  # 0.08 up to integer rounding
    ratio = v["crop_w"] / v["crop_h"]
    assert ratio.min() >= 0.6 and ratio.max() <= 1.6                  # 3/4..4/3 up to integer rounding
    for name in ("flip", "jitter", "grayscale", "solarize"):
        assert set(v[name].unique().tolist()) <= {0.0, 1.0}, name
    on = v["jitter"] > 0.5
    for name in ("brightness", "contrast", "saturation"):
        assert (v[name][on] >= 0.6).all() and (v[name][on] <= 1.4).all()
        assert (v[name][~on] == 1).all()
    assert (v["hue"][on].abs() <= 0.1).all() and (v["hue"][~on] == 0).all()
    blur = v["blur_sigma"] > 0
    assert (v["blur_sigma"][blur] >= 0.1).all() and (v["blur_sigma"][blur] <= 2.0).all()
    for name, p_expected in (("flip", 0.5), ("jitter", 0.8), ("grayscale", 0.2), ("solarize", 0.0)):
        assert abs(v[name].mean().item() - p_expected) < 0.04, name
    assert abs(blur.float().mean().item() - 0.5) < 0.04
    assert (v["mean_diff_0"] == 0).all()                              # measured only when the ops run
    pg = Augmenter("gps-strong").sample(n, (3, h, w), gen(12)).to_dict()
    assert pg["brightness"].max() > 1.6 and pg["hue"].abs().max() > 0.15
    ps = Augmenter("strong").sample(n, (3, h, w), gen(12)).to_dict()  # the shapes-calibrated default
    on = ps["jitter"] > 0.5
    assert (ps["blur_sigma"] == 0).all() and ps["hue"][on].abs().max() > 0.45
    assert (ps["crop_h"] * ps["crop_w"] / (h * w)).min() >= 0.2       # 0.25 up to integer rounding


def test_none_weak_and_strength_zero_are_identity_up_to_flip():
    x = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8, generator=gen(13))
    base = Augmenter("none").normalize(x)
    for aug in (Augmenter("none"), Augmenter("strong", strength=0.0), Augmenter("gps-strong", strength=0)):
        views, params = aug(x, generator=gen(14))
        assert torch.equal(views, base)
        assert torch.equal(params.values[:, :4], torch.tensor([[0.0, 0.0, 32.0, 32.0]]).expand(32, 4))
        assert (params.values[:, 4:6] == 0).all() and (params.values[:, 10:] == 0).all()
    views, params = Augmenter("weak")(x, generator=gen(15))
    flip = params["flip"] > 0.5
    assert 0 < flip.sum() < 32
    assert torch.equal(views[flip], base[flip].flip(-1)) and torch.equal(views[~flip], base[~flip])
    rest = torch.cat([params.values[:, :4], params.values[:, 5:]], 1)
    neutral = torch.zeros(len(PARAM_NAMES))
    neutral[[2, 3]] = 32
    neutral[[6, 7, 8]] = 1
    assert torch.equal(rest, torch.cat([neutral[:4], neutral[5:]]).expand(32, -1))


def test_strength_scales_magnitude_monotonically():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=gen(16))
    base = x.float() / 255
    change = []
    for s in (0.0, 0.25, 0.5, 1.0, 2.0):
        aug = Augmenter("strong", strength=s)
        views, _ = aug(x, generator=gen(17))                         # same draws, scaled magnitudes
        change.append((aug.unnormalize(views) - base).abs().mean().item())
    assert change[0] < 1e-6
    assert all(a < b for a, b in zip(change, change[1:])), change
    e = AugmentConfig.preset("simclr", strength=0.5).effective()
    assert e.brightness == pytest.approx(0.2) and e.hue == pytest.approx(0.05)
    assert e.crop_scale[0] == pytest.approx(1 - 0.5 * 0.92) and e.grayscale_p == pytest.approx(0.1)
    assert AugmentConfig.preset("simclr", strength=10).effective().hue == 0.5
    e = AugmentConfig.preset("strong", strength=0.5).effective()
    assert e.hue == pytest.approx(0.25) and e.crop_scale[0] == pytest.approx(1 - 0.5 * 0.75)


def test_single_channel_and_input_dtypes():
    x = torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=gen(18))
    views, params = Augmenter("strong")(x, generator=gen(19))
    assert views.shape == x.shape
    v = params.to_dict()
    assert (v["saturation"] == 1).all() and (v["hue"] == 0).all() and (v["grayscale"] == 0).all()
    assert (v["mean_diff_1"] == 0).all() and (v["mean_diff_2"] == 0).all()
    assert (v["mean_diff_0"] != 0).any()
    x3 = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=gen(20))
    aug = Augmenter("strong")
    v8, p8 = aug(x3, generator=gen(21))
    vf, pf = aug(x3.float() / 255, generator=gen(21))
    vd, _ = aug(x3.double() / 255, generator=gen(21))
    assert torch.equal(p8.values[:, :13], pf.values[:, :13])
    assert maxdiff(v8, vf) <= 4 * TOL and maxdiff(v8, vd) <= 4 * TOL
    assert maxdiff(aug.normalize(x3), aug.normalize(x3.float() / 255)) <= 4 * TOL
    one, _ = aug(x3[:1], generator=gen(1))
    assert one.shape == (1, 3, 32, 32)
    empty, pe = aug(x3[:0], generator=gen(1))
    assert empty.shape == (0, 3, 32, 32) and len(pe) == 0


def test_custom_normalisation():
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=gen(22))
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    aug = Augmenter("none", mean=mean, std=std)
    ref = TF.normalize(x.float() / 255, list(mean), list(std))
    assert maxdiff(aug.normalize(x), ref) <= 4 * TOL
    assert maxdiff(aug.unnormalize(aug.normalize(x)), x.float() / 255) <= TOL
    with pytest.raises(ConfigError, match="channels"):
        aug.normalize(x[:, :1])


@pytest.mark.parametrize("field, value", [
    ("brightness", -0.1), ("hue", 0.7), ("crop_scale", (0.0, 1.0)), ("crop_scale", (0.5, 1.5)),
    ("crop_scale", (0.9, 0.2)), ("flip_p", 1.5), ("jitter_p", -0.1), ("blur_sigma", (0.0, 1.0)),
    ("blur_kernel", 4), ("strength", -1.0), ("crop_ratio", (0.0, 1.0)), ("solarize_threshold", 2.0),
])
def test_bad_config_raises_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        AugmentConfig(**{field: value})


def test_bad_options_and_inputs():
    with pytest.raises(ConfigError) as err:
        Augmenter("medium")
    assert all(name in str(err.value) for name in available_presets())
    with pytest.raises(ConfigError, match="strength"):
        Augmenter("strong", strength=-0.5)
    with pytest.raises(ConfigError, match="frobnicate"):
        AugmentConfig.preset("strong", frobnicate=1)
    with pytest.raises(ConfigError, match="std"):
        Augmenter("strong", std=0.0)
    aug = Augmenter("weak")
    with pytest.raises(DataError, match="B×C×H×W"):
        aug(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(DataError, match="channels"):
        aug(torch.zeros(2, 4, 32, 32, dtype=torch.uint8))
    cfg = AugmentConfig.preset("gps-strong")
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg and cfg.name == "gps-strong"


def test_aug_params_api_and_cassle_descriptor():
    x = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8, generator=gen(23))
    aug = Augmenter("simclr")                                         # cassle_descriptor's default jitter ranges
    _, p = aug(x, generator=gen(24))
    assert len(p) == 30 and p["flip"].shape == (30,)
    assert list(p.to_dict()) == list(PARAM_NAMES)
    assert len(p[3]) == 1 and len(p[-1]) == 1 and len(p[p["flip"] > 0.5]) == int(p["flip"].sum())
    assert p.to("cpu").values.device.type == "cpu"
    assert len(AugParams.cat([p, p[:4]])) == 34
    with pytest.raises(KeyError):
        p["rotation"]
    d = cassle_descriptor(p, 32)
    assert d.shape == (30, 14) and torch.equal(d, aug.descriptor(p, (32, 32)))
    off = p["jitter"] < 0.5
    assert off.any() and (d[off, 4:12] == 0).all()                  # colour and colour_diff: 0 without jitter
    assert (d[~off, 4:7].abs() <= 1 + 1e-6).all()                     # (f − 1)/range within [−1, 1]
    cx = (p["crop_x"] + p["crop_w"] / 2) / 32
    assert torch.allclose(d[:, 1], torch.where(p["flip"] > 0.5, 1 - cx, cx))
    assert torch.equal(d[:, 12], p["blur_sigma"]) and torch.equal(d[:, 13], p["grayscale"])
    strong = Augmenter("strong")                                      # full-turn hue: its own range
    assert torch.equal(strong.descriptor(p, 32), cassle_descriptor(p, 32, (0.4, 0.4, 0.4, 0.5)))


def test_plot_views_returns_figure():
    from matplotlib.figure import Figure

    from gpsviz.plots import plot_views

    for c in (3, 1):
        x = torch.randint(0, 256, (1, c, 32, 32), dtype=torch.uint8, generator=gen(25))
        aug = Augmenter("strong")
        views, params = aug(x.expand(5, -1, -1, -1), generator=gen(26))
        fig = plot_views(x[0], views, params, title="views")
        assert isinstance(fig, Figure) and len(fig.axes) == 6
        assert fig.axes[0].get_title() == "original" and fig.axes[1].get_title()
        if c == 3:
            fig.canvas.draw()
        matplotlib.pyplot.close(fig)


def test_benchmark_smoke(capsys):
    from gpsviz.bench import augment as bench

    assert bench.main(["--n", "32", "--batch", "16", "--pil-n", "4", "--repeats", "1"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"augment_speedup_vs_torchvision_pil=\d+\.\d\d", last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=gen(27))
    aug = Augmenter("strong")
    v_cpu, p_cpu = aug(x, generator=gen(28))
    v_gpu, p_gpu = aug(x.cuda(), generator=gen(28))
    assert v_gpu.device.type == "cuda" and p_gpu.device.type == "cuda"
    assert torch.equal(p_gpu.values[:, :13].cpu(), p_cpu.values[:, :13])
    assert maxdiff(v_gpu.cpu(), v_cpu) <= 4 * HUE_TOL
