"""Accuracy against epochs for SimCLR and BYOL (issue 20): does BYOL catch up with SimCLR, and when?

Both train on the default shapes world at the library's default settings (10,000 images, batch 128, AdamW 2e-3,
the ``strong`` preset, float32) for ``--epochs`` (50), one seed. The online kNN accuracy of the shape class on the
held-out split is measured after every epoch (``eval_every=1``, part of each run's history); the linear probe of
the frozen backbone after the last epoch. The cosine schedule spans the whole run, so epoch e of a 50-epoch run is
not a 10-epoch run stopped early: the curve says how the methods learn over a longer schedule, the table's
10-epoch point of ``reproduce baselines`` says where each stands at the default budget.

Writes ``<out>/curve.md`` (kNN per epoch, the epoch where BYOL first reaches SimCLR's accuracy at 10 and at 50
epochs, the final linear probes) and ``<out>/curve.png``. Usage (repository root; about 6 min for SimCLR and 8 for
BYOL on a 2-core CPU):

    .venv/bin/python scripts/byol_curve.py [--epochs 50] [--out data/reproduce/byol-curve]
    .venv/bin/python scripts/byol_curve.py --knobs      # BYOL's own knobs at 10 epochs (KNOBS), one seed each
    .venv/bin/python scripts/byol_curve.py --spps       # SPPS-BYOL beside BYOL at 10 epochs (SPPS), one seed
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpsviz.config import TrainConfig  # noqa: E402
from gpsviz.experiments.grid import read_finished, save_figure  # noqa: E402
from gpsviz.runs import evaluate_run  # noqa: E402
from gpsviz.train import train  # noqa: E402
from gpsviz.utils import atomic_write_json  # noqa: E402

METHODS = (("SimCLR", "simclr"), ("BYOL", "byol"))


#: ``--knobs``: BYOL at the default 10 epochs with one of its own recipe's knobs changed (one seed each).
KNOBS = (("BYOL (defaults)", {}),
         ("projector ends in BatchNorm", {"head_options": {"last_bn": True}}),
         ("warm-up 3 epochs", {"warmup_epochs": 3.0}),
         ("LARS, lr 1.0", {"optimizer": "lars", "lr": 1.0, "weight_decay": 1e-6}),
         ("target momentum 0.996 (BYOL paper)", {"momentum_base": 0.996}),
         ("predictor lr ×10", {"objective_options": {"predictor_lr": 10.0}}))
#: ``--spps``: SPPS-BYOL beside BYOL at the default 10 epochs (one seed; sets mined with the grid HOG prior and the
#: default 0.75-quantile rule, as ``reproduce spps`` does on shapes), with the 3-view control of ``reproduce spps``.
SPPS = (("BYOL", "byol", {}, "knob0"),
        ("BYOL, 3 views (control: every set empty)", "spps-byol",
         {"positives_options": {"prior": "hog", "threshold": 1.0}}, "3views"),
        ("SPPS-BYOL (hog sets)", "spps-byol", {"positives_options": {"prior": "hog"}}, ""))


def run(recipe: str, epochs: int, out: Path, tag: str = "", **overrides) -> dict:
    cfg = TrainConfig(recipe=recipe, epochs=epochs, precision="fp32", eval_every=1, **overrides)
    run_dir = out / "runs" / f"{recipe}-e{epochs}{'-' + tag if tag else ''}-s0"
    res = read_finished(run_dir, cfg)
    if res is None:
        r = train(cfg, run_dir, resume=(run_dir / "checkpoint.pt").exists())
        res = {**evaluate_run(run_dir, targets=["label"], write=False), "config": cfg.to_dict(), "history": r.history}
        atomic_write_json(run_dir / "results.json", res)
    return res


def first_reaching(curve: list[float], level: float) -> int | None:
    """The first epoch (1-based) whose accuracy is ≥ level, or None."""
    return next((i + 1 for i, v in enumerate(curve) if v >= level), None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--out", default="data/reproduce/byol-curve")
    ap.add_argument("--knobs", action="store_true", help="BYOL's own knobs at 10 epochs instead of the curve")
    ap.add_argument("--spps", action="store_true", help="SPPS-BYOL beside BYOL at 10 epochs instead of the curve")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.spps:
        lines = ["| 10 epochs, seed 0 | linear | kNN (online, last epoch) |", "|---|---|---|"]
        for name, recipe, over, tag in SPPS:
            r = run(recipe, 10, out, tag=tag, **over)
            lines.append(f"| {name} | {100 * r['linear_label']:.1f} | {100 * r['history'][-1]['knn_acc']:.1f} |")
        (out / "spps.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    if args.knobs:
        lines = ["| BYOL, 10 epochs, seed 0 | linear | kNN (online, last epoch) |", "|---|---|---|"]
        for i, (name, over) in enumerate(KNOBS):
            r = run("byol", 10, out, tag=f"knob{i}", **over)
            lines.append(f"| {name} | {100 * r['linear_label']:.1f} | {100 * r['history'][-1]['knn_acc']:.1f} |")
        (out / "knobs.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    results = {name: run(recipe, args.epochs, out) for name, recipe in METHODS}
    curves = {n: [100 * h["knn_acc"] for h in r["history"]] for n, r in results.items()}
    lines = ["| epoch | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    for e in range(args.epochs):
        if e + 1 in (1, 2, 3, 5) or (e + 1) % 5 == 0:
            lines.append(f"| {e + 1} | " + " | ".join(f"{c[e]:.1f}" for c in curves.values()) + " |")
    s, b = curves["SimCLR"], curves["BYOL"]
    ref = min(10, len(s))                                    # SimCLR's accuracy at the default 10 epochs
    text = ("Online kNN accuracy (%) of the shape class on the held-out split, one seed:\n\n" + "\n".join(lines)
            + f"\n\nBYOL first reaches SimCLR's epoch-{ref} kNN ({s[ref - 1]:.1f} %) at epoch "
            f"{first_reaching(b, s[ref - 1]) or 'never'}; its own best is {max(b):.1f} % (SimCLR's {max(s):.1f} %).\n"
            + "Linear probe after the last epoch: " + ", ".join(
                f"{n} {100 * r['linear_label']:.1f} %" for n, r in results.items()) + ".\n")
    (out / "curve.md").write_text(text)
    print(text)

    def figure():
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 3.8))
        for n, c in curves.items():
            ax.plot(range(1, len(c) + 1), c, label=n)
        ax.set_xlabel("epoch")
        ax.set_ylabel("online kNN accuracy (%)")
        ax.set_title(f"SimCLR vs BYOL over {args.epochs} epochs (shapes, one seed)")
        ax.legend()
        ax.grid(alpha=0.3)
        return fig

    save_figure(out / "curve.png", figure)


if __name__ == "__main__":
    main()
