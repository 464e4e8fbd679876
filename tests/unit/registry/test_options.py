"""Ingredient options (issue 18, parts 3 and 4): every option of every ingredient and prior has a declared type and
range, checked when a TrainConfig is made (one ConfigError line naming the ingredient and the option); slot
combinations that would silently ignore an ingredient are refused with the reason; the prior cache key covers
every image byte.

New names (``gpsviz.registry.Opt`` …) are imported inside the tests, so each test fails on its own point on a
tree without them."""
from __future__ import annotations

import json

import pytest
import torch

from gpsviz.config import TrainConfig
from gpsviz.errors import ConfigError


def refused(match: str | None = None, **fields) -> str:
    """The one-line message of the ConfigError that ``TrainConfig(**fields)`` raises."""
    with pytest.raises(ConfigError) as e:
        TrainConfig(**fields)
    msg = str(e.value)
    assert "\n" not in msg, msg
    if match is not None:
        for part in match.split("|"):
            assert part in msg, (part, msg)
    return msg


# ------------------------------------------------------------------ every option has a spec
def _library_factories():
    from gpsviz.recipes import _registries

    for slot, reg in _registries().items():
        for name in reg.names():
            f = reg.get(name)
            if f.__module__.split(".")[0] == "gpsviz":      # test modules may register dummies without specs
                yield slot, reg, name, f


def test_every_registered_ingredient_declares_every_option():
    from gpsviz.registry import Opt, check_values, missing_specs, option_defaults

    seen = 0
    for slot, reg, name, f in _library_factories():
        assert missing_specs(f, reg.reserved) == [], (slot, name)
        assert all(isinstance(o, Opt) for o in f.options.values()), (slot, name)
        check_values(reg.owner(name), f, option_defaults(f, reg.reserved), reg.reserved)   # defaults are valid
        seen += 1
    assert seen >= 13


def test_every_prior_declares_every_option():
    from gpsviz.priors import PRIORS
    from gpsviz.registry import Opt

    for name, spec in PRIORS.items():
        assert set(spec.options) == set(spec.defaults), name
        for k, v in spec.defaults.items():
            assert isinstance(spec.options[k], Opt)
            spec.options[k].check(f"prior {name!r}", k, v)


def test_a_library_ingredient_without_a_spec_cannot_be_registered():
    from gpsviz.registry import Opt, Registry

    reg = Registry("thing")

    class NoSpec:
        def __init__(self, width: int = 3) -> None:
            self.width = width

    NoSpec.__module__ = "gpsviz.future"
    with pytest.raises(ConfigError, match="width"):
        reg.register("nospec", NoSpec)

    class Stale:
        options = {"width": Opt(int, 1, 4), "depth": Opt(int, 1, 4)}

        def __init__(self, width: int = 3) -> None:
            self.width = width

    Stale.__module__ = "gpsviz.future"
    with pytest.raises(ConfigError, match="depth"):
        reg.register("stale", Stale)
    Stale.options = {"width": Opt(int, 1, 4)}
    reg.register("ok", Stale)
    with pytest.raises(ConfigError, match="width must be an integer in \\[1, 4\\]"):
        reg.build("ok", width=5)
    assert reg.build("ok", width=4).width == 4


