"""The repo explains itself: the docs exist, link to what exists, cover every table, and nothing
points outside the repo for its design."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune.storage.schema import metadata

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
LINKING_FILES = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *DOCS]
EXPECTED_DOCS = ["docs/architecture.md", "docs/workflows.md", "docs/operations.md", "CONTRIBUTING.md"]

# Spelled in two parts so that this file does not match itself.
FORBIDDEN = [("DESIGN" + " §").encode(), ("DESIGN" + ".md").encode()]
# Not the project's files: version control, environments, caches and build output.
SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tools", "build"}
SKIPPED_DIRS |= {"node_modules", ".attune"}

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _repo_files(folder: Path = REPO_ROOT) -> Iterator[Path]:
    for path in folder.iterdir():
        if path.is_symlink():
            continue  # its target is either in the repo already or not the repo's
        if path.is_dir():
            if path.name not in SKIPPED_DIRS and not path.name.endswith(".egg-info"):
                yield from _repo_files(path)
        elif path.is_file():
            yield path


def _links(markdown: Path) -> list[str]:
    """Relative link targets, outside code blocks."""
    text = FENCE.sub("", markdown.read_text(encoding="utf-8"))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def _anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of the file's headings: lower case, punctuation dropped, spaces → '-'."""
    text = FENCE.sub("", markdown.read_text(encoding="utf-8"))
    headings = re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_nothing_refers_to_a_design_brief_outside_the_repo() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {word.decode()}"
        for path in _repo_files()
        for word in FORBIDDEN
        if word in path.read_bytes()
    ]
    assert not offenders, "point into docs/ instead: " + ", ".join(offenders)


@pytest.mark.parametrize("markdown", LINKING_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(markdown: Path) -> None:
    broken = []
    for target in _links(markdown):
        file_part, _, anchor = target.partition("#")
        path = (markdown.parent / file_part).resolve() if file_part else markdown
        if not path.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no heading #{anchor} in {path.relative_to(REPO_ROOT)})")
    assert not broken, f"{markdown.relative_to(REPO_ROOT)}: broken links: {broken}"


def test_the_readme_links_each_doc() -> None:
    linked = {link.partition("#")[0] for link in _links(REPO_ROOT / "README.md")}
    missing = [doc for doc in EXPECTED_DOCS if doc not in linked]
    assert not missing, f"README.md does not link {missing}"


def test_the_architecture_table_names_every_table_of_the_schema() -> None:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("\n## Tables and their writers\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    missing = sorted(set(metadata.tables) - documented)
    assert not missing, f"docs/architecture.md, Tables and their writers, lacks {missing}"
    unknown = sorted(documented - set(metadata.tables))
    assert not unknown, f"docs/architecture.md names tables the schema does not have: {unknown}"
