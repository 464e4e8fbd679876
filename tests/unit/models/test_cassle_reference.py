"""Issue 19: CASSLE against its reference (gmum/CASSLE) — colour_diff around the jitter alone, the hue angle code
of the 14-column descriptor, the descriptor encoder's final BatchNorm, and old 13-column heads refused on load.

The transcriptions below are written from the reference's behaviour, not copied: its ``ColorJitter`` records
``mean(x) − mean(jitter(x))`` per channel and its descriptor extractor leaves 0 for views the jitter skipped
(grayscale is a separate transform after it); its ``load_mlp(n_in, n_hidden, n_out, num_layers)`` with the
defaults ``last_bn=True, last_bn_affine=True`` is the descriptor encoder of ``AugProjector``.
"""
from __future__ import annotations

import math
import types

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from gpsviz.augment import DESCRIPTOR_NAMES, PARAM_NAMES, Augmenter, AugParams, cassle_descriptor
from gpsviz.augment.params import _COL
from gpsviz.checkpoint import load_state
from gpsviz.errors import CheckpointError
from gpsviz.models.heads import DESCRIPTOR_FAMILIES, ConditionedProjector

TOL = 1e-5


def _params(rows: list[dict]) -> AugParams:
    """AugParams of hand-chosen views of 32×32 images (unnamed columns: whole-image crop, neutral factors)."""
    v = torch.zeros(len(rows), len(PARAM_NAMES))
    v[:, _COL["crop_h"]] = v[:, _COL["crop_w"]] = 32.0
    v[:, _COL["brightness"]] = v[:, _COL["contrast"]] = v[:, _COL["saturation"]] = 1.0
    for i, r in enumerate(rows):
        for k, x in r.items():
            v[i, _COL[k]] = float(x)
    return AugParams(v)


# views with known parameters: jitter only, grayscale only, both, neither, crop + flip + jitter + blur, a full-turn
# hue, brightness above 1 (clamped) and brightness 0 (the pipeline's special case)
ROWS = [
    dict(jitter=1, brightness=1.3, contrast=0.7, saturation=1.2, hue=0.08),
    dict(grayscale=1),
    dict(jitter=1, brightness=0.8, contrast=1.25, saturation=0.6, hue=-0.1, grayscale=1),
    dict(),
    dict(crop_y=3, crop_x=5, crop_h=20, crop_w=24, flip=1, jitter=1, brightness=1.1, contrast=0.9,
         saturation=1.4, hue=0.03, blur_sigma=1.2),
    dict(jitter=1, hue=0.5, saturation=0.9),
    dict(jitter=1, brightness=1.6, contrast=1.3),
    dict(jitter=1, brightness=0.0, contrast=1.2, grayscale=1),
]


def _transcription(images: torch.Tensor, params: AugParams) -> torch.Tensor:
    """The op chain by hand (torchvision, image by image), mean_diff per the reference: channel mean before the
    jitter minus after it, 0 when the jitter is off; grayscale after the jitter and outside the difference."""
    out = torch.zeros(len(params), 3)
    for i in range(len(params)):
        r = params.row(i)
        x = images[i].float() / 255
        x = TF.resized_crop(x, int(r["crop_y"]), int(r["crop_x"]), int(r["crop_h"]), int(r["crop_w"]), [32, 32],
                            antialias=True)
        if r["flip"]:
            x = TF.horizontal_flip(x)
        if r["jitter"]:
            before = x.mean((1, 2))
            x = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(
                x, r["brightness"]), r["contrast"]), r["saturation"]), r["hue"])
            out[i] = before - x.mean((1, 2))
        if r["grayscale"]:
            x = TF.rgb_to_grayscale(x, 3)
    return out


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (len(ROWS), 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))


def test_mean_diff_is_measured_around_the_jitter_alone(images):
    params = _params(ROWS)
    _, measured = Augmenter("simclr").augment(images, params)
    md = measured.values[:, _COL["mean_diff_0"]:_COL["mean_diff_2"] + 1]
    assert (md - _transcription(images, params)).abs().max() <= TOL
    # grayscaled, not jittered: 0 (before this fix it was the grayscale's own mean change)
    assert torch.equal(md[1], torch.zeros(3)) and torch.equal(md[3], torch.zeros(3))
    # jittered and grayscaled: the same as the jitter alone
    alone = _params([{k: v for k, v in ROWS[i].items() if k != "grayscale"} for i in (2, 7)])
    _, p_alone = Augmenter("simclr").augment(images[[2, 7]], alone)
    assert (md[[2, 7]] - p_alone.values[:, _COL["mean_diff_0"]:_COL["mean_diff_2"] + 1]).abs().max() <= TOL
    assert md[0].abs().sum() > 1e-3                                     # the jitter did change the means


