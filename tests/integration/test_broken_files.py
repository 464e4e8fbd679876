"""Hand-edited or truncated JSON files in run and output folders (issue 18 §4): a broken cache is recomputed (one
printed line says so), a file the user asked for gives one DataError naming it and what to do; never a raw
JSONDecodeError / UnicodeDecodeError / KeyError / AttributeError. And an explorer refuses a dataset that is not
the run's training set (its checkpoint's data digest)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import tiny_cfg

from gpsviz.errors import DataError

BROKEN = {"truncated": b'{"key": {"data": "sha', "list": b"[1, 2, 3]", "not utf-8": b'{"key": "\xff\xfe"}'}


@pytest.fixture(scope="module")
def uota_run(tmp_path_factory):
    """A one-epoch UOTA-SimCLR run on 64 shapes images (the default world, seed 0) with its view-weight log."""
    from gpsviz.train import train
    from gpsviz.view_weights import ViewWeightRecorder

    out = tmp_path_factory.mktemp("broken") / "uota"
    train(tiny_cfg(recipe="uota-simclr", data_options={"n": 64}, eval_size=64), out, progress=False,
          callbacks=[ViewWeightRecorder(probe=16, path=out / "view_weights.pt")])
    return out


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


# ------------------------------------------------------------------------------------------------ the helpers
def test_read_json_helpers(tmp_path, capsys):
    from gpsviz.utils import read_json, read_json_cache, read_json_file

    good = tmp_path / "good.json"
    good.write_text('{"a": 1}')
    assert read_json(good) == {"a": 1} and read_json(tmp_path / "none.json", unreadable="bad") is None
    assert read_json_cache(good) == {"a": 1} and read_json_file(good, "x", "do y", keys=("a",)) == {"a": 1}
    assert read_json(tmp_path, unreadable="bad") == "bad"                      # a directory
    for kind, raw in BROKEN.items():
        p = tmp_path / f"{kind}.json"
        p.write_bytes(raw)
        assert read_json(p, unreadable="bad") == ("bad" if kind != "list" else [1, 2, 3])
        assert read_json_cache(p) is None
        assert f"{p} is unreadable" in capsys.readouterr().out
        with pytest.raises(DataError, match=rf"{p} \(the thing\) is unreadable.*; do this"):
            read_json_file(p, "the thing", "do this")
    with pytest.raises(DataError, match=r"none.json \(the thing\) does not exist; do this"):
        read_json_file(tmp_path / "none.json", "the thing", "do this")
    with pytest.raises(DataError, match=r"has no 'b' entry; do this"):
        read_json_file(good, "the thing", "do this", keys=("a", "b"))


# ------------------------------------------------------------------------------------------------ caches
@pytest.mark.parametrize("kind", list(BROKEN))
def test_floor_rows_recompute_a_broken_cache(kind, tmp_path, monkeypatch, capsys, tiny_pair):
    import gpsviz.evaluate
    import gpsviz.experiments.grid as grid
    from gpsviz.experiments.grid import config_floor_rows

    calls = []
    monkeypatch.setattr(grid, "load_data", lambda cfg: tiny_pair)
    monkeypatch.setattr(grid, "probe_floors",
                        lambda *a, **k: calls.append(1) or {n: {"knn_label": 0.5} for n in gpsviz.evaluate.FLOOR_NAMES})
    path = tmp_path / "results.json"
    path.write_bytes(BROKEN[kind])
    rows = config_floor_rows(tiny_cfg(), "shapes", 0, path)
    assert calls == [1] and [r["name"] for r in rows] == list(gpsviz.evaluate.FLOOR_NAMES)
    assert f"{path} is unreadable" in capsys.readouterr().out
    assert json.loads(path.read_text())["rows"] == rows                         # the cache was rewritten
    assert config_floor_rows(tiny_cfg(), "shapes", 0, path) == rows and calls == [1]   # and is used now


def test_cassle_analysis_recomputes_a_truncated_cache(tiny_run, tmp_path, monkeypatch, capsys, tiny_pair):
    import gpsviz.experiments.cassle as cassle
    from gpsviz.experiments.cassle import run_analysis

    run = _copy(tiny_run, tmp_path / "run")
    monkeypatch.setattr(cassle, "load_data", lambda cfg: tiny_pair)
    monkeypatch.setattr(cassle, "param_prediction",
                        lambda *a, **k: {"r2_mean": 0.25, "r2_family": {"crop": 0.25}, "r2": {"crop_x": 0.25}})
    monkeypatch.setattr(cassle, "sensitivity", lambda *a, **k: [])
    (run / "cassle_analysis.json").write_bytes(BROKEN["truncated"])
    res = run_analysis(run, scale="smoke")
    assert res["r2_mean"] == 0.25 and "cassle_analysis.json is unreadable" in capsys.readouterr().out
    assert json.loads((run / "cassle_analysis.json").read_text())["result"] == res


def test_dubois_measure_run_recomputes_a_truncated_cache(tiny_run, tmp_path, capsys, tiny_pair):
    from gpsviz.experiments.dubois import measure_run

    run = _copy(tiny_run, tmp_path / "run")
    (run / "conditions.json").write_bytes(BROKEN["truncated"])
    res = measure_run(run, data=tiny_pair, n_invariance=16, n_instances=8)
    assert 0 <= res["linear"] <= 1 and "conditions.json is unreadable" in capsys.readouterr().out
    assert json.loads((run / "conditions.json").read_text())["conditions"]["linear"] == res["linear"]


def test_dubois_finished_treats_an_unreadable_result_as_unfinished(tmp_path):
    from gpsviz.experiments.dubois import _finished
    from gpsviz.experiments.grid import Cell, cell_run_dir

    cell = Cell("simclr", "simclr", "strong", "shapes", experiment="dubois")
    path = cell_run_dir(cell, 0, tmp_path) / "results.json"
    path.parent.mkdir(parents=True)
    for raw in BROKEN.values():
        path.write_bytes(raw)
        assert _finished(cell, 0, tmp_path, "smoke", None, "cpu") is False


# ------------------------------------------------------------------------------------------------ asked-for files
def test_probe_explorer_of_a_truncated_result_names_it(tmp_path):
    from gpsviz.widgets.probe_explorer import ProbeExplorer

    (tmp_path / "results.json").write_bytes(BROKEN["truncated"])
    with pytest.raises(DataError, match=r"results.json \(the results of `reproduce dubois`\) is unreadable.*"
                                        r"python -m gpsviz reproduce dubois"):
        ProbeExplorer.from_results(tmp_path)


def test_uota_comparison_table_of_broken_results(tiny_run, tmp_path, monkeypatch, tiny_pair):
    import gpsviz.evaluate
    import gpsviz.experiments.uota as uota
    from gpsviz.experiments.uota import comparison_table

    monkeypatch.setattr(uota, "load_data", lambda cfg: tiny_pair)
    monkeypatch.setattr(uota, "probe_floors",
                        lambda *a, **k: {n: {"linear_label": 0.1, "knn_label": 0.1} for n in gpsviz.evaluate.FLOOR_NAMES})
    run = _copy(tiny_run, tmp_path / "run")
    (run / "results.json").write_bytes(BROKEN["truncated"])
    with pytest.raises(DataError, match=r"results.json \(the results of run 'a'\) is unreadable.*gpsviz evaluate"):
        comparison_table({"a": run})
    (run / "results.json").write_text(json.dumps({"knn_label": 0.5}))        # kNN only
    with pytest.raises(DataError, match=r"has no 'linear_label' entry; evaluate it again"):
        comparison_table({"a": run})
    (run / "results.json").write_text(json.dumps({"linear_label": 0.5, "knn_label": 0.25}))   # no config
    table = comparison_table({"a": run})                      # (`gpsviz evaluate` writes none: the checkpoint's)
    assert list(table["linear label %"])[0] == 50.0 and len(table) == 3


def test_uota_weight_analysis_with_a_truncated_config_json(uota_run, tmp_path):
    from gpsviz.experiments.uota import weight_analysis

    run = _copy(uota_run, tmp_path / "run")
    (run / "config.json").write_bytes(BROKEN["truncated"])
    res = weight_analysis(run)                                        # the checkpoint's config is used
    assert res["epochs"] == [1] and len(res["auroc"]) == 1
    (run / "checkpoint.pt").unlink()                                  # only the log and a broken config.json
    with pytest.raises(DataError, match=r"config.json \(the run's config\) is unreadable.*pass dataset="):
        weight_analysis(run)


# ------------------------------------------------------------------------------------------------ another dataset
def test_ood_explorer_refuses_shapes_of_another_seed(uota_run):
    from gpsviz.data import load_dataset
    from gpsviz.widgets import OODExplorer

    own = load_dataset("shapes", "train", n=64, seed=0)
    OODExplorer(own, {"uota": uota_run})                              # its own training images: shown
    other = load_dataset("shapes", "train", n=64, seed=5)            # same name, size and channels
    with pytest.raises(DataError, match=r"run 'uota' was trained on other images than the explorer's dataset "
                                        r"\(shapes.*64 images.*give the run's own training split"):
        OODExplorer(other, {"uota": uota_run})


def test_check_run_dataset_skips_the_digest_of_old_checkpoints():
    from gpsviz.checkpoint import dataset_digest
    from gpsviz.data import make_shapes
    from gpsviz.widgets.controls import check_run_dataset

    ds = make_shapes(16, seed=1)
    check_run_dataset("old", ds, "shapes", {}, 3, 32)                  # no digest recorded: not compared
    check_run_dataset("new", ds, "shapes", {}, 3, 32, data_digest=dataset_digest(ds))
    with pytest.raises(DataError, match="run 'new' was trained on other images"):
        check_run_dataset("new", make_shapes(16, seed=2), "shapes", {}, 3, 32, data_digest=dataset_digest(ds))
