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


def _links(document) -> list[str]:
    """Relative link and image targets of a markdown file (no web addresses, no in-page anchors)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", document.read_text())
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+://", t) and not t.startswith("#")]


def test_the_readme_is_short_and_every_link_into_docs_resolves() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    documents = [readme, *sorted((ROOT / "docs").glob("*.md"))]
    assert {f"docs/{d.name}" for d in documents[1:]} <= set(_links(readme)), "the README links every doc"
    for document in documents:
        for target in _links(document):
            assert (document.parent / target).exists(), f"{document.relative_to(ROOT)}: broken link {target}"


def test_generated_sections_have_their_markers() -> None:
    from selfrefine import paths
    from selfrefine.config import STUDIES

    wanted = {paths.README: ["headline"], paths.RESULTS_DOC: ["results"], paths.STUDIES_DOC: []}
    wanted[paths.STUDIES_DOC] = [f"study:{s}" for s in STUDIES]
    for document, sections in wanted.items():
        text = (ROOT / document).read_text()
        for section in sections:
            assert text.count(f"<!-- {section}:start -->") == text.count(f"<!-- {section}:end -->") == 1, section
