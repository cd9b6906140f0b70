"""The chapters on Colab: they run where only Colab's packages and the install cell's are; the Colab edition.

Colab's preinstalled packages assumed here, a small part of what Colab has, so that a
chapter that needs anything else fails here: torch, torchvision, numpy, pandas,
matplotlib, seaborn, scikit-image, scikit-learn, ipywidgets, tqdm, pillow, ipykernel
(:data:`COLAB_PREINSTALLED`; pip and setuptools come with every Python). The chapters'
first cell adds ``xaihelpers[...]`` with the extras it names (``baselines``).

How, without a second virtual environment: from the installed distributions'
metadata (``importlib.metadata``) the dependency closure of those packages is computed,
following requirement markers for the extras asked for; every other installed
distribution's top-level modules (myst-nb, jupyter-book, papermill, quantus, selenium,
sphinx, pytest, ...) are hidden in the chapters' kernel by a meta-path finder that
replaces Python's path finder, installed by a ``sitecustomize.py`` on that kernel's
``PYTHONPATH`` (a kernelspec of its own in a temporary ``JUPYTER_PATH``): importing one
raises ``ModuleNotFoundError``, ``importlib.util.find_spec`` answers ``None`` and
``importlib.metadata`` does not list it, as where it is not installed.
The first test checks inside that kernel that they are blocked and Colab's are not.

The chapters run in that kernel as their Colab edition (``scripts/colab_edition.py``),
the notebooks a Colab reader opens, with ``SMOKE=True``: their prose carries the book's
run's values (no MyST role, no bold glue name) and no output prints a ``name = value``
line. Which chapters: :data:`COLAB_CHAPTERS`. By default
00, 01 and 05 (about 75 s of SMOKE on the 2-core CPU; all seven take about 9 min, and
20 min on a loaded machine, on top of the SMOKE runs of ``test_notebooks.py``): 00 is
the edition's shortest, 01 calls all sixteen baselines of the ``baselines`` extra
(captum, zennit, grad-cam), 05 the widgets. What could fail only on Colab in the others,
an import of a package Colab lacks, is checked for every chapter and every module of
xaihelpers in the first test (every ``import`` statement, also those inside functions,
must resolve in the Colab kernel). ``XAI_COLAB_CHAPTERS=all`` runs all seven; a list of
stems or numbers (``XAI_COLAB_CHAPTERS=02,06``) runs those.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import sys
from pathlib import Path

import pytest

from conftest import NOTEBOOKS, ROOT, script

COLAB_PREINSTALLED = (
    "torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "scikit-image",
    "scikit-learn", "ipywidgets", "tqdm", "pillow", "ipykernel", "pip", "setuptools",
)
"""Distributions Colab has before the install cell runs (a subset of Colab's)."""

MUST_BE_MISSING = ("myst_nb", "jupyter_book", "papermill", "quantus", "selenium", "sphinx", "pytest")
MUST_BE_THERE = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "seaborn", "skimage", "sklearn",
                 "ipywidgets", "tqdm", "PIL", "ipykernel", "xaihelpers", "captum", "zennit", "pytorch_grad_cam")

_wanted = os.environ.get("XAI_COLAB_CHAPTERS", "00,01,05").strip()
COLAB_CHAPTERS = [p.stem for p in NOTEBOOKS
                  if _wanted == "all" or any(p.stem.startswith(w.strip()) for w in _wanted.split(",") if w.strip())]
"""Stems of the chapters run in the Colab kernel (``XAI_COLAB_CHAPTERS``, default ``00,01,05``)."""

INSTALL = re.compile(r'%pip install [^\n]*"xaihelpers\[(?P<extras>[^\]]*)\] @ git\+(?P<url>[^"\s]+)"')
# what Colab would show raw: a MyST role, a directive fence, a MyST target
MYST_ROLE = re.compile(r"\{[A-Za-z][\w:.-]*\}`")
MYST_FENCE = re.compile(r"^[ \t]*(`{3,}|:{3,}|~{3,})[ \t]*\{", re.M)
MYST_TARGET = re.compile(r"^\([\w:.-]+\)=[ \t]*$", re.M)


def _script():
    return script("colab_edition")