def test_mean_diff_on_drawn_views_matches_the_transcription():
    aug = Augmenter("strong")                                           # full-turn hue, grayscale p 0.2
    x = torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    _, p = aug(x, generator=torch.Generator().manual_seed(6))
    md = p.values[:, _COL["mean_diff_0"]:]
    assert (md - _transcription(x, p)).abs().max() <= TOL
    off = p["jitter"] < 0.5
    assert off.any() and (md[off] == 0).all()


def test_pipeline_order_is_jitter_then_grayscale():
    # grayscale before the jitter would make the saturation and hue no-ops; after it, the view is grey whatever
    # the jitter did: the view of (jitter, grayscale) is the grayscale of the jittered view
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    p = _params([dict(jitter=1, saturation=1.5, hue=0.2, grayscale=1)] * 2)
    aug = Augmenter("simclr", mean=0.0, std=1.0)
    v = aug.apply(x, p)
    ref = TF.rgb_to_grayscale(TF.adjust_hue(TF.adjust_saturation(x.float() / 255, 1.5), 0.2), 3)
    assert (v - ref).abs().max() <= TOL


def _hue_code(d: torch.Tensor) -> torch.Tensor:
    return d[:, [DESCRIPTOR_NAMES.index("hue_cos"), DESCRIPTOR_NAMES.index("hue_sin")]]


def test_hue_angle_code_and_identity_descriptor():
    assert len(DESCRIPTOR_NAMES) == 14 and DESCRIPTOR_NAMES[7:9] == ("hue_cos", "hue_sin")
    hues = [-0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5]
    p = _params([dict(jitter=1, hue=h) for h in hues] + [dict()])
    code = _hue_code(cassle_descriptor(p, 32, (0.4, 0.4, 0.4, 0.5)))
    want = torch.tensor([[math.cos(2 * math.pi * h) - 1, math.sin(2 * math.pi * h)] for h in hues] + [[0.0, 0.0]])
    assert (code - want).abs().max() <= TOL
    assert (code[0] - code[-2]).abs().max() <= TOL                       # h = ±0.5: the same colour, same code
    assert torch.equal(code[3], code[-1]) and torch.equal(code[-1], torch.zeros(2))   # h = 0 ≡ no jitter ≡ 0
    # the code does not depend on the jitter range (an angle needs none)
    assert torch.equal(code, _hue_code(cassle_descriptor(p, 32, (0.4, 0.4, 0.4, 0.1))))
    # the identity (what the sensitivity analysis gives the clean image): whole crop at the centre, all else 0
    ident = Augmenter("none").descriptor(Augmenter("none").sample(3, (3, 32, 32)), 32)
    want = torch.zeros(3, 14)
    want[:, :4] = torch.tensor([0.5, 0.5, 1.0, 1.0])
    assert torch.equal(ident, want)


def test_families_cover_the_14_columns_once():
    cols = sorted(c for f in DESCRIPTOR_FAMILIES.values() for c in f)
    assert cols == list(range(len(DESCRIPTOR_NAMES)))
    named = {f: [DESCRIPTOR_NAMES[c] for c in idx] for f, idx in DESCRIPTOR_FAMILIES.items()}
    assert named == {"crop": ["centre_y", "centre_x", "height", "width"],
                     "colour": ["brightness", "contrast", "saturation", "hue_cos", "hue_sin"],
                     "colour_diff": ["mean_diff_0", "mean_diff_1", "mean_diff_2"],
                     "blur": ["blur_sigma"], "grayscale": ["grayscale"]}


def _reference_layers(n_in: int, n_hidden: int, n_out: int, num_layers: int) -> list[tuple]:
    """gmum/CASSLE ``load_mlp`` with ``last_bn=True, last_bn_affine=True``, as (kind, shape, flag) rows:
    num_layers − 1 × [Linear(no bias), BatchNorm1d(affine), ReLU], Linear(no bias), BatchNorm1d(affine)."""
    rows: list[tuple] = []
    for _ in range(num_layers - 1):
        rows += [("Linear", (n_in, n_hidden), False), ("BatchNorm1d", n_hidden, True), ("ReLU", None, None)]
        n_in = n_hidden
    return rows + [("Linear", (n_in, n_out), False), ("BatchNorm1d", n_out, True)]


