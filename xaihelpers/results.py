"""The numbers a chapter cites: glue, read back, rounded the same way; and the chapters' run times.

Every number the prose cites is computed and glued (:func:`glue`, :func:`glue_table`;
``myst_nb``'s glue where it is installed; on Colab nothing unless asked) and read back by
the tests (:func:`read_glued`, :func:`read_table`) with one rounding
(:data:`GLUE_DIGITS`). :func:`glue_run_times` glues the run times measured by
``scripts/run_times.py`` (``xaihelpers/run_times.csv``) for each chapter's opening.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

GLUE_DIGITS = 6
"""Significant digits every glued float keeps. The prose prints at most three
(``.3f``, ``.1%``, ``.1e``), so six leave the printed digits untouched while two
computations of one number that differ in their last bits glue the same value."""


def rounded(value, digits: int = GLUE_DIGITS):
    """Round every float in ``value`` (scalars, lists, tuples, dicts, arrays, tensors) to ``digits`` significant digits.

    The one rounding of the book: :func:`glue` and :func:`glue_table` apply it, and
    tests that compare a glued number with the table it came from apply it to the
    table's value, so both sides are rounded the same way.

    Parameters
    ----------
    value : object
        A number or a (nested) container of numbers; other values pass unchanged.
    digits : int
        Significant digits to keep.

    Returns
    -------
    object
        Plain Python values (NumPy and PyTorch scalars and arrays become numbers and lists).
    """
    value = _plain(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if np.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(rounded(v, digits) for v in value)
    return value


def _plain(value):
    """NumPy/PyTorch scalars and arrays to plain Python, so glued values read back with ``ast.literal_eval``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def glue(name: str, value, display: bool = False):
    """Glue a value into the executed chapter (``myst_nb.glue``) for the prose and the tests.

    Scalars and arrays are turned into plain Python first and their floats rounded
    to :data:`GLUE_DIGITS` significant digits (:func:`rounded`), so that
    :func:`read_glued` gets back exactly what the prose prints from. Figures and
    DataFrames are glued as they are (tables the tests read go through
    :func:`glue_table`).

    Parameters
    ----------
    name : str
        Key the prose references with ``{glue:text}`name``` and tests read.
    value : object
        The value.
    display : bool
        Also show it in the cell's output.

    Returns
    -------
    object
        The plain, rounded value.
    """
    _glue = _myst_glue()
    plain = rounded(value)
    if _glue is None:  # no myst-nb, as on Colab: the value is in its table or figure already
        if display:
            _show(plain)
    else:
        _glue(name, plain, display=display)
    return plain


def _myst_glue():
    """``myst_nb.glue``, or ``None`` where myst-nb is not installed.

    myst-nb comes with the ``book`` extra; on Colab the chapters' install cell brings
    ``xaihelpers[baselines]`` only, and :func:`glue` shows nothing unless asked to.
    """
    try:
        from myst_nb import glue as myst_glue
    except ModuleNotFoundError:
        return None
    return myst_glue


def _show(value) -> None:
    """Show a value asked for with ``glue(..., display=True)`` where myst-nb is missing (Colab).

    The Colab edition (``scripts/colab_edition.py``) writes the book's run's values into
    the prose, and the numbers of the reader's own run are in the tables and figures the
    cells show, so a glued value is shown only when the chapter asks for it: tables (the
    JSON of :func:`glue_table`) as tables, anything else as it is.
    """
    if isinstance(value, str) and value.startswith('{"columns":'):
        import io

        import pandas as pd

        try:
            value = pd.read_json(io.StringIO(value), orient="split")
        except ValueError:
            pass
    try:
        from IPython.display import display
    except ModuleNotFoundError:
        print(value)
    else:
        display(value)


