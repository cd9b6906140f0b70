"""Write the student edition of the chapters: the same notebooks without the exercise solutions.

Run: ``python scripts/student_notebooks.py [--out student]`` (or ``make student``). The
``student/`` folder is not part of the site's sources (only ``_toc.yml``'s files are) and
is git-ignored. The same editions are published with the book: ``make book``
(``scripts/build_book.py``) copies them to ``_build/html/student/``, and the Colab edition
(``scripts/colab_edition.py``) holds each one as ``<chapter>_student.ipynb``.

What goes, in both forms that sphinx-exercise knows:

* a ``{solution}`` directive in a markdown cell (a dropdown inside one cell): the
  directive is cut out and the rest of the cell stays;
* a gated solution: everything from a ``{solution-start}`` directive through the next
  ``{solution-end}``, inclusive, across cells. Code and markdown cells in between go;
  text before the start fence or after the end fence, in the same cell, stays;
* a cell tagged ``solution`` (or ``remove-student``), wherever it is.

A markdown cell left empty goes too. Everything else stays as it is, among it the
exercises and the check cells (``xh.exercises.check(...)``) that tell a student whether
an answer is right.

``--report NOTEBOOK ...`` reads executed student notebooks instead (a class's
submissions run with papermill) and prints one tab-separated line per check cell: the
notebook, the exercise and what the check said, for ``grep`` or a spreadsheet.

Only the standard library is used, so that ``make student`` needs no virtual environment.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "student"

# A solution directive, in backtick or colon fences: the fence, its name, and its body up to
# the same fence alone on a line. {solution} blocks are whole; -start and -end only open/close.
SOLUTION = re.compile(
    r"^(?P<fence>`{3,}|:{3,})[ \t]*\{(?P<name>solution(?:-start|-end)?)\}[^\n]*\n(?:.*?\n)??^(?P=fence)[ \t]*(?:\n|\Z)",
    re.S | re.M,
)
SOLUTION_TAGS = {"solution", "remove-student"}
"""Cell tags that remove a cell from the student edition."""

CHECK = re.compile(r"\bexercises\.check\(")
"""A check cell: it calls ``xh.exercises.check`` on the student's answer."""

# The chapter's Colab badge opens the Colab edition; a student's opens the student edition.
COLAB_LINK = re.compile(r"(https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/notebooks/)"
                        r"(?P<stem>[\w-]+?)(?<!_student)\.ipynb")
NOTE = ("*Student edition: the exercises come without their solutions. Where an exercise asks for "
        "code or a number, the check cell under it tells you whether your answer is right.*")


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


class GatedSolutionError(ValueError):
    """A ``{solution-start}`` without its ``{solution-end}``, or the other way round."""


def strip_solutions(text: str, inside: bool = False) -> tuple[str, bool]:
    """Markdown without its solutions; and whether a gated solution is still open at its end.

    Parameters
    ----------
    text : str
        A markdown cell's source.
    inside : bool
        Whether the cell starts inside a gated solution (a ``{solution-start}`` in an
        earlier cell, its ``{solution-end}`` not reached yet).

    Returns
    -------
    tuple of (str, bool)
        The text that stays, and ``inside`` at the end of the cell.
    """
    kept, pos = [], 0
    for m in SOLUTION.finditer(text):
        name = m.group("name")
        if not inside:
            kept.append(text[pos:m.start()])
        if name == "solution-start":
            if inside:
                raise GatedSolutionError("a {solution-start} inside another gated solution (no {solution-end} "
                                         f"before it): {m.group(0).strip()[:80]!r}")
            inside = True
        elif name == "solution-end":
            if not inside:
                raise GatedSolutionError("a {solution-end} without a {solution-start} before it")
            inside = False
        pos = m.end()
    if not inside:
        kept.append(text[pos:])
    out = "".join(kept)
    return re.sub(r"\n{3,}", "\n\n", out), inside


def is_check_cell(cell: dict) -> bool:
    return cell.get("cell_type") == "code" and bool(CHECK.search(source(cell)))


