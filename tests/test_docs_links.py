"""The repository documents itself: every file the docs and the compose file name is in it.

Checked: each relative Markdown link, ``[text](path)`` or ``[text](path#anchor)``,
in README.md and under docs/ (relative to the file that holds it; an anchor
must be a heading of the target, by GitHub's slug rules), and each repository
file docker-compose.yml names in a value (``./broker/acl``, ``build: .``) or a
comment (``see Dockerfile``, ``docs/security.md#tls``), relative to the
repository root. A link may not leave the repository, even to a file that
exists on this machine. Web links (http, https, mailto) are not followed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support import REPO_ROOT

MARKDOWN_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"`[^`]*`")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
WEB = ("http://", "https://", "mailto:")

# In docker-compose.yml: a relative path (optionally with an #anchor) made of
# plain path characters, so topics (orders/+), URLs (tcp://...), container
# paths (/credentials) and placeholders (auth-<role>) are not taken for files.
COMPOSE_WORD = re.compile(r"^(?:\./)?[\w.-]+(?:/[\w.-]+)*(?:#[\w-]+)?$")
FILE_SUFFIXES = {".md", ".py", ".sh", ".conf", ".yml", ".yaml", ".toml", ".json", ".txt"}
BUILD = re.compile(r"^\s*build:\s*(\S+)\s*$")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a Markdown file, outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield number, line


def anchors(markdown: Path) -> set[str]:
    """Every heading anchor of a Markdown file; a repeated heading gets -1, -2, ..."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(markdown):
        match = HEADING.match(line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def target_problem(reference: str, base: Path, root: Path) -> str | None:
    """Why `reference` (``path``, ``path#anchor`` or ``#anchor``) does not resolve, or None."""
    path_part, _, anchor = unquote(reference).partition("#")
    target = (base / path_part).resolve() if path_part else base
    if not target.is_relative_to(root.resolve()):
        return f"{reference} points outside the repository"
    if not target.exists():
        return f"{reference} does not exist"
    if anchor and target.suffix == ".md" and anchor not in anchors(target):
        return f"{reference}: {target.name} has no heading #{anchor}"
    return None


def where(path: Path, root: Path, line: int) -> str:
    return f"{path.relative_to(root)}:{line}"


def broken_links(markdown: Path, root: Path = REPO_ROOT) -> list[str]:
    """``file:line: reason`` for each relative link in `markdown` that does not resolve."""
    broken = []
    for number, line in prose_lines(markdown):
        for match in LINK.finditer(CODE_SPAN.sub("", line)):
            reference = match.group(1)
            if reference.startswith(WEB):
                continue
            base = markdown.parent if not reference.startswith("#") else markdown
            problem = target_problem(reference, base, root)
            if problem:
                broken.append(f"{where(markdown, root, number)}: {problem}")
    return broken


def compose_references(line: str, root: Path) -> Iterator[str]:
    """The files of `root` one line of a compose file names, in a value or a comment."""
    build = BUILD.match(line)
    if build:
        yield f"{build.group(1)}/Dockerfile"
    for word in line.split():
        word = word.strip("\"'`,;()[]")
        if word.startswith("./"):
            word = word.split(":")[0]  # a volume: ./host/path:/container/path:ro
        word = word.rstrip(".:")
        if not COMPOSE_WORD.match(word):
            continue
        path = word.partition("#")[0]
        if (
            word.startswith("./")
            or path == "Dockerfile"
            or Path(path).suffix in FILE_SUFFIXES
            or ("/" in path and (root / path.split("/")[0]).is_dir())
        ):
            yield word


def broken_compose_references(compose: Path = COMPOSE_FILE, root: Path = REPO_ROOT) -> list[str]:
    """``file:line: reason`` for each file `compose` names that is not in `root`."""
    broken = []
    for number, line in enumerate(compose.read_text().splitlines(), start=1):
        for reference in compose_references(line, root):
            problem = target_problem(reference, root, root)
            if problem:
                broken.append(f"{where(compose, root, number)}: {problem}")
    return broken


@pytest.mark.parametrize("markdown", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves_inside_the_repository(markdown: Path) -> None:
    broken = broken_links(markdown)
    assert broken == [], "\n".join(broken)


def test_every_file_the_compose_file_names_exists() -> None:
    broken = broken_compose_references()
    assert broken == [], "\n".join(broken)


def test_the_readme_links_the_architecture() -> None:
    assert REPO_ROOT / "docs" / "architecture.md" in MARKDOWN_FILES
    assert "](docs/architecture.md)" in (REPO_ROOT / "README.md").read_text()


def test_the_checker_reports_broken_links_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Getting `tickbus up` & going\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n"
        "[fine](docs/guide.md), [fine too](docs/guide.md#getting-tickbus-up--going)\n"
        "[missing](docs/missing.md)\n"
        "[web](https://example.com/nowhere.md) and `[code](nowhere.md)`\n"
        "[bad anchor](docs/guide.md#nowhere)\n"
        "```\n"
        "[in a code block](nowhere.md)\n"
        "```\n"
        "[outside](../elsewhere/DESIGN.md) [here](#title) [not here](#nothing)\n"
    )
    assert broken_links(readme, root=tmp_path) == [
        "README.md:3: docs/missing.md does not exist",
        "README.md:5: docs/guide.md#nowhere: guide.md has no heading #nowhere",
        "README.md:9: ../elsewhere/DESIGN.md points outside the repository",
        "README.md:9: #nothing: README.md has no heading #nothing",
    ]


def test_the_checker_reports_missing_compose_files_with_line(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "security.md").write_text("# Security\n\n## TLS\n")
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        "# see .notes-auth.md, and docs/security.md#tls\n"
        "x:\n"
        "  build: .\n"
        "  volumes:\n"
        "    - ./broker/acl:/mosquitto/config/acl:ro\n"
        "    - auth-feed:/credentials:ro  # orders/+ and tcp://algo:4242 are not files\n"
        "# docs/security.md#nothing\n"
    )
    assert broken_compose_references(compose, root=tmp_path) == [
        "docker-compose.yml:1: .notes-auth.md does not exist",
        "docker-compose.yml:3: ./Dockerfile does not exist",
        "docker-compose.yml:5: ./broker/acl does not exist",
        "docker-compose.yml:7: docs/security.md#nothing: security.md has no heading #nothing",
    ]
