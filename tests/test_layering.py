"""Which packages may import which: training stays out of inference and the library."""

from __future__ import annotations

import ast
from pathlib import Path

import detseg

PACKAGE = Path(detseg.__file__).parent

#: the packages allowed to import ``detseg.engine`` (training): the engine and the command line
ENGINE_USERS = ("engine", "cli")


def _imported_modules(path: Path) -> list[str]:
    """Absolute dotted names of the detseg modules ``path`` imports (relative imports resolved)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
    return names


def test_only_engine_and_cli_import_the_engine():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ENGINE_USERS:
            continue
        hits = [m for m in _imported_modules(path) if m == "detseg.engine" or m.startswith("detseg.engine.")]
        offenders += [f"{path.relative_to(PACKAGE.parent)}: {m}" for m in hits]
    assert not offenders, "training code imported outside detseg/engine and detseg/cli:\n" + "\n".join(offenders)


def test_nothing_in_the_library_imports_the_docs_computations():
    """``detseg.docs`` builds models to count them for the generated docs: a leaf, like the CLI."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "docs":
            continue
        hits = [m for m in _imported_modules(path) if m == "detseg.docs" or m.startswith("detseg.docs.")]
        offenders += [f"{path.relative_to(PACKAGE.parent)}: {m}" for m in hits]
    assert not offenders, "detseg.docs imported by the library:\n" + "\n".join(offenders)
