"""The shape of every lesson: what a teacher can give in one 90-minute class.

A lesson (``notebooks/NN_<method>_lesson.ipynb``) states the question and the paper's
equations, writes the method out in plain PyTorch and checks it on the spot against the
package (``torch.testing.assert_close``), works an example on a photo, and ends with
exercises: one that asks the reader to implement an equation (its checker is tested both
ways in ``test_exercises.py``) and one "predict, then run". These tests measure what a
reader meets: words of prose, glued values, the longest stretch of text between two
outputs, the knobs of the parameters cell, figures and tables numbered and referred to.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import LABS, LESSONS

MAX_WORDS, MAX_GLUE, MAX_RUN, MAX_KNOBS = 2000, 10, 250, 5
GLUE = re.compile(r"\{glue:(?:text|)\}`[^`]+`")
MATH = re.compile(r"\$\$.*?\$\$", re.S)
FENCE_LINE = re.compile(r"^\s*(```.*|:[\w-]+:.*)$", re.M)


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def text(cell) -> str:
    return "".join(cell["source"])


def words(markdown: str) -> int:
    """Words of prose: display math and the directive lines of fences are not read as words."""
    return len(FENCE_LINE.sub("", MATH.sub(" ", markdown)).split())


def reading_shape(path) -> dict:
    """Words, glue references and the longest run of markdown between two code cells."""
    total, run, longest, glue = 0, 0, 0, 0
    for cell in cells(path):
        if cell["cell_type"] == "markdown":
            n = words(text(cell))
            total, run, glue = total + n, run + n, glue + len(GLUE.findall(text(cell)))
            longest = max(longest, run)
        else:
            run = 0
    return {"words": total, "glue": glue, "longest run": longest}


def test_the_reading_shape_helper_counts_what_a_reader_reads():
    md = "Two words $$x = 1$$\n```{exercise}\n:label: ex\nthree more words\n```"
    assert words(md) == 5
    assert len(GLUE.findall("a {glue:text}`x:.2f` b {glue:text}`y`")) == 2


def test_every_method_has_a_lesson():
    assert {p.stem.split("_")[0] for p in LESSONS} == {"01", "02", "03", "04", "05"}  # chapters 1 to 5: one lesson each


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_reads_in_one_class(path):
    shape = reading_shape(path)
    assert shape["words"] <= MAX_WORDS, shape
    assert shape["glue"] <= MAX_GLUE, shape
    assert shape["longest run"] <= MAX_RUN, shape


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_has_few_knobs_and_checks_its_code_against_the_package(path):
    import ast

    cs = cells(path)
    params = next(c for c in cs if "parameters" in c.get("metadata", {}).get("tags", []))
    knobs = [n for n in ast.parse(text(params)).body if isinstance(n, ast.Assign)]
    assert len(knobs) <= MAX_KNOBS, [ast.unparse(n.targets[0]) for n in knobs]
    code = "\n".join(text(c) for c in cs if c["cell_type"] == "code")
    assert "torch.testing.assert_close" in code
    # the method is written out in the lesson: at least one function defined in a code cell
    assert re.search(r"^def \w+\(", code, re.M)


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_has_an_implement_and_a_predict_exercise(path):
    import xaihelpers.exercises as ex

    md = "\n".join(text(c) for c in cells(path) if c["cell_type"] == "markdown")
    labels = re.findall(r":label: (ex[\w-]+)", md)
    implement = [lb for lb in labels if lb in ex.CHECKERS and ex.CHECKERS[lb].expected.startswith("a function")]
    assert implement, f"no implement-the-equation exercise among {labels}"
    assert any("*Predict, then run.*" in block for block in md.split(":label:")[1:]), labels


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_every_figure_and_table_is_captioned_and_referred_to(path):
    cs = cells(path)
    md = [text(c) for c in cs if c["cell_type"] == "markdown"]
    code = "\n".join(text(c) for c in cs if c["cell_type"] == "code")
    for kind in ("Figure", "Table"):
        numbers = sorted(set(re.findall(rf"{kind} (\d+)\.", code)))
        for n in numbers:
            captions = [m for m in md if f"**{kind} {n}.**" in m]
            assert captions, f"{kind} {n} has no caption"
            # referred to in a sentence other than its caption
            mentions = sum(len(re.findall(rf"(?<!\*\*){kind} {n}\b(?!\.\*\*)", m)) for m in md)
            assert mentions >= 1, f"{kind} {n} is never referred to"


# Labs read their tables by hand (issue: at most 30 glued values per lab, runs of at most ~250
# words between two outputs, as in a lesson).
MAX_LAB_GLUE = 30
TRIMMED_LABS = ["01_evaluating_explanations", "02_guided_feature_inversion", "03_sharing_ratio_decomposition",
                "04_activation_deactivation", "05_activation_matching", "06_comparison"]


@pytest.mark.parametrize("stem", TRIMMED_LABS)
def test_trimmed_lab_glues_few_values(stem):
    from conftest import LABS

    path = next(p for p in LABS if p.stem == stem)
    shape = reading_shape(path)
    assert shape["glue"] <= MAX_LAB_GLUE, shape
    assert shape["longest run"] <= MAX_RUN, shape


def test_every_lab_is_held_to_the_reading_shape():
    from conftest import LABS

    assert sorted(p.stem for p in LABS if not p.stem.startswith("00")) == sorted(TRIMMED_LABS)


def test_getting_started_keeps_the_rhythm():
    from conftest import NOTEBOOKS

    path = next(p for p in NOTEBOOKS if p.stem.startswith("00"))
    assert reading_shape(path)["longest run"] <= MAX_RUN, reading_shape(path)


@pytest.mark.parametrize("path", [p for p in LABS], ids=[p.stem for p in LABS])
def test_every_lab_figure_and_table_is_referred_to(path):
    # every numbered figure and table of a lab (and of chapter 0) is named in a sentence other than its
    # own caption; a caption inside a worked solution belongs to the solution and is left out
    inside, captions, prose = False, [], []
    for cell in cells(path):
        if cell["cell_type"] != "markdown":
            continue
        src = text(cell)
        inside = inside or "{solution-start}" in src
        found = re.findall(r"\*\*((?:Figure|Table) \d+\.\d+)\.\*\*", src)
        if not inside:
            captions += found
        prose.append(src)
        if "{solution-end}" in src:
            inside = False
    md = "\n".join(prose)
    unreferenced = [c for c in captions if not re.search(re.escape(c) + r"(?!\d)(?!\.\*\*)", md)]
    assert captions and not unreferenced, unreferenced