# ------------------------------------------------------------------ the adversarial probe's values
PROBE = [
    # (fields, the parts the message must name)
    (dict(objective_options={"temperature": 1e-9}), "objective 'ntxent'|temperature|0.001"),
    (dict(objective_options={"temperature": True}), "objective 'ntxent'|temperature|boolean"),
    (dict(objective_options={"temperature": -0.5}), "objective 'ntxent'|temperature"),
    (dict(recipe="cissl", objective_options={"temperature": 0.0}), "objective 'cissl'|temperature"),
    (dict(recipe="swav", objective_options={"temperature": -1}), "objective 'swav'|temperature"),
    (dict(recipe="dissl", objective_options={"lam": -50}), "objective 'dissl'|lam"),
    (dict(recipe="dissl", objective_options={"student_temperature": 0}), "objective 'dissl'|student_temperature"),
    (dict(recipe="swav", objective_options={"iterations": -3}), "objective 'swav'|iterations"),
    (dict(recipe="swav", objective_options={"epsilon": 0.0}), "objective 'swav'|epsilon"),
    (dict(recipe="uota-swav", weighting_options={"eps": -1}), "weighting 'uota'|eps"),
    (dict(recipe="uota-swav", weighting_options={"start": 1.5}), "weighting 'uota'|start"),
    (dict(head_options={"last_bn": "maybe"}), "head 'mlp'|last_bn|true or false"),
    (dict(recipe="spps-simclr", positives_options={"threshold": True}), "positive source 'semantic'|threshold"),
    (dict(recipe="gps-simclr", positives_options={"prior": "pca", "fit_n": -1}), "prior 'pca'|fit_n"),
    (dict(recipe="gps-simclr", positives_options={"prior": "oracle", "prior_options": {"scale": 0}}),
     "prior 'oracle'|scale"),
    (dict(recipe="spps-simclr", positives_options={"members": 100000}), "positive source 'semantic'|members"),
    (dict(head_options={"num_layers": "abc"}), "head 'mlp'|num_layers|integer"),
    (dict(head_options={"num_layers": 0}), "head 'mlp'|num_layers"),
    (dict(recipe="uota-swav", weighting_options={"tau": "abc"}), "weighting 'uota'|tau"),
    (dict(recipe="byol", objective_options={"x": 1}), "objective 'byol'|has no option|x|predictor_lr"),
    (dict(recipe="byol", objective_options={"predictor_lr": 0.0}), "objective 'byol'|predictor_lr"),
    (dict(recipe="simclr", weighting_options={"x": 1}), "weighting 'uniform'|takes no options|x"),
    (dict(recipe="swav", objective_options={"prototypes": 10**9}), "objective 'swav'|prototypes"),
    (dict(recipe="dissl", head_options={"rank": 10**9}), "head 'lowrank'|rank"),
    (dict(recipe="cissl", objective_options={"teacher_hidden": 10**9}), "objective 'cissl'|teacher_hidden"),
    (dict(recipe="dissl", objective_options={"bottleneck": 10**9}), "objective 'dissl'|bottleneck"),
    (dict(recipe="swav", views_options={"local_views": 10**6}), "view maker 'multicrop'|local_views"),
    (dict(recipe="swav", views_options={"global_views": 10**6}), "view maker 'multicrop'|global_views"),
    (dict(recipe="spps-simclr", positives_options={"k": 10**9}), "positive source 'semantic'|k must"),
    (dict(recipe="gps-simclr", positives_options={"k": 10**9}), "positive source 'neighbours'|k must"),
    (dict(recipe="gps-simclr", positives_options={"radius": float("nan")}), "positive source 'neighbours'|radius"),
    (dict(recipe="gps-simclr", positives_options={"prior": "pca", "dim": "abc"}), "prior 'pca'|dim"),
    (dict(recipe="gps-simclr", positives_options={"prior": "pca", "whiten": "maybe"}), "prior 'pca'|whiten"),
    (dict(recipe="gps-simclr", positives_options={"prior": "autoencoder", "size": 12}), "prior 'autoencoder'|size"),
    (dict(recipe="gps-simclr", positives_options={"prior": "nope"}), "positive source 'neighbours'|prior"),
    (dict(recipe="gps-simclr", positives_options={"prior": "pca", "cell": 8}), "neighbours|cell|prior 'pca'"),
    (dict(recipe="nnclr", positives_options={"dim": 8}), "prior 'model'|dim"),
    (dict(recipe="cassle-simclr", head_options={"families": ["hue"]}), "head 'conditioned'|families"),
    (dict(recipe="cassle-simclr", head_options={"mode": "sum"}), "head 'conditioned'|mode"),
    (dict(recipe="swav", views_options={"local_scale": (0.5, 0.2)}), "view maker 'multicrop'|local_scale|low < high"),
    (dict(recipe="swav", views_options={"local_scale": (0.0, 0.2)}), "view maker 'multicrop'|local_scale"),
    (dict(recipe="swav", views_options={"local_scale": (0.1, 1.5)}), "view maker 'multicrop'|local_scale"),
    (dict(recipe="swav", views_options={"global_scale": "big"}), "view maker 'multicrop'|global_scale"),
]


@pytest.mark.parametrize("fields,parts", PROBE, ids=[str(i) for i in range(len(PROBE))])
def test_bad_option_values_are_refused_when_the_config_is_made(fields, parts):
    refused(parts, **fields)


def test_cli_option_strings_are_checked():
    """What ``--head-opt``/``--weighting-opt``/``--pos`` hand over: ast.literal_eval's value, else the string."""
    from gpsviz.cli import _kv

    refused("head 'mlp'|num_layers", head_options=_kv(["num_layers=abc"], "--head-opt"))
    refused("weighting 'uota'|tau", recipe="uota-swav", weighting_options=_kv(["tau=abc"], "--weighting-opt"))
    refused("objective 'ntxent'|temperature", objective_options=_kv(["temperature=1e-9"], "--objective-opt"))
    refused("positive source 'semantic'|members", recipe="spps-simclr",
            positives_options=_kv(["members=100000"], "--pos"))


