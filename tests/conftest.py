"""Shared fixtures: chapters executed once per test session with papermill (SMOKE=True)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Glued floats keep results.GLUE_DIGITS significant digits; two glued roundings of one
# number differ by at most one unit in the last digit kept.
from xaihelpers.results import GLUE_DIGITS  # noqa: E402

GLUED_REL = 10.0 ** (1 - GLUE_DIGITS)


class _Executed:
    """Runs each chapter at most once per session and remembers the result."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.results: dict[str, Path] = {}
        self.errors: dict[str, BaseException] = {}

    def __call__(self, stem: str) -> Path:
        if stem in self.errors:
            raise self.errors[stem]
        if stem not in self.results:
            import papermill as pm

            src = ROOT / "notebooks" / f"{stem}.ipynb"
            out = self.folder / src.name
            # the kernel inherits the environment: a non-inline backend would drop the figures
            os.environ.pop("MPLBACKEND", None)
            try:
                pm.execute_notebook(
                    str(src), str(out), parameters={"SMOKE": True}, cwd=str(src.parent),
                    kernel_name="python3", progress_bar=False,
                )
            except BaseException as err:  # remember, so that dependent tests fail fast
                self.errors[stem] = err
                raise
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
