"""Packaging: environment.yml, pyproject and the README's two commands agree with each other and with CI."""
from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_environment_yml_parses_and_installs_this_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert any(str(d).startswith("python=3.11") for d in deps)
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "gpsviz"
    # the pip entry installs the local package (the one pyproject.toml names) with its dev extra
    assert any(re.fullmatch(r"-e \.(\[dev\])?", p) for p in pip), pip
    assert "dev" in project["optional-dependencies"]


def test_torch_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"], commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo: \$\(STAMP\)", makefile, re.M) and re.search(r"^test: \$\(STAMP\)", makefile, re.M)


def test_tests_mirror_the_package():
    """Test files live in ``tests/unit/<module>`` (a module or subpackage of gpsviz; ``package`` for the whole
    package), ``tests/integration`` or ``tests/browser`` — not at the top and not in a folder named after an issue."""
    tests = ROOT / "tests"
    for path in tests.rglob("test_*.py"):
        parts = path.relative_to(tests).parts
        assert parts[0] in ("unit", "integration", "browser") and len(parts) == (3 if parts[0] == "unit" else 2), path
        if parts[0] == "unit" and parts[1] != "package":
            module = ROOT / "gpsviz" / parts[1]
            assert module.is_dir() or module.with_suffix(".py").is_file(), f"{path}: no gpsviz module {parts[1]!r}"
