"""Reliability round 3 (issue 18): no run lost, no nonsense accepted, provenance recorded.

Each test here failed on the main of 3cd9920 (checked by running this file against that checkout)."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import edited_copy, tiny_cfg

from gpsviz.callbacks import Callback
from gpsviz.checkpoint import load_checkpoint
from gpsviz.errors import CheckpointError, ConfigError, DataError, GpsvizError
from gpsviz.runs import evaluate_run
from gpsviz.train import TrainingDiverged, train


# ------------------------------------------------------------------------------------------------ data loss
def test_train_api_refuses_to_replace_a_finished_run(tiny_pair, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(), out, progress=False, data=tiny_pair)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(GpsvizError, match="already holds a run"):
        train(tiny_cfg(seed=1), out, progress=False, data=tiny_pair)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_results_of_an_earlier_model_are_dropped(tiny_pair, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(), out, progress=False, data=tiny_pair)
    first = evaluate_run(out, targets=["label"], probes=["knn", "linear"], data=tiny_pair)
    (out / "checkpoint.pt").unlink()                       # the user retrains into the folder
    train(tiny_cfg(seed=5), out, progress=False, data=tiny_pair)
    assert not (out / "results.json").exists()            # the fresh training removed the old model's results
    evaluate_run(out, targets=["label"], probes=["knn"], data=tiny_pair)
    saved = json.loads((out / "results.json").read_text())
    assert "knn_label" in saved and "linear_label" not in saved
    assert saved["checkpoint"] != first["checkpoint"]


def test_results_written_by_an_older_checkpoint_are_not_merged(tiny_pair, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(epochs=2), out, progress=False, data=tiny_pair, stop_after=1)
    evaluate_run(out, targets=["label"], probes=["linear"], data=tiny_pair)
    train(tiny_cfg(epochs=2), out, resume=True, progress=False, data=tiny_pair)   # the model changes
    res = evaluate_run(out, targets=["label"], probes=["knn"], data=tiny_pair)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved) >= {"knn_label", "checkpoint"} and "linear_label" not in saved
    assert saved["checkpoint"] == res["checkpoint"] and saved["epoch"] == 2


def _tiny_grid(monkeypatch, tmp_path):
    """The framework (grid), with a one-cell baselines grid at a tiny smoke scale, and ``reproduce`` on it."""
    import types

    import gpsviz.experiments.baselines as B
    import gpsviz.experiments.grid as G
    from gpsviz.reproduce import reproduce

    monkeypatch.setenv("GPSVIZ_DATA", str(tmp_path / "data"))
    smoke = dict(G.SCALES["smoke"], common=dict(data_options={"n": 96}, batch_size=32, eval_size=40,
                                                proj_hidden=32, proj_dim=16, precision="fp32"))
    monkeypatch.setitem(G.SCALES, "smoke", smoke)
    monkeypatch.setattr(B, "experiment_cells", lambda experiment, datasets=None: [
        G.Cell("SimCLR", "simclr", "strong", experiment=experiment)])
    return types.SimpleNamespace(SCALES=G.SCALES, Cell=G.Cell, run_cell=G.run_cell, reproduce=reproduce)


def test_a_second_reproduce_with_other_settings_keeps_the_first(monkeypatch, tmp_path):
    R = _tiny_grid(monkeypatch, tmp_path)
    R.reproduce("baselines", scale="smoke", seeds=1, progress=False)
    first = tmp_path / "data" / "reproduce" / "baselines-smoke"
    files = {p: p.read_bytes() for p in first.rglob("*") if p.is_file() and p.suffix in (".md", ".json", ".pt")}
    assert (first / "table.md") in files
    R.reproduce("baselines", scale="smoke", seeds=1, epochs=2, progress=False)
    assert {p: p.read_bytes() for p in files} == files     # nothing of the first grid was rewritten
    second = tmp_path / "data" / "reproduce" / "baselines-smoke-epochs2"
    assert (second / "table.md").exists()
    res = json.loads(next((second / "runs").glob("shapes-simclr-*/results.json")).read_text())
    assert res["config"]["epochs"] == 2
    with pytest.raises(ConfigError, match="other settings"):   # an explicit --out of another grid is refused
        R.reproduce("baselines", scale="smoke", seeds=1, epochs=3, out=first, progress=False)
    assert {p: p.read_bytes() for p in files} == files


def test_a_finished_cell_of_another_config_is_never_retrained_in_place(monkeypatch, tmp_path):
    R = _tiny_grid(monkeypatch, tmp_path)
    cell = R.Cell("SimCLR", "simclr", "strong", experiment="baselines")
    R.run_cell(cell, "smoke", 0, tmp_path / "grid", progress=False)
    run = next((tmp_path / "grid" / "runs").iterdir())
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match="other settings"):
        R.run_cell(cell, "smoke", 0, tmp_path / "grid", epochs=2, progress=False)
    assert (run / "checkpoint.pt").read_bytes() == before
    (run / "results.json").write_text('{"truncat')             # unreadable results: evaluated again, no traceback
    assert R.run_cell(cell, "smoke", 0, tmp_path / "grid", progress=False)["config"]["epochs"] == 1


def test_reproduce_datasets_are_honoured_or_refused():
    from gpsviz.experiments.baselines import experiment_cells
    from gpsviz.reproduce import reproduce

    assert {c.data for c in experiment_cells("baselines", ["fashion-mnist"])} == {"fashion-mnist"}
    for experiment in ("gps-priors", "precision"):
        with pytest.raises(ConfigError, match="datasets"):
            reproduce(experiment, scale="smoke", datasets="fashion-mnist", progress=False)


# ------------------------------------------------------------------------------------------ nonsense accepted
class _PoisonBatchNorm(Callback):
    """Writes NaN into the first BatchNorm running_var after the last step (the loss stays finite)."""

    def __init__(self, model_holder):
        self.holder = model_holder

    def on_step(self, batch, out):
        for m in self.holder["model"].modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.fill_(float("nan"))
                return


def test_non_finite_buffers_stop_the_run_and_no_checkpoint_is_written(tiny_pair, tmp_path, monkeypatch):
    import gpsviz.train as T

    holder: dict = {}
    real = T._Loop.__init__

    def grab(self, *a, **k):
        real(self, *a, **k)
        holder["model"] = self.model
    monkeypatch.setattr(T._Loop, "__init__", grab)
    with pytest.raises(TrainingDiverged, match="No checkpoint was written") as e:
        train(tiny_cfg(), tmp_path / "run", progress=False, data=tiny_pair, callbacks=[_PoisonBatchNorm(holder)])
    assert "running_var" in str(e.value)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_checkpoint_with_non_finite_weights_is_refused(tiny_run, tmp_path):
    def poison(ck):
        name = next(k for k in ck["backbone"] if k.endswith("running_var"))
        ck["backbone"][name][0] = float("inf")
    bad = edited_copy(tiny_run, tmp_path / "bad", poison)
    with pytest.raises(CheckpointError, match="NaN/inf"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="NaN/inf"):
        evaluate_run(bad, probes=["knn"], targets=["label"])


def test_resume_on_other_data_is_refused(tiny_pair, tmp_path):
    from gpsviz.data import make_shapes

    out = tmp_path / "run"
    train(tiny_cfg(epochs=2), out, progress=False, data=tiny_pair, stop_after=1)
    other = (make_shapes(192, seed=11), tiny_pair[1])
    with pytest.raises(ConfigError, match="other data"):
        train(tiny_cfg(epochs=2), out, resume=True, progress=False, data=other)
    assert load_checkpoint(out)["epoch"] == 1


def test_train_or_resume_with_other_data_does_not_return_the_old_run(tiny_pair, tmp_path):
    from gpsviz.data import make_shapes
    from gpsviz.runs import train_or_resume

    train_or_resume(tiny_cfg(), "nb", root=tmp_path, progress=False, data=tiny_pair)
    with pytest.raises(ConfigError, match="other data"):
        train_or_resume(tiny_cfg(), "nb", root=tmp_path, progress=False, data=(make_shapes(192, seed=12),
                                                                             tiny_pair[1]))


def test_a_cpu_run_resumes_with_device_auto(tiny_pair, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(epochs=2), out, progress=False, data=tiny_pair, stop_after=1)
    if torch.cuda.is_available():
        pytest.skip("auto is CUDA here; the point is a device choice that resolves to the same computation")
    run = train(tiny_cfg(epochs=2, device="auto"), out, resume=True, progress=False, data=tiny_pair)
    assert len(run.history) == 2


def test_tilde_out_is_expanded_for_writing_too(tiny_pair, tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    train(tiny_cfg(), "~/x", progress=False, data=tiny_pair)
    assert (home / "x" / "checkpoint.pt").exists()
    assert not (cwd / "~").exists()


def test_the_cli_expands_a_quoted_tilde(tmp_path, monkeypatch, capsys):
    from gpsviz.cli import main

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GPSVIZ_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(cwd)
    assert main(["train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32", "--no-eval", "--device",
                 "cpu", "--out", "~/x"]) == 0
    assert (home / "x" / "checkpoint.pt").exists() and not (cwd / "~").exists()


# ------------------------------------------------------------------------------------------------ tracebacks
def test_evaluating_an_rgb_run_on_grey_data_is_a_clear_error(tiny_run):
    from gpsviz.data import from_arrays

    grey = from_arrays(torch.randint(0, 255, (40, 32, 32), dtype=torch.uint8).numpy(), labels=[i % 4 for i in
                                                                                               range(40)])
    test = from_arrays(torch.randint(0, 255, (20, 32, 32), dtype=torch.uint8).numpy(), labels=[i % 4 for i in
                                                                                               range(20)])
    grey.split, test.split = "train", "test"
    with pytest.raises(DataError, match="3-channel"):
        evaluate_run(tiny_run, data=(grey, test), write=False, targets=["label"], probes=["knn"])


def test_hand_edited_backbone_options_in_a_checkpoint_are_a_clear_error(tiny_run, tmp_path):
    bad = edited_copy(tiny_run, tmp_path / "bad", lambda ck: ck["config"].__setitem__("backbone_options",
                                                                                       {"width": "wide"}))
    with pytest.raises(CheckpointError, match="backbone"):
        evaluate_run(bad, probes=["knn"], targets=["label"])


# ------------------------------------------------------------------------------------------------ provenance
def test_a_run_records_what_produced_it(tiny_run):
    rec = json.loads((tiny_run / "provenance.json").read_text())
    assert rec["precision"] == "fp32" and rec["channels_last"] is False
    assert rec["world_size"] == 1 and rec["device"] == "cpu" and rec["device_name"]
    assert rec["torch"] == str(torch.__version__) and rec["gpsviz"]
    (session,) = rec["sessions"]
    assert session["epochs"] == [0, 1] and session["wall_s"] > 0 and session["cpu_s"] > 0 and session["end"]
    assert load_checkpoint(tiny_run)["provenance"] == rec


def test_results_carry_the_checkpoint_and_provenance(tiny_run, tiny_pair):
    res = evaluate_run(tiny_run, targets=["label"], probes=["knn"], data=tiny_pair, write=False)
    assert len(res["checkpoint"]) == 16 and res["provenance"]["precision"] == "fp32"
    from gpsviz.experiments.grid import provenance_note

    note = provenance_note([res])
    assert "fp32" in note and "1 process" in note and torch.__version__ in note


def test_a_resumed_run_has_two_sessions(tiny_pair, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(epochs=2), out, progress=False, data=tiny_pair, stop_after=1)
    train(tiny_cfg(epochs=2), out, resume=True, progress=False, data=tiny_pair)
    rec = json.loads((out / "provenance.json").read_text())
    assert [s["epochs"] for s in rec["sessions"]] == [[0, 1], [1, 2]]
    assert [s["resumed"] for s in rec["sessions"]] == [False, True]
    assert rec["wall_s"] == pytest.approx(sum(s["wall_s"] for s in rec["sessions"]), abs=0.05)


def test_reproduce_refuses_a_users_folder_that_is_not_a_reproduction(tmp_path):
    from gpsviz.reproduce import reproduce

    mine = tmp_path / "paper"
    mine.mkdir()
    (mine / "table.md").write_text("my own table\n")
    with pytest.raises(ConfigError, match="not a folder of `reproduce baselines`"):
        reproduce("baselines", scale="smoke", seeds=1, out=mine, progress=False)
    assert (mine / "table.md").read_text() == "my own table\n" and not (mine / "settings.json").exists()


def test_unlabelled_images_cannot_feed_labels(tiny_pair, tmp_path):
    import numpy as np

    from gpsviz.data import from_arrays
    from gpsviz.priors import compute_prior

    g = np.random.default_rng(1)
    tr = from_arrays(g.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
    te = from_arrays(g.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), split="test")
    with pytest.raises(ConfigError, match="unlabelled"):
        train(tiny_cfg(recipe="supcon"), tmp_path / "supcon", progress=False, data=(tr, te))
    with pytest.raises(DataError, match="unlabelled"):
        compute_prior("oracle", tr, root=tmp_path, progress=False)
    run = train(tiny_cfg(eval_every=1), tmp_path / "ssl", progress=False, data=(tr, te))   # SSL itself is fine
    assert len(run.history) == 1
    with pytest.raises(DataError, match="no labels"):
        evaluate_run(tmp_path / "ssl", targets=["label"], probes=["linear"], write=False, data=(tr, te))


def test_a_folder_where_the_checkpoint_should_be_and_garbage_bytes_are_clear_errors(tiny_run, tmp_path,
                                                                                     monkeypatch):
    import shutil

    d = tmp_path / "dir"
    shutil.copytree(tiny_run, d)
    (d / "checkpoint.pt").unlink()
    (d / "checkpoint.pt").mkdir()
    with pytest.raises(CheckpointError, match="not a file"):
        evaluate_run(d, probes=["knn"], targets=["label"])
    monkeypatch.setattr(torch, "load", lambda *a, **k: [].pop())       # what some garbage bytes raise inside
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tiny_run)


def test_an_out_name_longer_than_the_file_system_allows_is_a_clear_error(tiny_pair, tmp_path):
    with pytest.raises(GpsvizError, match="255"):
        train(tiny_cfg(), tmp_path / ("n" * 300), progress=False, data=tiny_pair)


def test_sensitivity_tools_refuse_grey_images_for_an_rgb_run_and_edited_model_options(tiny_run, tmp_path):
    from gpsviz.augment.config import family_config
    from gpsviz.sensitivity import load_run, param_prediction, view_similarity

    run = load_run(tiny_run)
    grey = torch.randint(0, 255, (8, 1, 32, 32), dtype=torch.uint8)
    with pytest.raises(DataError, match="3-channel"):
        view_similarity(run, grey, family_config("colour"))
    with pytest.raises(DataError, match="3-channel"):
        param_prediction(run, grey, grey)
    bad = edited_copy(tiny_run, tmp_path / "bad", lambda ck: ck["config"].__setitem__("backbone_options",
                                                                                       {"width": "abc"}))
    with pytest.raises(CheckpointError, match="cannot be built"):
        load_run(bad)


def test_nproc_per_node_reports_an_error_as_one_line_and_records_the_world_size(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "GPSVIZ_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "gpsviz", "train", "--epochs", "1", "--data-opt", "n=64", "--batch-size", "32",
            "--no-eval", "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path / "run")]
    ok = subprocess.run(base[:4] + ["--nproc-per-node", "2"] + base[4:], env=env, capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    rec = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert rec["world_size"] == 2 and rec["backend"] == "gloo"
    again = subprocess.run(base[:4] + ["--nproc-per-node", "2"] + base[4:], env=env, capture_output=True,
                           text=True, timeout=300)             # the processes meet the error (a tiny_run run)
    lines = [ln for ln in again.stderr.splitlines() if ln.strip()]
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr[-2000:]
    assert [ln for ln in lines if ln.startswith("error:")] == lines[-1:] and "already holds a run" in lines[-1]
