"""The package declares exactly what it imports: an undeclared import breaks `pip install .` for a
user, a declared but unused one costs every user an install."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "reid_stra").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("reid_stra", "__future__")}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = {_requirement_name(spec) for spec in project["dependencies"]}
    optional = {
        _requirement_name(spec)
        for group, specs in project.get("optional-dependencies", {}).items()
        if group != "dev"
        for spec in specs
    }
    return required, optional


def test_every_imported_third_party_module_is_declared() -> None:
    required, optional = _declared()
    distributions = packages_distributions()
    undeclared = []
    for module in sorted(_imported_top_level_modules()):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & (required | optional):
            undeclared.append(f"{module} (from {', '.join(sorted(dists))})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_dependency_is_imported() -> None:
    required, _ = _declared()
    distributions = packages_distributions()
    imported = {
        d.lower().replace("_", "-")
        for module in _imported_top_level_modules()
        for d in distributions.get(module, [module])
    }
    unused = sorted(required - imported)
    assert not unused, f"declared in pyproject.toml but never imported by reid_stra: {unused}"
