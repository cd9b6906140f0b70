"""Where and how the book's code runs: device choice, seeding, the ``SMOKE`` flag, timing ratios.

Chapter 0 (``notebooks/00_getting_started.ipynb``) explains how to move a chapter
to a GPU and what ``SMOKE`` mode changes.
"""

from __future__ import annotations

import os
import random

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