edition_script = _script()


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def install_extras() -> tuple[str, ...]:
    """The extras every chapter's Colab cell installs (one install line, the same in every chapter)."""
    found = set()
    for nb in NOTEBOOKS:
        code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        m = INSTALL.search(_source(code[0]))
        assert m, f"{nb.name}: the first code cell does not install xaihelpers[...] @ git+URL"
        assert m.group("url").rstrip("/") == edition_script.repository_url(), (nb.name, m.group("url"))
        found.add(tuple(sorted(e.strip() for e in m.group("extras").split(",") if e.strip())))
    assert len(found) == 1, f"the chapters install different extras: {found}"
    return found.pop()


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_closure(roots) -> set[str]:
    """Installed distributions needed by ``roots`` (pairs of a name and its extras), their requirements' closure."""
    from packaging.requirements import Requirement

    installed = {}
    for dist in md.distributions():
        installed.setdefault(_canon(dist.metadata["Name"]), dist)
    extras_of: dict[str, set[str]] = {}
    todo = [(_canon(n), set(e)) for n, e in roots]
    while todo:
        name, extras = todo.pop()
        if name not in installed or (name in extras_of and extras <= extras_of[name]):
            continue
        extras_of.setdefault(name, set()).update(extras)
        for text in installed[name].requires or []:
            req = Requirement(text)
            # a requirement counts when its marker holds for the base package or one of the extras asked for
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras_of[name])):
                todo.append((_canon(req.name), set(req.extras)))
    return set(extras_of)


def blocked_modules(allowed: set[str]) -> list[str]:
    """Top-level modules of installed distributions outside ``allowed`` (none shared with an allowed one)."""
    blocked = []
    for module, dists in md.packages_distributions().items():
        if module in sys.stdlib_module_names or not module.isidentifier():
            continue
        if all(_canon(d) not in allowed for d in dists):
            blocked.append(module)
    return sorted(blocked)


SITECUSTOMIZE = '''"""Hides the packages Colab does not have (tests/test_colab.py writes this file).

The finder of sys.path's packages is replaced by one that does not see them: importing
one raises ModuleNotFoundError, importlib.util.find_spec answers None and
importlib.metadata does not list them, as where they are not installed.
"""
import sys
from importlib.machinery import PathFinder

BLOCKED = frozenset({blocked!r})
BLOCKED_DISTRIBUTIONS = frozenset({dists!r})


class ColabPathFinder(PathFinder):
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname.partition(".")[0] in BLOCKED:
            return None
        return super().find_spec(fullname, path, target)

    @classmethod
    def find_distributions(cls, *args, **kwargs):
        for dist in super().find_distributions(*args, **kwargs):
            name = (dist.metadata["Name"] or "").replace("_", "-").replace(".", "-").lower()
            if name not in BLOCKED_DISTRIBUTIONS:
                yield dist


sys.meta_path[:] = [ColabPathFinder if finder is PathFinder else finder for finder in sys.meta_path]
'''


@pytest.fixture(scope="module")
def colab_kernel(tmp_path_factory):
    """Name of a Jupyter kernel whose imports are those of Colab plus the install cell's."""
    allowed = colab_closure([(n, ()) for n in COLAB_PREINSTALLED] + [("xaihelpers", install_extras())])
    assert {"torch", "captum", "zennit", "grad-cam"} <= allowed
    assert not {"myst-nb", "papermill", "quantus", "selenium", "jupyter-book"} & allowed
    blocked = blocked_modules(allowed)
    dists = sorted({_canon(d.metadata["Name"]) for d in md.distributions()} - allowed)
    home = tmp_path_factory.mktemp("colab_kernel")
    (home / "shim").mkdir()
    (home / "shim" / "sitecustomize.py").write_text(SITECUSTOMIZE.format(blocked=blocked, dists=dists))
    spec = home / "jupyter" / "kernels" / "colab"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (Colab's packages)", "language": "python",
        "env": {"PYTHONPATH": str(home / "shim")},
    }))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(home / "jupyter"))
        mp.delenv("MPLBACKEND", raising=False)  # the inline backend keeps the figures
        yield "colab"


def execute(path: Path, out: Path, kernel: str, parameters: dict | None = None) -> dict:
    import papermill as pm

    pm.execute_notebook(str(path), str(out), parameters=parameters or {}, cwd=str(path.parent),
                        kernel_name=kernel, progress_bar=False)
    return json.loads(out.read_text())


def _output_text(nb: dict) -> str:
    parts = []
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            text = o.get("text") or o.get("data", {}).get("text/plain", "")
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


