"""The faces stand side by side: no face imports another (each stands on the library and the shared modules)."""

import ast

import pytest

from selfrefine.experiments import FACES

from conftest import ROOT

PACKAGE = ROOT / "src" / "selfrefine"
MODULES = {
    **{face: [f"selfrefine.experiments.{m}" for m in modules] for face, modules in FACES.items()},
    "audit": ["selfrefine.audit"],
    "separate": ["selfrefine.separate"],
}


def _imports(path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from a import b`` gives a and a.b)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def _file(module: str):
    return PACKAGE.parent / f"{module.replace('.', '/')}.py"


@pytest.mark.parametrize("face", sorted(MODULES))
def test_no_face_imports_another(face: str) -> None:
    others = {m for other, modules in MODULES.items() if other != face for m in modules}
    for module in MODULES[face]:
        imported = _imports(_file(module)) & others
        assert not imported, f"{module} ({face}) imports {sorted(imported)}"


def test_every_experiment_module_is_shared_or_a_faces() -> None:
    shared = {"__init__", "queue", "report"}
    faces = {m for modules in FACES.values() for m in modules}
    assert {p.stem for p in (PACKAGE / "experiments").glob("*.py")} - shared == faces
