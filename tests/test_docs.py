"""The documents stay inside the repository: every relative link of README.md, docs/ and the
examples' READMEs resolves to a file of the repository, and every repository path they quote
exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        *ROOT.glob("docs/**/*.md"),
        *ROOT.glob("examples/**/*.md"),
        *ROOT.glob("deploy/**/*.md"),
    ]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PUBLIC = ("http://", "https://", "mailto:")
QUOTED_PATH = re.compile(r"`((?:docs|scripts|voicegw|deploy|examples|sip_profiles|tests)/[\w./-]+)`")
"""A path quoted as code that starts at one of the repository's top folders."""


def _ids(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("document", DOCUMENTS, ids=_ids)
def test_relative_links_resolve_inside_the_repository(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text()):
        if target.startswith(PUBLIC) or target.startswith("#"):
            continue
        resolved = (document.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=_ids)
def test_quoted_repository_paths_exist(document: Path) -> None:
    text = document.read_text()
    missing = [path for path in QUOTED_PATH.findall(text) if "*" not in path and not (ROOT / path).exists()]
    assert missing == []


def test_no_document_points_outside_the_repository() -> None:
    for document in DOCUMENTS:
        text = document.read_text()
        assert "../shared" not in text and "/work/" not in text, _ids(document)
