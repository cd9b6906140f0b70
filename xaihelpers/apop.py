"""Activation-Pattern-Only Prediction (APOP, Han et al. 2024, Table 1, Table 3, Figure 6).

Record which neurons of every ReLU are on and which input every max-pool picks; then
predict from an input that carries no information (zeros, ones, Gaussian noise)
with the pattern frozen: each ReLU multiplies its input by the recorded 0/1 mask
(values may be negative; ``"apop"``), or also applies the ReLU (``"apop_relu"``), and
each max-pool takes the recorded positions. How often the frozen network still
predicts the original class is the paper's evidence that the on/off pattern, inactive
neurons included, carries the decision, which is why SRD propagates relevance through
pre-activations. Chapter 3 (``notebooks/03_sharing_ratio_decomposition.ipynb``) runs it.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .hooks import RELU_TYPES, no_inplace
from .occlusion import UNINFORMATIVE as INPUTS, uninformative

MODES = ("apop", "apop_relu")
_RELUS = RELU_TYPES


def _pattern_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _RELUS + (nn.MaxPool2d,))]
    others = sorted({type(m).__name__ for m in model.modules() if isinstance(m, (nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU,
                                                                                nn.Tanh, nn.Sigmoid, nn.Hardswish))})
    if others:
        raise ValueError(f"APOP needs ReLU-family activations (an on/off pattern); the model has {', '.join(others)}")
    if not layers:
        raise ValueError("the model has no ReLU or MaxPool2d layer to record a pattern from")
    return layers


@contextmanager
def _hooked(model: nn.Module, fn):
    handles = [m.register_forward_hook(fn(n)) for n, m in _pattern_layers(model)]
    try:
        with no_inplace(model):
            yield
    finally:
        for h in handles:
            h.remove()


def record_pattern(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run ``x`` and return its logits and the pattern of every ReLU and max-pool call.

    Returns
    -------
    (torch.Tensor, list of torch.Tensor)
        Logits (N, K); per call in order, a bool mask of active ReLU outputs or the
        max-pool's argmax indices (as ``F.max_pool2d(..., return_indices=True)``).
    """
    pattern: list[torch.Tensor] = []

    def fn(name):
        def hook(mod, inp, out):
            if isinstance(mod, nn.MaxPool2d):
                _, idx = F.max_pool2d(inp[0], mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                                      return_indices=True)
                pattern.append(idx)
            else:
                pattern.append(out > 0)
        return hook

    with torch.no_grad(), _hooked(model, fn):
        logits = model(x)
    return logits, pattern


def _gather_pool(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(2)
    return flat.gather(2, idx.flatten(2)).view(idx.shape)


def frozen_forward(model: nn.Module, x: torch.Tensor, pattern: list[torch.Tensor], mode: str = "apop",
                   binarise: int | None = None) -> torch.Tensor:
    """Forward ``x`` with the recorded ``pattern`` in place of the ReLUs and max-pools.

    Parameters
    ----------
    model, x : nn.Module, torch.Tensor
        The network and the new input (N, 3, H, W).
    pattern : list of torch.Tensor
        From :func:`record_pattern`.
    mode : {"apop", "apop_relu"}
        ReLU replaced by ``v * mask`` (the paper's APOP) or ``relu(v) * mask``
        (its "APOP & relu").
    binarise : int, optional
        Figure 6 instead: run ``x`` normally but replace the output of the
        ``binarise``-th ReLU call by its 0/1 mask; ``pattern`` is then unused.

    Returns
    -------
    torch.Tensor
        Logits (N, K).
    """
    if mode not in MODES:
        raise ValueError(f"expected mode in {MODES}, got {mode!r}")
    calls = iter(range(10**9))
    relu_calls = iter(range(10**9))

    def fn(name):
        def hook(mod, inp, out):
            if binarise is not None:
                if isinstance(mod, _RELUS) and next(relu_calls) == binarise:
                    return (out > 0).to(out.dtype)
                return None
            k = next(calls)
            if k >= len(pattern):
                raise ValueError(f"the pattern has {len(pattern)} entries but the model makes more ReLU/max-pool calls")
            p = pattern[k]
            if isinstance(mod, nn.MaxPool2d):
                return _gather_pool(inp[0], p)
            v = inp[0] if mode == "apop" else F.relu(inp[0])
            return v * p.to(v.dtype)
        return hook

    with torch.no_grad(), _hooked(model, fn):
        return model(x)


def agreement(model: nn.Module, x: torch.Tensor, labels=None, inputs=INPUTS, modes=MODES, batch_size: int = 64,
              verbose: bool = True, per_image: bool = False):
    """APOP's tables: top-1/top-5 of the frozen network for each input and mode.

    Parameters
    ----------
    model : nn.Module
        A ReLU network in eval mode.
    x : torch.Tensor
        Normalised images (N, 3, H, W).
    labels : sequence of int, optional
        True classes; when given, accuracies are reported too (the paper's Table 3
        reports accuracy on ImageNet's validation labels).
    inputs, modes : sequences of str
        Which information-free inputs and which replacement rules.
    per_image : bool
        Also return the per-image outcome of every row, for paired comparisons of two
        rows on the same images (:func:`xaihelpers.stats.paired`).

    Returns
    -------
    pandas.DataFrame
        One row per (input, mode) plus the original model: ``top1_agree``/``top5_agree``
        (the frozen network's top-1 equals / its top-5 contains the original top-1)
        and, with labels, ``top1_acc``/``top5_acc``.
    pandas.DataFrame, with ``per_image=True``
        Images by (input, mode): 1.0 where the frozen network's top-1 is right (with
        labels) or equals the original top-1 (without), else 0.0; its column means are
        the table's ``top1_acc`` (``top1_agree``).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    _checks.image_batch(x)
    dev = _checks.model_device(model)
    y = None if labels is None else torch.as_tensor(labels)
    sums: dict[tuple[str, str], dict[str, float]] = {}
    hits: dict[tuple[str, str], list[torch.Tensor]] = {}
    for i in tqdm(range(0, len(x), batch_size), desc="APOP", disable=not verbose):
        xb = x[i : i + batch_size].to(dev)
        logits, pattern = record_pattern(model, xb)
        orig = logits.argmax(1)
        rows = {("image", "original"): logits}
        for kind in inputs:
            for mode in modes:
                rows[(kind, mode)] = frozen_forward(model, uninformative(xb, kind, seed=i), pattern, mode)
        for key, out in rows.items():
            top5 = out.topk(min(5, out.shape[1]), 1).indices
            acc = sums.setdefault(key, {"top1_agree": 0.0, "top5_agree": 0.0, "top1_acc": 0.0, "top5_acc": 0.0})
            acc["top1_agree"] += (top5[:, 0] == orig).sum().item()
            acc["top5_agree"] += (top5 == orig[:, None]).any(1).sum().item()
            hits.setdefault(key, []).append((top5[:, 0] == (orig if y is None else y[i : i + batch_size].to(dev))).cpu())
            if y is not None:
                yb = y[i : i + batch_size].to(dev)
                acc["top1_acc"] += (top5[:, 0] == yb).sum().item()
                acc["top5_acc"] += (top5 == yb[:, None]).any(1).sum().item()
    table = pd.DataFrame({k: {m: v / len(x) for m, v in d.items()} for k, d in sums.items()}).T
    table.index.names = ["input", "mode"]
    table = table if y is not None else table[["top1_agree", "top5_agree"]]
    if not per_image:
        return table
    outcomes = pd.DataFrame({k: torch.cat(v).double().numpy() for k, v in hits.items()})
    outcomes.columns.names = ["input", "mode"]
    return table, outcomes