def student_version(nb: dict) -> dict:
    """The student edition of one chapter (a new notebook dict; ``nb`` is left unchanged).

    Raises
    ------
    GatedSolutionError
        When the chapter's ``{solution-start}`` and ``{solution-end}`` do not pair up.
    """
    out = json.loads(json.dumps(nb))
    cells, inside = [], False
    for cell in out["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & SOLUTION_TAGS:
            continue
        if cell["cell_type"] == "markdown":
            text, inside_after = strip_solutions(source(cell), inside)
            inside, kept = inside_after, text.strip()
            if not kept:
                continue
            if text != source(cell):
                cell["source"] = text.strip("\n").splitlines(keepends=True)
        elif inside:
            continue
        cells.append(cell)
    if inside:
        raise GatedSolutionError("a {solution-start} without a {solution-end} after it")
    first = next((c for c in cells if c["cell_type"] == "markdown"), None)
    if first is not None:  # the note under the title; the badge opens the student edition on Colab
        head, _, rest = source(first).partition("\n")
        text = (f"{head}\n\n{NOTE}\n\n{rest.lstrip()}" if head.startswith("# ")
                else f"{NOTE}\n\n{source(first)}").rstrip("\n")
        first["source"] = COLAB_LINK.sub(r"\1\g<stem>_student.ipynb", text).splitlines(keepends=True)
    out["cells"] = cells
    return out


# The first cell of a sealed chapter: a cell magic for the code cells of a worked solution.
# The first cell of a solution ("%%solution first") notes the names; the cells of the solution
# see each other's names; after its last cell ("... last") every name the solution bound or
# rebound is forgotten (names starting with "_" are IPython's own).
SEAL = '''from IPython.core.magic import register_cell_magic

_solution_names = {}


@register_cell_magic("solution")
def _sealed_solution(line, cell):
    """Run a cell of a worked solution; after its last cell, forget what the solution bound."""
    shell = get_ipython()
    if "first" in line.split():
        _solution_names.clear()
        _solution_names.update({k: v for k, v in shell.user_ns.items() if not k.startswith("_")})
    result = shell.run_cell(cell)
    if "last" in line.split():
        for name in [k for k in shell.user_ns if not k.startswith("_") and k not in _solution_names]:
            del shell.user_ns[name]
        shell.user_ns.update(_solution_names)
    result.raise_error()
'''
MARK = re.compile(r"\A%%solution( first)?( last)?\n")


def solutions(nb: dict) -> list[list[int]]:
    """The worked solutions that :func:`student_version` removes: per solution, its code cells' indices.

    A gated solution's code cells form one solution; a code cell tagged ``solution`` is one alone.
    """
    found, inside, block = [], False, []
    for i, cell in enumerate(nb["cells"]):
        if set(cell.get("metadata", {}).get("tags", [])) & SOLUTION_TAGS:
            found += [[i]] if cell["cell_type"] == "code" else []
        elif cell["cell_type"] == "markdown":
            inside = strip_solutions(source(cell), inside)[1]
            if not inside and block:
                found.append(block)
                block = []
        elif inside:
            block.append(i)
    return found


def sealed(nb: dict) -> dict:
    """The chapter with each worked solution sealed: it runs, and then its names are gone.

    A papermill run of this notebook executes every cell of the chapter, so the solutions'
    outputs are there as in the chapter, while each cell of the student edition sees only
    what the student edition's own cells bound before it: a cell that needs a solution's
    variable fails with a ``NameError``. (A solution that changes an object in place, rather
    than binding a name, is not undone.)
    """
    out = json.loads(json.dumps(nb))
    for block in solutions(nb):
        for i in block:
            flags = ("first" if i == block[0] else "", "last" if i == block[-1] else "")
            mark = " ".join(["%%solution", *filter(None, flags)]) + "\n"
            out["cells"][i]["source"] = (mark + source(out["cells"][i])).splitlines(keepends=True)
    seal = {"cell_type": "code", "execution_count": None, "id": "sealed-solutions",
            "metadata": {"tags": ["remove-cell"]}, "outputs": [], "source": SEAL}
    out["cells"].insert(0, seal)
    return out


def unsealed(nb: dict) -> dict:
    """An executed :func:`sealed` chapter as the chapter itself: the seal cell and marks go, outputs stay."""
    out = json.loads(json.dumps(nb))
    out["cells"] = [c for c in out["cells"] if c.get("id") != "sealed-solutions"]
    for cell in out["cells"]:
        if cell["cell_type"] == "code" and MARK.match(source(cell)):
            cell["source"] = MARK.sub("", source(cell)).splitlines(keepends=True)
    return out


def solution_text(nb: dict) -> list[str]:
    """The sources of what :func:`student_version` removes (for checks: none of it may stay)."""
    removed, inside = [], False
    for cell in nb["cells"]:
        src = source(cell)
        if set(cell.get("metadata", {}).get("tags", [])) & SOLUTION_TAGS:
            removed.append(src)
        elif cell["cell_type"] == "markdown":
            text, after = strip_solutions(src, inside)
            if text.strip() != src.strip():
                removed.append(src)
            inside = after
        elif inside:
            removed.append(src)
    return removed


def check_label(cell: dict) -> str | None:
    """The exercise label a check cell passes to ``xh.exercises.check`` (its first string argument)."""
    m = re.search(r"\bexercises\.check\(\s*(?:label\s*=\s*)?[rb]?([\"'])([^\"'\n]+)\1", source(cell))
    return m.group(2) if m else None


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append("".join(out.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            text = out.get("data", {}).get("text/plain", "")
            parts.append("".join(text) if isinstance(text, list) else text)
        elif kind == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(p.strip("\n") for p in parts if p.strip())


def check_report(paths: list[Path]) -> list[tuple[str, str, str]]:
    """What the check cells of executed student notebooks printed.

    Parameters
    ----------
    paths : list of Path
        Executed notebooks (e.g. a class's submissions run with papermill).

    Returns
    -------
    list of (str, str, str)
        One row per check cell: the notebook's file name, the exercise label (or
        ``check <n>`` when the cell names none), and its output on one line (``not run``
        when the cell has no output).
    """
    rows = []
    for path in paths:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        checks = [c for c in nb.get("cells", []) if is_check_cell(c)]
        for i, cell in enumerate(checks, 1):
            said = " | ".join(line.strip() for line in _output_text(cell).splitlines() if line.strip())
            rows.append((Path(path).name, check_label(cell) or f"check {i}", said or "not run"))
    return rows


def write_student(out: Path = OUT, notebooks: list[Path] | None = None) -> list[Path]:
    """Write the student edition of every chapter (or of ``notebooks``) into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = student_version(json.loads(path.read_text(encoding="utf-8")))
        target = out / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(OUT), help="output folder (default: student/)")
    ap.add_argument("--report", nargs="+", type=Path, metavar="NOTEBOOK",
                    help="instead: print what the check cells of these executed notebooks said, one "
                         "tab-separated line per check cell (notebook, exercise, output)")
    args = ap.parse_args(argv)
    if args.report:
        for row in check_report(args.report):
            print("\t".join(row))
        return
    for path in write_student(Path(args.out)):
        print(f"notebooks/{path.name} -> {path}")


if __name__ == "__main__":
    main()
