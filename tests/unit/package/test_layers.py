"""The package's imports run one way: every module imports only from its own layer or the layers below it, the
import graph has no cycle, and imports sit at module level (lazy only for the heavy optional libraries).

The layers, lowest first (a module belongs to the first prefix that matches its dotted name). A new module must be
placed here; an import against the direction fails the test with the offending edge named."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "gpsviz"

LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("gpsviz", "utils", "registry", "hardware", "distributed", "provenance", "batch", "callbacks", "optim", "stats",
     "handcrafted"),
    ("data", "features", "knn", "purity"),
    ("augment", "models"),
    ("checkpoint", "evaluate"),                         # probes stay below the training loop
    ("priors",),
    ("positives", "objectives"),
    ("recipes",),
    ("config",),
    ("step", "runfolder", "train"),
    ("runs",),
    ("diagnostics", "sensitivity", "view_weights"),
    ("plots",),
    ("experiments",),
    ("reproduce",),
    ("widgets", "cli", "bench", "__main__", "catalog"),
]
#: Third-party libraries a function may import lazily: heavy at import, or optional, or platform-specific.
LAZY_OK = {"matplotlib", "ipywidgets", "umap", "faiss", "sklearn", "torchvision", "pandas", "fcntl", "IPython"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> int:
    short = name.split(".", 1)[1] if "." in name else name
    for i, prefixes in enumerate(LAYERS):
        if any(short == p or short.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{name} is in no layer of tests/test_layers.py: place it in LAYERS")


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of ``path`` outside ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            func = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_func) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                found.extend((f"{base}.{a.name}", child.lineno, in_func) for a in child.names)
            visit(child, func)

    visit(tree, False)
    return found


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """Module → the gpsviz modules it imports, and every lazy import that is not allowed."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in paths}
    lazy: list[str] = []
    for m, p in paths.items():
        for target, line, in_func in imports(p):
            top = target.split(".")[0]
            if top == "gpsviz":
                while target not in paths:
                    target = target.rpartition(".")[0]
                if target != m:
                    edges[m].add(target)
                if in_func:
                    lazy.append(f"{p.relative_to(PACKAGE.parent)}:{line} imports {target} inside a function")
            elif in_func and top not in LAZY_OK:
                lazy.append(f"{p.relative_to(PACKAGE.parent)}:{line} imports {top} inside a function")
    return edges, lazy


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_import_runs_down_the_layers():
    edges, _ = graph()
    against = [f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
               for m, ts in sorted(edges.items()) for t in sorted(ts) if layer_of(t) > layer_of(m)]
    assert not against, "imports against the direction:\n" + "\n".join(against)


def test_the_import_graph_has_no_cycle():
    found = cycles(graph()[0])
    assert not found, "import cycles: " + "; ".join(" → ".join(c) for c in found)


def test_imports_sit_at_module_level():
    lazy = graph()[1]
    assert not lazy, "function-level imports (allowed only for " + ", ".join(sorted(LAZY_OK)) + "):\n" + \
        "\n".join(lazy)


@pytest.mark.parametrize("bad,expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(bad, expected):
    assert cycles(bad) == expected


def test_the_checks_see_a_planted_violation(tmp_path, monkeypatch):
    """A module low in the layers that imports one above it, lazily: both checks must name it."""
    pkg = tmp_path / "gpsviz"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("def f():\n    from gpsviz.cli import main\n")
    (pkg / "cli.py").write_text("from gpsviz.errors import f\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    edges, lazy = graph()
    assert edges["gpsviz.errors"] == {"gpsviz.cli"} and len(lazy) == 1 and "errors.py:2" in lazy[0]
    assert cycles(edges) == [["gpsviz.cli", "gpsviz.errors"]]
    assert layer_of("gpsviz.cli") > layer_of("gpsviz.errors")
