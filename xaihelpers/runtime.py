"""Where the book's code runs: device choice, seeding and the ``SMOKE`` flag.

Chapter 0 (``notebooks/00_getting_started.ipynb``) explains how to move a chapter
to a GPU and what ``SMOKE`` mode changes.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def device(prefer: str | None = None) -> torch.device:
    """Pick the device the book's computations run on.

    Parameters
    ----------
    prefer : str, optional
        ``"cuda"``, ``"mps"`` or ``"cpu"`` to force a device, or ``None`` (or
        ``"auto"``) to take CUDA, then Apple's MPS, then the CPU.

    Returns
    -------
    torch.device
        The chosen device.
    """
    if prefer not in (None, "auto"):
        if not isinstance(prefer, str):
            raise TypeError(f"expected a device name such as 'cuda' or 'cpu', got {type(prefer).__name__}")
        dev = torch.device(prefer)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
        if dev.type == "mps" and not _mps_available():
            raise ValueError("device 'mps' was asked for but torch.backends.mps.is_available() is False")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def seed_everything(seed: int = 0, deterministic: bool = True, exact_cpu: bool | None = None) -> int:
    """Seed Python's, NumPy's and PyTorch's random generators and ask for reproducible kernels.

    With ``deterministic=True`` it also asks PyTorch for deterministic algorithms
    (``torch.use_deterministic_algorithms(True, warn_only=True)``: an operation
    without a deterministic implementation warns instead of failing), switches off
    cuDNN's autotuner and TF32 (whose rounding differs between GPUs), and sets
    ``CUBLAS_WORKSPACE_CONFIG`` as cuBLAS requires for reproducible matrix products.

    What this cannot fix, and where the chapters meet it:

    * On the CPU, PyTorch splits some reductions over the available threads, and
      the order of the additions, hence the last bits of the result, depends on the
      thread count; optimisations with many steps (GFI, Activation Matching, the
      attack in chapter 3) and thresholds can amplify such bits into different
      numbers. Measured here (``tests/test_reproducibility.py``): a full reduction to
      one number (``t.sum()``) and oneDNN's convolution with a single output channel
      (forward and weight gradient) change with the thread count; the batch norm,
      pooling, matrix products and other convolutions of the benchmark CNNs do not.
      Activation Matching's mask network therefore computes its one-channel head as
      a matrix product (``actmatch.MaskNet``); the losses' full reductions change
      only the loss values printed, not the gradients. With these, the numbers
      computed on the benchmark CNNs are the same at one and at two threads.
      EfficientNet-Lite0's pointwise convolutions go through oneDNN, whose rounding
      depends on the thread count (its logits by about 3e-6, its input gradients by
      about 3e-4 of their largest value), and the photos' numbers of chapters 2-6
      inherit that (chapter 5's photo mask area by 0.3 %, its circuit overlap by one
      node). ``exact_cpu=True`` (or ``XAI_EXACT_CPU=1``) switches oneDNN off, at two to
      three times the CPU time of EfficientNet-Lite0's passes. That removes oneDNN's
      share of the difference but not all of it: PyTorch's own kernels and the BLAS
      still split sums over threads (and MKL may use fewer threads than asked on a busy
      machine), so the input gradients at one and at two threads still differ by up to
      about 1e-6 of their largest value on some machines (bit-identical on others).
      The book's tests therefore compare glued numbers with tolerances, never bit for bit.
    * On CUDA, ``index_add_``/``scatter_add_`` and the backward of adaptive
      pooling and of ``interpolate`` have no deterministic kernel (PyTorch warns);
      the chapters reach them through bilinear upsampling of maps (every chapter),
      ConvAD's pooling (chapter 4) and Activation Matching's U-Net (chapter 5).

    Parameters
    ----------
    seed : int
        The seed, a non-negative integer.
    deterministic : bool
        Also request the deterministic settings above (default).
    exact_cpu : bool, optional
        Switch oneDNN off, the largest source of thread-count dependence on the CPU;
        ``None`` reads the environment variable ``XAI_EXACT_CPU`` (off when unset).

    Returns
    -------
    int
        The seed that was set, for logging.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"expected a non-negative integer seed, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if exact_cpu is None:
        raw = os.environ.get("XAI_EXACT_CPU", "").strip().lower()
        if raw not in _TRUE | _FALSE:
            raise ValueError(f"expected XAI_EXACT_CPU to be one of 1/0/true/false/yes/no/on/off, got {raw!r}")
        exact_cpu = raw in _TRUE
    torch.backends.mkldnn.enabled = not exact_cpu
    return seed


