"""The notation page names code that exists, and the chapters' learning path holds together.

book/notation.md maps each paper's symbols to the book's and to ``xaihelpers``; every
name in its code column, written ``xh.module.name`` or ``xh.module.function(argument=)``,
must resolve. Each chapter opens with a "you will need / you will learn" box whose
prerequisites are earlier chapters, numbers its figures N.1, N.2, ... in order, and links
only to chapters that exist.
"""

from __future__ import annotations

import inspect
import json
import re

import pytest

from conftest import NOTEBOOKS, ROOT

PAGE = ROOT / "book" / "notation.md"
# `xh.gfi.blend` or `xh.gfi.optimise(gamma=)`
CODE_NAME = re.compile(r"`(xh(?:\.\w+)+)(?:\((\w+)=\))?`")
PAPER_HEADER = "| Paper | Book | Code | Chapter |"
PAPERS = ("Guided Feature Inversion", "Sharing Ratio Decomposition", "Activation-Deactivation", "Activation Matching")
LESSON_CAPTION = re.compile(r"^\*\*Figure (\d+)\.\*\* \S")
LINK = re.compile(r"\]\((?![a-z]+:)([^)\s]+\.(?:ipynb|md))\)")  # relative links only
CAPTION = re.compile(r"^\*\*Figure (\d+)\.(\d+)\.\*\* \S")


def _sections(text: str) -> dict[str, list[list[str]]]:
    """The rows (lists of cells) of the tables under each ``##`` heading, header and rule left out."""
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None and line.startswith("|") and not re.fullmatch(r"\|(\s*-+\s*\|)+", line):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            current.append(cells)
    return {k: rows[1:] for k, rows in sections.items() if rows}  # rows[0]: the header


def unresolved(text: str) -> list[str]:
    """The code names of ``text`` that do not exist in ``xaihelpers`` (or lack the named argument)."""
    import xaihelpers as xh

    missing = []
    for path, arg in CODE_NAME.findall(text):
        obj = xh
        try:
            for part in path.split(".")[1:]:
                obj = getattr(obj, part)
        except AttributeError:
            missing.append(path)
            continue
        if arg and arg not in inspect.signature(obj).parameters:
            missing.append(f"{path}({arg}=)")
    return missing


def test_every_code_name_on_the_page_exists():
    code = "\n".join(row[2] for rows in _sections(PAGE.read_text()).values() for row in rows if len(row) == 4)
    assert len(set(CODE_NAME.findall(code))) >= 60
    assert unresolved(code) == []


def test_the_check_catches_a_missing_name_and_a_missing_argument():
    assert unresolved("`xh.gfi.blend` `xh.gfi.no_such_function` `xh.gfi.optimise(no_such_argument=)`") == [
        "xh.gfi.no_such_function", "xh.gfi.optimise(no_such_argument=)"]


def test_one_table_per_paper_with_code_for_most_symbols():
    text = PAGE.read_text()
    sections = _sections(text)
    for paper in PAPERS:
        title = next((t for t in sections if t.startswith(paper)), None)
        assert title, f"no section for {paper}"
        block = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
        assert PAPER_HEADER in block, title
        rows = sections[title]
        assert len(rows) >= 12 and all(len(r) == 4 for r in rows), title
        with_code = [r for r in rows if CODE_NAME.search(r[2])]
        assert all(CODE_NAME.search(r[2]) or r[2] == "—" for r in rows), title
        assert len(with_code) >= len(rows) - 2, title
        assert all(LINK.search(r[3]) for r in rows), f"{title}: a row without its chapter"


def test_the_page_is_in_the_book_and_its_links_resolve():
    assert "file: book/notation" in (ROOT / "_toc.yml").read_text()
    for target in LINK.findall(PAGE.read_text()):
        assert (PAGE.parent / target).resolve().is_file(), target


def _cells(nb_path):
    return json.loads(nb_path.read_text())["cells"]


def _source(cell) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_opens_with_what_it_needs_and_teaches(path):
    n = int(path.stem[:2])
    cells = _cells(path)
    box = _source(cells[1])
    assert cells[1]["cell_type"] == "markdown" and box.startswith("```{admonition} You will need / you will learn")
    need, learn = box.split("**You will need**")[1].split("**You will learn**")
    assert need.count("\n- ") >= 1 and 3 <= learn.count("\n- ") <= 5
    linked = [t for t in LINK.findall(need) if t.endswith(".ipynb")]
    # earlier chapters, and for a lab its own chapter's lesson
    earlier = [int(t[:2]) for t in linked if not (t.endswith("_lesson.ipynb") and int(t[:2]) == n and "lesson" not in path.stem)]
    assert all(k < n for k in earlier), linked
    assert earlier or n == 0, "a prerequisite links the chapter it needs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_figures_are_numbered_in_order_under_their_code(path):
    n = int(path.stem[:2])
    cells = _cells(path)
    lesson = path.stem.endswith("_lesson")  # a lesson is its own page: Figure 1, 2, ... (its lab has n.1, n.2, ...)
    caption = LESSON_CAPTION if lesson else CAPTION
    found = [(i, caption.match(_source(c))) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    found = [(i, m) for i, m in found if m]
    assert found, "no numbered figure"
    numbers = [int(m[1]) for _, m in found] if lesson else [(int(m[1]), int(m[2])) for _, m in found]
    assert numbers == [k if lesson else (n, k) for k in range(1, len(found) + 1)]
    assert all(cells[i - 1]["cell_type"] == "code" for i, _ in found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_links_between_chapters_resolve(path):
    for cell in _cells(path):
        if cell["cell_type"] == "markdown":
            for target in LINK.findall(_source(cell)):
                assert (path.parent / target).resolve().is_file(), (path.stem, target)
