"""The shape of the tree: no import circles, the CLI on top, modules that fit in a head."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter

import pytest

from tests import REPO

PACKAGES = ("streams", "aggregates", "exporters")
MAX_LINES = 500
# The console script and the click groups it gathers: nothing below them imports them.
CLI_MODULES = frozenset({"streams.cli", "streams.stack.cli"})


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            trees[name] = ast.parse(path.read_text(), str(path))
    return trees


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports anywhere, lazily inside functions included."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from streams import stack` names a module; `from streams.x import f` names x.
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, tree, set(_modules())) for name, tree in _modules().items()}


def test_no_import_circle_among_the_projects_modules() -> None:
    # Importing a subpackage runs its __init__, so the package's edges to its own
    # modules are real; only a package's edge to itself is dropped above.
    try:
        tuple(TopologicalSorter(GRAPH).static_order())
    except CycleError as error:
        pytest.fail(f"import circle: {' -> '.join(error.args[1])}")


def test_no_module_below_the_cli_imports_it() -> None:
    offenders = {name: sorted(deps & CLI_MODULES) for name, deps in GRAPH.items() if name not in CLI_MODULES and deps & CLI_MODULES}
    assert offenders == {}


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(REPO)): n
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_product_module_has_a_test_module_in_the_mirrored_place_or_its_package_does() -> None:
    # A module is covered by tests/<its path>/test_<name>.py, or, for small helpers,
    # by a test module in the same test folder (e.g. keys.py through test_store.py).
    missing = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.name == "__init__.py":
                continue
            folder = REPO / "tests" / path.parent.relative_to(REPO)
            if not any(folder.glob("test_*.py")):
                missing.append(str(path.relative_to(REPO)))
    assert missing == []


def test_the_circle_check_sees_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph).static_order())