def imported_modules() -> list[str]:
    """Top-level modules that xaihelpers' sources and the chapters' code cells import (optional imports left out)."""
    from IPython.core.inputtransformer2 import TransformerManager

    names = set()
    sources = [p.read_text() for p in (ROOT / "xaihelpers").glob("*.py")]
    for nb in NOTEBOOKS:
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] == "code":  # IPython's magics become Python calls
                sources.append(TransformerManager().transform_cell(_source(cell)))
    for src in sources:
        tree = ast.parse(src)
        optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) and any(  # try: import x / except ImportError
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in t.handlers)
            for stmt in t.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names.update(a.name.partition(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names.add(node.module.partition(".")[0])
    return sorted(names - set(sys.stdlib_module_names) - {"__future__"})


@pytest.mark.notebook
def test_colab_kernel_has_colabs_packages_and_no_others(colab_kernel, tmp_path):
    import nbformat

    check = f'''
import importlib, importlib.util, io, contextlib
for name in {MUST_BE_MISSING!r}:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise AssertionError(name + " is importable, but Colab does not have it")
for name in {MUST_BE_THERE!r}:
    importlib.import_module(name)
missing = [n for n in {imported_modules()!r} if importlib.util.find_spec(n) is None]
assert not missing, f"xaihelpers or a chapter imports {{missing}}, which Colab lacks"
import numpy as np
import xaihelpers as xh
with contextlib.redirect_stdout(io.StringIO()) as shown:
    value = xh.results.glue("probe", np.float64(0.123456789))
assert shown.getvalue() == "" and value == 0.123457, shown.getvalue()
print("colab kernel ok")
'''
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(check)])
    path = tmp_path / "check.ipynb"
    nbformat.write(nb, path)
    out = execute(path, tmp_path / "check_out.ipynb", colab_kernel)
    assert "colab kernel ok" in _output_text(out)


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    """The Colab edition of every chapter, written into a temporary folder."""
    out = tmp_path_factory.mktemp("colab_edition")
    edition_script.write_edition(out)
    return out


NAME_VALUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]* = \S", re.M)
BOLD_NAME = re.compile(r"\*\*`[A-Za-z_][\w]*`\*\*")