def test_bool_words_are_booleans_never_truthy_strings():
    """``--head-opt last_bn=false`` arrives as the string "false": it must not switch BatchNorm on."""
    from torch import nn

    from gpsviz.models.heads import build_head

    cfg = TrainConfig(recipe="cissl", head_options={"last_bn": "false"})
    head = build_head(cfg.head, 32, cfg, **cfg.head_options)
    assert not isinstance(head.mlp.net[-1], nn.BatchNorm1d)
    cfg = TrainConfig(head_options={"last_bn": "true"})
    assert isinstance(build_head(cfg.head, 32, cfg, **cfg.head_options).mlp.net[-1], nn.BatchNorm1d)
    from gpsviz.registry import Opt

    assert Opt(bool).check("x", "flag", "no") is False and Opt(bool).check("x", "flag", 1) is True
    for bad in ("maybe", 2, 0.5, None, [True]):
        with pytest.raises(ConfigError, match="flag must be true or false"):
            Opt(bool).check("x", "flag", bad)


def test_numbers_refuse_bools_strings_and_non_finite():
    from gpsviz.registry import Opt

    f, i = Opt(float, 0.0, 1.0), Opt(int, 1, 10)
    for bad in (True, False, "0.5", float("nan"), float("inf"), None, [0.5]):
        with pytest.raises(ConfigError):
            f.check("x", "v", bad)
    for bad in (True, 2.0, "3", 0, 11, None):
        with pytest.raises(ConfigError):
            i.check("x", "v", bad)
    assert f.check("x", "v", 1) == 1.0 and i.check("x", "v", 10) == 10
    assert Opt(float, 0, 1, optional=True).check("x", "v", None) is None
    assert Opt(float, 0, None, also=("adaptive",)).check("x", "v", "adaptive") == "adaptive"


def test_ingredients_built_directly_check_the_same_specs(tmp_path):
    """The constructor checks its own spec too (notebooks build ingredients without a TrainConfig)."""
    from gpsviz.augment.views import MultiCrop, build_views
    from gpsviz.objectives import DISSLObjective, NTXentObjective, SwAVObjective, UOTAWeighting, build_objective
    from gpsviz.positives import NeighbourPositives, SemanticSetPositives

    for make, part in [(lambda: SwAVObjective(iterations=-3), "iterations"),
                       (lambda: SwAVObjective(prototypes=True), "prototypes"),
                       (lambda: DISSLObjective(lam=-50), "lam"), (lambda: NTXentObjective(temperature=0), "temperature"),
                       (lambda: UOTAWeighting(eps=-1), "eps"), (lambda: MultiCrop(global_views=1, local_views=0),
                                                                  "global_views"),
                       (lambda: SemanticSetPositives(members=100000), "members"),
                       (lambda: NeighbourPositives(prior="pca", fit_n=-1), "fit_n"),
                       (lambda: NeighbourPositives(prior="pca", prior_options={"dim": 0}), "dim"),
                       (lambda: build_objective("byol", x=1), "has no option"),
                       (lambda: build_views("standard", local_views=3), "local_views")]:
        with pytest.raises(ConfigError, match=part):
            make()
    src = NeighbourPositives(prior="pca", prior_options={"whiten": "yes"}, include_anchor="no")
    assert src.prior_options == {"whiten": True} and src.include_anchor is False


def test_prior_values_are_checked_by_compute_prior(tmp_path):
    from gpsviz.data import make_shapes
    from gpsviz.priors import compute_prior

    ds = make_shapes(20, seed=0)
    for opts, part in [({"fit_n": -1}, "fit_n"), ({"dim": 0}, "dim"), ({"dim": 2.5}, "dim"), ({"seed": -1}, "seed")]:
        with pytest.raises(ConfigError, match=f"prior 'pca': {part} must"):
            compute_prior("pca", ds, root=tmp_path, **opts)
    with pytest.raises(ConfigError, match="prior 'oracle': scale must"):
        compute_prior("oracle", ds, root=tmp_path, scale=0)
    with pytest.raises(ConfigError, match="prior 'hog': cell must"):
        compute_prior("hog", ds, root=tmp_path, cell=[8, 0])
    assert compute_prior("hog", ds, root=tmp_path, cell=[8, 16], progress=False).shape[0] == 20


# ------------------------------------------------------------------ combinations the ingredients cannot honour
@pytest.mark.parametrize("objective,extra", [("byol", {}), ("swav", {"views": "multicrop"}),
                                              ("dissl", {"head": "lowrank"})])
def test_label_positives_with_instance_objectives_are_refused(objective, extra):
    msg = refused(f"positives 'labels'|objective '{objective}'|instance_ids|group_ids", recipe="supcon",
                  objective=objective, **extra)
    assert "ntxent" in msg and "cissl" in msg                                  # what would honour them