def smoke(default: bool = False) -> bool:
    """Read the ``SMOKE`` flag from the environment variable ``XAI_SMOKE``.

    Chapters take ``SMOKE`` from their ``parameters`` cell (papermill sets it);
    this function lets scripts and tests use the same switch.

    Parameters
    ----------
    default : bool
        Value when ``XAI_SMOKE`` is unset.

    Returns
    -------
    bool
        ``True`` when the quick, small-scale mode is on.
    """
    raw = os.environ.get("XAI_SMOKE")
    if raw is None:
        return bool(default)
    val = raw.strip().lower()
    if val in _TRUE:
        return True
    if val in _FALSE:
        return False
    raise ValueError(f"expected XAI_SMOKE to be one of 1/0/true/false/yes/no/on/off, got {raw!r}")


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
    if _glue is None:  # no myst-nb, as on Colab: the reader sees the value in the output
        _show(name, plain)
    else:
        _glue(name, plain, display=display)
    return plain


def _myst_glue():
    """``myst_nb.glue``, or ``None`` where myst-nb is not installed.

    myst-nb comes with the ``book`` extra; on Colab the chapters' install cell brings
    ``xaihelpers[baselines]`` only, and :func:`glue` falls back to :func:`_show`.
    """
    try:
        from myst_nb import glue as myst_glue
    except ModuleNotFoundError:
        return None
    return myst_glue


def _show(name: str, value) -> None:
    """Show a glued value in the cell's output as ``name = value``: :func:`glue` without myst-nb.

    Where myst-nb is missing (Colab) the prose's ``{glue:text}`name``` roles are not
    rendered, so the reader finds every number the prose cites under its name in the
    output of the cell that computed it. Numbers, strings and lists print on one line;
    tables (DataFrames, and the JSON of :func:`glue_table`) and figures are displayed
    under a ``name:`` line.
    """
    if isinstance(value, str) and value.startswith('{"columns":'):
        import io

        import pandas as pd

        try:
            value = pd.read_json(io.StringIO(value), orient="split")
        except ValueError:
            pass
    if value is None or isinstance(value, (bool, int, float, str, list, tuple, dict)):
        print(f"{name} = {value}")
        return
    print(f"{name}:")
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


def best_time(fn, repeat: int = 3, warm_up: bool = True) -> float:
    """Fastest of ``repeat`` timed calls of ``fn`` in seconds, after one untimed call (CUDA synchronised)."""
    import time

    if warm_up:
        fn()
    times = []
    for _ in range(max(1, repeat)):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def time_ratio(fn, reference, repeat: int = 3, reference_repeat: int = 10) -> float:
    """How many ``reference()`` calls one ``fn()`` costs, both timed in this run.

    Each is called once to warm up, then timed ``repeat`` (``reference_repeat``)
    times; the ratio of the fastest runs is robust to a noisy machine, which is why
    the book's speed targets are ratios, never seconds. CUDA is synchronised.

    Parameters
    ----------
    fn, reference : callable
        Functions without arguments, e.g. an explainer call and one
        forward+backward pass of the same model.
    repeat, reference_repeat : int
        Timed calls of each.

    Returns
    -------
    float
        ``min time(fn) / min time(reference)``.
    """
    return best_time(fn, repeat) / best_time(reference, reference_repeat)


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
