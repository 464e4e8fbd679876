"""Every notebook executes top to bottom in smoke mode (GPSVIZ_SMOKE=1) without a failing cell."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
    assert any("parameters" in t for t in tags), f"{path.name} has no cell tagged 'parameters'"
    env_before = dict(os.environ)
    os.environ["GPSVIZ_SMOKE"] = "1"
    os.environ.pop("MPLBACKEND", None)      # an Agg backend in the environment would strip inline figures
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "data" / "numba-cache"))
    try:
        client = NotebookClient(nb, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 2, f"{path.name} produced only {images} inline figures"
    out = ROOT / "test-artifacts" / "notebooks"
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / path.name)
