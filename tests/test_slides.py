"""Lecture slides (scripts/slides.py): one section per heading, no solutions, no parameters cell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from bs4 import BeautifulSoup  # nbconvert depends on it
from conftest import NOTEBOOKS
from conftest import script as _script


slides = _script("slides")
sn = _script("student_notebooks")

# a 1x1 PNG: what an executed figure cell holds
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

SYNTHETIC = [
    new_markdown_cell("# The chapter\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                      "(https://colab.research.google.com/github/o/r/blob/colab/notebooks/ch.ipynb)\n\nWhy it matters."),
    new_code_cell('import sys\nif "google.colab" in sys.modules:\n    %pip install -q "pkg @ git+https://github.com/o/r"',
                  metadata={"tags": ["hide-output"]}),
    new_code_cell("SMOKE = False  # PARAMETERS-CELL\nN_IMAGES = 64", metadata={"tags": ["parameters"]}),
    new_markdown_cell("## The method\n\nEquation one, $y = Wx$.\n\n```python\n# not a heading: a comment in code\n```\n\n"
                      "### Its implementation\n\nThe code under the equation.\n\n## The experiment\n\nWhat we ran."),
    new_code_cell("y = W @ x  # PLAIN-CODE"),
    new_code_cell("fig, ax = plt.subplots()  # FIGURE-CODE\nax.imshow(m)"),
    new_markdown_cell("SKIPPED-MARKDOWN", metadata={"tags": ["skip-slide"]}),
    new_markdown_cell("FORCED-SLIDE: a slide of its own without a heading", metadata={"tags": ["slide"]}),
    new_markdown_cell("## Summary\n\n- the point\n\n## Exercises\n\n```{exercise}\n:label: ex-a\nEXERCISE-A: compute it.\n```"),
    new_code_cell("answer = None\nxh.exercises.check('ex-a', answer)  # CHECK-CELL"),
    new_markdown_cell("```{solution-start} ex-a\n:class: dropdown\n```\nGATED-SOLUTION-PROSE"),
    new_code_cell("GATED_SOLUTION_CODE = 1"),
    new_markdown_cell("```{solution-end}\n```\n\n```{exercise}\n:label: ex-b\nEXERCISE-B: discuss.\n```\n\n"
                      "```{solution} ex-b\n:class: dropdown\nDROPDOWN-SOLUTION\n```"),
]
HEADINGS = ["The chapter", "The method", "Its implementation", "The experiment", "Summary", "Exercises"]


def _notebook(cells) -> Path:
    return json.loads(nbformat.writes(new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})))


def _write(tmp_path: Path, nb: dict, name: str = "ch.ipynb") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def _deck(html: str) -> list[list]:
    """The slides, each a list of its (sub)sections, outermost order."""
    soup = BeautifulSoup(html, "html.parser")
    return [sl.find_all("section", recursive=False) for sl in soup.select("div.slides > section")]


def _first_heading(section) -> str | None:
    h = section.find(re.compile(r"^h[1-6]$"))
    return h.get_text(" ", strip=True).rstrip("¶").strip() if h else None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_synthetic_chapter_one_section_per_heading(tmp_path):
    src = _write(tmp_path, _notebook(SYNTHETIC))
    target, origin = slides.build(src, tmp_path / "out", use_cache=False)
    assert origin.startswith("source") and target.name == "ch.slides.html"
    html = target.read_text()
    deck = _deck(html)
    sections = [s for slide in deck for s in slide]
    firsts = [_first_heading(s) for s in sections]
    for title in HEADINGS:
        assert firsts.count(title) == 1, (title, firsts)
    # '#' and '##' start slides, '###' a subslide of its slide; the tagged cell a slide of its own
    assert [_first_heading(slide[0]) for slide in deck] == [
        "The chapter", "The method", "The experiment", None, "Summary", "Exercises"]
    method = deck[1]
    assert _first_heading(method[1]) == "Its implementation"
    assert "FORCED-SLIDE" in deck[3][0].get_text()
    text = _squash(BeautifulSoup(html, "html.parser").get_text())
    for gone in ("PARAMETERS-CELL", "google.colab", "CHECK-CELL", "SKIPPED-MARKDOWN", "GATED-SOLUTION-PROSE",
                 "GATED_SOLUTION_CODE", "DROPDOWN-SOLUTION", "{exercise}", ":label:", "{solution"):
        assert gone not in text, gone
    assert _squash(sn.NOTE) not in text  # the student edition's note is for readers of the notebook
    assert "#notaheading:acommentincode" in text  # the code block inside the markdown stayed where it was
    assert "PLAIN-CODE" in text and "FIGURE-CODE" in text  # unexecuted: the code that draws is shown
    # the exercises are the last slide, both of them, without their solutions
    last = deck[-1][0].get_text()
    assert len(deck[-1]) == 1 and "EXERCISE-A" in last and "EXERCISE-B" in last


def test_executed_figure_gets_a_subslide_with_its_output_alone(tmp_path):
    cells = [c.copy() for c in SYNTHETIC]
    fig = new_code_cell("fig, ax = plt.subplots()  # FIGURE-CODE", outputs=[
        new_output("stream", name="stderr", text="WARNING-ON-STDERR"),
        new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m1"},
                                         "text/plain": "PROGRESS-BAR 0%|"}),
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
        new_output("display_data", data={"application/papermill.record/text/plain": "0.5"},
                   metadata={"scrapbook": {"name": "share", "mime_prefix": "application/papermill.record/"}}),
    ])
    plain = new_code_cell("print('PRINTED-OUTPUT')", outputs=[new_output("stream", name="stdout", text="PRINTED-OUTPUT\n")])
    cells[4], cells[5] = plain, fig
    cells[3] = new_markdown_cell("## The method\n\nThe share is {glue:text}`share:.0%`.")
    executed = _write(tmp_path, _notebook(cells), "executed.ipynb")
    src = _write(tmp_path, _notebook(SYNTHETIC))
    target, origin = slides.build(src, tmp_path / "out", executed=executed)
    assert origin.startswith("executed")
    deck = _deck(target.read_text())
    method = next(slide for slide in deck if _first_heading(slide[0]) == "The method")
    figure = method[-1]
    assert figure.find("img") is not None and "FIGURE-CODE" not in figure.get_text()
    text = target.read_text()
    assert "PRINTED-OUTPUT" in text and "WARNING-ON-STDERR" not in text and "PROGRESS-BAR" not in text
    assert "The share is 50%." in BeautifulSoup(text, "html.parser").get_text()


def test_explicit_tags_override_the_structure():
    nb = _notebook([new_markdown_cell("## A heading"), new_markdown_cell("### demoted", metadata={"tags": ["fragment"]}),
                    new_code_cell("plt.plot(x)", metadata={"tags": ["skip-slide"]}),
                    new_code_cell("x = 1", metadata={"tags": ["subslide"]})])
    deck = slides.slide_notebook(nb, executed=False, bib={})
    nbformat.validate(nbformat.reads(json.dumps(deck), as_version=4))
    kinds = [(c["cell_type"], c["metadata"]["slideshow"]["slide_type"]) for c in deck["cells"]]
    assert kinds == [("markdown", "slide"), ("markdown", "fragment"), ("code", "subslide")]


def test_split_at_headings_leaves_fences_alone():
    text = "## A\n\ntext\n\n````{note}\n# inside a directive\n```python\n# inside code\n```\n````\n\n### B\n\nmore"
    pieces = slides.split_at_headings(text)
    assert [slides.heading(p) for p in pieces] == [(2, "A"), (3, "B")]
    assert "".join(pieces) == text


@pytest.fixture(scope="module")
def chapter_deck(tmp_path_factory):
    """Chapter 0's slides, from its source (unexecuted)."""
    out = tmp_path_factory.mktemp("slides")
    assert slides.main(["--only", "00", "--source", "--out", str(out)]) == 0
    return NOTEBOOKS[0], (out / f"{NOTEBOOKS[0].stem}.slides.html").read_text()


