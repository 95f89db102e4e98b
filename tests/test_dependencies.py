"""Every package the library imports is declared in pyproject.toml (a fresh install has it)."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

from conftest import ROOT


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported() -> dict[str, str]:
    """Top-level third-party modules imported anywhere in src/, each with one file that imports it."""
    found = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "selfrefine" and top not in sys.stdlib_module_names:
                    found.setdefault(top, path.relative_to(ROOT).as_posix())
    return found


def _installed_without_deps() -> set[str]:
    """Packages setup.sh installs with ``pip install --no-deps NAME==VERSION`` (a dependency that cannot build
    everywhere and is not needed: tinysoundfont's pyaudio, for live playback)."""
    text = (ROOT / "setup.sh").read_text()
    return {_normal(name) for name in re.findall(r"pip install -q --no-deps ([A-Za-z0-9_.-]+)==", text)}


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normal(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    declared |= _installed_without_deps()
    assert "tinysoundfont" in declared, "setup.sh installs the sampled world's renderer"
    dists = packages_distributions()
    imported = _imported()
    assert {"torch", "yaml", "ruamel"} <= set(imported), "the walk finds the library's imports"
    undeclared = {
        module: where
        for module, where in imported.items()
        if not {_normal(d) for d in dists.get(module, [module])} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
