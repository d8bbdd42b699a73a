"""The layers of docs/ARCHITECTURE.md ("Which layer may import which"), checked on every import of
the package, function-level imports included: dependencies run one way, so no cycle can form."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reid_stra"
BASE = {"errors", "_version", "utils"}
# What each part may import (besides itself); anything else is a violation.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "utils": {"errors"},
    "data": {"errors", "utils"},
    "metrics": {"errors", "utils"},  # a leaf over numpy, torch and FAISS
    "models": {*BASE, "data"},
    "deploy": {*BASE, "data", "models"},
    "retrieval": {*BASE, "data", "models", "metrics", "deploy"},
    "viz": {*BASE, "data", "models", "metrics"},
    "engine": {*BASE, "data", "models", "metrics", "retrieval"},
    "demo": {*BASE, "data", "models", "metrics", "retrieval", "engine", "viz", "deploy"},
    "cli": {*BASE, "data", "models", "metrics", "retrieval", "engine", "viz", "deploy", "demo"},
    "__init__": {*BASE, "models", "metrics", "retrieval"},  # the package's lazy attributes
}
# The engine trains any model through its base class; it never names a backbone.
ENGINE_MODEL_MODULES = {
    "reid_stra.models",
    "reid_stra.models.build",
    "reid_stra.models.heads",
    "reid_stra.models.weights",
    "reid_stra.models.cfg",
    "reid_stra.models.shipped",
}  # fmt: skip  (shipped: the default model's name)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, str]]:
    """(importing module, its file, imported module) for every ``reid_stra`` import."""
    found = []
    for file in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(file.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(module, str(file), name) for name in names if name.startswith("reid_stra.")]
    return found


def test_every_part_imports_only_the_layers_below_it() -> None:
    imports = _imports()
    assert len(imports) > 200  # the walk found the package
    violations = [
        f"{module} imports {target}"
        for module, _file, target in imports
        if (source := _part(module)) != (dest := _part(target)) and dest not in ALLOWED[source]
    ]
    assert not violations, "\n".join(violations)


def test_the_engine_knows_no_backbone() -> None:
    named = sorted(
        f"{module} imports {target}"
        for module, _file, target in _imports()
        if _part(module) == "engine" and _part(target) == "models" and target not in ENGINE_MODEL_MODULES
    )
    assert not named, "\n".join(named)


# Environment variables the library may read: its documented switches and torchrun's own.
LIBRARY_ENVIRONMENT = {
    *("REID_STRA_CACHE_DIR", "REID_STRA_WEIGHTS_DIR", "XDG_CACHE_HOME"),
    *("RANK", "WORLD_SIZE", "LOCAL_RANK"),
}


def _environment_reads(file: Path) -> list[str]:
    """Names read through ``os.environ[...]``/``.get``/``os.getenv`` (a constant's value when named)."""
    tree = ast.parse(file.read_text(encoding="utf-8"))
    constants = {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    reads = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv"):
            key = node.args[0] if node.args else None
        elif isinstance(node, ast.Compare) and any(ast.unparse(c) == "os.environ" for c in node.comparators):
            key = node.left
        if key is None:
            continue
        if isinstance(key, ast.Constant):
            reads.append(str(key.value))
        elif isinstance(key, ast.Name):
            reads.append(str(constants.get(key.id, key.id)))
        else:
            reads.append(ast.unparse(key))
    return reads


def test_the_library_reads_only_documented_environment_variables() -> None:
    """No test hooks or hidden switches: outside the CLI, only the documented variables are read,
    and each of the library's own is in the README."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    found = {
        (str(file.relative_to(PACKAGE.parent)), name)
        for file in PACKAGE.rglob("*.py")
        if "cli" not in file.relative_to(PACKAGE).parts
        for name in _environment_reads(file)
    }
    assert {name for _, name in found} >= {"REID_STRA_WEIGHTS_DIR", "RANK"}  # the scan sees reads
    assert sorted(f"{file}: {name}" for file, name in found if name not in LIBRARY_ENVIRONMENT) == []
    assert [name for name in LIBRARY_ENVIRONMENT if name.startswith("REID_STRA") and name not in readme] == []


def test_no_module_over_450_lines() -> None:
    """Small modules with one job each: a file past 450 lines is split before it lands."""
    long = {
        str(file.relative_to(PACKAGE.parent)): count
        for file in PACKAGE.rglob("*.py")
        if (count := len(file.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert long == {}
