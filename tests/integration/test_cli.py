"""The command line: user errors are one clear line (exit 2), a tiny train + evaluate round trip works."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpsviz.cli import main


@pytest.mark.parametrize("argv,needle", [
    (["train", "--recipe", "simclrr"], "recipe 'simclrr' is unknown"),
    (["train", "--epochs", "-3"], "epochs=-3"),
    (["train", "--aug", "medium"], "aug='medium'"),
    (["train", "--data", "imagenet22k", "--epochs", "1"], "imagenet22k"),
    (["train", "--data-opt", "n=64", "--batch-size", "100", "--epochs", "1"], "larger than the training data"),
    (["evaluate", "/nonexistent/run"], "no checkpoint"),
])
def test_user_errors_are_one_line(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv + (["--out", str(tmp_path / "r")] if argv[0] == "train" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_train_then_evaluate_round_trip(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--recipe", "simclr", "--data-opt", "n=256", "--epochs", "1", "--batch-size", "64",
               "--out", str(out), "--no-eval", "--device", "cpu"])
    assert rc == 0
    assert main(["train", "--out", str(out), "--data-opt", "n=256", "--epochs", "1"]) == 2  # refuses to overwrite
    assert main(["evaluate", str(out), "--targets", "label,colour"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert 0 <= res["linear_label"] <= 1 and 0 <= res["knn_colour"] <= 1


def test_module_entry_point_lists_recipes():
    p = subprocess.run([sys.executable, "-m", "gpsviz", "list"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "gps-simclr" in p.stdout and "shapes" in p.stdout
