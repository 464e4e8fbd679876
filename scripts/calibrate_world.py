"""Calibrate the shapes world: train one config, probe shape and colour linearly, print one table row.

Each call is one row of the world ablation (issue 8). World and augmentation changes are given as JSON
overrides of the default world variant and of an augmentation preset, so a row can be re-run exactly::

    PYTHONPATH=$PWD .venv/bin/python scripts/calibrate_world.py --label "default" --recipe simclr
    ... --world '{"scale_range": [0.25, 0.4]}' --preset '{"hue": 0.5}' --temperature 0.1 --epochs 20

Rows are appended to ``--log`` (default ``data/calibrate_world.md``) as a Markdown table row:
``| label | recipe | aug | settings | shape % | colour % | train wall s | train CPU s | total wall s |``
(CPU s = process CPU time of all threads: on a shared machine the wall time depends on the load, the CPU time
much less).
``--floors`` prints the raw-pixel and random-init probes of the same data instead of training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", default="")
    ap.add_argument("--recipe", default="simclr")
    ap.add_argument("--aug", default="strong")
    ap.add_argument("--variant", default=None, help="base world variant (default: the default world)")
    ap.add_argument("--world", default="{}", help="JSON overrides of the WorldVariant fields")
    ap.add_argument("--preset", default="{}", help="JSON overrides of the augmentation preset's fields")
    ap.add_argument("--n", type=int, default=10000, help="training images")
    ap.add_argument("--n-test", type=int, default=2000, help="test images (probe)")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--strength", type=float, default=None)
    ap.add_argument("--backbone-width", type=int, default=None, help="small-cnn width (patched in for this run)")
    ap.add_argument("--floors", action="store_true", help="probe raw pixels and a random-init backbone instead")
    ap.add_argument("--cfg", default="{}", help="JSON of further TrainConfig fields (e.g. momentum_base)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--extra", default="", help="more probe targets, comma-separated (e.g. bg_kind,position): "
                                                "appended to the row as 'target=acc'")
    ap.add_argument("--log", default="data/calibrate_world.md")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)

    from gpsviz.augment import config as aug_config
    from gpsviz.config import TrainConfig
    from gpsviz.data import shapes
    from gpsviz.evaluate import Features, extract, linear_probe
    from gpsviz.train import train

    world = json.loads(a.world)
    base = shapes.world_variant(a.variant or shapes.DEFAULT_VARIANT)
    spec = dataclasses.replace(base, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in world.items()})
    shapes.WORLD_VARIANTS["_calib"] = spec
    preset = json.loads(a.preset)
    if preset:
        key = a.aug.lower().replace("_", "-")
        aug_config.PRESETS[key] = {**aug_config.PRESETS[key],
                                   **{k: (tuple(v) if isinstance(v, list) else v) for k, v in preset.items()}}
    if a.backbone_width:
        from gpsviz.models import backbones
        w = a.backbone_width
        backbones._BACKBONES["small-cnn"] = lambda in_channels=3, width=w: backbones.SmallCNN(in_channels, width)

    t0 = time.perf_counter()
    tr = shapes.make_shapes(a.n, seed=1000 + a.data_seed, variant="_calib")
    te = shapes.make_shapes(a.n_test, seed=2000 + a.data_seed, variant="_calib")
    tr.split, te.split = "train", "test"
    t_data = time.perf_counter() - t0

    fields = dict(recipe=a.recipe, aug=a.aug, seed=a.seed, eval_every=0)
    for k, v in (("epochs", a.epochs), ("batch_size", a.batch), ("lr", a.lr), ("temperature", a.temperature),
                 ("strength", a.strength)):
        if v is not None:
            fields[k] = v
    fields.update(json.loads(a.cfg))
    cfg = TrainConfig(**fields)

    t1, c1 = time.perf_counter(), time.process_time()
    rows = []
    if a.floors:
        from gpsviz.models import build_backbone
        flat = lambda ds: (ds.images.float().flatten(1) / 255.0)  # noqa: E731
        probes = {"raw pixels": (Features(flat(tr), tr), Features(flat(te), te))}
        torch.manual_seed(a.seed)
        rnd = build_backbone(cfg.backbone, in_channels=tr.channels)
        probes["random init"] = (extract(rnd, tr, device="cpu"), extract(rnd, te, device="cpu"))
        for name, (f_tr, f_te) in probes.items():
            rows.append((name, linear_probe(f_tr, f_te, "label")["test_acc"],
                         linear_probe(f_tr, f_te, "colour")["test_acc"]))
            if a.extra:
                print(f"{name}: " + " ".join(f"{t}={100 * linear_probe(f_tr, f_te, t)['test_acc']:.1f}"
                                            for t in a.extra.split(",")), flush=True)
        t_train = cpu_train = 0.0
    else:
        with tempfile.TemporaryDirectory() as d:
            run = train(cfg, d, data=(tr, te), progress=False)
            t_train = time.perf_counter() - t1
            cpu_train = time.process_time() - c1
            bb = run.model.backbone.eval()
            ftr, fte = extract(bb, tr, device="cpu"), extract(bb, te, device="cpu")
        rows.append((a.label, linear_probe(ftr, fte, "label")["test_acc"], linear_probe(ftr, fte, "colour")["test_acc"]))
    extra = ""
    if a.extra and not a.floors:
        extra = " " + " ".join(f"{t}={100 * linear_probe(ftr, fte, t)['test_acc']:.1f}" for t in a.extra.split(",")) + " |"
    total = time.perf_counter() - t0
    settings = {k: v for k, v in dict(world=world, preset=preset, epochs=cfg.epochs, batch=cfg.batch_size, lr=cfg.lr,
                                      tau=cfg.temperature, strength=cfg.strength, n=a.n, seed=a.seed,
                                      width=a.backbone_width, variant=a.variant, cfg=json.loads(a.cfg)).items()
                if v not in ({}, None)}
    out = []
    for label, shape_acc, colour_acc in rows:
        line = (f"| {label} | {a.recipe} | {a.aug} | `{json.dumps(settings)}` | {100 * shape_acc:.1f} | "
                f"{100 * colour_acc:.1f} | {t_train:.0f} | {cpu_train:.0f} | {total:.0f} |{extra}")
        print(line, flush=True)
        out.append(line)
    log = Path(a.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write("\n".join(out) + "\n")
    return {"rows": rows, "train_s": t_train, "data_s": t_data}


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main(sys.argv[1:])
