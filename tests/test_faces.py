"""The faces stand side by side: no face imports another (each stands on the library and the shared modules)."""

import ast

import pytest

from selfrefine.experiments import FACES

from conftest import ROOT

PACKAGE = ROOT / "src" / "selfrefine"
FACE_FILES = {
    **{f"selfrefine.experiments.{f}": PACKAGE / "experiments" / f"{f}.py" for f in FACES},
    "selfrefine.audit": PACKAGE / "audit.py",
    "selfrefine.separate": PACKAGE / "separate.py",
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


@pytest.mark.parametrize("face", sorted(FACE_FILES))
def test_no_face_imports_another(face: str) -> None:
    others = set(FACE_FILES) - {face}
    assert not _imports(FACE_FILES[face]) & others, f"{face} imports {sorted(_imports(FACE_FILES[face]) & others)}"


def test_every_experiment_face_is_listed() -> None:
    shared = {"__init__", "queue", "report"}
    assert {p.stem for p in (PACKAGE / "experiments").glob("*.py")} - shared == set(FACES)
