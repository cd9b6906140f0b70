"""Student editions: every exercise and check cell stays, no solution does, and they run.

scripts/student_notebooks.py removes both kinds of sphinx-exercise solutions (``{solution}``
dropdowns and gated ``{solution-start}``/``{solution-end}`` runs of cells); the site build
publishes the editions under ``_build/html/student/`` with badges on each chapter page, and
the Colab edition holds them as ``<chapter>_student.ipynb``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from conftest import NOTEBOOKS, ROOT
from conftest import script as _script


sn = _script("student_notebooks")

# What a solution leaves behind if any of it stays.
SOLUTION_MARKUP = re.compile(r"\{solution(-start|-end)?\}")

# A chapter in miniature with both forms of solution: a dropdown inside a markdown cell
# and a gated solution whose cells run; a check cell after each computable exercise.
SYNTHETIC = [
    new_markdown_cell("# A chapter\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                      "(https://colab.research.google.com/github/o/r/blob/colab/notebooks/ch.ipynb)\n\nText."),
    new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}),
    new_markdown_cell("## Exercises\n\n```{exercise}\n:label: ex-a\nWhat is 6 times 7?\n```\n\n"
                      "```{solution} ex-a\n:class: dropdown\nDROPDOWN-ANSWER: 42, by multiplication.\n```\n"),
    new_code_cell("answer = None  # your answer\nxh.exercises.check('ex-a', answer)"),
    new_markdown_cell("```{exercise}\n:label: ex-b\nCompute the mean of 1, 2 and 3.\n```\n\n"
                      "```{solution-start} ex-b\n:class: dropdown\n```\nGATED-PROSE: the mean is the sum over the count."),
    new_code_cell("GATED_CODE = (1 + 2 + 3) / 3"),
    new_markdown_cell("GATED-MIDDLE: which gives two."),
    new_code_cell("print(GATED_CODE)"),
    new_markdown_cell("```{solution-end}\n```\n\nAfter the solution, the chapter goes on."),
    new_code_cell("mean = None  # your answer\nxh.exercises.check('ex-b', mean)"),
    new_markdown_cell("```{exercise}\n:label: ex-c\nAn open question.\n```"),
    new_markdown_cell("````{solution-start} ex-c\n:class: dropdown\n````"),
    new_code_cell("GATED_ONLY_CELL = 1"),
    new_markdown_cell(":::{solution-end}\n:::"),
    new_code_cell("TAGGED_SOLUTION = 1", metadata={"tags": ["solution"]}),
]


def _synthetic() -> dict:
    return json.loads(nbformat.writes(new_notebook(cells=SYNTHETIC)))


def _text(nb: dict) -> str:
    return "\n".join(sn.source(c) for c in nb["cells"])


def test_both_kinds_of_solution_go_and_check_cells_stay():
    nb = _synthetic()
    out = sn.student_version(nb)
    text = _text(out)
    for gone in ("DROPDOWN-ANSWER", "GATED-PROSE", "GATED_CODE", "GATED-MIDDLE", "GATED_ONLY_CELL",
                 "TAGGED_SOLUTION", ":class: dropdown"):
        assert gone not in text, gone
    assert not SOLUTION_MARKUP.search(text)
    assert text.count("{exercise}") == 3
    assert "After the solution, the chapter goes on." in text  # text after solution-end in its cell
    assert "What is 6 times 7?" in text and "Compute the mean" in text
    checks = [sn.source(c) for c in out["cells"] if sn.is_check_cell(c)]
    assert checks == [sn.source(c) for c in nb["cells"] if sn.is_check_cell(c)] and len(checks) == 2
    assert any("parameters" in c["metadata"].get("tags", []) for c in out["cells"])
    nbformat.validate(nbformat.reads(json.dumps(out), as_version=4))
    assert nb == _synthetic(), "the chapter itself is left unchanged"


def test_student_edition_says_what_it_is_and_its_badge_opens_the_student_colab_edition():
    first = sn.source(sn.student_version(_synthetic())["cells"][0])
    assert first.startswith("# A chapter\n\n" + sn.NOTE)
    assert "/notebooks/ch_student.ipynb)" in first and "/notebooks/ch.ipynb)" not in first


def test_solution_text_lists_what_goes():
    removed = "\n".join(sn.solution_text(_synthetic()))
    for gone in ("DROPDOWN-ANSWER", "GATED_CODE", "GATED-MIDDLE", "GATED_ONLY_CELL", "TAGGED_SOLUTION"):
        assert gone in removed
    assert "xh.exercises.check" not in removed


@pytest.mark.parametrize("cells", [
    [new_markdown_cell("```{solution-start} ex\n```"), new_code_cell("x = 1")],
    [new_code_cell("x = 1"), new_markdown_cell("```{solution-end}\n```")],
    [new_markdown_cell("```{solution-start} a\n```"), new_markdown_cell("```{solution-start} b\n```"),
     new_markdown_cell("```{solution-end}\n```")],
], ids=["start without end", "end without start", "start inside start"])
def test_unpaired_gates_are_refused(cells):
    nb = json.loads(nbformat.writes(new_notebook(cells=cells)))
    with pytest.raises(sn.GatedSolutionError):
        sn.student_version(nb)


@pytest.fixture(scope="module")
def editions(tmp_path_factory) -> Path:
    """``make student``: the script run as the Makefile runs it, into a temporary folder."""
    out = tmp_path_factory.mktemp("student")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "student_notebooks.py"), "--out", str(out)],
                   check=True, capture_output=True)
    return out


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_chapter_has_a_student_edition_without_solutions(editions, nb):
    full = json.loads(nb.read_text())
    student = nbformat.read(editions / nb.name, as_version=4)
    nbformat.validate(student)
    student = json.loads(nbformat.writes(student))
    text = _text(student)
    assert not SOLUTION_MARKUP.search(text) and ":class: dropdown" not in text
    assert SOLUTION_MARKUP.search(_text(full)), "the chapter has solutions to remove"
    assert text.count("{exercise") == _text(full).count("{exercise") >= 3
    kept_code = {sn.source(c).strip() for c in student["cells"] if c["cell_type"] == "code"}
    for removed in sn.solution_text(full):
        assert removed.strip() not in kept_code
    removed = sn.solution_text(full)
    checks = [sn.source(c) for c in full["cells"] if sn.is_check_cell(c) and sn.source(c) not in removed]
    assert [sn.source(c) for c in student["cells"] if sn.is_check_cell(c)] == checks
    if any(sn.is_check_cell(c) for c in full["cells"]):  # a solution may call the check too; the check cell stays
        assert checks
    # every cell that is neither solution nor emptied by the removal stays, in order
    full_code = [sn.source(c) for c in full["cells"] if c["cell_type"] == "code"]
    assert [sn.source(c) for c in student["cells"] if c["cell_type"] == "code"] == \
        [s for s in full_code if s not in removed]


def test_colab_edition_holds_the_student_editions(tmp_path):
    colab = _script("colab_edition")
    written = colab.write_edition(tmp_path, notebooks=[NOTEBOOKS[0]])
    assert [p.name for p in written] == [NOTEBOOKS[0].name, f"{NOTEBOOKS[0].stem}_student.ipynb"]
    full, student = (json.loads(p.read_text()) for p in written)
    text = _text(student)
    for mark in ("<summary>Solution</summary>", "**Solution**"):  # a dropdown's, a gated solution's
        assert mark not in text
    assert "<summary>Solution</summary>" in _text(full) or "**Solution**" in _text(full)
    assert text.count("### Exercise ") == _text(full).count("### Exercise ") >= 3
    assert sn.NOTE in text
    for raw in ("{glue", "{cite", "{exercise", "{solution", ":label:", ":class: dropdown"):
        assert raw not in text, raw  # Colab renders no MyST
    assert not any(c.get("metadata", {}).get("jupyter", {}).get("source_hidden") for c in student["cells"])


def test_site_build_publishes_the_student_editions_with_badges_on_each_chapter(tmp_path):
    bb = _script("build_book")
    written = bb.publish_student(tmp_path / "html", NOTEBOOKS)
    assert sorted(p.name for p in written) == sorted(p.name for p in NOTEBOOKS)
    assert all(p.parent == tmp_path / "html" / "student" for p in written)
    for nb in NOTEBOOKS:
        badged = json.loads(bb.student_badges(nb.read_text(), nb.name))
        first = sn.source(next(c for c in badged["cells"] if c["cell_type"] == "markdown"))
        assert f'href="../student/{nb.name}"' in first
        student_colab = re.search(r"\((https://colab\.research\.google\.com/github/\S+?_student\.ipynb)\)", first)
        assert student_colab and student_colab.group(1).endswith(f"/notebooks/{nb.stem}_student.ipynb")
        # the badge sits next to the chapter's Colab badge, which links the same branch
        assert student_colab.group(1).replace("_student.ipynb", ".ipynb") in first
        assert len(badged["cells"]) == len(json.loads(nb.read_text())["cells"])


def _seal_case(*after: str) -> dict:
    """A chapter whose worked solution (two code cells) binds ANSWER and rebinds base, then cells ``after`` it."""
    cells = [new_code_cell("SMOKE = False", metadata={"tags": ["parameters"]}), new_code_cell("base = 2"),
             new_markdown_cell("```{exercise}\n:label: ex-s\nTwice 21?\n```\n\n```{solution-start} ex-s\n```"),
             new_code_cell("ANSWER = base * 21"), new_markdown_cell("Within the solution its names stay:"),
             new_code_cell("print('solution says', ANSWER)\nbase = 100"),
             new_markdown_cell("```{solution-end}\n```"), *map(new_code_cell, after)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.loads(nbformat.writes(nb))


def test_sealing_marks_exactly_the_cells_the_student_edition_removes():
    for nb in [_seal_case("print(base)")] + [json.loads(p.read_text()) for p in NOTEBOOKS]:
        out = sn.sealed(nb)
        assert sn.source(out["cells"][0]) == sn.SEAL and out["cells"][1:] != nb["cells"]
        marked = [sn.MARK.sub("", sn.source(c)) for c in out["cells"][1:]]
        assert marked == [sn.source(c) for c in nb["cells"]]  # nothing else changes
        still_there = [sn.source(c) for c in out["cells"][1:] if c["cell_type"] == "code"
                       and not sn.MARK.match(sn.source(c))]
        for block in sn.solutions(nb):  # one solution: its first cell notes the names, its last forgets
            firsts = [i for i in block if " first" in sn.source(out["cells"][i + 1]).split("\n")[0]]
            lasts = [i for i in block if " last" in sn.source(out["cells"][i + 1]).split("\n")[0]]
            assert firsts == block[:1] and lasts == block[-1:]
        student = sn.student_version(nb)
        assert still_there == [sn.source(c) for c in student["cells"] if c["cell_type"] == "code"]
        assert sn.unsealed(out) == nb


@pytest.mark.notebook
def test_a_sealed_solution_runs_and_the_cells_after_it_cannot_use_its_names(tmp_path):
    import papermill as pm

    def run(nb: dict, name: str) -> list[str]:
        (tmp_path / name).write_text(json.dumps(nb))
        pm.execute_notebook(str(tmp_path / name), str(tmp_path / f"out-{name}"), kernel_name="python3",
                            progress_bar=False)
        cells = json.loads((tmp_path / f"out-{name}").read_text())["cells"]
        return ["".join(o.get("text", "")) for c in cells for o in c.get("outputs", [])]

    said = run(sn.sealed(_seal_case("print('base is', base)")), "good.ipynb")
    assert "solution says 42\n" in said and said[-1] == "base is 2\n"  # it ran; its rebinding is undone
    leaky = _seal_case("print(ANSWER)")
    assert run(leaky, "unsealed.ipynb")[-1] == "42\n"  # the chapter itself runs
    with pytest.raises(pm.PapermillExecutionError, match="NameError"):
        run(sn.sealed(leaky), "sealed.ipynb")  # its student edition would not


@pytest.mark.notebook
def test_student_edition_of_chapter_0_runs(editions, tmp_path):
    import papermill as pm

    stem = "00_getting_started"
    os.environ.pop("MPLBACKEND", None)  # a non-inline backend would drop the figures
    out = tmp_path / f"{stem}.ipynb"
    pm.execute_notebook(str(editions / f"{stem}.ipynb"), str(out), parameters={"SMOKE": True},
                        cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    checks = [c for c in cells if sn.is_check_cell(c)]
    assert all(c.get("outputs") for c in checks), "every check cell says something"


def test_report_lists_what_each_check_cell_said(tmp_path):
    said = {"ex-a": "right: 42 is the answer", "ex-b": "wrong: the mean divides by the count\nhint: use len(xs)"}
    nb = sn.student_version(_synthetic())
    checks = [c for c in nb["cells"] if sn.is_check_cell(c)]
    checks[0]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": said["ex-a"] + "\n"}]
    checks[1]["outputs"] = [{"output_type": "display_data", "metadata": {},
                             "data": {"text/plain": said["ex-b"]}}]
    done = tmp_path / "alice.ipynb"
    done.write_text(json.dumps(nb))
    bare = tmp_path / "bob.ipynb"  # handed in without running
    bare.write_text(json.dumps(sn.student_version(_synthetic())))
    assert sn.check_report([done, bare]) == [
        ("alice.ipynb", "ex-a", "right: 42 is the answer"),
        ("alice.ipynb", "ex-b", "wrong: the mean divides by the count | hint: use len(xs)"),
        ("bob.ipynb", "ex-a", "not run"), ("bob.ipynb", "ex-b", "not run")]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "student_notebooks.py"), "--report", str(done)],
                          check=True, capture_output=True, text=True)
    assert proc.stdout.splitlines()[1].split("\t") == ["alice.ipynb", "ex-b", said["ex-b"].replace("\n", " | ")]


def test_teachers_page_links_every_student_edition_and_names_real_exercises():
    import yaml

    page = (ROOT / "book" / "for_teachers.md").read_text()
    slug = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].split("github.com/")[1].rstrip("/")
    for nb in NOTEBOOKS:
        assert f"https://colab.research.google.com/github/{slug}/blob/colab/notebooks/{nb.stem}_student.ipynb" in page
        assert f'href="../student/{nb.name}"' in page and f"`{nb.stem}.slides.html`" in page
    labels = {m for nb in NOTEBOOKS for m in re.findall(r":label: (ex[\w-]+)", nb.read_text())}
    named = set(re.findall(r"`(ex\d\d-[\w-]+)`", page))
    assert len(named) >= len(NOTEBOOKS) and named <= labels, sorted(named - labels)


@pytest.mark.site
def test_make_book_publishes_the_student_editions(tmp_path):
    """A one-chapter book built by scripts/build_book.py: the page has the badges, the site the edition."""
    bb = _script("build_book")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "xaihelpers").mkdir()
    (tmp_path / "xaihelpers" / "__init__.py").write_text("")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# A book\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/ch\n")
    (tmp_path / "_config.yml").write_text("title: A book\nexecute:\n  timeout: 120\n"
                                          "sphinx:\n  extra_extensions: [sphinx_exercise]\n")
    nb = _synthetic()
    nb["cells"] = [c for c in nb["cells"] if "xh." not in sn.source(c)]  # no package in this book
    nb["metadata"]["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "notebooks" / "ch.ipynb").write_text(json.dumps(nb))
    assert bb.main(["--jobs", "1"], root=tmp_path) == 0
    html = tmp_path / "_build" / "html"
    edition = json.loads((html / "student" / "ch.ipynb").read_text())
    assert edition == json.loads(json.dumps(sn.student_version(nb)))
    page = (html / "notebooks" / "ch.html").read_text()
    assert 'href="../student/ch.ipynb"' in page
    assert "https://colab.research.google.com/github/o/r/blob/colab/notebooks/ch_student.ipynb" in page
    assert "DROPDOWN-ANSWER" in page  # the book itself keeps its solutions
