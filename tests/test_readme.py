"""The README's layout section names every module of the package, and no module that is gone."""

import re

from conftest import ROOT


def test_layout_section_matches_the_package() -> None:
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("```")[1]
    named = set(re.findall(r"[\w/]*?(\w+\.py)", layout))
    package = ROOT / "src" / "selfrefine"
    modules = {p.name for p in package.rglob("*.py") if p.name != "__init__.py"}
    assert modules - named == set(), "modules the layout does not explain"
    assert named - modules - {"__init__.py"} == set(), "the layout names modules that do not exist"
    for folder in sorted(
        p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_dir() and p.name != "__pycache__"
    ):
        assert f"{folder.split('/')[-1]}/" in layout, f"folder {folder}/ is missing from the layout"
