"""CASSLE ablation (issue 19): one row per change of the conditioned projector, at the budget of
``reproduce cassle --scale small`` (the library's default: 10,000 shapes images, 10 epochs, batch 128, AdamW 2e-3,
float32, ``strong`` preset), probed on the frozen backbone: shape, colour and their conjunction, linear and kNN.

Rows (each a ``cassle-simclr`` run that differs from the reference-faithful default in one head option):

    reference       the defaults: hue as an angle, colour_diff around the jitter only, encoder's final BN
    hue linear      hue_code=linear (the pre-fix 2h code with its cut at ±0.5 turn)
    no final BN     last_bn=False
    no colour_diff  families without colour_diff (the channel means before − after the jitter)
    no colour       families without colour and colour_diff: the projector cannot undo the jitter
    crop only       families=crop

plus SimCLR, SupCon and the floors at the same budget. The runs are the reproduction's cells (``run_cell``), so
the SimCLR and reference rows are shared with ``reproduce cassle --scale small`` when ``--out`` points at its
folder. Usage (repository root; about 1–1.5 min per run on a 2-core CPU):

    .venv/bin/python scripts/cassle_ablation.py [--seeds 1] [--out data/reproduce/cassle-small]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpsviz.experiments.cassle import AUG, TARGETS  # noqa: E402
from gpsviz.experiments.grid import Cell, floor_rows, format_table, run_cell, summarise  # noqa: E402

FAMILIES = ("crop", "colour", "colour_diff", "blur", "grayscale")
ROWS = (
    ("SimCLR", "simclr", {}),
    ("CASSLE reference", "cassle-simclr", {}),
    ("CASSLE hue linear", "cassle-simclr", {"hue_code": "linear"}),
    ("CASSLE no final BN", "cassle-simclr", {"last_bn": False}),
    ("CASSLE no colour_diff", "cassle-simclr", {"families": [f for f in FAMILIES if f != "colour_diff"]}),
    ("CASSLE no colour", "cassle-simclr", {"families": ["crop", "blur", "grayscale"]}),
    ("CASSLE crop only", "cassle-simclr", {"families": ["crop"]}),
    ("SupCon (ceiling)", "supcon", {}),
)
METRICS = ["linear_label", "knn_label", "linear_colour", "knn_colour", "linear_label×colour", "knn_label×colour"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--out", default="data/reproduce/cassle-small")
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = []
    for seed in range(args.seeds):
        for name, recipe, head in ROWS:
            tag = "-".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}" for k, v in head.items())
            cell = Cell(name, recipe, AUG["shapes"], "shapes", overrides={"head_options": head} if head else {},
                        experiment="cassle", tag=tag.replace("=", "-"))
            res = run_cell(cell, "small", seed, out, targets=TARGETS)
            print(f"{name} seed {seed}: " + ", ".join(f"{m} {100 * res[m]:.1f}" for m in METRICS), flush=True)
            rows.append({**res, "name": name, "dataset": "shapes", "aug": cell.aug, "seed": seed})
        rows.extend(floor_rows("shapes", "small", seed, out, None, "cassle", targets=TARGETS))
    text = format_table(summarise(rows, METRICS), METRICS)
    (out / "ablation.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