def test_the_refusal_rests_on_what_the_plans_really_carry():
    """``positives_in`` tells the truth: a plan field a source does not list equals plain ``self``'s (labels'
    instance ids and rows are self's, so an objective reading only those trains exactly like plain SSL)."""
    from gpsviz.positives import LabelPositives, SelfPositives

    anchors = torch.tensor([0, 1, 2, 3, 4, 5])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    lab, plain = LabelPositives(labels=labels).plan(anchors), SelfPositives().plan(anchors)
    assert LabelPositives.positives_in == ("group_ids",)
    assert torch.equal(lab.instance_ids, plain.instance_ids) and torch.equal(lab.rows, plain.rows)
    assert not torch.equal(lab.group_ids, plain.group_ids)
    from gpsviz.objectives import OBJECTIVES

    assert {n for n in OBJECTIVES.names() if OBJECTIVES.get(n).positives_from == ("instance_ids",)} >= \
        {"byol", "swav", "dissl"}
    assert set(OBJECTIVES.get("ntxent").positives_from) == {"group_ids"} == set(OBJECTIVES.get("cissl").positives_from)


def test_honoured_combinations_and_every_recipe_still_work():
    from gpsviz.recipes import RECIPES

    for name in RECIPES:
        TrainConfig(recipe=name)
    for fields in [dict(recipe="supcon", objective="cissl"), dict(recipe="gps-byol"), dict(recipe="spps-byol"),
                   dict(recipe="gps-simclr", objective="swav", views="multicrop"),
                   dict(recipe="spps-simclr", objective="dissl", head="lowrank"),
                   dict(recipe="supcon", views="multicrop", weighting="uota"),
                   dict(views="multicrop", views_options={"global_views": 1, "local_views": 1}),
                   dict(recipe="spps-simclr", views="multicrop", views_options={"global_views": 3, "local_views": 0}),
                   dict(recipe="gps-simclr", views="multicrop", views_options={"global_views": 1, "local_views": 2})]:
        TrainConfig(**fields)


def test_one_view_per_instance_is_refused():
    refused("view maker 'multicrop'|global_views=1|local_views=0|at least 2", views="multicrop",
            views_options={"global_views": 1, "local_views": 0})
    refused("view maker 'multicrop'|at least 2", recipe="swav", views_options={"global_views": 1, "local_views": 0})


def test_views_that_skip_the_positive_slots_are_refused():
    """SPPS plans 2 + members slots per anchor; multi-crop makes view i from slot i mod S, so fewer views than
    slots never show the set members (and one global + one local view never shows a GPS partner)."""
    refused("views 'multicrop'|positives 'semantic'|3", recipe="spps-simclr", views="multicrop",
            views_options={"global_views": 2, "local_views": 0})
    refused("views 'multicrop'|positives 'neighbours'", recipe="gps-byol", views="multicrop",
            views_options={"global_views": 1, "local_views": 1})
    refused("positives 'semantic'", recipe="spps-byol", views="multicrop", positives_options={"members": 3},
            views_options={"global_views": 2, "local_views": 4})


def test_a_recipe_that_cannot_be_honoured_cannot_be_registered():
    from gpsviz.recipes import RECIPES, Recipe, register_recipe

    with pytest.raises(ConfigError, match="recipe 'test-labels-byol'.*labels"):
        register_recipe(Recipe("test-labels-byol", "x", positives="labels", objective="byol"))
    with pytest.raises(ConfigError, match="recipe 'test-bad-temp'.*temperature"):
        register_recipe(Recipe("test-bad-temp", "x", objective_options={"temperature": 0}))
    assert "test-labels-byol" not in RECIPES and "test-bad-temp" not in RECIPES


def test_options_survive_the_json_round_trip_of_config_json():
    for name in ("swav", "uota-simclr", "cissl", "cassle-simclr"):
        cfg = TrainConfig(recipe=name, head_options={"families": ("crop", "colour")} if name == "cassle-simclr"
                          else {})
        again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))   # tuples come back as lists
        assert again.views_options == json.loads(json.dumps(cfg.views_options))


# ------------------------------------------------------------------ the prior cache key
def test_dataset_key_covers_every_image():
    """Above 32 MB of pixels the old key hashed a strided sample: one changed image kept the key (and the cached
    prior of the other dataset was used)."""
    from gpsviz.data import ImageDataset
    from gpsviz.priors import dataset_key

    n = 6000                                                          # 6000 × 3×64×64 = 74 MB
    images = torch.zeros(n, 3, 64, 64, dtype=torch.uint8)
    a = ImageDataset(images=images, labels=torch.zeros(n, dtype=torch.long), classes=["a"])
    other = images.clone()
    other[1, 0, 0, 0] = 1                                             # one pixel of one image
    b = ImageDataset(images=other, labels=torch.zeros(n, dtype=torch.long), classes=["a"])
    assert dataset_key(a) != dataset_key(b)
    assert dataset_key(a) == dataset_key(ImageDataset(images=images.clone(), labels=torch.zeros(n, dtype=torch.long),
                                                      classes=["a"]))