@pytest.mark.notebook
@pytest.mark.parametrize("stem", COLAB_CHAPTERS)
def test_chapter_runs_on_colab_and_reads_like_the_site(colab_kernel, edition, stem, tmp_path):
    # catches an edition that shows glue names instead of numbers, or a glue that prints
    # name = value walls into the outputs a Colab reader sees
    out = execute(edition / f"{stem}.ipynb", tmp_path / f"{stem}.ipynb", colab_kernel, {"SMOKE": True})
    assert not [o for c in out["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    printed = NAME_VALUE.findall(_output_text(out))
    assert not printed, f"{stem}: outputs print name = value lines: {printed[:5]}"
    prose = "\n".join(_source(c) for c in out["cells"] if c["cell_type"] == "markdown")
    for pattern in (MYST_ROLE, BOLD_NAME):
        assert not pattern.search(prose), (stem, pattern.search(prose).group(0))
    assert not NAME_VALUE.search(prose), (stem, NAME_VALUE.search(prose).group(0))


def test_every_cited_number_is_written_in_from_the_books_run(edition):
    # catches a glued name with no recorded value: the edition would show its bold name
    for nb in NOTEBOOKS:
        for name in (nb.name, f"{nb.stem}_student.ipynb"):
            ed = json.loads((edition / name).read_text())
            prose = "\n".join(_source(c) for c in ed["cells"] if c["cell_type"] == "markdown")
            assert not BOLD_NAME.search(prose), (name, BOLD_NAME.findall(prose)[:5])
            source = json.loads(nb.read_text())
            cites = sum(len(re.findall(r"\{glue:?\w*\}`", _source(c))) for c in source["cells"]
                        if c["cell_type"] == "markdown")
            if name == nb.name:
                assert prose.count(edition_script.MARK) >= cites > 0, name
                assert "book's own run" in _source(ed["cells"][0]) + _source(ed["cells"][1])


def test_edition_has_no_myst_markup_and_asks_for_a_gpu(edition):
    url = edition_script.repository_url()
    for nb in NOTEBOOKS:
        src = json.loads(nb.read_text())
        ed = json.loads((edition / nb.name).read_text())
        text = "\n".join(_source(c) for c in ed["cells"] if c["cell_type"] == "markdown")
        for pattern in (MYST_ROLE, MYST_FENCE, MYST_TARGET, BOLD_NAME, NAME_VALUE):  # every edition, executed or not
            assert not pattern.search(text), (nb.stem, pattern.search(text).group(0))
        for raw in ("{glue", "{cite", "{exercise", "{solution", ":label:", ":class: dropdown"):
            assert raw not in text, (nb.stem, raw)
        full = "\n".join(_source(c) for c in src["cells"])
        assert text.count("### Exercise ") == full.count("{exercise}") >= 3
        assert text.count("<summary>Solution</summary>") == full.count("{solution}")
        assert text.count("<details>") == text.count("</details>")
        assert ("## References" in text) == ("{cite" in full)
        assert ed["metadata"]["accelerator"] == "GPU" and ed["metadata"]["colab"]["gpuType"] == "T4"
        code = [c for c in ed["cells"] if c["cell_type"] == "code"]
        assert [_source(c) for c in code] == [_source(c) for c in src["cells"] if c["cell_type"] == "code"]
        assert "google.colab" in _source(code[0]) and f"git+{url}" in _source(code[0])
        assert all(not c["outputs"] for c in code)


def test_edition_substitutes_executed_values_and_cites_author_year():
    bib = edition_script.read_bib()
    nb = {"metadata": {}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# T\n\nText"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": '%pip install "xaihelpers @ git+https://github.com/someone/else"  # google.colab'},
        {"cell_type": "markdown", "metadata": {},
         "source": "A {glue:text}`share:.1%` of {glue:text}`n`, {glue:text}`missing:.2f`; "
                   "{cite}`du2018gfi,han2024srd` and {cite:t}`suhail2025actmatch`."},
    ]}
    ed = edition_script.colab_version(nb, bib, "https://github.com/a/b", {"share": 0.1234, "n": 7})
    text = _source(ed["cells"][2])
    assert text.startswith("A 12.3%† of 7†, **`missing`**; (Du et al., 2018; Han et al., 2024) and Suhail and Sethi (2025).")
    assert "book's own run" in _source(ed["cells"][0])
    assert "git+https://github.com/a/b" in _source(ed["cells"][1])
    # a course pins its version: the install cell follows the tag
    pinned = edition_script.colab_version(nb, bib, "https://github.com/a/b", ref="course-2027")
    assert '"xaihelpers @ git+https://github.com/a/b@course-2027"' in _source(pinned["cells"][1])
    assert "Mengnan Du, Ninghao Liu, Qingquan Song and Xia Hu (2018)" in _source(ed["cells"][-1])
    with pytest.raises(KeyError, match="not_in_bib"):
        edition_script.colab_version({**nb, "cells": nb["cells"][:2] + [
            {"cell_type": "markdown", "metadata": {}, "source": "{cite}`not_in_bib`"}]}, bib, "https://github.com/a/b")


def test_glue_without_myst_nb_shows_nothing_unless_asked(monkeypatch, capsys):
    # catches the name = value walls the Colab edition used to print
    import pandas as pd

    from xaihelpers import results

    monkeypatch.setitem(sys.modules, "myst_nb", None)  # import myst_nb now raises ModuleNotFoundError
    assert results.glue("share", 0.123456789) == 0.123457
    results.glue("label", "espresso")
    results.glue("tab_json", pd.DataFrame({"a": [1.5]}, index=["x"]).to_json(orient="split"))  # a glued table
    assert capsys.readouterr().out == ""
    results.glue("peak", 0.25, display=True)
    results.glue("tab_json", pd.DataFrame({"a": [1.5]}, index=["x"]).to_json(orient="split"), display=True)
    out = capsys.readouterr().out
    assert "0.25" in out and "peak" not in out
    assert "1.5" in out and "columns" not in out  # the table, not its JSON


def test_edition_hides_gated_solutions():
    nb = {"metadata": {}, "nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": '%pip install "xaihelpers @ git+https://github.com/a/b"  # google.colab'},
        {"cell_type": "markdown", "metadata": {},
         "source": "```{exercise-start}\n:label: e1\n```\nCount.\n```{exercise-end}\n```\n\n"
                   "```{solution-start} e1\n:class: dropdown\n```\nLike this:"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": "answer = 3"},
        {"cell_type": "markdown", "metadata": {}, "source": "```{solution-end}\n```\nNext."},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": "shown = 1"},
    ]}
    ed = edition_script.colab_version(nb, {}, "https://github.com/a/b")
    cells = ed["cells"]
    assert _source(cells[1]).startswith("### Exercise 1\n\nCount.") and "**Solution**" in _source(cells[1])
    assert cells[2]["metadata"]["jupyter"]["source_hidden"] and "jupyter" not in cells[4]["metadata"]
    assert _source(cells[3]) == "Next." and not MYST_FENCE.search(_source(cells[1]) + _source(cells[3]))

