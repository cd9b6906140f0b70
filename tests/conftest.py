"""Shared fixtures: chapters executed once per test session with papermill (SMOKE=True).

Each chapter runs with its worked solutions sealed (``scripts/student_notebooks.py``'s
:func:`sealed`): every cell runs, and the cells after a solution cannot use what it bound,
so one run checks the chapter, its solutions and that its student edition's cells run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# A method's lesson (``NN_<method>_lesson``) and its lab (the chapter's replication notebook).
LESSONS = [p for p in NOTEBOOKS if p.stem.endswith("_lesson")]
LABS = [p for p in NOTEBOOKS if p not in LESSONS]

# Glued floats keep results.GLUE_DIGITS significant digits; two glued roundings of one
# number differ by at most one unit in the last digit kept.
from xaihelpers.results import GLUE_DIGITS  # noqa: E402

GLUED_REL = 10.0 ** (1 - GLUE_DIGITS)


def script(name: str):
    """The module of ``scripts/<name>.py``, freshly loaded (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class _Executed:
    """Runs each chapter (solutions sealed) at most once per session and remembers the result."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.results: dict[str, Path] = {}
        self.errors: dict[str, BaseException] = {}

    def __call__(self, stem: str) -> Path:
        if stem in self.errors:
            raise self.errors[stem]
        if stem not in self.results:
            import papermill as pm

            student_notebooks = script("student_notebooks")
            src = ROOT / "notebooks" / f"{stem}.ipynb"
            out = self.folder / src.name
            chapter = self.folder / f"{stem}.sealed.ipynb"
            chapter.write_text(json.dumps(student_notebooks.sealed(json.loads(src.read_text(encoding="utf-8")))),
                               encoding="utf-8")
            # the kernel inherits the environment: a non-inline backend would drop the figures
            os.environ.pop("MPLBACKEND", None)
            try:
                pm.execute_notebook(
                    str(chapter), str(out), parameters={"SMOKE": True}, cwd=str(src.parent),
                    kernel_name="python3", progress_bar=False,
                )
            except BaseException as err:  # remember, so that dependent tests fail fast
                self.errors[stem] = err
                raise
            out.write_text(json.dumps(student_notebooks.unsealed(json.loads(out.read_text(encoding="utf-8")))),
                           encoding="utf-8")
            self.results[stem] = out
        return self.results[stem]


@pytest.fixture(scope="session")
def executed(tmp_path_factory) -> _Executed:
    """``executed(stem)`` returns the path of the chapter executed with SMOKE=True."""
    return _Executed(tmp_path_factory.mktemp("executed"))


@pytest.fixture(scope="session")
def glued(executed):
    """``glued(stem)`` returns the values glued into the executed chapter."""
    from xaihelpers.results import read_glued

    return lambda stem: read_glued(executed(stem))


@pytest.fixture(scope="session")
def lite0():
    """The offline EfficientNet-Lite0, loaded once."""
    import xaihelpers as xh

    return xh.load_model("efficientnet_lite0", device="cpu")