def _headings(nb: dict) -> list[tuple[int, str]]:
    """The chapter's headings of levels 1-3 up to its Exercises heading (inclusive), fences aside."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for piece in slides.split_at_headings(sn.source(cell)):
            head = slides.heading(piece)
            if head and head[0] <= 3:
                found.append(head)
                if slides.EXERCISES.match(head[1]):
                    return found
    return found


def test_real_chapter_has_one_section_per_heading_and_no_solution(chapter_deck):
    path, html = chapter_deck
    full = json.loads(path.read_text())
    deck = _deck(html)
    firsts = [_first_heading(s) for slide in deck for s in slide]
    heads = _headings(sn.student_version(full))
    assert len(heads) >= 5
    for level, title in heads:
        plain = re.sub(r"[*_`]|\{[\w:]+\}", "", title)
        assert sum(1 for f in firsts if f and re.sub(r"[*_`]", "", f) == plain) == 1, (title, firsts)
    assert len(deck) == sum(1 for level, _ in heads if level <= 2)  # '#' and '##' open the slides
    assert slides.EXERCISES.match(_first_heading(deck[-1][0]) or ""), "the exercises come last"
    text = _squash(BeautifulSoup(html, "html.parser").get_text())
    student_lines = {line.strip() for c in sn.student_version(full)["cells"] for line in sn.source(c).splitlines()}
    solution_lines = [line.strip() for piece in sn.solution_text(full) for line in piece.splitlines()
                      if len(line.strip()) >= 25 and line.strip() not in student_lines]
    assert solution_lines, "chapter 0 has solutions to leave out"
    for line in solution_lines:
        assert _squash(line) not in text, line
    params = next(c for c in full["cells"] if "parameters" in c["metadata"].get("tags", []))
    for line in sn.source(params).splitlines():
        if line.strip():
            assert _squash(line) not in text, line
    assert "google.colab" not in text