def _layers(seq: nn.Sequential) -> list[tuple]:
    rows = []
    for m in seq:
        if isinstance(m, nn.Linear):
            rows.append(("Linear", (m.in_features, m.out_features), m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            rows.append(("BatchNorm1d", m.num_features, m.affine))
        else:
            rows.append((type(m).__name__, None, None))
    return rows


@pytest.mark.parametrize("depth, width, families, mode", [
    (6, 64, tuple(DESCRIPTOR_FAMILIES), "concat"),                  # the reference's full setting
    (2, 32, ("crop", "colour"), "concat"),
    (3, 16, ("colour", "colour_diff"), "add"),
])
def test_descriptor_encoder_matches_the_reference_layer_list(depth, width, families, mode):
    cfg = types.SimpleNamespace(proj_hidden=16, proj_dim=8)
    head = ConditionedProjector(10, cfg, families=families, encoder_depth=depth, encoder_width=width, mode=mode)
    n_in = sum(len(DESCRIPTOR_FAMILIES[f]) for f in families)
    out = width if mode == "concat" else 10
    assert _layers(head.encoder) == _reference_layers(n_in, width, out, depth)
    assert not isinstance(head.encoder[-1], nn.ReLU)
    d = torch.randn(12, 14)
    batch = types.SimpleNamespace(descriptor=d)
    assert head.train()(torch.randn(12, 10), batch).shape == (12, 8)
    code = head.encoder(d[:, head.columns])
    assert code.mean(0).abs().max() < 1e-5                           # the final BatchNorm normalises the code


def _old_head_state(head: ConditionedProjector, n_cols: int) -> dict:
    """The state dict of a conditioned head as an earlier gpsviz made it: final encoder Linear with a bias and no
    BatchNorm after it, ``n_cols`` descriptor columns in."""
    old = nn.Sequential(*list(head.encoder)[:-2], nn.Linear(head.encoder[-2].in_features,
                                                           head.encoder[-2].out_features))
    if len(old) == 1:
        old[0] = nn.Linear(n_cols, old[0].out_features)
    else:
        old[0] = nn.Linear(n_cols, old[0].out_features, bias=False)
    state = {f"encoder.{k}": v for k, v in old.state_dict().items()}
    state.update({k: v for k, v in head.state_dict().items() if not k.startswith("encoder.")})
    return state


@pytest.mark.parametrize("depth", [1, 2, 6])
def test_an_old_13_column_head_is_refused_by_name(tmp_path, depth):
    cfg = types.SimpleNamespace(proj_hidden=16, proj_dim=8)
    head = ConditionedProjector(10, cfg, encoder_depth=depth)
    with pytest.raises(CheckpointError, match="13-column"):
        head.load_state_dict(_old_head_state(head, 13))
    # inside a whole model (prefixed keys), through the loader every checkpoint load goes through
    model = nn.ModuleDict({"projector": ConditionedProjector(10, cfg, encoder_depth=depth)})
    state = {f"projector.{k}": v for k, v in _old_head_state(model["projector"], 13).items()}
    with pytest.raises(CheckpointError, match=r"ckpt\.pt: this CASSLE run was trained with the 13-column"):
        load_state(model, state, tmp_path / "ckpt.pt", "model")
    # a current head's own state loads
    fresh = ConditionedProjector(10, cfg, encoder_depth=depth)
    fresh.load_state_dict(head.state_dict())
    load_state(model, model.state_dict(), tmp_path / "ckpt.pt", "model")


def test_ablation_switches_of_the_conditioned_head():
    """hue_code='linear' gives back the pre-fix code h/0.5 (full-turn jitter) from the angle code; last_bn=False
    drops only the encoder's final BatchNorm."""
    import math

    from gpsviz.config import TrainConfig
    from gpsviz.models.heads import ConditionedProjector, _linear_hue

    h = torch.tensor([0.0, 0.1, -0.2, 0.45, -0.45])
    d = torch.zeros(5, 14)
    d[:, 7], d[:, 8] = torch.cos(2 * math.pi * h) - 1, torch.sin(2 * math.pi * h)
    lin = _linear_hue(d)
    torch.testing.assert_close(lin[:, 7], h / 0.5, atol=1e-5, rtol=0)
    assert bool((lin[:, 8] == 0).all()) and torch.equal(lin[:, :7], d[:, :7])
    cfg = TrainConfig(proj_hidden=16, proj_dim=8)
    with_bn = ConditionedProjector(32, cfg)
    without = ConditionedProjector(32, cfg, last_bn=False, hue_code="linear")
    assert isinstance(with_bn.encoder[-1], torch.nn.BatchNorm1d)
    assert isinstance(without.encoder[-1], torch.nn.Linear) and len(without.encoder) == len(with_bn.encoder) - 1
    out = without(torch.randn(6, 32), types.SimpleNamespace(descriptor=torch.zeros(6, 14)))
    assert out.shape == (6, 8)
