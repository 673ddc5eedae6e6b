"""The docs stay whole: every relative link in README.md, CHANGELOG.md and docs/*.md reaches an existing file (and
heading), the configuration page names every setting, and the README stays a short front page."""

import re
from pathlib import Path

import pytest

from omni_runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
EXTERNAL = ("http://", "https://", "mailto:")


def _text(page: Path) -> str:
    """The page without its fenced code blocks, where brackets and parentheses are code, not links."""
    return FENCE.sub("", page.read_text())


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for line in _text(page).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            name, n = base, 0
            while name in found:  # GitHub numbers repeated headings: x, x-1, x-2
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(_text(page)):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading in {linked.name}")
    return broken


def test_the_pages_are_there() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    expected = {"api", "architecture", "configuration", "delivery", "deploy", "providers", "router", "testing"}
    assert {f"docs/{name}.md" for name in expected} <= names
    assert {"README.md", "CHANGELOG.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A page\n\n## Its part: one (two)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#its-part-one-two) [ok](#mine) [web](https://example.com/x)\n"
        "[gone](missing.md) [bad](there.md#nowhere)\n"
        "```\n[code, not a link](nowhere.md)\n```\n"
        "# Mine\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "there.md#nowhere: no such heading in there.md"]


def test_configuration_names_every_setting() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", page))
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in named)
    assert missing == []


def test_the_readme_is_a_short_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
