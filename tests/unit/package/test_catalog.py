"""The catalog of built-in choices (``python -m gpsviz catalog``) is read from the live registries, and the copy in
docs/interfaces.md and the slot table of gpsviz/recipes.py's docstring list every registered name."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import gpsviz.recipes
from gpsviz.augment import PRESETS
from gpsviz.catalog import BEGIN, END, SECTION_TITLE, catalog_markdown, generated_section, write_catalog
from gpsviz.cli import main
from gpsviz.data import available_datasets
from gpsviz.errors import GpsvizError
from gpsviz.experiments.grid import EXPERIMENTS
from gpsviz.priors import available_priors
from gpsviz.recipes import RECIPES, SLOTS, Recipe, _registries, register_recipe

DOC = Path(__file__).resolve().parents[3] / "docs" / "interfaces.md"
NEWER = ("swav", "cissl", "dissl", "uota", "semantic", "conditioned", "lowrank")


def sections(md: str) -> dict[str, str]:
    """Level-3 heading → the text under it."""
    parts = re.split(r"^### (.+)$", md, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def first_column(text: str) -> set[str]:
    """The code-span names in the first column of every table row of ``text``."""
    return set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def md() -> str:
    return catalog_markdown()


def test_every_registered_choice_is_listed(md):
    s = sections(md)
    assert set(RECIPES) <= first_column(s["Recipes"])
    regs = _registries()
    for slot in SLOTS:
        heading = next(h for h in s if h.startswith(f"Slot `{slot}`"))
        assert set(regs[slot].names()) == first_column(s[heading]), slot
    assert set(available_priors()) == first_column(s["Priors"])
    assert set(available_datasets()) == first_column(s["Datasets"])
    assert set(PRESETS) == first_column(s["Augmentation presets"])
    experiments = next(v for h, v in s.items() if h.startswith("Experiments"))
    assert set(EXPERIMENTS) >= {"baselines", "cassle", "dubois", "spps", "uota"}
    assert set(EXPERIMENTS) == first_column(experiments)
    for name in NEWER:                                      # the choices the old hand-written tables missed
        assert f"`{name}`" in md, name


def test_options_come_from_the_declared_specs(md):
    s = sections(md)
    swav = [row for row in s["Slot `objective` (objective)"].splitlines() if row.startswith("| `swav` | `prototypes`")]
    assert swav and "an integer in [2, 65536]" in swav[0] and "`100`" in swav[0], swav
    assert "| `self` | — | takes no options |" in s["Slot `positives` (positive source)"]


def test_the_output_is_deterministic(md):
    assert catalog_markdown() == md
    assert not md.endswith("\n") and "\n\n\n" not in md


def test_the_page_holds_the_current_catalog():
    """docs/interfaces.md's generated section equals the catalog of a fresh interpreter: only what gpsviz registers
    itself (the test session may have registered test ingredients), printed by ``python -m gpsviz catalog``."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION_TITLE in text, f"{DOC} has no section {SECTION_TITLE!r}: run python -m gpsviz catalog --write"
    p = subprocess.run([sys.executable, "-m", "gpsviz", "catalog"], check=False, capture_output=True, text=True,
                       timeout=300, cwd=DOC.parents[1])
    assert p.returncode == 0, p.stderr
    assert generated_section(text, str(DOC)) == p.stdout.rstrip("\n"), (
        f"the generated section of {DOC} is out of date (an ingredient, recipe, prior, dataset, preset or experiment "
        "changed): run python -m gpsviz catalog --write")


def test_a_new_recipe_appears():
    name = "catalog-test-recipe"
    assert name not in RECIPES
    try:
        register_recipe(Recipe(name, "Catalog test: BYOL with a low-rank head.",
                               objective="byol", head="lowrank", head_options={"rank": 7}))
        md = catalog_markdown()
    finally:
        RECIPES.pop(name, None)
    rows = [r for r in sections(md)["Recipes"].splitlines() if r.startswith(f"| `{name}` |")]
    assert len(rows) == 1 and "`lowrank`" in rows[0] and "`rank=7`" in rows[0], rows
    assert f"`{name}`" not in catalog_markdown()


def test_the_recipes_docstring_lists_every_registered_name():
    """gpsviz/recipes.py's module docstring keeps a hand-written table of the slots; it must name each slot's
    registered choices, no more and no fewer."""
    listed: dict[str, set[str]] = {}
    for line in gpsviz.recipes.__doc__.splitlines():
        cols = re.split(r"\s{2,}", line.strip())
        if len(cols) == 3 and cols[0] in SLOTS:
            listed[cols[0]] = {n.strip() for n in cols[2].split(",")}
    regs = _registries()
    assert set(listed) == set(SLOTS), f"gpsviz/recipes.py docstring: slot rows {sorted(listed)}, expected {SLOTS}"
    for slot in SLOTS:                  # built-in: defined in gpsviz (tests register ingredients of their own)
        builtin = {n for n in regs[slot].names() if regs[slot].get(n).__module__.startswith("gpsviz.")}
        assert listed[slot] == builtin, (
            f"gpsviz/recipes.py docstring lists {sorted(listed[slot])} for {slot}; built-in: {sorted(builtin)}")


def test_cli_prints_the_catalog(capsys, md):
    assert main(["catalog"]) == 0
    assert capsys.readouterr().out == md + "\n"


def test_write_replaces_only_the_section(tmp_path, capsys, md):
    page = tmp_path / "page.md"
    page.write_text("# title\n\nintro\n\n## first\ntext\n")
    assert main(["catalog", "--write", "--file", str(page)]) == 0
    assert str(page) in capsys.readouterr().out
    text = page.read_text()
    assert text.startswith(f"# title\n\nintro\n\n{SECTION_TITLE}\n{BEGIN}\n") and text.endswith("## first\ntext\n")
    assert generated_section(text) == md
    stale = text.replace("`swav`", "`old`")
    page.write_text(stale)
    assert write_catalog(page) is True and page.read_text() == text
    assert write_catalog(page) is False                          # already current: not rewritten


@pytest.mark.parametrize("content", [f"a\n{BEGIN}\nb\n", f"a\n{END}\nb\n{BEGIN}\n", f"{BEGIN}\n{END}\n{BEGIN}\n"])
def test_broken_markers_are_refused_naming_the_file(tmp_path, capsys, content):
    page = tmp_path / "page.md"
    page.write_text(content)
    with pytest.raises(GpsvizError, match=re.escape(str(page))):
        write_catalog(page)
    assert page.read_text() == content
    assert main(["catalog", "--write", "--file", str(page)]) == 2
    err = capsys.readouterr().err
    assert str(page) in err and len(err.strip().splitlines()) == 1


def test_a_missing_page_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "nope.md"
    assert main(["catalog", "--write", "--file", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err and "Traceback" not in err

