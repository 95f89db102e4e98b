"""The import closure of a module inside the selfrefine package, read from the source (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The file of module ``name`` under ``src/`` (a package's ``__init__.py``), or None."""
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, name: str) -> set[str]:
    """selfrefine modules that ``path`` (module ``name``) imports anywhere, function bodies included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")}
    return {m for m in found if m.split(".")[0] == "selfrefine" and module_file(m)}


def import_closure(*names: str) -> set[str]:
    """Files (relative to the repository root) of ``names`` and every selfrefine module they import,
    with the ``__init__.py`` of each package on the way."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(_imports(module_file(name), name))
    return {module_file(m).relative_to(ROOT).as_posix() for m in seen}