def table_json(table) -> str:
    """A DataFrame as JSON (``orient="split"``) with every float rounded by :func:`rounded`."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(table).__name__}")
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = [rounded(float(v)) for v in out[col]]
        elif out[col].dtype == object:
            out[col] = [rounded(v) for v in out[col]]
    return out.to_json(orient="split", double_precision=15)


def glue_table(name: str, table) -> str:
    """Glue a table for the tests as rounded JSON (:func:`table_json`); :func:`read_table` reads it back.

    Parameters
    ----------
    name : str
        Key of the glued JSON.
    table : pandas.DataFrame
        The table.

    Returns
    -------
    str
        The glued JSON.
    """
    text = table_json(table)
    glue(name, text)
    return text


def read_table(glued: dict, name: str) -> "pandas.DataFrame":  # noqa: F821
    """Read a table glued by :func:`glue_table` from the values :func:`read_glued` returned."""
    import io

    import pandas as pd

    if name not in glued:
        raise KeyError(f"no glued table {name!r}; glued names: {sorted(glued)}")
    # precise_float: pandas's fast parser reads "0.3" as 0.30000000000000004
    return pd.read_json(io.StringIO(glued[name]), orient="split", precise_float=True)


def read_glued(notebook: str | os.PathLike) -> dict:
    """Read the values glued into an executed notebook.

    Parameters
    ----------
    notebook : str or path-like
        An executed ``.ipynb`` file.

    Returns
    -------
    dict
        Name to value: Python literals are parsed back (numbers, strings, lists, dicts);
        other outputs (figures, tables) come as their ``text/plain`` representation.
    """
    import ast
    import json

    with open(notebook, encoding="utf-8") as fh:
        nb = json.load(fh)
    out = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = meta.get("mime_prefix", "")
            text = output.get("data", {}).get(prefix + "text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            try:
                out[meta["name"]] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                out[meta["name"]] = text
    return out


RUN_TIMES = Path(__file__).with_name("run_times.csv")


def run_times(chapter: str | None = None, path: str | os.PathLike | None = None) -> "pandas.DataFrame":  # noqa: F821
    """Measured run times of the chapters (``scripts/run_times.py`` writes them).

    Parameters
    ----------
    chapter : str, optional
        A notebook's stem, e.g. ``"03_sharing_ratio_decomposition"``; default all.
    path : path, optional
        The CSV file; default the one shipped with the package.

    Returns
    -------
    pandas.DataFrame
        Columns ``chapter``, ``mode`` (``"smoke"``, ``"default"`` or ``"full"``: ``SMOKE=True``,
        the defaults, ``FULL=True``), ``seconds``,
        ``device``, ``date`` and ``source``.
    """
    import pandas as pd

    df = pd.read_csv(path or RUN_TIMES)
    if chapter is not None:
        if chapter not in set(df["chapter"]):
            raise ValueError(f"no run time recorded for chapter {chapter!r}; expected one of {sorted(set(df['chapter']))}")
        df = df[df["chapter"] == chapter]
    return df.reset_index(drop=True)


def duration(seconds: float) -> str:
    """A run time in words: ``"45 s"``, ``"about 3 min"``, ``"about 1 h 10 min"``."""
    if not np.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected a non-negative number of seconds, got {seconds}")
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60} min"


def glue_run_times(chapter: str) -> dict:
    """Glue ``run_time_smoke``, ``run_time_default``, ``run_time_full`` and ``run_time_device`` for a chapter's opening.

    Each is the latest recorded run of that mode (:func:`run_times`) on a CPU (any
    device where no CPU run is recorded), in words; "not yet measured" where none is.
    """
    df = run_times()
    df = df[df["chapter"] == chapter]
    out = {}
    for mode in ("smoke", "default", "full"):
        rows = df[df["mode"] == mode]
        on_cpu = rows[rows["device"].astype(str).str.startswith("CPU")]
        rows = on_cpu if len(on_cpu) else rows  # a laptop's CPU is what the opening promises
        out[mode] = duration(float(rows["seconds"].iloc[-1])) if len(rows) else "not yet measured"
        glue(f"run_time_{mode}", out[mode])
    out["device"] = str(df["device"].iloc[-1]) if len(df) else "no run recorded"
    glue("run_time_device", out["device"])
    return out
